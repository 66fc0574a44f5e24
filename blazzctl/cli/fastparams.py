"""Keep Pydantic out of `blazzctl`'s start-up (the CLI start-up time target).

Typer >= 0.20 coerces every parameter through a Pydantic ``TypeAdapter``, built on first
use; importing Pydantic and building the adapters costs ~50-100 ms per invocation, more than
the rest of the command parsing together. Nearly all our parameters are plain ``str``,
``bool``, ``int`` or ``float``: for those, values already of that type pass as they are, and an
``int``/``float`` given on the command line (text) is parsed and checked against the option's
``min``/``max`` here, with the same messages as Typer's. Anything else (every other type, a
``clamp``ed range, a value of an unexpected type) goes to Typer's own coercion, unchanged.
When Typer's internals differ from what this expects (older or newer Typer), ``install()``
does nothing and Typer behaves as shipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_installed = False


def install() -> None:
    global _installed
    if _installed:
        return
    try:
        import typer.core
        from typer import _coercion
    except ImportError:
        return
    original = getattr(typer.core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if original is None or base is None:
        return

    @dataclass(frozen=True)
    class PassThroughWhenTyped(base):  # type: ignore[misc, valid-type]
        """A str/bool/int/float parameter: values already of that type need no Pydantic."""

        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, self.annotation):
                return value
            if (self.annotation in (int, float) and type(value) in (str, int)
                    and not getattr(self.parameter_info, "clamp", False)):
                return _number(self.annotation, value, self.parameter_info, param, ctx)
            return original(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def build_runtime_param(descriptor: Any) -> Any:
        info = getattr(descriptor, "parameter_info", None)
        if (getattr(descriptor, "annotation", None) in (str, bool, int, float) and info is not None
                and getattr(descriptor, "file_annotation", None) is None and getattr(info, "parser", None) is None):
            return PassThroughWhenTyped(parameter_info=info, annotation=descriptor.annotation, descriptor=descriptor)
        return original(descriptor)

    typer.core.build_runtime_param = build_runtime_param
    _installed = True


def _number(kind: type, value: str | int, info: Any, param: Any, ctx: Any) -> int | float:
    """``value`` (command-line text, or an int default of a float option) as ``kind``, within the
    option's ``min``/``max``; a usage error (exit 2) otherwise, worded as Typer words it."""
    from typer import BadParameter

    try:
        number = kind(value.strip() if isinstance(value, str) else value)
    except ValueError:
        what = "a valid integer, unable to parse string as an integer" if kind is int else \
            "a valid number, unable to parse string as a number"
        raise BadParameter(f"Input should be {what}", ctx=ctx, param=param) from None
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    if low is not None and number < low:
        raise BadParameter(f"Input should be greater than or equal to {low}", ctx=ctx, param=param)
    if high is not None and number > high:
        raise BadParameter(f"Input should be less than or equal to {high}", ctx=ctx, param=param)
    return number
