"""The sessions a daemon drives: start (staggered), react to provider events, stop, lose.

The claimer decides which accounts this daemon owns; this module runs their sessions and
writes every outcome through the fenced ``StatusWriter``. A write that finds the lease gone
closes that session at once, with no further writes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from sqlalchemy import select

from blazzctl.db import Database
from blazzctl.enums import AccountStatus, CommandKind, CommandStatus, DesiredState
from blazzctl.models import AccountCommand, WhatsAppAccount
from blazzctl.providers import base as p
from daemons.session import inbound, media, metrics
from daemons.session.leases import Lease
from daemons.session.spool import InboundWrites, Spool
from daemons.session.status import LeaseLost, StatusWriter

log = logging.getLogger("blazz.sessions")

MAX_RESTARTS = 5  # consecutive failed starts before an account is marked failed
MAX_STUCK = 3  # pages stuck loading in a row before an account fails with stuck_loading


@dataclass
class Owned:
    account_id: int
    epoch: int
    state: str = "queued"  # queued → starting → live; stopping
    restarts: int = 0
    not_before: float = 0.0  # monotonic time of the next allowed start
    connected: bool = False  # WhatsApp reported ready: messages may be sent
    pair_phone: str | None = None  # the running login shows a pairing code for this phone (None: a QR)
    stuck: int = 0  # sessions in a row whose page never finished loading
    generation: int = 0  # sessions started for this lease: a send handed to page N is known to page N only
    wa_served: str | None = None  # the WhatsApp Web build this session was told to load (None: the live one)
    wa_loaded: str | None = None  # the build its page runs (reported once loaded)


class Sessions:
    def __init__(self, db: Database, writer: StatusWriter, *, stagger: float, messages=None,
                 media_dir=None, spool: Spool | None = None, versions=None) -> None:
        self.db = db
        self.versions = versions  # daemons.session.versions.Versions: the WhatsApp Web build each session loads
        # inbound writes: stored now, or spooled until the database takes them
        self.writes = InboundWrites(db, writer.owner, messages, spool)
        self.messages = messages  # MessagesSettings
        self.media_dir = media_dir  # unused: received media is stored in the database
        self.writer = writer
        self.stagger = stagger
        self.provider: p.Provider | None = None
        self.owned: dict[int, Owned] = {}
        self.released_count = 0  # leases handed back by release() (what the "stopped" line reports)
        self._releasing: dict[int, asyncio.Task] = {}  # background releases under way
        self._background: set[asyncio.Task] = set()  # catch-ups after a session connected, restarts asked for
        self._wake = asyncio.Event()

    # --- ownership, as decided by the claimer ----------------------------------------------

    def adopt(self, lease: Lease) -> None:
        self.owned[lease.account_id] = Owned(lease.account_id, lease.epoch)
        self._wake.set()

    def leases(self) -> dict[int, int]:
        return {a.account_id: a.epoch for a in self.owned.values()}

    async def lose(self, account_id: int) -> None:
        """The lease is gone: close the session now and write nothing more about it."""
        owned = self.owned.pop(account_id, None)
        if owned is None:
            return
        log.warning("lease lost", extra={"account_id": account_id, "epoch": owned.epoch})
        metrics.leases_lost.inc()
        await self._provider_stop(account_id, checkpoint=False)

    async def release(self, account_id: int, *, status: AccountStatus | None = AccountStatus.DISCONNECTED,
                      reason: str | None = None, checkpoint: bool = True) -> None:
        """Close the session (saving its login) and hand the lease back."""
        owned = self.owned.get(account_id)
        if owned is None:
            return
        owned.state = "stopping"
        await self._provider_stop(account_id, checkpoint=checkpoint)
        try:
            await asyncio.to_thread(self.writer.set_status, account_id, owned.epoch, status or AccountStatus.DISCONNECTED,
                                    reason=reason, release=True)
        except LeaseLost:
            log.warning("session closed; its lease was already lost, nothing released",
                        extra={"account_id": account_id, "reason": reason})
            return
        finally:
            if self.owned.get(account_id) is owned:
                self.owned.pop(account_id)
        self.released_count += 1
        log.info("session released", extra={"account_id": account_id, "reason": reason})

    def release_soon(self, account_id: int, *, reason: str) -> None:
        """``release`` in the background: a claim round must not wait while a browser saves its
        login and closes (it would stop renewing every other lease meanwhile)."""
        if account_id in self._releasing or account_id not in self.owned:
            return
        task = asyncio.create_task(self.release(account_id, reason=reason))
        self._releasing[account_id] = task
        task.add_done_callback(lambda _t, a=account_id: self._releasing.pop(a, None))

    def active(self) -> list[int]:
        """Owned accounts not on their way out (what the fair share counts)."""
        return [a for a in self.owned if a not in self._releasing]

    async def release_all(self, *, reason: str) -> None:
        closing = list(self._releasing.values())
        await asyncio.gather(*closing, *(self.release(a, reason=reason) for a in self.active()),
                             return_exceptions=True)

    async def close_all(self) -> None:
        """Self-fencing: close every session without touching the database."""
        ids = list(self.owned)
        self.owned.clear()
        await asyncio.gather(*(self._provider_stop(a, checkpoint=False) for a in ids), return_exceptions=True)

    # --- starting ----------------------------------------------------------------------------

    async def starter_loop(self, stopping: asyncio.Event) -> None:
        """Start queued sessions one at a time, ``stagger`` seconds apart (no stampede)."""
        while not stopping.is_set():
            now = time.monotonic()
            due = [a for a in self.owned.values() if a.state == "queued" and a.not_before <= now]
            if not due:
                self._wake.clear()
                waits = [a.not_before - now for a in self.owned.values() if a.state == "queued"]
                timeout = min(waits) if waits else 1.0
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=max(0.05, min(timeout, 1.0)))
                except asyncio.TimeoutError:
                    pass
                continue
            try:
                await self._start(due[0])
            except Exception:  # e.g. the database went away while recording a failed start
                log.exception("session start crashed; retrying later", extra={"account_id": due[0].account_id})
                if self.owned.get(due[0].account_id) is due[0] and due[0].state == "starting":
                    self.schedule_restart(due[0])
            if self.stagger:
                await asyncio.sleep(self.stagger * random.uniform(0.8, 1.2))

    async def _start(self, owned: Owned) -> None:
        owned.state, owned.connected = "starting", False
        owned.generation += 1
        try:
            spec = await asyncio.to_thread(self._spec, owned)
            owned.pair_phone, owned.wa_served, owned.wa_loaded = spec.pair_phone, spec.wa_version, None
            await asyncio.to_thread(self.writer.set_status, owned.account_id, owned.epoch, AccountStatus.STARTING,
                                    reason="session starting")
            if not self._still_starting(owned):
                return  # released, lost or fenced while the write was in flight: start nothing
            await self.provider.start(spec)
            if self._still_starting(owned):
                owned.state = "live"
                metrics.sessions_started.inc()
                log.info("session started", extra={"account_id": owned.account_id, "epoch": owned.epoch})
            else:  # released or fenced while the provider was starting: leave no orphan session behind
                await self._provider_stop(owned.account_id, checkpoint=False)
        except LeaseLost:
            await self.lose(owned.account_id)
        except Exception as exc:  # a provider failure must never take the daemon down
            log.exception("session start failed", extra={"account_id": owned.account_id})
            await self._failed_start(owned, f"start failed: {exc}")

    def _still_starting(self, owned: Owned) -> bool:
        return self.owned.get(owned.account_id) is owned and owned.state in ("starting", "live")

    def _spec(self, owned: Owned) -> p.SessionSpec:
        with self.db.session() as s:
            acc = s.get(WhatsAppAccount, owned.account_id)
            pending = s.scalars(select(AccountCommand).where(
                AccountCommand.whatsapp_account_id == owned.account_id,
                AccountCommand.command.in_([CommandKind.CONNECT, CommandKind.RECONNECT]),
                AccountCommand.status.in_([CommandStatus.PENDING, CommandStatus.RUNNING]),
            ).order_by(AccountCommand.id.desc())).first()
            pair_phone = (pending.args or {}).get("pair_phone") if pending is not None else None
            build = self.versions.spec_fields(s, acc.id) if self.versions is not None else {}
            return p.SessionSpec(account_id=acc.id, session_id=acc.session_id, workspace_id=acc.workspace_id,
                                 name=acc.name, epoch=owned.epoch, phone_number=acc.phone_number,
                                 pair_phone=pair_phone, **build)

    async def _failed_start(self, owned: Owned, error: str) -> None:
        owned.restarts += 1
        metrics.sessions_failed.inc()
        await self._provider_stop(owned.account_id, checkpoint=False)
        try:
            if owned.restarts >= MAX_RESTARTS:
                await asyncio.to_thread(self.writer.set_status, owned.account_id, owned.epoch, AccountStatus.FAILED,
                                        reason="too_many_restarts", last_error=error[:2000],
                                        desired=DesiredState.STOPPED, release=True)
                self.owned.pop(owned.account_id, None)
                return
            await asyncio.to_thread(self.writer.set_status, owned.account_id, owned.epoch,
                                    AccountStatus.DISCONNECTED, reason="restarting", last_error=error[:2000])
        except LeaseLost:
            await self.lose(owned.account_id)
            return
        except Exception as exc:  # database unreachable: still retry; the lease decides whether it is ours
            log.warning("could not record the failed start", extra={"account_id": owned.account_id,
                                                                     "error": str(exc)[:200]})
        if self.owned.get(owned.account_id) is owned:
            self.schedule_restart(owned)

    def schedule_restart(self, owned: Owned) -> None:
        backoff = min(60.0, 2.0 ** owned.restarts) * random.uniform(0.8, 1.2)
        owned.state, owned.not_before = "queued", time.monotonic() + backoff
        self._wake.set()

    async def restart(self, account_id: int) -> None:
        """Operator reconnect: stop the session (keeping its login) and start it again."""
        owned = self.owned.get(account_id)
        if owned is None:
            return
        owned.state = "stopping"
        await self._provider_stop(account_id, checkpoint=True)
        owned.restarts, owned.state, owned.not_before = 0, "queued", 0.0
        self._wake.set()

    def _restart_soon(self, account_id: int) -> None:
        """``restart`` in the background: saving the login and closing the page takes seconds, and
        the event pump must go on storing every other account's messages meanwhile."""
        task = asyncio.create_task(self.restart(account_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- provider events ------------------------------------------------------------------------

    async def on_event(self, event: p.ProviderEvent) -> None:
        owned = self.owned.get(event.account_id)
        if owned is None or owned.state == "stopping":
            # The page still hears WhatsApp while it closes (or until it learns the lease is
            # gone); what it acknowledged is stored all the same. Status events are ignored.
            write = inbound_write(event)
            if write is not None:
                await self.writes.late(event.account_id, *write)
            return
        try:
            await self._apply(owned, event)
        except LeaseLost:
            await self.lose(event.account_id)

    async def _apply(self, owned: Owned, event: p.ProviderEvent) -> None:
        w, a, e = self.writer, owned.account_id, owned.epoch
        if self.versions is not None and owned.wa_loaded and (
                isinstance(event, p.Failed) and event.reason in ("wa_web_incompatible", "deprecated_version")
                or isinstance(event, p.Disconnected) and event.reason == "stuck_loading"):
            event = await self._build_failed(owned, event)
        if isinstance(event, p.Qr):
            await asyncio.to_thread(w.set_qr, a, e, event.qr, event.expires_at)
        elif isinstance(event, p.PairingCode):
            await asyncio.to_thread(w.set_status, a, e, AccountStatus.QR_SCANNING, reason="pairing_code",
                                    pairing_code=event.code)
        elif isinstance(event, p.Authenticated):
            await asyncio.to_thread(w.set_status, a, e, AccountStatus.AUTHENTICATED)
        elif isinstance(event, p.VersionLoaded):
            reloaded = owned.connected and event.version != owned.wa_loaded  # the page reloaded onto another build
            owned.wa_loaded = event.version
            if self.versions is not None:
                await asyncio.to_thread(self.versions.loaded, event)
            if reloaded:
                await asyncio.to_thread(w.set_status, a, e, AccountStatus.CONNECTED, wa_version=event.version)
        elif isinstance(event, p.Ready):
            owned.restarts, owned.state, owned.connected, owned.stuck = 0, "live", True, 0
            if self.versions is not None and owned.wa_loaded:
                await asyncio.to_thread(self.versions.connected, owned.wa_loaded)
            version = {"wa_version": event.wa_version} if event.wa_version else {}
            await asyncio.to_thread(w.set_status, a, e, AccountStatus.CONNECTED, phone_number=event.phone_number,
                                    push_name=event.push_name, **version)
            log.info("account connected", extra={"account_id": a, "phone": event.phone_number})
            task = asyncio.create_task(self._catch_up(owned))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        elif isinstance(event, p.Disconnected) and event.reason == "stuck_loading" and owned.stuck + 1 >= MAX_STUCK:
            await self._apply(owned, p.Failed(a, reason="stuck_loading", detail=(
                f"WhatsApp Web did not finish loading (hasSynced) {MAX_STUCK} times in a row")))
        elif isinstance(event, p.Disconnected):
            owned.connected = False
            owned.stuck = owned.stuck + 1 if event.reason == "stuck_loading" else 0
            await asyncio.to_thread(w.set_status, a, e, AccountStatus.DISCONNECTED, reason=event.reason,
                                    last_error=event.reason)
            if event.retry:
                owned.restarts += 1
                await self._provider_stop(a, checkpoint=False)
                self.schedule_restart(owned)
        elif isinstance(event, p.LoggedOut):
            # Stay owned ("stopping") until the outcome is written: an account popped while its
            # browser closes is a stray to the claim round, which releases it (desired still
            # running) and claims it again, and the logout is lost.
            owned.state = "stopping"
            await self._provider_stop(a, checkpoint=False)
            try:
                await asyncio.to_thread(w.set_status, a, e, AccountStatus.LOGGED_OUT, reason=event.reason,
                                        desired=DesiredState.STOPPED, release=True)
            finally:
                self._forget(owned)
        elif isinstance(event, p.Failed):
            owned.state = "stopping"  # as for LoggedOut
            await self._provider_stop(a, checkpoint=False)
            try:
                await asyncio.to_thread(w.set_status, a, e, AccountStatus.FAILED, reason=event.reason,
                                        last_error=(event.detail or event.reason)[:2000],
                                        desired=DesiredState.STOPPED, release=True)
            finally:
                self._forget(owned)
            log.warning("account failed", extra={"account_id": a, "reason": event.reason})
            metrics.sessions_failed.inc()
        elif isinstance(event, p.LoginNotArchived):
            text = None if event.detail is None else f"login not archived: {event.detail}"[:2000]
            await asyncio.to_thread(w.note_error, a, e, text)
        elif isinstance(event, p.Restart):
            if owned.state == "live":
                log.info("restarting the session at the provider's request", extra={"account_id": a,
                                                                                     "reason": event.reason})
                self._restart_soon(a)
        elif isinstance(event, p.MessageEvent):
            await self._store_message(owned, event.message)
        elif isinstance(event, (p.MessageEdited, p.MessageRevoked, p.AckEvent)):
            op, args = inbound_write(event)
            await self.writes.write(owned, op, **args)
        else:
            log.debug("event not handled", extra={"account_id": a, "event": type(event).__name__})

    async def _build_failed(self, owned: Owned, event):
        """A failure the page's WhatsApp Web build may cause, attributed to that build. When the
        fleet now wants another build for this account (``auto_pin`` marked this one bad, or
        WhatsApp refused a pinned one), the account is restarted instead of failed."""
        try:
            move = await asyncio.to_thread(self.versions.failed, account_id=owned.account_id, version=owned.wa_loaded,
                                           served=owned.wa_served, reason=event.reason,
                                           detail=getattr(event, "detail", None))
        except Exception as exc:  # the database is away: the failure stands as it is
            log.warning("could not record a WhatsApp Web build failure", extra={"account_id": owned.account_id,
                                                                                 "error": str(exc)[:200]})
            return event
        if not move:
            return event
        owned.stuck = 0
        return p.Disconnected(owned.account_id, retry=True, reason=f"{event.reason} on WhatsApp Web {owned.wa_loaded}: "
                                                                     "restarting on another build")

    async def _store_message(self, owned: Owned, message: dict) -> bool | None:
        """Store one message from the page (its media first); True when it was new."""
        a = owned.account_id
        if self.messages is not None and self.messages.download_media:
            message = await media.attach(self.provider, a, message,
                                         max_bytes=int(self.messages.max_download_mb * 1024 * 1024))
        stored = await self.writes.write(owned, "store", message=message)
        if stored and self.messages is not None and self.messages.auto_read and not message.get("from_me") \
                and message.get("type") != "ciphertext":
            await self._auto_read(owned, message)
        return stored

    async def _catch_up(self, owned: Owned) -> None:
        """Once connected, store what the page holds that the database missed: messages heard by
        an earlier session that died before storing them (a SIGKILL between the page's
        acknowledgement and the write), or while no session ran. Idempotent by WhatsApp id."""
        a = owned.account_id
        try:
            since = await asyncio.to_thread(inbound.catch_up_since, self.db, a)
            views = [] if since is None else await self.provider.recent_messages(a, since)
            stored = 0
            for view in views:
                if self.owned.get(a) is not owned or not owned.connected:
                    return
                stored += bool(await self._store_message(owned, view))
        except LeaseLost:
            await self.lose(a)
            return
        except Exception as exc:  # the next start tries again; the spool covers failed writes
            log.warning("catch-up failed", extra={"account_id": a, "error": str(exc)[:200]})
            return
        if stored:
            log.info("caught up messages the database had missed", extra={"account_id": a, "count": stored})
            metrics.inbound_caught_up.inc(stored)

    async def read_chat(self, account_id: int, command_id: int) -> tuple[bool, str]:
        """Send the read receipt a ``read_chat`` command asks for; (done, what happened)."""
        jid = await asyncio.to_thread(self._command_chat, command_id)
        owned = self.owned.get(account_id)
        if owned is None or not owned.connected:
            return False, "the account is not connected"
        try:
            await self.provider.send_seen(account_id, jid)
        except Exception as exc:  # the page refused or is gone: say so in the command's result
            text = str(exc).strip()
            return False, f"read receipt failed: {text.splitlines()[0][:200] if text else repr(exc)}"
        return True, f"read receipt sent for {jid}"

    def _command_chat(self, command_id: int) -> str:
        with self.db.session() as s:
            return (s.scalar(select(AccountCommand.args).where(AccountCommand.id == command_id)) or {}).get("chat", "")

    async def _auto_read(self, owned: Owned, message: dict) -> None:
        """``messages.auto_read``: a stored incoming message is read at once (receipt, unread count 0)."""
        try:
            await self.provider.send_seen(owned.account_id, message["remote"])
            await asyncio.to_thread(inbound.mark_read, self.db, owner=self.writer.owner, epoch=owned.epoch,
                                    account_id=owned.account_id, jid=message["remote"])
        except LeaseLost:
            raise
        except Exception as exc:
            log.warning("auto read failed", extra={"account_id": owned.account_id, "error": str(exc)[:200]})

    def _forget(self, owned: Owned) -> None:
        if self.owned.get(owned.account_id) is owned:
            self.owned.pop(owned.account_id)

    async def _provider_stop(self, account_id: int, *, checkpoint: bool) -> None:
        if self.provider is None:
            return
        try:
            await self.provider.stop(account_id, checkpoint=checkpoint)
        except Exception:
            log.exception("session stop failed", extra={"account_id": account_id})


def inbound_write(event: p.ProviderEvent) -> tuple[str, dict] | None:
    """The inbound write (``spool.InboundWrites``) an event asks for, or None (a status event)."""
    if isinstance(event, p.MessageEvent):
        return "store", {"message": event.message}
    if isinstance(event, p.MessageEdited):
        return "edit", {"wa_message_id": event.wa_message_id, "body": event.body, "edited_at": event.edited_at}
    if isinstance(event, p.MessageRevoked):
        return "revoke", {"wa_message_id": event.wa_message_id}
    if isinstance(event, p.AckEvent):
        return "ack", {"wa_message_id": event.wa_message_id, "ack": event.ack}
    return None
