"""The data model, one module per table (or pair of tables).

Models load lazily (PEP 562): ``from blazzctl.models import WhatsAppAccount`` imports only
the account, workspace and audit models, which keeps `blazzctl account list` fast (start-up
target). Asking for any other model, or for ``Base`` (migrations, schema checks), loads every
model first, so ``Base.metadata`` holds the whole schema whenever anything else is in use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_MODULES = {
    "AccountCommand": "account_command", "ApiKey": "api_key", "AuditEvent": "audit", "AuthArchive": "auth_archive",
    "AuthArchiveChunk": "auth_archive", "Chat": "chat", "Contact": "contact", "Group": "group",
    "GroupParticipant": "group", "Message": "message", "MessageMediaChunk": "message_media",
    "SessionDaemon": "session_daemon", "SyncRun": "sync_run", "WebhookDelivery": "webhook",
    "WebhookEndpoint": "webhook", "WhatsAppAccount": "account", "Workspace": "workspace",
    "WaWebVersion": "wa_web_version", "WaWebVersionFailure": "wa_web_version",
}

__all__ = ["Base", *sorted(_MODULES)]


def load_all() -> None:
    """Import every model module, registering every table on ``Base.metadata``."""
    for module in sorted(set(_MODULES.values())):
        importlib.import_module(f"{__name__}.{module}")


# What the account/workspace/audit commands use. Their foreign keys stay within this set,
# so these mappers work alone; asking for any other model loads them all.
_LIGHT = {"WhatsAppAccount", "Workspace", "AuditEvent"}


def __getattr__(name: str):
    if name == "Base" or (name in _MODULES and name not in _LIGHT):
        load_all()
    if name == "Base":
        from blazzctl.models.base import Base

        return Base
    if name in _MODULES:
        return getattr(importlib.import_module(f"{__name__}.{_MODULES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # for type checkers and IDEs: the eager imports
    from blazzctl.models.account import WhatsAppAccount
    from blazzctl.models.account_command import AccountCommand
    from blazzctl.models.api_key import ApiKey
    from blazzctl.models.audit import AuditEvent
    from blazzctl.models.auth_archive import AuthArchive, AuthArchiveChunk
    from blazzctl.models.base import Base
    from blazzctl.models.chat import Chat
    from blazzctl.models.contact import Contact
    from blazzctl.models.group import Group, GroupParticipant
    from blazzctl.models.message import Message
    from blazzctl.models.message_media import MessageMediaChunk
    from blazzctl.models.session_daemon import SessionDaemon
    from blazzctl.models.sync_run import SyncRun
    from blazzctl.models.wa_web_version import WaWebVersion, WaWebVersionFailure
    from blazzctl.models.webhook import WebhookDelivery, WebhookEndpoint
    from blazzctl.models.workspace import Workspace
