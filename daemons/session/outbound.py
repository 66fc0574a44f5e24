"""The outbound sender: queued messages of our connected accounts, sent exactly once.

Exactly once across crashes: before a message is handed to WhatsApp it gets its WhatsApp
message id and the status ``sending`` (committed, fenced by the lease). Whoever finds a
message in ``sending`` later (this daemon after an error, or the next owner after a crash)
first asks WhatsApp whether that id exists, and only sends it again when it does not.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import case, exists, or_, select, update

from blazzctl.db import Database, db_now
from blazzctl.enums import MessageStatus
from blazzctl.models import Message, WhatsAppAccount
from blazzctl.providers import base as p
from blazzctl.services import events, message_media
from daemons.session import metrics
from daemons.session.status import LeaseLost
from daemons.session.pacing import IdleBackoff
from daemons.session.ratelimit import TokenBucket
from daemons.session.sessions import Sessions

log = logging.getLogger("blazz.outbound")

BATCH = 100
IDLE_POLL = 3.0  # seconds between polls once nothing has been due for a while (idle load)
PERMANENT = ("wid error", "invalid wid", "No LID for user", "media unreadable")


@dataclass(frozen=True)
class Ready:
    """A message committed as ``sending`` with its WhatsApp id: what the send needs."""

    wa_id: str
    resend_check: bool  # it was ``sending`` already: ask WhatsApp before sending again
    payload: dict
    workspace_id: int
    uuid: str


@dataclass(frozen=True)
class Job:
    message_id: int
    account_id: int
    epoch: int


def new_msg_id() -> str:
    """A WhatsApp Web style message id (``3EB0`` + hex), chosen before the send."""
    return "3EB0" + secrets.token_hex(9).upper()


class Outbound:
    def __init__(self, db: Database, sessions: Sessions, owner: str, settings) -> None:
        self.db = db
        self.sessions = sessions
        self.owner = owner
        self.cfg = settings
        self.buckets: dict[int, TokenBucket] = {}
        self.busy: set[int] = set()  # accounts with a send in flight (one at a time per account)
        self.backoff = IdleBackoff(settings.poll_interval, max(IDLE_POLL, settings.poll_interval))

    async def loop(self, stopping: asyncio.Event) -> None:
        tasks: set[asyncio.Task] = set()
        while not stopping.is_set():
            found = 0
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

    def due(self, account_ids: list[int]) -> dict[int, list[int]]:
        """Due messages of these accounts, oldest first, grouped by account."""
        with self.db.read() as s:
            rows = s.execute(select(Message.id, Message.whatsapp_account_id).where(
                Message.whatsapp_account_id.in_(account_ids),
                Message.status.in_([MessageStatus.PENDING, MessageStatus.SENDING]),
                or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= db_now()),
            ).order_by(Message.id).limit(BATCH)).all()
        jobs: dict[int, list[int]] = {}
        for message_id, account_id in rows:
            jobs.setdefault(account_id, []).append(message_id)
        return jobs

    async def _drain(self, account_id: int, epoch: int, message_ids: list[int]) -> None:
        try:
            for message_id in message_ids:
                owned = self.sessions.owned.get(account_id)
                if owned is None or owned.epoch != epoch or not owned.connected:
                    return
                await self._pace(account_id)
                await self.send_one(Job(message_id, account_id, epoch))
        except LeaseLost:
            await self.sessions.lose(account_id)
        finally:
            self.busy.discard(account_id)

    async def _pace(self, account_id: int) -> None:
        bucket = self.buckets.get(account_id)
        if bucket is None:
            bucket = self.buckets[account_id] = TokenBucket(self.cfg.rate_per_minute, self.cfg.burst, self.cfg.jitter)
        while (wait := bucket.wait_time()) > 0:
            await asyncio.sleep(wait)
        bucket.take()

    async def send_one(self, job: Job) -> None:
        provider = self.sessions.provider
        ready = await asyncio.to_thread(self.prepare, job)
        if ready is None:
            return
        started = time.monotonic()
        try:
            if ready.resend_check and await provider.message_exists(job.account_id, ready.wa_id):
                await asyncio.to_thread(self.mark_sent, job, ready, ready.wa_id)
                log.info("message was already sent; not sending again", extra={"message_id": job.message_id})
                return
            jid = ready.payload["to"]
            if jid.endswith("@c.us") and not await provider.is_on_whatsapp(job.account_id, jid.split("@")[0]):
                await asyncio.to_thread(self.fail, job, "not_on_whatsapp")
                return
            payload = await asyncio.to_thread(self.with_stored_media, job, ready.payload)
            result = await provider.send_message(job.account_id, payload)
        except LeaseLost:
            raise
        except Exception as exc:
            await asyncio.to_thread(self.failed_attempt, job, exc)
            return
        metrics.send_seconds.observe(time.monotonic() - started)
        sent_id = (result or {}).get("id") or ready.wa_id
        await asyncio.to_thread(self.mark_sent, job, ready, sent_id)
        metrics.messages_sent.inc()
        log.info("message sent", extra={"message_id": job.message_id, "account_id": job.account_id,
                                        "ms": round((time.monotonic() - started) * 1000)})

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
                                 Message.quoted_wa_message_id, Message.workspace_id, Message.uuid)
                          .where(Message.id == job.message_id)).one()
            if m.status not in (MessageStatus.PENDING, MessageStatus.SENDING):
                return None
            wa_id = m.wa_message_id or f"true_{m.chat_jid}_{new_msg_id()}"
            changed = s.execute(update(Message).where(
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
                     m.workspace_id, m.uuid)

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

    def mark_sent(self, job: Job, ready: Ready, wa_id: str) -> None:
        with self.db.session() as s:
            changed = s.execute(update(Message).where(
                Message.id == job.message_id, Message.status == MessageStatus.SENDING, self._held(job),
            ).values(status=MessageStatus.SENT, wa_message_id=wa_id, sent_at=db_now(), error=None,
                     ack=case((Message.ack.is_(None), 1), (Message.ack < 1, 1), else_=Message.ack))
                .execution_options(synchronize_session=False)).rowcount
            if changed == 1:
                events.record(s, type="message.sent", workspace_id=ready.workspace_id, account_id=job.account_id,
                              data={"message_id": job.message_id, "uuid": ready.uuid, "wa_message_id": wa_id,
                                    "to": ready.payload["to"]})
            else:
                self._hold(s, job)  # LeaseLost, or else an ack got there first (it records the event)
            if ready.payload["media"] is not None:
                message_media.discard(s, job.message_id)  # sent: its bytes are not needed any more

    def fail(self, job: Job, reason: str) -> None:
        with self.db.session() as s:
            self._hold(s, job)
            m = s.get(Message, job.message_id)
            m.status, m.error = MessageStatus.FAILED, reason[:255]
            s.flush()
            message_media.discard(s, job.message_id)  # failed for good: nothing sends its bytes again
            events.record(s, type="message.status", workspace_id=m.workspace_id, account_id=m.whatsapp_account_id,
                          data={"message_id": m.id, "uuid": m.uuid, "status": "failed", "error": m.error})
        log.warning("message failed", extra={"message_id": job.message_id, "reason": reason})

    def failed_attempt(self, job: Job, exc: Exception) -> None:
        text = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
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
