"""workspaces.deleted_at and live_name: a removed workspace frees its name

`workspace remove` is a soft delete. Names stay unique among live workspaces through a
unique index on a stored generated column (the name while live, NULL once removed), the
same trick as `whatsapp_accounts.live_workspace_id`; the unique index on `name` goes.

MySQL/MariaDB: each step runs only when still needed (every DDL statement commits on its
own), so a half-done run is finished by running it again. SQLite cannot drop a table's
UNIQUE constraint: the table is rebuilt, in one transaction, with foreign keys off so that
dropping the old table neither cascades into the tables that reference it nor fails.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import blazzctl.db

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

LIVE_NAME = "CASE WHEN deleted_at IS NULL THEN name ELSE NULL END"


def _columns() -> set[str]:
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns('workspaces')}


def _unique_names() -> set[str]:
    inspector = sa.inspect(op.get_bind())
    names = {c['name'] for c in inspector.get_unique_constraints('workspaces')}
    return names | {i['name'] for i in inspector.get_indexes('workspaces') if i.get('unique')}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        if 'live_name' not in _columns():
            with _foreign_keys_off(bind), op.batch_alter_table('workspaces', recreate='always') as batch_op:
                if 'deleted_at' not in _columns():
                    batch_op.add_column(sa.Column('deleted_at', blazzctl.db.UTCDateTime(), nullable=True))
                batch_op.add_column(sa.Column('live_name', sa.String(length=100),
                                              sa.Computed(LIVE_NAME, persisted=True), nullable=True))
                batch_op.drop_constraint('uq_workspaces_name', type_='unique')
                batch_op.create_unique_constraint('uq_workspaces_live_name', ['live_name'])
        return
    if 'deleted_at' not in _columns():
        op.add_column('workspaces', sa.Column('deleted_at', blazzctl.db.UTCDateTime(), nullable=True))
    if 'live_name' not in _columns():
        op.add_column('workspaces', sa.Column('live_name', sa.String(length=100),
                                              sa.Computed(LIVE_NAME, persisted=True), nullable=True))
    if 'uq_workspaces_live_name' not in _unique_names():
        op.create_unique_constraint('uq_workspaces_live_name', 'workspaces', ['live_name'])
    if 'uq_workspaces_name' in _unique_names():
        op.drop_constraint('uq_workspaces_name', 'workspaces', type_='unique')


def refuse_downgrade(bind) -> None:
    """Raise when this revision cannot be undone. Called by `blazzctl db downgrade` before any
    revision is undone (on MySQL each DDL statement commits, so a refusal half-way through a
    downgrade would leave the later revisions undone), and again by ``downgrade``."""
    # Before 0008 every name was unique, removed workspaces' included, and there was no removal:
    # a removed workspace whose name was taken again cannot go back.
    if 'deleted_at' not in {c['name'] for c in sa.inspect(bind).get_columns('workspaces')}:
        return
    taken = bind.execute(sa.text(
        "SELECT DISTINCT r.name FROM workspaces r JOIN workspaces l ON l.name = r.name AND l.id <> r.id "
        "WHERE r.deleted_at IS NOT NULL")).scalars().all()
    if taken:
        from blazzctl.errors import Conflict

        raise Conflict(f"cannot downgrade below 0008: the name(s) {', '.join(map(repr, taken))} belong to a "
                       "removed workspace and to another one",
                       hint="Rename the other workspace(s) first (`blazzctl workspace rename`).")


def downgrade() -> None:
    bind = op.get_bind()
    refuse_downgrade(bind)
    if bind.dialect.name == 'sqlite':
        if 'live_name' in _columns():
            with _foreign_keys_off(bind), op.batch_alter_table('workspaces', recreate='always') as batch_op:
                batch_op.drop_constraint('uq_workspaces_live_name', type_='unique')
                batch_op.drop_column('live_name')
                batch_op.drop_column('deleted_at')
                batch_op.create_unique_constraint('uq_workspaces_name', ['name'])
        return
    if 'uq_workspaces_name' not in _unique_names():
        op.create_unique_constraint('uq_workspaces_name', 'workspaces', ['name'])
    if 'uq_workspaces_live_name' in _unique_names():
        op.drop_constraint('uq_workspaces_live_name', 'workspaces', type_='unique')
    for column in ('live_name', 'deleted_at'):
        if column in _columns():
            op.drop_column('workspaces', column)


class _foreign_keys_off:
    """SQLite: rebuild a table that others reference, as SQLite's docs prescribe for ALTERs it
    lacks. ``PRAGMA foreign_keys`` is ignored inside a transaction, so the migration's
    transaction is committed (the revisions before this one are done), the rebuild runs in a
    transaction of its own with foreign keys off and is checked, and a new transaction is
    opened for the rest of the run."""

    def __init__(self, bind) -> None:
        self.bind = bind

    def __enter__(self) -> None:
        self.bind.exec_driver_sql("COMMIT")
        self.bind.exec_driver_sql("PRAGMA foreign_keys=OFF")
        self.bind.exec_driver_sql("BEGIN IMMEDIATE")

    def __exit__(self, kind, _value, _tb) -> None:
        broken = self.bind.exec_driver_sql("PRAGMA foreign_key_check").fetchall() if kind is None else []
        self.bind.exec_driver_sql("COMMIT" if kind is None and not broken else "ROLLBACK")
        self.bind.exec_driver_sql("PRAGMA foreign_keys=ON")
        self.bind.exec_driver_sql("BEGIN IMMEDIATE")
        if broken:
            raise RuntimeError(f"rebuilding workspaces would break foreign keys: {broken[:5]}")
