"""Typed settings: a YAML file plus ``BLAZZ_*`` environment overrides, validated once.

The schema is the dataclasses below. Each field's metadata carries its one-line
documentation and its bounds, so the validator, ``config show`` and the generated
``config/blazz.example.yaml`` all read from one place.
"""

from __future__ import annotations

import re
import typing
from dataclasses import dataclass, field
from typing import Any

from blazzctl import paths
from blazzctl.errors import ConfigError

CONFIG_ENV = "BLAZZ_CONFIG"


def setting(default: Any, doc: str, *, min: float | None = None, max: float | None = None,
            choices: tuple[str, ...] | None = None, secret: bool = False, env: str | None = None,
            check: typing.Callable[[Any], str | None] | None = None) -> Any:
    """A settings field: its default, its documentation and its validation rules.

    ``check`` is an extra rule for a string: it returns what is wrong, or None.
    """
    meta = {"doc": doc, "min": min, "max": max, "choices": choices, "secret": secret, "env": env,
            "check": check}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def section(cls: type, doc: str) -> Any:
    return field(default_factory=cls, metadata={"doc": doc, "section": True})


_DATABASE_URL = re.compile(r"^(sqlite(\+pysqlite)?|(mysql|mariadb)\+pymysql)://")  # drivers we install


def _database_url(value: str) -> str | None:
    if _DATABASE_URL.match(value):
        from blazzctl.db import database_url_problem  # parsed as the engine will (SQLAlchemy)

        return database_url_problem(value)
    return ("must be a mysql+pymysql://USER:PASSWORD@HOST/DB or sqlite:///PATH URL "
            "(MySQL 8 / MariaDB >= 10.6, or SQLite)")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str | None = setting(
        None, "SQLAlchemy URL, e.g. mysql+pymysql://blazz:PASSWORD@db/blazz; "
        "empty: the embedded SQLite file $XDG_STATE_HOME/blazz/blazz.db", secret=True, check=_database_url)
    connect_timeout: float = setting(10.0, "Seconds to wait for a connection to the database", min=1, max=300)
    pool_size: int = setting(5, "Connections kept open per process", min=1, max=100)


@dataclass(frozen=True)
class DaemonSettings:
    instances: int = setting(1, "Session daemons to run on this host (blazz-session@1..N)", min=1, max=64)
    capacity: int = setting(50, "Most accounts one daemon holds", min=1, max=10000)
    heartbeat_interval: float = setting(5.0, "Seconds between heartbeats of a daemon's row", min=0.2, max=300)
    claim_interval: float = setting(5.0, "Seconds between claim/renew rounds", min=0.2, max=300)
    lease_ttl: float = setting(30.0, "Seconds a lease lasts without renewal (database clock)", min=1, max=3600)
    drain_timeout: float = setting(30.0, "Seconds a stopping daemon may spend closing sessions", min=1, max=3600)
    send_margin: float = setting(2.0, "Seconds of lease (to the fence deadline) a send needs left before it is "
                                      "handed to the page, which refuses it after that deadline", min=0, max=600)
    claim_batch: int = setting(10, "Most accounts claimed in one round", min=1, max=1000)
    start_stagger: float = setting(0.5, "Seconds between two session starts of one daemon", min=0, max=60)
    memory_budget_mb: int = setting(0, "Stop claiming when the daemon's process tree uses this much "
                                       "memory (MB); 0: no budget", min=0)
    unowned_grace: float = setting(60.0, "Seconds a runnable account may stay unowned before health "
                                         "warns", min=1, max=86400)
    host: str | None = setting(None, "This host's name in daemon names (host:instance); empty: the system "
                                     "host name")
    state_dir: str | None = setting(None, "Chromium profiles and local caches; empty: $STATE_DIRECTORY "
                                          "under systemd, else $XDG_STATE_HOME/blazz")

    def __post_init__(self) -> None:
        """A lease must survive a missed round, and a daemon must look alive for a whole lease: with
        claim rounds or heartbeats any slower, one slow round self-fences a healthy daemon or marks
        it dead while it holds accounts."""
        problems = []
        if self.claim_interval >= 0.5 * self.lease_ttl:
            problems.append(("daemon", "daemon.claim_interval",
                             f"{self.claim_interval:g} must be below half of daemon.lease_ttl ({self.lease_ttl:g}): "
                             "lower it or raise daemon.lease_ttl"))
        if self.send_margin >= 0.75 * self.lease_ttl - self.claim_interval:
            problems.append(("daemon", "daemon.send_margin",
                             f"{self.send_margin:g} must be below 0.75 x daemon.lease_ttl - daemon.claim_interval "
                             f"({0.75 * self.lease_ttl - self.claim_interval:g}), or no send would ever have enough "
                             "lease left: lower it or raise daemon.lease_ttl"))
        if self.heartbeat_interval >= self.lease_ttl / 3:
            problems.append(("daemon", "daemon.heartbeat_interval",
                             f"{self.heartbeat_interval:g} must be below a third of daemon.lease_ttl "
                             f"({self.lease_ttl:g}): lower it or raise daemon.lease_ttl"))
        if problems:
            raise ConfigError(problems)


