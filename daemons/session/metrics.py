"""Prometheus metrics of one session daemon, on ``metrics.host:(metrics.base_port + instance)``.

Off unless ``metrics.enabled``. Counters are incremented where things happen (one line each in
the daemon modules); everything else is read when Prometheus scrapes: the daemon's own figures
from memory (process-tree RSS as the heartbeat last measured it, the age of the last confirmed
lease renewal) and the queues from the database, so a gauge can never drift from the truth.

Fleet-wide gauges (``blazz_fleet_*``) read shared tables: every daemon reports the same value;
aggregate them with ``max``, not ``sum``. Everything else is this daemon's own.
"""

from __future__ import annotations

import logging
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from blazzctl.enums import AccountStatus

log = logging.getLogger("blazz.metrics")

REGISTRY = CollectorRegistry()  # one daemon per process: the module's registry is the daemon's
ProcessCollector(registry=REGISTRY)  # process_*: the daemon's own CPU, memory, open files (not Chromium's)

leases_claimed = Counter("blazz_leases_claimed", "Leases this daemon claimed", registry=REGISTRY)
stranded_connections_killed = Counter(
    "blazz_stranded_connections_killed", "Database connections of dead daemons ended because they still held "
    "expired accounts' row locks", registry=REGISTRY)
leases_renewed = Counter("blazz_leases_renewed", "Lease renewals the database confirmed (one per lease "
                         "per round)", registry=REGISTRY)
leases_lost = Counter("blazz_leases_lost", "Leases found taken over or expired (the session was closed)",
                      registry=REGISTRY)
sessions_started = Counter("blazz_sessions_started", "Sessions started (the provider accepted the start)",
                           registry=REGISTRY)
sessions_failed = Counter("blazz_sessions_failed", "Session starts that raised, and logins that failed",
                          registry=REGISTRY)
inbound_spooled = Counter("blazz_inbound_spooled", "Inbound events the database could not take at once, "
                          "written to the local spool", registry=REGISTRY)
inbound_replayed = Counter("blazz_inbound_replayed", "Spooled inbound events stored later", registry=REGISTRY)
inbound_caught_up = Counter("blazz_inbound_caught_up", "Messages a new session's page held that the database "
                            "had missed, stored by the catch-up", registry=REGISTRY)
messages_sent = Counter("blazz_messages_sent", "Outbound messages WhatsApp accepted", registry=REGISTRY)
messages_received = Counter("blazz_messages_received", "Inbound messages stored (duplicates not counted)",
                            registry=REGISTRY)
send_seconds = Histogram("blazz_message_send_seconds", "Seconds from the start of a send to WhatsApp's answer",
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60), registry=REGISTRY)
webhook_deliveries = Counter("blazz_webhook_deliveries", "Webhook delivery attempts by outcome "
                             "(delivered, retry, dead, gone)", ["outcome"], registry=REGISTRY)
for _outcome in ("delivered", "retry", "dead", "gone"):  # present at 0, so rate() and alerts see them
    webhook_deliveries.labels(outcome=_outcome)

CACHE_SECONDS = 1.0  # scrapes closer together than this reuse the last database figures


