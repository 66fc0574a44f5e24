"""The data model. Importing this package registers every table on ``Base.metadata``."""

from blazzctl.models.account import WhatsAppAccount
from blazzctl.models.account_command import AccountCommand
from blazzctl.models.audit import AuditEvent
from blazzctl.models.auth_archive import AuthArchive, AuthArchiveChunk
from blazzctl.models.base import Base
from blazzctl.models.chat import Chat
from blazzctl.models.contact import Contact
from blazzctl.models.group import Group, GroupParticipant
from blazzctl.models.message import Message
from blazzctl.models.session_daemon import SessionDaemon
from blazzctl.models.sync_run import SyncRun
from blazzctl.models.webhook import WebhookDelivery, WebhookEndpoint
from blazzctl.models.workspace import Workspace

__all__ = [
    "AccountCommand", "AuditEvent", "AuthArchive", "AuthArchiveChunk", "Base", "Chat", "Contact", "Group",
    "GroupParticipant", "Message", "SessionDaemon", "SyncRun", "WebhookDelivery", "WebhookEndpoint",
    "WhatsAppAccount", "Workspace",
]
