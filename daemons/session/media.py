"""Saving received media to disk (``messages.download_media``), named by account and message id."""

from __future__ import annotations

import logging
import mimetypes
import re
from pathlib import Path

log = logging.getLogger("blazz.media")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


async def attach(provider, account_id: int, message: dict, media_dir: Path) -> dict:
    """The message with ``media_path`` set when its media could be downloaded and saved.

    A failed download never loses the message: it is stored with its media metadata only.
    """
    if not message.get("has_media") or not message.get("id"):
        return message
    try:
        found = await provider.download_media(account_id, message["id"])
    except Exception as exc:
        log.warning("media download failed", extra={"account_id": account_id, "wa_message_id": message["id"],
                                                    "error": str(exc)[:200]})
        return message
    if not found:
        return message
    data, mimetype = found
    folder = media_dir / str(account_id)
    folder.mkdir(parents=True, exist_ok=True, mode=0o750)
    ext = mimetypes.guess_extension((mimetype or message.get("mimetype") or "").split(";")[0].strip()) or ".bin"
    path = folder / (_UNSAFE.sub("_", message["id"])[-120:] + ext)
    path.write_bytes(data)
    return {**message, "media_path": str(path), "size": message.get("size") or len(data)}
