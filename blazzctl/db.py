"""Engines, units of work and the database clock.

MySQL/MariaDB is the production database; SQLite is the embedded default. Everything
dialect-specific that the rest of the code needs lives here: connection options, the
server clock used for every lease time, and the mapping of driver errors to ours.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import DateTime, event, exc, types
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import FunctionElement

from blazzctl.errors import ConfigError, Conflict, DatabaseUnavailable, OperationFailed


class MediumBlob(types.TypeDecorator):
    """Bytes: MEDIUMBLOB on MySQL/MariaDB (a BLOB holds only 64 KiB), LargeBinary elsewhere.

    A TypeDecorator rather than ``with_variant(mysql.MEDIUMBLOB())``: the variant would load the
    whole MySQL dialect whenever a model using it is imported, on SQLite too (start-up time).
    """

    impl = types.LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects.mysql import MEDIUMBLOB

            return dialect.type_descriptor(MEDIUMBLOB())
        return dialect.type_descriptor(types.LargeBinary())


class UTCDateTime(types.TypeDecorator):
    """Timezone-aware UTC datetimes, stored naive in UTC with microseconds."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name in ("mysql", "mariadb"):
            from sqlalchemy.dialects import mysql  # not imported on SQLite (CLI start-up)

            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, str):  # a value SQLite computed itself (db_now)
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=timezone.utc)


class db_now(FunctionElement):
    """The database server's current UTC time, with microseconds.

    Every lease time is computed with this, never with a host's clock, so clock
    skew between hosts cannot hand a live lease to another daemon.
    ``db_now(seconds)`` is that time plus a number of seconds (a bound parameter).
    """

    type = UTCDateTime()
    inherit_cache = True
    name = "db_now"


@compiles(db_now)
def _db_now_default(element, compiler, **kw):  # SQLite
    args = list(element.clauses)
    if not args:
        return "(strftime('%Y-%m-%d %H:%M:%f', 'now') || '000')"
    offset = compiler.process(args[0], **kw)
    return f"(strftime('%Y-%m-%d %H:%M:%f', 'now', ({offset}) || ' seconds') || '000')"


@compiles(db_now, "mysql")
@compiles(db_now, "mariadb")
def _db_now_mysql(element, compiler, **kw):
    args = list(element.clauses)
    if not args:
        return "UTC_TIMESTAMP(6)"
    offset = compiler.process(args[0], **kw)
    return f"(UTC_TIMESTAMP(6) + INTERVAL ROUND(({offset}) * 1000000) MICROSECOND)"


def redact_url(url: str) -> str:
    """The URL with its password replaced by ***, for logs and `config show`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show nothing of it
        return "***"


SUPPORTED_URLS = "Use mysql+pymysql://USER:PASSWORD@HOST/DB or sqlite:///PATH."
PERCENT_ENCODING = ("Characters of the user name or password that URLs reserve must be percent-encoded: "
                    "@ as %40, : as %3A, / as %2F, ? as %3F, # as %23, % as %25, a space as %20 "
                    "(p@ss:w/rd is written p%40ss%3Aw%2Frd); "
                    "python3 -c 'import getpass, urllib.parse; print(urllib.parse.quote(getpass.getpass(), safe=\"\"))' "
                    "prints the encoded form of a password typed at its prompt. See \"Database URL\" in docs/operations.md.")


def check_database_url(url: str):
    """The URL parsed exactly as the engine will parse it (``make_url``, then the driver's connect
    arguments), or ConfigError (exit 78) saying what is wrong, never with the password in it.

    A password with an unencoded ``@``, ``:`` or ``/`` makes SQLAlchemy read part of it as the
    host, the port or the database: a port that is not a number raises ValueError deep in the
    engine, the others connect to the wrong place. Both are caught here.
    """
    def bad(what: str, hint: str = SUPPORTED_URLS):
        return ConfigError([("database", "database.url", what)], hint=hint)

    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise bad(f"not a database URL: {redact_url(url)}") from None
    except ValueError:  # int(port): the text after a ':' of the password, usually
        raise bad("the port (after the host's ':') is not a number", PERCENT_ENCODING) from None
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend not in ("sqlite", "mysql", "mariadb"):
        raise bad(f"unsupported database {backend!r}",
                  "blazz runs on MySQL 8 / MariaDB >= 10.6 (mysql+pymysql://...) or SQLite.")
    if driver != {"sqlite": "pysqlite"}.get(backend, "pymysql"):
        raise bad(f"unsupported driver {parsed.drivername!r}")
    if backend != "sqlite":
        if "@" in (parsed.host or "") or any(c in (parsed.database or "") for c in "@/"):
            raise bad("the host or database name contains '@' or '/': the password holds one of them "
                      "unencoded", PERCENT_ENCODING)
        if parsed.port is not None and not 0 < parsed.port < 65536:
            raise bad(f"port {parsed.port} is out of range (1-65535)")
    try:
        _connect_arguments(parsed)
    except (TypeError, ValueError) as error:
        raise bad(f"the URL's query parameters cannot be used: {error}",
                  'See "Database URL" in docs/operations.md.') from None
    return parsed


def _connect_arguments(parsed) -> tuple[list, dict]:
    """What the driver's connect() will be called with: the dialect's translation of the URL plus
    our own connect arguments. Raises TypeError for a parameter the driver does not take."""
    import warnings

    dialect = parsed.get_dialect()()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SQLite ignores unknown query parameters (with a warning)
        cargs, cparams = dialect.create_connect_args(_with_mysql_defaults(parsed))
    if parsed.get_backend_name() != "sqlite":
        import inspect

        import pymysql

        accepted = inspect.signature(pymysql.connections.Connection.__init__).parameters
        unknown = sorted(set(cparams) - set(accepted))
        if unknown:
            raise TypeError(f"PyMySQL takes no parameter {', '.join(map(repr, unknown))}")
    return cargs, cparams


def _with_mysql_defaults(parsed):
    if parsed.get_backend_name() != "sqlite" and "charset" not in parsed.query:
        return parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed


def database_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` for the settings validator (one line), or None."""
    try:
        check_database_url(url)
    except ConfigError as error:
        what = error.problems[0][2]
        return f"{what}. {error.hint}" if error.hint and error.hint != SUPPORTED_URLS else what
    return None


