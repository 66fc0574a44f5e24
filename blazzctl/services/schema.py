"""Schema migrations (Alembic) as service functions: upgrade, downgrade, current, check.

Before migrating, ``upgrade`` creates a missing SQLite file (0600, in a 0700 directory) and
checks that a MySQL/MariaDB server has the settings blazz needs (``server_problems``): a
server that refuses blazz's writes would otherwise stop the migration half-way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from blazzctl.db import Database, is_contention, is_unreachable, redact_url, short_reason, translate_errors
from blazzctl.errors import ConfigError, DatabaseUnavailable, OperationFailed

SERVER_SETTINGS_DOC = '"Server settings the claim protocol needs" in docs/operations.md'


def _alembic_config(connection=None):
    from alembic.config import Config

    import migrations

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrations.__file__).parent))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(db: Database) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with translate_errors(db.url), db.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(db: Database, revision: str = "head", *, create_dirs: bool = False) -> tuple[str | None, str | None]:
    """Migrate to ``revision``; returns the revisions (before, after).

    Every migration checks what exists before it creates it, so a run that stopped half-way
    (MySQL commits each DDL statement on its own) is finished by running this again.
    """
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import exc

    create_sqlite_file(db.url, create_dirs=create_dirs)
    with translate_errors(db.url), db.engine.begin() as conn:
        _refuse_server_problems(conn, db.url)
        before = MigrationContext.configure(conn).get_current_revision()
        try:
            command.upgrade(_alembic_config(conn), revision)
        except exc.DBAPIError as error:
            if is_unreachable(error) or is_contention(error):
                raise  # translate_errors says those
            raise OperationFailed(f"the migration stopped: {short_reason(error)}",
                                  hint="Fix the cause, then run `blazzctl db upgrade` again: it finishes what "
                                       "this run began.") from None
        return before, MigrationContext.configure(conn).get_current_revision()


def check_server(db: Database) -> None:
    """ConfigError (exit 78) naming every server setting blazz cannot run with; SQLite: nothing."""
    if db.engine.dialect.name == "sqlite":
        return
    with translate_errors(db.url), db.engine.connect() as conn:
        _refuse_server_problems(conn, db.url)


def _refuse_server_problems(conn, url: str) -> None:
    problems = server_problems(conn)
    if problems:
        raise ConfigError([(f"database server at {redact_url(url)}", setting, what) for setting, what in problems],
                          hint=f"Nothing was migrated. Change these settings on the server (see "
                               f"{SERVER_SETTINGS_DOC}), then run `blazzctl db upgrade`.")


def downgrade(db: Database, revision: str = "base") -> None:
    """Undo revisions down to ``revision``. Every revision to undo that can refuse (its module's
    ``refuse_downgrade(connection)``) is asked first, so a refusal changes nothing: on MySQL each
    DDL statement commits, and a refusal in the middle would leave the later revisions undone."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    with translate_errors(db.url), db.engine.begin() as conn:
        config = _alembic_config(conn)
        current = MigrationContext.configure(conn).get_current_revision()
        try:
            undone = list(ScriptDirectory.from_config(config).iterate_revisions(current, revision)) if current else []
        except CommandError:  # not a revision below the current one: alembic says so below
            undone = []
        for script in undone:
            refuse = getattr(script.module, "refuse_downgrade", None)
            if refuse is not None:
                refuse(conn)
        command.downgrade(config, revision)


def create_sqlite_file(url: str, *, create_dirs: bool = False) -> Path | None:
    """Create the SQLite file of ``url`` when it is missing: 0600 (its -wal and -shm files
    inherit that), its missing directories 0700 and only under the user's state directory
    unless ``create_dirs``. Returns the file created, or None."""
    from blazzctl import paths
    from blazzctl.db import sqlite_path

    path = sqlite_path(url)
    if path is None or path.exists():
        return None
    paths.check_may_create(path, allowed=(paths.state_home(),), create_dirs=create_dirs,
                           what="the SQLite database")
    try:
        paths.private_dirs(path.parent)
        paths.create_private_file(path)
    except FileExistsError:  # created meanwhile by another init: use it
        return None
    except OSError as error:
        raise DatabaseUnavailable(f"cannot create the SQLite database {path}: {error.strerror}",
                                  hint="Check database.url (or BLAZZ_DATABASE_URL) and the directory's "
                                       "permissions.") from None
    return path


