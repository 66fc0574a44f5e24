"""The FastAPI application: settings, database, API keys, error handlers, routers and /health."""

from __future__ import annotations

import contextlib
import os

from fastapi import FastAPI, Request
from blazzctl.api.responses import JSONResponse

from blazzctl import __version__
from blazzctl.api import errors
from blazzctl.api.auth import Keys

DESCRIPTION = """The HTTP API of blazz: the same rows, service functions and JSON shapes as `blazzctl --json`.

Authenticate with `Authorization: Bearer blz_…` (`blazzctl apikey create`). Errors are RFC 9457
problem details. See docs/api.md."""


# A pooled connection unused this many seconds is pinged before a request uses it (db._ping_if_idle).
PING_IDLE = 2.0


def create_app(settings=None) -> FastAPI:
    """The application for ``settings`` (default: loaded as blazzctl loads them, $BLAZZ_CONFIG first)."""
    from blazzctl.db import Database
    from blazzctl.settings import CONFIG_ENV, load_settings

    settings = settings or load_settings(os.environ.get(CONFIG_ENV))
    # Reads (every GET) use the autocommit pool. Each pool keeps a connection per request thread:
    # fewer would open and close overflow connections on every burst.
    pool = max(settings.database.pool_size, settings.api.threads)
    db = Database(settings.database_url, connect_timeout=settings.database.connect_timeout, pool_size=pool,
                  read_pool_size=pool, ping_idle=PING_IDLE)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        import anyio
        import anyio.to_thread

        # Sync routes run in worker threads, api.threads of them at a time (docs/architecture.md).
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api.threads
        # Calls that wait on something else than the database (a webhook test waits for the
        # endpoint) run on threads of their own.
        _app.state.slow_calls = anyio.CapacityLimiter(4)
        yield
        db.dispose()

    app = FastAPI(title="blazz API", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  default_response_class=JSONResponse)
    app.state.settings, app.state.db = settings, db
    app.state.keys = Keys(db, rate_limit_per_minute=settings.api.rate_limit_per_minute)
    errors.install(app)
    from blazzctl.api.routes import accounts, chats, messages, sync, webhooks

    for module in (accounts, messages, chats, sync, webhooks):
        app.include_router(module.router)
    app.add_api_route("/health", health, methods=["GET"], tags=["health"],
                      summary="The checks of `blazzctl health --json`: 200 when OK or WARNING, else 503 (no key)")
    _document_read_bodies(app)
    return app


def _document_read_bodies(app: FastAPI) -> None:
    """Bodies a route reads itself (a message send: JSON or multipart) are named in the document
    by reference; their schemas are added here, as FastAPI adds those of declared bodies."""
    from blazzctl.api.schemas import MessageSend

    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            document = generate()
            schema = MessageSend.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            schemas.update(schema.pop("$defs", {}))
            schemas["MessageSend"] = schema
        return app.openapi_schema

    app.openapi = openapi


def health(request: Request) -> JSONResponse:
    from blazzctl.services import health as checks

    report = checks.evaluate(lambda: request.app.state.settings)
    return JSONResponse(report.as_dict(), status_code=200 if report.state <= checks.State.WARNING else 503)


def from_env() -> FastAPI:
    """uvicorn's factory in each worker process: the configuration comes from $BLAZZ_CONFIG."""
    return create_app()


def openapi_document() -> dict:
    """The OpenAPI document (docs/openapi.json), which does not depend on the configuration."""
    from blazzctl.settings import Settings

    app = create_app(Settings())
    try:
        return app.openapi()
    finally:
        app.state.db.dispose()
