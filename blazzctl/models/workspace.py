"""A workspace: one tenant of the platform, owning accounts and webhook endpoints."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.models.base import Base, IdMixin, TimestampMixin, UuidMixin


class Workspace(IdMixin, UuidMixin, TimestampMixin, Base):
    __tablename__ = "workspaces"

    name: Mapped[str] = mapped_column(String(100), unique=True)