def sqlite_path(url: str) -> Path | None:
    """The file an SQLite URL opens (as the driver resolves it), or None (MySQL, :memory:, file: URIs)."""
    parsed = check_database_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    cargs, cparams = _connect_arguments(parsed)
    if cparams.get("uri") or not cargs or cargs[0] in ("", ":memory:"):
        return None
    return Path(cargs[0])


@dataclass(frozen=True)
class ServerLimits:
    """Per-connection limits a daemon sets so that a stalled or partitioned peer cannot hold rows.

    ``idle_transaction``: the server drops a connection that left a transaction open and sent
    nothing for this long, rolling it back (MariaDB's ``idle_transaction_timeout``; MySQL has
    only ``wait_timeout``, which also ends idle pooled connections: the pool's pre-ping reconnects
    them), so the row locks of a daemon cut off mid-transaction are freed in about a lease TTL,
    not after hours. ``lock_wait``: how long a statement waits for another's row lock.
    ``statement``: the longest a statement may run (MariaDB's ``max_statement_time``).
    ``read_timeout``: how long the client waits for an answer. ``keepalive``: TCP keepalive idle
    seconds, so a dead peer is noticed on both ends.
    """

    idle_transaction: int
    lock_wait: int = 50
    statement: float = 0.0
    read_timeout: int = 60
    keepalive: int = 0

    def statements(self, mariadb: bool) -> list[str]:
        idle = max(1, int(self.idle_transaction))
        sql = [f"SET SESSION idle_transaction_timeout = {idle}" if mariadb else f"SET SESSION wait_timeout = {idle}",
               f"SET SESSION innodb_lock_wait_timeout = {max(1, int(self.lock_wait))}"]
        if self.statement and mariadb:
            sql.append(f"SET SESSION max_statement_time = {float(self.statement)}")
        return sql


def create_engine_for(url: str, *, connect_timeout: float = 10, pool_size: int = 5,
                      isolation: str = "READ COMMITTED", limits: ServerLimits | None = None,
                      ping_idle: float = 0.0) -> Engine:
    """An engine with the options blazz relies on for this dialect.

    It never creates an SQLite file (or its directory): a missing one is DatabaseUnavailable
    on first use, naming the file; ``blazzctl.services.schema.upgrade`` creates it (0600).
    ``limits`` apply to MySQL/MariaDB connections only. A pooled connection is pinged before
    use (a server restart is then one reconnect, not a failed statement); with ``ping_idle``,
    only one that sat in the pool that many seconds or more (see ``_ping_if_idle``).
    """
    from sqlalchemy import create_engine

    parsed = check_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(parsed, connect_args={"timeout": connect_timeout})
        event.listen(engine, "do_connect", _sqlite_refuse_missing)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    # No reset-on-return ROLLBACK: every Session and Connection here ends its own
    # transaction, and the extra statement per checkout doubled a daemon's idle load.
    read_timeout = limits.read_timeout if limits else 60
    engine = create_engine(
        _with_mysql_defaults(parsed), pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=not ping_idle,
        pool_recycle=3600, pool_reset_on_return=None, isolation_level=isolation,
        connect_args={"connect_timeout": max(1, int(connect_timeout)), "read_timeout": read_timeout,
                      "write_timeout": read_timeout})
    if ping_idle:
        _ping_if_idle(engine, ping_idle)
    if limits is not None:
        event.listen(engine, "connect", functools.partial(_apply_limits, limits))
    return engine


