"""Migration 0004 (webhook_endpoints.previous_secret, previous_secret_expires_at) keeps the endpoints
and runs again after a half-done run (SQLite and MariaDB)."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from blazzctl.db import Database
from blazzctl.services import schema

COLUMNS = {"previous_secret", "previous_secret_expires_at"}


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


def columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("webhook_endpoints")}


def test_0004_keeps_the_endpoints_and_runs_again_after_a_half_done_run(db):
    schema.upgrade(db, "0003")
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO workspaces (id, uuid, name, created_at, updated_at) "
                       "VALUES (1, 'w-1', 'acme', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        c.execute(text("INSERT INTO webhook_endpoints (id, uuid, workspace_id, url, secret, active, created_at, "
                       "updated_at) VALUES (1, 'e-1', 1, 'https://example.com/h', 'whsec_x', 1, "
                       "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
    schema.upgrade(db, "0004")
    with db.engine.connect() as c:
        assert c.execute(text("SELECT url, secret, previous_secret, previous_secret_expires_at "
                              "FROM webhook_endpoints")).all() == [("https://example.com/h", "whsec_x", None, None)]
    assert not [c for c in schema.pending_model_changes(db) if "webhook_endpoints" in repr(c)]

    schema.downgrade(db, "0003")
    assert not columns(db) & COLUMNS
    # a half-done run: the first column is there (MySQL commits DDL statement by statement)
    with db.engine.begin() as c:
        c.execute(text("ALTER TABLE webhook_endpoints ADD COLUMN previous_secret VARCHAR(255)"))
    schema.upgrade(db, "0004")
    assert schema.current_revision(db) == "0004" and columns(db) >= COLUMNS
