"""Real session-daemon processes for tests and benches: configs, a fleet, waits, snapshots, the journal checker.

A ``Fleet`` starts ``python -m daemons.session --instance N --config FILE`` processes (the
repository root on PYTHONPATH, the fake provider from ``tests/fakes/provider.py`` writing a
shared journal) and always kills what it started, even when a test fails.

The journal checker (``check_journal``) is the invariant recorder: per account, lease epochs
strictly increase from one session to the next, and no two daemons' sessions are live at the
same time. A SIGKILLed daemon writes no stop lines: its open sessions end at the kill. A
SIGSTOPped daemon drives nothing while frozen (the fake sessions live in its own process): a
session it stops within ``resume_grace`` seconds of SIGCONT counts as ended at the freeze.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

REPO = Path(__file__).resolve().parent.parent

# Short timings for tests: a lease lasts 4 s, renewed every 0.5 s.
FAST = {"heartbeat_interval": 0.5, "claim_interval": 0.5, "lease_ttl": 4.0, "start_stagger": 0.0,
        "drain_timeout": 10.0}


# --- configuration -------------------------------------------------------------------------------

def write_config(path: Path, *, url: str, journal: Path, state_dir: Path, host: str = "host-a",
                 daemon: dict | None = None, link_delay: float = 0.05, webhooks: bool = False,
                 level: str = "info", provider_options: dict | None = None, messages: dict | None = None) -> Path:
    """A daemon config file: database URL, daemon timings, the fake provider with its journal."""
    config = {
        "database": {"url": url},
        "daemon": {**FAST, **(daemon or {}), "host": host, "state_dir": str(state_dir)},
        "providers": {"webjs": {"driver": "tests.fakes.provider:FakeProvider",
                                "options": {"journal": str(journal), "link_delay": link_delay,
                                            # login archives shared by the daemons: a restored page
                                            # knows only what they held (FakeProvider docstring)
                                            "archives": str(journal.parent / "archives"),
                                            **(provider_options or {})}}},
        "webhooks": {"enabled": webhooks},
        "logging": {"level": level, "format": "text"},
    }
    if messages:
        config["messages"] = messages
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


# --- the database ----------------------------------------------------------------------------------

def migrate(url: str) -> None:
    from blazzctl.db import Database
    from blazzctl.services import schema

    db = Database(url)
    try:
        schema.upgrade(db)
    finally:
        db.dispose()


def seed_accounts(db, count: int, *, running: bool = True, workspace: str = "bench", prefix: str = "acc") -> list[int]:
    """``count`` accounts in one workspace (created when missing); desired state running when asked."""
    from sqlalchemy import insert, select

    from blazzctl.enums import DesiredState
    from blazzctl.models import WhatsAppAccount, Workspace
    from blazzctl.services import accounts, workspaces

    with db.session() as s:
        ws = s.scalars(select(Workspace).where(Workspace.name == workspace)).first()
        if ws is None:
            ws = workspaces.create(s, name=workspace)
        desired = DesiredState.RUNNING if running else DesiredState.STOPPED
        start = s.scalar(select(WhatsAppAccount.id).order_by(WhatsAppAccount.id.desc()).limit(1)) or 0
        rows = [{"workspace_id": ws.id, "name": f"{prefix}-{start + i:05d}", "session_id": accounts.new_session_id(),
                 "desired_state": desired} for i in range(count)]
        for chunk in range(0, len(rows), 1000):
            s.execute(insert(WhatsAppAccount), rows[chunk:chunk + 1000])
    with db.session() as s:
        return list(s.scalars(select(WhatsAppAccount.id).where(WhatsAppAccount.workspace_id == ws.id)
                              .order_by(WhatsAppAccount.id)))


def owners(db) -> dict[int, tuple[str | None, int]]:
    """{account id: (owner, lease epoch)} of the runnable accounts, as the database says now."""
    from sqlalchemy import select

    from blazzctl.enums import DesiredState
    from blazzctl.models import WhatsAppAccount as A

    with db.session() as s:
        return {r.id: (r.owner, r.lease_epoch) for r in
                s.execute(select(A.id, A.owner, A.lease_epoch).where(A.desired_state == DesiredState.RUNNING))}


def statuses(db) -> dict[int, str]:
    from sqlalchemy import select

    from blazzctl.models import WhatsAppAccount as A

    with db.session() as s:
        return {r.id: str(r.status) for r in s.execute(select(A.id, A.status))}


def per_owner(snapshot: dict[int, tuple[str | None, int]]) -> dict[str | None, int]:
    counts: dict[str | None, int] = defaultdict(int)
    for owner, _epoch in snapshot.values():
        counts[owner] += 1
    return dict(counts)


def daemon_rows(db) -> dict[str, dict[str, Any]]:
    from sqlalchemy import select

    from blazzctl.models import SessionDaemon

    with db.session() as s:
        return {d.name: {"status": str(d.status), "pid": d.pid, "accounts_owned": d.accounts_owned,
                         "heartbeat_at": d.heartbeat_at} for d in s.scalars(select(SessionDaemon))}


def all_claimed_by(db, names: set[str]) -> bool:
    snap = owners(db)
    return bool(snap) and all(owner in names for owner, _ in snap.values())


# --- waiting ------------------------------------------------------------------------------------------

def wait_for(predicate: Callable[[], Any], timeout: float, *, interval: float = 0.1,
             message: str | Callable[[], str] = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError at the timeout.

    Exceptions from the predicate (e.g. the database being down) count as "not yet".
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_error = exc
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for: {text}"
                                 + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(interval)


# --- daemon processes --------------------------------------------------------------------------------

@dataclass
class Daemon:
    name: str
    instance: int
    host: str
    proc: subprocess.Popen
    log: Path
    config: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: int) -> float:
        """Send a signal; returns the wall time it was sent (for the journal checker)."""
        t = time.time()
        os.kill(self.proc.pid, sig)
        return t

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Fleet:
    """Session daemons as real processes on one database; ``close()`` kills whatever is left."""

    def __init__(self, root: Path, url: str, *, daemon: dict | None = None, link_delay: float = 0.05,
                 webhooks: bool = False, level: str = "info", python: str | None = None,
                 per_host: dict[str, dict] | None = None, urls: dict[str, str] | None = None) -> None:
        self.root = Path(root)
        self.urls = urls or {}  # host → database URL for that host's daemons (e.g. through a proxy)
        # host → daemon settings over ``daemon`` for that host's config; its "provider" key: fake
        # provider options for that host
        self.per_host = per_host or {}
        # Another interpreter (a virtualenv blazz was installed into) runs the installed package, not
        # this checkout's source.
        self.python = python
        self.url = url
        self.journal = self.root / "journal.jsonl"
        self.daemon_settings = daemon or {}
        self.link_delay = link_delay
        self.webhooks = webhooks
        self.level = level
        self.daemons: dict[str, Daemon] = {}
        self.killed: dict[str, float] = {}  # daemon name → wall time of its SIGKILL
        self.frozen: dict[str, list[tuple[float, float]]] = defaultdict(list)  # name → (SIGSTOP, SIGCONT)
        self._stopped_at: dict[str, float] = {}
        self._configs: set[str] = set()
        self.root.mkdir(parents=True, exist_ok=True)
        self.journal.unlink(missing_ok=True)  # a journal of an earlier run in the same directory is not ours

    def config_for(self, host: str) -> Path:
        path = self.root / f"{host}.yaml"
        if host not in self._configs:
            self._configs.add(host)
            overrides = dict(self.per_host.get(host, {}))
            provider = overrides.pop("provider", None)  # fake provider options for this host
            messages = overrides.pop("messages", None)  # messages settings for this host
            write_config(path, url=self.urls.get(host, self.url), journal=self.journal,
                         state_dir=self.root / "state" / host, host=host,
                         daemon={**self.daemon_settings, **overrides}, link_delay=self.link_delay,
                         webhooks=self.webhooks, level=self.level, provider_options=provider, messages=messages)
        return path

    def start(self, instance: int, *, host: str = "host-a", env: dict[str, str] | None = None) -> Daemon:
        config = self.config_for(host)
        name = f"{host}:{instance}"
        log = self.root / f"{host}-{instance}.log"
        extra = env or {}  # e.g. NOTIFY_SOCKET and WATCHDOG_USEC, as systemd sets them
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLAZZ_") and k != "NOTIFY_SOCKET"}
        env.update(extra)
        if self.python:
            env.pop("PYTHONPATH", None)
        else:
            env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        with open(log, "ab") as out:
            proc = subprocess.Popen([self.python or sys.executable, "-m", "daemons.session", "--instance",
                                     str(instance), "--config", str(config)],
                                    cwd=str(self.root if self.python else REPO), env=env, stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        daemon = Daemon(name, instance, host, proc, log, config)
        self.daemons[name] = daemon
        return daemon

    def start_many(self, count: int, *, hosts: list[str] | None = None) -> list[Daemon]:
        """``count`` daemons spread over ``hosts`` (round robin), instances numbered per host."""
        hosts = hosts or ["host-a"]
        per_host: dict[str, int] = defaultdict(int)
        started = []
        for i in range(count):
            host = hosts[i % len(hosts)]
            per_host[host] += 1
            started.append(self.start(per_host[host], host=host))
        return started

    # signals, recorded for the journal checker
    def kill(self, daemon: Daemon) -> float:
        t = daemon.send(signal.SIGKILL)
        self.killed[daemon.name] = t
        daemon.wait(10)
        return t

    def freeze(self, daemon: Daemon) -> float:
        t = daemon.send(signal.SIGSTOP)
        self._stopped_at[daemon.name] = t
        return t

    def thaw(self, daemon: Daemon) -> float:
        t = daemon.send(signal.SIGCONT)
        self.frozen[daemon.name].append((self._stopped_at.pop(daemon.name), t))
        return t

    def live_names(self) -> set[str]:
        return {name for name, d in self.daemons.items() if d.alive() and name not in self._stopped_at}

    def check(self, **kw) -> "JournalReport":
        return check_journal(self.journal, **kw)

    def logs(self, lines: int = 20) -> str:
        return "\n".join(f"--- {name} (pid {d.pid}, rc {d.proc.poll()})\n{d.tail(lines)}"
                         for name, d in self.daemons.items())

    def stop_all(self, timeout: float = 20) -> None:
        """SIGTERM every live daemon and wait (graceful drain)."""
        for d in self.daemons.values():
            if d.alive():
                if d.name in self._stopped_at:
                    self.thaw(d)
                d.send(signal.SIGTERM)
        for d in self.daemons.values():
            try:
                d.wait(timeout)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        """Kill whatever is still running (never leaves a process behind)."""
        for d in self.daemons.values():
            if d.alive():
                try:
                    os.kill(d.pid, signal.SIGCONT)
                    os.kill(d.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for d in self.daemons.values():
            try:
                d.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def __enter__(self) -> "Fleet":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def wait_for_daemons(db, n: int, timeout: float = 30, *, fresh_within: float = 5.0,
                     fleet: Fleet | None = None) -> set[str]:
    """Wait until ``n`` daemon rows are running with a heartbeat younger than ``fresh_within`` seconds."""
    from sqlalchemy import select

    from blazzctl.db import db_now
    from blazzctl.enums import DaemonStatus
    from blazzctl.models import SessionDaemon

    def running():
        with db.session() as s:
            rows = s.scalars(select(SessionDaemon.name).where(
                SessionDaemon.status == DaemonStatus.RUNNING,
                SessionDaemon.heartbeat_at > db_now(-fresh_within))).all()
        return set(rows) if len(rows) >= n else None

    return wait_for(running, timeout, message=lambda: f"{n} running daemons: {daemon_rows(db)}\n"
                                                      f"{fleet.logs() if fleet else ''}")


def open_transactions(db) -> list[tuple]:
    """InnoDB transactions open now (state, age, rows locked, query): for failure messages."""
    with db.engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(
            "SELECT trx_mysql_thread_id, trx_state, TIMESTAMPDIFF(SECOND, trx_started, NOW()), "
            "trx_rows_locked, LEFT(COALESCE(trx_query, ''), 120) FROM information_schema.innodb_trx")]


def spread(counts: dict[str | None, int], names) -> int:
    values = [counts.get(name, 0) for name in names]
    return max(values) - min(values) if values else 0


# --- the journal invariant --------------------------------------------------------------------------

@dataclass
class Interval:
    account_id: int
    daemon: str
    epoch: int | None
    start: float
    end: float  # math.inf: still live when the journal was read
    cut: str = ""  # how the page ended when its daemon did not close it: "fenced" or "orphaned"
    stopped: bool = False  # the daemon wrote a stop line for this session


@dataclass
class JournalReport:
    starts: int = 0
    stops: int = 0
    intervals: list[Interval] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    double_owner: int = 0  # overlapping pairs of sessions of one account on different daemons

    def stops_by(self, daemon: str) -> set[int]:
        """Accounts whose session on ``daemon`` ended with a stop line it wrote."""
        return {iv.account_id for iv in self.intervals if iv.daemon == daemon and iv.stopped}

    def live(self) -> dict[int, list[str]]:
        """{account: [daemons with an open session]} at the end of the journal."""
        out: dict[int, list[str]] = defaultdict(list)
        for iv in self.intervals:
            if iv.end == math.inf:
                out[iv.account_id].append(iv.daemon)
        return dict(out)


def read_journal(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    lines = []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        if raw.strip():
            try:
                lines.append(json.loads(raw))
            except json.JSONDecodeError:  # a line torn by SIGKILL mid-write
                continue
    lines.sort(key=lambda e: e["t"])
    return lines


def check_journal(path: Path) -> JournalReport:
    """Check the fake provider's journal: per account, epochs strictly increase and sessions never overlap.

    The lines come from the fake's browser process, which outlives a frozen or killed daemon: a
    page is live until its browser says it stopped (closed, fenced by the deadline, or orphaned
    by its daemon's death). No excuse is made for a frozen or killed daemon."""
    report = JournalReport()
    by_account: dict[int, list[dict]] = defaultdict(list)
    for event in read_journal(path):
        by_account[event["account_id"]].append(event)
    for account_id, events in by_account.items():
        open_: dict[str, dict] = {}
        last: dict | None = None  # the previous start
        intervals: list[Interval] = []
        for e in events:
            daemon = e["daemon"]
            if e["event"] == "start":
                report.starts += 1
                if daemon in open_:
                    report.violations.append(f"account {account_id}: {daemon} started a second session "
                                              f"while one was live (t={e['t']:.3f})")
                if last is not None and e["epoch"] is not None and last["epoch"] is not None:
                    same_lease = last["daemon"] == daemon and last["epoch"] == e["epoch"]
                    if e["epoch"] < last["epoch"] or (e["epoch"] == last["epoch"] and not same_lease):
                        report.violations.append(
                            f"account {account_id}: epoch {e['epoch']} ({daemon}) after epoch "
                            f"{last['epoch']} ({last['daemon']}); epochs must strictly increase")
                open_[daemon] = e
                last = e
            elif e["event"] == "stop":
                report.stops += 1
                started = open_.pop(daemon, None)
                if started is not None:
                    intervals.append(Interval(account_id, daemon, started["epoch"], started["t"], e["t"],
                                              stopped=True))
                    if e.get("fenced"):
                        intervals[-1].cut = "fenced"
                    elif e.get("orphaned"):
                        intervals[-1].cut = "orphaned"
        for daemon, started in open_.items():
            intervals.append(Interval(account_id, daemon, started["epoch"], started["t"], math.inf))
        intervals.sort(key=lambda iv: iv.start)
        for i, a in enumerate(intervals):
            for b in intervals[i + 1:]:
                if b.start >= a.end:
                    continue
                if a.daemon != b.daemon:
                    report.double_owner += 1
                    report.violations.append(
                        f"account {account_id}: {a.daemon} (epoch {a.epoch}, {a.start:.3f}..{a.end:.3f}) and "
                        f"{b.daemon} (epoch {b.epoch}, {b.start:.3f}..{b.end:.3f}) were live at once")
        report.intervals.extend(intervals)
    return report
