"""Operator commands end to end: CLI → account_commands rows → a real daemon (fake provider) → outcome.

Also `daemon list` and `health` against live and stopped daemons.
"""

from __future__ import annotations

import json
import signal

import pytest

from tests.daemon_helpers import Fleet, migrate

pytestmark = pytest.mark.mariadb


@pytest.fixture
def fleet(tmp_path, mariadb_url):
    migrate(mariadb_url)
    with Fleet(tmp_path / "fleet", mariadb_url) as fleet:
        yield fleet


def _account(cli, url, name):
    return cli("account", "show", name, "--workspace", "acme", "--json", db=url).json()


@pytest.fixture
def acme(cli, fleet):
    url = fleet.url
    assert cli("workspace", "create", "acme", db=url).code == 0
    for name in ("sales", "support", "broken"):
        assert cli("account", "add", "--workspace", "acme", "--name", name, db=url).code == 0
    return url


def test_connect_disconnect_reconnect_logout(cli, fleet, acme):
    fleet.start(1)
    r = cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30", db=acme)
    assert r.code == 0, r
    assert "status: connected" in r.stdout and "sales: connected as +" in r.stdout
    account = _account(cli, acme, "sales")
    assert account["status"] == "connected" and account["owner"] == "host-a:1"
    assert account["is_primary"] is True  # first connected account of a workspace without one

    r = cli("account", "disconnect", "sales", "--workspace", "acme", "--timeout", "30", db=acme)
    assert r.code == 0, r
    account = _account(cli, acme, "sales")
    assert (account["status"], account["desired_state"], account["owner"]) == ("disconnected", "stopped", None)

    r = cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30", "--json", db=acme)
    assert r.code == 0, r
    body = r.json()
    assert body["status"] == "connected" and body["command"]["status"] == "succeeded"

    r = cli("account", "reconnect", "sales", "--workspace", "acme", "--timeout", "30", db=acme)
    assert r.code == 0, r
    starts = [e for e in _journal(fleet) if e["account_id"] == body["id"] and e["event"] == "start"]
    assert len(starts) >= 3, starts  # connect, connect again, reconnect each started a session

    r = cli("account", "logout", "sales", "--workspace", "acme", "--timeout", "30", db=acme)
    assert r.code == 0, r
    account = _account(cli, acme, "sales")
    assert (account["status"], account["desired_state"], account["owner"]) == ("logged_out", "stopped", None)
    assert any(e["event"] == "logout" and e["account_id"] == body["id"] for e in _journal(fleet))


def test_connect_shows_the_warning_when_another_phone_linked(cli, tmp_path, mariadb_url):
    migrate(mariadb_url)
    with Fleet(tmp_path / "f", mariadb_url) as fleet:
        config = fleet.config_for("host-a")
        linked = "phones: {sales: '+4915550009'}\n      link_delay:"  # not the number entered below
        config.write_text(config.read_text().replace("link_delay:", linked))
        assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
        assert cli("account", "add", "--workspace", "acme", "--name", "sales", "--phone", "+62 812-3456-7890",
                   db=mariadb_url).code == 0
        fleet.start(1)
        r = cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30", db=mariadb_url)
        assert r.code == 0, r
        assert ("status: connected (WARNING: the linked phone is +4915550009, not +6281234567890 as entered; "
                "blazz keeps +4915550009)") in r.stdout
        assert "sales: connected as +4915550009" in r.stdout
        assert _account(cli, mariadb_url, "sales")["status_reason"].startswith("WARNING")


def test_connect_failure_is_reported_with_reason(cli, tmp_path, mariadb_url):
    migrate(mariadb_url)
    with Fleet(tmp_path / "f", mariadb_url) as fleet:
        fleet.config_for("host-a")
        # A config whose fake phone refuses the "broken" account.
        text = (fleet.root / "host-a.yaml").read_text()
        (fleet.root / "host-a.yaml").write_text(text.replace("link_delay:", "fail_names: [broken]\n      link_delay:"))
        assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
        assert cli("account", "add", "--workspace", "acme", "--name", "broken", db=mariadb_url).code == 0
        fleet.start(1)
        r = cli("account", "connect", "broken", "--workspace", "acme", "--timeout", "30", db=mariadb_url)
        assert r.code == 1, r
        assert "fake_failure" in r.stderr
        account = _account(cli, mariadb_url, "broken")
        assert account["status"] == "failed" and account["desired_state"] == "stopped"


def test_connect_without_daemon_times_out_with_advice(cli, fleet, acme):
    r = cli("account", "connect", "support", "--workspace", "acme", "--timeout", "11", db=acme)
    assert r.code == 1, r
    assert "no session daemon is running" in r.stderr
    assert "timed out" in r.stderr
    # Without a daemon, disconnect and logout need no browser: they are done at once.
    assert cli("account", "disconnect", "support", "--workspace", "acme", "--timeout", "5", db=acme).code == 0
    r = cli("account", "logout", "support", "--workspace", "acme", "--timeout", "5", db=acme)
    assert r.code == 0, r
    assert _account(cli, acme, "support")["status"] == "logged_out"


