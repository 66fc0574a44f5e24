"""Engines, units of work and the database clock.

MySQL/MariaDB is the production database; SQLite is the embedded default. Everything
dialect-specific that the rest of the code needs lives here: connection options, the
server clock used for every lease time, and the mapping of driver errors to ours.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
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


def create_engine_for(url: str, *, connect_timeout: float = 10, pool_size: int = 5,
                      isolation: str = "READ COMMITTED") -> Engine:
    """An engine with the options blazz relies on for this dialect."""
    from sqlalchemy import create_engine

    try:
        parsed = make_url(url)
    except exc.ArgumentError:
        raise ConfigError([("database", "database.url", f"not a database URL: {redact_url(url)}")],
                          hint="Use mysql+pymysql://USER:PASSWORD@HOST/DB or sqlite:///PATH.") from None
    backend = parsed.get_backend_name()
    if parsed.get_driver_name() not in {"sqlite": ("pysqlite",), "mysql": ("pymysql",),
                                        "mariadb": ("pymysql",)}.get(backend, (parsed.get_driver_name(),)):
        raise ConfigError([("database", "database.url", f"unsupported driver {parsed.drivername!r}")],
                          hint="Use mysql+pymysql://USER:PASSWORD@HOST/DB or sqlite:///PATH.")
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            directory = Path(database).expanduser().parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise DatabaseUnavailable(f"cannot create the directory {directory} of the SQLite "
                                          f"database: {error.strerror}",
                                          hint="Check database.url (or BLAZZ_DATABASE_URL) and the "
                                               "directory's permissions.") from None
        engine = create_engine(parsed, connect_args={"timeout": connect_timeout})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if backend in ("mysql", "mariadb"):
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        # No reset-on-return ROLLBACK: every Session and Connection here ends its own
        # transaction, and the extra statement per checkout doubled a daemon's idle load.
        return create_engine(
            parsed, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, pool_recycle=3600,
            pool_reset_on_return=None, isolation_level=isolation,
            connect_args={"connect_timeout": max(1, int(connect_timeout)),
                          "read_timeout": 60, "write_timeout": 60})
    raise ConfigError([("database", "database.url", f"unsupported database {backend!r}")],
                      hint="blazz runs on MySQL 8 / MariaDB >= 10.6 (mysql+pymysql://...) or SQLite.")


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


class Database:
    """One process's handle on the database: engine plus session factory."""

    def __init__(self, url: str, *, connect_timeout: float = 10, pool_size: int = 5) -> None:
        self.url = url
        self.engine = create_engine_for(url, connect_timeout=connect_timeout, pool_size=pool_size)
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
            self._reader = create_engine_for(self.url, connect_timeout=self._connect_timeout, pool_size=2,
                                             isolation="AUTOCOMMIT")
            # In autocommit mode COMMIT/ROLLBACK have nothing to end; the driver would still
            # send them (one statement per read). This engine's dialect skips them.
            self._reader.dialect.do_commit = self._reader.dialect.do_rollback = lambda _dbapi_conn: None
        with translate_errors(self.url), Session(self._reader) as session:
            yield session

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
            raise DatabaseUnavailable(
                f"cannot reach the database at {redact_url(url)}: {short_reason(error)}",
                hint="Check database.url (or BLAZZ_DATABASE_URL) and that the server is running.") from None
        raise
    except exc.InterfaceError as error:
        raise DatabaseUnavailable(f"lost the database connection to {redact_url(url)}: {short_reason(error)}",
                                  hint="Check that the database server is running.") from None


# MySQL client errors meaning the server cannot be reached or the session is gone.
_UNREACHABLE_CODES = {1044, 1045, 1049, 2002, 2003, 2005, 2006, 2013, 2055}


def is_missing_schema(error: exc.DBAPIError) -> bool:
    orig = getattr(error, "orig", None)
    code = orig.args[0] if orig is not None and orig.args and isinstance(orig.args[0], int) else None
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
