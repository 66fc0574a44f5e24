"""`blazzctl init`: create the database (and a configuration file when asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, state
from blazzctl.errors import Conflict, OperationFailed


def init(config: ConfigOption = None,
         write_config: Annotated[Optional[Path], typer.Option(
             "--write-config", metavar="PATH", show_default=False,
             help="Also write a documented configuration file to PATH (refuses to overwrite).")] = None) -> None:
    """Create the database and migrate it to the newest schema.

    Example: blazzctl init --write-config ~/.config/blazz/blazz.yaml
    """
    from blazzctl.db import redact_url
    from blazzctl.services import schema
    from blazzctl.settings import example_yaml

    if write_config is not None:
        target = write_config.expanduser()
        if target.exists():
            raise Conflict(f"{target} already exists", hint="Edit it, or choose another path.")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(example_yaml(), encoding="utf-8")
        except OSError as exc:
            raise OperationFailed(f"cannot write {target}: {exc.strerror}") from None
        output.say(f"wrote {target}")
    st = state(config)
    schema.upgrade(st.db)
    output.say(f"database ready at {redact_url(st.settings.database_url)} (schema {schema.head_revision()})")
