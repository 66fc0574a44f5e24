"""The `blazzctl` entry point: the command tree and the one place errors become exit codes."""

from __future__ import annotations

import functools
import gc
import sys

import typer

from blazzctl import __version__
from blazzctl.cli import context, lazy, output
from blazzctl.cli.context import ConfigOption
from blazzctl.errors import BlazzError
from blazzctl.cli import fastparams

try:
    from typer._click.exceptions import UsageError  # Typer >= 0.24 carries its own click
except ImportError:  # pragma: no cover - older Typer
    from click.exceptions import UsageError

fastparams.install()  # before any parameter is parsed: keeps Pydantic out of start-up (see the module)


def report(error: BlazzError, *, json: bool = False) -> None:
    """One clear message on stderr: what failed, and what to do (under --json: JSON on stdout,
    unless the command printed its own JSON document before failing)."""
    if json and not output.emitted:
        output.emit_error(error.code, error.message, error.hint)
    else:
        sys.stderr.write(f"error: {error}\n")


def wants_json(args) -> bool:
    """Whether a command line asks for JSON: ``--json`` before any ``--`` (seen before parsing, so a
    usage error of the same command line is answered in JSON too)."""
    for arg in args:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


# The command tree, in the order help lists it: name -> (module of blazzctl.cli, attribute[, click
# class]). A Typer app becomes a group of commands, a function one command. A module is imported
# only when its command runs (or when help lists every command), and a group builds only the
# command that runs (`blazzctl/cli/lazy.py`): start-up does not grow with the number of commands.
TREE: dict[str, tuple[str, ...]] = {
    "init": ("init", "init"), "quickstart": ("quickstart", "quickstart"),
    "health": ("health", "health", "HealthCommand"), "top": ("top", "top"),
    "config": ("config", "app"), "db": ("db", "app"), "workspace": ("workspace", "app"),
    "account": ("account", "app"), "audit": ("audit", "app"), "daemon": ("daemon", "app"), "key": ("key", "app"),
    "message": ("message", "app"), "webhook": ("webhook", "app"), "units": ("units", "app"),
    "sync": ("sync", "app"), "chat": ("chat", "chat_app"), "contact": ("chat", "contact_app"),
    "group": ("chat", "group_app"), "apikey": ("apikey", "app"), "api": ("api", "app"), "webjs": ("webjs", "app"),
}


def load_command(name: str):
    """The click command of ``name`` in TREE."""
    import importlib

    module_name, attribute, *command_class = TREE[name]
    module = importlib.import_module(f"blazzctl.cli.{module_name}")
    target = getattr(module, attribute)
    style = {"rich_markup_mode": app.rich_markup_mode, "pretty_exceptions_short": app.pretty_exceptions_short}
    if isinstance(target, typer.Typer):
        return lazy.group(target, name, **style)
    return lazy.command(target, name, cls=getattr(module, command_class[0]) if command_class else None, **style)


class BlazzGroup(lazy.LazyGroup):
    """The root command: its commands come from TREE, and it maps our errors to exit codes
    (operators never see a traceback for an expected failure)."""

    lazy = {name: functools.partial(load_command, name) for name in TREE}
    json_errors = False

    def make_context(self, info_name, args, parent=None, **extra):
        self.json_errors, output.emitted = wants_json(args), False
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except UsageError as error:
            raise self._usage(error) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BlazzError as error:
            report(error, json=self.json_errors)
            raise typer.Exit(error.exit_code) from None
        except UsageError as error:  # a subcommand's (click prints it and exits 2, health 3)
            raise self._usage(error) from None
        except KeyboardInterrupt:
            if self.json_errors and not output.emitted:
                output.emit_error("interrupted", "interrupted")
            else:
                sys.stderr.write("interrupted\n")
            raise typer.Exit(130) from None
        finally:
            context.STATE.close()

    def _usage(self, error: UsageError) -> UsageError:
        """Under --json, click shows the usage error as JSON on stdout (same exit code)."""
        if self.json_errors:
            error.show = lambda file=None: output.emit_error("usage", error.format_message())
        return error


app = typer.Typer(
    cls=BlazzGroup, no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False,
    rich_markup_mode=None, suggest_commands=False, context_settings={"help_option_names": ["-h", "--help"]},
    help="Operate blazz: workspaces, WhatsApp accounts, session daemons and the database.\n\n"
         "Example: blazzctl account list --workspace acme")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"blazzctl {__version__}")
        raise typer.Exit()


@app.callback()
def main(config: ConfigOption = None,
         version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """blazz keeps many WhatsApp Web accounts connected."""
    context.reset(config)


def run() -> None:
    """The console script. The cyclic garbage collector is off for start-up: importing SQLAlchemy
    and Typer makes hundreds of thousands of objects, none of them garbage, and collecting them
    cost ~10% of a short command. Commands that keep running turn it back on
    (``context.keep_running``)."""
    gc.disable()
    try:
        app()
    except SystemExit as done:
        _exit_now(done.code)
    _exit_now(0)


def _exit_now(code) -> None:
    """Exit without the interpreter's teardown, which costs ~0.1 s once SQLAlchemy is loaded.

    Exit handlers still run and the standard streams are flushed; the database was already
    closed by BlazzGroup. With other threads alive, exit normally (their owners join them).
    """
    import atexit
    import os
    import threading

    if isinstance(code, str):
        sys.stderr.write(code + "\n")
        code = 1
    code = 0 if code is None else code
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # reader went away (| head) or stream closed
        code = code or 1
    os._exit(code)
