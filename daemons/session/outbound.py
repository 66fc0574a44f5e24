"""The outbound sender: queued messages of our connected accounts, sent exactly once.

Exactly once across crashes, by evidence: a message gets its WhatsApp id and the status
``sending`` (committed, fenced by the lease), then ``handed`` just before it is handed to the
page. A message found ``sending`` was never handed over: it is sent (after asking the page, which
costs nothing). A message found ``handed`` may be in WhatsApp: if the very page it was handed to
is still running, that page's answer to "do you have this id" settles it; any other page (a new
owner's, restored from an archive that may predate the send; a restarted one) is asked for up
to ``messages.resolve_timeout`` (an ack arriving meanwhile settles it too), and then the message
ends ``unknown`` for the operator (``message resend`` / ``message cancel``): never a blind
second send. The login is archived after each batch of sends, so a takeover usually finds them.

Never late: a pending message older than ``messages.pending_ttl`` fails as ``expired``
instead of being sent (checked when it is prepared). Every daemon also expires overdue
messages of every account, owned by anyone or by no one, once a minute: an account that
never comes back has no owner to do it (`services.pending`).
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import case, exists, or_, select, update

from blazzctl.db import Database, db_now
from blazzctl.enums import MessageStatus
from blazzctl.models import Message, WhatsAppAccount
from blazzctl.providers import base as p
from blazzctl.services import events, message_media, pending
from daemons.session import inbound, metrics
from daemons.session.status import LeaseLost
from daemons.session.pacing import IdleBackoff
from daemons.session.ratelimit import TokenBucket
from daemons.session.sessions import Sessions

log = logging.getLogger("blazz.outbound")

BATCH = 100
IDLE_POLL = 3.0  # seconds between polls once nothing has been due for a while (idle load)
RESOLVE_EVERY = 2.0  # seconds between asks about a handed message another page may know
EXPIRE_EVERY = 60.0  # seconds between passes expiring overdue pending messages (shorter for a short TTL)
PERMANENT = ("wid error", "invalid wid", "No LID for user", "media unreadable")
# a WhatsApp Web release renamed or removed a module the bridge uses
UNKNOWN_MODULE = re.compile(r'Requiring unknown module "?([\w$.-]+)')


@dataclass(frozen=True)
class Ready:
    """A message committed as ``sending`` with its WhatsApp id: what the send needs."""

    wa_id: str
    resend_check: bool  # it was ``sending`` already: ask WhatsApp before sending again
    payload: dict
    workspace_id: int
    uuid: str
    handed: bool = False  # it was ``handed`` already: settle by evidence before anything else


@dataclass(frozen=True)
class Job:
    message_id: int
    account_id: int
    epoch: int


def new_msg_id() -> str:
    """A WhatsApp Web style message id (``3EB0`` + hex), chosen before the send."""
    return "3EB0" + secrets.token_hex(9).upper()


class Outbound:
    def __init__(self, db: Database, sessions: Sessions, owner: str, settings, *,
                 deadline=None, send_margin: float = 0.0, fleet_share=None) -> None:
        # deadline(): wall-clock time until which our leases are confirmed (the fence deadline), or None
        self.deadline = deadline or (lambda: None)
        # fleet_share(s): this daemon's interval for fleet-wide work due every s (Claimer.fleet_share)
        self.fleet_share = fleet_share or (lambda seconds: seconds)
        self.send_margin = send_margin
        self.db = db
        self.sessions = sessions
        self.owner = owner
        self.cfg = settings
        self.buckets: dict[int, TokenBucket] = {}
        self.busy: set[int] = set()  # accounts with a send in flight (one at a time per account)
        self.handed_here: dict[int, tuple[int, int]] = {}  # message → (epoch, page generation) it went to
        self.resolving: dict[int, float] = {}  # message → monotonic time we began asking about it
        self.archiving: dict[int, asyncio.Task] = {}  # account → its login archive after a batch
        self.backoff = IdleBackoff(settings.poll_interval, max(IDLE_POLL, settings.poll_interval))

    async def loop(self, stopping: asyncio.Event) -> None:
        tasks: set[asyncio.Task] = set()
        expire_at = 0.0  # monotonic time of the next expiry pass: the first one at start
        while not stopping.is_set():
            found = 0
            if time.monotonic() >= expire_at:
                expire_at = time.monotonic() + await self._expire_pass()
            try:
                accounts = {a: o.epoch for a, o in self.sessions.owned.items() if o.connected and a not in self.busy}
                if accounts:
                    jobs = await asyncio.to_thread(self.due, list(accounts))
                    found = len(jobs)
                    for account_id, message_ids in jobs.items():
                        self.busy.add(account_id)
                        task = asyncio.create_task(self._drain(account_id, accounts[account_id], message_ids))
                        tasks.add(task)
                        task.add_done_callback(tasks.discard)
            except Exception as exc:
                log.warning("outbound poll failed", extra={"error": str(exc)[:200]})
            try:
                await asyncio.wait_for(stopping.wait(), timeout=self.backoff.found(found > 0))
            except asyncio.TimeoutError:
                pass
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _expire_pass(self) -> float:
        """Expire overdue pending messages (any account's); returns seconds until the next pass.
        The fleet as a whole makes a pass every ``EXPIRE_EVERY`` (shorter for a short TTL)."""
        every = self.fleet_share(min(EXPIRE_EVERY, max(1.0, self.cfg.pending_ttl / 4)))
        try:
            expired = await asyncio.to_thread(self.expire)
        except Exception as exc:  # the database is away: the next pass catches up
            log.warning("expiring pending messages failed", extra={"error": str(exc)[:200]})
            return every
        if expired:
            log.info("pending messages expired", extra={"count": len(expired), "ttl_s": self.cfg.pending_ttl})
        return 0.0 if len(expired) >= pending.EXPIRE_BATCH else every  # a full batch: more are overdue

    def expire(self) -> list[int]:
        with self.db.session() as s:
            return pending.expire_overdue(s, ttl=self.cfg.pending_ttl)

    def due(self, account_ids: list[int]) -> dict[int, list[int]]:
        """Due messages of these accounts, oldest first, grouped by account."""
        with self.db.read() as s:
            rows = s.execute(select(Message.id, Message.whatsapp_account_id).where(
                Message.whatsapp_account_id.in_(account_ids),
                Message.status.in_([MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.HANDED]),
                or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= db_now()),
            ).order_by(Message.id).limit(BATCH)).all()
        jobs: dict[int, list[int]] = {}
        for message_id, account_id in rows:
            jobs.setdefault(account_id, []).append(message_id)
        return jobs

    async def _drain(self, account_id: int, epoch: int, message_ids: list[int]) -> None:
        handed = 0
        try:
            for message_id in message_ids:
                owned = self.sessions.owned.get(account_id)
                if owned is None or owned.epoch != epoch or not owned.connected:
                    return
                await self._pace(account_id)
                deadline = self.deadline()
                if deadline is not None and deadline - time.time() < self.send_margin:
                    return  # leases unconfirmed for a while: nothing is prepared until a renewal
                handed += bool(await self.send_one(Job(message_id, account_id, epoch)))
        except LeaseLost:
            await self.sessions.lose(account_id)
        finally:
            self.busy.discard(account_id)
            if handed:
                self._archive_soon(account_id)

    def _archive_soon(self, account_id: int) -> None:
        """Archive the login now that it holds new sends: a takeover then restores a page that
        knows them, and settles them as sent instead of unknown. One at a time per account."""
        running = self.archiving.get(account_id)
        if running is not None and not running.done():
            return
        task = asyncio.create_task(self.sessions.provider.checkpoint(account_id))
        self.archiving[account_id] = task
        task.add_done_callback(lambda t, a=account_id: self.archiving.pop(a, None) if self.archiving.get(a) is t
                               else None)

    async def _pace(self, account_id: int) -> None:
        bucket = self.buckets.get(account_id)
        if bucket is None:
            bucket = self.buckets[account_id] = TokenBucket(self.cfg.rate_per_minute, self.cfg.burst, self.cfg.jitter)
        while (wait := bucket.wait_time()) > 0:
            await asyncio.sleep(wait)
        bucket.take()

    async def send_one(self, job: Job) -> bool:
        """Send one message; True when it was handed to the page."""
        provider = self.sessions.provider
        ready = await asyncio.to_thread(self.prepare, job)
        if ready is None:
            return False
        started = time.monotonic()
        try:
            if ready.handed:
                settled = await self._settle(job, ready)
                if settled is not False:  # sent, unknown or still being asked: not sent again now
                    return False
                log.info("the page it was handed to does not have it: sending it again",
                         extra={"message_id": job.message_id})
            elif ready.resend_check and await provider.message_exists(job.account_id, ready.wa_id):
                await asyncio.to_thread(self.mark_sent, job, ready, ready.wa_id)
                log.info("message was already sent; not sending again", extra={"message_id": job.message_id})
                return False
            jid = ready.payload["to"]
            if jid.endswith("@c.us"):
                # WhatsApp may know the number under another id (Brazil's 9th digit, Mexico's 1):
                # send to the id it answers, never to the typed one ("No LID for user").
                canonical = await provider.resolve_number(job.account_id, jid.split("@")[0])
                if canonical is None:
                    await asyncio.to_thread(self.fail, job, "not_on_whatsapp")
                    return False
                if canonical != jid:
                    ready = await asyncio.to_thread(self.readdress, job, ready, canonical)
                    if ready is None:  # cancelled or expired meanwhile
                        return False
            payload = await asyncio.to_thread(self.with_stored_media, job, ready.payload)
            owned = self.sessions.owned.get(job.account_id)
            if owned is None or owned.epoch != job.epoch:
                return False  # lost meanwhile (found by a renewal while we got here): the next owner sends it
            deadline = self.deadline()
            if deadline is not None:
                if deadline - time.time() < self.send_margin:
                    # Too little lease left to be sure the send ends before another daemon may
                    # take over: not now. It stays `sending` (with its id), so whoever sends it
                    # next asks WhatsApp first.
                    log.info("send deferred: too little lease left", extra={
                        "message_id": job.message_id, "left_s": round(deadline - time.time(), 2)})
                    return False
                payload = {**payload, "deadline": deadline}  # the page refuses the send after it
            if not await asyncio.to_thread(self.hand, job):
                return False  # cancelled or moved on meanwhile
            self.handed_here[job.message_id] = (job.epoch, owned.generation)
            result = await provider.send_message(job.account_id, payload)
        except LeaseLost:
            raise
        except p.LeaseDeadline:
            log.warning("the page refused a late send (lease deadline passed): not sent",
                        extra={"message_id": job.message_id, "account_id": job.account_id})
            await asyncio.to_thread(self.unhand, job)  # the page's refusal is evidence it was not sent
            return False
        except Exception as exc:
            await asyncio.to_thread(self.failed_attempt, job, exc)
            return True
        metrics.send_seconds.observe(time.monotonic() - started)
        sent_id = (result or {}).get("id") or ready.wa_id
        await asyncio.to_thread(self.mark_sent, job, ready, sent_id)
        self.handed_here.pop(job.message_id, None)
        metrics.messages_sent.inc()
        log.info("message sent", extra={"message_id": job.message_id, "account_id": job.account_id,
                                        "ms": round((time.monotonic() - started) * 1000)})
        return True

    async def _settle(self, job: Job, ready: Ready) -> bool | None:
        """A ``handed`` message: True settled as sent, False known not sent (send it), None not
        settled now (asked again shortly, or given up as ``unknown``)."""
        provider = self.sessions.provider
        if await provider.message_exists(job.account_id, ready.wa_id):
            await asyncio.to_thread(self.mark_sent, job, ready, ready.wa_id)
            self.resolving.pop(job.message_id, None)
            log.info("handed message found in WhatsApp: sent", extra={"message_id": job.message_id})
            return True
        owned = self.sessions.owned.get(job.account_id)
        if owned is not None and self.handed_here.get(job.message_id) == (job.epoch, owned.generation):
            return False  # the very page it was handed to does not have it
        began = self.resolving.setdefault(job.message_id, time.monotonic())
        if time.monotonic() - began < self.cfg.resolve_timeout:
            await asyncio.to_thread(self.ask_again_later, job)
            return None
        self.resolving.pop(job.message_id, None)
        await asyncio.to_thread(self.mark_unknown, job, ready)
        return None
    # --- database steps (each one transaction, fenced by the lease) -------------------------------

    def _held(self, job: Job):
        """SQL: we still hold the account's lease (a condition inside each UPDATE)."""
        return exists().where(WhatsAppAccount.id == job.account_id, WhatsAppAccount.owner == self.owner,
                              WhatsAppAccount.lease_epoch == job.epoch)

    def _hold(self, s, job: Job) -> None:
        if not s.scalar(select(self._held(job))):
            raise LeaseLost(job.account_id)

    def prepare(self, job: Job) -> Ready | None:
        """Commit the WhatsApp id and ``sending`` before the send; returns what the send needs."""
        with self.db.session() as s:
            m = s.execute(select(Message.status, Message.wa_message_id, Message.chat_jid, Message.body, Message.type,
                                 Message.media_path, Message.media_mimetype, Message.media_filename, Message.media_size,
                                 Message.quoted_wa_message_id, Message.workspace_id, Message.uuid,
                                 (Message.created_at < db_now(-self.cfg.pending_ttl)).label("overdue"))
                          .where(Message.id == job.message_id)).one()
            if m.status not in (MessageStatus.PENDING, MessageStatus.SENDING, MessageStatus.HANDED):
                return None
            if m.status == MessageStatus.PENDING and m.overdue:  # too late to send (`sending`: maybe sent already)
                if pending.expire_one(s, message_id=job.message_id):
                    log.warning("message failed", extra={"message_id": job.message_id, "reason": pending.EXPIRED})
                return None
            wa_id = m.wa_message_id or f"true_{m.chat_jid}_{new_msg_id()}"
            if m.status == MessageStatus.HANDED:
                self._hold(s, job)
            changed = 1 if m.status == MessageStatus.HANDED else s.execute(update(Message).where(
                Message.id == job.message_id, Message.status.in_([MessageStatus.PENDING, MessageStatus.SENDING]),
                self._held(job)).values(status=MessageStatus.SENDING, attempts=Message.attempts + 1,
                                        wa_message_id=wa_id).execution_options(synchronize_session=False)).rowcount
            if changed != 1:
                self._hold(s, job)  # LeaseLost, or else the message moved on meanwhile
                return None
        media = None
        if m.media_path:
            media = {"path": m.media_path, "mimetype": m.media_mimetype, "filename": m.media_filename,
                     "size": m.media_size, "caption": m.body, "as_document": m.type == "document"}
        payload = {"to": m.chat_jid, "body": m.body if not media else "", "msg_id": wa_id.rsplit("_", 1)[-1],
                   "quoted_id": m.quoted_wa_message_id, "media": media}
        return Ready(wa_id, m.status == MessageStatus.SENDING and m.wa_message_id is not None, payload,
                     m.workspace_id, m.uuid, handed=m.status == MessageStatus.HANDED)

    def readdress(self, job: Job, ready: Ready, canonical: str) -> Ready | None:
        """Point the message at WhatsApp's id for the number (before it is handed over, so the
        id committed for the resend check is the one WhatsApp will know)."""
        wa_id = f"true_{canonical}_{ready.payload['msg_id']}"
        with self.db.session() as s:
            changed = s.execute(update(Message).where(
                Message.id == job.message_id, Message.status == MessageStatus.SENDING, self._held(job),
            ).values(chat_jid=canonical, wa_message_id=wa_id).execution_options(synchronize_session=False)).rowcount
            if changed != 1:
                self._hold(s, job)  # LeaseLost, or else the message moved on meanwhile
                return None
        log.info("number readdressed", extra={"message_id": job.message_id, "typed": ready.payload["to"],
                                              "canonical": canonical})
        return Ready(wa_id, ready.resend_check, {**ready.payload, "to": canonical}, ready.workspace_id, ready.uuid)

    def with_stored_media(self, job: Job, payload: dict) -> dict:
        """The payload with its media's bytes from the database as ``media["data"]``.

        Bytes, not a temporary file: the provider reads a file whole anyway to hand it to the
        page, so a file would not lower the peak memory, and bytes leave nothing on disk to
        clean up when the daemon is killed mid-send. Read just before the send (not in
        `prepare`), so a resend found already delivered or a number not on WhatsApp costs no
        read. A message queued before media moved into the database has no chunks: its payload
        keeps only the ``path``, which the provider reads (a missing file fails permanently).
        """
        media = payload["media"]
        if media is None:
            return payload
        with self.db.read() as s:
            data = message_media.load(s, job.message_id)
        if data is None:
            return payload
        if media["size"] is not None and len(data) != media["size"]:
            raise ValueError(f"media unreadable: {len(data)} of {media['size']} bytes stored")
        return {**payload, "media": {**media, "data": data}}

    def hand(self, job: Job) -> bool:
        """``sending`` → ``handed``, committed before the page gets the message."""
        with self.db.session() as s:
            changed = s.execute(update(Message).where(
                Message.id == job.message_id, Message.status.in_([MessageStatus.SENDING, MessageStatus.HANDED]),
                self._held(job)).values(status=MessageStatus.HANDED, attempts=case(
                    (Message.status == MessageStatus.HANDED, Message.attempts + 1), else_=Message.attempts))
                .execution_options(synchronize_session=False)).rowcount
            if changed != 1:
                self._hold(s, job)  # LeaseLost, or else it moved on (cancelled, acked)
            return changed == 1

    def unhand(self, job: Job) -> None:
        """The page refused it before WhatsApp saw it: back to ``sending``."""
        with self.db.session() as s:
            s.execute(update(Message).where(
                Message.id == job.message_id, Message.status == MessageStatus.HANDED, self._held(job))
                .values(status=MessageStatus.SENDING).execution_options(synchronize_session=False))
        self.handed_here.pop(job.message_id, None)

    def ask_again_later(self, job: Job) -> None:
        with self.db.session() as s:
            self._hold(s, job)
            s.execute(update(Message).where(Message.id == job.message_id, Message.status == MessageStatus.HANDED)
                      .values(next_attempt_at=db_now(RESOLVE_EVERY)).execution_options(synchronize_session=False))

    def mark_unknown(self, job: Job, ready: Ready) -> None:
        error = (f"handed to a page that is gone; WhatsApp gave no evidence in {self.cfg.resolve_timeout:g} s: "
                 "`blazzctl message resend ID` sends it again, `message cancel ID` drops it")
        with self.db.session() as s:
            changed = s.execute(update(Message).where(
                Message.id == job.message_id, Message.status == MessageStatus.HANDED, self._held(job),
            ).values(status=MessageStatus.UNKNOWN, error=error[:255]).execution_options(synchronize_session=False)).rowcount
            if changed != 1:
                self._hold(s, job)
                return
            events.record(s, type="message.status", workspace_id=ready.workspace_id, account_id=job.account_id,
                          data={"message_id": job.message_id, "uuid": ready.uuid, "status": "unknown",
                                "error": error[:255]})
        log.warning("message status unknown: the operator decides", extra={"message_id": job.message_id})

    def mark_sent(self, job: Job, ready: Ready, wa_id: str) -> None:
        with self.db.session() as s:
            changed = s.execute(update(Message).where(
                Message.id == job.message_id,
                Message.status.in_([MessageStatus.SENDING, MessageStatus.HANDED]), self._held(job),
            ).values(status=MessageStatus.SENT, wa_message_id=wa_id, sent_at=db_now(), error=None,
                     ack=case((Message.ack.is_(None), 1), (Message.ack < 1, 1), else_=Message.ack))
                .execution_options(synchronize_session=False)).rowcount
            if changed != 1:
                self._hold(s, job)  # LeaseLost, or else an ack got there first (it records the event)
            inbound.join_chat(s, job.message_id)  # a sent message is in its chat, like a received one
            if changed == 1:
                events.record(s, type="message.sent", workspace_id=ready.workspace_id, account_id=job.account_id,
                              data={"message_id": job.message_id, "uuid": ready.uuid, "wa_message_id": wa_id,
                                    "to": ready.payload["to"]})
            if ready.payload["media"] is not None:
                message_media.discard(s, job.message_id)  # sent: its bytes are not needed any more

    def fail(self, job: Job, reason: str) -> None:
        with self.db.session() as s:
            self._hold(s, job)
            m = s.get(Message, job.message_id)
            message_media.discard(s, job.message_id)  # failed for good: nothing sends its bytes again
            if m.status == MessageStatus.FAILED:  # an ack -1 got there first (it recorded the event)
                return
            m.status, m.error = MessageStatus.FAILED, reason[:255]
            s.flush()
            events.record(s, type="message.status", workspace_id=m.workspace_id, account_id=m.whatsapp_account_id,
                          data={"message_id": m.id, "uuid": m.uuid, "status": "failed", "error": m.error})
        log.warning("message failed", extra={"message_id": job.message_id, "reason": reason})

    def failed_attempt(self, job: Job, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        unknown = UNKNOWN_MODULE.search(str(exc))
        if unknown or isinstance(exc, p.SendRefused):  # retrying cannot help: say why at once
            self.fail(job, f"wa_web_incompatible: {unknown[1]}" if unknown else str(exc))
            return
        permanent = any(mark in text for mark in PERMANENT) or isinstance(exc, (FileNotFoundError,
                                                                                 PermissionError))
        with self.db.session() as s:
            attempts = s.scalar(select(Message.attempts).where(Message.id == job.message_id))
        if permanent or attempts >= self.cfg.send_attempts:
            self.fail(job, f"send_failed: {text}")
            return
        delay = min(300.0, 2.0 ** attempts)
        with self.db.session() as s:
            self._hold(s, job)
            s.execute(update(Message).where(Message.id == job.message_id).values(
                next_attempt_at=db_now(delay), error=f"retrying: {text}"[:255])
                .execution_options(synchronize_session=False))
        log.info("send will be retried", extra={"message_id": job.message_id, "in_s": delay, "error": text,
                                                "transient": isinstance(exc, p.SessionNotReady)})
