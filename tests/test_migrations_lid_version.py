"""Migrations 0003 (contacts.lid; messages.edited_at, revoked_at, edits) and 0006 (whatsapp_accounts.wa_version)
upgrade a database with data in it."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text

from blazzctl.db import Database
from blazzctl.services import schema


@pytest.fixture
def db(db_url):
    database = Database(db_url)
    yield database
    database.dispose()


def _fill(db: Database) -> None:
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO workspaces (id, uuid, name, created_at, updated_at) "
                       "VALUES (1, 'w-1', 'acme', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        c.execute(text(
            "INSERT INTO whatsapp_accounts (id, uuid, workspace_id, name, session_id, provider_type, status, "
            "desired_state, is_primary, lease_epoch, event_sequence, created_at, updated_at) VALUES (1, 'u-1', 1, "
            "'sales', 's-1', 'webjs', 'disconnected', 'stopped', 0, 0, 0, '2026-01-01 00:00:00', "
            "'2026-01-01 00:00:00')"))
        c.execute(text(
            "INSERT INTO contacts (workspace_id, whatsapp_account_id, jid, phone_number, push_name, is_business, "
            "is_my_contact, created_at, updated_at) VALUES (1, 1, '4915550002@c.us', '+4915550002', 'Ana', 0, 0, "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"))
        c.execute(text(
            "INSERT INTO messages (uuid, workspace_id, whatsapp_account_id, chat_jid, direction, type, body, status, "
            "attempts, created_at, updated_at) VALUES ('m-1', 1, 1, '4915550002@c.us', 'in', 'text', 'hello', "
            "'received', 0, '2026-01-01 00:00:00', '2026-01-01 00:00:00')"))


def test_0003_keeps_the_rows_and_runs_again_after_a_half_done_run(db):
    schema.upgrade(db, "0002")
    try:
        _fill(db)
    except Exception as exc:  # the fixture rows no longer fit the tables: fix the fixture, not the test
        pytest.fail(f"could not insert the 0002 rows: {exc}")
    schema.upgrade(db, "0003")
    with db.engine.connect() as c:
        assert c.execute(text("SELECT jid, phone_number, lid FROM contacts")).all() == [
            ("4915550002@c.us", "+4915550002", None)]
        assert c.execute(text("SELECT body, edited_at, revoked_at, edits FROM messages")).all() == [
            ("hello", None, None, None)]
    assert "ix_contacts_account_lid" in {i["name"] for i in inspect(db.engine).get_indexes("contacts")}
    mine = [c for c in schema.pending_model_changes(db) if "contacts" in repr(c) or "messages" in repr(c)]
    assert mine == []

    schema.downgrade(db, "0002")
    assert "lid" not in {c["name"] for c in inspect(db.engine).get_columns("contacts")}
    # a half-done run: one column already there (MySQL commits DDL statement by statement)
    with db.engine.begin() as c:
        c.execute(text("ALTER TABLE contacts ADD COLUMN lid VARCHAR(100)"))
    schema.upgrade(db, "0003")
    assert schema.current_revision(db) == "0003"
    with db.engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM messages")).scalar() == 1


def test_0006_adds_wa_version_to_accounts_with_rows(db):
    """Migration 0006 (whatsapp_accounts.wa_version) keeps the accounts and runs again after a half-done run."""
    schema.upgrade(db, "0005")
    _fill(db)
    schema.upgrade(db, "0006")
    with db.engine.connect() as c:
        assert c.execute(text("SELECT name, wa_version FROM whatsapp_accounts")).all() == [("sales", None)]
    schema.downgrade(db, "0005")
    with db.engine.begin() as c:  # half-done: the column is there, the revision is not
        c.execute(text("ALTER TABLE whatsapp_accounts ADD COLUMN wa_version VARCHAR(40)"))
    schema.upgrade(db, "0006")
    assert schema.current_revision(db) == "0006"
    mine = [c for c in schema.pending_model_changes(db) if "whatsapp_accounts" in repr(c)]
    assert mine == []
