"""What every command shares: the common options and the lazily loaded settings and database."""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer

ConfigOption = Annotated[Optional[str], typer.Option(
    "--config", "-c", metavar="PATH", show_default=False,
    help="Configuration file (default: $BLAZZ_CONFIG, ./blazz.yaml, ~/.config/blazz/blazz.yaml, /etc/blazz/blazz.yaml).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print only JSON on stdout.")]
RefArgument = Annotated[str, typer.Argument(metavar="REF", help="Account id, uuid, session id or name.")]
WorkspaceOption = Annotated[Optional[str], typer.Option(
    "--workspace", "-w", metavar="WS", envvar="BLAZZ_WORKSPACE", show_default=False,
    help="Workspace id, uuid or name ($BLAZZ_WORKSPACE).")]


class State:
    """Settings and database of one `blazzctl` invocation, loaded on first use."""

    def __init__(self) -> None:
        self.config_path: str | None = None
        self._settings = None
        self._db = None

    def use_config(self, path: str | None) -> "State":
        if path and path != self.config_path:
            self.config_path, self._settings, self._db = path, None, None
        return self

    @property
    def settings(self):
        if self._settings is None:
            from blazzctl.settings import load_settings

            self._settings = load_settings(self.config_path)
            for warning in self._settings.warnings:  # e.g. a misspelt BLAZZ_* variable
                sys.stderr.write(f"warning: {warning}\n")
        return self._settings

    @property
    def db(self):
        if self._db is None:
            from blazzctl.db import Database

            self._db = Database.from_settings(self.settings)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.dispose()


STATE = State()


def keep_running() -> None:
    """For commands that keep running (a loop, a supervisor): the cyclic garbage collector back on
    (`blazzctl` turns it off for its start-up, see ``blazzctl.cli.main.run``)."""
    import gc

    gc.enable()


def state(config: str | None = None) -> State:
    """The invocation's state; ``config`` is a --config given after the subcommand."""
    return STATE.use_config(config)


def reset(config: str | None) -> None:
    global STATE
    STATE.close()
    STATE = State()
    STATE.use_config(config)
