"""session_daemons.pss_bytes

The heartbeat also reports the PSS of the daemon's process tree: summed RSS counts the pages
Chromium's processes share once per process and overstates what a host spends on them;
`daemon list` shows PSS. `rss_bytes` stays (the claim budget and the metrics use RSS). Added
only when missing, so a half-done run can simply be run again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def _columns(table: str) -> set[str]:
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    if 'pss_bytes' not in _columns('session_daemons'):
        with op.batch_alter_table('session_daemons', schema=None) as batch_op:
            batch_op.add_column(sa.Column('pss_bytes', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    if 'pss_bytes' in _columns('session_daemons'):
        with op.batch_alter_table('session_daemons', schema=None) as batch_op:
            batch_op.drop_column('pss_bytes')
