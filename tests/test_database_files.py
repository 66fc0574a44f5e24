"""The embedded SQLite database's files: only `init` / `db upgrade` create them, privately, and
only where the user keeps blazz's state unless told otherwise (`init --create-dirs`)."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import pytest

from tests.test_cli_accounts import failed


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def everything_under(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


@pytest.mark.parametrize("command", [("account", "list"), ("account", "list", "--json"), ("workspace", "list"),
                                     ("db", "current"), ("db", "check"), ("daemon", "list"), ("audit", "list"),
                                     ("message", "list"), ("webhook", "list", "-w", "acme"),
                                     ("account", "show", "sales", "-w", "acme"), ("workspace", "create", "acme")])
def test_commands_other_than_init_never_create_the_sqlite_file(cli, tmp_path, command):
    state = tmp_path / "state"
    result = cli(*command)
    if "--json" in command:  # errors under --json are JSON on stdout
        assert result.code == 69 and "no SQLite database at" in result.stdout + result.stderr
    else:
        failed(result, 69, f"no SQLite database at {state / 'blazz' / 'blazz.db'}", "Run `blazzctl init`")
    assert not state.exists()


def test_health_reports_the_missing_file_without_creating_it(cli, tmp_path):
    db_file = tmp_path / "elsewhere" / "blazz.db"
    result = cli("health", "--json", db=f"sqlite:///{db_file}")
    database = [c for c in result.json()["checks"] if c["name"] == "database"][0]
    assert result.code == 2 and database["state"] == "CRITICAL" and str(db_file) in database["detail"]
    assert not db_file.parent.exists()


def test_init_creates_a_private_database_and_directories(cli, tmp_path):
    state = tmp_path / "state"
    with umask(0o022):
        assert cli("init").code == 0
    db_file = state / "blazz" / "blazz.db"
    assert mode(db_file) == 0o600
    assert mode(state) == 0o700 and mode(state / "blazz") == 0o700  # the parents it created too
    # SQLite makes the -wal and -shm files with the database file's mode, whatever the umask.
    from blazzctl.db import Database

    with umask(0o022):
        db = Database(f"sqlite:///{db_file}")
        try:
            with db.session() as session:
                from sqlalchemy import text

                session.execute(text("INSERT INTO workspaces (uuid, name, created_at, updated_at) "
                                     "VALUES ('u', 'acme', '2026-01-01', '2026-01-01')"))
            wal, shm = Path(f"{db_file}-wal"), Path(f"{db_file}-shm")
            assert wal.exists() and shm.exists()
            assert mode(wal) == 0o600 and mode(shm) == 0o600
        finally:
            db.dispose()


def test_init_leaves_existing_directories_alone(cli, tmp_path):
    (tmp_path / "state" / "blazz").mkdir(parents=True, mode=0o755)
    (tmp_path / "state" / "blazz").chmod(0o755)
    assert cli("init").code == 0
    assert mode(tmp_path / "state" / "blazz") == 0o755 and mode(tmp_path / "state" / "blazz" / "blazz.db") == 0o600


def test_write_config_is_private(cli, tmp_path):
    target = tmp_path / "config" / "blazz" / "blazz.yaml"  # $XDG_CONFIG_HOME/blazz: created without asking
    with umask(0o022):
        result = cli("init", "--write-config", str(target))
    assert result.code == 0, result
    assert mode(target) == 0o600 and mode(target.parent) == 0o700 and mode(tmp_path / "config") == 0o700


@pytest.mark.parametrize("command", [("init",), ("db", "upgrade"), ("init", "--write-config", "CONFIG")])
def test_no_directories_outside_the_state_directory_without_create_dirs(cli, tmp_path, command):
    db_file = tmp_path / "srv" / "blazz" / "blazz.db"
    args = [str(tmp_path / "config" / "blazz" / "blazz.yaml") if a == "CONFIG" else a for a in command]
    result = cli(*args, db=f"sqlite:///{db_file}")
    failed(result, 1, f"the directory {db_file.parent} for the SQLite database does not exist",
           str(tmp_path / "state" / "blazz"), "nothing was written", "blazzctl init --create-dirs")
    assert not (tmp_path / "srv").exists() and not (tmp_path / "config").exists()  # the config file neither
    with umask(0o022):
        done = cli("init", "--create-dirs", db=f"sqlite:///{db_file}")
    assert done.code == 0, done
    assert mode(db_file) == 0o600 and mode(tmp_path / "srv") == 0o700 and mode(db_file.parent) == 0o700


def test_write_config_outside_the_config_directory_needs_create_dirs(cli, tmp_path):
    target = tmp_path / "etc" / "blazz" / "blazz.yaml"
    failed(cli("init", "--write-config", str(target)), 1, f"the directory {target.parent} for the configuration "
           "file does not exist", "--create-dirs")
    assert not (tmp_path / "etc").exists() and not (tmp_path / "state").exists()  # no database either
    (tmp_path / "etc" / "blazz").mkdir(parents=True)
    assert cli("init", "--write-config", str(target)).code == 0  # an existing directory is fine anywhere
    assert mode(target) == 0o600


def test_an_existing_file_in_an_existing_directory_is_used_anywhere(cli, tmp_path):
    import sqlite3

    db_file = tmp_path / "data" / "blazz.db"
    db_file.parent.mkdir()
    sqlite3.connect(db_file).close()
    assert cli("init", db=f"sqlite:///{db_file}").code == 0
    assert cli("workspace", "create", "acme", db=f"sqlite:///{db_file}").code == 0
