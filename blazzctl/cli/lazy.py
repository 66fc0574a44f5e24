"""Command groups that build their commands on first use (the CLI start-up time target).

Typer turns every registered command into a click command before it parses the first
argument: for `blazzctl` that meant importing every command module and inspecting ~45
functions' signatures, to run one of them. A `LazyGroup` holds a builder per command name and
builds only the command that is invoked (or all of them, when help lists them). Commands are
built with Typer's own functions, exactly as Typer would build them.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable
from typing import Any

import typer
from typer.core import TyperGroup


class LazyGroup(TyperGroup):
    """A Typer group whose commands come from ``lazy``: name -> function building the command."""

    lazy: dict[str, Callable[[], Any]] = {}

    def list_commands(self, ctx) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in self.lazy if name not in self.commands)]

    def get_command(self, ctx, cmd_name: str):
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.commands[cmd_name] = self.lazy[cmd_name]()
        return super().get_command(ctx, cmd_name)

    def resolve_command(self, ctx, args):
        """A mistyped command gets suggestions from every command, built or not."""
        try:
            from typer._click.exceptions import UsageError  # Typer >= 0.24 carries its own click
        except ImportError:  # pragma: no cover - older Typer
            from click.exceptions import UsageError
        try:
            return super().resolve_command(ctx, args)
        except UsageError as error:
            from difflib import get_close_matches

            matches = get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if matches:
                error.message = f"{error.message.rstrip('.')}. Did you mean {', '.join(map(repr, matches))}?"
            raise


def group(app: typer.Typer, name: str, *, rich_markup_mode: Any, pretty_exceptions_short: bool) -> LazyGroup:
    """The click group of a Typer ``app`` (registered as ``name``) with its commands built lazily."""
    from typer.main import get_command_name, get_group_from_info
    from typer.models import TyperInfo

    if app.registered_groups:
        raise ValueError(f"{name}: nested groups are not supported by LazyGroup")
    shell = copy.copy(app)  # the group itself (help, options, callback) without its commands
    shell.registered_commands = []
    built = get_group_from_info(TyperInfo(shell, name=name, cls=LazyGroup), rich_markup_mode=rich_markup_mode,
                                pretty_exceptions_short=pretty_exceptions_short, suggest_commands=False)
    built.lazy = {info.name or get_command_name(info.callback.__name__):
                  functools.partial(_command_from_info, info, rich_markup_mode, pretty_exceptions_short)
                  for info in app.registered_commands}
    return built


def command(callback: Callable, name: str, *, cls: type | None = None, rich_markup_mode: Any,
            pretty_exceptions_short: bool):
    """The click command of a function, as ``app.command(name, cls=cls)`` would register it."""
    from typer.models import CommandInfo

    return _command_from_info(CommandInfo(name=name, callback=callback, cls=cls), rich_markup_mode,
                              pretty_exceptions_short)


def _command_from_info(info, rich_markup_mode: Any, pretty_exceptions_short: bool):
    from typer.main import get_command_from_info

    return get_command_from_info(info, pretty_exceptions_short=pretty_exceptions_short,
                                 rich_markup_mode=rich_markup_mode)
