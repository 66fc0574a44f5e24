"""The claim loop: renew what we hold, notice what we lost, take our fair share, give back surplus.

Self-fencing also lives here: WhatsApp cannot check our lease epoch, so when the database
has not confirmed our leases for ``fence_after`` seconds (our own clock, started before the
last successful renewal was sent), every session is closed before the lease can expire and
another daemon may claim the account. The clock is ``CLOCK_BOOTTIME``: unlike the monotonic
clock it counts time the machine (or VM) spent suspended, while the database's clock and so
the leases ran on.

The systemd watchdog is fed here too, and only while a freeze right now would still be caught
in time: with the leases confirmed less than ``lease_ttl - watchdog - PING_MARGIN x lease_ttl``
ago (or none held). A daemon frozen by SIGSTOP, a VM pause or a GC stall stops pinging and
systemd kills its cgroup, browsers included, before its leases expire (the unit's WatchdogSec
is 0.4 x TTL: ``blazzctl.services.units.watchdog_sec``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
import time
from concurrent.futures import ThreadPoolExecutor

from blazzctl.db import Database, ServerLimits
from blazzctl.enums import DesiredState
from daemons.session import leases, metrics
from daemons.session.notify import Notifier
from daemons.session.sessions import Sessions

log = logging.getLogger("blazz.claims")

PING_MARGIN = 0.15  # of the lease TTL: time for systemd to kill the cgroup once the watchdog fires
FENCE_TICK = 0.25  # seconds between fence checks (and watchdog pings)


def boottime() -> float:
    """Seconds on a clock that keeps counting while the machine is suspended."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):  # not Linux
        return time.monotonic()


def lease_limits(lease_ttl: float) -> ServerLimits:
    """The lease connection's limits: a renewal that cannot finish well inside the fence deadline
    fails fast (and is retried) rather than waiting on another session's row lock or a dead peer."""
    return ServerLimits(idle_transaction=math.ceil(lease_ttl), lock_wait=max(1, int(lease_ttl / 8)),
                        statement=max(1.0, lease_ttl / 4), read_timeout=max(2, math.ceil(lease_ttl / 4)),
                        keepalive=max(1, int(lease_ttl / 3)))


