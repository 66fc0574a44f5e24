"""A real HTTP webhook receiver on 127.0.0.1 for tests: records every request it gets.

``respond(request) -> (status, headers)`` decides each answer; ``Receiver.HANG`` as the
status keeps the connection open without answering until the receiver stops.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.time)

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    HANG = -1

    def __init__(self, respond: Callable[[Request], tuple[int, dict]] | None = None) -> None:
        self.respond = respond or (lambda request: (200, {}))
        self.requests: list[Request] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = lambda request, address: None  # clients that go away mid-request
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> "Receiver":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def ids(self) -> set[str]:
        with self._lock:
            return {r.headers["webhook-id"] for r in self.requests}

    def wait_for(self, predicate: Callable[["Receiver"], bool], timeout: float = 30) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(0.02)
        return predicate(self)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                if len(body) < length:  # the sender went away mid-body: a real server never hands this on
                    self.close_connection = True
                    return
                request = Request({k.lower(): v for k, v in self.headers.items()}, body)
                with receiver._lock:
                    receiver.requests.append(request)
                    receiver.in_flight += 1
                    receiver.max_in_flight = max(receiver.max_in_flight, receiver.in_flight)
                try:
                    status, headers = receiver.respond(request)
                    if status == Receiver.HANG:
                        receiver._stop.wait(120)
                        self.close_connection = True
                        return
                    payload = b'{"ok":true}' if status < 300 else b"receiver says no"
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                finally:
                    with receiver._lock:
                        receiver.in_flight -= 1

            def log_message(self, *args) -> None:
                pass

        return Handler
