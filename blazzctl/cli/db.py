"""`blazzctl db`: schema migrations."""

from __future__ import annotations

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, state
from blazzctl.errors import OperationFailed

app = typer.Typer(no_args_is_help=True, help="Database schema: upgrade, current, check.")


@app.command("upgrade")
def upgrade(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Migrate the database schema to the newest version (safe to run twice, and to run again
    after a run that stopped half-way). A MySQL/MariaDB server is checked first for the settings
    blazz needs (exit 78 naming what to change).

    Example: blazzctl db upgrade
    """
    from blazzctl.services import schema

    before, after = schema.upgrade(state(config).db)
    if json:
        output.emit_json({"before": before, "after": after, "changed": before != after})
        return
    output.say(f"schema at {after} (was {before or 'empty'})" if before != after else f"schema already at {after}")


@app.command("current")
def current(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Show the schema version of the database and the newest one this release knows.

    Example: blazzctl db current --json
    """
    from blazzctl.services import schema

    st = schema.state(state(config).db)
    if json:
        output.emit_json({"current": st.current, "head": st.head, "at_head": st.at_head})
    else:
        output.say(f"current {st.current or 'empty'}, head {st.head}")


@app.command("check")
def check(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Exit 0 when the schema is at the newest version, else 1 saying what to run.

    Example: blazzctl db check || blazzctl db upgrade
    """
    from blazzctl.services import schema

    st = schema.state(state(config).db)
    if not st.at_head:
        raise OperationFailed(f"the schema is at {st.current or 'empty'}, this release needs {st.head}",
                              hint="Run `blazzctl db upgrade`.")
    if json:
        output.emit_json({"current": st.current, "head": st.head, "at_head": True})
    else:
        output.say(f"schema at head ({st.head})")
