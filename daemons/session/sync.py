"""The daemon's sync worker: carry out the queued ``sync_runs`` of the accounts this daemon owns.

A run is taken (queued → running) and every write it makes — each batch of rows with its
progress, and the outcome with its ``sync.finished`` event — is one transaction that first
locks the account row under ``(owner, lease_epoch)``: when the lease is gone nothing is
written and the session is closed. A run left ``running`` by a daemon that died (or lost the
account) is taken over by the account's new owner and started again; upserts make that safe.

Idle cost: one indexed query every ``IDLE_POLL`` seconds (an idle backoff from ``BUSY_POLL``),
and none while the daemon owns nothing. Runs are carried out one at a time per daemon.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from blazzctl.db import Database, db_now, retrying
from blazzctl.enums import SyncKind, SyncStatus
from blazzctl.models import SyncRun, WhatsAppAccount
from blazzctl.models.base import utcnow
from blazzctl.providers.base import SessionNotReady
from blazzctl.services import events, sync_store
from blazzctl.services.upserts import batches
from blazzctl.settings import Settings
from daemons.session.pacing import IdleBackoff
from daemons.session.sessions import Sessions
from daemons.session.status import LeaseLost

log = logging.getLogger("blazz.sync")

BUSY_POLL = 0.25  # seconds before the next look for queued runs after one was carried out
IDLE_POLL = 3.0  # ... growing to this while there is nothing to do (the daemon's idle query budget)
NOT_READY_RETRY = 5.0  # seconds before a run whose session is not connected yet is tried again
NOT_READY_GIVE_UP = 300.0  # seconds after the request: a run whose session never connects fails


@dataclass(frozen=True)
class Taken:
    run_id: int
    uuid: str
    account_id: int
    workspace_id: int
    epoch: int
    kind: SyncKind
    requested_at: datetime


def fence(session, *, account_id: int, owner: str, epoch: int) -> int:
    """Lock the account row while we hold its lease (else LeaseLost); returns its workspace id."""
    workspace_id = session.scalar(select(WhatsAppAccount.workspace_id).where(
        WhatsAppAccount.id == account_id, WhatsAppAccount.owner == owner,
        WhatsAppAccount.lease_epoch == epoch).with_for_update())
    if workspace_id is None:
        raise LeaseLost(account_id)
    return workspace_id


def take_next(db: Database, *, owner: str, live: dict[int, int], skip: set[int]) -> Taken | None:
    """Mark the oldest queued (or orphaned running) run of a live owned account running; None if none."""
    if not live:
        return None
    with db.session() as s:
        candidates = s.execute(select(SyncRun.id, SyncRun.whatsapp_account_id, SyncRun.status)
                               .where(SyncRun.whatsapp_account_id.in_(list(live)),
                                      SyncRun.status.in_([SyncStatus.QUEUED, SyncStatus.RUNNING]))
                               .order_by(SyncRun.id).limit(20)).all()
    for run_id, account_id, status in candidates:
        if run_id in skip:
            continue
        taken = retrying(_take, db, run_id=run_id, account_id=account_id, seen=status, owner=owner,
                         epoch=live[account_id])
        if taken is not None:
            return taken
    return None


def _take(db: Database, *, run_id: int, account_id: int, seen: SyncStatus, owner: str, epoch: int) -> Taken | None:
    with db.session() as s:
        workspace_id = fence(s, account_id=account_id, owner=owner, epoch=epoch)
        changed = s.execute(update(SyncRun).where(SyncRun.id == run_id, SyncRun.status == seen).values(
            status=SyncStatus.RUNNING, handled_by=owner, started_at=db_now(), finished_at=None, error=None,
            progress_done=0, progress_total=0).execution_options(synchronize_session=False)).rowcount
        if not changed:
            return None
        run = s.execute(select(SyncRun.uuid, SyncRun.kind, SyncRun.requested_at).where(SyncRun.id == run_id)).one()
    if seen == SyncStatus.RUNNING:
        log.info("sync run taken over", extra={"run_id": run_id, "account_id": account_id})
    return Taken(run_id, run.uuid, account_id, workspace_id, epoch, run.kind, run.requested_at)


class SyncWorker:
    def __init__(self, db: Database, sessions: Sessions, settings: Settings, owner: str) -> None:
        self.db = db
        self.sessions = sessions
        self.settings = settings.sync
        self.owner = owner
        self.wake = asyncio.Event()
        self.backoff = IdleBackoff(BUSY_POLL, IDLE_POLL)
        self.not_before: dict[int, float] = {}  # run id → monotonic time it may be tried again

    async def loop(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            worked = False
            if self.sessions.owned:
                try:
                    worked = await self.run_one()
                except Exception as exc:
                    log.warning("sync poll failed", extra={"error": str(exc)[:200]})
            delay = self.backoff.found(worked)
            self.wake.clear()
            try:
                await asyncio.wait_for(_first(stopping, self.wake), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def run_one(self) -> bool:
        now = time.monotonic()
        self.not_before = {k: v for k, v in self.not_before.items() if v > now}
        live = {a.account_id: a.epoch for a in self.sessions.owned.values() if a.state == "live"}
        taken = await asyncio.to_thread(take_next, self.db, owner=self.owner, live=live, skip=set(self.not_before))
        if taken is None:
            return False
        await self.execute(taken)
        return True

    async def execute(self, run: Taken) -> None:
        log.info("sync started", extra={"run_id": run.run_id, "account_id": run.account_id, "kind": str(run.kind)})
        started = time.monotonic()
        try:
            listings = await self._read(run)
            totals = await asyncio.to_thread(self._store, run, listings)
            await asyncio.to_thread(retrying, self._finish, run, SyncStatus.SUCCEEDED, totals, None)
            log.info("sync finished", extra={"run_id": run.run_id, "account_id": run.account_id, **totals,
                                             "seconds": round(time.monotonic() - started, 2)})
        except LeaseLost:
            await self.sessions.lose(run.account_id)
        except SessionNotReady as exc:
            await self._not_ready(run, str(exc))
        except Exception as exc:  # the provider or the data failed: the run fails with the reason
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log.warning("sync failed", extra={"run_id": run.run_id, "account_id": run.account_id, "error": error[:200]})
            try:
                await asyncio.to_thread(retrying, self._finish, run, SyncStatus.FAILED, None, error[:2000])
            except LeaseLost:
                await self.sessions.lose(run.account_id)

    async def _read(self, run: Taken) -> dict[str, list]:
        provider, kind = self.sessions.provider, run.kind
        out: dict[str, list] = {}
        if kind in (SyncKind.CHATS, SyncKind.ALL):
            out["chats"] = await provider.list_chats(run.account_id)
        if kind in (SyncKind.CONTACTS, SyncKind.ALL):
            out["contacts"] = await provider.list_contacts(run.account_id)
        if kind in (SyncKind.GROUPS, SyncKind.ALL):
            out["groups"] = await provider.list_groups(run.account_id)
        return out

    def _store(self, run: Taken, listings: dict[str, list]) -> dict[str, int]:
        """Write the listings in fenced batches, progress with each; returns the totals."""
        now = utcnow()
        scope = sync_store.Scope(run.workspace_id, run.account_id)
        chats = sync_store.select_chats(listings.get("chats", []), window_days=self.settings.window_days,
                                        max_chats=self.settings.max_chats, now=now)
        work = [("chats", b) for b in batches(sync_store.chat_rows(chats, scope, now), self.settings.batch_size)]
        work += [("contacts", b) for b in batches(sync_store.contact_rows(listings.get("contacts", []), scope, now),
                                                  self.settings.batch_size)]
        group_batch = max(1, self.settings.batch_size // 10)  # a group brings its participants along
        work += [("groups", b) for b in batches(listings.get("groups", []), group_batch)]
        totals = {"chats": 0, "private_chats": 0, "group_chats": 0, "contacts": 0, "groups": 0, "participants": 0}
        total = sum(len(b) for _, b in work)
        retrying(self._progress, run, 0, total)
        done = 0
        for what, batch in work:
            done += len(batch)
            totals["participants"] += retrying(self._write, run, what, batch, scope, now, done)
            totals[what] += len(batch)
            if what == "chats":
                groups = sum(1 for r in batch if r["chat_type"] == "group")
                totals["group_chats"] += groups
                totals["private_chats"] += len(batch) - groups
        return totals

    def _write(self, run: Taken, what: str, batch, scope, now, done: int) -> int:
        with self.db.session() as s:
            fence(s, account_id=run.account_id, owner=self.owner, epoch=run.epoch)
            participants = 0
            if what == "chats":
                sync_store.write_chats(s, batch)
            elif what == "contacts":
                sync_store.write_contacts(s, batch)
            else:
                participants = sync_store.write_groups(s, batch, scope, now)
            s.execute(update(SyncRun).where(SyncRun.id == run.run_id).values(progress_done=done)
                      .execution_options(synchronize_session=False))
        return participants

    def _progress(self, run: Taken, done: int, total: int) -> None:
        with self.db.session() as s:
            fence(s, account_id=run.account_id, owner=self.owner, epoch=run.epoch)
            s.execute(update(SyncRun).where(SyncRun.id == run.run_id).values(progress_done=done, progress_total=total)
                      .execution_options(synchronize_session=False))

    def _finish(self, run: Taken, status: SyncStatus, totals: dict | None, error: str | None) -> None:
        with self.db.session() as s:
            fence(s, account_id=run.account_id, owner=self.owner, epoch=run.epoch)
            values = {"status": status, "finished_at": db_now(), "error": error}
            if totals is not None:
                values.update(totals=totals, progress_done=SyncRun.progress_total)
            s.execute(update(SyncRun).where(SyncRun.id == run.run_id).values(**values)
                      .execution_options(synchronize_session=False))
            events.record(s, type="sync.finished", workspace_id=run.workspace_id, account_id=run.account_id,
                          data={"run_id": run.run_id, "run_uuid": run.uuid, "kind": str(run.kind),
                                "status": str(status), "totals": totals, "error": error})

    async def _not_ready(self, run: Taken, reason: str) -> None:
        """The session is not connected yet: queue the run again, or fail it when it waited too long."""
        waited = utcnow() - run.requested_at
        try:
            if waited > timedelta(seconds=NOT_READY_GIVE_UP):
                error = f"the account's session did not become ready within {NOT_READY_GIVE_UP:g} s ({reason})"
                await asyncio.to_thread(retrying, self._finish, run, SyncStatus.FAILED, None, error)
                return
            await asyncio.to_thread(retrying, self._requeue, run)
            self.not_before[run.run_id] = time.monotonic() + NOT_READY_RETRY
        except LeaseLost:
            await self.sessions.lose(run.account_id)

    def _requeue(self, run: Taken) -> None:
        with self.db.session() as s:
            fence(s, account_id=run.account_id, owner=self.owner, epoch=run.epoch)
            s.execute(update(SyncRun).where(SyncRun.id == run.run_id).values(
                status=SyncStatus.QUEUED, handled_by=None, started_at=None).execution_options(synchronize_session=False))


async def _first(*flags: asyncio.Event) -> None:
    waits = [asyncio.ensure_future(flag.wait()) for flag in flags]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def run_sync(db: Database, sessions: Sessions, settings: Settings, owner: str, stopping: asyncio.Event) -> None:
    """The daemon task: the worker, and the cron schedule when ``sync.schedule`` is set."""
    from daemons.session.schedule import SyncSchedule

    worker = SyncWorker(db, sessions, settings, owner)
    schedule = SyncSchedule(db, sessions, settings.sync.schedule, owner=owner, wake=worker.wake.set)
    schedule.start()
    try:
        await worker.loop(stopping)
    finally:
        schedule.stop()