# --- the server settings blazz needs (MySQL / MariaDB) ---------------------------------------

MARIADB_MIN, MYSQL_MIN = (10, 6), (8, 0, 1)  # FOR UPDATE SKIP LOCKED


def server_problems(conn) -> list[tuple[str, str]]:
    """What the connected MySQL/MariaDB server lacks, as (setting, what is wrong); SQLite: []."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return []
    version, log_bin, binlog_format = conn.exec_driver_sql(
        "SELECT VERSION(), @@log_bin, @@binlog_format").one()
    support = dict(conn.exec_driver_sql(
        "SELECT ENGINE, SUPPORT FROM information_schema.ENGINES").all())
    enforced = None
    if "mariadb" in version.lower():
        enforced = conn.exec_driver_sql("SELECT @@enforce_storage_engine").scalar()
    return judge_server(version=version, log_bin=bool(int(log_bin)), binlog_format=binlog_format,
                        innodb_support=support.get("InnoDB"), enforced_engine=enforced)


def judge_server(*, version: str, log_bin: bool, binlog_format: str | None, innodb_support: str | None,
                 enforced_engine: str | None = None) -> list[tuple[str, str]]:
    """The rules of ``server_problems`` on the values read from the server."""
    problems = []
    mariadb = "mariadb" in version.lower()
    numbers = _version_numbers(version.removeprefix("5.5.5-"))
    minimum = MARIADB_MIN if mariadb else MYSQL_MIN
    if numbers < minimum:
        problems.append(("version", f"{'MariaDB' if mariadb else 'MySQL'} {version} lacks FOR UPDATE SKIP LOCKED, "
                                    f"which every claim uses; blazz needs MariaDB >= 10.6 or MySQL >= 8.0.1"))
    if log_bin and (binlog_format or "").upper() == "STATEMENT":
        problems.append(("binlog_format", "is STATEMENT with binary logging on (log_bin=ON): InnoDB refuses "
                                          "blazz's READ COMMITTED writes (error 1665); set binlog_format = ROW "
                                          "(or MIXED)"))
    if (innodb_support or "NO").upper() not in ("YES", "DEFAULT"):
        problems.append(("InnoDB", "the InnoDB storage engine is not available; blazz's tables need its row "
                                   "locks and transactions"))
    if enforced_engine and enforced_engine.lower() != "innodb":
        problems.append(("enforce_storage_engine", f"is {enforced_engine}: blazz's tables must be InnoDB; "
                                                   f"unset it or set it to InnoDB"))
    return problems


def _version_numbers(version: str) -> tuple[int, ...]:
    import re

    match = re.match(r"(\d+)\.(\d+)\.(\d+)", version)
    return tuple(int(n) for n in match.groups()) if match else (0,)


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def at_head(self) -> bool:
        return self.current == self.head


def state(db: Database) -> SchemaState:
    return SchemaState(current=current_revision(db), head=head_revision())


def pending_model_changes(db: Database) -> list:
    """What Alembic's autogenerate would still write: empty when models and migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from blazzctl.models import Base

    with translate_errors(db.url), db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, Base.metadata)


def add_mysql_table_options(_context, _revision, directives) -> None:
    """Alembic hook for autogenerated revisions: every table they create gets the MySQL table
    options of ``blazzctl.models.base.MYSQL_TABLE`` (InnoDB, utf8mb4_bin), which the models
    leave out of their ``__table_args__`` (see there)."""
    from alembic.operations import ops

    from blazzctl.models.base import MYSQL_TABLE

    pending = [ops_ for script in directives for ops_ in script.upgrade_ops_list]
    while pending:
        op = pending.pop()
        if isinstance(op, ops.CreateTableOp):
            op.kw.update({key: value for key, value in MYSQL_TABLE.items() if key not in op.kw})
        pending.extend(getattr(op, "ops", None) or ())
