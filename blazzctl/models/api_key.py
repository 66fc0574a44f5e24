"""API keys of the HTTP API: a workspace's credentials, of which only a hash is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.models.base import Base, BigId, IdMixin, TimestampMixin, UuidMixin


class ApiKey(IdMixin, UuidMixin, TimestampMixin, Base):
    __tablename__ = "api_keys"

    workspace_id: Mapped[int] = mapped_column(BigId, ForeignKey("workspaces.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    # The token's first characters (``blz_`` and 8 more): enough to recognise a key in a list or a
    # log, far too few to use it.
    prefix: Mapped[str] = mapped_column(String(16))
    # SHA-256 of the whole token, hex: the token has 256 random bits, so a plain hash cannot be
    # reversed by guessing, and the lookup is one indexed equality (see docs/api.md).
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list] = mapped_column(JSON)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(100))
