"""`blazzctl daemon restart --rolling`: real daemons under the stand-in systemctl, real gates on MariaDB."""

from __future__ import annotations

import sys

import pytest

from blazzctl.db import Database
from tests.conftest import REPO, run_blazzctl
from tests.daemon_helpers import migrate, owners, seed_accounts, wait_for
from tests.systemd_helpers import FakeSystemd, host_config

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]

ACCOUNTS = 6


class Host:
    """Two instances of blazz-session@ under the stand-in systemd, on one MariaDB database."""

    def __init__(self, root, url: str, *, daemon: dict | None = None) -> None:
        self.url = url
        self.systemd = FakeSystemd(root)
        self.config = host_config(root, url, daemon={"instances": 2, "unowned_grace": 20, **(daemon or {})})
        self.env = {**self.systemd.env, "BLAZZ_CONFIG": str(self.config)}
        self.db = Database(url)

    def install(self) -> None:
        """The units as `blazzctl units install` writes them (the daemon beside this Python)."""
        result = run_blazzctl("units", "install", "--dest", str(self.systemd.unit_dir), env=self.env)
        assert result.code == 0, result
        self.systemd.drop_in({"BLAZZ_CONFIG": str(self.config), "PYTHONPATH": str(REPO)})

    def start(self) -> None:
        for n in (1, 2):
            started = self.systemd.systemctl("start", f"blazz-session@{n}.service")
            assert started.returncode == 0, (started.stderr, self.systemd.logs())
        wait_for(self.all_owned, 30, message=lambda: f"all accounts owned: {owners(self.db)}\n{self.systemd.logs()}")

    def all_owned(self) -> bool:
        snap = owners(self.db)
        return len(snap) == ACCOUNTS and all(o in ("host-a:1", "host-a:2") for o, _ in snap.values())

    def restart(self, *args: str):
        return run_blazzctl("daemon", "restart", *args, env=self.env, timeout=180)


@pytest.fixture
def host(tmp_path, mariadb_url):
    migrate(mariadb_url)
    h = Host(tmp_path, mariadb_url)
    seed_accounts(h.db, ACCOUNTS)
    h.install()
    yield h
    h.systemd.close()
    h.db.dispose()


def test_rolling_restart_replaces_each_daemon_and_keeps_every_account_owned(host):
    host.start()
    before = {n: host.systemd.pid(n) for n in (1, 2)}
    result = host.restart("--rolling", "--timeout", "60", "--json")
    assert result.code == 0, (result, host.systemd.logs())
    data = result.json()
    assert [r["instance"] for r in data["restarted"]] == [1, 2]
    for r in data["restarted"]:
        assert r["old_pid"] == before[r["instance"]]
        assert r["new_pid"] == host.systemd.pid(r["instance"]) != r["old_pid"]
    assert data["health"]["status"] == "OK"
    restarts = [c for c in host.systemd.calls() if c.startswith("restart")]
    assert restarts == ["restart blazz-session@1.service", "restart blazz-session@2.service"]
    assert host.all_owned()


def test_progress_lines_name_each_instance(host):
    host.start()
    result = host.restart("--rolling", "--instance", "2", "--no-health")
    assert result.code == 0, result
    assert "restart blazz-session@2.service" in result.stdout
    assert "blazz-session@2.service ready in" in result.stdout
    assert "blazz-session@1" not in result.stdout
    assert not any("blazz-session@1" in c for c in host.systemd.calls() if c.startswith("restart"))


def test_a_daemon_that_cannot_start_stops_the_rolling_restart_there(host):
    host.start()
    pid_2 = host.systemd.pid(2)
    # Instance 1 only: a configuration file that does not exist (blazz-sessiond exits 78).
    host.systemd.drop_in({"BLAZZ_CONFIG": "/nonexistent/blazz.yaml"}, unit="blazz-session@1.service",
                         name="broken.conf")
    result = host.restart("--rolling", "--timeout", "30")
    assert result.code == 1, result
    assert "restart of blazz-session@1.service failed" in result.stderr
    assert "restart blazz-session@2.service" not in host.systemd.calls()
    assert host.systemd.pid(2) == pid_2
    # The fleet heals around the dead instance: instance 2 takes every account.
    wait_for(lambda: set(o for o, _ in owners(host.db).values()) == {"host-a:2"}, 30,
             message=lambda: f"instance 2 owns all: {owners(host.db)}")


