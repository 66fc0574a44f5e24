"""`blazzctl daemon run`: N daemons in the foreground; a crashed one comes back; Ctrl-C drains all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.daemon_helpers import REPO, daemon_rows, migrate, owners, seed_accounts, wait_for, write_config


def test_daemon_run_restarts_a_crashed_child_and_drains_on_ctrl_c(tmp_path, sqlite_url):
    from blazzctl.db import Database

    migrate(sqlite_url)
    db = Database(sqlite_url)
    seed_accounts(db, 6)
    config = write_config(tmp_path / "blazz.yaml", url=sqlite_url, journal=tmp_path / "journal.jsonl",
                          state_dir=tmp_path / "state", host="dev")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "blazzctl", "daemon", "run", "--instances", "2",
                             "--config", str(config)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: all(o in ("dev:1", "dev:2") for o, _ in owners(db).values()), timeout=60)
        children = psutil.Process(proc.pid).children()
        assert len(children) == 2
        victim = children[0]
        victim.kill()  # a crash: the supervisor starts it again
        wait_for(lambda: len([c for c in psutil.Process(proc.pid).children() if c.pid != victim.pid]) == 2,
                 timeout=30)
        replacement = [c for c in psutil.Process(proc.pid).children() if c.pid != victim.pid]
        wait_for(lambda: {r["pid"] for r in daemon_rows(db).values()} == {c.pid for c in replacement}
                 and {r["status"] for r in daemon_rows(db).values()} == {"running"}, timeout=60)

        proc.send_signal(signal.SIGINT)  # Ctrl-C reaches the supervisor alone (children have their own group)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out
        assert "restarting in" in out and "all daemons stopped" in out
        assert {r["status"] for r in daemon_rows(db).values()} == {"stopped"}
        assert all(owner is None for owner, _ in owners(db).values())  # leases handed back at once
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
        db.dispose()


def _supervise(config, *args: str, race: bool = False) -> subprocess.Popen:
    """`blazzctl daemon run ARGS`; with ``race``, a supervisor that did not look first (as when the
    other daemon starts between its look and its child's birth)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if race:
        code = ("import sys; from daemons.supervisor import Supervisor; "
                f"sys.exit(Supervisor({int(args[0])}, config={str(config)!r}, running={{}}).run())")
        command = [sys.executable, "-c", code]
    else:
        command = [sys.executable, "-m", "blazzctl", "daemon", "run", *args, "--config", str(config)]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.kill()
            proc.kill()
    return out


@pytest.mark.parametrize("race", [False, True], ids=["seen-before-start", "refused-at-birth"])
def test_an_instance_already_running_is_said_once_and_the_others_run(tmp_path, sqlite_url, race):
    from blazzctl.db import Database

    migrate(sqlite_url)
    db = Database(sqlite_url)
    seed_accounts(db, 4)
    config = write_config(tmp_path / "blazz.yaml", url=sqlite_url, journal=tmp_path / "journal.jsonl",
                          state_dir=tmp_path / "state", host="dev")
    first = _supervise(config, "--instances", "1")
    second = None
    try:
        wait_for(lambda: daemon_rows(db).get("dev:1", {}).get("status") == "running", timeout=60)
        twin = daemon_rows(db)["dev:1"]["pid"]
        second = _supervise(config, "2", race=True) if race else _supervise(config, "--instances", "2")
        wait_for(lambda: daemon_rows(db).get("dev:2", {}).get("status") == "running", timeout=60)
        time.sleep(3)  # room for restarts of instance 1, were there any (there must be none)
        assert second.poll() is None
        assert daemon_rows(db)["dev:1"]["pid"] == twin  # the first one's daemon, untouched
        out = _stop(second)
        assert second.returncode == 0, out
        said = [line for line in out.splitlines() if "instance 1" in line and "already running" in line]
        assert len(said) == 1, out
        assert "not starting it here" in said[0] and "restarting in" not in out
        if not race:
            assert f"dev:1, pid {twin}" in said[0] and "--instance 1 " not in out
        assert first.poll() is None and daemon_rows(db)["dev:1"]["status"] == "running"
    finally:
        if second is not None and second.poll() is None:
            _stop(second)
        _stop(first)
        db.dispose()


def test_when_every_instance_runs_elsewhere_there_is_nothing_to_supervise(tmp_path, sqlite_url):
    from blazzctl.db import Database

    migrate(sqlite_url)
    db = Database(sqlite_url)
    config = write_config(tmp_path / "blazz.yaml", url=sqlite_url, journal=tmp_path / "journal.jsonl",
                          state_dir=tmp_path / "state", host="dev")
    first = _supervise(config, "--instances", "1")
    try:
        wait_for(lambda: daemon_rows(db).get("dev:1", {}).get("status") == "running", timeout=60)
        second = _supervise(config, "--instances", "1")
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 1, out
        assert "instance 1 is already running" in out and "nothing to supervise" in out
    finally:
        _stop(first)
        db.dispose()
