"""Operator intent for one account (connect, logout, ...), carried out by its owning daemon."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.enums import CommandKind, CommandStatus
from blazzctl.models.base import Base, BigId, IdMixin, UuidMixin, enum_column, utcnow


class AccountCommand(IdMixin, UuidMixin, Base):
    __tablename__ = "account_commands"
    __table_args__ = (Index("ix_account_commands_account_status", "whatsapp_account_id", "status", "id"),)

    whatsapp_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("whatsapp_accounts.id", ondelete="CASCADE"))
    command: Mapped[CommandKind] = enum_column(CommandKind)
    args: Mapped[dict | None] = mapped_column(JSON)
    status: Mapped[CommandStatus] = enum_column(CommandStatus, default=CommandStatus.PENDING)
    requested_by: Mapped[str | None] = mapped_column(String(100))
    handled_by: Mapped[str | None] = mapped_column(String(150))
    result: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
