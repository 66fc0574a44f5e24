"""Scheduled syncs: ``sync.schedule`` (a 5-field cron expression, UTC) run by APScheduler in the daemon.

At each tick the daemon requests a sync of the accounts it owns at that moment, so across a
fleet every runnable account is requested once (an account that changes hands at the tick may
be requested twice; the second request returns the first run: one active run per account).
The systemd timer (``blazz-sync.timer``) or a crontab line is the alternative for operators
who prefer the schedule outside the daemons.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import timezone

from blazzctl.db import Database
from blazzctl.enums import SyncKind
from blazzctl.errors import ConfigError
from daemons.session.sessions import Sessions

log = logging.getLogger("blazz.sync")


def trigger(expression: str):
    """The APScheduler trigger of a 5-field cron expression in UTC; ConfigError when it is not one."""
    from apscheduler.triggers.cron import CronTrigger

    if len(expression.split()) != 5:
        raise ConfigError([("config", "sync.schedule", f"{expression!r} is not a 5-field cron expression")],
                          hint='For example "0 3 * * *" (every day at 03:00 UTC).')
    try:
        return CronTrigger.from_crontab(expression, timezone=timezone.utc)
    except ValueError as exc:
        raise ConfigError([("config", "sync.schedule", f"{expression!r}: {exc}")]) from None


class SyncSchedule:
    def __init__(self, db: Database, sessions: Sessions, expression: str | None, *, owner: str,
                 wake: Callable[[], None]) -> None:
        self.db = db
        self.sessions = sessions
        self.expression = (expression or "").strip()
        self.owner = owner
        self.wake = wake
        self.scheduler = None

    def start(self) -> None:
        if not self.expression:
            return
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        try:
            cron = trigger(self.expression)
        except ConfigError as exc:  # `blazzctl config check` reports it too; the daemon keeps running
            log.error("sync schedule ignored", extra={"error": str(exc)})
            return
        self.scheduler = AsyncIOScheduler(event_loop=asyncio.get_running_loop(), timezone=timezone.utc)
        self.scheduler.add_job(self.tick, cron, id="sync", coalesce=True, max_instances=1, misfire_grace_time=300)
        self.scheduler.start()
        log.info("sync schedule on", extra={"schedule": self.expression,
                                            "next_run": str(self.scheduler.get_job("sync").next_run_time)})

    def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None

    async def tick(self) -> None:
        owned = list(self.sessions.owned)
        if not owned:
            return
        try:
            created = await asyncio.to_thread(self._request, owned)
            log.info("scheduled sync requested", extra={"accounts": len(owned), "new_runs": created})
            self.wake()
        except Exception as exc:
            log.warning("scheduled sync request failed", extra={"error": str(exc)[:200]})

    def _request(self, account_ids: list[int]) -> int:
        from blazzctl.services import sync

        with self.db.session() as s:
            done = sync.request_ids(s, account_ids=account_ids, kind=SyncKind.ALL, requested_by=f"schedule {self.owner}")
        return sum(1 for r in done if r.created)
