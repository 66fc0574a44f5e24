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
    READ_CHAT = "read_chat"  # send a read receipt for a chat (args: {"chat": jid})


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
    SENDING = "sending"  # its WhatsApp id is committed; not handed to the page yet
    HANDED = "handed"  # handed to the page: WhatsApp may have it (resolved by evidence, never resent blind)
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    PLAYED = "played"
    FAILED = "failed"
    RECEIVED = "received"
    UNDECRYPTED = "undecrypted"  # received, not decrypted yet: completed in place when it decrypts
    CANCELLED = "cancelled"  # never sent: `message cancel`, or its account was removed
    UNKNOWN = "unknown"  # handed to a page that is gone, and WhatsApp gave no evidence: `message resend|cancel`


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


class WaVersionState(StrEnum):
    """What the fleet does with one WhatsApp Web build (none of these: it is only known)."""

    PINNED = "pinned"  # every session loads it (one at a time is pinned)
    CANARY = "canary"  # the sessions of its chosen accounts load it
    BAD = "bad"  # failed on the fleet (or rejected): never loaded on purpose
    DEPRECATED = "deprecated"  # WhatsApp refused it (DEPRECATED_VERSION): never pinned again
