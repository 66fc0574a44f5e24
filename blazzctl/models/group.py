"""A WhatsApp group seen by one account, and its participants."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.models.base import Base, BigId, IdMixin, TimestampMixin


class Group(IdMixin, TimestampMixin, Base):
    __tablename__ = "wa_groups"
    __table_args__ = (UniqueConstraint("whatsapp_account_id", "jid"),)

    workspace_id: Mapped[int] = mapped_column(BigId, ForeignKey("workspaces.id", ondelete="CASCADE"))
    whatsapp_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("whatsapp_accounts.id", ondelete="CASCADE"))
    jid: Mapped[str] = mapped_column(String(100))
    name: Mapped[str | None] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    owner_jid: Mapped[str | None] = mapped_column(String(100))
    group_created_at: Mapped[datetime | None]
    settings: Mapped[dict | None] = mapped_column(JSON)
    participants_count: Mapped[int] = mapped_column(default=0)


class GroupParticipant(IdMixin, Base):
    __tablename__ = "wa_group_participants"
    __table_args__ = (UniqueConstraint("group_id", "jid"),)

    group_id: Mapped[int] = mapped_column(BigId, ForeignKey("wa_groups.id", ondelete="CASCADE"))
    jid: Mapped[str] = mapped_column(String(100))
    phone_number: Mapped[str | None] = mapped_column(String(20))
    is_admin: Mapped[bool] = mapped_column(default=False)
    is_super_admin: Mapped[bool] = mapped_column(default=False)
