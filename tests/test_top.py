"""`blazzctl top`: the snapshot (text and JSON, piped output) and the live view under a real
pseudo-terminal: it refreshes, and quits cleanly on q and on Ctrl-C, restoring the terminal.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

import pytest
from sqlalchemy import insert, update

from blazzctl.db import Database
from blazzctl.enums import AccountStatus, DaemonStatus
from blazzctl.models import SessionDaemon, WebhookDelivery, WhatsAppAccount
from blazzctl.models.base import utcnow
from blazzctl.services import accounts, webhooks, workspaces
from tests.conftest import run_blazzctl


@pytest.fixture
def fleet_db(sqlite_url):
    """A migrated SQLite database with a live daemon row, accounts in three states and a webhook backlog."""
    from tests.daemon_helpers import migrate

    migrate(sqlite_url)
    db = Database(sqlite_url)
    with db.session() as s:
        ws = workspaces.create(s, name="acme")
        ids = [accounts.add(s, workspace=ws, name=f"acc-{i}").id for i in range(5)]
        endpoint = webhooks.add(s, workspace=ws, url="https://hooks.example.com/blazz", events=None)
        s.flush()
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id.in_(ids[:3]))
                  .values(status=AccountStatus.CONNECTED))
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == ids[3]).values(status=AccountStatus.FAILED))
        s.add(SessionDaemon(name="db-host:1", host="db-host", instance=1, pid=4242, version="9.9.9", capacity=50,
                            status=DaemonStatus.RUNNING, status_text="holding 3 accounts", accounts_owned=3,
                            rss_bytes=300 * 1048576, process_count=12, cpu_percent=7.0, heartbeat_at=utcnow(),
                            started_at=utcnow()))
        s.execute(insert(WebhookDelivery), [{"endpoint_id": endpoint.id, "event_id": f"evt_{i}",
                                             "event_type": "message.received", "workspace_id": ws.id,
                                             "payload": "{}", "status": "pending"} for i in range(4)])
    yield sqlite_url, db
    db.dispose()


def test_once_prints_daemons_accounts_and_queues(cli, fleet_db):
    url, _ = fleet_db
    r = cli("top", "--once", db=url)
    assert r.code == 0, r
    out = r.stdout
    assert "db-host:1" in out and "running" in out and "300 MB" in out and "9.9.9" in out
    lines = {" ".join(line.split()) for line in out.splitlines()}
    assert any(line.startswith("connected 3") for line in lines), out
    assert any(line.startswith("failed 1") for line in lines), out
    assert any("webhooks pending 4" in line for line in lines), out
    assert "daemons 1 live" in out and "q quits" not in out  # a snapshot has no keys to press


def test_once_json(cli, fleet_db):
    url, _ = fleet_db
    r = cli("top", "--once", "--json", db=url)
    assert r.code == 0, r
    body = r.json()
    assert body["accounts"] == {"connected": 3, "disconnected": 1, "failed": 1}
    assert [d["name"] for d in body["daemons"]] == ["db-host:1"] and body["daemons"][0]["live"]
    assert body["queues"]["webhooks_pending"] == 4 and body["queues"]["webhooks_oldest_age_s"] >= 0
    assert body["queues"]["messages_pending"] == 0 and body["queues"]["webhooks_dead"] == 0


def test_piped_output_is_one_snapshot(fleet_db):
    url, _ = fleet_db
    r = run_blazzctl("top", env={"BLAZZ_DATABASE_URL": url}, timeout=30)
    assert r.code == 0, r
    assert r.stdout.count("blazz top") == 1 and "\x1b[" not in r.stdout


def test_unreachable_database_is_exit_69(tmp_path):
    r = run_blazzctl("top", "--once", env={"BLAZZ_DATABASE_URL": "mysql+pymysql://u:p@127.0.0.1:1/x",
                                           "BLAZZ_DATABASE_CONNECT_TIMEOUT": "1"}, timeout=30)
    assert r.code == 69, r


# --- the live view under a pseudo-terminal -------------------------------------------------------


class Terminal:
    """``blazzctl top`` on a real pty (its controlling terminal), 120 x 40."""

    def __init__(self, url: str, *args: str) -> None:
        env = {**os.environ, "BLAZZ_DATABASE_URL": url, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a session leader whose controlling terminal is the pty
            try:
                os.execvpe(sys.executable, [sys.executable, "-m", "blazzctl", "top", *args], env)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        self.output = b""

    def read_until(self, needle: bytes, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while needle not in self.output:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{needle!r} not seen; output so far: {self.output[-2000:]!r}")
            if select.select([self.fd], [], [], left)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"terminal closed before {needle!r}: {self.output[-2000:]!r}")
                self.output += chunk

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self, timeout: float = 10) -> int | None:
        """The exit status, draining output meanwhile; None when still running at the timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._drain()  # what it wrote last (leaving the alternate screen) may still be in the pty
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.05)[0]:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:
                    pass
        return None

    def _drain(self) -> None:
        while select.select([self.fd], [], [], 0.2)[0]:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: the child's side of the pty is closed and empty
                return
            if not chunk:
                return
            self.output += chunk

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def terminal():
    opened: list[Terminal] = []

    def open_(url: str, *args: str) -> Terminal:
        opened.append(Terminal(url, *args))
        return opened[-1]

    yield open_
    for t in opened:
        t.close()


def test_live_view_refreshes_and_quits_on_q(fleet_db, terminal):
    url, db = fleet_db
    t = terminal(url, "--interval", "0.2")
    t.read_until(b"webhooks pending")
    assert b"\x1b[?1049h" in t.output and b"(q quits)" in t.output  # the alternate screen: the shell's screen comes back on exit
    with db.session() as s:  # a change appears on a later refresh
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.name == "acc-4")
                  .values(status=AccountStatus.QR_SCANNING))
    t.read_until(b"qr_scanning")
    t.send(b"q")
    assert t.wait(10) == 0, t.output[-2000:]
    assert t.output.rstrip().endswith(b"\x1b[?1049l") or b"\x1b[?1049l" in t.output[-200:]
    assert b"Traceback" not in t.output


def test_live_view_quits_on_ctrl_c(fleet_db, terminal):
    url, _ = fleet_db
    t = terminal(url, "--interval", "0.5")
    t.read_until(b"webhooks pending")
    t.send(b"\x03")  # the terminal turns it into SIGINT for the foreground process
    assert t.wait(30) == 0, t.output[-2000:]  # at once; a loaded CI host once took more than 10 s
    assert b"Traceback" not in t.output and b"interrupted" not in t.output


def test_other_keys_do_not_quit(fleet_db, terminal):
    url, _ = fleet_db
    t = terminal(url, "--interval", "0.2")
    t.read_until(b"webhooks pending")
    t.send(b"x")
    assert t.wait(1.0) is None  # still running
    t.send(b"Q")
    assert t.wait(10) == 0