class Claimer:
    """Renew, claim, release and heartbeat run here on one thread of their own with one database
    connection of their own (``lease_db``): outbound sends waiting on locked rows, a slow sync or a
    flood of events cannot take the thread or the connection the renewal needs."""

    def __init__(self, db, sessions: Sessions, *, owner: str, settings, notifier: Notifier,
                 lease_db: Database | None = None) -> None:
        self.db = lease_db or db
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="lease")
        self.sessions = sessions
        self.owner = owner
        self.cfg = settings.daemon
        self.notifier = notifier
        self.fence_after = self.cfg.lease_ttl * 0.75
        self.last_renewed: float | None = None  # boottime() at the start of the last confirmed renewal
        self.clock = boottime
        self.last_ping = float("-inf")
        self._pushing: asyncio.Task | None = None
        self.claiming = True
        self.memory_bytes = 0  # set by the heartbeat from the process tree
        self.rounds_ok = 0
        self.live_daemons = 1  # live daemons in the fleet, as the last claim round counted them
        self._next_unlock = float("-inf")  # clock() before which _unlock_stranded does not look again

    def fleet_share(self, seconds: float) -> float:
        """The interval for this daemon's part of fleet-wide work that should happen every
        ``seconds`` in the fleet as a whole (any daemon may do it): ``seconds`` times the live
        daemons, jittered, so the fleet's cost stays the same however many daemons run."""
        return seconds * max(1, self.live_daemons) * random.uniform(0.75, 1.25)

    async def run(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` on the lease thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
        self.db.dispose()

    def capacity_now(self) -> int:
        """What this daemon can hold now: its capacity, or what it holds once over its memory budget
        (written to its row by the heartbeat, so other daemons take the accounts it cannot)."""
        budget = self.cfg.memory_budget_mb * 1024 * 1024
        if budget and self.memory_bytes > budget:
            return min(self.cfg.capacity, len(self.sessions.owned))
        return self.cfg.capacity

    async def round(self) -> bool:
        """One renew-then-claim round; True when more accounts are wanted at once.

        Raises on database errors (the loop backs off).
        """
        started = self.clock()
        held = await self.run(leases.renew, self.db, owner=self.owner, ttl=self.cfg.lease_ttl)
        self.last_renewed = started
        metrics.leases_renewed.inc(len(held))
        await self._reconcile(held)
        self.feed_watchdog()
        self._push_deadline()
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
                self.sessions.release_soon(account_id, reason="desired state stopped")
        strays = {a: lease.epoch for a, lease in held.items() if a not in local}
        if strays:  # held in the database but not running here (e.g. after self-fencing)
            await self.run(leases.release, self.db, owner=self.owner, leases=strays)

    async def _rebalance(self) -> bool:
        active = self.sessions.active()
        owned = len(active)
        target, runnable, live = await self.run(
            leases.fair_target, self.db, heartbeat_interval=self.cfg.heartbeat_interval,
            capacity=self.capacity_now(), owner=self.owner)
        self.live_daemons = live
        if owned < target:
            want = min(self.cfg.claim_batch, target - owned)
            got = await self.run(leases.claim, self.db, owner=self.owner, limit=want,
                                          ttl=self.cfg.lease_ttl)
            metrics.leases_claimed.inc(len(got))
            for lease in got:
                log.info("claimed", extra={"account_id": lease.account_id, "epoch": lease.epoch})
                self.sessions.adopt(lease)
            if len(got) < want:
                await self._unlock_stranded()
            # A full batch while still short of the target: claim again soon, not a whole interval later.
            return len(got) == want and owned + len(got) < target
        if owned > target:
            surplus = sorted(active)[-min(self.cfg.claim_batch, owned - target):]
            log.info("releasing surplus", extra={"count": len(surplus), "target": target, "live_daemons": live})
            for account_id in surplus:
                self.sessions.release_soon(account_id, reason="rebalance")
        return False

    async def _unlock_stranded(self) -> None:
        """Fewer accounts to claim than wanted: if a dead daemon's lost connection still holds some
        of them locked, end it (leases.unlock_stranded). At most once a TTL: it costs queries."""
        now = self.clock()
        if now < self._next_unlock:
            return
        self._next_unlock = now + self.cfg.lease_ttl
        try:
            ended = await self.run(leases.unlock_stranded, self.db, ttl=self.cfg.lease_ttl,
                                   heartbeat_interval=self.cfg.heartbeat_interval)
        except Exception as exc:  # e.g. KILL refused to a user without the right: the claim round goes on
            log.warning("could not check for stranded row locks", extra={"error": _short(exc)})
            return
        for name in ended:
            metrics.stranded_connections_killed.inc()
            log.warning("ended a dead daemon's database connection that still held its accounts locked",
                        extra={"daemon": name})

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
            try:
                await asyncio.wait_for(stopping.wait(), timeout=delay)
            except asyncio.TimeoutError:
                pass

    def _push_deadline(self) -> None:
        """Every page learns the new fence deadline (in the background: a slow page must not hold
        up the round; one push at a time)."""
        provider = self.sessions.provider
        deadline = self.deadline()
        if provider is None or deadline is None or (self._pushing and not self._pushing.done()):
            return
        self._pushing = asyncio.create_task(provider.set_deadline(deadline))

    def deadline(self) -> float | None:
        """Wall-clock time until which our leases are confirmed: the fence deadline of the last
        renewal (None before the first). Sends must be handed over before it (outbound)."""
        if self.last_renewed is None:
            return None
        return time.time() + (self.last_renewed + self.fence_after - self.clock())

    def may_ping(self) -> bool:
        """Whether a WATCHDOG=1 now is safe: nothing is driven, or the leases were confirmed so
        recently that a freeze starting now gets us killed before they could expire. A database
        outage with nothing held is no reason for a restart loop."""
        if not self.sessions.owned or self.last_renewed is None:
            return True
        watchdog = self.notifier.watchdog_interval() or 0.0
        ttl = self.cfg.lease_ttl
        return self.clock() - self.last_renewed < ttl - watchdog - PING_MARGIN * ttl

    def feed_watchdog(self) -> None:
        now = self.clock()
        every = min(1.0, (self.notifier.watchdog_interval() or 4.0) / 4)
        if now - self.last_ping >= every and self.may_ping():
            self.last_ping = now
            self.notifier.watchdog()

    async def fence_watch(self, stopping: asyncio.Event) -> None:
        """Close every session when our leases may be expiring unconfirmed; feed the watchdog."""
        while not stopping.is_set():
            if (self.sessions.owned and self.last_renewed is not None
                    and self.clock() - self.last_renewed > self.fence_after):
                log.error("self-fencing: leases not renewed in time; closing all sessions",
                          extra={"accounts": len(self.sessions.owned),
                                 "since_renewal_s": round(self.clock() - self.last_renewed, 1)})
                await self.sessions.close_all()
            self.feed_watchdog()
            try:
                await asyncio.wait_for(stopping.wait(), timeout=FENCE_TICK)
            except asyncio.TimeoutError:
                pass


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return text.splitlines()[0][:300] if text else type(exc).__name__
