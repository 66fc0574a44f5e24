"""`blazzctl api`: run the HTTP API in the foreground, check it, print its OpenAPI document."""

from __future__ import annotations

import time
from typing import Optional

import typer

from blazzctl.cli import output
from blazzctl.cli.context import ConfigOption, JsonOption, keep_running, state
from blazzctl.errors import OperationFailed

app = typer.Typer(no_args_is_help=True, help="The HTTP API (blazz-api): run it, check it, print its OpenAPI.")


@app.command("run")
def run(host: Optional[str] = typer.Option(None, "--host", help="Listen address (default: api.host)."),
        port: Optional[int] = typer.Option(None, "--port", min=1, max=65535, help="Port (default: api.port)."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, max=64,
                                              help="Worker processes (default: api.workers)."),
        config: ConfigOption = None,
        json: bool = typer.Option(False, "--json", help="Errors (a refused bind, a bad configuration) as JSON on "
                                                        "stdout; the server logs to stderr.")) -> None:
    """Serve the API in the foreground until Ctrl-C or SIGTERM (systemd runs blazz-api.service instead).

    Example: blazzctl api run --port 8080
    """
    from blazzctl.api import server

    keep_running()
    server.serve(state(config).settings, host=host, port=port, workers=workers)


@app.command("health")
def health(url: Optional[str] = typer.Option(None, "--url", metavar="URL",
                                             help="The API's base URL (default: http://api.host:api.port)."),
           wait: float = typer.Option(0, "--wait", min=0, metavar="S", help="Poll until it answers 200, up to S s."),
           config: ConfigOption = None, json: JsonOption = False) -> None:
    """Ask a running API for GET /health; exit 0 when it answers 200 (deploy.sh's gate).

    Example: blazzctl api health --wait 60
    """
    import json as json_lib
    import urllib.error
    import urllib.request

    base = url or _local_url(state(config).settings)
    deadline = time.monotonic() + wait
    if wait:
        keep_running()
    while True:
        try:
            with urllib.request.urlopen(f"{base.rstrip('/')}/health", timeout=10) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        except (urllib.error.URLError, OSError) as error:
            status, body = None, str(getattr(error, "reason", error)).encode()
        if status == 200 or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    if json and status is not None:
        output.emit_json(json_lib.loads(body or b"null"))
    elif status == 200:
        output.say(f"{base}: OK")
    if status != 200:
        raise OperationFailed(f"the API at {base} {'answered ' + str(status) if status else 'did not answer'}: "
                              f"{body.decode(errors='replace')[:300]}",
                              hint="See `journalctl -u blazz-api` and `blazzctl health`.")


def _local_url(settings) -> str:
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(settings.api.host, settings.api.host)
    return f"http://[{host}]:{settings.api.port}" if ":" in host else f"http://{host}:{settings.api.port}"


@app.command("openapi")
def openapi(json: JsonOption = False) -> None:
    """Print the API's OpenAPI document (docs/openapi.json is this, checked by a test); JSON with or
    without --json.

    Example: blazzctl api openapi > docs/openapi.json
    """
    from blazzctl.api.app import openapi_document

    output.emit_json(openapi_document())
