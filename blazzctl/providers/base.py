"""The provider interface: what a session daemon needs from a way of reaching WhatsApp.

A provider drives many account sessions inside one daemon process. The daemon calls its
async methods; the provider reports what happens through the ``emit`` callback it was
given, as ``ProviderEvent`` values. Providers never touch the database: the daemon writes
every consequence, fenced by its lease.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from blazzctl.errors import ConfigError


@dataclass(frozen=True)
class SessionSpec:
    """What a provider needs to start one account's session."""

    account_id: int
    session_id: str
    workspace_id: int
    name: str
    epoch: int
    phone_number: str | None = None
    pair_phone: str | None = None  # pairing-code login instead of a QR
    wa_version: str | None = None  # the WhatsApp Web build to load (a pin or canary); None: the live one
    wa_document: bytes | None = None  # that build's stored app document, served to the page


# --- events a provider reports ------------------------------------------------------------


@dataclass(frozen=True)
class ProviderEvent:
    account_id: int


@dataclass(frozen=True)
class Qr(ProviderEvent):
    qr: str
    expires_at: datetime
    rotation: int = 1


@dataclass(frozen=True)
class PairingCode(ProviderEvent):
    code: str


@dataclass(frozen=True)
class Authenticated(ProviderEvent):
    pass


@dataclass(frozen=True)
class Ready(ProviderEvent):
    phone_number: str
    push_name: str | None = None
    wa_version: str | None = None  # WhatsApp Web's build (``Debug.VERSION``)


@dataclass(frozen=True)
class Disconnected(ProviderEvent):
    """The session dropped. ``retry`` tells the daemon to start it again after a backoff."""

    reason: str
    retry: bool = True


@dataclass(frozen=True)
class LoggedOut(ProviderEvent):
    """The phone unlinked this session (or an operator logged it out): the login is gone."""

    reason: str = "logged_out"


@dataclass(frozen=True)
class Failed(ProviderEvent):
    """A failure that retrying will not fix (QR expired, wrong key, ...)."""

    reason: str
    detail: str | None = None


@dataclass(frozen=True)
class LoginNotArchived(ProviderEvent):
    """The session runs, but its login could not be archived (a snapshot refused); the previous
    archive is kept. Shown in the account's ``last_error``; ``detail`` None: archived again."""

    detail: str | None


@dataclass(frozen=True)
class VersionLoaded(ProviderEvent):
    """The page runs WhatsApp Web ``version``: served live (``document``: the app document it came
    from, when it could be read) or from the stored document of the spec's ``wa_version``."""

    version: str
    document: bytes | None = None
    served: str | None = None  # the spec's wa_version (None: live)


@dataclass(frozen=True)
class Restart(ProviderEvent):
    """The provider wants this session started again, its login kept (a browser being recycled):
    the daemon restarts it as for an operator's reconnect, saving the login first."""

    reason: str


@dataclass(frozen=True)
class MessageEvent(ProviderEvent):
    message: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AckEvent(ProviderEvent):
    wa_message_id: str = ""
    ack: int = 0


@dataclass(frozen=True)
class MessageEdited(ProviderEvent):
    """The author changed a message's text (or a media caption)."""

    wa_message_id: str = ""
    body: str = ""
    edited_at: datetime | None = None


@dataclass(frozen=True)
class MessageRevoked(ProviderEvent):
    """The author deleted a message for everyone."""

    wa_message_id: str = ""


Emit = Callable[[ProviderEvent], Awaitable[None]]


class SessionNotReady(Exception):
    """The session cannot take calls now (not connected yet, or its page is gone)."""


class LeaseDeadline(Exception):
    """The page refused a send because the lease deadline passed it carried (``message["deadline"]``,
    wall-clock epoch seconds): the message was not handed to WhatsApp. Raised in the page itself,
    so a daemon that froze between its lease check and the hand-over cannot send late."""


DEADLINE_MARK = "blazz: lease deadline passed"


class SendRefused(Exception):
    """WhatsApp refused a message (its send result was not OK); the text is ``send_refused: RESULT``."""


class Unsupported(Exception):
    """This provider has no such capability."""


