"""`blazzctl daemon forget`: the rows of daemons that no longer run (a decommissioned host) go away."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from blazzctl.db import Database, db_now
from daemons.session import heartbeat
from tests.daemon_helpers import daemon_rows, migrate


@pytest.fixture
def fleet(sqlite_url):
    """old:1 stopped, old:2 dead (running, heartbeat an hour old), new:1 live."""
    from sqlalchemy import func

    from blazzctl.models import SessionDaemon

    migrate(sqlite_url)
    db = Database(sqlite_url)
    for name in ("old:1", "old:2", "new:1"):
        host, _, instance = name.partition(":")
        heartbeat.register_birth(db, name=name, host=host, instance=int(instance), version="t", capacity=5)
    heartbeat.register_death(db, name="old:1")
    with db.session() as s:
        s.execute(update(SessionDaemon).where(SessionDaemon.name == "old:2").values(
            status="running", heartbeat_at=func.datetime(db_now(), "-1 hour")))
    yield db
    db.dispose()


def test_a_decommissioned_host_is_forgotten(cli, sqlite_url, fleet):
    result = cli("daemon", "forget", "--host", "old", "--json", db=sqlite_url)
    assert result.code == 0, result
    assert sorted(result.json()["forgotten"]) == ["old:1", "old:2"]
    assert set(daemon_rows(fleet)) == {"new:1"}
    events = cli("audit", "list", "--json", db=sqlite_url).json()
    assert any(e["command"] == "daemon forget" and "old:2" in e["target"] for e in events), events


def test_a_live_daemon_is_refused_and_nothing_is_forgotten(cli, sqlite_url, fleet):
    result = cli("daemon", "forget", "old:1", "new:1", db=sqlite_url)
    assert result.code == 4, result
    assert "still running: new:1" in result.stderr and "stop it first" in result.stderr.lower()
    assert set(daemon_rows(fleet)) == {"old:1", "old:2", "new:1"}


@pytest.mark.parametrize("args, code, message", [
    (["nosuch:1"], 3, "no session daemon nosuch:1"),
    (["--host", "nowhere"], 3, "no session daemon on host nowhere"),
    ([], 2, "name the daemons to forget"),
])
def test_bad_names(cli, sqlite_url, fleet, args, code, message):
    result = cli("daemon", "forget", *args, db=sqlite_url)
    assert result.code == code, result
    assert message in result.stderr
    assert set(daemon_rows(fleet)) == {"old:1", "old:2", "new:1"}


def test_by_name(cli, sqlite_url, fleet):
    result = cli("daemon", "forget", "old:2", db=sqlite_url)
    assert result.code == 0, result
    assert "forgot old:2" in result.stdout
    assert set(daemon_rows(fleet)) == {"old:1", "new:1"}
