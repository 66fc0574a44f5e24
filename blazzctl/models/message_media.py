"""The bytes of an outbound message's media file, chunked, so any daemon host can send it."""

from __future__ import annotations

from sqlalchemy import ForeignKey, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from blazzctl.db import MediumBlob
from blazzctl.models.base import Base, BigId, IdMixin


class MessageMediaChunk(IdMixin, Base):
    """One piece (at most ``auth_archive.CHUNK_BYTES``) of a message's media; ``seq`` orders them."""

    __tablename__ = "message_media_chunks"
    __table_args__ = (UniqueConstraint("message_id", "seq"),)

    message_id: Mapped[int] = mapped_column(BigId, ForeignKey("messages.id", ondelete="CASCADE"))
    seq: Mapped[int]
    data: Mapped[bytes] = mapped_column(MediumBlob())
