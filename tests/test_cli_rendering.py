"""How tables and `show` listings read: states in colour on a terminal only (never under NO_COLOR
or in a pipe), booleans the same in lists and `show`, mappings as key=value."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from datetime import datetime, timezone

import pytest
from sqlalchemy import update

from blazzctl.db import Database
from blazzctl.enums import AccountStatus
from blazzctl.models import WhatsAppAccount
from blazzctl.services import accounts, schema, sync_store, workspaces

GREEN, BOLD_RED = "\x1b[32m", "\x1b[1;31m"


@pytest.fixture
def url(sqlite_url):
    """A SQLite database with workspace acme: account a (primary, connected) and b."""
    db = Database(sqlite_url)
    schema.upgrade(db)
    with db.session() as s:
        ws = workspaces.create(s, name="acme")
        accounts.add(s, workspace=ws, name="a")
        accounts.add(s, workspace=ws, name="b")
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.name == "a")
                  .values(is_primary=True, status=AccountStatus.CONNECTED))
    db.dispose()
    return sqlite_url


def on_terminal(*args: str, env: dict) -> str:
    """stdout of ``blazzctl ARGS`` written to a pseudo-terminal."""
    leader, follower = pty.openpty()
    inherited = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    full_env = {**inherited, "COLUMNS": "200", "TERM": "xterm-256color", **env}
    with subprocess.Popen([sys.executable, "-m", "blazzctl", *args], stdout=follower, stderr=subprocess.PIPE,
                          env=full_env) as proc:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait(60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_states_are_coloured_on_a_terminal_only(url, cli):
    env = {"BLAZZ_DATABASE_URL": url}
    listing = on_terminal("account", "list", env=env)
    assert f"{GREEN}connected" in listing, repr(listing)
    health = on_terminal("health", env=env)
    assert f"{BOLD_RED}CRITICAL" in health, repr(health)  # no daemon: the overall line and the check

    quiet = on_terminal("account", "list", env={**env, "NO_COLOR": "1"})
    assert "connected" in quiet and GREEN not in quiet, repr(quiet)
    assert BOLD_RED not in on_terminal("health", env={**env, "NO_COLOR": "1"})

    piped = cli("account", "list", db=url)
    assert "connected" in piped.stdout and "\x1b" not in piped.stdout


def test_booleans_read_the_same_in_list_and_show(url, cli):
    rows = [line.split() for line in cli("account", "list", db=url).stdout.splitlines()]
    header = rows[0]
    primary = {row[header.index("NAME")]: row[header.index("PRIMARY")] for row in rows[1:]}
    assert primary == {"a": "yes", "b": "no"}
    for name, shown in primary.items():
        lines = cli("account", "show", name, "--workspace", "acme", db=url).stdout.splitlines()
        assert next(line.split() for line in lines if line.startswith("is_primary")) == ["is_primary", shown]


def test_group_show_prints_settings_as_key_value(url, cli):
    db = Database(url)
    with db.session() as s:
        account = s.query(WhatsAppAccount).filter_by(name="a").one()
        scope = sync_store.Scope(account.workspace_id, account.id)
        sync_store.write_groups(s, [{"id": "120363000000000000@g.us", "subject": "Team", "announce": True,
                                     "restrict": False, "participants": []}], scope, datetime.now(timezone.utc))
    db.dispose()
    result = cli("group", "show", "a", "120363000000000000@g.us", "--workspace", "acme", db=url)
    assert result.code == 0, result
    assert [line.split() for line in result.stdout.splitlines() if line.startswith("settings")] == [
        ["settings", "announce=yes", "restrict=no"]]