class Provider(abc.ABC):
    """One per daemon; drives every session the daemon owns."""

    def __init__(self, *, settings: Any, state_dir: Path, emit: Emit, daemon_name: str,
                 secrets: Any = None, database: Any = None) -> None:
        self.settings = settings  # the provider's own settings section (e.g. WebjsSettings)
        self.state_dir = state_dir
        self.emit = emit
        self.daemon_name = daemon_name
        self.secrets = secrets
        self.database = database

    async def open(self) -> None:
        """Called once before the first session starts."""

    async def close(self) -> None:
        """Called once at daemon exit, after every session was stopped."""

    @abc.abstractmethod
    async def start(self, spec: SessionSpec) -> None:
        """Start (or restore) the session; return once it is launching. Report progress by events."""

    @abc.abstractmethod
    async def stop(self, account_id: int, *, checkpoint: bool = True) -> None:
        """Close the session, keeping its login (saved first when ``checkpoint``)."""

    @abc.abstractmethod
    async def logout(self, account_id: int) -> None:
        """Unlink the session from the phone and delete its login, locally and in archives."""

    def running(self) -> set[int]:
        """Account ids whose sessions are live in this process."""
        return set()

    async def checkpoint(self, account_id: int) -> bool:
        """Archive the account's login now (after sends, so that a takeover's page knows them);
        False when nothing was stored. The default stores nothing."""
        return False

    async def set_deadline(self, deadline: float) -> None:
        """Our leases are confirmed until ``deadline`` (wall-clock epoch seconds, the fence
        deadline): every page gets it and leaves WhatsApp by itself once it passes, should the
        daemon be frozen. Called after each renewal; the default does nothing."""

    async def send_message(self, account_id: int, message: dict[str, Any]) -> dict[str, Any]:
        raise Unsupported(f"{type(self).__name__} cannot send messages")

    async def download_media(self, account_id: int, wa_message_id: str) -> tuple[bytes, str | None] | None:
        """The media bytes of a received message and their mimetype, or None when it has none."""
        raise Unsupported(f"{type(self).__name__} cannot download media")

    async def recent_messages(self, account_id: int, since: float) -> list[dict[str, Any]]:
        """Messages the page holds (every chat, in the shape of bridge.js ``messageView``) newer
        than ``since`` (epoch seconds): the catch-up after a session starts. The default: none."""
        return []

    async def message_exists(self, account_id: int, wa_message_id: str) -> bool:
        """Whether WhatsApp has a message with this id (asked before any resend)."""
        raise Unsupported(f"{type(self).__name__} cannot look messages up")

    async def is_on_whatsapp(self, account_id: int, phone: str) -> bool:
        raise Unsupported(f"{type(self).__name__} cannot check numbers")

    async def resolve_number(self, account_id: int, phone: str) -> str | None:
        """The id WhatsApp knows ``phone`` (digits) by, e.g. ``551187654321@c.us`` for a typed
        ``5511987654321`` (it can differ: Brazil's 9th digit, Mexico's 1); None when the number is
        not on WhatsApp. Providers that cannot tell the canonical id answer the typed one."""
        return f"{phone}@c.us" if await self.is_on_whatsapp(account_id, phone) else None

    async def send_seen(self, account_id: int, chat_jid: str) -> None:
        """Send a read receipt for the chat (its messages show as read to their senders)."""
        raise Unsupported(f"{type(self).__name__} cannot send read receipts")

    async def list_chats(self, account_id: int) -> list[dict[str, Any]]:
        raise Unsupported(f"{type(self).__name__} cannot list chats")

    async def list_contacts(self, account_id: int) -> list[dict[str, Any]]:
        raise Unsupported(f"{type(self).__name__} cannot list contacts")

    async def list_groups(self, account_id: int) -> list[dict[str, Any]]:
        raise Unsupported(f"{type(self).__name__} cannot list groups")


def first_line(exc: BaseException) -> str:
    """An error's first line (at most 300 characters), for a log field or a status reason."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


DEFAULT_DRIVERS = {"webjs": "blazzctl.providers.webjs:WebjsProvider"}


def load_provider_class(path: str | None, *, provider_type: str = "webjs") -> type[Provider]:
    """The provider class named ``module:Class`` (the built-in one when ``path`` is empty)."""
    target = path or DEFAULT_DRIVERS[provider_type]
    key = f"providers.{provider_type}.driver"
    module_name, _, class_name = target.partition(":")
    if not class_name:
        raise ConfigError([("config", key, f"{target!r} is not of the form module:Class")])
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError([("config", key, f"cannot import {module_name!r}: {exc}")],
                          hint="For the test fake, put the repository root on PYTHONPATH.") from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ConfigError([("config", key, f"{target!r} is not a blazz Provider class")])
    return cls
