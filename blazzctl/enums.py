"""The state vocabularies of blazz. Stored as their string values."""

from __future__ import annotations

from enum import StrEnum


class ProviderType(StrEnum):
    WEBJS = "webjs"
    META = "meta"  # reserved: the Cloud API provider is not built yet


class AccountStatus(StrEnum):
    DISCONNECTED = "disconnected"
    STARTING = "starting"
    QR_SCANNING = "qr_scanning"
    AUTHENTICATED = "authenticated"
    CONNECTED = "connected"
    FAILED = "failed"
    LOGGED_OUT = "logged_out"


class DesiredState(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class DaemonStatus(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    DRAINING = "draining"
    STOPPED = "stopped"


class CommandKind(StrEnum):
    CONNECT = "connect"
    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"
    LOGOUT = "logout"


class CommandStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class MessageStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    RECEIVED = "received"


class ChatType(StrEnum):
    PRIVATE = "private"
    GROUP = "group"


class SyncKind(StrEnum):
    CHATS = "chats"
    CONTACTS = "contacts"
    GROUPS = "groups"
    ALL = "all"


class SyncStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"
