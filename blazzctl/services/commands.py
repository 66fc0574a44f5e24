"""Operator intent for accounts: connect, disconnect, reconnect, logout.

The CLI never talks to a daemon. It records the desired state and an ``account_commands``
row; the daemon that owns the account carries it out and writes the outcome. When no live
daemon owns the account, what needs no browser (disconnect, logout) is done right here.

A command is never lost with the daemon that took it (`recover`): one ``running`` on a daemon
that no longer holds the account's lease goes back to ``pending`` for the next owner, or, for
an account nobody will claim (desired state stopped), is finished here as without a session.
Past its deadline (the `--wait` timeout it was asked with) it fails instead, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, not_, select, update
from sqlalchemy.orm import Session

from blazzctl import validate
from blazzctl.db import db_now
from blazzctl.enums import AccountStatus, CommandKind, CommandStatus, DaemonStatus, DesiredState
from blazzctl.models import AccountCommand, SessionDaemon, WhatsAppAccount, Workspace
from blazzctl.models.base import utcnow
from blazzctl.services import accounts, audit, auth_archives
from blazzctl.services.accounts import closed_values, has_live_owner  # noqa: F401 - has_live_owner re-exported
from blazzctl.services.audit import os_user

TERMINAL = (CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.CANCELLED)
OPEN = (CommandStatus.PENDING, CommandStatus.RUNNING)


def request(session: Session, *, account: WhatsAppAccount, kind: CommandKind,
            pair_phone: str | None = None, state_dir: str | None = None,
            deadline_s: float | None = None) -> AccountCommand:
    """Record what the operator wants; returns the command row to watch.

    ``state_dir`` is the configured ``daemon.state_dir``: where a logout without a session
    looks for the account's local profiles on this host. ``deadline_s``: seconds the operator
    waits for the outcome; a daemon that would take the command later fails it instead.
    """
    # Lock the account row: a daemon's claim or status write for it waits for this change.
    session.execute(select(WhatsAppAccount.id).where(WhatsAppAccount.id == account.id).with_for_update())
    args = {"pair_phone": validate.phone_e164(pair_phone)} if pair_phone else {}
    if deadline_s is not None:
        args["deadline"] = (utcnow() + timedelta(seconds=deadline_s)).isoformat()
    command = AccountCommand(whatsapp_account_id=account.id, command=kind, args=args or None,
                             requested_by=os_user()[:100])
    session.add(command)
    session.flush()
    session.execute(update(AccountCommand).where(
        AccountCommand.whatsapp_account_id == account.id, AccountCommand.id != command.id,
        AccountCommand.status.in_(OPEN),
    ).values(status=CommandStatus.CANCELLED, result=f"superseded by command {command.id}",
             finished_at=db_now()).execution_options(synchronize_session=False))
    owned = has_live_owner(session, account.id)
    previous = (account.workspace_id, account.status)
    if kind in (CommandKind.CONNECT, CommandKind.RECONNECT):
        values = {"desired_state": DesiredState.RUNNING, "last_error": None}
        if account.status in (AccountStatus.FAILED, AccountStatus.LOGGED_OUT) and not owned:
            accounts.set_status(session, account_id=account.id, status=AccountStatus.DISCONNECTED,
                                reason=f"{kind} requested", previous=previous, **values)
        else:
            _update_account(session, account.id, values)
    elif kind == CommandKind.DISCONNECT:
        if owned:
            _update_account(session, account.id, {"desired_state": DesiredState.STOPPED})
        else:
            accounts.set_status(session, account_id=account.id, status=AccountStatus.DISCONNECTED,
                                reason="operator disconnect", previous=previous,
                                desired_state=DesiredState.STOPPED, **closed_values())
            _finish(command, CommandStatus.SUCCEEDED, "disconnected (no session was running)")
    elif kind == CommandKind.LOGOUT and not owned:
        _finish(command, CommandStatus.SUCCEEDED, _logout_without_session(session, account, state_dir, previous))
    audit.record(session, command=f"account {kind}", target_type="account", target=str(account.id),
                 workspace_id=account.workspace_id, details={"command_id": command.id})
    return command


def _update_account(session: Session, account_id: int, values: dict) -> None:
    session.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == account_id).values(**values)
                    .execution_options(synchronize_session=False))


def _logout_without_session(session: Session, account: WhatsAppAccount, state_dir: str | None,
                            previous: tuple[int, AccountStatus]) -> str:
    """Record logged_out for an account no daemon drives; returns the command's result."""
    reason, result = _forget_login(session, account, state_dir)
    accounts.set_status(session, account_id=account.id, status=AccountStatus.LOGGED_OUT, reason=reason,
                        previous=previous, desired_state=DesiredState.STOPPED, auth_saved_at=None,
                        connected_at=None, session_id=accounts.new_session_id(), **closed_values())
    return result


