"""The fake provider's browser: a separate process, as Chromium is, that outlives a frozen daemon.

The fake provider (``tests/fakes/provider.py``) starts one of these per daemon and talks to it
over a pipe, one JSON object per line. The browser holds the pages (one per account) and what
each page holds, as the real page holds it in IndexedDB: the login's storage (its own sends,
the customer messages it heard). A page acts on its own, whatever its daemon is doing: it hears
customers (and acknowledges them to WhatsApp at once), sends what it was handed, reports acks,
and writes all of it to the host's local profile. A SIGSTOPped daemon hears nothing meanwhile:
the events wait in the pipe until it runs again, or are lost with it when it dies.

Requests; each with an ``id`` is answered ``{"id": N, ...}`` once done:

- ``open {account, epoch}``: a page from the newest login (the local profile unless the archive
  is newer: a restored login knows only what its archive held) (journal ``start``)
- ``connected {account}``: logged in: it sends what it stored but never got out (WhatsApp Web's
  clock icon) and starts hearing customers
- ``send {account, wa_id, to, body, media, deadline}``: stored in the page, then out to
  "WhatsApp" (the outbox); refused (``{"error": "deadline"}``) past the lease deadline
- ``exists {account, wa_id}``, ``recent {account, since}``: what the page knows (``result``)
- ``checkpoint {account}``: the page's storage becomes the login archive (``result``: done)
- ``close {account, checkpoint}``: closes it (journal ``stop``)
- ``deadline {t}``: the lease's fence deadline (wall clock), pushed at each renewal

Events: ``{"event": "message", "account", "message"}`` (a customer message the page heard),
``{"event": "ack", "account", "wa_id", "ack"}``, ``{"event": "fenced", "account", "deadline"}``.
Like the real page with bridge.js, a page still open past the deadline leaves WhatsApp Web by
itself (journal ``stop`` with ``"fenced": true``), whether or not the daemon is running. When
the daemon's end of the pipe closes (the daemon died: Playwright's pipe to Chromium closes with
it), the browser closes every page (journal ``stop`` with ``"orphaned": true``) and exits.

    python -m tests.fakes.browser --daemon NAME [--journal FILE] [--options JSON]

Options (the provider passes its own): ``profiles`` (the host's local profiles), ``archives``
(the login archives all daemons share; without it pages keep nothing and ``exists`` asks the
outbox), ``outbox``, ``inbox``, ``inbound`` ``{"every": S, "count": N}``, ``acks``.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
import uuid
from pathlib import Path

TICK = 0.02  # seconds between deadline checks
ACK_STEP = 0.05  # seconds between the acks of one send


class Page:
    def __init__(self, account: int, epoch: int | None, known: dict | None) -> None:
        self.account = account
        self.epoch = epoch
        self.known = known  # {"version", "ids", "inbound"}: the login's storage (None: keeps nothing)
        self.hearing_at: float | None = None  # when the next customer message comes
        self.heard = 0
        self.acks: list[tuple[float, str, int]] = []  # (when, wa_id, ack)


class Browser:
    def __init__(self, journal: str | None, daemon: str, options: dict | None = None) -> None:
        opts = options or {}
        self.journal = journal
        self.daemon = daemon
        self.profiles = Path(opts["profiles"]) if opts.get("profiles") else None
        self.archives = Path(opts["archives"]) if opts.get("archives") else None
        self.outbox = Path(opts["outbox"]) if opts.get("outbox") else None
        self.inbox = Path(opts["inbox"]) if opts.get("inbox") else None
        self.inbound = dict(opts.get("inbound") or {})
        self.acks = [int(a) for a in opts.get("acks", [])]
        self.pages: dict[int, Page] = {}
        self.deadline = 0.0

    # --- requests ------------------------------------------------------------------------------------

    def handle(self, request: dict) -> list[dict]:
        op, account = request.get("op"), request.get("account")
        page = self.pages.get(account)
        reply: dict = {}
        if op == "open":
            known = self._restore(account) if self.archives is not None else None
            self.pages[account] = Page(account, request.get("epoch"), known)
            self._journal("start", account, request.get("epoch"))
        elif op == "close" and page is not None:
            self.pages.pop(account)
            self._journal("stop", account, page.epoch, checkpoint=bool(request.get("checkpoint")))
        elif op == "deadline":
            self.deadline = float(request["t"])
        elif op == "connected" and page is not None:
            self._send_pending(page)
            if self.inbound:
                page.hearing_at = time.time() + float(self.inbound.get("every", 0.05))
        elif op == "send":
            reply = self._send(page, request)
        elif op == "exists":
            reply = {"result": self._exists(account, request["wa_id"])}
        elif op == "recent":
            known = page.known if page is not None else None
            reply = {"result": [m for m in (known or {}).get("inbound", []) if m["t"] > request["since"]]}
        elif op == "checkpoint":
            reply = {"result": self._checkpoint(page)}
        return [{"id": request["id"], **reply}] if "id" in request else []

    def _send(self, page: Page | None, request: dict) -> dict:
        if page is None:
            return {"error": "closed"}
        deadline = max(request.get("deadline") or 0, self.deadline)  # as bridge.js checks it
        if deadline and time.time() > deadline:
            return {"error": "deadline"}
        wa_id = request["wa_id"]
        if page.known is not None:  # stored in the page (IndexedDB) before it goes out
            page.known["ids"].append(wa_id)
            self._save_profile(page)
        if self.outbox is not None:
            self._record_send(page.account, {"id": wa_id, "to": request.get("to"), "body": request.get("body"),
                                             "media": bool(request.get("media"))})
        now = time.time()
        page.acks += [(now + ACK_STEP * (i + 1), wa_id, ack) for i, ack in enumerate(self.acks)]
        return {"ok": True}

    def _send_pending(self, page: Page) -> None:
        """A connected page sends what it stored but never got out (the browser died in between)."""
        if page.known is None or self.outbox is None:
            return
        sent = {o["id"] for o in lines(self.outbox)}
        for wa_id in page.known["ids"]:
            if wa_id not in sent:
                self._record_send(page.account, {"id": wa_id, "to": wa_id.split("_")[1], "pending": True})

    def _exists(self, account: int, wa_id: str) -> bool:
        if self.archives is not None:  # what this page knows, not what WhatsApp knows
            page = self.pages.get(account)
            return page is not None and page.known is not None and wa_id in page.known["ids"]
        return self.outbox is not None and any(o.get("id") == wa_id for o in lines(self.outbox))

    # --- the login: a local profile per host, archives shared by all ----------------------------------

    def _restore(self, account: int) -> dict:
        """The page's starting storage: the local profile unless the archive is newer."""
        archive, local = read_json(self.archives / f"{account}.json"), read_json(self._profile(account))
        fresh = local["version"] >= archive["version"] and (local["ids"] or local.get("inbound"))
        known = dict(local) if fresh else dict(archive)
        known.setdefault("inbound", [])
        return known

    def _checkpoint(self, page: Page | None) -> bool:
        if self.archives is None or page is None or page.known is None:
            return False
        archived = read_json(self.archives / f"{page.account}.json")
        page.known = {"version": archived["version"] + 1, "ids": list(page.known["ids"]),
                      "inbound": list(page.known.get("inbound", []))}
        write_json(self.archives / f"{page.account}.json", page.known)
        self._save_profile(page)  # the profile is that archive now
        return True

    def _profile(self, account: int) -> Path:
        return (self.profiles or Path(".")) / f"{account}.json"

    def _save_profile(self, page: Page) -> None:
        if self.profiles is not None and page.known is not None:
            write_json(self._profile(page.account), page.known)

    # --- what pages do by themselves ------------------------------------------------------------------

    def tick(self) -> list[dict]:
        now = time.time()
        if self.deadline and now > self.deadline:  # pages past the deadline leave WhatsApp Web
            out = []
            for account, page in list(self.pages.items()):
                self.pages.pop(account)
                self._journal("stop", account, page.epoch, fenced=True)
                out.append({"event": "fenced", "account": account, "deadline": self.deadline})
            return out
        out = []
        for page in list(self.pages.values()):
            while page.acks and page.acks[0][0] <= now:
                _, wa_id, ack = page.acks.pop(0)
                out.append({"event": "ack", "account": page.account, "wa_id": wa_id, "ack": ack})
            if page.hearing_at is not None and page.hearing_at <= now:
                out.append(self._hear(page))
        return out

    def _hear(self, page: Page) -> dict:
        """A customer writes. The page acknowledges it to WhatsApp (``inbox``: WhatsApp never
        delivers it again) and stores it before anyone else hears of it."""
        every, count = float(self.inbound.get("every", 0.05)), int(self.inbound.get("count", 10))
        sender = f"62813{page.account:07d}@c.us"
        message = {"id": f"false_{sender}_{uuid.uuid4().hex[:20].upper()}", "remote": sender, "from": sender,
                   "type": "chat", "body": f"customer message {page.heard}", "t": int(time.time()),
                   "from_me": False}
        page.heard += 1
        page.hearing_at = page.hearing_at + every if page.heard < count else None
        if page.known is not None:
            page.known["inbound"] = [*page.known.get("inbound", [])[-499:], message]
            self._save_profile(page)
        if self.inbox is not None:
            append_line(self.inbox, {"account_id": page.account, "id": message["id"], "daemon": self.daemon,
                                     "t": time.time()})
        return {"event": "message", "account": page.account, "message": message}

    def next_wake(self) -> float:
        """Seconds until something is due (at most a tick)."""
        due = [p.hearing_at for p in self.pages.values() if p.hearing_at is not None]
        due += [p.acks[0][0] for p in self.pages.values() if p.acks]
        return max(0.0, min([TICK, *(t - time.time() for t in due)]))

    def orphaned(self) -> None:
        for account, page in list(self.pages.items()):
            self.pages.pop(account)
            self._journal("stop", account, page.epoch, orphaned=True)

    def _record_send(self, account: int, line: dict) -> None:
        append_line(self.outbox, {"account_id": account, **line, "daemon": self.daemon, "t": time.time()})

    def _journal(self, event: str, account: int, epoch: int | None, **extra) -> None:
        if self.journal:
            append_line(Path(self.journal), {"event": event, "account_id": account, "epoch": epoch,
                                             "daemon": self.daemon, "pid": os.getpid(), "t": time.time(), **extra})


