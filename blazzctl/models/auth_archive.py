"""An account's portable WhatsApp Web login: its Chromium profile state, encrypted, chunked."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.db import MediumBlob
from blazzctl.models.base import Base, BigId, IdMixin, utcnow

# Chunks stay well below MySQL's default max_allowed_packet (16 MB on 8.0/10.6+, 4 MB on older).
CHUNK_BYTES = 512 * 1024


class AuthArchive(IdMixin, Base):
    __tablename__ = "auth_archives"
    __table_args__ = (UniqueConstraint("whatsapp_account_id", "version"),)

    whatsapp_account_id: Mapped[int] = mapped_column(BigId, ForeignKey("whatsapp_accounts.id", ondelete="CASCADE"))
    version: Mapped[int]
    format: Mapped[int] = mapped_column(default=1)
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of the plaintext archive
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int]
    key_id: Mapped[str | None] = mapped_column(String(64))
    created_by: Mapped[str | None] = mapped_column(String(150))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuthArchiveChunk(Base):
    __tablename__ = "auth_archive_chunks"

    archive_id: Mapped[int] = mapped_column(BigId, ForeignKey("auth_archives.id", ondelete="CASCADE"),
                                            primary_key=True)
    seq: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(MediumBlob())