# Playwright's request.resource_type values (what providers.webjs.block_resources may name).
RESOURCE_TYPES = ("document", "stylesheet", "image", "media", "font", "script", "texttrack", "xhr", "fetch",
                  "eventsource", "websocket", "manifest", "other")


@dataclass(frozen=True)
class WebjsSettings:
    driver: str | None = setting(None, "Provider class as module:Class; empty: the built-in WhatsApp Web driver")
    options: dict = setting({}, "Free-form options passed to the driver")
    url: str = setting("https://web.whatsapp.com/", "WhatsApp Web URL", env="BLAZZ_WEBJS_URL")
    chromium_path: str = setting("/usr/bin/chromium", "Chromium executable")
    headless: bool = setting(True, "Run Chromium without a window")
    launch_args: list = setting([], "Extra Chromium command-line flags")
    user_agent: str | None = setting(None, "User agent; empty: Chromium's own")
    max_qr: int = setting(6, "QR rotations before a login attempt fails with qr_expired", min=1, max=100)
    pairing_timeout: float = setting(180.0, "Seconds a pairing code is offered before the login fails with "
                                            "pairing_code_expired", min=5, max=3600)
    checkpoint_interval: float = setting(300.0, "Seconds between login archives of a connected account",
                                         min=10, max=86400)
    start_timeout: float = setting(90.0, "Seconds for WhatsApp Web to load", min=5, max=3600)
    accounts_per_browser: int = setting(8, "Accounts one Chromium holds, each in its own context with its login "
                                           "kept as a snapshot; 1: a Chromium and a profile directory per account",
                                        min=1, max=64)
    block_resources: list = setting(["image", "font", "media"], "Resource types a page never loads (aborted by "
                                    "request interception): of document, stylesheet, image, media, font, script, "
                                    "texttrack, xhr, fetch, eventsource, websocket, manifest, other; media messages "
                                    "use fetch and still work; []: load everything")
    snapshot_after: float = setting(10.0, "Seconds after a pooled page's storage changes before its login "
                                          "snapshot is archived", min=1, max=3600)
    max_browser_mb: int = setting(4096, "PSS in MB above which a pooled browser is recycled: its accounts are "
                                        "restarted one at a time into another browser, logins kept; 0: never",
                                  min=0, max=1048576)
    browser_check_interval: float = setting(30.0, "Seconds between checks of each pooled browser (does it answer, "
                                                  "its PSS)", min=0.5, max=3600)
    browser_hang_timeout: float = setting(30.0, "Seconds a pooled browser may take to answer a check before it "
                                                "is killed and its accounts restarted from their snapshots",
                                          min=1, max=3600)
    auto_pin: bool = setting(True, "When a new WhatsApp Web build fails (the module self-check, or "
                                   "bad_version_failures failures within bad_version_window), mark it bad and pin "
                                   "the last good build for the whole fleet")
    bad_version_failures: int = setting(5, "Failures of one build (stuck loading, ...) within bad_version_window "
                                           "that make it bad", min=1, max=100000)
    bad_version_window: float = setting(600.0, "Seconds over which bad_version_failures are counted",
                                        min=10, max=86400)
    version_check_interval: float = setting(30.0, "Seconds between each daemon's reads of the fleet's WhatsApp Web "
                                                  "policy (a pin or canary reaches running sessions within this)",
                                            min=1, max=3600)
    version_roll_rate: float = setting(6.0, "Sessions per minute each daemon reloads onto another WhatsApp Web "
                                            "build after a pin, unpin, canary, promote or reject", min=0.1, max=600)
    ready_timeout: float = setting(180.0, "Seconds a linked page may take to finish loading (hasSynced) before "
                                          "it is restarted as stuck_loading (the third time in a row, the "
                                          "account fails)", min=1, max=3600)
    decrypt_timeout: float = setting(30.0, "Seconds an incoming message may stay undecrypted (ciphertext) before "
                                           "it is stored with status undecrypted (completed when it decrypts)",
                                     min=0.1, max=86400)

    def __post_init__(self) -> None:
        bad = [t for t in self.block_resources if t not in RESOURCE_TYPES]
        if bad:
            raise ConfigError([("providers", "providers.webjs.block_resources",
                                f"unknown resource type {bad[0]!r}; one of: {', '.join(RESOURCE_TYPES)}")])
        if {"document", "script"} & set(self.block_resources):
            raise ConfigError([("providers", "providers.webjs.block_resources",
                                "WhatsApp Web cannot run without documents and scripts; remove them")])


