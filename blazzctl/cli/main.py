"""The `blazzctl` entry point: the command tree and the one place errors become exit codes."""

from __future__ import annotations

import sys

import typer
from typer.core import TyperGroup

from blazzctl import __version__
from blazzctl.cli import context
from blazzctl.cli.context import ConfigOption
from blazzctl.errors import BlazzError
from blazzctl.cli import fastparams

fastparams.install()  # before any parameter is parsed: keeps Pydantic out of start-up (see the module)


def report(error: BlazzError) -> None:
    """One clear message on stderr: what failed, and what to do."""
    sys.stderr.write(f"error: {error}\n")


class BlazzGroup(TyperGroup):
    """Maps our errors to exit codes; operators never see a traceback for an expected failure."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BlazzError as error:
            report(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            sys.stderr.write("interrupted\n")
            raise typer.Exit(130) from None
        finally:
            context.STATE.close()


app = typer.Typer(
    cls=BlazzGroup, no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    rich_markup_mode=None, context_settings={"help_option_names": ["-h", "--help"]},
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


def _register() -> None:
    from blazzctl.cli import account, audit, config, db, init, workspace

    app.add_typer(config.app, name="config")
    app.add_typer(db.app, name="db")
    app.command("init")(init.init)
    app.add_typer(workspace.app, name="workspace")
    app.add_typer(account.app, name="account")
    from blazzctl.cli import connect

    for name in ("connect", "disconnect", "reconnect", "logout", "qr"):
        account.app.command(name)(getattr(connect, name))
    app.add_typer(audit.app, name="audit")
    from blazzctl.cli import daemon, health

    app.add_typer(daemon.app, name="daemon")
    from blazzctl.cli import key, quickstart

    app.add_typer(key.app, name="key")
    from blazzctl.cli import message

    app.add_typer(message.app, name="message")
    app.command("quickstart")(quickstart.quickstart)
    app.command("health", cls=health.HealthCommand)(health.health)
    from blazzctl.cli import webhook
    app.add_typer(webhook.app, name="webhook")
    from blazzctl.cli import units
    app.add_typer(units.app, name="units")
    from blazzctl.cli import chat, sync
    app.add_typer(sync.app, name="sync")
    app.add_typer(chat.chat_app, name="chat")
    app.add_typer(chat.contact_app, name="contact")
    app.add_typer(chat.group_app, name="group")
    from blazzctl.cli import top
    app.command("top")(top.top)


_register()


def run() -> None:
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
