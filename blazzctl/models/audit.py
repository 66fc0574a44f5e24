"""Who changed what: one row per mutating command."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.models.base import Base, IdMixin, utcnow


class AuditEvent(IdMixin, Base):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_workspace_id", "workspace_id", "id"),)

    workspace_id: Mapped[int | None] = mapped_column(BigInteger)
    os_user: Mapped[str] = mapped_column(String(64))
    sudo_user: Mapped[str | None] = mapped_column(String(64))
    command: Mapped[str] = mapped_column(String(100))
    target_type: Mapped[str | None] = mapped_column(String(50))
    target: Mapped[str | None] = mapped_column(String(255))
    details: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
