"""WhatsApp Web builds the fleet has loaded: the app document each came from, what the fleet
does with each (pinned, canary, bad, deprecated), and the failures attributed to them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.db import MediumBlob
from blazzctl.enums import WaVersionState
from blazzctl.models.base import Base, BigId, IdMixin, enum_column, utcnow


class WaWebVersion(IdMixin, Base):
    __tablename__ = "wa_web_versions"

    version: Mapped[str] = mapped_column(String(40), unique=True)  # window.Debug.VERSION
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_live_at: Mapped[datetime | None]  # last loaded as served by WhatsApp (not from the stored document)
    last_connected_at: Mapped[datetime | None]  # last time a session on it got connected
    html: Mapped[bytes | None] = mapped_column(MediumBlob())  # the app document, zlib-compressed
    html_sha256: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[WaVersionState | None] = enum_column(WaVersionState, nullable=True)
    state_reason: Mapped[str | None] = mapped_column(String(255))
    state_changed_at: Mapped[datetime | None]
    state_by: Mapped[str | None] = mapped_column(String(150))  # the operator or daemon that set it
    canary_accounts: Mapped[list | None] = mapped_column(JSON)  # account ids running it (state canary)


class WaWebVersionFailure(IdMixin, Base):
    """A session failure attributed to the build its page ran: the self-check, stuck loading, a bridge error."""

    __tablename__ = "wa_web_version_failures"
    __table_args__ = (Index("ix_wa_web_version_failures_version_at", "version", "at"),)

    version: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[int | None] = mapped_column(BigId)
    kind: Mapped[str] = mapped_column(String(40))  # self_check | stuck_loading | bridge_error
    detail: Mapped[str | None] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    daemon: Mapped[str | None] = mapped_column(String(150))
