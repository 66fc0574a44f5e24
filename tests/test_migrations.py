"""Alembic migrations: empty → head → base → head on both dialects; models and migrations agree."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from blazzctl.db import Database
from blazzctl.models import Base
from blazzctl.services import schema


@pytest.fixture
def db(db_url):
    """An empty database: on SQLite an empty file (blazz opens no missing file but to create it)."""
    schema.create_sqlite_file(db_url)
    database = Database(db_url)
    yield database
    database.dispose()


def tables(db: Database) -> set[str]:
    return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def test_empty_head_base_head(db):
    model_tables = set(Base.metadata.tables)
    assert schema.state(db).current is None and tables(db) == set()
    schema.upgrade(db)
    assert schema.state(db).at_head and tables(db) == model_tables
    schema.downgrade(db, "base")
    assert schema.current_revision(db) is None and tables(db) == set()
    schema.upgrade(db)
    assert schema.state(db).at_head and tables(db) == model_tables
    schema.upgrade(db)  # idempotent
    assert schema.current_revision(db) == schema.head_revision()


def test_models_and_migrations_agree(db):
    schema.upgrade(db)
    assert schema.pending_model_changes(db) == []


def test_the_drift_check_can_fail(db):
    """pending_model_changes really compares: a table missing from the database shows up."""
    schema.upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE sync_runs"))
    changes = schema.pending_model_changes(db)
    assert any(c[0] == "add_table" and c[1].name == "sync_runs" for c in changes if isinstance(c, tuple))


def test_the_database_enforces_one_primary_per_workspace(db):
    """Not only the code: the unique index on the generated column refuses a second primary."""
    from sqlalchemy import exc

    from blazzctl.models import WhatsAppAccount, Workspace

    schema.upgrade(db)
    with db.session() as session:
        ws = Workspace(name="acme")
        other = Workspace(name="globex")
        session.add_all([ws, other])
        session.flush()
        for n, w in (("a", ws), ("b", ws), ("c", other)):
            session.add(WhatsAppAccount(workspace_id=w.id, name=n, session_id=f"s-{n}", is_primary=True
                                        if n != "b" else False))
    with pytest.raises(exc.IntegrityError):
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE whatsapp_accounts SET is_primary = 1 WHERE name = 'b'"))
    with db.engine.begin() as conn:  # moving the primary within a workspace is fine
        conn.execute(text("UPDATE whatsapp_accounts SET is_primary = 0 WHERE name = 'a'"))
        conn.execute(text("UPDATE whatsapp_accounts SET is_primary = 1 WHERE name = 'b'"))
        primaries = conn.execute(text("SELECT name FROM whatsapp_accounts WHERE is_primary = 1 ORDER BY name"))
        assert [r[0] for r in primaries] == ["b", "c"]


def test_live_names_are_unique_per_workspace_in_the_database(db):
    from sqlalchemy import exc

    schema.upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO workspaces (uuid, name, created_at, updated_at) "
                          "VALUES ('u1', 'acme', '2026-01-01', '2026-01-01')"))
    insert = text("INSERT INTO whatsapp_accounts (uuid, workspace_id, name, session_id, provider_type, status, "
                  "is_primary, desired_state, lease_epoch, event_sequence, created_at, updated_at, deleted_at) "
                  "VALUES (:u, 1, 'sales', :s, 'webjs', 'disconnected', 0, 'stopped', 0, 0, '2026-01-01', "
                  "'2026-01-01', :d)")
    with db.engine.begin() as conn:
        conn.execute(insert, {"u": "a1", "s": "s1", "d": "2026-01-02"})  # removed
        conn.execute(insert, {"u": "a2", "s": "s2", "d": None})  # live, same name: fine
    with pytest.raises(exc.IntegrityError):
        with db.engine.begin() as conn:
            conn.execute(insert, {"u": "a3", "s": "s3", "d": None})


def test_tables_are_innodb_utf8mb4_bin_whatever_the_database_default(mariadb_server):
    """The models leave the MySQL table options out (start-up time); the migrations set them on
    every table, so a database created with another default (latin1 here) still stores emoji
    and compares names exactly."""
    url = mariadb_server.create_database(charset="latin1")
    db = Database(url)
    try:
        schema.upgrade(db)
        with db.engine.connect() as conn:
            rows = conn.execute(text(
                "SELECT table_name, engine, table_collation FROM information_schema.tables "
                "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version'")).all()
            assert {r[0] for r in rows} == set(Base.metadata.tables)
            assert {(r[1], r[2]) for r in rows} == {("InnoDB", "utf8mb4_bin")}
            columns = conn.execute(text(
                "SELECT DISTINCT collation_name FROM information_schema.columns WHERE table_schema = DATABASE() "
                "AND collation_name IS NOT NULL AND table_name <> 'alembic_version'")).scalars().all()
            assert columns == ["utf8mb4_bin"]
        from blazzctl.services import workspaces

        with db.session() as session:
            for name in ("Sales 🚀", "sales 🚀", "sales 🎉"):
                workspaces.create(session, name=name)
        with db.session() as session:
            assert sorted(ws.name for ws in workspaces.list_all(session)) == ["Sales 🚀", "sales 🎉",
                                                                                     "sales 🚀"]
    finally:
        db.dispose()
        mariadb_server.drop_database(url)


def test_autogenerated_revisions_create_tables_with_the_mysql_options(sqlite_url):
    """migrations/env.py runs ``add_mysql_table_options`` on every autogenerated revision."""
    from alembic.autogenerate import produce_migrations, render_python_code
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import Column, Integer, MetaData, String, Table

    metadata = MetaData()
    for table in Base.metadata.tables.values():
        table.to_metadata(metadata)
    Table("new_things", metadata, Column("id", Integer, primary_key=True), Column("name", String(100)))
    db = Database(sqlite_url)
    try:
        schema.upgrade(db)
        with db.engine.connect() as conn:
            script = produce_migrations(MigrationContext.configure(conn), metadata)
    finally:
        db.dispose()
    before = render_python_code(script.upgrade_ops)
    assert "op.create_table('new_things'" in before and "mysql_collate" not in before
    schema.add_mysql_table_options(None, None, [script])
    after = render_python_code(script.upgrade_ops)
    for option in ("mysql_engine='InnoDB'", "mysql_charset='utf8mb4'", "mysql_collate='utf8mb4_bin'"):
        assert option in after
    env = (Path(schema.__file__).parents[2] / "migrations" / "env.py").read_text()
    assert "process_revision_directives=add_mysql_table_options" in env


def test_blob_columns_are_mediumblob_on_mysql(db):
    """Archive and media chunks (512 KiB) need MEDIUMBLOB on MySQL (a BLOB holds 64 KiB); the type
    says so without loading the MySQL dialect on import."""
    from sqlalchemy.dialects import mysql, sqlite

    from blazzctl.db import MediumBlob

    assert MediumBlob().compile(dialect=mysql.dialect()) == "MEDIUMBLOB"
    assert MediumBlob().compile(dialect=sqlite.dialect()) == "BLOB"
    schema.upgrade(db)
    columns = {(t, c["name"]): str(c["type"]) for t in ("auth_archive_chunks", "message_media_chunks")
               for c in inspect(db.engine).get_columns(t)}
    expected = "MEDIUMBLOB" if db.engine.dialect.name in ("mysql", "mariadb") else "BLOB"
    assert columns[("auth_archive_chunks", "data")] == columns[("message_media_chunks", "data")] == expected
