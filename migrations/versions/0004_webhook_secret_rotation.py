"""webhook_endpoints.previous_secret, previous_secret_expires_at

`webhook rotate-secret` keeps the replaced secret, which signs deliveries next to the new
one until it expires. Each column is added only when missing, so a half-done run (MySQL
commits each DDL statement on its own) can simply be run again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import blazzctl.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

COLUMNS = (
    ('previous_secret', sa.String(length=255)),
    ('previous_secret_expires_at', blazzctl.db.UTCDateTime()),
)


def _columns(table: str) -> set[str]:
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    missing = [(name, type_) for name, type_ in COLUMNS if name not in _columns('webhook_endpoints')]
    if missing:
        with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
            for name, type_ in missing:
                batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    present = [name for name, _ in COLUMNS if name in _columns('webhook_endpoints')]
    if present:
        with op.batch_alter_table('webhook_endpoints', schema=None) as batch_op:
            for name in present:
                batch_op.drop_column(name)
