"""`blazzctl apikey create|list|revoke` and the key lookup the API uses (SQLite and MariaDB)."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from blazzctl.db import Database
from blazzctl.services import apikeys


@pytest.fixture
def bz(cli, migrated_url):
    def run(*args):
        return cli(*args, db=migrated_url)

    assert run("workspace", "create", "acme").code == 0
    assert run("workspace", "create", "globex").code == 0
    return run


def ok(result):
    assert result.code == 0, result
    return json.loads(result.stdout)


def failed(result, code: int, *needles: str) -> None:
    assert result.code == code, result
    assert result.stdout == "" and result.stderr.startswith("error: ") and "Traceback" not in result.stderr, result
    for needle in needles:
        assert needle in result.stderr, result


def test_create_prints_the_token_once_and_stores_only_its_hash(bz, migrated_url):
    made = ok(bz("apikey", "create", "--workspace", "acme", "--name", "app", "--scope", "accounts:read",
                 "--scope", "messages:send,accounts:read", "--expires", "30", "--json"))
    token = made["token"]
    assert re.fullmatch(r"blz_[A-Za-z0-9_-]{43}", token)
    assert made["scopes"] == ["accounts:read", "messages:send"] and made["workspace"] == "acme"
    assert made["prefix"] == token[:12] and made["expires_at"] and made["revoked_at"] is None
    db = Database(migrated_url)
    try:
        from blazzctl.models import ApiKey, AuditEvent

        with db.session() as s:
            row = s.scalars(select(ApiKey)).one()
            assert row.token_hash == apikeys.token_hash(token) and token not in json.dumps(
                {c.name: str(getattr(row, c.name)) for c in ApiKey.__table__.columns})
            assert apikeys.find(s, token).id == made["id"]
            assert apikeys.find(s, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
            audit = s.scalars(select(AuditEvent).where(AuditEvent.command == "apikey create")).one()
            assert audit.details["scopes"] == ["accounts:read", "messages:send"] and token not in json.dumps(audit.details)
    finally:
        db.dispose()
    listed = ok(bz("apikey", "list", "--json"))
    assert [k["name"] for k in listed] == ["app"] and "token" not in listed[0]
    assert token not in bz("apikey", "list").stdout


def test_bad_input_is_refused_and_writes_nothing(bz):
    failed(bz("apikey", "create", "--workspace", "acme", "--name", "x", "--scope", "accounts:rule"), 2,
           "unknown scope 'accounts:rule'", "accounts:read")
    failed(bz("apikey", "create", "--name", "x", "--scope", "accounts:read"), 2, "no workspace given")
    failed(bz("apikey", "create", "--workspace", "nope", "--name", "x", "--scope", "accounts:read"), 3,
           "workspace 'nope' not found")
    assert bz("apikey", "create", "--workspace", "acme", "--name", "x", "--scope", "sync:run",
              "--expires", "0").code == 2
    assert ok(bz("apikey", "list", "--json")) == []
    ok(bz("apikey", "create", "--workspace", "acme", "--name", "x", "--scope", "sync:run", "--json"))
    failed(bz("apikey", "create", "--workspace", "acme", "--name", "x", "--scope", "sync:run"), 4,
           "has an API key named 'x' already")
    # the same name in another workspace is another key
    ok(bz("apikey", "create", "--workspace", "globex", "--name", "x", "--scope", "sync:run", "--json"))


def test_revoke_ends_the_key_and_frees_its_name(bz, migrated_url):
    made = ok(bz("apikey", "create", "--workspace", "acme", "--name", "app", "--scope", "accounts:read", "--json"))
    revoked = ok(bz("apikey", "revoke", "app", "--workspace", "acme", "--json"))
    assert revoked["id"] == made["id"] and revoked["revoked_at"]
    failed(bz("apikey", "revoke", str(made["id"])), 4, "revoked already")
    failed(bz("apikey", "revoke", "app", "--workspace", "acme"), 3, "API key 'app' not found")
    assert ok(bz("apikey", "list", "--json")) == []
    assert [k["id"] for k in ok(bz("apikey", "list", "--revoked", "--json"))] == [made["id"]]
    db = Database(migrated_url)
    try:
        with db.session() as s:
            assert apikeys.find(s, made["token"]) is None
    finally:
        db.dispose()
    ok(bz("apikey", "create", "--workspace", "acme", "--name", "app", "--scope", "accounts:read", "--json"))


def test_an_expired_key_is_not_found_and_a_name_in_two_workspaces_needs_one(bz, migrated_url):
    a = ok(bz("apikey", "create", "--workspace", "acme", "--name", "app", "--scope", "accounts:read", "--json"))
    ok(bz("apikey", "create", "--workspace", "globex", "--name", "app", "--scope", "accounts:read", "--json"))
    failed(bz("apikey", "revoke", "app"), 2, "exists in several workspaces")
    db = Database(migrated_url)
    try:
        from blazzctl.models import ApiKey
        from blazzctl.models.base import utcnow

        with db.session() as s:
            assert apikeys.find(s, a["token"]) is not None
            s.execute(update(ApiKey).where(ApiKey.id == a["id"]).values(expires_at=utcnow() - timedelta(seconds=1)))
        with db.session() as s:
            assert apikeys.find(s, a["token"]) is None
            apikeys.touch(s, key_id=a["id"])
        with db.session() as s:
            assert s.get(ApiKey, a["id"]).last_used_at is not None
    finally:
        db.dispose()
    by_prefix = ok(bz("apikey", "revoke", a["prefix"], "--json"))
    assert by_prefix["id"] == a["id"]


@pytest.mark.parametrize("argv", [["apikey", "list", "--json"], ["--help"], ["api", "--help"]])
def test_the_cli_never_imports_the_web_stack(migrated_url, argv):
    """FastAPI, Starlette, uvicorn and Pydantic cost the CLI's start-up; only `blazzctl api run` loads them."""
    import os
    import subprocess
    import sys

    from tests.conftest import REPO

    code = (f"import sys\nsys.argv = ['blazzctl', *{argv!r}]\nfrom blazzctl.cli.main import app\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('fastapi', 'starlette', 'uvicorn', 'pydantic') or m.startswith('blazzctl.api')))\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "BLAZZ_DATABASE_URL": migrated_url}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "[]"


def test_an_expired_key_entry_is_looked_up_once_while_requests_get_the_last_answer(monkeypatch):
    """When a key's cache entry expires under load, one lookup goes to the database; the requests
    arriving meanwhile get the last answer instead of each queueing for a lookup of its own."""
    import asyncio
    import threading
    import time

    from blazzctl.api import auth

    keys = auth.Keys(db=None, rate_limit_per_minute=0)
    principal = auth.Principal(1, "app", "blz_x", 7, frozenset({"accounts:read"}), "acme")
    loads, release = [], threading.Event()

    def load(token):  # the database lookup, slow
        loads.append(token)
        release.wait(10)
        return principal

    monkeypatch.setattr(keys, "_load", load)
    token = "blz_" + "a" * 43

    async def scenario():
        first = asyncio.ensure_future(keys.resolve(token))  # nothing cached: it must wait for the lookup
        await asyncio.sleep(0.2)
        assert not first.done() and len(loads) == 1
        release.set()
        assert await first == principal
        digest = next(iter(keys._cache))
        keys._cache[digest] = (time.monotonic() - auth.CACHE_SECONDS - 1, principal)  # expired
        release.clear()
        answers = await asyncio.wait_for(asyncio.gather(*(keys.resolve(token) for _ in range(50))), 5)
        assert answers == [principal] * 50  # the last answer, at once
        await asyncio.sleep(0.2)
        assert len(loads) == 2, f"{len(loads) - 1} lookups for one expired entry"
        release.set()
        await asyncio.sleep(0.2)
        assert keys.cached(token) == principal and not keys._lookups

    asyncio.run(scenario())
