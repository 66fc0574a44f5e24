"""The claim loop: renew what we hold, notice what we lost, take our fair share, give back surplus.

Self-fencing also lives here: WhatsApp cannot check our lease epoch, so when the database
has not confirmed our leases for ``fence_after`` seconds (our own monotonic clock, started
before the last successful renewal was sent), every session is closed before the lease can
expire and another daemon may claim the account.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time

from blazzctl.enums import DesiredState
from daemons.session import leases, metrics
from daemons.session.notify import Notifier
from daemons.session.sessions import Sessions

log = logging.getLogger("blazz.claims")


class Claimer:
    def __init__(self, db, sessions: Sessions, *, owner: str, settings, notifier: Notifier) -> None:
        self.db = db
        self.sessions = sessions
        self.owner = owner
        self.cfg = settings.daemon
        self.notifier = notifier
        self.fence_after = self.cfg.lease_ttl * 0.75
        self.last_renewed: float | None = None  # monotonic start of the last confirmed renewal
        self.claiming = True
        self.memory_bytes = 0  # set by the heartbeat from the process tree
        self.rounds_ok = 0

    async def round(self) -> bool:
        """One renew-then-claim round; True when more accounts are wanted at once.

        Raises on database errors (the loop backs off).
        """
        started = time.monotonic()
        held = await asyncio.to_thread(leases.renew, self.db, owner=self.owner, ttl=self.cfg.lease_ttl)
        self.last_renewed = started
        metrics.leases_renewed.inc(len(held))
        await self._reconcile(held)
        self.notifier.watchdog()  # only after the database confirmed our leases
        more = await self._rebalance() if self.claiming else False
        self.rounds_ok += 1
        return more

    async def _reconcile(self, held: dict[int, leases.Lease]) -> None:
        local = self.sessions.leases()
        for account_id, epoch in local.items():
            lease = held.get(account_id)
            if lease is None or lease.epoch != epoch:
                await self.sessions.lose(account_id)
            elif lease.desired_state == DesiredState.STOPPED:
                await self.sessions.release(account_id, reason="desired state stopped")
        strays = {a: lease.epoch for a, lease in held.items() if a not in local}
        if strays:  # held in the database but not running here (e.g. after self-fencing)
            await asyncio.to_thread(leases.release, self.db, owner=self.owner, leases=strays)

    async def _rebalance(self) -> bool:
        target, runnable, live = await asyncio.to_thread(
            leases.fair_target, self.db, heartbeat_interval=self.cfg.heartbeat_interval, capacity=self.cfg.capacity)
        owned = len(self.sessions.owned)
        budget = self.cfg.memory_budget_mb * 1024 * 1024
        if budget and self.memory_bytes > budget:
            target = min(target, owned)
        if owned < target:
            want = min(self.cfg.claim_batch, target - owned)
            got = await asyncio.to_thread(leases.claim, self.db, owner=self.owner, limit=want,
                                          ttl=self.cfg.lease_ttl)
            metrics.leases_claimed.inc(len(got))
            for lease in got:
                log.info("claimed", extra={"account_id": lease.account_id, "epoch": lease.epoch})
                self.sessions.adopt(lease)
            # A full batch while still short of the target: claim again soon, not a whole interval later.
            return len(got) == want and owned + len(got) < target
        if owned > target:
            surplus = sorted(self.sessions.owned)[-min(self.cfg.claim_batch, owned - target):]
            log.info("releasing surplus", extra={"count": len(surplus), "target": target, "live_daemons": live})
            await asyncio.gather(*(self.sessions.release(a, reason="rebalance") for a in surplus))
        return False

    async def loop(self, stopping: asyncio.Event) -> None:
        failures = 0
        while not stopping.is_set():
            try:
                more = await self.round()
                failures = 0
                interval = min(self.cfg.claim_interval, 0.5) if more else self.cfg.claim_interval
                delay = interval * random.uniform(0.6 if more else 0.85, 1.0)
            except Exception as exc:
                failures += 1
                delay = min(self.cfg.claim_interval, 0.5 * 2 ** min(failures, 6)) * random.uniform(0.8, 1.2)
                log.warning("claim round failed", extra={"error": _short(exc), "retry_in": round(delay, 2)})
                if not self.sessions.owned:
                    # Nothing is driven without a lease any more (self-fenced or idle): a database
                    # outage must not become a watchdog restart loop. A wedged loop still misses it.
                    self.notifier.watchdog()
            try:
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    async def fence_watch(self, stopping: asyncio.Event) -> None:
        """Close every session when our leases may be expiring unconfirmed."""
        while not stopping.is_set():
            if (self.sessions.owned and self.last_renewed is not None
                    and time.monotonic() - self.last_renewed > self.fence_after):
                log.error("self-fencing: leases not renewed in time; closing all sessions",
                          extra={"accounts": len(self.sessions.owned),
                                 "since_renewal_s": round(time.monotonic() - self.last_renewed, 1)})
                await self.sessions.close_all()
            try:
                await asyncio.wait_for(stopping.wait(), timeout=0.25)
            except asyncio.TimeoutError:
                pass


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__
