"""QR codes in the terminal: half-block characters a phone camera reads over SSH."""

from __future__ import annotations

import sys
from datetime import datetime


def render(data: str) -> str:
    """The QR as text, two modules per character cell (▀ ▄ █), with a quiet zone."""
    import segno

    code = segno.make(data, error="l", micro=False)
    rows = [[bool(v) for v in row] for row in code.matrix_iter(scale=1, border=2)]
    if len(rows) % 2:
        rows.append([False] * len(rows[0]))
    lines = []
    for top, bottom in zip(rows[0::2], rows[1::2]):
        # Dark modules are drawn as spaces on a light background would need colours; instead
        # light modules are blocks (the terminal's light foreground) and dark ones blank.
        lines.append("".join(_cell(not t, not b) for t, b in zip(top, bottom)))
    return "\n".join(lines)


def _cell(top_light: bool, bottom_light: bool) -> str:
    return {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}[(top_light, bottom_light)]


def show(data: str, expires_at: datetime | None) -> None:
    sys.stdout.write(render(data) + "\n")
    hint = "Scan with WhatsApp on the phone: Settings > Linked devices > Link a device."
    if expires_at is not None:
        hint += f" This code rotates at {expires_at:%H:%M:%S} UTC."
    sys.stdout.write(hint + "\n")
    sys.stdout.flush()
