"""Writing one benchmark's section of docs/benchmarks.md, between its own markers."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(section: str, begin: str, end: str, doc: Path = DOC) -> None:
    """Replace the text between ``begin`` and ``end`` (markers included) with ``section``, or append it."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else (
        "# Benchmarks\n\nFigures measured on the development machine; each section names its script, "
        "the machine and the date. Timing is never asserted by the test suite.\n\n")
    if begin in text and end in text:
        text = text[:text.index(begin)] + section + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.write_text(text, encoding="utf-8")
