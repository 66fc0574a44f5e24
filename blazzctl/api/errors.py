"""Errors as RFC 9457 problem details (``application/problem+json``), mapped in one place.

A ``BlazzError`` becomes the status its exit code means (the CLI's exit codes and the API's
statuses say the same thing); every problem has a stable ``type`` a client can branch on.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from blazzctl.api.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from blazzctl.errors import BlazzError

PROBLEM = "application/problem+json"
log = logging.getLogger("blazz.api")

# exit code -> (HTTP status, problem type, title)
BY_EXIT_CODE = {
    1: (409, "operation-failed", "The operation cannot be done in the object's current state"),
    2: (422, "invalid-input", "Invalid input"),
    3: (404, "not-found", "Not found"),
    4: (409, "conflict", "Conflict"),
    69: (503, "database-unavailable", "The database is unavailable"),
    78: (503, "configuration", "The API's configuration is invalid"),
}
BY_STATUS = {
    400: ("bad-request", "Bad request"), 401: ("unauthorized", "Missing or invalid API key"),
    403: ("forbidden", "The API key lacks a scope"), 404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"), 406: ("not-acceptable", "Not acceptable"),
    413: ("too-large", "Request too large"), 415: ("unsupported-media-type", "Unsupported media type"),
    422: ("invalid-input", "Invalid input"), 429: ("rate-limited", "Too many requests"),
    500: ("internal", "Internal error"), 503: ("unavailable", "Unavailable"),
}


def type_uri(slug: str) -> str:
    return f"urn:blazz:problem:{slug}"


class ApiError(Exception):
    """An HTTP-only failure (authentication, scope, rate limit, content negotiation)."""

    def __init__(self, status: int, detail: str, *, slug: str | None = None, headers: dict | None = None,
                 **extra) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers, self.extra = status, detail, headers or {}, extra
        self.slug = slug or BY_STATUS.get(status, ("error", ""))[0]


def problem(request: Request, status: int, slug: str, title: str, detail: str, *, headers: dict | None = None,
            **extra) -> JSONResponse:
    body = {"type": type_uri(slug), "title": title, "status": status, "detail": detail,
            "instance": request.url.path, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into a problem response."""

    @app.exception_handler(BlazzError)
    async def blazz_error(request: Request, error: BlazzError):
        status, slug, title = BY_EXIT_CODE.get(error.exit_code, (500, "internal", "Internal error"))
        return problem(request, status, slug, title, error.message, hint=error.hint)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        title = BY_STATUS.get(error.status, ("", "Error"))[1]
        return problem(request, error.status, error.slug, title, error.detail, headers=error.headers, **error.extra)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        errors = [{"field": ".".join(str(p) for p in e.get("loc", ())), "message": e.get("msg", "")}
                  for e in error.errors()]
        first = errors[0] if errors else {"field": "", "message": "invalid request"}
        return problem(request, 422, "invalid-input", "Invalid input", f"{first['field']}: {first['message']}",
                       errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        slug, title = BY_STATUS.get(error.status_code, ("error", "Error"))
        detail = error.detail if isinstance(error.detail, str) else title
        return problem(request, error.status_code, slug, title, detail, headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def crash(request: Request, error: Exception):
        # Logged with its traceback for the operator; the client gets no internals.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(request, 500, "internal", "Internal error", "an unexpected error; see the blazz-api log")
