"""wa_web_versions, wa_web_version_failures: WhatsApp Web builds under the fleet's control

Every build a session loads is recorded with the app document it came from, so the fleet can
pin it (the daemons serve that document by request interception), run a new build on a few
canary accounts, and pin the last good build by itself when a new one fails. Tables are
created only when missing, so a run that stopped half-way can simply be run again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import blazzctl.db

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
TABLE = {'mysql_charset': 'utf8mb4', 'mysql_collate': 'utf8mb4_bin', 'mysql_engine': 'InnoDB'}


def _tables() -> set[str]:
    return set(sa.inspect(op.get_bind()).get_table_names())


def upgrade() -> None:
    tables = _tables()
    if 'wa_web_versions' not in tables:
        op.create_table(
            'wa_web_versions',
            sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
            sa.Column('version', sa.String(length=40), nullable=False),
            sa.Column('first_seen_at', blazzctl.db.UTCDateTime(), nullable=False),
            sa.Column('last_live_at', blazzctl.db.UTCDateTime(), nullable=True),
            sa.Column('last_connected_at', blazzctl.db.UTCDateTime(), nullable=True),
            sa.Column('html', sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), 'mariadb')
                      .with_variant(mysql.MEDIUMBLOB(), 'mysql'), nullable=True),
            sa.Column('html_sha256', sa.String(length=64), nullable=True),
            sa.Column('state', sa.Enum('pinned', 'canary', 'bad', 'deprecated', name='waversionstate',
                                       native_enum=False, length=20), nullable=True),
            sa.Column('state_reason', sa.String(length=255), nullable=True),
            sa.Column('state_changed_at', blazzctl.db.UTCDateTime(), nullable=True),
            sa.Column('state_by', sa.String(length=150), nullable=True),
            sa.Column('canary_accounts', sa.JSON(), nullable=True),
            sa.PrimaryKeyConstraint('id', name=op.f('pk_wa_web_versions')),
            sa.UniqueConstraint('version', name=op.f('uq_wa_web_versions_version')),
            **TABLE)
    if 'wa_web_version_failures' not in tables:
        op.create_table(
            'wa_web_version_failures',
            sa.Column('id', BIG_ID, autoincrement=True, nullable=False),
            sa.Column('version', sa.String(length=40), nullable=False),
            sa.Column('account_id', BIG_ID, nullable=True),
            sa.Column('kind', sa.String(length=40), nullable=False),
            sa.Column('detail', sa.String(length=255), nullable=True),
            sa.Column('at', blazzctl.db.UTCDateTime(), nullable=False),
            sa.Column('daemon', sa.String(length=150), nullable=True),
            sa.PrimaryKeyConstraint('id', name=op.f('pk_wa_web_version_failures')),
            **TABLE)
    existing = {index['name'] for index in sa.inspect(op.get_bind()).get_indexes('wa_web_version_failures')}
    if 'ix_wa_web_version_failures_version_at' not in existing:
        with op.batch_alter_table('wa_web_version_failures', schema=None) as batch_op:
            batch_op.create_index('ix_wa_web_version_failures_version_at', ['version', 'at'], unique=False)


def downgrade() -> None:
    tables = _tables()
    for table in ('wa_web_version_failures', 'wa_web_versions'):
        if table in tables:
            op.drop_table(table)
