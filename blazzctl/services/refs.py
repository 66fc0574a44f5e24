"""Resolve what operators type (an id, a uuid, a session id or a name) to rows, within a scope."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from blazzctl import validate
from blazzctl.errors import InvalidInput, NotFound
from blazzctl.models import WhatsAppAccount, Workspace

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def workspace(session: Session, ref: str, *, lock: bool = False) -> Workspace:
    """A live (not removed) workspace by id, uuid or name."""
    validate.reference(ref, what="workspace")
    query = select(Workspace).where(Workspace.deleted_at.is_(None))
    if ref.isdigit():
        query = query.where(Workspace.id == int(ref))
    elif _UUID.match(ref):
        query = query.where(Workspace.uuid == ref.lower())
    else:
        query = query.where(Workspace.name == ref)
    found = session.scalars(query.with_for_update() if lock else query).first()
    if found is None and ref.isdigit():  # a workspace may be named "2024"
        found = session.scalars(select(Workspace).where(Workspace.deleted_at.is_(None), Workspace.name == ref)).first()
    if found is None:
        raise NotFound(f"workspace {ref!r} not found", hint="See `blazzctl workspace list`.")
    return found


def account(session: Session, ref: str, *, workspace_ref: str | None = None, within=None) -> WhatsAppAccount:
    """A live (not removed) account by id, uuid, session_id or name, within a workspace when given:
    by reference (``workspace_ref``), or one the caller already holds (``within``: anything with
    the workspace's ``id`` and ``name``, e.g. what an API key's lookup saw; no query for it)."""
    validate.reference(ref, what="account")
    scope = within if within is not None else workspace(session, workspace_ref) if workspace_ref else None
    base = select(WhatsAppAccount).where(WhatsAppAccount.deleted_at.is_(None))
    if scope is not None:
        base = base.where(WhatsAppAccount.workspace_id == scope.id)
    attempts = []
    if ref.isdigit():
        attempts.append(WhatsAppAccount.id == int(ref))
    if _UUID.match(ref):
        attempts.append(WhatsAppAccount.uuid == ref.lower())
    attempts += [WhatsAppAccount.session_id == ref, WhatsAppAccount.name == ref]
    for condition in attempts:
        rows = list(session.scalars(base.where(condition).limit(2)).unique())
        if len(rows) == 1:
            return rows[0]
        if len(rows) > 1:
            raise InvalidInput(f"account name {ref!r} exists in several workspaces",
                               hint="Give --workspace (or set BLAZZ_WORKSPACE), or use the account's id.")
    where = f" in workspace {scope.name!r}" if scope is not None else ""
    raise NotFound(f"account {ref!r} not found{where}", hint="See `blazzctl account list`.")