def _ping_if_idle(engine: Engine, idle: float) -> None:
    """Ping a pooled connection before use only when it sat unused ``idle`` seconds or more.

    The API checks a connection out for every request; under load each is back in the pool
    within milliseconds, and a ping per checkout was a round trip per request. A connection
    that died since its last use fails its first statement instead: the pool then drops all its
    connections (a disconnect invalidates the pool) and the caller gets DatabaseUnavailable.
    The pool retries a checkout whose ping fails with a new connection (DisconnectionError).
    """
    import time

    @event.listens_for(engine, "checkin")
    def returned(_dbapi_conn, record) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def checkout(dbapi_conn, record, _proxy) -> None:
        returned_at = record.info.get("returned_at")
        if returned_at is not None and time.monotonic() - returned_at < idle:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection failed its ping: {error}") from error


def _apply_limits(limits: ServerLimits, dbapi_conn, _record) -> None:
    import socket

    sock = getattr(dbapi_conn, "_sock", None)
    if limits.keepalive and sock is not None and hasattr(socket, "TCP_KEEPIDLE"):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, limits.keepalive)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, limits.keepalive // 3))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        except OSError:
            pass
    mariadb = "mariadb" in str(getattr(dbapi_conn, "server_version", "") or "").lower()
    with dbapi_conn.cursor() as cur:
        for sql in limits.statements(mariadb):
            cur.execute(sql)
    dbapi_conn.commit()


def _sqlite_refuse_missing(_dialect, _record, cargs, cparams) -> None:
    # sqlite3 would create a missing file (an empty database without a schema), and its
    # directory is the operator's typo as often as not: only `init` / `db upgrade` create it.
    path = cargs[0] if cargs else ""
    if cparams.get("uri") or path in ("", ":memory:") or os.path.exists(path):
        return
    raise DatabaseUnavailable(f"no SQLite database at {path}",
                              hint="Run `blazzctl init` to create it, or check database.url "
                                   "(BLAZZ_DATABASE_URL).")


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _sqlite_on_begin) so that writers take the
    # lock up front: BEGIN IMMEDIATE serialises writers instead of failing on upgrade.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    try:
        cur.execute("PRAGMA journal_mode=WAL")
    except Exception:  # read-only or in-memory database
        pass
    cur.close()


def _sqlite_on_begin(conn) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def is_mysql(engine_or_session) -> bool:
    bind = engine_or_session.get_bind() if isinstance(engine_or_session, Session) else engine_or_session
    return bind.dialect.name in ("mysql", "mariadb")


_READER_LOCK = threading.Lock()


