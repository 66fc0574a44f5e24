"""Keep Pydantic out of `blazzctl`'s start-up (the CLI start-up time target).

Typer >= 0.20 coerces every parameter through a Pydantic ``TypeAdapter``, built on first
use; importing Pydantic and building the adapters costs ~50-100 ms per invocation, more than
the rest of the command parsing together. Nearly all our parameters are plain ``str`` or
``bool`` (or ``int``, which click already converted and range-checked), whose values arrive from the parser already of that type: for those, this returns
the value as is, and hands anything else (and every other type: int ranges, paths, enums)
to Typer's own coercion, unchanged. When Typer's internals differ from what this expects
(older or newer Typer), ``install()`` does nothing and Typer behaves as shipped.
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
        """A str/bool parameter: values already of that type need no Pydantic."""

        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, self.annotation):
                return value
            return original(self.descriptor)._coerce_value(value, param=param, ctx=ctx)

    def build_runtime_param(descriptor: Any) -> Any:
        info = getattr(descriptor, "parameter_info", None)
        if (getattr(descriptor, "annotation", None) in (str, bool, int) and info is not None
                and getattr(descriptor, "file_annotation", None) is None and getattr(info, "parser", None) is None):
            return PassThroughWhenTyped(parameter_info=info, annotation=descriptor.annotation, descriptor=descriptor)
        return original(descriptor)

    typer.core.build_runtime_param = build_runtime_param
    _installed = True
