"""A WhatsApp account ("session") of a workspace, with the lease a daemon holds on it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Computed, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from blazzctl.enums import AccountStatus, DesiredState, ProviderType
from blazzctl.models.base import Base, BigId, IdMixin, TimestampMixin, UuidMixin, enum_column
from blazzctl.models.workspace import Workspace


class WhatsAppAccount(IdMixin, UuidMixin, TimestampMixin, Base):
    __tablename__ = "whatsapp_accounts"
    __table_args__ = (
        # One primary per workspace, enforced by the database: the generated column is the
        # workspace id for the primary account and NULL otherwise (NULLs never collide).
        UniqueConstraint("primary_workspace_id", name="uq_whatsapp_accounts_one_primary"),
        # Names are unique among the live accounts of a workspace (removed ones free the name).
        UniqueConstraint("live_workspace_id", "name", name="uq_whatsapp_accounts_live_name"),
        Index("ix_whatsapp_accounts_workspace_status", "workspace_id", "status"),
        Index("ix_whatsapp_accounts_last_activity", "last_activity_at"),
        # Serves the claim query: runnable rows in lease order, no filesort.
        Index("ix_whatsapp_accounts_claim", "desired_state", "lease_expires_at", "id"),
        Index("ix_whatsapp_accounts_owner", "owner", "lease_epoch"),
    )

    # No ON DELETE CASCADE: MySQL forbids it on a base column of a stored generated column.
    workspace_id: Mapped[int] = mapped_column(BigId, ForeignKey("workspaces.id"))
    name: Mapped[str] = mapped_column(String(100))
    session_id: Mapped[str] = mapped_column(String(64), unique=True)
    phone_number: Mapped[str | None] = mapped_column(String(20))
    push_name: Mapped[str | None] = mapped_column(String(100))
    provider_type: Mapped[ProviderType] = enum_column(ProviderType, default=ProviderType.WEBJS)
    status: Mapped[AccountStatus] = enum_column(AccountStatus, default=AccountStatus.DISCONNECTED)
    status_reason: Mapped[str | None] = mapped_column(String(255))
    status_changed_at: Mapped[datetime | None]
    is_primary: Mapped[bool] = mapped_column(default=False)
    primary_workspace_id: Mapped[int | None] = mapped_column(
        BigId, Computed("CASE WHEN is_primary = 1 THEN workspace_id ELSE NULL END", persisted=True))
    live_workspace_id: Mapped[int | None] = mapped_column(
        BigId, Computed("CASE WHEN deleted_at IS NULL THEN workspace_id ELSE NULL END", persisted=True))
    desired_state: Mapped[DesiredState] = enum_column(DesiredState, default=DesiredState.STOPPED)

    # The lease: owned by (owner, lease_epoch) until lease_expires_at (database clock).
    owner: Mapped[str | None] = mapped_column(String(150))
    lease_epoch: Mapped[int] = mapped_column(BigInteger, default=0)
    lease_expires_at: Mapped[datetime | None]

    qr_code: Mapped[str | None] = mapped_column(Text)
    qr_expires_at: Mapped[datetime | None]
    pairing_code: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    wa_version: Mapped[str | None] = mapped_column(String(40))  # the WhatsApp Web build its page last ran
    auth_saved_at: Mapped[datetime | None]
    event_sequence: Mapped[int] = mapped_column(BigInteger, default=0)
    last_activity_at: Mapped[datetime | None]
    connected_at: Mapped[datetime | None]
    disconnected_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]

    workspace: Mapped[Workspace] = relationship(lazy="joined", innerjoin=True)
