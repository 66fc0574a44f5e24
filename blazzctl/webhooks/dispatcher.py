"""The webhook dispatcher: claims due outbox rows, posts them, records what happened.

One dispatcher runs in every session daemon. The loop claims deliveries (at most
``batch_size`` in flight, at most ``concurrency_per_endpoint`` per endpoint), starts one
task per delivery, and a writer task records the outcomes in batches. A slow or failing
endpoint only ever occupies its own slots, so it never holds back the others.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable

import httpx

from blazzctl.db import Database
from blazzctl.errors import BlazzError
from blazzctl.settings import WebhooksSettings
from blazzctl.webhooks import outbox, signing
from blazzctl.webhooks.lanes import Lanes, new_client
from blazzctl.webhooks.outbox import Job, Outcome
from blazzctl.webhooks.retry import Verdict, decide

log = logging.getLogger("blazz.webhooks")

SNIPPET_BYTES = 500
COALESCE = 0.01  # seconds to gather freed slots before the next claim
DRAIN_SECONDS = 5.0  # at stop: how long in-flight attempts may finish, and outcomes be written
MAX_BACKOFF = 10.0  # seconds between claims while the database is unreachable
IDLE_POLL = 3.0  # seconds between looks once nothing has been due for a while (the daemon's idle load)
PRUNE_INTERVAL = 600.0  # seconds between prunings of delivered rows (spread by jitter)


def lock_seconds(settings: WebhooksSettings) -> float:
    """The claim lease: long enough for the slowest attempt to finish inside it."""
    return max(settings.lock_seconds, 2 * settings.timeout + 5)


async def attempt(client: httpx.AsyncClient, job: Job, settings: WebhooksSettings) -> Outcome:
    """Post one delivery and decide what happens next. Never raises for an HTTP failure."""
    started = time.monotonic()
    code = retry_after = error = snippet = None
    try:
        if not job.active:
            return Outcome(job.id, job.endpoint_id, Verdict.DEAD, error="endpoint disabled")
        body = job.payload.encode("utf-8")
        previous = signing.secret_key(job.previous_secret) if job.previous_secret else None
        headers = signing.headers(signing.secret_key(job.secret), job.event_id, int(time.time()), body,
                                  previous=previous)
        async with asyncio.timeout(2 * settings.timeout):  # a trickling answer is still bounded
            async with client.stream("POST", job.url, content=body, headers=headers) as response:
                code, retry_after = response.status_code, response.headers.get("retry-after")
                snippet = await read_snippet(response)
    except BlazzError as exc:  # a stored secret that is not a whsec_ secret
        return Outcome(job.id, job.endpoint_id, Verdict.DEAD, error=exc.message)
    except Exception as exc:  # network errors, timeouts, and anything odd (retried, so bounded by the schedule)
        error = describe(exc)
    decision = decide(code, attempts=job.attempts, schedule=settings.retry_schedule, retry_after=retry_after)
    if code is not None and decision.verdict is not Verdict.DELIVERED:
        error = f"HTTP {code}"
    return Outcome(job.id, job.endpoint_id, decision.verdict, decision.delay, code, error, snippet,
                   int((time.monotonic() - started) * 1000))


async def read_snippet(response: httpx.Response) -> str:
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) >= SNIPPET_BYTES:
            break
    return data[:SNIPPET_BYTES].decode("utf-8", "replace")


def describe(exc: BaseException) -> str:
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        kind = "timeout"
    elif isinstance(exc, (httpx.HTTPError, OSError)):
        kind = "network error"
    else:
        kind = f"error ({type(exc).__name__})"
    text = str(exc) or type(exc).__name__
    return f"{kind}: {text}"[:500]


class Dispatcher:
    """Claim, post, record: until ``stopping`` is set, then drain what is in flight."""

    def __init__(self, db: Database, settings: WebhooksSettings, name: str,
                 on_outcome: Callable[[Outcome], None] | None = None) -> None:
        self.db, self.settings = db, settings
        self.on_outcome = on_outcome  # called once per attempt (metrics)
        self.owner = f"{name}/{uuid.uuid4().hex[:8]}"[:150]
        self.lock_seconds = lock_seconds(settings)
        self.tasks: dict[int, asyncio.Task] = {}
        self.busy: dict[int, int] = {}
        self.results: asyncio.Queue[Outcome | None] = asyncio.Queue()
        self.slot_freed = asyncio.Event()
        self.lanes = Lanes(settings)
        self.backoff = 0.0  # seconds to wait after a failed claim
        self.idle = 0.0  # seconds to wait while nothing is due (grows up to IDLE_POLL)
        self.prune_at = time.monotonic() + PRUNE_INTERVAL * random.uniform(0.1, 1)

    async def run(self, stopping: asyncio.Event) -> None:
        log.info("webhook dispatcher started", extra={"owner": self.owner})
        writer = asyncio.create_task(self._write_loop())
        try:
            while not stopping.is_set():
                more = await self._claim_round()
                await self._pause(stopping, more)
                await self.lanes.prune()
                await self._prune_outbox()
        finally:
            await self._drain()
            self.results.put_nowait(None)
            try:
                await asyncio.wait_for(writer, timeout=DRAIN_SECONDS)
            except TimeoutError:  # the database is away: those rows are resent after their lease
                log.warning("webhook outcomes still unrecorded at stop")
            await self.lanes.aclose()
        log.info("webhook dispatcher stopped", extra={"owner": self.owner})

    async def _claim_round(self) -> bool:
        """Claim and start what fits; True when more may be due right away."""
        room = self.settings.batch_size - len(self.tasks)
        if room <= 0:
            return False
        try:
            jobs = await asyncio.to_thread(
                outbox.claim, self.db, owner=self.owner, limit=room, lock_seconds=self.lock_seconds,
                per_endpoint=self.settings.concurrency_per_endpoint, busy=dict(self.busy))
        except Exception as exc:  # the database is away: try again, less and less often
            self.backoff = min(MAX_BACKOFF, max(self.settings.poll_interval, 2 * self.backoff))
            log.warning("webhook claim failed", extra={"retry_in": round(self.backoff, 2), "error": str(exc)[:200]})
            return False
        self.backoff = 0.0
        # Nothing due and nothing in flight: look less often, up to IDLE_POLL; work resets it.
        self.idle = 0.0 if jobs or self.tasks else min(IDLE_POLL, max(self.settings.poll_interval, self.idle * 1.5))
        for job in jobs:
            self.busy[job.endpoint_id] = self.busy.get(job.endpoint_id, 0) + 1
            self.tasks[job.id] = asyncio.create_task(self._deliver(job))
        return len(jobs) == room  # all it asked for: more may be due at once

    async def _prune_outbox(self) -> None:
        """Now and then, delete delivered rows past ``retention_days`` (every daemon may; chunks skip locks),
        and erase rotated-out secrets whose grace is over."""
        if time.monotonic() < self.prune_at:
            return
        self.prune_at = time.monotonic() + PRUNE_INTERVAL * random.uniform(0.5, 1.5)
        try:
            await asyncio.to_thread(outbox.forget_expired_secrets, self.db)
            if not self.settings.retention_days:
                return
            deleted = await asyncio.to_thread(outbox.prune, self.db, older_than_days=self.settings.retention_days)
        except Exception as exc:
            log.warning("pruning delivered webhooks failed", extra={"error": str(exc)[:200]})
            return
        if deleted:
            log.info("pruned delivered webhooks", extra={"count": deleted})

    async def _pause(self, stopping: asyncio.Event, more: bool) -> None:
        if more:
            await asyncio.sleep(0)
            return
        self.slot_freed.clear()
        waits = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(self.slot_freed.wait())]
        await asyncio.wait(waits, timeout=max(self.settings.poll_interval, self.backoff, self.idle),
                           return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits:
            waiter.cancel()
        if self.slot_freed.is_set() and not stopping.is_set():
            await asyncio.sleep(COALESCE)  # let a few more finish: one claim for several slots

    async def _deliver(self, job: Job) -> None:
        client = self.lanes.take(job.endpoint_id)
        try:
            outcome = await attempt(client, job, self.settings)
        except asyncio.CancelledError:
            self.results.put_nowait(Outcome(job.id, job.endpoint_id, None))  # give the row back
            await client.aclose()
            raise
        finally:
            self.tasks.pop(job.id, None)
            self.busy[job.endpoint_id] -= 1
            if not self.busy[job.endpoint_id]:
                del self.busy[job.endpoint_id]
            self.slot_freed.set()
        self.lanes.give_back(job.endpoint_id, client)
        log_outcome(job, outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        self.results.put_nowait(outcome)

    async def _write_loop(self) -> None:
        """Record outcomes in batches: whatever piled up while the previous write ran."""
        done = False
        while not done:
            batch = [await self.results.get()]
            while not self.results.empty() and len(batch) < 1000:
                batch.append(self.results.get_nowait())
            done = None in batch
            batch = [o for o in batch if o is not None]
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[Outcome]) -> None:
        deadline = time.monotonic() + self.lock_seconds
        while True:
            try:
                await asyncio.to_thread(outbox.record_outcomes, self.db, owner=self.owner, outcomes=batch)
                return
            except Exception as exc:
                if time.monotonic() > deadline:  # the lease is over: another dispatcher resends them
                    log.error("webhook outcomes not recorded", extra={"count": len(batch), "error": str(exc)[:200]})
                    return
                log.warning("recording webhook outcomes failed, retrying", extra={"error": str(exc)[:200]})
                await asyncio.sleep(1)

    async def _drain(self) -> None:
        """Let in-flight attempts finish for a few seconds; cancel the rest (their rows are given back)."""
        pending = list(self.tasks.values())
        if pending:
            _, late = await asyncio.wait(pending, timeout=min(DRAIN_SECONDS, self.settings.timeout + 1))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


def log_outcome(job: Job, outcome: Outcome) -> None:
    """One line per attempt: a fixed event name, the facts as fields."""
    fields = {"delivery_id": job.id, "endpoint_id": job.endpoint_id, "event_id": job.event_id,
              "attempt": job.attempts, "status_code": outcome.status_code, "verdict": str(outcome.verdict)}
    if outcome.verdict in (Verdict.DEAD, Verdict.GONE):
        log.warning("webhook delivery dead", extra={**fields, "error": outcome.error})
    elif outcome.verdict is Verdict.RETRY:
        log.info("webhook delivery failed; will retry", extra={**fields, "error": outcome.error,
                                                                "retry_in": round(outcome.delay, 1)})
    else:
        log.debug("webhook delivery delivered", extra=fields)


async def deliver_one(db: Database, settings: WebhooksSettings, *, delivery_id: int, owner: str) -> Outcome | None:
    """Claim one delivery and attempt it now (``webhook test``); None when another process has it."""
    job = await asyncio.to_thread(outbox.claim_one, db, delivery_id=delivery_id, owner=owner,
                                  lock_seconds=lock_seconds(settings))
    if job is None:
        return None
    async with new_client(settings) as client:
        outcome = await attempt(client, job, settings)
    await asyncio.to_thread(outbox.record_outcomes, db, owner=owner, outcomes=[outcome])
    return outcome
