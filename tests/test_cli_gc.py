"""How `blazzctl` starts: the cyclic garbage collector off (start-up time) and back on for
commands that keep running; command modules that load on their own, in any order."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_the_console_script_runs_short_commands_without_the_cyclic_collector(sqlite_url):
    code = ("import atexit, gc, sys\n"
            "sys.argv = ['blazzctl', 'workspace', 'list', '--json']\n"
            "from blazzctl.cli.main import run\n"
            "atexit.register(lambda: print('gc enabled:', gc.isenabled(), file=sys.stderr))\n"
            "run()\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "BLAZZ_DATABASE_URL": sqlite_url}
    subprocess.run([sys.executable, "-m", "blazzctl", "init"], env=env, check=True, capture_output=True)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]" and "gc enabled: False" in proc.stderr


@pytest.fixture
def collector_off():
    gc.disable()  # as the console script leaves it
    yield
    gc.enable()


def test_daemon_run_turns_the_collector_back_on(cli, sqlite_url, monkeypatch, collector_off):
    import daemons.supervisor

    seen = []
    monkeypatch.setattr(daemons.supervisor, "run_foreground",
                        lambda count, config, **_: seen.append((count, gc.isenabled())) or 0)
    assert cli("init", db=sqlite_url).code == 0  # daemon run reads the database first (no file: exit 69)
    result = cli("daemon", "run", "--instances", "2", db=sqlite_url)
    assert result.code == 0, result
    assert seen == [(2, True)]


def test_waiting_turns_the_collector_back_on(migrated_url, monkeypatch, collector_off):
    """Every wait loop calls keep_running() before it starts polling; here the sync wait."""
    from blazzctl.cli import context
    from blazzctl.cli import sync as sync_cli

    monkeypatch.setenv("BLAZZ_DATABASE_URL", migrated_url)
    context.reset(None)
    try:
        assert sync_cli._wait(context.state(), [], 5, progress=False) == ([], False)
    finally:
        context.STATE.close()
    assert gc.isenabled()


def test_every_command_module_imports_on_its_own():
    """Commands load lazily, so any command module can be the first one imported (quickstart
    imports connect first, say): none may depend on another having been imported before it."""
    from blazzctl.cli.main import TREE

    modules = sorted({f"blazzctl.cli.{module}" for module, *_ in TREE.values()}
                     | {f"blazzctl.cli.{p.stem}" for p in (REPO / "blazzctl" / "cli").glob("*.py")})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for module in modules:
        proc = subprocess.run([sys.executable, "-c", f"import {module}"], env=env, capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0, (module, proc.stderr[-2000:])