@dataclass(frozen=True)
class ProvidersSettings:
    webjs: WebjsSettings = section(WebjsSettings, "WhatsApp Web through Chromium and Playwright")


@dataclass(frozen=True)
class SecretsSettings:
    session_key_file: str | None = setting(
        None, "Key that encrypts login archives; every host sharing the database needs the same file; "
              "empty: generated on first use in the state directory")


@dataclass(frozen=True)
class WebhooksSettings:
    enabled: bool = setting(True, "Run the webhook dispatcher in every session daemon")
    retry_schedule: list = setting([5, 30, 120, 600, 1800, 3600, 7200, 14400, 28800, 28800],
                                   "Seconds to wait before each retry of a failed delivery (about a day "
                                   "in all); after the last one the delivery is dead")
    timeout: float = setting(15.0, "Seconds to connect, and to wait for the answer, of one delivery",
                             min=0.1, max=300)
    concurrency_per_endpoint: int = setting(16, "Most deliveries in flight to one endpoint per daemon",
                                            min=1, max=1000)
    batch_size: int = setting(200, "Most deliveries one daemon claims and holds in flight at once",
                              min=1, max=10000)
    poll_interval: float = setting(0.25, "Seconds between looks for due deliveries when idle", min=0.01, max=60)
    lock_seconds: float = setting(60.0, "Seconds a claimed delivery stays reserved to its daemon before "
                                        "another may take it (raised to 2 x timeout + 5 when lower)",
                                  min=1, max=3600)
    retention_days: float = setting(7.0, "Days delivered deliveries are kept (for `webhook deliveries` and "
                                         "redelivery); dead ones are kept until redelivered; 0: for ever",
                                    min=0, max=3650)
    rotation_grace: float = setting(86400.0, "Seconds the old secret keeps signing deliveries (next to the new "
                                             "one) after `webhook rotate-secret`", min=0, max=30 * 86400)

    def __post_init__(self) -> None:
        bad = [d for d in self.retry_schedule
               if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d <= 7 * 86400]
        if bad:
            raise ConfigError([("webhooks", "webhooks.retry_schedule",
                                f"must be a list of seconds between 0 and 604800, not {bad[0]!r}")])


