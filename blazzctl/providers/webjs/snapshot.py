"""Login snapshots: an account's WhatsApp Web storage, portable between contexts of any browser.

A persistent Chromium profile keeps one login per browser process. To hold several accounts in
one browser, each in its own (in-memory) context, the login must travel as data: the origin's
IndexedDB databases (schemas and records) and localStorage, taken in the page by ``snapshot.js``
and written into a fresh context before WhatsApp Web runs there. The login's WebCrypto key is
non-extractable as WhatsApp Web makes it; ``snapshot.js``, installed before any page script,
makes keys extractable so a snapshot can carry them (docs/architecture.md, "Login snapshots").

The bytes (``encode``) are one JSON document with a format name and version; they are stored
encrypted and chunked like profile archives (``blazzctl.services.auth_archives``), and
``is_snapshot`` tells the two kinds apart (a profile archive is a tar).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FORMAT = "blazz-login-snapshot"
VERSION = 1
SCRIPT = (Path(__file__).parent / "snapshot.js").read_text(encoding="utf-8")
RESTORE_PATH = "/__blazz_restore__"
BLANK = "<!doctype html><meta charset=utf-8><title>blazz: restoring a login</title>"
_HEAD = b'{"format":"' + FORMAT.encode() + b'"'


class SnapshotError(Exception):
    """A snapshot that could not be taken, read or written (the message says why)."""


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise SnapshotError(f"not an absolute URL: {url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def encode(storage: dict[str, Any]) -> bytes:
    document = {"format": FORMAT, "version": VERSION, "taken_at": round(time.time(), 3), "storage": storage}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def is_snapshot(data: bytes) -> bool:
    return data[:len(_HEAD)] == _HEAD


def decode(data: bytes) -> dict[str, Any]:
    """The storage of a snapshot; SnapshotError for anything that is not one this code can write."""
    if not is_snapshot(data):
        raise SnapshotError("not a login snapshot")
    try:
        document = json.loads(data.decode("utf-8"))
    except ValueError as exc:
        raise SnapshotError(f"the login snapshot is damaged: {exc}") from None
    if document.get("version") != VERSION:
        raise SnapshotError(f"login snapshot format version {document.get('version')!r}; this blazz reads {VERSION}")
    storage = document.get("storage")
    if not isinstance(storage, dict) or not {"origin", "localStorage", "indexedDB"} <= set(storage):
        raise SnapshotError("the login snapshot has no storage")
    return storage


async def install(context) -> None:
    """Before any page of ``context`` runs: keys made extractable, and the snapshot functions."""
    await context.add_init_script(SCRIPT)


async def take(page, app_url: str) -> bytes:
    """The page's origin storage, encoded; SnapshotError when a value cannot be carried (a key
    made in a Worker, an unsupported type), the page cannot answer, or it is not on the app's
    origin any more (a page that left WhatsApp Web at its lease deadline is about:blank: its
    empty storage must never replace a login)."""
    try:
        storage = await page.evaluate("() => window.__blazzSnapshot.snapshot()")
    except Exception as exc:
        raise SnapshotError(_reason(exc)) from None
    if storage.get("origin") != origin_of(app_url):
        raise SnapshotError(f"the page is on {storage.get('origin')}, not on the app's origin: nothing to snapshot")
    return encode(storage)


async def restore(context, app_url: str, data: bytes, *, page=None):
    """Write a snapshot into ``context`` for ``app_url``'s origin, before the app runs: a blank page
    on that origin (served by request interception, nothing goes to the network) receives it.
    Returns the page, still on the blank document: the caller navigates to the app."""
    storage = decode(data)
    origin = origin_of(app_url)
    if storage["origin"] != origin:
        raise SnapshotError(f"the snapshot is of {storage['origin']}, not of {origin}")
    blank = origin + RESTORE_PATH

    async def serve(route) -> None:
        await route.fulfill(status=200, content_type="text/html; charset=utf-8", body=BLANK)

    await context.route(blank, serve)
    try:
        page = page or await context.new_page()
        await page.goto(blank, wait_until="load")
        await page.evaluate("(s) => window.__blazzSnapshot.restore(s)", storage)
    except SnapshotError:
        raise
    except Exception as exc:
        raise SnapshotError(_reason(exc)) from None
    finally:
        await context.unroute(blank, serve)
    return page


def _reason(exc: BaseException) -> str:
    text = str(exc)
    marker = "blazz snapshot: "
    if marker in text:
        text = text[text.index(marker) + len(marker):]
    return (text.strip().splitlines() or [type(exc).__name__])[0][:300]