def _forget_login(session: Session, account: WhatsAppAccount, state_dir: str | None) -> tuple[str, str]:
    """Logout without a session: no browser can tell WhatsApp, so delete every saved copy of the
    login instead. Returns (status reason, command result).

    The copies are the database archives and the Chromium profiles under the daemons' state
    directories. The caller also gives the account a new ``session_id``: profiles are named by
    it, so a profile left on another host (or one this host could not delete) is never used
    again, and the next `connect` starts from an empty profile: a new QR.
    """
    archives = auth_archives.delete_in(session, account_id=account.id)
    local = auth_archives.delete_local_profiles(auth_archives.state_bases(state_dir), account.session_id)
    reason = ("operator logout without a session: saved login deleted; the phone lists this device until "
              "you remove it there (Linked devices)")
    result = (f"logged out without a session: {archives} login archive(s) and {len(local.deleted)} local "
              f"profile(s) deleted; profiles named {account.session_id} on other hosts are never used again "
              "(delete them there); WhatsApp was not told, so remove the device on the phone")
    if local.kept:
        path, why = local.kept[0]
        reason += f"; not deleted ({why}): {path}"
        result += "; not deleted (never used again): " + ", ".join(f"{p} ({w})" for p, w in local.kept)
    return reason[:255], result


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
    handled_by: str | None = None

    @property
    def done(self) -> bool:
        return self.command_status in TERMINAL

    @property
    def warning(self) -> str | None:
        """A warning the daemon left in the status reason (e.g. another phone linked than entered)."""
        return self.status_reason if self.status_reason and self.status_reason.startswith("WARNING") else None


def progress(session: Session, *, command_id: int, heartbeat_interval: float) -> Progress:
    row = session.execute(select(AccountCommand, WhatsAppAccount)
                          .join(WhatsAppAccount, WhatsAppAccount.id == AccountCommand.whatsapp_account_id)
                          .join(Workspace, Workspace.id == WhatsAppAccount.workspace_id)
                          .where(AccountCommand.id == command_id)).one()
    command, acc = row
    return Progress(command.status, command.result, acc.status, acc.status_reason, acc.last_error, acc.phone_number,
                    acc.qr_code, acc.qr_expires_at, acc.pairing_code, acc.owner,
                    live_daemons(session, heartbeat_interval=heartbeat_interval), command.handled_by)


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


# --- commands whose daemon is gone --------------------------------------------------------------

def deadline_passed(args: dict | None, now: datetime | None = None) -> bool:
    deadline = (args or {}).get("deadline")
    return bool(deadline) and datetime.fromisoformat(deadline) < (now or utcnow())


def handler_holds_lease():
    """The daemon that took the command still holds the account's lease (else the command is
    orphaned: its daemon died, stalled past the lease, or handed the account on)."""
    return and_(WhatsAppAccount.owner == AccountCommand.handled_by, WhatsAppAccount.lease_expires_at > db_now())


