"""A local fake of WhatsApp Web (servers + web client page) for tests and offline trials.

    with FakeWhatsAppWeb(ref_interval=2) as fake:
        page.goto(fake.url)            # the driver reads window.require(...) as on web.whatsapp.com
        fake.link(qr_string, "+4915550001")
        fake.deliver("+4915550001", "+4915550002", "hi")

The in-page contract is ``SURFACE.md`` next to this file.
"""

from __future__ import annotations

import threading

from tests.fakes.wa_web.control import FakeWorld
from tests.fakes.wa_web.server import FakeHTTPServer, start_ticker
from tests.fakes.wa_web.world import WA_VERSION, ControlError, normalize_phone

__all__ = ["WA_VERSION", "ControlError", "FakeWhatsAppWeb", "normalize_phone"]


class FakeWhatsAppWeb:
    """The fake served on 127.0.0.1; python methods mirror the JSON control API."""

    def __init__(self, port: int = 0, ref_interval: float = 20.0, host: str = "127.0.0.1",
                 qr_idle_after: int = 0, verbose: bool = False, behaviours: dict | None = None):
        self.world = FakeWorld(ref_interval=ref_interval, qr_idle_after=qr_idle_after)
        if behaviours:
            self.world.behave(**behaviours)
        self._address, self._verbose = (host, port), verbose
        self._httpd: FakeHTTPServer | None = None
        self._stop = threading.Event()

    def start(self) -> "FakeWhatsAppWeb":
        self._httpd = FakeHTTPServer(self._address, self.world, verbose=self._verbose)
        threading.Thread(target=self._httpd.serve_forever, name="fake-wa-http", daemon=True).start()
        start_ticker(self.world, self._stop)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeWhatsAppWeb":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._httpd is not None, "start() the fake first"
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._address[0]}:{self.port}/"

    # ----- control API mirrors (each raises ControlError like the HTTP API answers 4xx) -----------
    def link(self, qr: str | None = None, phone: str | None = None, *, code: str | None = None) -> dict:
        return self.world.link(qr, phone, code)

    def deliver(self, phone: str, from_: str, body: str = "", **kw) -> dict:
        return self.world.deliver(phone, from_, body, **kw)

    def seen(self, phone: str) -> list[str]:
        return self.world.seen(phone)

    def sent(self, phone: str) -> list[dict]:
        return self.world.sent(phone)

    def ack(self, phone: str, id: str, ack: int) -> dict:
        return self.world.ack(phone, id, ack)

    def logout(self, phone: str) -> dict:
        return self.world.logout(phone)

    def conflict(self, phone: str) -> dict:
        return self.world.conflict(phone)

    def not_on_whatsapp(self, phone: str, value: bool = True) -> dict:
        return self.world.set_not_on_whatsapp(phone, value)

    def seed(self, phone: str, **counts) -> dict:
        return self.world.seed(phone, **counts)

    def slow_boot(self, seconds: float) -> dict:
        return self.world.set_slow_boot(seconds)

    def reload(self, phone: str | None = None) -> dict:
        return self.world.reload(phone)

    def socket_state(self, phone: str, state: str) -> dict:
        return self.world.socket_state(phone, state)

    def set_ref_interval(self, seconds: float) -> dict:
        return self.world.set_ref_interval(seconds)

    def waiting_qrs(self) -> list[str]:
        return self.world.waiting_qrs()

    def decrypt(self, phone: str, id: str) -> dict:
        return self.world.decrypt(phone, id)

    def edit(self, phone: str, id: str, body: str) -> dict:
        return self.world.edit(phone, id, body)

    def revoke(self, phone: str, id: str) -> dict:
        return self.world.revoke(phone, id)

    def reveal_phone(self, phone: str, sender: str) -> dict:
        return self.world.reveal_phone(phone, sender)

    def set_canonical(self, typed: str, canonical: str | None) -> dict:
        return self.world.set_canonical(typed, canonical)

    def stall_sync(self, phone: str, value: bool = True) -> dict:
        return self.world.stall_sync(phone, value)

    def refuse(self, to: str, value: bool = True) -> dict:
        return self.world.refuse(to, value)

    def drop_module(self, module: str, value: bool = True) -> dict:
        return self.world.drop_module(module, value)

    def release(self, version: str, *, drop=(), deprecated: bool = False, live: bool = True) -> dict:
        """Ship WhatsApp Web build ``version`` (see ``FakeWorld.release``)."""
        return self.world.release(version, drop=drop, deprecated=deprecated, live=live)

    def behave(self, **changes) -> dict:
        """Turn WhatsApp Web behaviours (``DEFAULT_BEHAVIOURS`` in world.py) on or off."""
        return self.world.behave(**changes)

    def state(self) -> dict:
        return self.world.snapshot()
