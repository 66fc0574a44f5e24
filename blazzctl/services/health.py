"""Health checks with monitoring-plugin states: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from enum import IntEnum

from sqlalchemy import func, or_, select

from blazzctl.db import Database, db_now
from blazzctl.enums import AccountStatus, DesiredState
from blazzctl.errors import BlazzError, ConfigError, DatabaseUnavailable
from blazzctl.models import WhatsAppAccount
from blazzctl.services import daemons, schema


class State(IntEnum):
    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class Check:
    name: str
    state: State
    detail: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)

    @property
    def state(self) -> State:
        return max((c.state for c in self.checks), default=State.UNKNOWN)

    def add(self, name: str, state: State, detail: str) -> None:
        self.checks.append(Check(name, state, detail))

    def as_dict(self) -> dict:
        return {"status": self.state.name, "checks": [
            {"name": c.name, "state": c.state.name, "detail": c.detail} for c in self.checks]}


def evaluate(load_settings) -> Report:
    """Run every check. ``load_settings`` is called here so a bad config is UNKNOWN, not a crash."""
    report = Report()
    try:
        settings = load_settings()
    except ConfigError as error:
        report.add("config", State.UNKNOWN, error.message.replace("\n", " "))
        return report
    try:
        db = Database.from_settings(settings)
    except BlazzError as error:
        report.add("config", State.UNKNOWN, error.message)
        return report
    try:
        _database(report, db)
        if report.state < State.CRITICAL:
            _daemons_and_accounts(report, db, settings)
    except DatabaseUnavailable as error:
        report.add("database", State.CRITICAL, error.message)
    except BlazzError as error:
        report.add("database", State.CRITICAL, error.message)
    finally:
        db.dispose()
    for extra in EXTRA_CHECKS:
        extra(report, settings)
    return report


def session_key(report: Report, settings) -> None:
    """Hosts sharing a database must share the key that encrypts login archives."""
    import os

    configured = settings.secrets.session_key_file
    if configured and not os.path.isfile(os.path.expanduser(configured)):
        report.add("session_key", State.WARNING, f"secrets.session_key_file {configured} does not exist: daemons "
                                                 "cannot archive or restore logins (copy it from another host)")
    elif configured or os.environ.get("CREDENTIALS_DIRECTORY"):
        report.add("session_key", State.OK, "configured")
    elif settings.database_url.startswith("sqlite"):
        report.add("session_key", State.OK, "generated in the state directory (one host: fine)")
    else:
        report.add("session_key", State.WARNING,
                   "no secrets.session_key_file: each host generates its own key, so a login archived on one "
                   "host cannot be restored on another; run `blazzctl key generate --file PATH` once and give "
                   "every host the same file")


# Checks other modules contribute: functions (report, settings) -> None.
EXTRA_CHECKS: list = [session_key]


def _database(report: Report, db: Database) -> None:
    st = schema.state(db)
    if st.at_head:
        report.add("database", State.OK, f"reachable, schema at {st.head}")
    else:
        report.add("database", State.CRITICAL,
                   f"schema at {st.current or 'empty'}, this release needs {st.head}: run `blazzctl db upgrade`")


def _daemons_and_accounts(report: Report, db: Database, settings) -> None:
    cfg = settings.daemon
    host = cfg.host or socket.gethostname()
    with db.session() as s:
        views = daemons.list_daemons(s, heartbeat_interval=cfg.heartbeat_interval, include_stopped=False)
        unowned = s.scalar(select(func.count()).select_from(WhatsAppAccount).where(
            WhatsAppAccount.desired_state == DesiredState.RUNNING,
            or_(WhatsAppAccount.owner.is_(None), WhatsAppAccount.lease_expires_at < db_now()),
            func.coalesce(WhatsAppAccount.lease_expires_at, WhatsAppAccount.status_changed_at,
                          WhatsAppAccount.updated_at) < db_now(-cfg.unowned_grace)))
        failed = s.scalar(select(func.count()).select_from(WhatsAppAccount).where(
            WhatsAppAccount.deleted_at.is_(None), WhatsAppAccount.status == AccountStatus.FAILED))
    live_here = [v for v in views if v.live and v.daemon.host == host]
    live_all = [v for v in views if v.live]
    stale = [v.daemon.name for v in views if not v.live]
    if not live_here:
        state = State.CRITICAL
    else:
        state = State.OK if len(live_here) >= cfg.instances else State.WARNING
    report.add("daemons", state, f"{len(live_here)} of {cfg.instances} live on {host} "
                                 f"({len(live_all)} live in the fleet)")
    report.add("heartbeats", State.WARNING if stale else State.OK,
               f"stale: {', '.join(stale)}" if stale else "all fresh")
    report.add("unowned_accounts", State.WARNING if unowned else State.OK,
               f"{unowned} runnable accounts unowned for more than {cfg.unowned_grace:g} s" if unowned
               else "every runnable account is owned")
    report.add("failed_accounts", State.OK, f"{failed} accounts failed (see `blazzctl account list --status failed`)")