class StateCollector(Collector):
    """Gauges read at scrape time from the daemon and the database."""

    def __init__(self, daemon) -> None:
        self.daemon = daemon
        self._cached: tuple[float, dict] | None = None

    def collect(self):
        d = self.daemon
        yield _gauge("blazz_daemon_info", "This daemon (always 1)", 1,
                     {"name": d.name, "host": d.host, "instance": str(d.instance), "version": _version()})
        yield _gauge("blazz_process_tree_rss_bytes", "RSS of the daemon and its children (Chromium), "
                     "as of the last heartbeat", d.claimer.memory_bytes)
        yield _gauge("blazz_sessions", "Sessions this daemon holds", len(d.sessions.owned))
        if d.claimer.last_renewed is not None:
            yield _gauge("blazz_lease_renewal_age_seconds", "Seconds since the last confirmed lease renewal "
                         "started (the daemon self-fences at 75 % of the lease TTL)",
                         d.claimer.clock() - d.claimer.last_renewed)
        yield from _pool_gauges(d.sessions.provider)
        versions = getattr(d.sessions, "versions", None)
        failures = CounterMetricFamily("blazz_wa_version_failures", "Session failures this daemon attributed to the "
                                       "WhatsApp Web build the page ran (self-check, stuck loading)",
                                       labels=["version"])
        for version, count in sorted((versions.failures if versions is not None else {}).items()):
            failures.add_metric([version], count)
        yield failures
        figures = self._figures()
        yield _gauge("blazz_database_up", "1 when the scrape could read the database", int(figures is not None))
        if figures is None:
            return
        owned = GaugeMetricFamily("blazz_accounts", "Accounts this daemon owns, by status", labels=["status"])
        fleet = GaugeMetricFamily("blazz_fleet_accounts", "Accounts of the whole fleet by status (not removed)",
                                  labels=["status"])
        for family, counts in ((owned, figures["owned"]), (fleet, figures["fleet"])):
            for status in _STATUSES:
                family.add_metric([status], counts.get(status, 0))
            yield family
        yield _gauge("blazz_messages_pending", "Outbound messages of this daemon's accounts not yet sent",
                     figures["messages_pending"])
        builds = GaugeMetricFamily("blazz_fleet_accounts_by_wa_version", "Connected accounts of the whole fleet by "
                                   "the WhatsApp Web build their page runs", labels=["version"])
        for version, count in sorted(figures["builds"].items()):
            builds.add_metric([version], count)
        yield builds
        yield _gauge("blazz_fleet_webhook_outbox_pending", "Webhook deliveries waiting (the outbox backlog)",
                     figures["webhooks_pending"])
        yield _gauge("blazz_fleet_webhook_outbox_oldest_age_seconds", "Age of the oldest waiting webhook "
                     "delivery (0 when none waits)", figures["webhooks_oldest_age"] or 0.0)

    def _figures(self) -> dict | None:
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
            return self._cached[1]
        from blazzctl.services import overview

        try:
            with self.daemon.db.session() as s:
                pending, oldest = overview.webhook_backlog(s)
                figures = {"owned": overview.accounts_by_status(s, owner=self.daemon.name),
                           "fleet": overview.accounts_by_status(s),
                           "messages_pending": overview.messages_pending(s, owner=self.daemon.name),
                           "webhooks_pending": pending, "webhooks_oldest_age": oldest,
                           "builds": overview.accounts_by_wa_version(s)}
        except Exception as exc:  # a scrape must not fail because the database is away
            log.warning("metrics: database figures unavailable", extra={"error": str(exc)[:200]})
            return None
        self._cached = (now, figures)
        return figures


def start(daemon, settings) -> object | None:
    """Serve this daemon's metrics when enabled; returns the server (``stop`` it), or None.

    A port already in use is logged and the daemon runs on without metrics: an observability
    problem must not take accounts offline.
    """
    if not settings.enabled:
        return None
    from prometheus_client import start_http_server

    global _collector
    if _collector is not None:  # a second daemon object in one process (tests)
        REGISTRY.unregister(_collector)
    _collector = StateCollector(daemon)
    REGISTRY.register(_collector)
    port = settings.base_port + daemon.instance
    try:
        server, _thread = start_http_server(port, addr=settings.host, registry=REGISTRY)
    except OSError as exc:
        log.error("metrics not served: cannot listen", extra={"host": settings.host, "port": port,
                                                              "error": str(exc)})
        return None
    log.info("metrics served", extra={"url": f"http://{settings.host}:{port}/metrics"})
    return server


def stop(server) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


_collector: StateCollector | None = None
_STATUSES = tuple(status.value for status in AccountStatus)


def _pool_gauges(provider):
    """Pooled browsers (providers.webjs.accounts_per_browser > 1): how many, and how full."""
    pool = getattr(provider, "pool", None)
    if pool is None:
        return
    yield _gauge("blazz_browsers", "Pooled Chromium browsers this daemon runs", len(pool.slots))
    contexts = GaugeMetricFamily("blazz_browser_contexts", "Accounts (contexts) in each pooled browser, by its "
                                 "place in the pool", labels=["browser"])
    pss = GaugeMetricFamily("blazz_browser_pss_bytes", "PSS of each pooled browser (all its processes) as of its "
                            "last check; over providers.webjs.max_browser_mb it is drained", labels=["browser"])
    for place, slot in enumerate(pool.slots):
        contexts.add_metric([str(place)], len(slot.contexts))
        pss.add_metric([str(place)], slot.pss_bytes)
    yield contexts
    yield pss
    killed = CounterMetricFamily("blazz_browsers_killed_hung", "Pooled browsers killed because they did not answer "
                                 "a check within providers.webjs.browser_hang_timeout")
    killed.add_metric([], pool.killed_hung)
    yield killed
    recycled = CounterMetricFamily("blazz_browsers_recycled", "Pooled browsers drained because their PSS passed "
                                   "providers.webjs.max_browser_mb")
    recycled.add_metric([], pool.recycled)
    yield recycled
    failures = CounterMetricFamily("blazz_login_snapshot_failures", "Pooled logins that could not be snapshotted "
                                   "(each kept its previous archive; the log names the account and why)")
    failures.add_metric([], getattr(provider, "snapshot_failures", 0))
    yield failures


def _gauge(name: str, doc: str, value: float, labels: dict | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels) if labels else None)
    family.add_metric(list(labels.values()) if labels else [], value)
    return family


def _version() -> str:
    from blazzctl import __version__

    return __version__
