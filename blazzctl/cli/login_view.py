"""A login waiting for the phone, drawn in place on a terminal: the QR (or pairing code) and one
status line, redrawn when either changes (Rich ``Live``), so nothing scrolls the QR away.

Used by `quickstart` on a terminal; a pipe gets ``connect.Lines`` (a line per change) instead.
"""

from __future__ import annotations

import sys


def usable() -> bool:
    """Whether stdout is a terminal that can move the cursor (not a pipe, a file or TERM=dumb)."""
    console = _console()
    return console.is_terminal and not console.is_dumb_terminal


def _console():
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False)


class LiveLogin:
    """``with LiveLogin() as display: ... display.update(progress)``; cleared on the way out, so
    what follows (connected, or an error) is printed where the QR was."""

    def __init__(self) -> None:
        from rich.live import Live

        self.shown = None
        # visible: a QR taller than the window is shown whole (a cropped QR cannot be scanned).
        self.live = Live(console=_console(), auto_refresh=False, transient=True, vertical_overflow="visible")

    def __enter__(self) -> "LiveLogin":
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def update(self, now) -> None:
        if now.done:
            # Cleared before the outcome is printed: Rich writes a Console's output straight to
            # the terminal (not above the live region), so a line printed meanwhile would land
            # in the middle of the drawing.
            self.live.stop()
            return
        key = (now.account_status, now.status_reason, now.qr_code, now.pairing_code)
        if key != self.shown:
            self.shown = key
            self.live.update(render(now), refresh=True)


def render(now):
    """The renderable for one look at the login: the code (if any) above one status line, cut
    rather than wrapped on a narrow terminal. How to scan is said once, above (it does not change)."""
    from rich.console import Group
    from rich.text import Text

    from blazzctl.cli import qr

    line = f"status: {now.account_status}" + (f" ({now.status_reason})" if now.status_reason else "")
    if now.pairing_code:
        code = f"pairing code: {now.pairing_code}  (WhatsApp > Linked devices > Link with phone number)"
        return Group(Text(code, no_wrap=True, overflow="ellipsis"), _line(line))
    if now.qr_code:
        if now.qr_expires_at is not None:
            line += f" · new code at {now.qr_expires_at:%H:%M:%S} UTC"
        return Group(Text(qr.render(now.qr_code), no_wrap=True), _line(line))
    return _line(line)


def _line(text: str):
    from rich.text import Text

    return Text(text, no_wrap=True, overflow="ellipsis")
