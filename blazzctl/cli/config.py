"""`blazzctl config`: check and show the effective configuration."""

from __future__ import annotations

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, state

app = typer.Typer(no_args_is_help=True, help="Check and show the configuration.")


@app.command("check")
def check(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Validate the configuration; list every problem (file, key, what is wrong) and exit 78.

    Example: blazzctl config check --config /etc/blazz/blazz.yaml
    """
    settings = state(config).settings
    if json:  # a problem is an error: {"error": {"code": "configuration", ...}}, exit 78
        output.emit_json({"valid": True, "source": settings.source, "warnings": list(settings.warnings)})
        return
    output.say(f"configuration OK ({settings.source or 'no file: defaults and environment'})")


@app.command("show")
def show(config: ConfigOption = None, json: JsonOption = False) -> None:
    """Print the effective configuration (file, environment, defaults) with secrets redacted.

    Example: blazzctl config show --json
    """
    import yaml

    from blazzctl.settings import redacted

    settings = state(config).settings
    effective = redacted(settings)
    effective["database"]["effective_url"] = redacted_url(settings.database_url)
    if json:
        output.emit_json({"source": settings.source, "settings": effective})
        return
    output.say(f"# source: {settings.source or 'defaults and environment'}")
    output.say(yaml.safe_dump(effective, sort_keys=False, allow_unicode=True).rstrip())


def redacted_url(url: str) -> str:
    from blazzctl.db import redact_url

    return redact_url(url)
