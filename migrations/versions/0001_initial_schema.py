"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26 15:31:38.245530
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

import blazzctl.db

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


# Each table and index is created only when missing: MySQL commits every DDL statement on its
# own, so a run that stopped half-way (a server setting, a lost connection, Ctrl-C) left some of
# them behind and no revision stamped; `blazzctl db upgrade` then simply runs this again.
def _create_table(name: str, *columns, **options) -> None:
    if name not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(name, *columns, **options)


def _create_indexes(table: str, *indexes: tuple[str, list[str]]) -> None:
    existing = {index['name'] for index in sa.inspect(op.get_bind()).get_indexes(table)}
    missing = [(name, columns) for name, columns in indexes if name not in existing]
    if missing:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for name, columns in missing:
                batch_op.create_index(op.f(name), columns, unique=False)


def upgrade() -> None:
    _create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger(), nullable=True),
    sa.Column('os_user', sa.String(length=64), nullable=False),
    sa.Column('sudo_user', sa.String(length=64), nullable=True),
    sa.Column('command', sa.String(length=100), nullable=False),
    sa.Column('target_type', sa.String(length=50), nullable=True),
    sa.Column('target', sa.String(length=255), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('audit_events',
        ('ix_audit_events_created_at', ['created_at']),
        ('ix_audit_events_workspace_id', ['workspace_id', 'id']),
    )

    _create_table('session_daemons',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=150), nullable=False),
    sa.Column('host', sa.String(length=100), nullable=False),
    sa.Column('instance', sa.Integer(), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('version', sa.String(length=32), nullable=True),
    sa.Column('status', sa.Enum('starting', 'running', 'draining', 'stopped', name='daemonstatus', native_enum=False, length=20), nullable=False),
    sa.Column('status_text', sa.String(length=255), nullable=True),
    sa.Column('started_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('heartbeat_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('stopped_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('accounts_owned', sa.Integer(), nullable=False),
    sa.Column('rss_bytes', sa.BigInteger(), nullable=True),
    sa.Column('process_count', sa.Integer(), nullable=True),
    sa.Column('cpu_percent', sa.Float(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_session_daemons')),
    sa.UniqueConstraint('name', name=op.f('uq_session_daemons_name')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('session_daemons',
        ('ix_session_daemons_heartbeat_at', ['heartbeat_at']),
    )

    _create_table('workspaces',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_workspaces')),
    sa.UniqueConstraint('name', name=op.f('uq_workspaces_name')),
    sa.UniqueConstraint('uuid', name=op.f('uq_workspaces_uuid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_table('webhook_endpoints',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('url', sa.String(length=2048), nullable=False),
    sa.Column('secret', sa.String(length=255), nullable=False),
    sa.Column('events', sa.JSON(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('disabled_reason', sa.String(length=255), nullable=True),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_webhook_endpoints_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    sa.UniqueConstraint('uuid', name=op.f('uq_webhook_endpoints_uuid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('webhook_endpoints',
        ('ix_webhook_endpoints_workspace_id', ['workspace_id']),
    )

    _create_table('whatsapp_accounts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('phone_number', sa.String(length=20), nullable=True),
    sa.Column('push_name', sa.String(length=100), nullable=True),
    sa.Column('provider_type', sa.Enum('webjs', 'meta', name='providertype', native_enum=False, length=20), nullable=False),
    sa.Column('status', sa.Enum('disconnected', 'starting', 'qr_scanning', 'authenticated', 'connected', 'failed', 'logged_out', name='accountstatus', native_enum=False, length=20), nullable=False),
    sa.Column('status_reason', sa.String(length=255), nullable=True),
    sa.Column('status_changed_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('is_primary', sa.Boolean(), nullable=False),
    sa.Column('primary_workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.Computed('CASE WHEN is_primary = 1 THEN workspace_id ELSE NULL END', persisted=True), nullable=True),
    sa.Column('live_workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), sa.Computed('CASE WHEN deleted_at IS NULL THEN workspace_id ELSE NULL END', persisted=True), nullable=True),
    sa.Column('desired_state', sa.Enum('running', 'stopped', name='desiredstate', native_enum=False, length=20), nullable=False),
    sa.Column('owner', sa.String(length=150), nullable=True),
    sa.Column('lease_epoch', sa.BigInteger(), nullable=False),
    sa.Column('lease_expires_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('qr_code', sa.Text(), nullable=True),
    sa.Column('qr_expires_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('pairing_code', sa.String(length=16), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('auth_saved_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('event_sequence', sa.BigInteger(), nullable=False),
    sa.Column('last_activity_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('connected_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('disconnected_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('deleted_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_whatsapp_accounts_workspace_id_workspaces')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_whatsapp_accounts')),
    sa.UniqueConstraint('live_workspace_id', 'name', name='uq_whatsapp_accounts_live_name'),
    sa.UniqueConstraint('primary_workspace_id', name='uq_whatsapp_accounts_one_primary'),
    sa.UniqueConstraint('session_id', name=op.f('uq_whatsapp_accounts_session_id')),
    sa.UniqueConstraint('uuid', name=op.f('uq_whatsapp_accounts_uuid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('whatsapp_accounts',
        ('ix_whatsapp_accounts_claim', ['desired_state', 'lease_expires_at', 'id']),
        ('ix_whatsapp_accounts_last_activity', ['last_activity_at']),
        ('ix_whatsapp_accounts_owner', ['owner', 'lease_epoch']),
        ('ix_whatsapp_accounts_workspace_status', ['workspace_id', 'status']),
    )

    _create_table('account_commands',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('whatsapp_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('command', sa.Enum('connect', 'disconnect', 'reconnect', 'logout', name='commandkind', native_enum=False, length=20), nullable=False),
    sa.Column('args', sa.JSON(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'running', 'succeeded', 'failed', 'cancelled', name='commandstatus', native_enum=False, length=20), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=True),
    sa.Column('handled_by', sa.String(length=150), nullable=True),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('started_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('finished_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['whatsapp_account_id'], ['whatsapp_accounts.id'], name=op.f('fk_account_commands_whatsapp_account_id_whatsapp_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_account_commands')),
    sa.UniqueConstraint('uuid', name=op.f('uq_account_commands_uuid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('account_commands',
        ('ix_account_commands_account_status', ['whatsapp_account_id', 'status', 'id']),
    )

    _create_table('auth_archives',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('whatsapp_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('format', sa.Integer(), nullable=False),
    sa.Column('checksum', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('chunk_count', sa.Integer(), nullable=False),
    sa.Column('key_id', sa.String(length=64), nullable=True),
    sa.Column('created_by', sa.String(length=150), nullable=True),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['whatsapp_account_id'], ['whatsapp_accounts.id'], name=op.f('fk_auth_archives_whatsapp_account_id_whatsapp_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_auth_archives')),
    sa.UniqueConstraint('whatsapp_account_id', 'version', name=op.f('uq_auth_archives_whatsapp_account_id_version')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_table('chats',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('whatsapp_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('jid', sa.String(length=100), nullable=False),
    sa.Column('chat_type', sa.Enum('private', 'group', name='chattype', native_enum=False, length=20), nullable=False),
    sa.Column('provider_type', sa.Enum('webjs', 'meta', name='providertype', native_enum=False, length=20), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('unread_count', sa.Integer(), nullable=False),
    sa.Column('last_message_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('last_message', sa.String(length=500), nullable=True),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['whatsapp_account_id'], ['whatsapp_accounts.id'], name=op.f('fk_chats_whatsapp_account_id_whatsapp_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_chats_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chats')),
    sa.UniqueConstraint('whatsapp_account_id', 'jid', name=op.f('uq_chats_whatsapp_account_id_jid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('chats',
        ('ix_chats_account_last_message', ['whatsapp_account_id', 'last_message_at', 'id']),
        ('ix_chats_account_unread', ['whatsapp_account_id', 'unread_count']),
        ('ix_chats_workspace_type', ['workspace_id', 'chat_type']),
    )

    _create_table('contacts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('whatsapp_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('jid', sa.String(length=100), nullable=False),
    sa.Column('phone_number', sa.String(length=20), nullable=True),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('push_name', sa.String(length=255), nullable=True),
    sa.Column('is_business', sa.Boolean(), nullable=False),
    sa.Column('is_my_contact', sa.Boolean(), nullable=False),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['whatsapp_account_id'], ['whatsapp_accounts.id'], name=op.f('fk_contacts_whatsapp_account_id_whatsapp_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_contacts_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('whatsapp_account_id', 'jid', name=op.f('uq_contacts_whatsapp_account_id_jid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('contacts',
        ('ix_contacts_workspace_phone', ['workspace_id', 'phone_number']),
    )

    _create_table('sync_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('whatsapp_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.Enum('chats', 'contacts', 'groups', 'all', name='synckind', native_enum=False, length=20), nullable=False),
    sa.Column('status', sa.Enum('queued', 'running', 'succeeded', 'failed', name='syncstatus', native_enum=False, length=20), nullable=False),
    sa.Column('requested_by', sa.String(length=100), nullable=True),
    sa.Column('handled_by', sa.String(length=150), nullable=True),
    sa.Column('progress_done', sa.Integer(), nullable=False),
    sa.Column('progress_total', sa.Integer(), nullable=False),
    sa.Column('totals', sa.JSON(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('requested_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('started_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('finished_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['whatsapp_account_id'], ['whatsapp_accounts.id'], name=op.f('fk_sync_runs_whatsapp_account_id_whatsapp_accounts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs')),
    sa.UniqueConstraint('uuid', name=op.f('uq_sync_runs_uuid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('sync_runs',
        ('ix_sync_runs_account_status', ['whatsapp_account_id', 'status']),
    )

    _create_table('wa_groups',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('whatsapp_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('jid', sa.String(length=100), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('owner_jid', sa.String(length=100), nullable=True),
    sa.Column('group_created_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('settings', sa.JSON(), nullable=True),
    sa.Column('participants_count', sa.Integer(), nullable=False),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['whatsapp_account_id'], ['whatsapp_accounts.id'], name=op.f('fk_wa_groups_whatsapp_account_id_whatsapp_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_wa_groups_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wa_groups')),
    sa.UniqueConstraint('whatsapp_account_id', 'jid', name=op.f('uq_wa_groups_whatsapp_account_id_jid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_table('webhook_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('endpoint_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=50), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('whatsapp_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('sequence', sa.BigInteger(), nullable=True),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'delivered', 'dead', name='deliverystatus', native_enum=False, length=20), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('locked_by', sa.String(length=150), nullable=True),
    sa.Column('locked_until', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('last_response', sa.String(length=500), nullable=True),
    sa.Column('last_duration_ms', sa.Integer(), nullable=True),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('delivered_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('endpoint_id', 'event_id', name=op.f('uq_webhook_deliveries_endpoint_id_event_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('webhook_deliveries',
        ('ix_webhook_deliveries_due', ['status', 'next_attempt_at', 'id']),
    )

    _create_table('auth_archive_chunks',
    sa.Column('archive_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('data', sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), 'mariadb').with_variant(mysql.MEDIUMBLOB(), 'mysql'), nullable=False),
    sa.ForeignKeyConstraint(['archive_id'], ['auth_archives.id'], name=op.f('fk_auth_archive_chunks_archive_id_auth_archives'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('archive_id', 'seq', name=op.f('pk_auth_archive_chunks')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_table('messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('uuid', sa.String(length=36), nullable=False),
    sa.Column('workspace_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('whatsapp_account_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('chat_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('chat_jid', sa.String(length=100), nullable=False),
    sa.Column('sender_jid', sa.String(length=100), nullable=True),
    sa.Column('direction', sa.Enum('in', 'out', name='direction', native_enum=False, length=20), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('media_path', sa.String(length=1024), nullable=True),
    sa.Column('media_mimetype', sa.String(length=100), nullable=True),
    sa.Column('media_size', sa.BigInteger(), nullable=True),
    sa.Column('media_filename', sa.String(length=255), nullable=True),
    sa.Column('quoted_wa_message_id', sa.String(length=128), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('status', sa.Enum('pending', 'sending', 'sent', 'delivered', 'read', 'played', 'failed', 'received', name='messagestatus', native_enum=False, length=20), nullable=False),
    sa.Column('ack', sa.SmallInteger(), nullable=True),
    sa.Column('wa_message_id', sa.String(length=128), nullable=True),
    sa.Column('idempotency_key', sa.String(length=128), nullable=True),
    sa.Column('error', sa.String(length=255), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.Column('sent_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('delivered_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('read_at', blazzctl.db.UTCDateTime(), nullable=True),
    sa.Column('updated_at', blazzctl.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['chat_id'], ['chats.id'], name=op.f('fk_messages_chat_id_chats'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['whatsapp_account_id'], ['whatsapp_accounts.id'], name=op.f('fk_messages_whatsapp_account_id_whatsapp_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['workspace_id'], ['workspaces.id'], name=op.f('fk_messages_workspace_id_workspaces'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('uuid', name=op.f('uq_messages_uuid')),
    sa.UniqueConstraint('whatsapp_account_id', 'idempotency_key', name=op.f('uq_messages_whatsapp_account_id_idempotency_key')),
    sa.UniqueConstraint('whatsapp_account_id', 'wa_message_id', name=op.f('uq_messages_whatsapp_account_id_wa_message_id')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )
    _create_indexes('messages',
        ('ix_messages_account_created', ['whatsapp_account_id', 'created_at', 'id']),
        ('ix_messages_chat_created', ['chat_id', 'created_at', 'id']),
        ('ix_messages_outbox', ['whatsapp_account_id', 'status', 'next_attempt_at', 'id']),
        ('ix_messages_workspace_created', ['workspace_id', 'created_at', 'id']),
    )

    _create_table('wa_group_participants',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('group_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('jid', sa.String(length=100), nullable=False),
    sa.Column('phone_number', sa.String(length=20), nullable=True),
    sa.Column('is_admin', sa.Boolean(), nullable=False),
    sa.Column('is_super_admin', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['group_id'], ['wa_groups.id'], name=op.f('fk_wa_group_participants_group_id_wa_groups'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wa_group_participants')),
    sa.UniqueConstraint('group_id', 'jid', name=op.f('uq_wa_group_participants_group_id_jid')),
    mysql_charset='utf8mb4',
    mysql_collate='utf8mb4_bin',
    mysql_engine='InnoDB'
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping them one by one first fails on MySQL
    # where an index backs a foreign key. Children before parents; tables already gone (a
    # half-done downgrade) are skipped.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    for table in ('wa_group_participants', 'messages', 'auth_archive_chunks', 'webhook_deliveries', 'wa_groups',
                  'sync_runs', 'contacts', 'chats', 'auth_archives', 'account_commands', 'whatsapp_accounts',
                  'webhook_endpoints', 'workspaces', 'session_daemons', 'audit_events'):
        if table in existing:
            op.drop_table(table)
