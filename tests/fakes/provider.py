"""A fake provider for real daemon processes: a phone that links at once.

Select it with ``providers.webjs.driver: "tests.fakes.provider:FakeProvider"`` (repository
root on PYTHONPATH). Options (``providers.webjs.options``):

- ``link_delay``: seconds from start to ``ready`` (default 0.2)
- ``fail_names``: account names whose login fails (``Failed("fake_failure")``)
- ``crash_names``: account names whose start raises (the daemon retries with backoff)
- ``journal``: a file that gets one JSON line per session start/stop, with the daemon name,
  the lease epoch and the wall time, so tests can check that no two daemons drove one
  account at the same time. The start and stop lines are written by the fake's browser
  (``tests/fakes/browser.py``), a separate process as Chromium is: it keeps its pages open
  while the daemon is frozen, closes them by itself past the lease deadline pushed into it
  (``fenced``, reported as ``Disconnected``), and closes them when the daemon dies.
- ``sync``: what ``list_chats/list_contacts/list_groups`` return for every account, in the
  shapes of ``bridge.js``: ``{"chats": N, "groups": M, "old_chats": K, "contacts": C,
  "participants": P}`` gives N private chats (unread i % 3), M groups with P participants and
  a group chat each, K private chats older than a year, and C contacts (default N). The data
  is deterministic per account id, so tests can count rows.
- ``sync_fail_names``: account names whose listings raise (a failing sync)
- ``sync_delay``: seconds each listing takes (to watch a run in progress)
- ``outbox``: a file that plays WhatsApp's servers for sending: one JSON line per message
  that reached "WhatsApp" (it outlives daemon processes, so a test can count duplicates
  after a SIGKILL, and ``message_exists`` reads it like the real provider asks WhatsApp)
- ``archives``: a directory standing in for the login archives in the database (shared by all
  daemons). ``message_exists`` then answers like the real page: from what this session knows,
  i.e. what the login it started from held plus what it sent itself, never from WhatsApp's
  global record. A session starts from the host's local profile (``profiles`` under the
  daemon's state directory, written as the page writes IndexedDB: at each send) when it is at
  least as new as the archive, else from the archive, which is written only by ``checkpoint``
  and by a stop that saves the login. Without ``archives`` (older configs) the outbox is asked.
  Like WhatsApp Web, a send is stored in the page (the profile) before it goes out; a stored
  message that never reached "WhatsApp" (the browser died in between) is pending, and the page
  sends it once it is connected again (WhatsApp Web's clock icon, sent on reconnect).
- ``send_delay``: seconds a send takes before it reaches "WhatsApp" (default 0)
- ``after_send_delay``: seconds between reaching "WhatsApp" and returning (widens the window
  in which a crash leaves a sent message recorded as ``sending``)
- ``not_on_whatsapp``: phone numbers (digits) that are not on WhatsApp
- ``acks``: acks reported after a send, e.g. ``[2, 3]`` (delivered, then read), 0.05 s apart
- ``stop_delay``: seconds a stop that saves the login takes (checkpoint, then the browser
  closes); the session stays live until then. A stop without saving (a kill) is immediate.
- ``inbound``: ``{"every": S, "count": N}``: once connected, each account's page hears N messages
  from a customer, one every S seconds, in the browser process (also while the daemon is frozen),
  each recorded in ``inbox`` (a file) before the daemon hears of it (``MessageEvent``), as the
  real page acknowledges it to WhatsApp first; the page keeps it (in its login's storage, like
  IndexedDB: the profile, and the archive at a checkpoint), and ``recent_messages`` answers from
  there, as the real page answers from what it holds
- ``die_after_hearing``: N: the daemon process is SIGKILLed right after its page has heard (and
  acknowledged) its N-th message, before the daemon could store it; once per state directory
  (the daemon started again on that host lives on)
- ``logout_delay``: seconds an operator logout takes in the "page" (the real one waits for WhatsApp)
- ``phones``: account name → the phone that links it (default: the number entered, or a made-up one)
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

from blazzctl.providers import base as p

log = logging.getLogger("blazz.fake")


class FakeProvider(p.Provider):
    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        opts = dict(getattr(self.settings, "options", {}) or {})
        self.link_delay = float(opts.get("link_delay", 0.2))
        self.fail_names = set(opts.get("fail_names", []))
        self.crash_names = set(opts.get("crash_names", []))
        self.journal = Path(opts["journal"]) if opts.get("journal") else None
        self.send_delay = float(opts.get("send_delay", 0))
        self.after_send_delay = float(opts.get("after_send_delay", 0))
        self.not_on_whatsapp = {str(n).lstrip("+") for n in opts.get("not_on_whatsapp", [])}
        self.logout_delay = float(opts.get("logout_delay", 0))
        self.stop_delay = float(opts.get("stop_delay", 0))
        self.die_after_hearing = int(opts.get("die_after_hearing") or 0)
        self.heard = 0
        # What the pages need, in the browser process: they hear, send, ack and store by themselves.
        self.page_options = {key: opts[key] for key in ("archives", "outbox", "inbox", "inbound", "acks")
                             if opts.get(key)}
        self.page_options["profiles"] = str(self.state_dir / "profiles")
        self.phones = dict(opts.get("phones") or {})
        self.sync = dict(opts.get("sync") or {})
        self.sync_fail_names = set(opts.get("sync_fail_names", []))
        self.sync_delay = float(opts.get("sync_delay", 0))
        self.live: dict[int, asyncio.Task] = {}
        self.epochs: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.ready: set[int] = set()
        self.browser: asyncio.subprocess.Process | None = None
        self._replies: dict[int, asyncio.Future] = {}
        self._ids = itertools.count(1)
        self._reader: asyncio.Task | None = None

    def running(self) -> set[int]:
        return set(self.live)

    async def start(self, spec: p.SessionSpec) -> None:
        if spec.name in self.crash_names:
            raise RuntimeError("fake browser crashed at launch")
        self.epochs[spec.account_id] = spec.epoch
        self.names[spec.account_id] = spec.name
        await self._call("open", account=spec.account_id, epoch=spec.epoch)
        self.live[spec.account_id] = asyncio.create_task(self._link(spec))

    # --- the browser process -------------------------------------------------------------------------

    async def _browser(self) -> asyncio.subprocess.Process:
        if self.browser is None:
            cmd = [sys.executable, str(Path(__file__).with_name("browser.py")), "--daemon", self.daemon_name,
                   "--options", json.dumps(self.page_options)]
            if self.journal is not None:
                cmd += ["--journal", str(self.journal)]
            self.browser = await asyncio.create_subprocess_exec(*cmd, stdin=asyncio.subprocess.PIPE,
                                                                stdout=asyncio.subprocess.PIPE)
            self._reader = asyncio.create_task(self._read_browser(self.browser))
        return self.browser

    async def _read_browser(self, proc: asyncio.subprocess.Process) -> None:
        while line := await proc.stdout.readline():
            item = json.loads(line)
            if "id" in item:
                future = self._replies.pop(item["id"], None)
                if future is not None and not future.done():
                    future.set_result(item)
            elif item.get("event") == "fenced":
                await self._fenced(int(item["account"]))
            elif item.get("event") == "message":
                await self._heard(int(item["account"]), item["message"])
            elif item.get("event") == "ack":
                await self.emit(p.AckEvent(int(item["account"]), wa_message_id=item["wa_id"], ack=int(item["ack"])))

    async def _heard(self, account_id: int, message: dict) -> None:
        """The page heard a customer (and acknowledged it to WhatsApp): now the daemon hears of it,
        even for a page it has just closed (a late event)."""
        self.heard += 1
        marker = self.state_dir / "died-after-hearing"
        if self.heard == self.die_after_hearing and not marker.exists():
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        await self.emit(p.MessageEvent(account_id, message=message))

    async def _fenced(self, account_id: int) -> None:
        """The page left WhatsApp Web by itself, past the lease deadline (as bridge.js does)."""
        task = self.live.pop(account_id, None)
        if task is None:
            return
        self.ready.discard(account_id)
        task.cancel()
        log.error("the page passed its lease deadline and left WhatsApp Web", extra={"account_id": account_id})
        await self.emit(p.Disconnected(account_id, reason="lease deadline passed in the page", retry=True))

    async def _call(self, op: str, **args) -> dict:
        """A request to the browser; its answer once done."""
        future = asyncio.get_running_loop().create_future()
        request_id = next(self._ids)
        self._replies[request_id] = future
        self._tell(await self._browser(), {"op": op, "id": request_id, **args})
        try:
            return await asyncio.wait_for(future, timeout=30)
        finally:
            self._replies.pop(request_id, None)

    @staticmethod
    def _tell(proc: asyncio.subprocess.Process | None, request: dict) -> None:
        if proc is not None and proc.returncode is None:
            proc.stdin.write((json.dumps(request) + "\n").encode())

    async def _link(self, spec: p.SessionSpec) -> None:
        await asyncio.sleep(self.link_delay / 2)
        if spec.name in self.fail_names:
            await self.emit(p.Failed(spec.account_id, reason="fake_failure", detail="the fake phone refused"))
            return
        await self.emit(p.Authenticated(spec.account_id))
        await asyncio.sleep(self.link_delay / 2)
        phone = self.phones.get(spec.name) or spec.phone_number or f"+628129{spec.account_id:06d}"
        self.ready.add(spec.account_id)
        await self.emit(p.Ready(spec.account_id, phone_number=phone, push_name=f"Fake {spec.name}"))
        await self._call("connected", account=spec.account_id)  # pending sends go out; customers write

    async def checkpoint(self, account_id: int) -> bool:
        if account_id not in self.live:
            return False
        return bool((await self._call("checkpoint", account=account_id)).get("result"))

    async def stop(self, account_id: int, *, checkpoint: bool = True) -> None:
        task = self.live.get(account_id)
        if task is None:
            return
        if checkpoint:
            await self.checkpoint(account_id)
        if checkpoint and self.stop_delay:  # saving the login and closing the browser take a while;
            try:                             # the session is live (in the journal too) until then
                await asyncio.sleep(self.stop_delay)
            except asyncio.CancelledError:
                if self._close(account_id, task):  # the browser closes the page; no waiting for it
                    self._tell(self.browser, {"op": "close", "account": account_id, "checkpoint": False})
                raise
        if self._close(account_id, task):
            await self._call("close", account=account_id, checkpoint=checkpoint)

    def _close(self, account_id: int, task: asyncio.Task) -> bool:
        if self.live.get(account_id) is not task:
            return False  # closed meanwhile (a kill while a slow close was under way, or fenced)
        self.live.pop(account_id)
        self.ready.discard(account_id)
        task.cancel()
        return True

    async def logout(self, account_id: int) -> None:
        if self.logout_delay:
            await asyncio.sleep(self.logout_delay)
        await self.stop(account_id, checkpoint=False)
        self._write("logout", account_id)

    async def send_message(self, account_id: int, message: dict) -> dict:
        if account_id not in self.live:
            raise p.SessionNotReady(f"account {account_id} is not connected")
        if self.send_delay:  # on its way to the page
            await asyncio.sleep(self.send_delay)
        wa_id = f"true_{message['to']}_{message['msg_id']}"
        answer = await self._call("send", account=account_id, wa_id=wa_id, to=message["to"],
                                  body=message.get("body"), media=bool(message.get("media")),
                                  deadline=message.get("deadline"))
        if answer.get("error") == "deadline":
            raise p.LeaseDeadline(p.DEADLINE_MARK)
        if answer.get("error"):
            raise p.SessionNotReady(f"account {account_id} is not connected")
        if self.after_send_delay:
            await asyncio.sleep(self.after_send_delay)
        return {"id": wa_id, "msg_id": message["msg_id"], "result": "OK"}

    async def set_deadline(self, deadline: float) -> None:
        self._tell(await self._browser(), {"op": "deadline", "t": deadline})  # the pages check it

    async def message_exists(self, account_id: int, wa_message_id: str) -> bool:
        return bool((await self._call("exists", account=account_id, wa_id=wa_message_id)).get("result"))

    async def recent_messages(self, account_id: int, since: float) -> list[dict]:
        if account_id not in self.live:
            raise p.SessionNotReady(f"account {account_id} is not connected")
        return list((await self._call("recent", account=account_id, since=since)).get("result") or [])

    async def is_on_whatsapp(self, account_id: int, phone: str) -> bool:
        return phone.lstrip("+") not in self.not_on_whatsapp

    async def close(self) -> None:
        for account_id in list(self.live):
            await self.stop(account_id, checkpoint=False)
        if self.browser is not None and self.browser.returncode is None:
            self.browser.stdin.close()  # the browser exits once its pipe closes
            try:
                await asyncio.wait_for(self.browser.wait(), timeout=10)
            except asyncio.TimeoutError:
                self.browser.kill()

    def _write(self, event: str, account_id: int, **extra) -> None:
        if self.journal is None:
            return
        line = json.dumps({"event": event, "account_id": account_id, "epoch": self.epochs.get(account_id),
                           "daemon": self.daemon_name, "pid": os.getpid(), "t": time.time(), **extra})
        with open(self.journal, "a", encoding="utf-8") as fh:  # O_APPEND: one line per write
            fh.write(line + "\n")

    # --- listings for sync (the shapes of bridge.js listChats/listContacts/listGroups) --------------

    async def _listing(self, account_id: int) -> tuple[int, int]:
        if account_id not in self.ready:
            raise p.SessionNotReady(f"account {account_id} is not connected")
        if self.sync_delay:
            await asyncio.sleep(self.sync_delay)
        if self.names.get(account_id) in self.sync_fail_names:
            raise RuntimeError("the fake phone refused to list")
        return int(time.time()), 4915550000000 + account_id * 100_000

    def _users(self, base: int, count: int) -> list[str]:
        return [str(base + i) for i in range(count)]

    async def list_chats(self, account_id: int) -> list[dict]:
        now, base = await self._listing(account_id)
        n, old = int(self.sync.get("chats", 0)), int(self.sync.get("old_chats", 0))
        out = []
        for i, user in enumerate(self._users(base, n + old)):
            t = now - i * 60 if i < n else now - 400 * 86400 - i
            out.append({"id": f"{user}@c.us", "name": f"Contact {i}", "is_group": False, "unread": i % 3, "t": t,
                        "archived": False, "last": _message(f"{user}@c.us", f"hello {i}", t)})
        for g in range(int(self.sync.get("groups", 0))):
            gid = f"1203630{account_id:06d}{g:05d}@g.us"
            out.append({"id": gid, "name": f"Group {g}", "is_group": True, "unread": 0, "t": now - g * 30,
                        "archived": False, "last": _message(gid, "", now - g * 30, type_="image")})
        return out

    async def list_contacts(self, account_id: int) -> list[dict]:
        _now, base = await self._listing(account_id)
        count = int(self.sync.get("contacts", self.sync.get("chats", 0)))
        return [{"id": f"{user}@c.us", "number": user, "name": f"Contact {i}", "pushname": f"Push {i}",
                 "is_business": i % 10 == 0, "is_my_contact": i % 2 == 0}
                for i, user in enumerate(self._users(base, count))]

    async def list_groups(self, account_id: int) -> list[dict]:
        now, base = await self._listing(account_id)
        size = int(self.sync.get("participants", 3))
        users = self._users(base, size)
        return [{"id": f"1203630{account_id:06d}{g:05d}@g.us", "subject": f"Group {g}", "desc": f"Fake group {g}",
                 "owner": f"{users[0]}@c.us" if users else None, "creation": now - 86400, "announce": False,
                 "restrict": g % 2 == 1,
                 "participants": [{"id": f"{u}@c.us", "is_admin": j == 0, "is_super_admin": j == 0}
                                  for j, u in enumerate(users)]}
                for g in range(int(self.sync.get("groups", 0)))]


def _message(remote: str, body: str, t: int, *, type_: str = "chat") -> dict:
    """A message in the shape of bridge.js messageView."""
    return {"id": f"false_{remote}_FAKE{t}", "msg_id": f"FAKE{t}", "from_me": False, "remote": remote,
            "from": remote, "to": None, "author": None, "type": type_, "body": body, "t": t, "ack": 0,
            "has_media": type_ != "chat", "mimetype": "image/jpeg" if type_ == "image" else None, "filename": None,
            "size": None, "quoted_id": None, "is_status": False, "lat": None, "lng": None, "loc": None,
            "vcards": [], "reaction": None, "notify_name": None}