def recover(session: Session, *, command_id: int, state_dir: str | None = None) -> str | None:
    """Rescue one command whose daemon no longer holds its account's lease (a `--wait`'s own
    look, so it ends even when no daemon would do it). Returns what was done, or None."""
    orphan = (select(AccountCommand.whatsapp_account_id)
              .join(WhatsAppAccount, WhatsAppAccount.id == AccountCommand.whatsapp_account_id)
              .where(AccountCommand.id == command_id, AccountCommand.status == CommandStatus.RUNNING,
                     not_(handler_holds_lease())))
    account_id = session.scalar(orphan)
    if account_id is None:  # the common case: one statement
        return None
    # Account row first, as a daemon's status write and `request` lock it, then re-check.
    account = session.scalars(select(WhatsAppAccount).where(WhatsAppAccount.id == account_id)
                              .with_for_update()).one()
    command = session.scalars(select(AccountCommand).where(AccountCommand.id == command_id).with_for_update()).one()
    if session.scalar(orphan) is None:
        return None
    return _rescue(session, command, account, state_dir)


def left_by_dead_daemons(limit: int):
    """Stopped accounts whose lease expired unreleased; on the claim index, in its order."""
    return (select(WhatsAppAccount.id).where(WhatsAppAccount.desired_state == DesiredState.STOPPED,
                                             WhatsAppAccount.lease_expires_at < db_now())
            .order_by(WhatsAppAccount.lease_expires_at, WhatsAppAccount.id).limit(limit))


def recover_stopped_accounts(session: Session, *, state_dir: str | None = None, limit: int = 20) -> int:
    """Accounts no daemon will claim again (desired state stopped) whose lease expired unreleased:
    their daemon died holding them. Finish what it was running as without a session, and end a
    status that still says a session is up. Returns how many accounts were settled.

    Served by the claim index (desired_state, lease_expires_at): a released lease is NULL, so
    only such accounts match, and the periodic pass of every daemon costs one short statement.
    """
    ids = list(session.scalars(left_by_dead_daemons(limit).with_for_update(skip_locked=True)))
    for account_id in ids:
        account = session.get(WhatsAppAccount, account_id)
        dead = account.owner
        running = session.scalars(select(AccountCommand).where(
            AccountCommand.whatsapp_account_id == account_id, AccountCommand.status == CommandStatus.RUNNING)
            .order_by(AccountCommand.id).with_for_update()).all()
        for command in running:
            _rescue(session, command, account, state_dir)
        session.refresh(account)
        if account.status in accounts.SESSION_STATUSES:
            accounts.set_status(session, account_id=account_id, status=AccountStatus.DISCONNECTED,
                                reason=f"its session daemon {dead} stopped", **closed_values())
        elif account.owner is not None:
            _update_account(session, account_id, {"owner": None, "lease_expires_at": None})
    return len(ids)


def _rescue(session: Session, command: AccountCommand, account: WhatsAppAccount, state_dir: str | None) -> str:
    """An orphaned running command, with its account row locked: requeue, fail, or finish it."""
    handler = command.handled_by or "a session daemon"
    if account.desired_state == DesiredState.STOPPED or account.deleted_at is not None:
        # No daemon will claim the account: do here what needs no browser, as `request` does.
        previous = (account.workspace_id, account.status)
        if command.command == CommandKind.LOGOUT:
            result = _logout_without_session(session, account, state_dir, previous)
            _finish(command, CommandStatus.SUCCEEDED, f"{handler} stopped while logging out; {result}")
        elif command.command == CommandKind.DISCONNECT:
            if account.status in accounts.SESSION_STATUSES:
                accounts.set_status(session, account_id=account.id, status=AccountStatus.DISCONNECTED,
                                    reason="operator disconnect", previous=previous, **closed_values())
            _finish(command, CommandStatus.SUCCEEDED, f"disconnected ({handler} stopped while disconnecting)")
        else:
            _finish(command, CommandStatus.FAILED,
                    f"{handler} stopped while running it, and the account is not wanted online any more")
    elif deadline_passed(command.args):
        _finish(command, CommandStatus.FAILED,
                f"{handler} stopped while running it (it no longer holds the account), and the command's "
                "deadline passed")
    else:
        command.status, command.handled_by, command.started_at = CommandStatus.PENDING, None, None
        command.result = f"requeued: {handler} no longer holds the account"
    session.flush()
    return command.result