@dataclass(frozen=True)
class MessagesSettings:
    rate_per_minute: float = setting(20.0, "Messages one account sends per minute at most (token bucket); "
                                           "0: no limit", min=0, max=6000)
    burst: int = setting(3, "Messages an account may send back to back before the rate applies", min=1, max=1000)
    jitter: float = setting(1.0, "Up to this many random seconds added between two sends of an account "
                                 "(looks less like a bot)", min=0, max=60)
    send_attempts: int = setting(5, "Tries of a send that fails for a transient reason before it fails",
                                 min=1, max=100)
    poll_interval: float = setting(0.5, "Seconds between looks for pending outbound messages", min=0.05, max=60)
    resolve_timeout: float = setting(60.0, "Seconds a new owner asks WhatsApp about a message the previous one "
                                           "had handed to its page before giving it status unknown",
                                     min=1, max=3600)
    pending_ttl: float = setting(86400.0, "Seconds a message may wait unsent (its account not connected); "
                                          "then it fails with error expired", min=1, max=90 * 86400)
    media_max_mb: dict = setting({"image": 16, "video": 16, "audio": 16, "document": 100},
                                 "Largest media file per kind, in MB (after WhatsApp's own limits)")
    download_media: bool = setting(False, "Store received media in the database (message_media_chunks), readable "
                                          "from any host with `blazzctl message media`")
    max_download_mb: float = setting(16.0, "Largest received media file stored, in MB; larger ones keep only "
                                           "their metadata", min=0.01, max=2048)
    media_retention_days: float = setting(30.0, "Days received media is kept in the database; 0: for ever",
                                          min=0, max=3650)
    media_dir: str | None = setting(None, "Unused: received media is stored in the database (kept so older "
                                          "configuration files stay valid)")
    ignore_status_broadcasts: bool = setting(True, "Ignore Status updates (status@broadcast)")
    auto_read: bool = setting(False, "Send a read receipt (blue ticks) for every received message as it is stored")


@dataclass(frozen=True)
class SyncSettings:
    window_days: int = setting(30, "Chats with a message in this many days are synced", min=1, max=3650)
    max_chats: int = setting(1000, "Most chats synced per account and run", min=1, max=1000000)
    batch_size: int = setting(500, "Rows per batched upsert", min=1, max=10000)
    schedule: str | None = setting(None, "Cron expression (5 fields) for syncs run by the daemons, e.g. "
                                         "\"0 3 * * *\"; empty: only on request")

    def __post_init__(self) -> None:
        problem = cron_problem(self.schedule) if self.schedule else None
        if problem:
            raise ConfigError([("sync", "sync.schedule", problem)], hint='For example "0 3 * * *" (03:00 UTC daily).')


# minute, hour, day of month, month, day of week: the bounds of each cron field
_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
_CRON_NAMES = {"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
               "sun", "mon", "tue", "wed", "thu", "fri", "sat"}


def cron_problem(expression: str) -> str | None:
    """What is wrong with a 5-field cron expression, or None (the daemon's APScheduler parses it)."""
    fields = expression.split()
    if len(fields) != 5:
        return f"{expression!r} must have 5 fields (minute hour day month weekday), not {len(fields)}"
    for text, (what, low, high) in zip(fields, _CRON_FIELDS):
        for part in text.split(","):
            base, _, step = part.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                return f"{expression!r}: bad step {step!r} in the {what} field"
            for value in (base.split("-") if base != "*" else []):
                if not (value.isdigit() and low <= int(value) <= high) and value.lower() not in _CRON_NAMES:
                    return f"{expression!r}: {value!r} is not a valid {what} ({low}-{high})"
    return None


@dataclass(frozen=True)
class LoggingSettings:
    level: str = setting("info", "Log level", choices=("debug", "info", "warning", "error"))
    format: str = setting("text", "text, or json for log shipping", choices=("text", "json"))


@dataclass(frozen=True)
class MetricsSettings:
    enabled: bool = setting(False, "Serve Prometheus metrics from every session daemon on "
                                   "host:(base_port + instance)")
    base_port: int = setting(9450, "Daemon N listens on base_port + N (9451, 9452, ...)", min=1, max=65000)
    host: str = setting("127.0.0.1", "Address the metrics listen on (keep it local; scrape through SSH "
                                     "or a local Prometheus)")


def _listen_host(value: str) -> str | None:
    import ipaddress

    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "must be an IP address (127.0.0.1, ::1, or 0.0.0.0 with allow_remote)"
    return None


