"""`blazzctl init`: create the database (and a configuration file when asked)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, state
from blazzctl.errors import Conflict, OperationFailed


def init(config: ConfigOption = None,
         write_config: Annotated[Optional[Path], typer.Option(
             "--write-config", metavar="PATH", show_default=False,
             help="Also write a documented configuration file to PATH (0600; refuses to overwrite).")] = None,
         create_dirs: Annotated[bool, typer.Option(
             "--create-dirs", help="Create missing directories anywhere; without it, only below "
                                   "~/.local/state/blazz ($XDG_STATE_HOME) and, for --write-config, "
                                   "~/.config/blazz ($XDG_CONFIG_HOME).")] = False,
         json: JsonOption = False) -> None:
    """Create the database and migrate it to the newest schema.

    The SQLite file is created 0600, and directories 0700. A MySQL/MariaDB server is checked
    first for the settings blazz needs (exit 78 naming what to change).

    Example: blazzctl init --write-config ~/.config/blazz/blazz.yaml
    """
    from blazzctl import paths
    from blazzctl.db import redact_url, sqlite_path
    from blazzctl.services import schema
    from blazzctl.settings import example_yaml

    st = state(config)
    settings = st.settings  # a bad configuration stops here, before anything is written
    target = write_config.expanduser() if write_config is not None else None
    if target is not None:
        if target.exists():
            raise Conflict(f"{target} already exists", hint="Edit it, or choose another path.")
        paths.check_may_create(target, allowed=(paths.config_home(), paths.state_home()),
                               create_dirs=create_dirs, what="the configuration file")
    database = sqlite_path(settings.database_url)
    if database is not None and not database.exists():  # refused before the configuration is written
        paths.check_may_create(database, allowed=(paths.state_home(),), create_dirs=create_dirs,
                               what="the SQLite database")
    if target is not None:
        schema.check_server(st.db)  # a server blazz cannot use: exit 78 before the file is written
        try:
            paths.private_dirs(target.parent)
            paths.create_private_file(target, example_yaml())
        except OSError as exc:
            raise OperationFailed(f"cannot write {target}: {exc.strerror}") from None
        if not json:
            output.say(f"wrote {target}")
    schema.upgrade(st.db, create_dirs=create_dirs)
    if json:
        output.emit_json({"database": redact_url(settings.database_url), "schema": schema.head_revision(),
                          "config_written": None if target is None else str(target)})
    else:
        output.say(f"database ready at {redact_url(settings.database_url)} (schema {schema.head_revision()})")
