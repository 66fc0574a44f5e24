"""Operator intent for accounts: connect, disconnect, reconnect, logout.

The CLI never talks to a daemon. It records the desired state and an ``account_commands``
row; the daemon that owns the account carries it out and writes the outcome. When no live
daemon owns the account, what needs no browser (disconnect, logout) is done right here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from blazzctl import validate
from blazzctl.db import db_now
from blazzctl.enums import AccountStatus, CommandKind, CommandStatus, DaemonStatus, DesiredState
from blazzctl.models import AccountCommand, AuthArchive, SessionDaemon, WhatsAppAccount, Workspace
from blazzctl.models.base import utcnow
from blazzctl.services import audit
from blazzctl.services.audit import os_user

TERMINAL = (CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.CANCELLED)


def request(session: Session, *, account: WhatsAppAccount, kind: CommandKind,
            pair_phone: str | None = None) -> AccountCommand:
    """Record what the operator wants; returns the command row to watch."""
    # Lock the account row: a daemon's claim or status write for it waits for this change.
    session.execute(select(WhatsAppAccount.id).where(WhatsAppAccount.id == account.id).with_for_update())
    args = {"pair_phone": validate.phone_e164(pair_phone)} if pair_phone else None
    command = AccountCommand(whatsapp_account_id=account.id, command=kind, args=args, requested_by=os_user()[:100])
    session.add(command)
    session.flush()
    session.execute(update(AccountCommand).where(
        AccountCommand.whatsapp_account_id == account.id, AccountCommand.id != command.id,
        AccountCommand.status.in_([CommandStatus.PENDING, CommandStatus.RUNNING]),
    ).values(status=CommandStatus.CANCELLED, result=f"superseded by command {command.id}",
             finished_at=db_now()).execution_options(synchronize_session=False))
    owned = has_live_owner(session, account.id)
    values: dict = {}
    if kind in (CommandKind.CONNECT, CommandKind.RECONNECT):
        values = {"desired_state": DesiredState.RUNNING, "last_error": None}
        if account.status in (AccountStatus.FAILED, AccountStatus.LOGGED_OUT) and not owned:
            values.update(status=AccountStatus.DISCONNECTED, status_reason=f"{kind} requested")
    elif kind == CommandKind.DISCONNECT:
        values = {"desired_state": DesiredState.STOPPED}
        if not owned:
            values.update(_closed(AccountStatus.DISCONNECTED, "operator disconnect"))
            _finish(command, CommandStatus.SUCCEEDED, "disconnected (no session was running)")
    elif kind == CommandKind.LOGOUT and not owned:
        values = {"desired_state": DesiredState.STOPPED, "auth_saved_at": None,
                  **_closed(AccountStatus.LOGGED_OUT, "operator logout")}
        session.execute(delete(AuthArchive).where(AuthArchive.whatsapp_account_id == account.id))
        _finish(command, CommandStatus.SUCCEEDED, "logged out (no session was running)")
    if values:
        session.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == account.id).values(**values)
                        .execution_options(synchronize_session=False))
    audit.record(session, command=f"account {kind}", target_type="account", target=str(account.id),
                 workspace_id=account.workspace_id, details={"command_id": command.id})
    return command


def has_live_owner(session: Session, account_id: int) -> bool:
    return session.scalar(select(func.count()).select_from(WhatsAppAccount).where(
        WhatsAppAccount.id == account_id, WhatsAppAccount.owner.is_not(None),
        WhatsAppAccount.lease_expires_at > db_now())) > 0


def _closed(status: AccountStatus, reason: str) -> dict:
    return {"status": status, "status_reason": reason, "status_changed_at": db_now(), "disconnected_at": db_now(),
            "qr_code": None, "qr_expires_at": None, "pairing_code": None, "owner": None, "lease_expires_at": None}


def _finish(command: AccountCommand, status: CommandStatus, result: str) -> None:
    command.status, command.result, command.finished_at = status, result, utcnow()


@dataclass(frozen=True)
class Progress:
    """One look at a command and its account, for `--wait` displays."""

    command_status: CommandStatus
    result: str | None
    account_status: AccountStatus
    status_reason: str | None
    last_error: str | None
    phone_number: str | None
    qr_code: str | None
    qr_expires_at: datetime | None
    pairing_code: str | None
    owner: str | None
    live_daemons: int

    @property
    def done(self) -> bool:
        return self.command_status in TERMINAL


def progress(session: Session, *, command_id: int, heartbeat_interval: float) -> Progress:
    row = session.execute(select(AccountCommand, WhatsAppAccount)
                          .join(WhatsAppAccount, WhatsAppAccount.id == AccountCommand.whatsapp_account_id)
                          .join(Workspace, Workspace.id == WhatsAppAccount.workspace_id)
                          .where(AccountCommand.id == command_id)).one()
    command, acc = row
    return Progress(command.status, command.result, acc.status, acc.status_reason, acc.last_error, acc.phone_number,
                    acc.qr_code, acc.qr_expires_at, acc.pairing_code, acc.owner,
                    live_daemons(session, heartbeat_interval=heartbeat_interval))


def live_daemons(session: Session, *, heartbeat_interval: float) -> int:
    return session.scalar(select(func.count()).select_from(SessionDaemon).where(
        SessionDaemon.status.in_([DaemonStatus.STARTING, DaemonStatus.RUNNING]),
        SessionDaemon.heartbeat_at > db_now(-3 * heartbeat_interval))) or 0


def cancel(session: Session, *, command_id: int, reason: str) -> None:
    session.execute(update(AccountCommand).where(AccountCommand.id == command_id,
                                                 AccountCommand.status.in_([CommandStatus.PENDING,
                                                                            CommandStatus.RUNNING]))
                    .values(status=CommandStatus.CANCELLED, result=reason, finished_at=db_now())
                    .execution_options(synchronize_session=False))