class Database:
    """One process's handle on the database: engine plus session factory."""

    def __init__(self, url: str, *, connect_timeout: float = 10, pool_size: int = 5,
                 limits: ServerLimits | None = None, read_pool_size: int = 2, ping_idle: float = 0.0) -> None:
        self.url = url
        self.read_pool_size, self.ping_idle = read_pool_size, ping_idle
        self.limits = limits
        self.engine = create_engine_for(url, connect_timeout=connect_timeout, pool_size=pool_size, limits=limits,
                                        ping_idle=ping_idle)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._reader: Engine | None = None
        self._connect_timeout = connect_timeout

    @classmethod
    def from_settings(cls, settings) -> "Database":
        return cls(settings.database_url, connect_timeout=settings.database.connect_timeout,
                   pool_size=settings.database.pool_size)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends normally, rolled back otherwise."""
        with translate_errors(self.url):
            with self._sessions() as session:
                with session.begin():
                    yield session

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work: on MySQL each query is one statement with no transaction
        around it (an AUTOCOMMIT pool), so an idle poll costs one query, not three."""
        if self.engine.dialect.name == "sqlite":
            with self.session() as session:
                yield session
            return
        if self._reader is None:
            with _READER_LOCK:  # threads of one process (the API's) share the one reader
                if self._reader is None:
                    self._reader = self._make_reader()
        with translate_errors(self.url), Session(self._reader) as session:
            yield session

    def _make_reader(self) -> Engine:
        reader = create_engine_for(self.url, connect_timeout=self._connect_timeout, pool_size=self.read_pool_size,
                                   isolation="AUTOCOMMIT", limits=self.limits, ping_idle=self.ping_idle)
        # In autocommit mode COMMIT/ROLLBACK have nothing to end; the driver would still
        # send them (one statement per read). This engine's dialect skips them.
        reader.dialect.do_commit = reader.dialect.do_rollback = lambda _dbapi_conn: None
        return reader

    def dispose(self) -> None:
        self.engine.dispose()
        if self._reader is not None:
            self._reader.dispose()


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """Map 'cannot reach the database' driver errors to DatabaseUnavailable."""
    try:
        yield
    except (exc.OperationalError, exc.ProgrammingError) as error:
        if is_missing_schema(error):
            raise OperationFailed(f"the database at {redact_url(url)} has no blazz schema yet",
                                  hint="Run `blazzctl init` (or `blazzctl db upgrade`).") from None
        if isinstance(error, exc.OperationalError) and is_contention(error):
            raise Conflict(f"a concurrent change to the same rows got in the way ({short_reason(error)}); "
                           "nothing was changed", hint="Run the command again.") from None
        if isinstance(error, exc.OperationalError) and is_unreachable(error):
            hint = "Check database.url (or BLAZZ_DATABASE_URL) and that the server is running."
            if _code(error) == 1045:  # access denied: often a password that needed percent-encoding
                hint = "Check the user name and password in database.url (or BLAZZ_DATABASE_URL). " + PERCENT_ENCODING
            raise DatabaseUnavailable(
                f"cannot reach the database at {redact_url(url)}: {short_reason(error)}", hint=hint) from None
        raise
    except exc.InterfaceError as error:
        raise DatabaseUnavailable(f"lost the database connection to {redact_url(url)}: {short_reason(error)}",
                                  hint="Check that the database server is running.") from None


# MySQL client errors meaning the server cannot be reached or the session is gone.
_UNREACHABLE_CODES = {1044, 1045, 1049, 2002, 2003, 2005, 2006, 2013, 2055}


def _code(error: exc.DBAPIError) -> int | None:
    """The MySQL error number of a driver error (None for SQLite's)."""
    orig = getattr(error, "orig", None)
    return orig.args[0] if orig is not None and orig.args and isinstance(orig.args[0], int) else None


def is_missing_schema(error: exc.DBAPIError) -> bool:
    orig = getattr(error, "orig", None)
    code = _code(error)
    return code == 1146 or "no such table" in str(orig or error).lower()


# Deadlock victim, lock wait timeout (MySQL); "database is locked" past busy_timeout (SQLite).
_CONTENTION_CODES = {1205, 1213}


def is_contention(error: exc.DBAPIError) -> bool:
    orig = getattr(error, "orig", None)
    code = orig.args[0] if orig is not None and orig.args and isinstance(orig.args[0], int) else None
    return code in _CONTENTION_CODES or "database is locked" in str(orig or error).lower()


def is_unreachable(error: exc.DBAPIError) -> bool:
    orig = getattr(error, "orig", None)
    code = orig.args[0] if orig is not None and orig.args and isinstance(orig.args[0], int) else None
    if code in _UNREACHABLE_CODES:
        return True
    text = str(orig or error).lower()
    return "unable to open database" in text or "disk i/o error" in text


def short_reason(error: Exception) -> str:
    orig = getattr(error, "orig", error)
    if orig is not None and getattr(orig, "args", None) and len(orig.args) >= 2:
        return str(orig.args[1])
    return str(orig).splitlines()[0]


CONFLICT_ATTEMPTS = 5  # a deadlock or lock wait timeout rolls a write back: it is run again


def retrying(write, *args, **kwargs):
    """Run a write again when the database rolled it back on a deadlock or lock wait timeout
    (``Conflict``), with a short jittered backoff: an outcome is never dropped for that."""
    import random
    import time

    from blazzctl.errors import Conflict

    for attempt in range(1, CONFLICT_ATTEMPTS + 1):
        try:
            return write(*args, **kwargs)
        except Conflict:
            if attempt == CONFLICT_ATTEMPTS:
                raise
            time.sleep(0.05 * 2 ** attempt * random.uniform(0.5, 1.0))


def retry_conflicts(write):
    """Decorator form of ``retrying``."""
    @functools.wraps(write)
    def run(*args, **kwargs):
        return retrying(write, *args, **kwargs)
    return run
