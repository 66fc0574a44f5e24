"""Rendering: JSON on stdout (and nothing else), or Rich tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any


# Colours of statuses (accounts, daemons, messages, syncs, deliveries) and health states, in the
# STATUS and STATE columns of tables. Rich leaves them out under NO_COLOR and when the stream is not
# a terminal (a pipe, a file), so scripts never see escape codes.
STATE_COLUMNS = frozenset({"STATUS", "STATE"})
STYLES = {
    **dict.fromkeys(("OK", "connected", "running", "succeeded", "sent", "delivered", "read", "played",
                     "received"), "green"),
    **dict.fromkeys(("WARNING", "starting", "qr_scanning", "authenticated", "draining", "pending", "sending",
                     "queued", "undecrypted", "handed"), "yellow"),
    **dict.fromkeys(("CRITICAL", "failed", "dead"), "bold red"),
    **dict.fromkeys(("UNKNOWN", "unknown"), "magenta"),
    **dict.fromkeys(("disconnected", "logged_out", "stopped", "cancelled"), "dim"),
}


def cell(value: Any) -> str:
    """A value as people read it, the same in tables and `show` listings: None "-", booleans
    "yes"/"no", a mapping (group settings) as ``key=value`` pairs."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return " ".join(f"{k}={cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def styled(value: Any):
    """A Text of ``value`` (literal: a name like "[red]" is not markup), coloured when it is a state."""
    from rich.text import Text

    text = cell(value)
    return Text(text, style=STYLES.get(text, ""))


# Whether this invocation has written its JSON document: an error after it (a connect that
# failed, reported in the document) goes to stderr as text, so stdout stays one document.
emitted = False


def emit_json(value: Any) -> None:
    global emitted
    emitted = True
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def emit_error(code: str, message: str, hint: str | None = None) -> None:
    """An error under --json: ``{"error": {"code", "message"[, "hint"]}}`` on stdout, so a script
    reads one JSON document whatever happened (the exit code says the same)."""
    error = {"code": code, "message": message, **({"hint": hint} if hint else {})}
    emit_json({"error": error})


def _console(stderr: bool = False):
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    # Piped output (grep, awk, scripts) is never wrapped nor truncated: a long name stays whole.
    width = None if stream.isatty() else 100_000
    return Console(file=stream, highlight=False, soft_wrap=True, width=width)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], *, empty: str = "nothing to show") -> None:
    """A table whose cells are shown literally (a name like "[red]" is not markup)."""
    from rich.table import Table
    from rich.text import Text

    rows = list(rows)
    if not rows:
        _console().print(Text(empty))
        return
    grid = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for column in grid.columns:
        column.overflow = "fold"  # on a narrow terminal: wrap, never cut a value with "..."
    coloured = [column in STATE_COLUMNS for column in columns]
    for row in rows:
        grid.add_row(*(styled(v) if c else Text(cell(v)) for v, c in zip(row, coloured)))
    _console().print(grid)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """A key/value listing for `show` commands."""
    from rich.text import Text

    width = max(len(k) for k, _ in pairs)
    console = _console()
    for key, value in pairs:
        line = Text(f"{key.ljust(width)}  ")
        line.append_text(styled(value) if key in ("status", "state") else Text(cell(value)))
        console.print(line)


def say(message: str) -> None:
    from rich.text import Text

    _console().print(Text(message))


def say_state(state: str) -> None:
    """A health state on a line of its own, coloured."""
    _console().print(styled(state))


def warn(message: str) -> None:
    sys.stderr.write(message + "\n")


def page(rows: list, limit: int) -> tuple[list, bool]:
    """Rows fetched with ``limit + 1``: the page (at most ``limit`` rows) and whether more follow,
    so "next page" is shown only when there is one."""
    return rows[:limit], len(rows) > limit


def next_page(more: bool, json: bool, option: str) -> None:
    """How to get the next page (``option``, e.g. ``--after 100``), when there is one: on stderr
    after JSON (stdout stays pure JSON), else after the table."""
    if more:
        (warn if json else say)(f"next page: {option}")
