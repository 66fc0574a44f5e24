"""Outbound media in the database: the bytes of a `message send --media` file travel with the message.

The owning daemon may run on another host than the one `message send` ran on, so the file's
path is not enough. `store` writes the bytes in chunks of ``CHUNK_BYTES`` (each row well under
``max_allowed_packet``) in the caller's transaction, so a message exists with its media or not
at all; `load` reassembles them for the daemon that sends the message, which `discard`s them
once the message is sent or has failed for good.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from blazzctl.errors import InvalidInput
from blazzctl.models import MessageMediaChunk
from blazzctl.models.auth_archive import CHUNK_BYTES


def store(session: Session, *, message_id: int, path: Path, size: int) -> None:
    """Write the file's bytes as the message's chunks; the file must still have ``size`` bytes.

    One statement per chunk, read as it goes: a large file is never whole in memory here.
    """
    seq = written = 0
    try:
        with open(path, "rb") as fh:
            while written <= size and (chunk := fh.read(CHUNK_BYTES)):
                session.execute(insert(MessageMediaChunk).values(message_id=message_id, seq=seq, data=chunk))
                seq, written = seq + 1, written + len(chunk)
    except OSError as error:
        raise InvalidInput(f"cannot read media file {str(path)!r}: {error.strerror}") from None
    if written != size:
        raise InvalidInput(f"media file {str(path)!r} changed while it was read ({size} bytes, then {written}"
                           f"{' or more' if written > size else ''})", hint="Send it again once it is complete.")


def store_bytes(session: Session, *, message_id: int, data: bytes) -> None:
    """Write received media (already in memory, capped by ``messages.max_download_mb``) as chunks."""
    for seq, start in enumerate(range(0, len(data), CHUNK_BYTES)):
        session.execute(insert(MessageMediaChunk).values(message_id=message_id, seq=seq,
                                                         data=data[start:start + CHUNK_BYTES]))


def prune_received(db, *, older_than_days: float, batch: int = 500) -> int:
    """Delete the stored media of received messages older than ``older_than_days``; returns how many."""
    from blazzctl.db import db_now
    from blazzctl.enums import Direction
    from blazzctl.models import Message

    total = 0
    while True:
        with db.session() as s:
            ids = s.scalars(select(Message.id).where(
                Message.direction == Direction.IN, Message.created_at < db_now(-older_than_days * 86400),
                Message.id.in_(select(MessageMediaChunk.message_id))).limit(batch)).all()
            if not ids:
                return total
            s.execute(delete(MessageMediaChunk).where(MessageMediaChunk.message_id.in_(ids)))
        total += len(ids)


def received(session: Session, *, account_id: int, wa_message_id: str):
    """(message, bytes) of a received media message of the account, by its WhatsApp id (or the bare id)."""
    from sqlalchemy import or_

    from blazzctl.errors import NotFound
    from blazzctl.models import Message

    message = session.scalars(select(Message).where(
        Message.whatsapp_account_id == account_id,
        or_(Message.wa_message_id == wa_message_id,
            Message.wa_message_id.endswith(f"_{wa_message_id}", autoescape=True)))
        .order_by(Message.id)).first()
    if message is None:
        raise NotFound(f"the account has no message {wa_message_id!r}",
                       hint="See `blazzctl message list` for the WhatsApp ids (wa_message_id).")
    data = load(session, message.id) if message.media_mimetype else None
    if data is None:
        why = ((message.details or {}).get("media_skipped") or
               "not stored (messages.download_media is off, or it was pruned after messages.media_retention_days)")
        raise NotFound(f"message {wa_message_id!r} has no stored media: {why}")
    return message, data


def discard(session: Session, message_id: int) -> None:
    """Delete the message's stored bytes: it is sent or failed for good, nothing sends it again."""
    session.execute(delete(MessageMediaChunk).where(MessageMediaChunk.message_id == message_id))


def load(session: Session, message_id: int) -> bytes | None:
    """The message's media bytes, or None when none are stored (queued before media moved into the database)."""
    chunks = session.scalars(select(MessageMediaChunk.data).where(MessageMediaChunk.message_id == message_id)
                             .order_by(MessageMediaChunk.seq)).all()
    return b"".join(chunks) if chunks else None
