"""HTTP for the fake: the page (static files), the page's API (/api/*) and the control API (/control/*)."""

from __future__ import annotations

import json
import sys
import mimetypes
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from tests.fakes.wa_web.control import FakeWorld
from tests.fakes.wa_web.world import WA_VERSION, ControlError

STATIC = Path(__file__).parent / "static"
PAGES = {"/": "index.html", "/phone": "phone.html"}


def _control_routes(world: FakeWorld) -> dict:
    """(method, path) → callable(body: dict, query: dict) → JSON-able result."""
    b = lambda body, key, default=None: body.get(key, default)  # noqa: E731
    return {
        ("POST", "/control/link"): lambda body, q: world.link(b(body, "qr"), b(body, "phone"), b(body, "code")),
        ("POST", "/control/message"): lambda body, q: world.deliver(
            _need(body, "phone"), _need(body, "from"), body.get("body", ""),
            **{k: v for k, v in body.items() if k not in ("phone", "from", "body")}),
        ("GET", "/control/seen"): lambda body, q: {"phone": q.get("phone"), "chats": world.seen(_need(q, "phone"))},
        ("GET", "/control/sent"): lambda body, q: {"phone": q.get("phone"), "messages": world.sent(_need(q, "phone"))},
        ("POST", "/control/ack"): lambda body, q: world.ack(_need(body, "phone"), str(_need(body, "id")),
                                                            _int(_need(body, "ack"), "ack")),
        ("POST", "/control/logout"): lambda body, q: world.logout(_need(body, "phone")),
        ("POST", "/control/conflict"): lambda body, q: world.conflict(_need(body, "phone")),
        ("POST", "/control/not-on-whatsapp"): lambda body, q: world.set_not_on_whatsapp(
            _need(body, "phone"), bool(body.get("value", True))),
        ("POST", "/control/seed"): lambda body, q: world.seed(
            _need(body, "phone"), **{k: _num(v, k) for k, v in body.items() if k != "phone"}),
        ("POST", "/control/slow-boot"): lambda body, q: world.set_slow_boot(_num(body.get("seconds", 0), "seconds")),
        ("POST", "/control/reload"): lambda body, q: world.reload(body.get("phone")),
        ("POST", "/control/socket-state"): lambda body, q: world.socket_state(_need(body, "phone"),
                                                                              str(_need(body, "state"))),
        ("POST", "/control/ref-interval"): lambda body, q: world.set_ref_interval(_num(_need(body, "seconds"), "seconds")),
        ("GET", "/control/state"): lambda body, q: world.snapshot(),
        ("POST", "/control/decrypt"): lambda body, q: world.decrypt(_need(body, "phone"), str(_need(body, "id"))),
        ("POST", "/control/edit"): lambda body, q: world.edit(_need(body, "phone"), str(_need(body, "id")),
                                                              str(body.get("body", ""))),
        ("POST", "/control/revoke"): lambda body, q: world.revoke(_need(body, "phone"), str(_need(body, "id"))),
        ("POST", "/control/reveal-phone"): lambda body, q: world.reveal_phone(_need(body, "phone"),
                                                                              _need(body, "sender")),
        ("POST", "/control/canonical"): lambda body, q: world.set_canonical(_need(body, "typed"),
                                                                            body.get("canonical")),
        ("POST", "/control/behaviour"): lambda body, q: world.behave(**body),
        ("POST", "/control/stall-sync"): lambda body, q: world.stall_sync(_need(body, "phone"),
                                                                          bool(body.get("value", True))),
        ("POST", "/control/refuse"): lambda body, q: world.refuse(str(_need(body, "to")), bool(body.get("value", True))),
        ("POST", "/control/drop-module"): lambda body, q: world.drop_module(str(_need(body, "module")),
                                                                            bool(body.get("value", True))),
        ("POST", "/control/release"): lambda body, q: world.release(
            str(_need(body, "version")), drop=list(body.get("drop") or []), deprecated=bool(body.get("deprecated")),
            live=bool(body.get("live", True))),
    }


def _page_routes(world: FakeWorld) -> dict:
    return {
        ("POST", "/api/boot"): lambda body, q: world.boot(body.get("keys") or {}, body.get("token"),
                                                          body.get("version")),
        ("GET", "/api/poll"): lambda body, q: {"events": world.poll(
            _need(q, "conn"), _int(q.get("after", 0), "after"), _int(q.get("device_after", 0), "device_after"),
            float(q.get("wait", 20)))},
        ("GET", "/api/sync"): lambda body, q: world.sync(_need(q, "conn")),
        ("POST", "/api/takeover"): lambda body, q: world.takeover(_need(body, "conn")),
        ("POST", "/api/logout"): lambda body, q: world.page_logout(_need(body, "conn")),
        ("POST", "/api/bye"): lambda body, q: world.page_closed(_need(body, "conn")),
        ("POST", "/api/refresh-qr"): lambda body, q: world.refresh_qr(_need(body, "conn")),
        ("POST", "/api/pair-code"): lambda body, q: world.pair_code(_need(body, "conn"), _need(body, "phone")),
        ("GET", "/api/exists"): lambda body, q: world.exists(_need(q, "number")),
        ("POST", "/api/send"): lambda body, q: world.page_send(_need(body, "conn"), _need(body, "msg")),
        ("POST", "/api/seen"): lambda body, q: world.page_seen(_need(body, "conn"), _need(body, "chat")),
    }