def test_daemon_list_and_health(cli, fleet, acme, tmp_path):
    env = {"BLAZZ_DAEMON_HOST": "host-a", "BLAZZ_DAEMON_HEARTBEAT_INTERVAL": "0.5"}
    r = cli("health", "--json", db=acme, env=env)
    assert r.code == 2, r  # no daemon: CRITICAL
    assert {c["name"]: c["state"] for c in r.json()["checks"]}["daemons"] == "CRITICAL"

    daemon = fleet.start(1)
    assert cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30", db=acme).code == 0
    r = cli("daemon", "list", "--json", db=acme, env=env)
    assert r.code == 0
    rows = r.json()
    assert [(d["name"], d["status"], d["live"], d["accounts_owned"] >= 0) for d in rows] == [
        ("host-a:1", "running", True, True)]
    assert rows[0]["rss_bytes"] > 0 and rows[0]["pid"] == daemon.pid

    r = cli("health", "--json", "--wait", "3", db=acme, env=env)
    assert r.code == 1, r  # a shared database without a shared session key: WARNING
    assert {c["name"]: c["state"] for c in r.json()["checks"]}["session_key"] == "WARNING"
    assert cli("key", "generate", "--file", str(tmp_path / "session.key")).code == 0
    env["BLAZZ_SECRETS_SESSION_KEY_FILE"] = str(tmp_path / "session.key")
    r = cli("health", "--json", "--wait", "10", db=acme, env=env)
    assert r.code == 0, r
    assert r.json()["status"] == "OK"

    daemon.send(signal.SIGTERM)
    assert daemon.wait(30) == 0
    r = cli("daemon", "list", "--all", "--json", db=acme, env=env)
    assert r.json()[0]["status"] == "stopped"
    r = cli("health", db=acme, env=env)
    assert r.code == 2 and "CRITICAL" in r.stdout


def test_health_usage_and_config_errors_are_unknown(cli, tmp_path):
    assert cli("health", "--no-such-option").code == 3
    bad = tmp_path / "bad.yaml"
    bad.write_text("daemon:\n  lease_ttl: soon\n")
    r = cli("health", "--config", str(bad), "--json")
    assert r.code == 3, r
    assert r.json()["status"] == "UNKNOWN"


def test_health_database_unreachable_is_critical(cli):
    r = cli("health", "--json", db="mysql+pymysql://root@127.0.0.1:1/nothing")
    assert r.code == 2, r
    assert "cannot reach the database" in json.dumps(r.json())


def _journal(fleet):
    if not fleet.journal.exists():
        return []
    return [json.loads(line) for line in fleet.journal.read_text().splitlines() if line.strip()]


def test_a_finished_command_keeps_its_outcome(database):
    """The account failed (finishing its connect command with the reason) while the daemon was
    taking the command: the daemon's later "not owned any more" must not replace the reason."""
    from blazzctl.enums import CommandKind, CommandStatus
    from blazzctl.models import AccountCommand
    from blazzctl.services import accounts, commands, workspaces
    from daemons.session.status import StatusWriter

    from daemons.session.commands import take_pending

    with database.session() as s:
        account = accounts.add(s, workspace=workspaces.create(s, name="acme"), name="sales")
        command_id = commands.request(s, account=account, kind=CommandKind.CONNECT).id
        account_id = account.id
    assert take_pending(database, owner="host-a:1", account_ids=[account_id]) == [
        (command_id, account_id, CommandKind.CONNECT)]
    writer = StatusWriter(database, "host-a:1")
    StatusWriter(database, "host-b:1").finish_command(command_id, CommandStatus.FAILED, "not its command")
    writer.finish_command(command_id, CommandStatus.FAILED, "fake_failure")
    writer.finish_command(command_id, CommandStatus.FAILED, "account not owned any more")
    with database.session() as s:
        row = s.get(AccountCommand, command_id)
        assert (row.status, row.result) == (CommandStatus.FAILED, "fake_failure")


def test_a_linked_phone_other_than_the_one_entered_is_kept_with_a_warning(database, cli):
    """The operator entered one number, another phone scanned the QR: the linked number is the
    one that sends, so it is kept; the status reason (shown by `connect`) warns about it, and
    `account update --phone` takes the stored number back as it is."""
    from sqlalchemy import update

    from blazzctl.enums import AccountStatus, CommandKind
    from blazzctl.models import WhatsAppAccount
    from blazzctl.services import accounts, commands, workspaces
    from daemons.session.status import StatusWriter

    with database.session() as s:
        account = accounts.add(s, workspace=workspaces.create(s, name="acme"), name="sales", phone="+62 812-3456-7890")
        aid = account.id
        command_id = commands.request(s, account=account, kind=CommandKind.CONNECT).id
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == aid).values(owner="host-a:1", lease_epoch=1))
    writer = StatusWriter(database, "host-a:1")
    writer.set_status(aid, 1, AccountStatus.CONNECTED, phone_number="+4915550001")
    with database.session() as s:
        acc = s.get(WhatsAppAccount, aid)
        assert acc.phone_number == "+4915550001"
        assert acc.status_reason == ("WARNING: the linked phone is +4915550001, not +6281234567890 as entered; "
                                     "blazz keeps +4915550001")
        progress = commands.progress(s, command_id=command_id, heartbeat_interval=1.0)
        assert progress.done and progress.warning == acc.status_reason
    writer.set_status(aid, 1, AccountStatus.CONNECTED, phone_number="+4915550001")  # the same phone again
    with database.session() as s:
        assert s.get(WhatsAppAccount, aid).status_reason is None

    r = cli("account", "update", "sales", "--workspace", "acme", "--phone", "+4915550001", "--json",
            db=database.url)
    assert r.code == 0 and r.json()["phone_number"] == "+4915550001", r
