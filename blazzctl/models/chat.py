"""A conversation of one account: one row per chat (not per message, unlike the original)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.enums import ChatType, ProviderType
from blazzctl.models.base import Base, BigId, IdMixin, TimestampMixin, enum_column


class Chat(IdMixin, TimestampMixin, Base):
    __tablename__ = "chats"
    __table_args__ = (
        UniqueConstraint("whatsapp_account_id", "jid"),
        Index("ix_chats_account_last_message", "whatsapp_account_id", "last_message_at", "id"),
        Index("ix_chats_workspace_type", "workspace_id", "chat_type"),
        Index("ix_chats_account_unread", "whatsapp_account_id", "unread_count"),
    )

    workspace_id: Mapped[int] = mapped_column(BigId, ForeignKey("workspaces.id", ondelete="CASCADE"))
    whatsapp_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("whatsapp_accounts.id", ondelete="CASCADE"))
    jid: Mapped[str] = mapped_column(String(100))
    chat_type: Mapped[ChatType] = enum_column(ChatType, default=ChatType.PRIVATE)
    provider_type: Mapped[ProviderType] = enum_column(ProviderType, default=ProviderType.WEBJS)
    name: Mapped[str | None] = mapped_column(String(255))
    unread_count: Mapped[int] = mapped_column(default=0)
    last_message_at: Mapped[datetime | None]
    last_message: Mapped[str | None] = mapped_column(String(500))  # preview of the newest message
    archived: Mapped[bool] = mapped_column(default=False)
