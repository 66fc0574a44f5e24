"""api_keys: credentials of the HTTP API (blazz-api), one workspace each, stored as hashes

The table and its index are created only when missing, so a run that stopped half-way
(MySQL commits each DDL statement on its own) can simply be run again.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import blazzctl.db

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _tables() -> set[str]:
    return set(sa.inspect(op.get_bind()).get_table_names())


def upgrade() -> None:
    if 'api_keys' not in _tables():
        op.create_table('api_keys',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('uuid', sa.String(length=36), nullable=False),
        sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('scopes', sa.JSON(), nullable=False),
        sa.Column('expires_at', blazzctl.db.UTCDateTime(), nullable=True),
        sa.Column('revoked_at', blazzctl.db.UTCDateTime(), nullable=True),
        sa.Column('last_used_at', blazzctl.db.UTCDateTime(), nullable=True),
        sa.Column('created_by', sa.String(length=100), nullable=True),
        sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
        sa.Column('updated_at', blazzctl.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_api_keys_workspace_id_workspaces'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
        sa.UniqueConstraint('token_hash', name=op.f('uq_api_keys_token_hash')),
        sa.UniqueConstraint('uuid', name=op.f('uq_api_keys_uuid')),
        mysql_charset='utf8mb4',
        mysql_collate='utf8mb4_bin',
        mysql_engine='InnoDB'
        )
    existing = {index['name'] for index in sa.inspect(op.get_bind()).get_indexes('api_keys')}
    if 'ix_api_keys_workspace_id' not in existing:
        with op.batch_alter_table('api_keys', schema=None) as batch_op:
            batch_op.create_index(op.f('ix_api_keys_workspace_id'), ['workspace_id'], unique=False)


def downgrade() -> None:
    if 'api_keys' in _tables():
        op.drop_table('api_keys')
