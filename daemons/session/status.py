"""Fenced writes of what happens to an owned account: status, QR, errors, command outcomes.

Each write is one transaction conditioned on ``(owner, lease_epoch)``. When it changes no
row the lease is lost: ``LeaseLost`` is raised, the transaction rolls back, and the caller
closes that account's session at once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from blazzctl.db import Database, db_now, retry_conflicts
from blazzctl.enums import AccountStatus, CommandKind, CommandStatus, DesiredState
from blazzctl.models import AccountCommand, WhatsAppAccount, Workspace
from blazzctl.services import accounts, auth_archives, events
from daemons.session.leases import fenced_update


class LeaseLost(Exception):
    """A fenced write changed nothing: another daemon owns the account now."""

    def __init__(self, account_id: int) -> None:
        super().__init__(f"lease on account {account_id} lost")
        self.account_id = account_id


# Which outcome finishes which pending operator command.
_FINISHES = {
    AccountStatus.CONNECTED: ({CommandKind.CONNECT, CommandKind.RECONNECT}, CommandStatus.SUCCEEDED),
    AccountStatus.FAILED: ({CommandKind.CONNECT, CommandKind.RECONNECT}, CommandStatus.FAILED),
    AccountStatus.DISCONNECTED: ({CommandKind.DISCONNECT}, CommandStatus.SUCCEEDED),
    AccountStatus.LOGGED_OUT: ({CommandKind.CONNECT, CommandKind.RECONNECT, CommandKind.LOGOUT},
                               CommandStatus.SUCCEEDED),
}


class StatusWriter:
    def __init__(self, db: Database, owner: str) -> None:
        self.db = db
        self.owner = owner

    @retry_conflicts
    def set_status(self, account_id: int, epoch: int, status: AccountStatus, *, reason: str | None = None,
                   release: bool = False, desired: DesiredState | None = None, **extra: Any) -> None:
        """Record a status change (and its webhook event: ``accounts.set_status``) in one fenced
        transaction."""
        values: dict[str, Any] = {"last_activity_at": db_now(), **extra}
        status_reason = reason
        if status == AccountStatus.CONNECTED:
            values.update(connected_at=db_now(), qr_code=None, qr_expires_at=None, pairing_code=None,
                          last_error=None)
        elif status in (AccountStatus.DISCONNECTED, AccountStatus.FAILED, AccountStatus.LOGGED_OUT):
            values.update(disconnected_at=db_now(), qr_code=None, qr_expires_at=None, pairing_code=None)
        elif status == AccountStatus.STARTING:  # a new session: the last one's QR or pairing code is void
            values.update(qr_code=None, qr_expires_at=None, pairing_code=None)
        if status == AccountStatus.LOGGED_OUT:  # not linked any more: messages to it are refused
            values.update(auth_saved_at=None, connected_at=None)
        if desired is not None:
            values["desired_state"] = desired
        if release:
            values.update(owner=None, lease_expires_at=None)
        with self.db.session() as s:
            account = s.execute(select(WhatsAppAccount.workspace_id, WhatsAppAccount.status,
                                       WhatsAppAccount.phone_number)
                                .where(WhatsAppAccount.id == account_id)).one()
            needs_primary = False
            if status == AccountStatus.CONNECTED:
                status_reason = phone_warning(account.phone_number, extra.get("phone_number")) or reason
                # On MariaDB every account UPDATE takes a shared lock on its workspace row (foreign
                # key). Promoting a primary needs the exclusive lock: taken after the account UPDATE,
                # two connects of one workspace deadlock; held while a workspace has a primary already,
                # it would serialise every status write of the workspace. So: only when there is no
                # primary (a non-locking read), and then before the account UPDATE.
                needs_primary = s.scalars(select(WhatsAppAccount.id).where(
                    WhatsAppAccount.primary_workspace_id == account.workspace_id).limit(1)).first() is None
                if needs_primary:
                    s.execute(select(Workspace.id).where(Workspace.id == account.workspace_id).with_for_update())
            if not accounts.set_status(s, account_id=account_id, status=status, reason=status_reason,
                                       previous=(account.workspace_id, account.status),
                                       write=self._fenced(s, account_id, epoch), **values):
                raise LeaseLost(account_id)
            if needs_primary:
                accounts.promote_if_no_primary(s, account_id=account_id, workspace_id=account.workspace_id)
            if status == AccountStatus.LOGGED_OUT:  # the login is gone: so are its archives
                auth_archives.delete_in(s, account_id=account_id)
            finishes = _FINISHES.get(status)
            if finishes:
                self._finish_commands(s, account_id, finishes[0], finishes[1], reason or str(status))

    @retry_conflicts
    def note_error(self, account_id: int, epoch: int, text: str | None) -> None:
        """Put a problem in the account's ``last_error`` (None: clear it) without changing its status
        (no webhook)."""
        with self.db.session() as s:
            if not fenced_update(s, account_id=account_id, owner=self.owner, epoch=epoch,
                                 values={"last_error": text}):
                raise LeaseLost(account_id)

    @retry_conflicts
    def set_qr(self, account_id: int, epoch: int, qr: str, expires_at: datetime) -> None:
        with self.db.session() as s:
            workspace_id, previous = s.execute(select(WhatsAppAccount.workspace_id, WhatsAppAccount.status)
                                               .where(WhatsAppAccount.id == account_id)).one()
            if not accounts.set_status(s, account_id=account_id, status=AccountStatus.QR_SCANNING, reason=None,
                                       previous=(workspace_id, previous), write=self._fenced(s, account_id, epoch),
                                       qr_code=qr, qr_expires_at=expires_at, last_activity_at=db_now()):
                raise LeaseLost(account_id)
            _record_event(s, "account.qr", workspace_id, account_id,
                          {"qr": qr, "expires_at": expires_at.isoformat()})

    @retry_conflicts
    def set_fields(self, account_id: int, epoch: int, **values: Any) -> None:
        with self.db.session() as s:
            if not fenced_update(s, account_id=account_id, owner=self.owner, epoch=epoch, values=values):
                raise LeaseLost(account_id)

    def _fenced(self, session, account_id: int, epoch: int):
        """The UPDATE of ``accounts.set_status``, conditioned on our lease."""
        return lambda values: fenced_update(session, account_id=account_id, owner=self.owner, epoch=epoch,
                                            values=values)

    def finish_command(self, command_id: int, status: CommandStatus, result: str | None = None) -> None:
        """Finish a command we are running; a finished one keeps its outcome (the account's
        failure, say, which finished it while it was being handled), and one requeued or taken
        over by the account's next owner (after we lost the lease) is theirs to finish."""
        with self.db.session() as s:
            s.execute(update(AccountCommand).where(
                AccountCommand.id == command_id, AccountCommand.handled_by == self.owner,
                AccountCommand.status == CommandStatus.RUNNING,
            ).values(status=status, result=result, finished_at=db_now()).execution_options(synchronize_session=False))

    @staticmethod
    def _finish_commands(s, account_id: int, kinds: set[CommandKind], status: CommandStatus, result: str) -> None:
        s.execute(update(AccountCommand).where(
            AccountCommand.whatsapp_account_id == account_id, AccountCommand.command.in_(kinds),
            AccountCommand.status.in_([CommandStatus.PENDING, CommandStatus.RUNNING]),
        ).values(status=status, result=result, finished_at=db_now()).execution_options(synchronize_session=False))


def phone_warning(entered: str | None, linked: str | None) -> str | None:
    """The warning kept in ``status_reason`` when the phone that linked is not the number the
    operator entered (or the one linked before): the linked number wins, since it is the one
    that sends."""
    if not entered or not linked or entered == linked:
        return None
    return f"WARNING: the linked phone is {linked}, not {entered} as entered; blazz keeps {linked}"


def _record_event(session, type_: str, workspace_id: int, account_id: int, data: dict) -> None:
    """Queue a webhook event in this transaction (the outbox): it exists only if the change commits."""
    events.record(session, type=type_, workspace_id=workspace_id, account_id=account_id, data=data)
