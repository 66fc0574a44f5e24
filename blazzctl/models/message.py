"""One WhatsApp message, inbound or outbound, with its delivery status."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, SmallInteger, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.enums import Direction, MessageStatus
from blazzctl.models.base import Base, BigId, IdMixin, UuidMixin, enum_column, utcnow


class Message(IdMixin, UuidMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("whatsapp_account_id", "wa_message_id"),
        UniqueConstraint("whatsapp_account_id", "idempotency_key"),
        Index("ix_messages_chat_created", "chat_id", "created_at", "id"),
        Index("ix_messages_workspace_created", "workspace_id", "created_at", "id"),
        Index("ix_messages_account_created", "whatsapp_account_id", "created_at", "id"),
        # The owning daemon's outbound poll: an account's due messages by status.
        Index("ix_messages_outbox", "whatsapp_account_id", "status", "next_attempt_at", "id"),
    )

    workspace_id: Mapped[int] = mapped_column(BigId, ForeignKey("workspaces.id", ondelete="CASCADE"))
    whatsapp_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("whatsapp_accounts.id", ondelete="CASCADE"))
    chat_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("chats.id", ondelete="SET NULL"))
    chat_jid: Mapped[str] = mapped_column(String(100))
    sender_jid: Mapped[str | None] = mapped_column(String(100))  # group messages: who wrote it
    direction: Mapped[Direction] = enum_column(Direction)
    type: Mapped[str] = mapped_column(String(20), default="text")
    body: Mapped[str | None] = mapped_column(Text)
    media_path: Mapped[str | None] = mapped_column(String(1024))
    media_mimetype: Mapped[str | None] = mapped_column(String(100))
    media_size: Mapped[int | None] = mapped_column(BigInteger)
    media_filename: Mapped[str | None] = mapped_column(String(255))
    quoted_wa_message_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict | None] = mapped_column(JSON)  # location, vcard, reaction, ...
    status: Mapped[MessageStatus] = enum_column(MessageStatus, default=MessageStatus.PENDING)
    ack: Mapped[int | None] = mapped_column(SmallInteger)
    wa_message_id: Mapped[str | None] = mapped_column(String(128))
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    read_at: Mapped[datetime | None]
    edited_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]  # deleted for everyone
    edits: Mapped[list | None] = mapped_column(JSON)  # the previous bodies, oldest first: [{body, replaced_at}]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
