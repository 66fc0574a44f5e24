"""Sync requests: ``sync_runs`` rows the CLI (or a daemon's schedule) writes and owning daemons carry out.

One active run per account: requesting a sync for an account that already has a queued or
running one returns that run instead of a second one (cron firing while a slow sync still
runs must not pile up work).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from blazzctl.enums import DesiredState, SyncKind, SyncStatus
from blazzctl.errors import Conflict, InvalidInput, NotFound
from blazzctl.models import SyncRun, WhatsAppAccount, Workspace
from blazzctl.models.base import utcnow

ACTIVE = (SyncStatus.QUEUED, SyncStatus.RUNNING)
DONE = (SyncStatus.SUCCEEDED, SyncStatus.FAILED)


@dataclass(frozen=True)
class Requested:
    run: SyncRun
    account: WhatsAppAccount
    created: bool  # False: the account's queued or running run was returned instead


def parse_kind(kind: str) -> SyncKind:
    try:
        return SyncKind(kind)
    except ValueError:
        raise InvalidInput(f"unknown sync kind {kind!r}",
                           hint=f"Use one of: {', '.join(k.value for k in SyncKind)}.") from None


def targets(session: Session, *, accounts: list[WhatsAppAccount] | None = None,
            workspace: Workspace | None = None) -> list[WhatsAppAccount]:
    """The accounts to sync: the given ones (each must be running), else the running ones of a workspace or of all."""
    if accounts:
        stopped = [a.name for a in accounts if a.desired_state != DesiredState.RUNNING]
        if stopped:
            raise Conflict(f"account(s) {', '.join(map(repr, stopped))} are not running, so no daemon can sync them",
                           hint="Connect them first: blazzctl account connect REF.")
        return list({a.id: a for a in accounts}.values())
    query = select(WhatsAppAccount).where(WhatsAppAccount.deleted_at.is_(None),
                                          WhatsAppAccount.desired_state == DesiredState.RUNNING)
    if workspace is not None:
        query = query.where(WhatsAppAccount.workspace_id == workspace.id)
    return list(session.scalars(query.order_by(WhatsAppAccount.id)).unique())


def request(session: Session, *, accounts: list[WhatsAppAccount], kind: SyncKind = SyncKind.ALL,
            requested_by: str | None = None) -> list[Requested]:
    """Queue a run per account, or return the one already queued or running."""
    if not accounts:
        return []
    ids = sorted({a.id for a in accounts})
    # Lock the accounts (in id order: no deadlock between two requests): a concurrent request for
    # the same account waits here and then sees our run, so it cannot queue a second one.
    session.execute(select(WhatsAppAccount.id).where(WhatsAppAccount.id.in_(ids))
                    .order_by(WhatsAppAccount.id).with_for_update())
    active = {run.whatsapp_account_id: run for run in session.scalars(
        select(SyncRun).where(SyncRun.whatsapp_account_id.in_(ids), SyncRun.status.in_(ACTIVE)))}
    out = []
    for account in sorted({a.id: a for a in accounts}.values(), key=lambda a: a.id):
        run = active.get(account.id)
        if run is not None:
            out.append(Requested(run, account, False))
            continue
        run = SyncRun(whatsapp_account_id=account.id, kind=kind, status=SyncStatus.QUEUED,
                      requested_by=(requested_by or "")[:100] or None, requested_at=utcnow())
        session.add(run)
        out.append(Requested(run, account, True))
    session.flush()
    return out


def request_ids(session: Session, *, account_ids: list[int], kind: SyncKind = SyncKind.ALL,
                requested_by: str | None = None) -> list[Requested]:
    """``request`` for account ids (the daemon's schedule); removed or stopped accounts are skipped."""
    accounts = list(session.scalars(select(WhatsAppAccount).where(
        WhatsAppAccount.id.in_(account_ids), WhatsAppAccount.deleted_at.is_(None),
        WhatsAppAccount.desired_state == DesiredState.RUNNING)).unique())
    return request(session, accounts=accounts, kind=kind, requested_by=requested_by)


def get_runs(session: Session, run_ids: list[int]) -> list[SyncRun]:
    """The runs with these ids, fresh from the database, in the order given."""
    found = {r.id: r for r in session.scalars(select(SyncRun).where(SyncRun.id.in_(run_ids))
                                              .execution_options(populate_existing=True))}
    missing = [i for i in run_ids if i not in found]
    if missing:
        raise NotFound(f"sync run(s) {', '.join(map(str, missing))} not found")
    return [found[i] for i in run_ids]


def list_runs(session: Session, *, account: WhatsAppAccount | None = None, workspace: Workspace | None = None,
              status: str | None = None, limit: int = 50) -> list[tuple[SyncRun, WhatsAppAccount]]:
    """Newest runs first, with their accounts."""
    if limit < 1:
        raise InvalidInput("--limit must be at least 1")
    query = (select(SyncRun, WhatsAppAccount).join(WhatsAppAccount, WhatsAppAccount.id == SyncRun.whatsapp_account_id)
             .order_by(SyncRun.id.desc()).limit(limit))
    if account is not None:
        query = query.where(SyncRun.whatsapp_account_id == account.id)
    if workspace is not None:
        query = query.where(WhatsAppAccount.workspace_id == workspace.id)
    if account is None and workspace is None:  # across workspaces: leave out removed workspaces
        from blazzctl.services.workspaces import removed_ids

        query = query.where(WhatsAppAccount.workspace_id.not_in(removed_ids()))
    if status is not None:
        try:
            query = query.where(SyncRun.status == SyncStatus(status))
        except ValueError:
            raise InvalidInput(f"unknown status {status!r}",
                               hint=f"Use one of: {', '.join(s.value for s in SyncStatus)}.") from None
    return [(run, acc) for run, acc in session.execute(query).unique()]
