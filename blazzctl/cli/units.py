"""`blazzctl units`: the systemd units that run the session daemons."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, state

app = typer.Typer(no_args_is_help=True, help="Render and install the systemd units of the session daemons.")

InstancesOption = Annotated[Optional[int], typer.Option(
    "--instances", "-n", metavar="N", show_default=False,
    help="Session daemons on this host, blazz-session@1..N (default: daemon.instances).")]
PrefixOption = Annotated[Optional[Path], typer.Option(
    "--prefix", metavar="DIR", show_default=False,
    help="Deploy directory: runs DIR/current/venv/bin/blazz-sessiond (default: the blazz-sessiond "
         "beside this Python).")]
UserOption = Annotated[str, typer.Option("--user", metavar="USER", help="The dedicated user the daemons run as.")]


@app.command("render")
def render(instances: InstancesOption = None, prefix: PrefixOption = None, user: UserOption = "blazz",
           dest: Optional[Path] = typer.Option(None, "--dest", metavar="DIR", show_default=False,
                                               help="Write the files into DIR instead of printing them."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Print the units (blazz.target and blazz-session@.service), or write them with --dest.

    Example: blazzctl units render --instances 4 --prefix /opt/blazz
    """
    from blazzctl.services import units

    settings = state(config).settings
    files = units.render(settings, instances=_default(settings, instances), prefix=prefix,
                         user=user)
    written = units.write(files, dest) if dest is not None else None
    if json:
        output.emit_json({"units": files, "dest": str(dest) if dest else None, "written": written})
    elif written is not None:
        _report_files(dest, written)
    else:
        sys.stdout.write("\n".join(f"==> {name} <==\n{text}" for name, text in files.items()))


@app.command("install")
def install(instances: InstancesOption = None, prefix: PrefixOption = None, user: UserOption = "blazz",
            dest: Path = typer.Option(Path("/etc/systemd/system"), "--dest", metavar="DIR",
                                      help="Where systemd reads the units from."),
            api: bool = typer.Option(False, "--api", help="Also enable blazz-api.service (the HTTP API) here."),
            config: ConfigOption = None, json: JsonOption = False) -> None:
    """Write the units, run `systemctl daemon-reload`, enable blazz.target and instances 1..N.

    systemctl is $SYSTEMCTL when set, else the one on PATH. Instances above N that were
    enabled are disabled and stopped. blazz-api.service is written always and enabled with
    --api. Running it again changes only what differs.

    Example: sudo blazzctl units install --instances 4 --prefix /opt/blazz
    """
    from blazzctl.services import units

    settings = state(config).settings
    result = units.install(settings, instances=_default(settings, instances), prefix=prefix,
                           user=user, dest=dest, api=api)
    if json:
        output.emit_json({"dest": str(result.dest), "files": result.files, "commands": result.commands,
                          "enabled": result.enabled, "disabled": result.disabled, "warnings": result.warnings})
        return
    _report_files(result.dest, result.files)
    output.say(f"enabled {', '.join(result.enabled)}")
    if result.disabled:
        output.say(f"disabled and stopped {', '.join(result.disabled)}")
    for warning in result.warnings:
        output.warn(f"warning: {warning}")
    output.say("start them with: systemctl start blazz.target")


@app.command("check")
def check(user: UserOption = "blazz", config: ConfigOption = None, json: JsonOption = False) -> None:
    """Check what `units install` needs, writing nothing: the configuration file the units will
    name (BLAZZ_CONFIG) readable by USER (by its ids, not yours), USER itself, and systemctl.
    Exits 78 when the configuration is the problem, else 1 when any check fails.

    Example: blazzctl units check --user blazz
    """
    from blazzctl.errors import ConfigError, OperationFailed
    from blazzctl.services import units

    settings = state(config).settings
    config_file = units.config_file_of(settings)
    checks = units.check_host(settings, user=user)
    if json:
        output.emit_json({"config_file": config_file, "checks": [
            {"name": c.name, "ok": c.ok, "detail": c.detail, "warnings": list(c.warnings)} for c in checks]})
    else:
        for c in checks:
            detail = c.detail if c.ok or c.name != "config" else f"{config_file}: {c.detail}"
            output.say(f"{'ok' if c.ok else 'FAILED':6}  {c.name:9}  {detail}")
            for warning in c.warnings:
                output.warn(f"warning: {warning}")
    failed = {c.name: c for c in checks if not c.ok}
    if "config" in failed:
        raise ConfigError([(config_file, "-", failed["config"].detail)],
                          hint="`blazzctl units install` refuses this configuration file.")
    if failed:
        raise OperationFailed(f"{len(failed)} check(s) failed: {', '.join(failed)}",
                              hint="`blazzctl units install` needs each of them.")


def _default(settings, given: int | None) -> int:
    # --instances 0 is an explicit (invalid) choice, not "use the default".
    return settings.daemon.instances if given is None else given


def _report_files(dest: Path, statuses: dict[str, str]) -> None:
    for name, status in statuses.items():
        output.say(f"{status:9}  {dest / name}")
