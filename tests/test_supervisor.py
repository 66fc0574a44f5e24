"""`blazzctl daemon run`: N daemons in the foreground; a crashed one comes back; Ctrl-C drains all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil

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