def _need(source: dict, key: str):
    value = source.get(key)
    if value is None or value == "":
        raise ControlError(400, "missing_field", f"'{key}' is required")
    return value


def _int(value, key: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ControlError(400, "invalid_field", f"'{key}' must be an integer") from None


def _num(value, key: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ControlError(400, "invalid_field", f"'{key}' must be a number") from None
    return int(number) if number.is_integer() and key != "heap_mb" else number


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "FakeHTTPServer"

    def log_message(self, format, *args):  # noqa: A002 - quiet by default
        if self.server.verbose:
            super().log_message(format, *args)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        route = self.server.routes.get((method, url.path))
        try:
            if route is not None:
                return self._json(200, route(self._body(), query))
            if method == "POST" and url.path == "/api/upload":
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                return self._json(200, self.server.world.upload(data, self.headers.get("Content-Type", "")))
            if method == "GET":
                return self._static(url.path)
            raise ControlError(404, "not_found", f"no route {method} {url.path}")
        except ControlError as exc:
            self._json(exc.status, exc.as_json())
        except TypeError as exc:  # unknown or missing keyword in a control body
            self._json(400, {"error": "invalid_request", "message": str(exc)})

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        if not length:
            return {}
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError:
            raise ControlError(400, "invalid_json", "the request body is not JSON") from None
        if not isinstance(body, dict):
            raise ControlError(400, "invalid_json", "the request body must be a JSON object")
        return body

    def _static(self, path: str) -> None:
        world = self.server.world
        if path.startswith("/media/"):
            item = world.uploads.get(path.rsplit("/", 1)[-1])
            if item is None:
                raise ControlError(404, "not_found", "no such media")
            return self._send(200, item["data"], item["mimetype"] or "application/octet-stream")
        if path == "/favicon.ico":
            return self._send(204, b"", "image/x-icon")
        release = world.releases.get(world.live)
        if path.startswith("/static/v/"):  # a build's own scripts: /static/v/<version>/<file>
            version, _, rest = path[len("/static/v/"):].partition("/")
            release = world.releases.get(version)
            if release is None:
                raise ControlError(404, "not_found", f"no WhatsApp Web build {version}")
            path = "/static/" + rest
        name = PAGES.get(path) or (path[len("/static/"):] if path.startswith("/static/") else None)
        file = (STATIC / name).resolve() if name else None
        if file is None or STATIC.resolve() not in file.parents or not file.is_file():
            raise ControlError(404, "not_found", f"no page {path}")
        if name == "app.js" and world.slow_boot:
            time.sleep(world.slow_boot)  # the page's bundle is slow: window.Debug.VERSION appears late
        ctype = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        data = file.read_bytes()
        if name == "index.html":  # the app document points at the live build's scripts
            data = data.replace(b"{{version}}", world.live.encode())
        elif name == "wa-modules.js":  # this build lacks the dropped modules
            dropped = sorted(world.dropped_modules | release.dropped)
            data = f"window.__waDropped = {json.dumps(dropped)};\n".encode() + data
        elif name == "app.js":
            data = data.replace(f'VERSION: "{WA_VERSION}"'.encode(), f'VERSION: "{release.version}"'.encode())
        self._send(200, data, ctype + ("; charset=utf-8" if ctype.startswith("text/") or
                                                    ctype.endswith("javascript") else ""))

    def _json(self, status: int, payload) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)


class FakeHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, world: FakeWorld, verbose: bool = False):
        super().__init__(address, Handler)
        self.world, self.verbose = world, verbose
        self.routes = {**_control_routes(world), **_page_routes(world)}

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionError):  # a closed page abandoned its long-poll
            return
        super().handle_error(request, client_address)


def start_ticker(world: FakeWorld, stop: threading.Event, period: float = 0.1) -> threading.Thread:
    """Rotate QR refs in the background until ``stop`` is set."""
    def run():
        while not stop.wait(period):
            world.tick()
    thread = threading.Thread(target=run, name="fake-wa-ticker", daemon=True)
    thread.start()
    return thread
