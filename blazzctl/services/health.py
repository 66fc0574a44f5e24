"""Health checks with monitoring-plugin states: OK 0, WARNING 1, CRITICAL 2, UNKNOWN 3."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum

from sqlalchemy import func, or_, select

from blazzctl.db import Database, db_now
from blazzctl.enums import AccountStatus, DesiredState, MessageStatus
from blazzctl.errors import BlazzError, ConfigError, DatabaseUnavailable
from blazzctl.models import Message, WhatsAppAccount
from blazzctl.services import daemons, overview, schema


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

    def gate(self) -> "Report":
        """Only the checks a restart or a deploy can break (GATE_CHECKS): a failed account, a webhook
        receiver that is down or a missing key file were there before and must not roll a deploy back."""
        return Report([c for c in self.checks if c.name in GATE_CHECKS])

    def as_dict(self) -> dict:
        return {"status": self.state.name, "checks": [
            {"name": c.name, "state": c.state.name, "detail": c.detail} for c in self.checks]}


# What deploy.sh and `daemon restart --rolling` wait for (`blazzctl health --gate`): the database
# answers at this release's schema, this host's daemons are live and fresh, every runnable account
# is owned. The other checks describe the fleet, not the restart.
GATE_CHECKS = frozenset({"config", "database", "daemons", "heartbeats", "unowned_accounts"})


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
        from blazzctl import keys, paths

        path = keys.default_path(paths.daemon_state_base(settings.daemon.state_dir))
        report.add("session_key", State.OK, f"generated: {path} (one host: fine)" if path.is_file() else
                   f"not generated yet: the first daemon to archive a login writes {path} (one host: fine)")
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
        # Runnable: meant to run, or failed trying (a failed account's desired state is stopped).
        runnable = s.scalar(select(func.count()).select_from(WhatsAppAccount).where(
            WhatsAppAccount.deleted_at.is_(None), or_(WhatsAppAccount.desired_state == DesiredState.RUNNING,
                                                      WhatsAppAccount.status == AccountStatus.FAILED)))
        incompatible = s.scalar(select(func.count()).select_from(WhatsAppAccount).where(
            WhatsAppAccount.deleted_at.is_(None), WhatsAppAccount.status == AccountStatus.FAILED,
            WhatsAppAccount.status_reason == "wa_web_incompatible"))
    live_here = [v for v in views if v.live and v.daemon.host == host]
    live_all = [v for v in views if v.live]
    stale = [v.daemon.name for v in views if not v.live]
    _daemons(report, live_here, configured=cfg.instances, host=host, fleet=len(live_all))
    report.add("heartbeats", State.WARNING if stale else State.OK,
               f"stale: {', '.join(stale)}" if stale else "all fresh")
    report.add("unowned_accounts", State.WARNING if unowned else State.OK,
               f"{unowned} runnable accounts unowned for more than {cfg.unowned_grace:g} s" if unowned
               else "every runnable account is owned")
    _failed(report, failed, runnable, critical_ratio=settings.health.failed_critical_ratio)
    # A WhatsApp Web release renamed a module blazz uses: every account will meet it; blazz needs an update.
    report.add("wa_web_compatibility", State.CRITICAL if incompatible else State.OK,
               f"{incompatible} accounts failed as wa_web_incompatible (see their last_error)" if incompatible
               else "no account met an incompatible WhatsApp Web")
    with db.session() as s:
        _queue_ages(report, s, settings.health)
        from blazzctl.services import wa_versions

        level, detail = wa_versions.health(s)
        report.add("wa_web_versions", State[level.upper()], detail)


def _daemons(report: Report, live_here: list, *, configured: int, host: str, fleet: int) -> None:
    """CRITICAL without a live daemon here, WARNING with fewer than configured, or more: a daemon
    beyond daemon.instances (a unit left from a larger N, one started by hand) claims accounts too."""
    detail = f"{len(live_here)} of {configured} live on {host} ({fleet} live in the fleet)"
    extra = [v.daemon.name for v in live_here if v.daemon.instance > configured]
    if not live_here:
        state = State.CRITICAL
    elif extra:
        state, detail = State.WARNING, f"{detail}; not configured (daemon.instances {configured}): {', '.join(extra)}"
    else:
        state = State.OK if len(live_here) >= configured else State.WARNING
    report.add("daemons", state, detail)


def _failed(report: Report, failed: int, runnable: int, *, critical_ratio: float) -> None:
    """Any failed account needs an operator (WARNING); many at once point at the fleet (CRITICAL)."""
    detail = f"{failed} of {runnable} runnable accounts failed"
    if not failed:
        report.add("failed_accounts", State.OK, detail)
    elif failed > critical_ratio * runnable:
        report.add("failed_accounts", State.CRITICAL, f"{detail}, more than health.failed_critical_ratio "
                   f"{critical_ratio:g} (see `blazzctl account list --status failed`)")
    else:
        report.add("failed_accounts", State.WARNING, f"{detail} (see `blazzctl account list --status failed`)")


def _queue_ages(report: Report, s, limits) -> None:
    """How long the oldest pending webhook delivery and outbound message have waited: a stalled
    dispatcher, a receiver that is down, accounts that cannot send."""
    _, webhooks = overview.webhook_backlog(s)
    _age(report, "webhook_outbox", webhooks, limits.webhooks_warning_age, limits.webhooks_critical_age,
         "webhooks", "pending webhook delivery (see `blazzctl webhook deliveries`)")
    _age(report, "outbound_messages", oldest_outbound_age(s), limits.outbound_warning_age,
         limits.outbound_critical_age, "outbound", "pending outbound message (see `blazzctl message list`)")
    accounts = select(WhatsAppAccount.id).where(WhatsAppAccount.deleted_at.is_(None))
    unknown = s.scalar(select(func.count()).select_from(Message).where(
        Message.whatsapp_account_id.in_(accounts), Message.status == MessageStatus.UNKNOWN)) or 0
    if unknown:
        report.add("unknown_messages", State.WARNING,
                   f"{unknown} message(s) may or may not have reached WhatsApp: decide with "
                   "`blazzctl message resend` or `blazzctl message cancel` (see `blazzctl message list --status unknown`)")
    else:
        report.add("unknown_messages", State.OK, "none")


def _age(report: Report, name: str, age: float | None, warning: float, critical: float, key: str, what: str) -> None:
    if age is None:
        report.add(name, State.OK, "nothing pending")
        return
    state = State.CRITICAL if age > critical else State.WARNING if age > warning else State.OK
    limit = {State.CRITICAL: f", more than health.{key}_critical_age {critical:g} s",
             State.WARNING: f", more than health.{key}_warning_age {warning:g} s"}.get(state, "")
    report.add(name, state, f"oldest {what} waiting {age:.0f} s{limit}")


def oldest_outbound_age(s) -> float | None:
    """Seconds since the oldest outbound message not yet handed to WhatsApp was queued (per live
    account through ix_messages_outbox), on the database clock."""
    accounts = select(WhatsAppAccount.id).where(WhatsAppAccount.deleted_at.is_(None))
    oldest, now = s.execute(select(func.min(Message.created_at), db_now()).where(
        Message.whatsapp_account_id.in_(accounts), Message.status.in_(overview.OUTBOUND))).one()
    return _seconds_since(oldest, now)


def _seconds_since(oldest, now) -> float | None:
    if oldest is None:
        return None
    if isinstance(oldest, str):  # SQLite returns MIN() of a datetime column as text
        oldest = datetime.fromisoformat(oldest)
    if oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return max(0.0, (now - oldest).total_seconds())
