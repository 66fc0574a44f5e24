"""session_daemons.db_connection_id

A daemon records the server's id of the connection its lease work runs on (renew, claim,
heartbeat). When a daemon is cut off from the database in the middle of a lease transaction,
the row locks it took stay with that connection until the server drops it; a live daemon that
finds accounts long expired yet still locked ends that connection (`KILL CONNECTION`) so the
accounts can be claimed again. Added only when missing, so a half-done run can be run again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 06:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    if 'db_connection_id' not in _columns('session_daemons'):
        with op.batch_alter_table('session_daemons', schema=None) as batch_op:
            batch_op.add_column(sa.Column('db_connection_id', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    if 'db_connection_id' in _columns('session_daemons'):
        with op.batch_alter_table('session_daemons', schema=None) as batch_op:
            batch_op.drop_column('db_connection_id')
