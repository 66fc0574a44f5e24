"""contacts.lid; messages.edited_at, revoked_at, edits

Contacts carry both of WhatsApp's ids (the LID next to the phone number); messages keep
their edits (the previous bodies) and when they were edited or deleted for everyone.
Each step checks what is there first, so a half-done run (MySQL commits each DDL
statement on its own) can simply be run again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import blazzctl.db

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

MESSAGE_COLUMNS = (
    ('edited_at', blazzctl.db.UTCDateTime()),
    ('revoked_at', blazzctl.db.UTCDateTime()),
    ('edits', sa.JSON()),
)


def _columns(table: str) -> set[str]:
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns(table)}


def _indexes(table: str) -> set[str]:
    return {i['name'] for i in sa.inspect(op.get_bind()).get_indexes(table)}


def upgrade() -> None:
    if 'lid' not in _columns('contacts'):
        with op.batch_alter_table('contacts', schema=None) as batch_op:
            batch_op.add_column(sa.Column('lid', sa.String(length=100), nullable=True))
    if 'ix_contacts_account_lid' not in _indexes('contacts'):
        with op.batch_alter_table('contacts', schema=None) as batch_op:
            batch_op.create_index('ix_contacts_account_lid', ['whatsapp_account_id', 'lid'], unique=False)
    missing = [(name, type_) for name, type_ in MESSAGE_COLUMNS if name not in _columns('messages')]
    if missing:
        with op.batch_alter_table('messages', schema=None) as batch_op:
            for name, type_ in missing:
                batch_op.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    present = [name for name, _ in MESSAGE_COLUMNS if name in _columns('messages')]
    if present:
        with op.batch_alter_table('messages', schema=None) as batch_op:
            for name in present:
                batch_op.drop_column(name)
    if 'ix_contacts_account_lid' in _indexes('contacts'):
        with op.batch_alter_table('contacts', schema=None) as batch_op:
            batch_op.drop_index('ix_contacts_account_lid')
    if 'lid' in _columns('contacts'):
        with op.batch_alter_table('contacts', schema=None) as batch_op:
            batch_op.drop_column('lid')
