"""Operator commands (``account_commands`` rows) for the accounts this daemon owns."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import select, update

from blazzctl.db import Database, db_now
from blazzctl.enums import AccountStatus, CommandKind, CommandStatus, DesiredState
from blazzctl.models import AccountCommand, WhatsAppAccount
from daemons.session.sessions import Sessions
from daemons.session.status import LeaseLost

log = logging.getLogger("blazz.commands")


def take_pending(db: Database, *, owner: str, account_ids: list[int]) -> list[tuple[int, int, CommandKind]]:
    """Mark the pending commands of these accounts running; returns (command id, account id, kind)."""
    if not account_ids:
        return []
    with db.read() as s:  # the common case, nothing pending, costs one statement
        if s.scalar(select(AccountCommand.id).where(AccountCommand.whatsapp_account_id.in_(account_ids),
                                                    AccountCommand.status == CommandStatus.PENDING).limit(1)) is None:
            return []
    with db.session() as s:
        rows = s.execute(select(AccountCommand.id, AccountCommand.whatsapp_account_id, AccountCommand.command)
                         .where(AccountCommand.whatsapp_account_id.in_(account_ids),
                                AccountCommand.status == CommandStatus.PENDING)
                         .order_by(AccountCommand.id)).all()
        if rows:
            s.execute(update(AccountCommand).where(AccountCommand.id.in_([r.id for r in rows]),
                                                   AccountCommand.status == CommandStatus.PENDING)
                      .values(status=CommandStatus.RUNNING, handled_by=owner, started_at=db_now())
                      .execution_options(synchronize_session=False))
    return [(r.id, r.whatsapp_account_id, r.command) for r in rows]


def account_status(db: Database, account_id: int) -> AccountStatus:
    with db.session() as s:
        return s.scalar(select(WhatsAppAccount.status).where(WhatsAppAccount.id == account_id))


def _login_state(db: Database, account_id: int, command_id: int) -> tuple[AccountStatus, str | None]:
    """(account status, the phone this connect command asks a pairing code for, or None for a QR)."""
    with db.session() as s:
        status = s.scalar(select(WhatsAppAccount.status).where(WhatsAppAccount.id == account_id))
        args = s.scalar(select(AccountCommand.args).where(AccountCommand.id == command_id)) or {}
        return status, args.get("pair_phone")


async def run_pending(db: Database, sessions: Sessions, owner: str) -> bool:
    """Carry out what operators asked of our accounts since the last poll; True when there was any."""
    taken = await asyncio.to_thread(take_pending, db, owner=owner, account_ids=list(sessions.owned))
    for command_id, account_id, kind in taken:
        log.info("command", extra={"account_id": account_id, "command": str(kind), "command_id": command_id})
        try:
            await _run_one(db, sessions, command_id, account_id, kind)
        except LeaseLost:
            await sessions.lose(account_id)
    return bool(taken)


async def _run_one(db: Database, sessions: Sessions, command_id: int, account_id: int, kind: CommandKind) -> None:
    writer = sessions.writer
    owned = sessions.owned.get(account_id)
    if owned is None:  # lost or released meanwhile: the next owner sees nothing pending
        await asyncio.to_thread(writer.finish_command, command_id, CommandStatus.FAILED, "account not owned any more")
        return
    if kind == CommandKind.CONNECT:
        # The session is starting or live already; the status writer finishes the command
        # when the account connects or fails. Finish now only if it is connected already.
        status, pair_phone = await asyncio.to_thread(_login_state, db, account_id, command_id)
        if status == AccountStatus.CONNECTED:
            await asyncio.to_thread(writer.finish_command, command_id, CommandStatus.SUCCEEDED, "connected")
        elif status == AccountStatus.QR_SCANNING and pair_phone != owned.pair_phone:
            # The login waiting is not the one asked for: a QR where a pairing code is wanted, a code
            # where a QR is wanted, or a code for another phone. Start it again in the asked-for way.
            await sessions.restart(account_id)
    elif kind == CommandKind.RECONNECT:
        await sessions.restart(account_id)
    elif kind == CommandKind.DISCONNECT:
        await sessions.release(account_id, reason="operator disconnect")
        await asyncio.to_thread(writer.finish_command, command_id, CommandStatus.SUCCEEDED, "disconnected")
    elif kind == CommandKind.LOGOUT:
        await _logout(sessions, owned.account_id, owned.epoch)


async def _logout(sessions: Sessions, account_id: int, epoch: int) -> None:
    owned = sessions.owned.pop(account_id, None)
    if owned is not None and sessions.provider is not None:
        try:
            await sessions.provider.logout(account_id)
        except Exception:
            log.exception("provider logout failed", extra={"account_id": account_id})
    await asyncio.to_thread(sessions.writer.set_status, account_id, epoch, AccountStatus.LOGGED_OUT,
                            reason="operator logout", desired=DesiredState.STOPPED, release=True)
