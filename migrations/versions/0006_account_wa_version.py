"""whatsapp_accounts.wa_version: the WhatsApp Web build the account's page runs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 09:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def _columns() -> set[str]:
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns('whatsapp_accounts')}


def upgrade() -> None:
    if 'wa_version' not in _columns():  # re-runnable after a half-done run
        with op.batch_alter_table('whatsapp_accounts', schema=None) as batch_op:
            batch_op.add_column(sa.Column('wa_version', sa.String(length=40), nullable=True))


def downgrade() -> None:
    if 'wa_version' in _columns():
        # plain ALTER (SQLite >= 3.35 too): a batch rebuild of this table cannot copy its generated columns
        op.execute(sa.text('ALTER TABLE whatsapp_accounts DROP COLUMN wa_version'))
