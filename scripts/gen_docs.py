#!/usr/bin/env python3
"""Regenerate the files generated from the code: docs/cli.md and config/blazz.example.yaml.

    python scripts/gen_docs.py           # write them
    python scripts/gen_docs.py --check   # exit 1 when a committed file is out of date

docs/cli.md is every command's ``--help``, found by walking the command tree, so commands
added later appear without touching this script. The help is rendered at a fixed width
(100 columns) without colour, so the output does not depend on the terminal.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLI_MD = REPO / "docs" / "cli.md"
EXAMPLE_YAML = REPO / "config" / "blazz.example.yaml"
WIDTH = 100
REGENERATE = "python scripts/gen_docs.py"


def _command_tree():
    """Yield ``(path, command, context)`` for blazzctl and every visible subcommand, depth first."""
    import typer.main

    from blazzctl.cli.main import app

    root = typer.main.get_command(app)

    def walk(cmd, path, parent):
        ctx = cmd.context_class(cmd, info_name=path[-1], parent=parent, terminal_width=WIDTH,
                                max_content_width=WIDTH, color=False, **(cmd.context_settings or {}))
        yield path, cmd, ctx
        for name in getattr(cmd, "list_commands", lambda _ctx: [])(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not getattr(sub, "hidden", False):
                yield from walk(sub, [*path, name], ctx)

    yield from walk(root, ["blazzctl"], None)


def cli_markdown() -> str:
    """The command reference: one section per command with its ``--help``."""
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR", "TERM")}
    os.environ.update(COLUMNS=str(WIDTH), NO_COLOR="1", TERM="dumb")
    try:
        sections = []
        for path, cmd, ctx in _command_tree():
            text = "\n".join(line.rstrip() for line in cmd.get_help(ctx).splitlines()).strip("\n")
            sections.append(f"## {' '.join(path)}\n\n```text\n{text}\n```\n")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    header = ("# blazzctl command reference\n\n"
              f"Generated from each command's `--help` by `{REGENERATE}`; do not edit by hand.\n"
              "Exit codes: 0 success, 1 the operation failed, 2 usage error or invalid input, "
              "3 not found, 4 conflict, 69 database unreachable, 78 configuration error.\n")
    return header + "\n" + "\n".join(sections)


def example_yaml() -> str:
    from blazzctl.settings import example_yaml as render

    return render()


GENERATED = {CLI_MD: cli_markdown, EXAMPLE_YAML: example_yaml}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, render in GENERATED.items():
        text = render()
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    for path in stale:
        rel = path.relative_to(REPO)
        print(f"{rel} is out of date; run: {REGENERATE}" if check else f"wrote {rel}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
