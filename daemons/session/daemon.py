"""The session daemon: one asyncio process that owns the control flow.

Lifecycle: register_birth → first claim round → READY → loops (claims, fencing, heartbeat,
commands, session starts, provider events) → on the first SIGTERM/SIGINT drain: STOPPING,
stop claiming, close sessions saving their logins, release leases, register_death, exit 0.
A second signal exits at once. Signal handlers only set events; this loop does the work.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import random
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from blazzctl import __version__, paths
from blazzctl.db import Database, ServerLimits
from blazzctl.enums import DaemonStatus
from blazzctl.providers import base as providers
from daemons.session import commands, heartbeat, leases, media, metrics, sync
from daemons.session.claimer import Claimer, lease_limits
from daemons.session.notify import Notifier
from daemons.session.outbound import Outbound
from daemons.session.pacing import IdleBackoff
from daemons.session.sessions import Sessions
from daemons.session.spool import Spool
from daemons.session.status import StatusWriter
from daemons.session.versions import Versions
from daemons.session.webhooks import run_dispatcher

log = logging.getLogger("blazz.daemon")

COMMAND_POLL = 1.0  # seconds between polls for operator commands (only while owning accounts) ...
COMMAND_IDLE_POLL = 3.0  # ... growing to this while none come (the daemon's idle load)


class SessionDaemon:
    def __init__(self, settings, *, instance: int, state_dir, host: str | None = None,
                 early_signals: list[int] | None = None) -> None:
        self.early_signals = early_signals if early_signals is not None else []
        self.settings = settings
        self.instance = instance
        self.host = host or socket.gethostname()
        self.name = f"{self.host}:{instance}"
        self.state_dir = state_dir
        ttl = settings.daemon.lease_ttl
        # A transaction left open by this daemon (stalled, partitioned) is rolled back by the server
        # after about a TTL, so its row locks cannot keep the next owner out.
        self.db = Database(settings.database_url, connect_timeout=settings.database.connect_timeout,
                           pool_size=settings.database.pool_size,
                           limits=ServerLimits(idle_transaction=math.ceil(ttl), keepalive=max(1, int(ttl / 3))))
        lease_db = Database(settings.database_url, connect_timeout=min(settings.database.connect_timeout, ttl / 4),
                            pool_size=1, limits=lease_limits(ttl))
        self.notifier = Notifier.from_env()
        self.stopping = asyncio.Event()
        self.signals = 0
        self.drained_from = 0  # accounts held when the drain began
        media_dir = (Path(settings.messages.media_dir).expanduser() if settings.messages.media_dir
                     else paths.daemon_state_base(settings.daemon.state_dir) / "media")
        spool = Spool(paths.daemon_state_base(settings.daemon.state_dir) / "spool")  # shared by the host's daemons
        self.sessions = Sessions(self.db, StatusWriter(self.db, self.name), stagger=settings.daemon.start_stagger,
                                 messages=settings.messages, media_dir=media_dir, spool=spool,
                                 versions=Versions(self.db, settings.providers.webjs, self.name))
        self.claimer = Claimer(self.db, self.sessions, owner=self.name, settings=settings, notifier=self.notifier,
                               lease_db=lease_db)
        self.tree = heartbeat.ProcessTree()
        self.events: asyncio.Queue[providers.ProviderEvent | None] = asyncio.Queue()  # None: the drain is over

    # --- signals ------------------------------------------------------------------------

    def request_stop(self, signum: int) -> None:
        self.signals += 1
        if self.signals > 1:
            log.warning("second signal: exiting now", extra={"signal": signal.Signals(signum).name})
            os._exit(1)
        log.info("stop requested: draining", extra={"signal": signal.Signals(signum).name})
        self.stopping.set()

    # --- lifecycle ----------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # Sessions, sends and syncs each wait on the database in a thread; the default pool (cores + 4)
        # is quickly full of them. The lease work has its own thread (Claimer).
        loop.set_default_executor(ThreadPoolExecutor(max_workers=32, thread_name_prefix="work"))
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        for signum in self.early_signals[:2]:  # stop requests that came while we were starting
            self.request_stop(signum)
        provider_cls = providers.load_provider_class(self.settings.providers.webjs.driver)  # bad config: exit now
        await self._be_born()
        self.sessions.provider = provider_cls(settings=self.settings.providers.webjs, state_dir=self.state_dir,
                                              emit=self.events.put, daemon_name=self.name,
                                              secrets=self.settings.secrets, database=self.db)
        await self.sessions.provider.open()
        metrics_server = metrics.start(self, self.settings.metrics)
        await self._first_round()
        self.notifier.ready(self._status_line())
        log.info("ready", extra={"accounts": len(self.sessions.owned), "pid": os.getpid()})
        # Renewal and self-fencing outlive the drain: they stop only once every browser is closed.
        # So do the event pump and the spool's replay: a page still hears WhatsApp while it
        # closes, and what it acknowledged must be stored.
        leasing = asyncio.Event()
        lease_tasks = [asyncio.create_task(self.claimer.loop(leasing)),
                       asyncio.create_task(self.claimer.fence_watch(leasing)),
                       asyncio.create_task(self.sessions.writes.loop(self.sessions, leasing))]
        pump = asyncio.create_task(self._event_pump())
        tasks = [asyncio.create_task(coro) for coro in (
            self._heartbeat_loop(), self._command_loop(), self.sessions.starter_loop(self.stopping))]
        tasks += self._extra_tasks()
        await self.stopping.wait()
        await self._drain(tasks)
        self.events.put_nowait(None)  # the pump stores what the pages heard until they closed, then ends
        await pump
        leasing.set()
        await asyncio.gather(*lease_tasks, return_exceptions=True)
        await self._after_drain()
        metrics.stop(metrics_server)
        return 0

    def _extra_tasks(self) -> list[asyncio.Task]:
        """Workers beside the session loops: the webhook dispatcher."""
        return [asyncio.create_task(run_dispatcher(self.db, self.settings, self.name, self.stopping)),
                asyncio.create_task(sync.run_sync(self.db, self.sessions, self.settings, self.name, self.stopping)),
                asyncio.create_task(Outbound(self.db, self.sessions, self.name, self.settings.messages,
                                             deadline=self.claimer.deadline, fleet_share=self.claimer.fleet_share,
                                             send_margin=self.settings.daemon.send_margin).loop(self.stopping)),
                asyncio.create_task(media.prune_loop(self.db, self.settings.messages, self.stopping)),
                asyncio.create_task(self.sessions.versions.roll_loop(self.sessions, self.stopping))]

    async def _be_born(self) -> None:
        failures = 0
        while True:  # a database outage at start must not become a crash loop
            try:
                await asyncio.to_thread(heartbeat.register_birth, self.db, name=self.name, host=self.host,
                                        instance=self.instance, version=__version__,
                                        capacity=self.settings.daemon.capacity)
                released = await asyncio.to_thread(leases.release_all, self.db, owner=self.name)
                log.info("registered", extra={"released_stale_leases": released, "version": __version__})
                return
            except Exception as exc:
                if getattr(exc, "exit_code", None) == 4:  # a live twin: refuse to run
                    raise
                failures += 1
                delay = min(30.0, 0.5 * 2 ** failures)
                log.warning("database not reachable at start", extra={"error": str(exc)[:200], "retry_in": delay})
                self.notifier.status(f"waiting for the database: {str(exc)[:100]}")
                self.notifier.extend_timeout(delay + 30)  # still alive: don't let TimeoutStartSec kill us
                try:
                    await asyncio.wait_for(self.stopping.wait(), timeout=delay)
                    raise SystemExit(0)
                except asyncio.TimeoutError:
                    pass

    async def _first_round(self) -> None:
        # A short random pause lets daemons started together see each other's birth rows
        # before claiming, so they do not all grab a full batch and hand half of it back.
        await asyncio.sleep(random.uniform(0, min(1.0, self.settings.daemon.claim_interval / 2)))
        while not self.stopping.is_set():
            try:
                await self.claimer.round()
                return
            except Exception as exc:
                log.warning("first claim round failed", extra={"error": str(exc)[:200]})
                self.notifier.extend_timeout(self.settings.daemon.claim_interval + 30)
                await asyncio.sleep(self.settings.daemon.claim_interval)

    async def _drain(self, tasks: list[asyncio.Task]) -> None:
        """Close every session, saving its login, while the leases are still renewed and fenced:
        a browser is never open without a live lease. What has not closed by ``drain_timeout`` is
        killed (closed without saving), and then its lease is handed back."""
        self.notifier.stopping("draining: closing sessions and releasing leases")
        self.claimer.claiming = False
        self.drained_from = len(self.sessions.owned)
        await self._beat(DaemonStatus.DRAINING)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self.sessions.release_all(reason="daemon stopping"),
                                   timeout=self.settings.daemon.drain_timeout)
        except asyncio.TimeoutError:
            log.error("drain timed out: closing the remaining sessions without saving their logins",
                      extra={"accounts": len(self.sessions.owned)})
            left = self.sessions.leases()
            await self.sessions.close_all()
            try:
                await self.claimer.run(leases.release, self.claimer.db, owner=self.name, leases=left)
            except Exception as exc:  # the leases expire by themselves; nothing drives them now
                log.warning("could not hand back the leases", extra={"error": str(exc)[:200]})

    async def _after_drain(self) -> None:
        if self.sessions.provider is not None:
            await self.sessions.provider.close()
        try:
            await asyncio.to_thread(heartbeat.register_death, self.db, name=self.name)
        except Exception as exc:
            log.warning("could not mark the daemon stopped", extra={"error": str(exc)[:200]})
        log.info("stopped", extra={"accounts_at_stop": self.drained_from,
                                   "released": self.sessions.released_count})
        self.claimer.close()
        self.db.dispose()

    # --- loops --------------------------------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        while not self.stopping.is_set():
            await self._beat(DaemonStatus.RUNNING)
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=self.settings.daemon.heartbeat_interval)
            except asyncio.TimeoutError:
                pass

    async def _beat(self, status: DaemonStatus) -> None:
        try:
            stats = await self.claimer.run(self.tree.stats)
            self.claimer.memory_bytes = stats.rss_bytes
            text = self._status_line()
            await self.claimer.run(heartbeat.heartbeat, self.claimer.db, name=self.name, status=status, status_text=text,
                                    owned=len(self.sessions.owned), tree=stats,
                                    capacity=self.claimer.capacity_now())
            self.notifier.status(text)
        except Exception as exc:
            log.warning("heartbeat failed", extra={"error": str(exc)[:200]})

    async def _command_loop(self) -> None:
        backoff = IdleBackoff(COMMAND_POLL, COMMAND_IDLE_POLL)
        while not self.stopping.is_set():
            found = False
            try:  # also when owning nothing: it settles accounts a dead daemon left (commands.py)
                found = await commands.run_pending(self.db, self.sessions, self.name,
                                                   state_dir=self.settings.daemon.state_dir,
                                                   sweep_every=self.claimer.fleet_share(commands.SWEEP_INTERVAL))
            except Exception as exc:
                log.warning("command poll failed", extra={"error": str(exc)[:200]})
            try:
                await asyncio.wait_for(self.stopping.wait(), timeout=backoff.found(found))
            except asyncio.TimeoutError:
                pass

    async def _event_pump(self) -> None:
        while True:
            event = await self.events.get()
            if event is None:  # the drain is over (run)
                return
            try:
                await self.sessions.on_event(event)
            except Exception:
                log.exception("event handling failed", extra={"account_id": event.account_id})

    def _status_line(self) -> str:
        states = [a.state for a in self.sessions.owned.values()]
        return f"holding {len(states)} accounts ({states.count('live')} live)"
