"""One error hierarchy for the whole product.

Every expected failure is a ``BlazzError`` subclass carrying the exit code the CLI
uses and a message that says what failed and what to do. The CLI maps them in one
place (``blazzctl.cli.main``); services raise them and never print or exit.
"""

from __future__ import annotations


class BlazzError(Exception):
    """Base of every expected failure. ``exit_code`` is what ``blazzctl`` exits with."""

    exit_code = 1
    code = "error"  # under --json: {"error": {"code": code, "message": ...}} (the HTTP API's problem types)

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  {self.hint}" if self.hint else self.message


class OperationFailed(BlazzError):
    """The operation was tried and did not succeed (exit 1)."""

    exit_code = 1
    code = "operation-failed"


class InvalidInput(BlazzError):
    """Usage error or invalid input; nothing was written (exit 2)."""

    exit_code = 2
    code = "invalid-input"


class NotFound(BlazzError):
    """The referenced object does not exist in the given scope (exit 3)."""

    exit_code = 3
    code = "not-found"


class Conflict(BlazzError):
    """Duplicate name, or the object's state forbids the operation (exit 4)."""

    exit_code = 4
    code = "conflict"


class DatabaseUnavailable(BlazzError):
    """The database cannot be reached (exit 69, EX_UNAVAILABLE)."""

    exit_code = 69
    code = "database-unavailable"


class ConfigError(BlazzError):
    """The configuration is invalid (exit 78, EX_CONFIG).

    ``problems`` lists every problem found as ``(source, key, what is wrong)``.
    """

    exit_code = 78
    code = "configuration"

    def __init__(self, problems: list[tuple[str, str, str]], *, hint: str | None = None) -> None:
        self.problems = problems
        lines = [f"{src}: {key}: {what}" for src, key, what in problems]
        super().__init__("invalid configuration:\n  " + "\n  ".join(lines), hint=hint)
