"""Alembic environment: blazz passes its own connection in ``config.attributes``."""

from __future__ import annotations

from alembic import context

from blazzctl.models import Base
from blazzctl.services.schema import add_mysql_table_options

target_metadata = Base.metadata


def run() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `blazzctl db upgrade`, which supplies the connection")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs table rebuilds for ALTER
        compare_type=True,
        process_revision_directives=add_mysql_table_options,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
