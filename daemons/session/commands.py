"""Operator commands (``account_commands`` rows) for the accounts this daemon owns.

A command is ours while we hold its account's lease at the epoch we took it under
(``Taken``). Any other ``running`` command of an account we own was taken by a daemon that
died, stalled past its lease or handed the account on (or by our own previous incarnation):
we take it over and run it again, as the first owner never finished it. Every daemon also
settles, now and then, the accounts no daemon will claim again whose owner died holding them
(`services.commands.recover_stopped_accounts`).
"""

from __future__ import annotations

import asyncio
import logging
import time

from sqlalchemy import select, update

from blazzctl.db import Database, db_now
from blazzctl.enums import AccountStatus, CommandKind, CommandStatus, DesiredState
from blazzctl.models import AccountCommand, WhatsAppAccount
from blazzctl.services import commands as command_service
from blazzctl.services.accounts import new_session_id
from daemons.session.sessions import Sessions
from daemons.session.status import LeaseLost

log = logging.getLogger("blazz.commands")

C = AccountCommand
SWEEP_INTERVAL = 10.0  # seconds between passes (by any daemon) over accounts whose daemon died holding them
# Commands that act in the page: taken while the account's session is coming up (just claimed,
# e.g. taken over from a dead daemon), they wait for it, up to PAGE_WAIT seconds; a logout run
# before the page is up could not tell WhatsApp, and the phone would keep listing the device.
NEEDS_PAGE = (CommandKind.LOGOUT, CommandKind.READ_CHAT)
PAGE_WAIT = 60.0


class Taken:
    """The commands this process took, by id: (account id, lease epoch it was taken under)."""

    def __init__(self) -> None:
        self.by_id: dict[int, tuple[int, int]] = {}
        self.waiting: dict[int, tuple[int, CommandKind, float]] = {}  # NEEDS_PAGE: (account, kind, since)
        self.next_sweep = 0.0

    def mine(self, owned: dict[int, int]) -> set[int]:
        """Ids still ours: their account is owned at the same epoch. Forgets the others."""
        self.by_id = {c: (a, e) for c, (a, e) in self.by_id.items() if owned.get(a) == e}
        return set(self.by_id)

    def keep(self, ids: set[int]) -> None:
        """Forget the commands that are finished (not in ``ids``)."""
        self.by_id = {c: v for c, v in self.by_id.items() if c in ids}
        self.waiting = {c: v for c, v in self.waiting.items() if c in self.by_id}


_taken: dict[str, Taken] = {}  # by daemon name (one per process; a name per test daemon)


def take_pending(db: Database, *, owner: str, account_ids: list[int],
                 mine: set[int] | None = None) -> list[tuple[int, int, CommandKind]]:
    """Mark the pending commands of these accounts running, and take over running ones that are
    not in ``mine``; returns (command id, account id, kind). One past its deadline fails instead.
    Ids no longer pending or running are removed from ``mine`` (the caller's set)."""
    if not account_ids:
        return []
    mine = mine if mine is not None else set()
    with db.read() as s:  # one statement; it finds only open commands (few), through the index
        open_rows = s.execute(select(C.id, C.status).where(C.whatsapp_account_id.in_(account_ids),
                                                           C.status.in_(command_service.OPEN))).all()
    mine.intersection_update(r.id for r in open_rows)
    wanted = [r.id for r in open_rows if r.status == CommandStatus.PENDING or r.id not in mine]
    if not wanted:
        return []
    taken = []
    with db.session() as s:
        rows = s.execute(select(C.id, C.whatsapp_account_id, C.command, C.status, C.handled_by, C.args)
                         .where(C.id.in_(wanted), C.status.in_(command_service.OPEN))
                         .order_by(C.id).with_for_update()).all()
        for r in rows:
            orphan = r.status == CommandStatus.RUNNING
            if command_service.deadline_passed(r.args):
                why = (f"{r.handled_by} stopped while running it, and the command's deadline passed" if orphan
                       else "its deadline passed before a session daemon could run it")
                s.execute(update(C).where(C.id == r.id).values(status=CommandStatus.FAILED, result=why,
                                                                finished_at=db_now()))
                log.warning("command expired", extra={"account_id": r.whatsapp_account_id, "command_id": r.id})
                continue
            s.execute(update(C).where(C.id == r.id).values(status=CommandStatus.RUNNING, handled_by=owner,
                                                            started_at=db_now(), result=None))
            if orphan:
                log.warning("command taken over", extra={"account_id": r.whatsapp_account_id, "command_id": r.id,
                                                         "from": r.handled_by})
            taken.append((r.id, r.whatsapp_account_id, r.command))
    return taken


def sweep(db: Database, state_dir: str | None) -> int:
    with db.read() as s:  # one statement when there is nothing to do (always, but for crashes)
        if s.scalar(command_service.left_by_dead_daemons(1)) is None:
            return 0
    with db.session() as s:
        return command_service.recover_stopped_accounts(s, state_dir=state_dir)


