"""Restart this host's session daemons through systemd, each gated on what the database says.

A restarted instance is ready when its ``session_daemons`` row shows a new pid, status
``running`` and a heartbeat younger than three intervals written after the restart began,
no runnable account is left without a live lease, it holds accounts again (what it had, up to
a fair share), and the sessions handed over have settled
(none disconnected, starting or authenticated; waiting longer than the grace is not held
against it). An account that went ``failed`` since the restart (a release that cannot
decrypt the login archives, say) stops the roll at once. Accounts may stay unowned for
``daemon.unowned_grace`` seconds after the restart (the time the fleet takes to claim them
back); longer, or past the timeout, or when systemd says the unit is not active, the restart
stops there and raises OperationFailed naming the instance, so the instances after it keep
running what they ran.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select

from blazzctl.db import Database, db_now
from blazzctl.enums import AccountStatus, DaemonStatus, DesiredState
from blazzctl.errors import OperationFailed
from blazzctl.models import SessionDaemon, WhatsAppAccount
from blazzctl.services import health
from blazzctl.services.units import find_systemctl

POLL = 0.25  # seconds between looks at the database while waiting
UNIT_CHECK = 1.0  # seconds between `systemctl is-active` calls while waiting
SYSTEMCTL_TIMEOUT = 300  # a stop waits up to TimeoutStopSec (drain budget + margin)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Restarted:
    """One instance restarted and found ready."""

    instance: int
    unit: str
    daemon: str
    old_pid: int | None
    new_pid: int
    seconds: float
    accounts_owned: int


@dataclass(frozen=True)
class Snapshot:
    """What the database says about one daemon and the account ownership, at one moment."""

    now: datetime
    pid: int | None
    status: DaemonStatus | None
    heartbeat_at: datetime | None
    accounts_owned: int
    unowned: int  # runnable accounts without a live lease
    settling: int = 0  # runnable accounts whose session is between owners (disconnected, starting, authenticated)
    failed: int = 0  # accounts that went failed since ``since``
    failed_reason: str | None = None
    fair_share: int = 0  # runnable accounts // live daemons: what a daemon holds once rebalanced


def unit_name(instance: int) -> str:
    return f"blazz-session@{instance}.service"


def restart(db: Database, settings, *, instances: list[int], rolling: bool = True, timeout: float = 120.0,
            environ: Mapping[str, str] | None = None, progress: Progress = lambda _text: None) -> list[Restarted]:
    """Restart ``instances`` (one at a time when ``rolling``, else all at once) and wait for each."""
    systemctl = find_systemctl(environ)
    host = settings.daemon.host or socket.gethostname()
    gate = Gate(db, settings, systemctl=systemctl, timeout=timeout)
    if rolling:
        done = []
        for instance in instances:
            before = gate.snapshot(f"{host}:{instance}")
            progress(f"restart {unit_name(instance)}")
            _reset_failed(systemctl, unit_name(instance))
            _systemctl(systemctl, "restart", unit_name(instance), instance=instance)
            done.append(gate.wait(instance, f"{host}:{instance}", before))
            progress(_done_line(done[-1]))
        return done
    befores = {i: gate.snapshot(f"{host}:{i}") for i in instances}
    progress(f"restart {', '.join(unit_name(i) for i in instances)}")
    _reset_failed(systemctl, *(unit_name(i) for i in instances))
    _systemctl(systemctl, "restart", *(unit_name(i) for i in instances), instance=None)
    done = [gate.wait(i, f"{host}:{i}", befores[i]) for i in instances]
    for result in done:
        progress(_done_line(result))
    return done


def check_health(settings, *, timeout: float, progress: Progress = lambda _text: None) -> health.Report:
    """Poll the gate's health checks until OK; OperationFailed naming those not OK at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        report = health.evaluate(lambda: settings).gate()
        if report.state == health.State.OK:
            progress("health OK")
            return report
        if time.monotonic() >= deadline:
            bad = "; ".join(f"{c.name} {c.state.name}: {c.detail}" for c in report.checks if c.state)
            raise OperationFailed(f"health is {report.state.name} after the restart: {bad}",
                                  hint="See `blazzctl health` and `blazzctl daemon list`.")
        time.sleep(1.0)


