"""Received media (``messages.download_media``): the bytes go into the database with the message.

Like outbound media (``message_media_chunks``), so whichever host runs `blazzctl message media`
can read them; nothing is left on the receiving host's disk. Files above
``messages.max_download_mb`` keep only their metadata. ``prune_loop`` deletes the bytes of
received media older than ``messages.media_retention_days``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging

from blazzctl.db import Database
from blazzctl.services import message_media

log = logging.getLogger("blazz.media")

PRUNE_EVERY = 3600.0  # seconds between two retention passes of one daemon


async def attach(provider, account_id: int, message: dict, *, max_bytes: int) -> dict:
    """The message with its media bytes (``media_data``) and their SHA-256, when they could be
    downloaded and are not too large. A failed download never loses the message: it is stored
    with its media metadata only (``media_skipped`` says why)."""
    if not message.get("has_media") or not message.get("id"):
        return message
    if message.get("size") and message["size"] > max_bytes:
        return {**message, "media_skipped": "too_large"}
    try:
        found = await provider.download_media(account_id, message["id"])
    except Exception as exc:
        log.warning("media download failed", extra={"account_id": account_id, "wa_message_id": message["id"],
                                                    "error": str(exc)[:200]})
        return {**message, "media_skipped": "download_failed"}
    if not found:
        return {**message, "media_skipped": "download_failed"}
    data, mimetype = found
    if len(data) > max_bytes:
        return {**message, "media_skipped": "too_large", "size": message.get("size") or len(data)}
    return {**message, "media_data": data, "sha256": hashlib.sha256(data).hexdigest(),
            "mimetype": message.get("mimetype") or mimetype, "size": message.get("size") or len(data)}


async def prune_loop(db: Database, settings, stopping: asyncio.Event) -> None:
    """Every hour, delete received media past ``media_retention_days`` (any daemon may: deletes are idempotent)."""
    while not stopping.is_set():
        if settings.media_retention_days:
            try:
                deleted = await asyncio.to_thread(message_media.prune_received, db,
                                                  older_than_days=settings.media_retention_days)
                if deleted:
                    log.info("received media pruned", extra={"messages": deleted})
            except Exception as exc:  # the database is away: next time
                log.warning("media prune failed", extra={"error": str(exc)[:200]})
        try:
            await asyncio.wait_for(stopping.wait(), timeout=PRUNE_EVERY)
        except asyncio.TimeoutError:
            pass
