"""`blazzctl key`: the session key that encrypts login archives."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, state

app = typer.Typer(no_args_is_help=True, help="Create the key that encrypts login archives.")


@app.command("generate")
def generate(file: Optional[Path] = typer.Option(None, "--file", metavar="PATH",
                                                 help="Where to write it (default: secrets.session_key_file, "
                                                      "else session.key in the daemon state directory)."),
             config: ConfigOption = None, json: JsonOption = False) -> None:
    """Write a new session key file (mode 0600). Copy the same file to every host sharing the database.

    Example: blazzctl key generate --file /etc/blazz/session.key
    """
    from blazzctl import keys, paths

    settings = state(config).settings
    target = file or (Path(settings.secrets.session_key_file) if settings.secrets.session_key_file
                      else keys.default_path(paths.daemon_state_base(settings.daemon.state_dir)))
    key = keys.generate(target)
    if json:
        output.emit_json({"path": str(key.source), "key_id": key.key_id})
        return
    output.say(f"wrote {key.source} (key id {key.key_id}); set secrets.session_key_file to it on every host")
