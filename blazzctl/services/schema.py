"""Schema migrations (Alembic) as service functions: upgrade, downgrade, current, check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from blazzctl.db import Database, translate_errors


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


def upgrade(db: Database, revision: str = "head") -> None:
    from alembic import command

    with translate_errors(db.url), db.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)


def downgrade(db: Database, revision: str = "base") -> None:
    from alembic import command

    with translate_errors(db.url), db.engine.begin() as conn:
        command.downgrade(_alembic_config(conn), revision)


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