@dataclass(frozen=True)
class ApiSettings:
    host: str = setting("127.0.0.1", "Address blazz-api listens on; anything but loopback needs allow_remote "
                                     "(put a TLS reverse proxy in front)", check=_listen_host)
    port: int = setting(8080, "Port blazz-api listens on", min=1, max=65535)
    workers: int = setting(2, "blazz-api worker processes (each with its own database pool)", min=1, max=64)
    threads: int = setting(1, "Requests each worker runs at once (their database work, in threads; waits and "
                              "webhook tests do not hold one). One is fastest on a busy machine: more threads "
                              "of one process mostly queue for Python's GIL", min=1, max=64)
    inline_reads: bool = setting(True, "Run reads (GET) on the worker's event loop, not in a request thread: a "
                                       "quarter less CPU per read; a stalled read holds the worker, as it holds "
                                       "its one thread with threads: 1")
    allow_remote: bool = setting(False, "Allow host to be a non-loopback address")
    rate_limit_per_minute: int = setting(6000, "Requests one API key may make per minute, counted by each worker "
                                               "on its own (fixed window); 0: no limit", min=0, max=10_000_000)
    access_log: bool = setting(False, "Log a line per request (the reverse proxy in front usually logs them "
                                      "already; each line costs about 3 % of a request's CPU)")


@dataclass(frozen=True)
class HealthSettings:
    failed_critical_ratio: float = setting(0.2, "Failed accounts, as a share of the runnable ones (meant to run, or "
                                                "failed), above which health is CRITICAL; any failed account is a "
                                                "WARNING", min=0, max=1)
    webhooks_warning_age: float = setting(300.0, "Seconds the oldest pending webhook delivery may wait before health "
                                                 "warns", min=1, max=30 * 86400)
    webhooks_critical_age: float = setting(3600.0, "Seconds the oldest pending webhook delivery may wait before "
                                                   "health is CRITICAL", min=1, max=30 * 86400)
    outbound_warning_age: float = setting(600.0, "Seconds the oldest pending outbound message may wait before "
                                                 "health warns", min=1, max=90 * 86400)
    outbound_critical_age: float = setting(3600.0, "Seconds the oldest pending outbound message may wait before "
                                                   "health is CRITICAL", min=1, max=90 * 86400)

    def __post_init__(self) -> None:
        for kind in ("webhooks", "outbound"):
            warning, critical = getattr(self, f"{kind}_warning_age"), getattr(self, f"{kind}_critical_age")
            if warning > critical:
                raise ConfigError([("health", f"health.{kind}_warning_age",
                                    f"{warning:g} is above health.{kind}_critical_age ({critical:g})")])


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = section(DatabaseSettings, "Where blazz keeps its state")
    daemon: DaemonSettings = section(DaemonSettings, "Session daemons (blazz-sessiond)")
    providers: ProvidersSettings = section(ProvidersSettings, "WhatsApp providers")
    secrets: SecretsSettings = section(SecretsSettings, "Secrets")
    logging: LoggingSettings = section(LoggingSettings, "Logging")
    metrics: MetricsSettings = section(MetricsSettings, "Prometheus metrics of the session daemons")
    webhooks: WebhooksSettings = section(WebhooksSettings, "Webhook delivery (the outbox dispatcher)")
    messages: MessagesSettings = section(MessagesSettings, "Sending and receiving messages")
    sync: SyncSettings = section(SyncSettings, "Reading chats, contacts and groups from WhatsApp")
    api: ApiSettings = section(ApiSettings, "The HTTP API (blazz-api)")
    health: HealthSettings = section(HealthSettings, "Thresholds of `blazzctl health`")
    source: str | None = field(default=None, compare=False, metadata={"internal": True})
    # What loading noticed but did not refuse (unknown BLAZZ_* variables); the CLI prints them.
    warnings: tuple[str, ...] = field(default=(), compare=False, metadata={"internal": True})

    @property
    def database_url(self) -> str:
        """The effective database URL (the embedded SQLite file when none is configured)."""
        return self.database.url or f"sqlite:///{paths.state_home() / 'blazz.db'}"


# Loading and introspection live in settings_load; re-exported so callers import one module.
from blazzctl.settings_load import (  # noqa: E402  (needs the classes above)
    env_name, example_yaml, find_config_file, iter_fields, load_settings, redacted)

__all__ = ["CONFIG_ENV", "Settings", "env_name", "example_yaml", "find_config_file", "iter_fields",
           "load_settings", "redacted", "setting", "section"]
