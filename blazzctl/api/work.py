"""A unit of work for one API call: the services' transaction, with audit rows saying which key acted."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple, TypeVar

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from sqlalchemy import event
from sqlalchemy.orm import Session

from blazzctl.api.auth import Principal

T = TypeVar("T")


@contextlib.contextmanager
def unit(request: Request, principal: Principal | None = None) -> Iterator[Session]:
    """``with unit(request, principal) as session``: committed when the block ends, rolled back on error.

    The services write audit rows as the CLI does (``os_user`` is the service's user); here each
    also names the API key in its details, so the trail tells an operator from the application.
    """
    with request.app.state.db.session() as session:
        if principal is not None:
            event.listen(session, "before_flush", _tag_audit(principal))
        yield session


@contextlib.contextmanager
def reading(request: Request) -> Iterator[Session]:
    """``with reading(request) as session`` for a call that writes nothing: on MySQL each query
    is one statement on an autocommit connection (no BEGIN or COMMIT round trips; each query
    sees what was committed when it started)."""
    with request.app.state.db.read() as session:
        yield session


async def read(request: Request, load: Callable[[], T]) -> T:
    """The result of ``load()``, a read of a few indexed queries (on ``reading``): on the worker's
    event loop when ``api.inline_reads`` (the default), else in a request thread.

    With one request thread per worker (``api.threads: 1``) a worker reads one thing at a time
    either way; the hop to the thread and back, and the GIL passed between the two threads on every
    round trip, cost a page of accounts a quarter of its CPU and most of its wait (docs/architecture.md).
    A read that stalls (a database that stopped answering) then holds the whole worker, as it held
    its one request thread.
    """
    if request.app.state.settings.api.inline_reads:
        return load()
    return await run_in_threadpool(load)


def _tag_audit(principal: Principal):
    def tag(session: Session, _context, _instances) -> None:
        from blazzctl.models import AuditEvent

        for obj in session.new:
            if isinstance(obj, AuditEvent):
                obj.details = {**(obj.details or {}), "api_key": {"id": principal.key_id, "name": principal.name}}

    return tag


def account(session: Session, principal: Principal, ref: str):
    """An account of the caller's workspace; another workspace's is NotFound (404), as if absent."""
    from blazzctl.services import refs

    return refs.account(session, ref, within=workspace_seen(principal))


def workspace(session: Session, principal: Principal):
    from blazzctl.services import refs

    return refs.workspace(session, principal.workspace_ref)


def workspace_seen(principal: Principal) -> WorkspaceSeen:
    """The caller's workspace as its key's lookup saw it (id and name, no query): for reads that
    only filter and label by it. A removed workspace's keys are revoked, so within the key cache's
    seconds (auth.CACHE_SECONDS) this is a live workspace; a rename shows as soon as the cache does."""
    return WorkspaceSeen(principal.workspace_id, principal.workspace_name)


class WorkspaceSeen(NamedTuple):
    id: int
    name: str
