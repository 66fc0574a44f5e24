"""The server settings blazz needs, checked before migrating, and migrations that a half-done run
does not break: on a private MariaDB with binary logging on and ``binlog_format = STATEMENT``
(docs/operations.md, "Server settings the claim protocol needs"), as the issue found it.

With that server the old `init` migrated half the schema: MySQL commits each CREATE TABLE on its
own, then InnoDB refused the first write (alembic's version row, error 1665) and every later run
failed on the tables already there.
"""

from __future__ import annotations

import pymysql
import pytest
from sqlalchemy import inspect, text

from blazzctl.db import Database
from blazzctl.models import Base
from blazzctl.services import schema
from tests.conftest import PrivateMariaDB

pytestmark = pytest.mark.mariadb


@pytest.fixture(scope="module")
def statement_binlog(tmp_path_factory):
    """A private mariadbd with --log-bin and --binlog-format=STATEMENT."""
    root = tmp_path_factory.mktemp("mariadb-binlog")
    server = PrivateMariaDB(root, extra_args=("--log-bin=binlog", "--binlog-format=STATEMENT", "--server-id=1"))
    server.start()
    yield server
    server.stop()


def _admin(server: PrivateMariaDB, sql: str):
    conn = pymysql.connect(host="127.0.0.1", port=server.port, user="root", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


@pytest.fixture
def server(statement_binlog):
    """The server, back at STATEMENT for each test, and a fresh database on it."""
    _admin(statement_binlog, "SET GLOBAL binlog_format = 'STATEMENT'")
    _admin(statement_binlog, "CREATE DATABASE blazz CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    yield statement_binlog
    _admin(statement_binlog, "DROP DATABASE IF EXISTS blazz")


def _tables(url: str) -> set[str]:
    db = Database(url)
    try:
        return set(inspect(db.engine).get_table_names())
    finally:
        db.dispose()


def test_init_refuses_statement_binlog_and_creates_nothing(server, cli, tmp_path):
    url = f"{server.server_url}/blazz"
    written = tmp_path / "config" / "blazz" / "blazz.yaml"
    for command in (("init",), ("db", "upgrade"), ("init", "--write-config", str(written))):
        result = cli(*command, db=url)
        assert result.code == 78, result
        assert "Traceback" not in result.stderr and result.stdout == ""
        assert "binlog_format: is STATEMENT with binary logging on (log_bin=ON)" in result.stderr
        assert "ROW" in result.stderr
        assert '"Server settings the claim protocol needs" in docs/operations.md' in result.stderr
        assert "Nothing was migrated" in result.stderr
    assert _tables(url) == set() and not written.exists()


def test_a_half_done_migration_is_finished_by_db_upgrade(server, cli):
    """The issue's state: tables created, no revision stamped (what the old code left behind on
    this server); once the setting is fixed, `db upgrade` finishes it, with no manual repair."""
    from alembic import command

    url = f"{server.server_url}/blazz"
    db = Database(url)
    try:  # the migration as it ran before the server check: it stops at the first write
        with pytest.raises(Exception, match="1665|BINLOG_FORMAT = STATEMENT"):
            with db.engine.begin() as conn:
                command.upgrade(schema._alembic_config(conn), "head")
    finally:
        db.dispose()
    half = _tables(url)
    assert "whatsapp_accounts" in half and "messages" in half  # the DDL stayed (MySQL commits it)
    _admin(server, "SET GLOBAL binlog_format = 'ROW'")
    result = cli("db", "upgrade", db=url)
    assert result.code == 0, result
    assert f"schema at {schema.head_revision()} (was empty)" in result.stdout
    assert _tables(url) - {"alembic_version"} == set(Base.metadata.tables)
    db = Database(url)
    try:
        assert schema.pending_model_changes(db) == []  # every index too, nothing twice
    finally:
        db.dispose()
    assert cli("account", "list", "--json", db=url).json() == []


def test_mixed_and_row_are_accepted_and_the_check_reads_the_server(server):
    url = f"{server.server_url}/blazz"
    for value, problems in (("STATEMENT", ["binlog_format"]), ("MIXED", []), ("ROW", [])):
        _admin(server, f"SET GLOBAL binlog_format = '{value}'")
        db = Database(url)
        try:
            with db.engine.connect() as conn:
                assert [setting for setting, _ in schema.server_problems(conn)] == problems
        finally:
            db.dispose()


def test_binlog_off_with_statement_format_is_fine(mariadb_url):
    """The suite's server runs with --skip-log-bin: binlog_format is not used, whatever it is."""
    db = Database(mariadb_url)
    try:
        with db.engine.connect() as conn:
            log_bin = conn.execute(text("SELECT @@log_bin")).scalar()
            assert int(log_bin) == 0 and schema.server_problems(conn) == []
    finally:
        db.dispose()
    assert schema.judge_server(version="10.11.6-MariaDB", log_bin=False, binlog_format="STATEMENT",
                               innodb_support="DEFAULT") == []


@pytest.mark.parametrize("values,setting", [
    (dict(version="10.5.23-MariaDB-0+deb11u1"), "version"),
    (dict(version="5.5.5-10.4.1-MariaDB"), "version"),
    (dict(version="5.7.44-log"), "version"),
    (dict(version="8.0.0-dmr"), "version"),
    (dict(log_bin=True, binlog_format="statement"), "binlog_format"),
    (dict(innodb_support="NO"), "InnoDB"),
    (dict(innodb_support=None), "InnoDB"),
    (dict(enforced_engine="MyISAM"), "enforce_storage_engine"),
])
def test_each_rule_names_its_setting(values, setting):
    """Servers the suite cannot start (old versions, no InnoDB): the rules on the values read."""
    good = dict(version="10.11.6-MariaDB-0+deb12u1", log_bin=True, binlog_format="ROW",
                innodb_support="DEFAULT", enforced_engine=None)
    assert schema.judge_server(**good) == []
    assert schema.judge_server(**{**good, "version": "8.0.1"}) == []
    assert schema.judge_server(**{**good, "version": "10.6.0-MariaDB", "enforced_engine": "InnoDB"}) == []
    assert [name for name, _ in schema.judge_server(**{**good, **values})] == [setting]


def test_a_statement_failing_half_way_is_finished_by_the_next_run(db_url):
    """A migration that stops after some tables exist (here: a view squats on the name of a table
    0001 creates late) leaves a state the next run completes, on both dialects (SQLite rolls the
    whole run back; MySQL keeps what was created)."""
    from blazzctl.errors import OperationFailed

    schema.create_sqlite_file(db_url)
    db = Database(db_url)
    try:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE VIEW messages AS SELECT 1 AS x"))
        with pytest.raises(OperationFailed) as err:
            schema.upgrade(db)
        assert "the migration stopped" in err.value.message and "db upgrade" in err.value.hint
        assert schema.current_revision(db) is None
        if db.engine.dialect.name != "sqlite":
            assert {"workspaces", "chats", "contacts"} <= set(inspect(db.engine).get_table_names())
        with db.engine.begin() as conn:
            conn.execute(text("DROP VIEW messages"))
        assert schema.upgrade(db) == (None, schema.head_revision())
        assert schema.pending_model_changes(db) == []
        schema.downgrade(db, "base")
        assert set(inspect(db.engine).get_table_names()) - {"alembic_version"} == set()
    finally:
        db.dispose()



def test_a_connection_idle_past_ping_idle_is_pinged_and_a_dead_one_replaced(mariadb_url):
    """``ping_idle`` (the API's pools): a connection back in the pool for less than that is used
    without a ping (no round trip per request); one idle longer is pinged, and when the server
    has ended it, the pool replaces it before the caller sees anything. A connection ended
    within the window fails its statement once; the pool is then renewed."""
    import time

    from blazzctl.errors import DatabaseUnavailable

    db = Database(mariadb_url, pool_size=1, ping_idle=0.5)
    pings = []
    db.engine.dialect.do_ping = (lambda original: lambda conn: (pings.append(1), original(conn))[1])(
        db.engine.dialect.do_ping)

    def server_id() -> int:
        with db.session() as s:
            return s.execute(text("SELECT CONNECTION_ID()")).scalar()

    def kill(connection_id: int) -> None:
        admin = Database(mariadb_url)
        with admin.engine.connect() as conn:
            conn.execute(text(f"KILL {connection_id}"))
        admin.dispose()

    try:
        first = server_id()  # a new connection: pinged once
        assert server_id() == first and server_id() == first
        assert len(pings) == 1, "a connection used a moment ago was pinged again"
        kill(first)
        time.sleep(0.7)
        second = server_id()  # idle past the window: pinged, found dead, replaced
        assert second != first and len(pings) >= 2
        kill(second)
        with pytest.raises(DatabaseUnavailable):  # within the window: no ping, the statement fails
            server_id()
        assert server_id() not in (first, second)
    finally:
        db.dispose()
