"""`blazzctl health` thresholds: failed accounts, daemons beyond daemon.instances, the age of the
oldest pending webhook delivery and outbound message, and the session key's state.

Rows are written as the daemons would leave them; health reads them (SQLite, then MariaDB).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from blazzctl.enums import AccountStatus, DaemonStatus, DesiredState, MessageStatus
from blazzctl.models import Message, SessionDaemon, WebhookDelivery, WhatsAppAccount, Workspace
from blazzctl.models.base import utcnow
from tests.test_messages import PHONE, mark_linked
from tests.webhook_support import add_endpoint


@pytest.fixture
def health(cli, migrated_url):
    """``health(**env)``: {check: (state, detail)} and the exit code of `health --json`."""
    def run(**env):
        result = cli("health", "--json", db=migrated_url, env={f"BLAZZ_{k.upper()}": str(v) for k, v in env.items()})
        assert result.code in (0, 1, 2), result
        checks = {c["name"]: (c["state"], c["detail"]) for c in result.json()["checks"]}
        return checks, result.code

    return run


@pytest.fixture
def acme(cli, migrated_url):
    assert cli("workspace", "create", "acme", db=migrated_url).code == 0
    for name in ("a1", "a2", "a3", "a4", "a5"):
        assert cli("account", "add", "--workspace", "acme", "--name", name, db=migrated_url).code == 0
    return migrated_url


def _accounts(database, names, **values):
    with database.session() as s:
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.name.in_(names)).values(**values))


def test_failed_accounts_warn_and_are_critical_above_the_ratio(health, acme, database):
    _accounts(database, ["a1", "a2", "a3", "a4", "a5"], desired_state=DesiredState.RUNNING)
    assert health()[0]["failed_accounts"][0] == "OK"

    failed = {"status": AccountStatus.FAILED, "desired_state": DesiredState.STOPPED}
    _accounts(database, ["a1"], **failed)  # 1 of 5 runnable: not above 0.2
    state, detail = health()[0]["failed_accounts"]
    assert state == "WARNING" and "1 of 5 runnable accounts failed" in detail

    _accounts(database, ["a2"], **failed)  # 2 of 5
    state, detail = health()[0]["failed_accounts"]
    assert state == "CRITICAL" and "health.failed_critical_ratio 0.2" in detail
    assert health(health_failed_critical_ratio=0.5)[0]["failed_accounts"][0] == "WARNING"

    # Accounts stopped on purpose are not runnable: 2 failed of the 2 that are then left.
    _accounts(database, ["a3", "a4", "a5"], desired_state=DesiredState.STOPPED)
    state, detail = health(health_failed_critical_ratio=0.5)[0]["failed_accounts"]
    assert state == "CRITICAL" and "2 of 2 runnable" in detail


def _daemon(database, host: str, instance: int) -> None:
    with database.session() as s:
        s.add(SessionDaemon(name=f"{host}:{instance}", host=host, instance=instance, pid=1000 + instance,
                            status=DaemonStatus.RUNNING, started_at=utcnow(), heartbeat_at=utcnow()))


def test_more_live_daemons_than_configured_is_a_warning_naming_them(health, database):
    for host, instance in (("host-a", 1), ("host-a", 2), ("host-a", 3), ("host-b", 4)):
        _daemon(database, host, instance)
    env = {"daemon_host": "host-a", "daemon_heartbeat_interval": 300, "daemon_lease_ttl": 1000}

    state, detail = health(**env, daemon_instances=2)[0]["daemons"]
    assert state == "WARNING", detail
    assert detail.endswith("not configured (daemon.instances 2): host-a:3")  # host-b's daemon is not ours
    assert health(**env, daemon_instances=3)[0]["daemons"][0] == "OK"
    state, detail = health(**env, daemon_instances=4)[0]["daemons"]
    assert state == "WARNING" and "3 of 4 live on host-a" in detail and "not configured" not in detail


def _backdate(database, model, seconds: float) -> None:
    with database.session() as s:
        s.execute(update(model).values(created_at=utcnow() - timedelta(seconds=seconds)))


def test_age_of_the_oldest_pending_webhook_delivery(health, acme, database):
    assert health()[0]["webhook_outbox"] == ("OK", "nothing pending")
    with database.session() as s:
        workspace_id = s.query(Workspace.id).scalar()
    endpoint, _ = add_endpoint(database, workspace_id, "http://127.0.0.1:9/hook")
    with database.session() as s:
        s.add(WebhookDelivery(endpoint_id=endpoint, event_id="evt_1", event_type="message.received",
                              workspace_id=workspace_id, payload="{}"))
    assert health()[0]["webhook_outbox"][0] == "OK"

    _backdate(database, WebhookDelivery, 400)
    state, detail = health()[0]["webhook_outbox"]
    assert state == "WARNING" and "more than health.webhooks_warning_age 300 s" in detail, detail
    assert health(health_webhooks_warning_age=500)[0]["webhook_outbox"][0] == "OK"

    _backdate(database, WebhookDelivery, 4000)
    assert health()[0]["webhook_outbox"][0] == "CRITICAL"
    assert health(health_webhooks_critical_age=5000)[0]["webhook_outbox"][0] == "WARNING"

    with database.session() as s:  # delivered: nothing pending any more
        s.execute(update(WebhookDelivery).values(status="delivered"))
    assert health()[0]["webhook_outbox"] == ("OK", "nothing pending")


def test_age_of_the_oldest_pending_outbound_message(cli, health, acme, database):
    mark_linked(acme, "a1", status="disconnected")
    assert health()[0]["outbound_messages"] == ("OK", "nothing pending")
    assert cli("message", "send", "a1", "--workspace", "acme", "--to", PHONE, "--text", "hi", db=acme).code == 0
    assert health()[0]["outbound_messages"][0] == "OK"

    _backdate(database, Message, 700)
    state, detail = health()[0]["outbound_messages"]
    assert state == "WARNING" and "more than health.outbound_warning_age 600 s" in detail, detail
    _backdate(database, Message, 4000)
    assert health()[0]["outbound_messages"][0] == "CRITICAL"
    assert health(health_outbound_critical_age=5000)[0]["outbound_messages"][0] == "WARNING"

    with database.session() as s:
        s.execute(update(Message).values(status=MessageStatus.SENT))
    assert health()[0]["outbound_messages"] == ("OK", "nothing pending")


def test_thresholds_are_checked_by_config_check(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("health:\n  outbound_warning_age: 7200\n")
    result = cli("config", "check", "--config", str(bad))
    assert result.code == 78, result
    assert "health.outbound_warning_age" in result.stderr and "outbound_critical_age (3600)" in result.stderr


def test_a_session_key_not_generated_yet_is_not_called_generated(cli, sqlite_url, tmp_path):
    def session_key():
        checks = cli("health", "--json", db=sqlite_url).json()["checks"]
        return next((c["state"], c["detail"]) for c in checks if c["name"] == "session_key")

    state, detail = session_key()
    assert (state, detail.split(":")[0]) == ("OK", "not generated yet"), detail
    key_file = tmp_path / "state" / "blazz" / "session.key"
    assert not key_file.exists()  # health only looks
    assert cli("key", "generate").code == 0
    assert session_key() == ("OK", f"generated: {key_file} (one host: fine)")


def test_the_gate_of_deploys_and_rolling_restarts_ignores_what_a_restart_cannot_break(cli, acme, database):
    """A failed account or an old outbound message makes `health` WARNING/CRITICAL, but a deploy must
    not roll back for them: `health --gate` reads only database, daemons, heartbeats and ownership."""
    _daemon(database, "host-a", 1)
    env = {"BLAZZ_DAEMON_HOST": "host-a", "BLAZZ_DAEMON_INSTANCES": "1", "BLAZZ_DAEMON_HEARTBEAT_INTERVAL": "300",
           "BLAZZ_DAEMON_LEASE_TTL": "1000"}
    _accounts(database, ["a1", "a2"], status=AccountStatus.FAILED, desired_state=DesiredState.STOPPED)
    mark_linked(acme, "a3", status="disconnected")
    assert cli("message", "send", "a3", "--workspace", "acme", "--to", PHONE, "--text", "hi", db=acme).code == 0
    _backdate(database, Message, 4000)

    full = cli("health", "--json", db=acme, env=env)
    assert full.code == 2 and full.json()["status"] == "CRITICAL", full
    gate = cli("health", "--gate", "--json", db=acme, env=env)
    assert gate.code == 0, gate
    assert {c["name"] for c in gate.json()["checks"]} == {"database", "daemons", "heartbeats", "unowned_accounts"}

    with database.session() as s:  # the daemon stops beating: the gate sees that
        s.execute(update(SessionDaemon).values(heartbeat_at=utcnow() - timedelta(seconds=3600)))
    gate = cli("health", "--gate", "--json", db=acme, env=env)
    assert gate.code == 2 and gate.json()["status"] == "CRITICAL", gate
