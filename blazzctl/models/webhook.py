"""Webhook endpoints of a workspace, and the delivery outbox."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.enums import DeliveryStatus
from blazzctl.models.base import Base, BigId, IdMixin, TimestampMixin, UuidMixin, enum_column, utcnow


class WebhookEndpoint(IdMixin, UuidMixin, TimestampMixin, Base):
    __tablename__ = "webhook_endpoints"

    workspace_id: Mapped[int] = mapped_column(BigId, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(255))
    # After `webhook rotate-secret` the replaced secret also signs deliveries until this time,
    # so receivers can switch without losing events; past it, it is ignored.
    previous_secret: Mapped[str | None] = mapped_column(String(255))
    previous_secret_expires_at: Mapped[datetime | None]
    events: Mapped[list | None] = mapped_column(JSON)  # NULL: every event type
    active: Mapped[bool] = mapped_column(default=True)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))


class WebhookDelivery(IdMixin, Base):
    """One event for one endpoint: written in the transaction of the change that caused it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        # The dispatcher's claim: due pending rows in time order.
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at", "id"),
    )

    endpoint_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(50))
    workspace_id: Mapped[int] = mapped_column(BigId)
    whatsapp_account_id: Mapped[int | None] = mapped_column(BigId)
    sequence: Mapped[int | None] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)  # the exact bytes that are signed and sent
    status: Mapped[DeliveryStatus] = enum_column(DeliveryStatus, default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_by: Mapped[str | None] = mapped_column(String(150))
    locked_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    last_response: Mapped[str | None] = mapped_column(String(500))
    last_duration_ms: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
