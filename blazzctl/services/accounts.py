"""WhatsApp accounts of a workspace: add, list, update, remove, primary."""

from __future__ import annotations

import secrets
from typing import Any, Callable

from sqlalchemy import exc, func, select, update
from sqlalchemy.orm import Session

from blazzctl import validate
from blazzctl.db import db_now
from blazzctl.enums import AccountStatus, DesiredState, ProviderType
from blazzctl.errors import Conflict, InvalidInput
from blazzctl.models import WhatsAppAccount, Workspace
from blazzctl.models.base import utcnow
from blazzctl.services import audit


def new_session_id() -> str:
    return f"wa_{secrets.token_hex(12)}"


def add(session: Session, *, workspace: Workspace, name: str, phone: str | None = None,
        provider: str = ProviderType.WEBJS) -> WhatsAppAccount:
    name = validate.name(name, what="account name")
    phone = validate.phone_e164(phone) if phone else None
    if provider != ProviderType.WEBJS:
        raise InvalidInput(f"provider {provider!r} is not available", hint="Use --provider webjs.")
    _ensure_name_free(session, workspace.id, name)
    account = WhatsAppAccount(workspace=workspace, workspace_id=workspace.id, name=name, phone_number=phone,
                              provider_type=ProviderType(provider), session_id=new_session_id())
    session.add(account)
    _flush_or_conflict(session, workspace, name)
    audit.record(session, command="account add", target_type="account", target=f"{workspace.name}/{name}",
                 workspace_id=workspace.id)
    return account


def account_views(session: Session, *, workspace: Workspace | None = None, status: str | None = None,
                  limit: int | None = None, after: int | None = None) -> list[dict]:
    """Live accounts in id order, as ``views.account`` dicts; keyset pages with ``limit`` and
    ``after`` (the last id shown); ``workspace``: anything with its ``id`` and ``name``. Read
    lean: the columns the view shows as plain rows (Core: no ORM objects, no ORM row processing;
    `account list` and ``GET /v1/accounts`` return pages of these, and a page of 50 costs a third
    of loading the models). The workspace names come in a second query: joining them made
    MariaDB drive the join from workspaces and sort every account in a temporary table."""
    from blazzctl import views

    A = WhatsAppAccount.__table__.c
    query = select(*(A[c] for c in views.ACCOUNT_COLUMNS)).where(A.deleted_at.is_(None)).order_by(A.id)
    if workspace is not None:
        query = query.where(A.workspace_id == workspace.id)
    if status is not None:
        query = query.where(A.status == parse_status(status))
    if after is not None:
        query = query.where(A.id > after)
    if limit is not None:
        query = query.limit(limit)
    rows = session.execute(query).all()
    if workspace is not None:
        names = {workspace.id: workspace.name}
    else:
        wanted = {r.workspace_id for r in rows}
        names = dict(session.execute(select(Workspace.id, Workspace.name).where(Workspace.id.in_(wanted))).all()) \
            if wanted else {}
    return [views.account_values(r, names[r.workspace_id]) for r in rows]


def parse_status(status: str) -> AccountStatus:
    try:
        return AccountStatus(status)
    except ValueError:
        choices = ", ".join(s.value for s in AccountStatus)
        raise InvalidInput(f"unknown status {status!r}", hint=f"Use one of: {choices}.") from None


def update_account(session: Session, *, account: WhatsAppAccount, name: str | None = None,
                   phone: str | None = None) -> WhatsAppAccount:
    if name is None and phone is None:
        raise InvalidInput("nothing to update", hint="Give --name and/or --phone.")
    changes = {}
    if name is not None:
        name = validate.name(name, what="account name")
        if name != account.name:
            _ensure_name_free(session, account.workspace_id, name)
            changes["name"] = name
    if phone is not None:
        changes["phone_number"] = validate.phone_e164(phone)
    for key, value in changes.items():
        setattr(account, key, value)
    _flush_or_conflict(session, account.workspace, account.name)
    audit.record(session, command="account update", target_type="account", target=str(account.id),
                 workspace_id=account.workspace_id, details=changes or None)
    return account


def set_status(session: Session, *, account_id: int, status: AccountStatus, reason: str | None = None,
               previous: tuple[int, AccountStatus] | None = None,
               write: Callable[[dict[str, Any]], bool] | None = None, **values: Any) -> bool:
    """Write an account's status (with ``values`` that go with it) and, when it changes, queue
    its ``account.status`` webhook event in the same transaction.

    The one way any status is written, by a daemon or by the CLI: a webhook consumer sees
    every change, whoever made it, and only changes that committed. ``previous``:
    (workspace id, status) when the caller read them already. ``write(values) -> bool`` does
    the UPDATE (a daemon's is fenced by its lease; default: by id); False, nothing written
    and no event, when it changed no row.
    """
    if previous is None:
        previous = tuple(session.execute(select(WhatsAppAccount.workspace_id, WhatsAppAccount.status)
                                         .where(WhatsAppAccount.id == account_id)).one())
    workspace_id, before = previous
    values = {**values, "status": status, "status_reason": reason, "status_changed_at": db_now()}
    if write is None:
        written = session.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == account_id).values(**values)
                                  .execution_options(synchronize_session=False)).rowcount == 1
    else:
        written = write(values)
    if written and before != status:
        from blazzctl.services import events

        events.record(session, type="account.status", workspace_id=workspace_id, account_id=account_id,
                      data={"status": str(status), "previous_status": str(before), "reason": reason})
    return written


