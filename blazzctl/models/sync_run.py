"""A request to read an account's chats, contacts or groups from WhatsApp, and its outcome."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.enums import SyncKind, SyncStatus
from blazzctl.models.base import Base, BigId, IdMixin, UuidMixin, enum_column, utcnow


class SyncRun(IdMixin, UuidMixin, Base):
    __tablename__ = "sync_runs"
    __table_args__ = (Index("ix_sync_runs_account_status", "whatsapp_account_id", "status"),)

    whatsapp_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("whatsapp_accounts.id", ondelete="CASCADE"))
    kind: Mapped[SyncKind] = enum_column(SyncKind, default=SyncKind.ALL)
    status: Mapped[SyncStatus] = enum_column(SyncStatus, default=SyncStatus.QUEUED)
    requested_by: Mapped[str | None] = mapped_column(String(100))
    handled_by: Mapped[str | None] = mapped_column(String(150))
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int] = mapped_column(default=0)
    totals: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