class Gate:
    """Waits until a restarted daemon is ready, or says why it is not."""

    def __init__(self, db: Database, settings, *, systemctl: str, timeout: float) -> None:
        self.db, self.systemctl, self.timeout = db, systemctl, timeout
        self.heartbeat_interval = settings.daemon.heartbeat_interval
        self.grace = settings.daemon.unowned_grace

    def snapshot(self, name: str, since=None) -> Snapshot:
        A = WhatsAppAccount
        with self.db.session() as s:
            now = s.scalar(select(db_now()))
            row = s.scalars(select(SessionDaemon).where(SessionDaemon.name == name)).first()
            unowned = s.scalar(select(func.count()).select_from(A).where(
                A.desired_state == DesiredState.RUNNING,
                or_(A.owner.is_(None), A.lease_expires_at.is_(None), A.lease_expires_at < db_now())))
            owned = s.scalar(select(func.count()).select_from(A).where(
                A.owner == name, A.lease_expires_at >= db_now())) if row is not None else 0
            settling = s.scalar(select(func.count()).select_from(A).where(
                A.desired_state == DesiredState.RUNNING, A.deleted_at.is_(None),
                A.status.in_([AccountStatus.DISCONNECTED, AccountStatus.STARTING, AccountStatus.AUTHENTICATED])))
            failed = s.execute(select(func.count(), func.max(A.status_reason)).where(
                A.deleted_at.is_(None), A.status == AccountStatus.FAILED, A.status_changed_at >= since)).one() \
                if since is not None else (0, None)
            runnable = s.scalar(select(func.count()).select_from(A).where(A.desired_state == DesiredState.RUNNING))
            live = s.scalar(select(func.count()).select_from(SessionDaemon).where(
                SessionDaemon.status == DaemonStatus.RUNNING,
                SessionDaemon.heartbeat_at > db_now(-3 * self.heartbeat_interval)))
        extra = {"settling": settling, "failed": failed[0], "failed_reason": failed[1],
                 "fair_share": runnable // max(1, live)}
        if row is None:
            return Snapshot(now, None, None, None, 0, unowned, **extra)
        return Snapshot(now, row.pid, row.status, row.heartbeat_at, owned, unowned, **extra)

    def wait(self, instance: int, name: str, before: Snapshot) -> Restarted:
        unit = unit_name(instance)
        started = time.monotonic()
        next_unit_check = started + UNIT_CHECK
        while True:
            now = self.snapshot(name, since=before.now)
            daemon_ready = self._daemon_ready(now, before)
            elapsed = time.monotonic() - started
            if now.failed:  # e.g. the new release cannot decrypt the login archives: stop the roll here
                self._fail(instance, f"{now.failed} accounts failed since the restart "
                                     f"(reason: {now.failed_reason})", now, before)
            # Ready: the daemon runs, every runnable account is owned again, the restarted daemon
            # holds its share again (what it had, up to a fair share: its new code is running
            # sessions), and those sessions have settled (connected, or waiting for a QR) - or the
            # grace has passed.
            reclaimed = now.accounts_owned >= min(before.accounts_owned, now.fair_share)
            if daemon_ready and now.unowned == 0 and ((reclaimed and now.settling == 0) or elapsed > self.grace):
                return Restarted(instance, unit, name, before.pid, now.pid, round(time.monotonic() - started, 2),
                                 now.accounts_owned)
            if time.monotonic() >= next_unit_check:
                next_unit_check = time.monotonic() + UNIT_CHECK
                state = _unit_state(self.systemctl, unit)
                if state in ("failed", "inactive"):
                    self._fail(instance, f"systemd says the unit is {state}", now, before)
            if daemon_ready and elapsed > self.grace:
                self._fail(instance, f"{now.unowned} runnable accounts still unowned {elapsed:.0f} s after the "
                                     f"restart (daemon.unowned_grace is {self.grace:g} s)", now, before)
            if elapsed > self.timeout:
                self._fail(instance, f"not ready after {self.timeout:g} s", now, before)
            time.sleep(POLL)

    def _daemon_ready(self, now: Snapshot, before: Snapshot) -> bool:
        return (now.pid is not None and now.pid != before.pid and now.status == DaemonStatus.RUNNING
                and now.heartbeat_at is not None and now.heartbeat_at >= before.now
                and (now.now - now.heartbeat_at).total_seconds() <= 3 * self.heartbeat_interval)

    def _fail(self, instance: int, why: str, now: Snapshot, before: Snapshot) -> None:
        seen = (f"daemon row: pid {now.pid} (was {before.pid}), status {now.status or 'none'}, heartbeat "
                + (f"{(now.now - now.heartbeat_at).total_seconds():.1f} s ago" if now.heartbeat_at else "never")
                + f"; {now.unowned} runnable accounts unowned")
        raise OperationFailed(f"{unit_name(instance)} did not become ready: {why} ({seen}); "
                              "the restart stopped at this instance",
                              hint=f"See `journalctl -u {unit_name(instance)}` and `blazzctl daemon list`.")


def _done_line(r: Restarted) -> str:
    return (f"{r.unit} ready in {r.seconds:.1f} s: pid {r.old_pid or '-'} -> {r.new_pid}, "
            f"{r.accounts_owned} accounts owned")


def _systemctl(systemctl: str, *args: str, instance: int | None) -> None:
    what = unit_name(instance) if instance is not None else "the daemons"
    try:
        done = subprocess.run([systemctl, *args], capture_output=True, text=True, timeout=SYSTEMCTL_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise OperationFailed(f"restart of {what} failed: `systemctl {' '.join(args)}` could not run: {error}",
                              hint="Check systemd and $SYSTEMCTL.") from None
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split()) or "no output"
        raise OperationFailed(f"restart of {what} failed: `systemctl {' '.join(args)}` exited "
                              f"{done.returncode}: {detail}",
                              hint=f"See `journalctl -u {unit_name(instance) if instance else 'blazz-session@*'}`.")


def _reset_failed(systemctl: str, *units: str) -> None:
    # A unit that hit its start limit (a crash loop, a bad release) refuses `restart` until this.
    try:
        subprocess.run([systemctl, "reset-failed", *units], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        pass


def _unit_state(systemctl: str, unit: str) -> str:
    try:
        done = subprocess.run([systemctl, "is-active", unit], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return done.stdout.strip() or "unknown"