def closed_values() -> dict[str, Any]:
    """What goes with a status that ends a session written without its daemon (CLI, recovery):
    no code to scan any more, and no lease."""
    return {"disconnected_at": db_now(), "qr_code": None, "qr_expires_at": None, "pairing_code": None,
            "owner": None, "lease_expires_at": None}


def has_live_owner(session: Session, account_id: int) -> bool:
    return session.scalar(select(func.count()).select_from(WhatsAppAccount).where(
        WhatsAppAccount.id == account_id, WhatsAppAccount.owner.is_not(None),
        WhatsAppAccount.lease_expires_at > db_now())) > 0


# A status that says a session is (or is getting) up: stale when nobody owns the account.
SESSION_STATUSES = (AccountStatus.STARTING, AccountStatus.QR_SCANNING, AccountStatus.AUTHENTICATED,
                    AccountStatus.CONNECTED)


def remove(session: Session, *, account: WhatsAppAccount, force: bool = False) -> WhatsAppAccount:
    """Soft delete: the account disappears from every command; its daemon releases it, and its
    pending messages are cancelled (nothing would ever send them).

    An account no live daemon owns, whose status still says a session is up (its daemon died),
    becomes ``disconnected`` here, with its ``account.status`` event: no daemon would write it.
    """
    from blazzctl.services import pending

    if account.status == AccountStatus.CONNECTED and not force:
        raise Conflict(f"account {account.name!r} is connected",
                       hint="Disconnect it first (`blazzctl account disconnect`), or add --force.")
    # Lock the row: a claim skips it, and a daemon's status write waits for this change.
    session.execute(select(WhatsAppAccount.id).where(WhatsAppAccount.id == account.id).with_for_update())
    session.refresh(account)
    account.deleted_at = utcnow()
    account.is_primary = False
    account.desired_state = DesiredState.STOPPED
    session.flush()
    if account.status in SESSION_STATUSES and not has_live_owner(session, account.id):
        set_status(session, account_id=account.id, status=AccountStatus.DISCONNECTED, reason="account removed",
                   previous=(account.workspace_id, account.status), **closed_values())
        session.refresh(account)
    _cancel_commands(session, account.id, "account removed")
    cancelled = pending.cancel_all_of_account(session, account_id=account.id)
    audit.record(session, command="account remove", target_type="account", target=str(account.id),
                 workspace_id=account.workspace_id, details={"name": account.name, "force": force,
                                                             "messages_cancelled": cancelled})
    return account


def _cancel_commands(session: Session, account_id: int, reason: str) -> None:
    """Open operator commands end: no daemon runs them for an account that is gone."""
    from blazzctl.enums import CommandStatus
    from blazzctl.models import AccountCommand

    session.execute(update(AccountCommand).where(
        AccountCommand.whatsapp_account_id == account_id,
        AccountCommand.status.in_([CommandStatus.PENDING, CommandStatus.RUNNING]),
    ).values(status=CommandStatus.CANCELLED, result=reason, finished_at=db_now())
        .execution_options(synchronize_session=False))


def make_primary(session: Session, *, account: WhatsAppAccount) -> WhatsAppAccount:
    """Make ``account`` its workspace's only primary account, atomically and idempotently."""
    # Lock the workspace row: concurrent primary changes of one workspace queue up here
    # instead of colliding on the unique index.
    session.execute(select(Workspace.id).where(Workspace.id == account.workspace_id).with_for_update())
    session.execute(update(WhatsAppAccount)
                    .where(WhatsAppAccount.workspace_id == account.workspace_id,
                           WhatsAppAccount.is_primary.is_(True), WhatsAppAccount.id != account.id)
                    .values(is_primary=False).execution_options(synchronize_session=False))
    try:
        session.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == account.id)
                        .values(is_primary=True).execution_options(synchronize_session=False))
    except exc.IntegrityError:  # the unique index caught a primary set around the workspace lock
        raise Conflict(f"another account of workspace {account.workspace.name!r} became primary at the same "
                       "time", hint="Check `blazzctl account list`, and run the command again.") from None
    session.refresh(account)
    audit.record(session, command="account primary", target_type="account", target=str(account.id),
                 workspace_id=account.workspace_id)
    return account


def promote_if_no_primary(session: Session, *, account_id: int, workspace_id: int) -> bool:
    """When a workspace has no primary, make this (just connected) account its primary."""
    session.execute(select(Workspace.id).where(Workspace.id == workspace_id).with_for_update())
    has_primary = session.scalars(select(WhatsAppAccount.id).where(
        WhatsAppAccount.workspace_id == workspace_id, WhatsAppAccount.is_primary.is_(True))).first()
    if has_primary is not None:
        return False
    session.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == account_id)
                    .values(is_primary=True).execution_options(synchronize_session=False))
    return True


def _ensure_name_free(session: Session, workspace_id: int, name: str) -> None:
    taken = session.scalars(select(WhatsAppAccount.id).where(
        WhatsAppAccount.workspace_id == workspace_id, WhatsAppAccount.name == name,
        WhatsAppAccount.deleted_at.is_(None))).first()
    if taken is not None:
        raise Conflict(f"an account named {name!r} already exists in this workspace", hint="Choose another name.")


def _flush_or_conflict(session: Session, workspace: Workspace, name: str) -> None:
    try:
        session.flush()
    except exc.IntegrityError:
        raise Conflict(f"an account named {name!r} already exists in workspace {workspace.name!r}",
                       hint="Choose another name.") from None
