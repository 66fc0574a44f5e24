"""Rendering: JSON on stdout (and nothing else), or Rich tables for people."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


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
    for row in rows:
        grid.add_row(*(Text("-" if v is None else str(v)) for v in row))
    _console().print(grid)


def fields(pairs: Sequence[tuple[str, Any]]) -> None:
    """A key/value listing for `show` commands."""
    from rich.text import Text

    width = max(len(k) for k, _ in pairs)
    console = _console()
    for key, value in pairs:
        console.print(Text(f"{key.ljust(width)}  {'-' if value is None else value}"))


def say(message: str) -> None:
    from rich.text import Text

    _console().print(Text(message))


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