def account_status(db: Database, account_id: int) -> AccountStatus:
    with db.session() as s:
        return s.scalar(select(WhatsAppAccount.status).where(WhatsAppAccount.id == account_id))


def _login_state(db: Database, account_id: int, command_id: int) -> tuple[AccountStatus, str | None]:
    """(account status, the phone this connect command asks a pairing code for, or None for a QR)."""
    with db.session() as s:
        status = s.scalar(select(WhatsAppAccount.status).where(WhatsAppAccount.id == account_id))
        args = s.scalar(select(AccountCommand.args).where(AccountCommand.id == command_id)) or {}
        return status, args.get("pair_phone")


async def run_pending(db: Database, sessions: Sessions, owner: str, *, state_dir: str | None = None,
                      sweep_every: float = SWEEP_INTERVAL) -> bool:
    """Carry out what operators asked of our accounts since the last poll; True when there was any.

    Also, every ``sweep_every`` seconds (``SWEEP_INTERVAL`` times the live daemons: the fleet as a
    whole looks every ``SWEEP_INTERVAL``), settle accounts whose daemon died holding them (owning
    nothing is no reason to skip it: those accounts have no owner to do it)."""
    state = _taken.setdefault(owner, Taken())
    if time.monotonic() >= state.next_sweep:
        state.next_sweep = time.monotonic() + sweep_every
        settled = await asyncio.to_thread(sweep, db, state_dir)
        if settled:
            log.warning("settled accounts left by a dead daemon", extra={"accounts": settled})
    owned = sessions.leases()
    mine = state.mine(owned)
    taken = await asyncio.to_thread(take_pending, db, owner=owner, account_ids=list(owned), mine=mine)
    state.keep(mine)
    for command_id, account_id, kind in taken:
        state.by_id[command_id] = (account_id, owned[account_id])
        log.info("command", extra={"account_id": account_id, "command": str(kind), "command_id": command_id})
    due = [(c, a, k) for c, (a, k, _since) in state.waiting.items()] + taken
    for command_id, account_id, kind in due:
        if kind in NEEDS_PAGE and await _wait_for_page(db, sessions, state, command_id, account_id, kind):
            continue
        state.waiting.pop(command_id, None)
        try:
            await _run_one(db, sessions, command_id, account_id, kind)
        except LeaseLost:
            await sessions.lose(account_id)
    return bool(taken or state.waiting)


async def _wait_for_page(db: Database, sessions: Sessions, state: Taken, command_id: int, account_id: int,
                         kind: CommandKind) -> bool:
    """True (and the command waits) while the account's session is coming up with what may be a
    valid login: claimed and not started yet, or starting, or authenticated. A login that shows a
    QR has nothing to tell WhatsApp: the command runs."""
    since = state.waiting.get(command_id, (account_id, kind, time.monotonic()))[2]
    owned = sessions.owned.get(account_id)
    if owned is None or owned.connected or time.monotonic() - since > PAGE_WAIT:
        return False
    status = await asyncio.to_thread(account_status, db, account_id)
    if owned.state in ("queued", "starting") or status in (AccountStatus.STARTING, AccountStatus.AUTHENTICATED):
        if command_id not in state.waiting:
            log.info("command waits for the session", extra={"account_id": account_id, "command_id": command_id})
        state.waiting[command_id] = (account_id, kind, since)
        return True
    return False


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
        await _logout(sessions, account_id, owned.epoch)
    elif kind == CommandKind.READ_CHAT:
        ok, result = await sessions.read_chat(account_id, command_id)
        await asyncio.to_thread(writer.finish_command, command_id,
                                CommandStatus.SUCCEEDED if ok else CommandStatus.FAILED, result)


async def _logout(sessions: Sessions, account_id: int, epoch: int) -> None:
    """Unlink in the page, then record logged_out (deleting the archives) and hand the lease back.

    The account stays owned ("stopping") until that write: popped while the browser logs out
    (seconds), it is a stray to the claim round, which releases the lease (desired state still
    running), fencing our write out, and a daemon claims it again and restores the archive:
    the logout undone. A new ``session_id`` leaves any other copy of the profile unused.
    """
    owned = sessions.owned.get(account_id)
    if owned is None:
        return
    owned.state, owned.connected = "stopping", False
    try:
        if sessions.provider is not None:
            try:
                await sessions.provider.logout(account_id)
            except Exception:
                log.exception("provider logout failed", extra={"account_id": account_id})
        await asyncio.to_thread(sessions.writer.set_status, account_id, epoch, AccountStatus.LOGGED_OUT,
                                reason="operator logout", desired=DesiredState.STOPPED, release=True,
                                session_id=new_session_id())
    finally:
        if sessions.owned.get(account_id) is owned:
            sessions.owned.pop(account_id)