def test_accounts_left_unowned_past_the_grace_fail_the_gate(tmp_path, mariadb_url):
    """Capacity 2 x 2 daemons for 6 accounts: 2 stay unowned, so the restart cannot be called ready."""
    migrate(mariadb_url)
    host = Host(tmp_path, mariadb_url, daemon={"capacity": 2, "unowned_grace": 2})
    seed_accounts(host.db, ACCOUNTS)
    try:
        host.install()
        for n in (1, 2):
            assert host.systemd.systemctl("start", f"blazz-session@{n}.service").returncode == 0
        result = host.restart("--rolling", "--timeout", "60")
        assert result.code == 1, result
        assert "blazz-session@1.service did not become ready" in result.stderr
        assert "runnable accounts still unowned" in result.stderr
        assert "restart blazz-session@2.service" not in host.systemd.calls()
    finally:
        host.systemd.close()
        host.db.dispose()


def test_all_at_once_names_the_unit_that_failed(host):
    host.start()
    host.systemd.drop_in({"BLAZZ_CONFIG": "/nonexistent/blazz.yaml"}, unit="blazz-session@2.service",
                         name="broken.conf")
    result = host.restart("--timeout", "30", "--no-health")
    assert result.code == 1, result
    assert "restart blazz-session@1.service blazz-session@2.service" in host.systemd.calls()
    assert "Job for blazz-session@2.service failed" in result.stderr


def test_a_daemon_that_dies_after_ready_is_caught_by_the_unit_check(host):
    """systemctl restart succeeds (READY=1 arrives), then the process exits: the unit is failed."""
    host.start()
    ready_then_exit = ("import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
                       "s.sendto(b'READY=1', b'\\0' + os.environ['NOTIFY_SOCKET'][1:].encode())")
    drop_in = host.systemd.unit_dir / "blazz-session@1.service.d" / "exits.conf"
    drop_in.parent.mkdir(parents=True)
    drop_in.write_text(f'[Service]\nExecStart=\nExecStart={sys.executable} -c "{ready_then_exit}"\n')
    result = host.restart("--rolling", "--timeout", "60")
    assert result.code == 1, result
    assert "blazz-session@1.service did not become ready: systemd says the unit is failed" in result.stderr
    assert "restart blazz-session@2.service" not in host.systemd.calls()


def test_without_systemctl_nothing_is_restarted(host):
    result = run_blazzctl("daemon", "restart", "--rolling",
                          env={**host.env, "SYSTEMCTL": "/nonexistent/systemctl"})
    assert result.code == 1
    assert "SYSTEMCTL='/nonexistent/systemctl' is not an executable" in result.stderr
    assert not [c for c in host.systemd.calls() if c.startswith("restart")]


def test_accounts_failing_on_the_restarted_daemon_stop_the_roll(host):
    """A new release whose sessions fail (here: the fake phone refuses them, as a release that
    cannot decrypt the login archives would) must stop the roll at the first instance."""
    import yaml

    host.start()
    doc = yaml.safe_load(host.config.read_text())
    names = [f"acc-{i:05d}" for i in range(ACCOUNTS)]
    doc["providers"]["webjs"]["options"]["fail_names"] = names  # read by the restarted daemons only
    host.config.write_text(yaml.safe_dump(doc, sort_keys=False))
    result = host.restart("--rolling", "--timeout", "60")
    assert result.code == 1, (result, host.systemd.logs())
    assert "blazz-session@1.service did not become ready" in result.stderr
    assert "accounts failed since the restart (reason: fake_failure)" in result.stderr
    restarts = [c for c in host.systemd.calls() if c.startswith("restart")]
    assert restarts == ["restart blazz-session@1.service"]  # instance 2 still runs what it ran
