"""Prometheus metrics scraped from a real daemon process (fake provider, MariaDB) and parsed.

One daemon drives a connected account and one whose login fails, sends a message and delivers
webhooks to a local receiver (one endpoint answers 200, one 500), then has a lease taken away;
the scrape must show each of those as counters, and the gauges must read what the database says.
"""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.request

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import blazzctl

from tests.daemon_helpers import Fleet, migrate, wait_for

pytestmark = pytest.mark.mariadb


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """A local webhook receiver: /ok answers 200, /broken answers 500."""

    def __init__(self) -> None:
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("content-length") or 0))
                hits.append(self.path)
                self.send_response(200 if self.path == "/ok" else 500)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _fleet(tmp_path, url: str, *, base_port: int, enabled: bool = True) -> Fleet:
    fleet = Fleet(tmp_path / "fleet", url, webhooks=True)
    config = fleet.config_for("host-a")
    doc = yaml.safe_load(config.read_text())
    doc["providers"]["webjs"]["options"].update({"fail_names": ["broken"], "acks": [2]})
    doc["messages"] = {"rate_per_minute": 0, "jitter": 0, "poll_interval": 0.1}
    doc["webhooks"].update({"poll_interval": 0.05, "retry_schedule": [60, 60, 60], "timeout": 2})
    doc["metrics"] = {"enabled": enabled, "base_port": base_port}
    config.write_text(yaml.safe_dump(doc))
    return fleet


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """{sample name: {sorted label items: value}} of one scrape."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    out: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def value(metrics: dict, sample: str, **labels) -> float:
    return metrics[sample][tuple(sorted(labels.items()))]


def test_a_daemon_serves_its_metrics(cli, tmp_path, mariadb_url):
    migrate(mariadb_url)
    receiver = Receiver()
    port = _free_port()
    try:
        with _fleet(tmp_path, mariadb_url, base_port=port - 1) as fleet:
            assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
            for name in ("sales", "broken"):
                assert cli("account", "add", "--workspace", "acme", "--name", name, db=mariadb_url).code == 0
            for path in ("ok", "broken"):
                assert cli("webhook", "add", "--workspace", "acme", f"{receiver.url}/{path}",
                           db=mariadb_url).code == 0
            fleet.start(1)
            assert cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30",
                       db=mariadb_url).code == 0
            assert cli("account", "connect", "broken", "--workspace", "acme", "--timeout", "30",
                       db=mariadb_url).code != 0
            sent = cli("message", "send", "sales", "--workspace", "acme", "--to", "+62 812-3456-7890",
                       "--text", "hi", "--wait", "--timeout", "30", db=mariadb_url)
            assert sent.code == 0, sent

            def settled():
                m = scrape(port)
                done = (value(m, "blazz_webhook_deliveries_total", outcome="delivered") >= 1
                        and value(m, "blazz_webhook_deliveries_total", outcome="retry") >= 1
                        and value(m, "blazz_fleet_accounts", status="failed") == 1)
                return m if done else None

            m = wait_for(settled, 30, interval=0.3, message=lambda: fleet.logs())
            assert value(m, "blazz_daemon_info", name="host-a:1", host="host-a", instance="1",
                         version=blazzctl.__version__) == 1
            assert value(m, "blazz_database_up") == 1
            assert value(m, "blazz_leases_claimed_total") == 2
            assert value(m, "blazz_leases_renewed_total") >= 1
            assert value(m, "blazz_leases_lost_total") == 0
            assert value(m, "blazz_sessions_started_total") == 2
            assert value(m, "blazz_sessions_failed_total") == 1
            assert value(m, "blazz_messages_sent_total") == 1
            assert value(m, "blazz_messages_received_total") == 0
            assert value(m, "blazz_message_send_seconds_count") == 1
            assert value(m, "blazz_message_send_seconds_bucket", le="+Inf") == 1
            assert value(m, "blazz_accounts", status="connected") == 1
            assert value(m, "blazz_accounts", status="failed") == 0  # released: no longer this daemon's
            assert value(m, "blazz_fleet_accounts", status="connected") == 1
            assert value(m, "blazz_messages_pending") == 0
            assert value(m, "blazz_sessions") == 1
            assert value(m, "blazz_process_tree_rss_bytes") > 10 * 1024 * 1024
            assert 0 < value(m, "process_resident_memory_bytes") <= value(m, "blazz_process_tree_rss_bytes") * 2
            assert 0 <= value(m, "blazz_lease_renewal_age_seconds") < 30
            # The 500 endpoint's deliveries wait 60 s for their retry: that is the outbox backlog.
            assert value(m, "blazz_fleet_webhook_outbox_pending") >= 1
            assert value(m, "blazz_fleet_webhook_outbox_oldest_age_seconds") >= 0
            assert value(m, "blazz_webhook_deliveries_total", outcome="delivered") >= 1
            assert value(m, "blazz_webhook_deliveries_total", outcome="dead") == 0
            _set_wa_version(mariadb_url, "sales", "2.3000.1")  # as a WhatsApp Web page reports it
            wait_for(lambda: scrape(port).get("blazz_fleet_accounts_by_wa_version", {}).get(
                (("version", "2.3000.1"),)) == 1, 10, interval=0.3)

            _take_over(mariadb_url, "sales")  # another owner now holds the lease: the daemon must notice
            wait_for(lambda: value(scrape(port), "blazz_leases_lost_total") == 1, 20, interval=0.3,
                     message=lambda: fleet.logs())
            fleet.stop_all()
            assert all(d.proc.returncode == 0 for d in fleet.daemons.values()), fleet.logs()
    finally:
        receiver.close()


def _set_wa_version(url: str, name: str, version: str) -> None:
    from sqlalchemy import update

    from blazzctl.db import Database
    from blazzctl.models import WhatsAppAccount

    db = Database(url)
    try:
        with db.session() as s:
            s.execute(update(WhatsAppAccount).where(WhatsAppAccount.name == name).values(wa_version=version))
    finally:
        db.dispose()


def _take_over(url: str, name: str) -> None:
    from sqlalchemy import update

    from blazzctl.db import Database, db_now
    from blazzctl.models import WhatsAppAccount

    db = Database(url)
    try:
        with db.session() as s:
            s.execute(update(WhatsAppAccount).where(WhatsAppAccount.name == name).values(
                owner="elsewhere:1", lease_epoch=WhatsAppAccount.lease_epoch + 1, lease_expires_at=db_now(30)))
    finally:
        db.dispose()


def test_metrics_are_off_by_default_and_a_busy_port_does_not_stop_the_daemon(cli, tmp_path, mariadb_url):
    migrate(mariadb_url)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        with _fleet(tmp_path / "on", mariadb_url, base_port=port - 1) as fleet:
            daemon = fleet.start(1)
            wait_for(lambda: " ready " in daemon.tail(), 30, message=lambda: daemon.tail())
            assert "metrics not served" in daemon.tail() and "Address already in use" in daemon.tail()
            assert daemon.alive()
        free = _free_port()
        with _fleet(tmp_path / "off", mariadb_url, base_port=free - 1, enabled=False) as fleet:
            daemon = fleet.start(1)
            wait_for(lambda: " ready " in daemon.tail(), 30, message=lambda: daemon.tail())
            with pytest.raises(OSError):  # connection refused: nothing listens
                urllib.request.urlopen(f"http://127.0.0.1:{free}/metrics", timeout=2)
    finally:
        busy.close()


def test_received_counts_stored_inbound_messages_once(sqlite_url):
    """The fake provider sends no inbound messages: the counter is checked on the store itself."""
    from sqlalchemy import update

    from blazzctl.db import Database
    from blazzctl.models import WhatsAppAccount
    from daemons.session import inbound, metrics
    from tests.daemon_helpers import seed_accounts

    migrate(sqlite_url)
    db = Database(sqlite_url)
    try:
        account_id = seed_accounts(db, 1)[0]
        with db.session() as s:
            s.execute(update(WhatsAppAccount).values(owner="host-a:1", lease_epoch=1))
        def received() -> float:
            return metrics.REGISTRY.get_sample_value("blazz_messages_received_total")

        before = received()
        message = {"id": "false_6281234567890@c.us_ABC", "remote": "6281234567890@c.us", "from": "6281234567890@c.us",
                   "body": "hello", "t": 1795707580, "type": "chat"}
        store = dict(db=db, owner="host-a:1", epoch=1, account_id=account_id, settings=None)
        assert inbound.store(**store, message=message) is True
        assert inbound.store(**store, message=message) is False  # WhatsApp redelivers: not counted again
        assert inbound.store(**store, message={**message, "id": "true_x_DEF", "from_me": True}) is True
        assert received() == before + 1  # our own message from the phone is not
    finally:
        db.dispose()


def test_pooled_browsers_are_counted_with_their_accounts_and_snapshot_failures():
    from types import SimpleNamespace

    from daemons.session.metrics import _pool_gauges

    slots = [SimpleNamespace(contexts={1: None, 2: None}, pss_bytes=500 << 20),
             SimpleNamespace(contexts={3: None}, pss_bytes=200 << 20)]
    provider = SimpleNamespace(pool=SimpleNamespace(slots=slots, killed_hung=1, recycled=3), snapshot_failures=2)
    families = {f.name: f for f in _pool_gauges(provider)}
    assert families["blazz_browsers"].samples[0].value == 2
    assert [(s.labels["browser"], s.value) for s in families["blazz_browser_contexts"].samples] == [("0", 2), ("1", 1)]
    assert [(s.labels["browser"], s.value) for s in families["blazz_browser_pss_bytes"].samples] == [
        ("0", 500 << 20), ("1", 200 << 20)]
    assert families["blazz_login_snapshot_failures"].samples[0].value == 2
    assert families["blazz_browsers_killed_hung"].samples[0].value == 1
    assert families["blazz_browsers_recycled"].samples[0].value == 3
    assert list(_pool_gauges(SimpleNamespace(pool=None))) == []  # a browser per account: no pool figures
