"""The fake provider's browser: a separate process, as Chromium is, that outlives a frozen daemon.

The fake provider (``tests/fakes/provider.py``) starts one of these per daemon and talks to it
over a pipe, one JSON object per line. The browser holds the pages (one per account) and writes
their start and stop lines in the journal itself, so the journal says when a page was really
open, not when the daemon believed it was:

- ``{"op": "open", "id": N, "account": A, "epoch": E, "name": S}`` opens a page (journal ``start``)
- ``{"op": "close", "id": N, "account": A, "checkpoint": bool}`` closes it (journal ``stop``)
- ``{"op": "deadline", "t": T}`` the lease's fence deadline (wall clock), pushed at each renewal

Each request with an ``id`` is answered ``{"id": N}`` once done. Like the real page with
bridge.js, a page still open past the deadline leaves WhatsApp Web by itself (journal ``stop``
with ``"fenced": true``; event ``{"event": "fenced", "account": A, "deadline": T}`` to the
daemon), whether or not the daemon is running: a SIGSTOPped daemon cannot keep its pages alive.
When the daemon's end of the pipe closes (the daemon died: Playwright's pipe to Chromium closes
with it), the browser closes every page (journal ``stop`` with ``"orphaned": true``) and exits.

    python -m tests.fakes.browser --journal FILE --daemon NAME
"""

from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time

TICK = 0.02  # seconds between deadline checks


class Browser:
    def __init__(self, journal: str | None, daemon: str) -> None:
        self.journal = journal
        self.daemon = daemon
        self.pages: dict[int, int | None] = {}  # account → lease epoch of its page
        self.deadline = 0.0

    def handle(self, request: dict) -> list[dict]:
        op = request.get("op")
        account = request.get("account")
        if op == "open":
            self.pages[account] = request.get("epoch")
            self._journal("start", account, self.pages[account])
        elif op == "close" and account in self.pages:
            self._journal("stop", account, self.pages.pop(account), checkpoint=bool(request.get("checkpoint")))
        elif op == "deadline":
            self.deadline = float(request["t"])
        return [{"id": request["id"]}] if "id" in request else []

    def tick(self) -> list[dict]:
        """Pages past the deadline leave WhatsApp Web."""
        if not self.deadline or time.time() <= self.deadline:
            return []
        out = []
        for account, epoch in list(self.pages.items()):
            self.pages.pop(account)
            self._journal("stop", account, epoch, fenced=True)
            out.append({"event": "fenced", "account": account, "deadline": self.deadline})
        return out

    def orphaned(self) -> None:
        for account, epoch in list(self.pages.items()):
            self.pages.pop(account)
            self._journal("stop", account, epoch, orphaned=True)

    def _journal(self, event: str, account: int, epoch: int | None, **extra) -> None:
        if not self.journal:
            return
        line = json.dumps({"event": event, "account_id": account, "epoch": epoch, "daemon": self.daemon,
                           "pid": os.getpid(), "t": time.time(), **extra})
        with open(self.journal, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--journal")
    ap.add_argument("--daemon", required=True)
    args = ap.parse_args(argv)
    browser = Browser(args.journal, args.daemon)
    stdin = sys.stdin.fileno()
    buffer = b""
    while True:
        readable, _, _ = select.select([stdin], [], [], TICK)
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
        for item in out:
            try:
                sys.stdout.write(json.dumps(item) + "\n")
                sys.stdout.flush()
            except BrokenPipeError:
                browser.orphaned()
                return 0


if __name__ == "__main__":
    sys.exit(main())
