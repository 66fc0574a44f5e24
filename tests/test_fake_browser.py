"""The fake provider's browser (tests/fakes/browser.py) does what the real page does by itself.

The fleet tests drive it through real daemons; these check the page's own rules directly: a send
past the lease deadline is refused even while the page is still open, a restored page knows only
what its archive held, and pages hear customers and leave at the deadline with nobody asking.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from tests.fakes.browser import Browser, lines


def browser(tmp_path: Path, **options) -> Browser:
    opts = {"profiles": str(tmp_path / "profiles"), "archives": str(tmp_path / "archives"),
            "outbox": str(tmp_path / "outbox.jsonl"), **options}
    (tmp_path / "archives").mkdir(parents=True, exist_ok=True)
    return Browser(str(tmp_path / "journal.jsonl"), "host-a:1", opts)


def test_a_send_past_the_deadline_it_carries_is_refused_by_the_open_page(tmp_path):
    b = browser(tmp_path)
    b.handle({"op": "open", "account": 1, "epoch": 1})
    late = b.handle({"op": "send", "id": 1, "account": 1, "wa_id": "true_1@c.us_A", "to": "1@c.us",
                     "deadline": time.time() - 0.01})
    assert late == [{"id": 1, "error": "deadline"}]
    ok = b.handle({"op": "send", "id": 2, "account": 1, "wa_id": "true_1@c.us_B", "to": "1@c.us",
                   "deadline": time.time() + 5})
    assert ok == [{"id": 2, "ok": True}]
    assert [o["id"] for o in lines(tmp_path / "outbox.jsonl")] == ["true_1@c.us_B"]


def test_a_restored_page_knows_only_what_its_archive_held(tmp_path):
    first = browser(tmp_path / "a")
    first.handle({"op": "open", "account": 1, "epoch": 1})
    first.handle({"op": "send", "id": 1, "account": 1, "wa_id": "W1", "to": "1@c.us"})
    first.handle({"op": "checkpoint", "id": 2, "account": 1})
    first.handle({"op": "send", "id": 3, "account": 1, "wa_id": "W2", "to": "1@c.us"})  # after the archive
    other = Browser(None, "host-b:1", {"profiles": str(tmp_path / "b" / "profiles"),
                                       "archives": str(tmp_path / "a" / "archives")})
    other.handle({"op": "open", "account": 1, "epoch": 2})
    asked = {w: other.handle({"op": "exists", "id": 9, "account": 1, "wa_id": w})[0]["result"] for w in ("W1", "W2")}
    assert asked == {"W1": True, "W2": False}
    again = browser(tmp_path / "a")  # the same host: its local profile is newer than the archive
    again.handle({"op": "open", "account": 1, "epoch": 3})
    assert again.handle({"op": "exists", "id": 9, "account": 1, "wa_id": "W2"})[0]["result"] is True


def test_pages_hear_and_leave_at_the_deadline_with_nobody_reading(tmp_path):
    """The browser process on its own: its daemon never reads its pipe (as a frozen one does)."""
    inbox = tmp_path / "inbox.jsonl"
    options = {"inbox": str(inbox), "inbound": {"every": 0.05, "count": 1000}}
    journal = tmp_path / "journal.jsonl"
    proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "fakes" / "browser.py"), "--daemon", "d:1",
                             "--journal", str(journal), "--options", json.dumps(options)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        deadline = time.time() + 1.0
        for request in ({"op": "open", "account": 7, "epoch": 1}, {"op": "connected", "account": 7},
                        {"op": "deadline", "t": deadline}):
            proc.stdin.write((json.dumps(request) + "\n").encode())
        proc.stdin.flush()
        time.sleep(1.6)
        heard = lines(inbox)
        assert 10 <= len(heard) <= 25  # about a second's worth, none after the deadline
        assert max(h["t"] for h in heard) <= deadline + 0.1
        events = [e["event"] for e in lines(journal)]
        assert events == ["start", "stop"] and lines(journal)[1].get("fenced") is True
    finally:
        proc.stdin.close()
        proc.wait(10)
    told = [json.loads(line) for line in proc.stdout.read().splitlines()]
    assert sum(1 for t in told if t.get("event") == "message") == len(heard)
