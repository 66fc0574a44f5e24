"""The fake WhatsApp "servers": accounts (phones), linked devices, page connections, QR refs.

Everything here is guarded by one condition variable; page long-polls wait on it. Control
operations raise :class:`ControlError` with an HTTP status and a machine-readable code.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import re
import secrets
import threading
import time
from dataclasses import dataclass, field

from tests.fakes.wa_web import seed

WA_VERSION = "2.3000.1017054665"
PAIR_ALPHABET = "ABCDEFGHJKLMNPQRSTVWXYZ123456789"
POLL_WAIT = 20.0
CONN_GONE_AFTER = 30.0

# How the fake behaves like WhatsApp Web by default (each can be turned off for focused tests:
# ``FakeWhatsAppWeb(behaviours={...})``, ``fake.behave(**kw)``, ``POST /control/behaviour``).
DEFAULT_BEHAVIOURS = {
    # seconds a new incoming message stays type `ciphertext` (no body) before `change:type`; 0: never
    "decrypt_delay": 0.3,
    # senders whose number ends in an odd digit write from a `<lid>@lid` chat, their phone unknown
    # to the page; groups whose id ends in an odd digit are in LID addressing mode
    "lid_senders": True,
    # the send path refuses a `@lid` chat or a LID-addressing group without the own LID as `from`
    "lid_sender_required": True,
    # Brazil's 9th digit and Mexico's 1: queryWidExists answers another (canonical) id, and
    # findOrCreateLatestChat of a `@c.us` id whose LID the page does not know throws `No LID for user`
    "canonical_ids": True,
    # our own sends appear in `Msg` as WhatsApp Web adds them (`add` with isNewMsg, then ack and
    # the server's timestamp); off: added silently
    "echo": True,
    # off by default (not seen in real WhatsApp Web, but possible): once linked, the page makes an
    # AES key inside a Web Worker (where a driver's init scripts do not run: non-extractable) and
    # keeps it in IndexedDB `wawc_worker`, so a login snapshot cannot carry it
    "worker_key": False,
}


def is_odd(user: str) -> bool:
    return user[-1:] in ("1", "3", "5", "7", "9")


def canonical_of(user: str) -> str:
    """The id WhatsApp registered a typed number under: BR 55+DDD+9+8 digits → without the 9,
    MX 52+10 digits → 521+10 digits; every other number is itself."""
    if m := re.fullmatch(r"55(\d\d)9(\d{8})", user):
        return f"55{m[1]}{m[2]}"
    if m := re.fullmatch(r"52(\d{10})", user):
        return f"521{m[1]}"
    return user


class ControlError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def as_json(self) -> dict:
        return {"error": self.code, "message": self.message}


def normalize_phone(value: object, what: str = "phone") -> str:
    """'+49 155-5000' → '491555000'; E.164 digits with or without '+'."""
    text = re.sub(r"[\s\-().]", "", str(value or ""))
    text = text.split("@", 1)[0]
    if text.startswith("+"):
        text = text[1:]
    if not re.fullmatch(r"[1-9]\d{5,14}", text):
        raise ControlError(400, "invalid_phone", f"{what} must be an E.164 number like +4915550001, got {value!r}")
    return text


def new_ref() -> str:
    return "2@" + base64.b64encode(secrets.token_bytes(54)).decode()


@dataclass
class Device:
    """A linked companion device of an account (one browser profile's login)."""

    token: str
    phone: str
    active_conn: str | None = None
    events: list = field(default_factory=list)   # (seq, event) not yet acknowledged by the page
    acked: int = 0
    logged_out: bool = False
    linked_at: float = field(default_factory=time.time)


@dataclass
class Conn:
    """One boot of the page (a tab); unpaired until linked."""

    id: str
    keys: dict
    refs: list = field(default_factory=list)     # [(ref, created_at)], newest last; the last two scan
    state: str = "UNPAIRED"
    token: str | None = None
    events: list = field(default_factory=list)
    pair_code: str | None = None
    pair_phone: str | None = None
    last_seen: float = field(default_factory=time.time)
    polling: int = 0
    closed_at: float | None = None  # the page unloaded: its connection closed, as a WebSocket's would

    def alive(self, now: float) -> bool:
        if self.closed_at is not None:
            return False
        return self.polling > 0 or now - self.last_seen < CONN_GONE_AFTER


@dataclass
class Release:
    """A WhatsApp Web build the fake can serve: its document loads ``/static/v/<version>/…``."""

    version: str
    dropped: frozenset = frozenset()  # modules this build lacks (an incompatible release)
    deprecated: bool = False  # the server refuses pages of this build: DEPRECATED_VERSION after load


@dataclass
class Account:
    phone: str
    pushname: str
    data: dict = field(default_factory=lambda: {"contacts": [], "chats": [], "groups": [], "messages": []})
    sent: list = field(default_factory=list)
    seen: list = field(default_factory=list)  # chat ids the account sent read receipts for (sendSeen)
    heap_mb: float = 0.0


class World:
    def __init__(self, ref_interval: float = 20.0, qr_idle_after: int = 0):
        self.cond = threading.Condition()
        self.ref_interval = ref_interval
        self.qr_idle_after = qr_idle_after
        self.slow_boot = 0.0
        self.accounts: dict[str, Account] = {}
        self.devices: dict[str, Device] = {}
        self.conns: dict[str, Conn] = {}
        self.not_on_whatsapp: set[str] = set()
        self.uploads: dict[str, dict] = {}
        self.behaviours = dict(DEFAULT_BEHAVIOURS)
        self.canonical: dict[str, str] = {}  # typed number → canonical id (explicit, any country)
        self.refused: set[str] = set()  # chat ids whose sends the server refuses (ack -1)
        self.dropped_modules: set[str] = set()  # modules a "newer WhatsApp Web build" no longer has
        self.stalled: set[str] = set()  # accounts whose pages never finish loading (no hasSynced)
        self.releases: dict[str, Release] = {WA_VERSION: Release(WA_VERSION)}  # builds the CDN still serves
        self.live = WA_VERSION  # the build the app document (``/``) points at
        self._seq = itertools.count(1)

    # ----- helpers -------------------------------------------------------------------------
    def _account(self, phone: str, create: bool = False) -> Account:
        acc = self.accounts.get(phone)
        if acc is None:
            if not create:
                raise ControlError(404, "unknown_account", f"no linked account {phone}; link a QR first")
            acc = self.accounts[phone] = Account(phone=phone, pushname=f"User {phone[-4:]}")
        return acc

    def _push(self, queue: list, event: dict) -> None:
        queue.append((next(self._seq), event))
        self.cond.notify_all()

    def _devices_of(self, phone: str) -> list[Device]:
        return [d for d in self.devices.values() if d.phone == phone and not d.logged_out]

    def _push_account(self, phone: str, event: dict) -> int:
        devices = self._devices_of(phone)
        for d in devices:
            self._push(d.events, event)
        return len(devices)

    def _conn(self, conn_id: str) -> Conn:
        conn = self.conns.get(conn_id)
        if conn is None:
            raise ControlError(404, "unknown_conn", "this page connection is unknown; reload the page")
        return conn

    # ----- page API ----------------------------------------------------------------------------
    def boot(self, keys: dict, token: str | None, version: str | None = None) -> dict:
        with self.cond:
            release = self.releases.get(version or WA_VERSION)
            if release is not None and release.deprecated:  # the server no longer accepts this build
                return {"conn": None, "state": "DEPRECATED_VERSION", "version": release.version}
            conn = Conn(id=secrets.token_hex(8), keys=dict(keys or {}))
            self.conns[conn.id] = conn
            dev = self.devices.get(token or "")
            if dev is not None and not dev.logged_out:
                conn.token, conn.state = dev.token, "CONNECTED"
                previous = dev.active_conn
                dev.active_conn = conn.id
                if previous in self.conns:
                    self._push(self.conns[previous].events, {"type": "conflict"})
                return {"conn": conn.id, "state": "CONNECTED", "after": 0, "device_after": dev.acked,
                        "version": version or WA_VERSION}
            conn.refs.append((new_ref(), time.time()))
            return {"conn": conn.id, "state": "UNPAIRED", "ref": conn.refs[-1][0], "after": 0, "device_after": 0,
                    "loggedOut": bool(token), "version": version or WA_VERSION}

    def poll(self, conn_id: str, after: int, device_after: int, wait: float = POLL_WAIT) -> list[dict]:
        """Events after the page's two cursors: this connection's (``after``) and its device's."""
        deadline = time.time() + wait
        with self.cond:
            conn = self._conn(conn_id)
            conn.polling += 1
            try:
                while True:
                    conn.last_seen = time.time()
                    out = self._collect(conn, after, device_after)
                    remaining = deadline - time.time()
                    if out or remaining <= 0:
                        return out
                    self.cond.wait(min(remaining, 1.0))
            finally:
                conn.polling -= 1
                conn.last_seen = time.time()

    def _collect(self, conn: Conn, after: int, device_after: int) -> list[dict]:
        conn.events = [(s, e) for s, e in conn.events if s > after]
        events = [(s, "conn", e) for s, e in conn.events]
        dev = self.devices.get(conn.token or "")
        if dev is not None and dev.active_conn == conn.id:
            dev.acked = max(dev.acked, device_after)
            dev.events = [(s, e) for s, e in dev.events if s > dev.acked]
            events += [(s, "device", e) for s, e in dev.events]
        events.sort(key=lambda item: item[0])
        return [{"seq": s, "stream": stream, **e} for s, stream, e in events]

    def sync(self, conn_id: str) -> dict:
        with self.cond:
            conn = self._conn(conn_id)
            dev = self.devices.get(conn.token or "")
            if dev is None or dev.logged_out:
                raise ControlError(401, "logged_out", "this device is not linked")
            acc = self._account(dev.phone)
            pending = {e["message"]["id"]["id"] for _, e in dev.events if e.get("type") == "message"}
            data = acc.data
            return {"me": acc.phone, "lid": seed.lid_for(acc.phone), "pushname": acc.pushname,
                    "platform": "android", "contacts": data["contacts"], "chats": data["chats"],
                    "groups": data["groups"], "heap_mb": acc.heap_mb, "behaviours": dict(self.behaviours),
                    "stall": acc.phone in self.stalled,
                    "messages": [m for m in data["messages"] if m["id"]["id"] not in pending]}

    def takeover(self, conn_id: str) -> dict:
        with self.cond:
            conn = self._conn(conn_id)
            dev = self.devices.get(conn.token or "")
            if dev is None or dev.logged_out:
                raise ControlError(401, "logged_out", "this device is not linked")
            previous, dev.active_conn = dev.active_conn, conn.id
            if previous in self.conns and previous != conn.id:
                self._push(self.conns[previous].events, {"type": "conflict"})
            conn.state = "CONNECTED"
            return {"state": "CONNECTED", "device_after": dev.acked}

    def page_closed(self, conn_id: str) -> dict:
        """The page went away (navigated, closed): its connection ends at once, as WhatsApp's
        WebSocket does, rather than timing out."""
        with self.cond:
            conn = self.conns.get(conn_id)
            if conn is not None and conn.closed_at is None:
                conn.closed_at = time.time()
                self.cond.notify_all()
            return {"ok": conn is not None}

    def page_logout(self, conn_id: str) -> dict:
        with self.cond:
            conn = self._conn(conn_id)
            dev = self.devices.get(conn.token or "")
            if dev is not None:
                dev.logged_out = True
            conn.token, conn.state = None, "UNPAIRED"
            return {"ok": True}

    def refresh_qr(self, conn_id: str) -> dict:
        with self.cond:
            conn = self._conn(conn_id)
            if conn.token:
                raise ControlError(409, "already_linked", "this page is linked")
            conn.refs = [(new_ref(), time.time())]
            conn.state = "UNPAIRED"
            self._push(conn.events, {"type": "ref", "ref": conn.refs[-1][0], "state": "UNPAIRED"})
            return {"ref": conn.refs[-1][0]}

    def pair_code(self, conn_id: str, phone: str) -> dict:
        phone = normalize_phone(phone)
        with self.cond:
            conn = self._conn(conn_id)
            conn.pair_code = "".join(secrets.choice(PAIR_ALPHABET) for _ in range(8))
            conn.pair_phone = phone
            return {"code": conn.pair_code}

    def canonical_user(self, user: str) -> str:
        if user in self.canonical:
            return self.canonical[user]
        return canonical_of(user) if self.behaviours["canonical_ids"] else user

    def exists(self, number: str) -> dict:
        user = normalize_phone(number, "number")
        canonical = self.canonical_user(user)
        on = user not in self.not_on_whatsapp and canonical not in self.not_on_whatsapp
        return {"exists": on, "user": canonical, "lid": seed.lid_for(canonical)}

    def page_send(self, conn_id: str, msg: dict) -> dict:
        with self.cond:
            conn = self._conn(conn_id)
            dev = self.devices.get(conn.token or "")
            if dev is None or dev.logged_out or dev.active_conn != conn.id:
                raise ControlError(409, "not_connected", "this page is not the connected device")
            acc = self._account(dev.phone)
            to_user = str(msg.get("to", "")).split("@", 1)[0]
            ok = (str(msg.get("to", "")).endswith("@g.us") or to_user not in self.not_on_whatsapp) and \
                str(msg.get("to", "")) not in self.refused
            record = {"id": msg.get("id"), "msg_id": msg.get("msg_id"), "to": msg.get("to"), "body": msg.get("body"),
                      "type": msg.get("type", "chat"), "caption": msg.get("caption"),
                      "quoted_id": msg.get("quotedStanzaID"), "mentions": msg.get("mentionedJidList") or [],
                      "media": msg.get("media"), "t": msg.get("t"), "ack": 1 if ok else -1,
                      "error": None if ok else "refused" if msg.get("to") in self.refused else "not_on_whatsapp"}
            acc.sent.append(record)
            acc.data["messages"].append({**msg.get("raw", {}), "ack": record["ack"]})
            return {"ack": record["ack"], "error": record["error"]}

    def page_seen(self, conn_id: str, chat: str) -> dict:
        with self.cond:
            dev = self.devices.get(self._conn(conn_id).token or "")
            if dev is None or dev.logged_out:
                raise ControlError(409, "not_connected", "this page is not linked")
            self._account(dev.phone).seen.append(str(chat))
            return {"ok": True}

    def upload(self, data: bytes, mimetype: str) -> dict:
        filehash = base64.b64encode(hashlib.sha256(data).digest()).decode()
        enc = base64.b64encode(hashlib.sha256(b"enc" + data).digest()).decode()
        token = secrets.token_urlsafe(12)
        entry = {"mmsUrl": f"/media/{token}", "deprecatedMms3Url": f"/media/{token}",
                 "directPath": f"/v/t62.7118-24/{token}", "mediaKey": base64.b64encode(secrets.token_bytes(32)).decode(),
                 "mediaKeyTimestamp": int(time.time()), "encFilehash": enc, "uploadHash": enc,
                 "filehash": filehash, "size": len(data), "sidecar": None, "firstFrameSidecar": None}
        with self.cond:
            self.uploads[token] = {"data": data, "mimetype": mimetype, "filehash": filehash}
        return entry

    # ----- ticker: rotate refs of unpaired, live pages ----------------------------------------------
    def tick(self) -> None:
        now = time.time()
        with self.cond:
            for conn in list(self.conns.values()):
                if not conn.alive(now):
                    if now - conn.last_seen > 10 * CONN_GONE_AFTER:
                        del self.conns[conn.id]
                    continue
                if conn.token or conn.state != "UNPAIRED" or not conn.refs:
                    continue
                if now - conn.refs[-1][1] < self.ref_interval:
                    continue
                if self.qr_idle_after and len(conn.refs) >= self.qr_idle_after:
                    conn.state = "UNPAIRED_IDLE"
                    self._push(conn.events, {"type": "state", "state": "UNPAIRED_IDLE"})
                    continue
                conn.refs.append((new_ref(), now))
                self._push(conn.events, {"type": "ref", "ref": conn.refs[-1][0]})
