"""A workspace: one tenant of the platform, owning accounts and webhook endpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Computed, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.models.base import Base, IdMixin, TimestampMixin, UuidMixin


class Workspace(IdMixin, UuidMixin, TimestampMixin, Base):
    __tablename__ = "workspaces"
    __table_args__ = (
        # Names are unique among live workspaces: a removed (offboarded) workspace keeps its
        # row and its name, and frees the name for a new tenant. The generated column is the
        # name while the workspace is live and NULL once removed (NULLs never collide).
        UniqueConstraint("live_name", name="uq_workspaces_live_name"),
    )

    name: Mapped[str] = mapped_column(String(100))
    live_name: Mapped[str | None] = mapped_column(
        String(100), Computed("CASE WHEN deleted_at IS NULL THEN name ELSE NULL END", persisted=True))
    deleted_at: Mapped[datetime | None]