# --- files ------------------------------------------------------------------------------------------

def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {"version": 0, "ids": [], "inbound": []}


def write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def append_line(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as fh:  # O_APPEND: one line per write
        fh.write(json.dumps(record) + "\n")


def lines(path: Path) -> list[dict]:
    """A JSON-lines file's records (none when it does not exist yet; a torn last line is skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--journal")
    ap.add_argument("--daemon", required=True)
    ap.add_argument("--options", default="{}")
    args = ap.parse_args(argv)
    browser = Browser(args.journal, args.daemon, json.loads(args.options))
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    os.set_blocking(stdout, False)  # a frozen daemon reads nothing: the pages go on regardless
    buffer, pending = b"", b""
    while True:
        readable, writable, _ = select.select([stdin], [stdout] if pending else [], [], browser.next_wake())
        out = browser.tick()
        if readable:
            chunk = os.read(stdin, 65536)
            if not chunk:  # the daemon is gone
                browser.orphaned()
                return 0
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    out += browser.handle(json.loads(line))
        pending += b"".join((json.dumps(item) + "\n").encode() for item in out)
        if pending and (writable or out):
            try:
                pending = pending[os.write(stdout, pending):]
            except BlockingIOError:
                pass
            except BrokenPipeError:
                browser.orphaned()
                return 0


if __name__ == "__main__":
    sys.exit(main())
