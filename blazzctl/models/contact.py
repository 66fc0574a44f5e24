"""A WhatsApp contact as seen by one account."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.models.base import Base, BigId, IdMixin, TimestampMixin


class Contact(IdMixin, TimestampMixin, Base):
    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("whatsapp_account_id", "jid"),
        Index("ix_contacts_workspace_phone", "workspace_id", "phone_number"),
        Index("ix_contacts_account_lid", "whatsapp_account_id", "lid"),
    )

    workspace_id: Mapped[int] = mapped_column(BigId, ForeignKey("workspaces.id", ondelete="CASCADE"))
    whatsapp_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("whatsapp_accounts.id", ondelete="CASCADE"))
    jid: Mapped[str] = mapped_column(String(100))  # what WhatsApp addresses them by (…@c.us or …@lid)
    lid: Mapped[str | None] = mapped_column(String(100))  # their LID (…@lid) when known
    phone_number: Mapped[str | None] = mapped_column(String(20))
    name: Mapped[str | None] = mapped_column(String(255))
    push_name: Mapped[str | None] = mapped_column(String(255))
    is_business: Mapped[bool] = mapped_column(default=False)
    is_my_contact: Mapped[bool] = mapped_column(default=False)
