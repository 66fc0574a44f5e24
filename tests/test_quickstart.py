"""`blazzctl quickstart` on a terminal: the QR and one status line redrawn in place (the daemon's
log in a file, not on the screen), and where the database and that log are.

The terminal is a real pseudo-terminal (as in tests/test_top.py); what it would show is rebuilt
from the bytes by ``Screen``, a terminal reduced to what Rich's ``Live`` sends. The piped (plain)
output of quickstart is tested in tests/test_login_flows.py.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import stat
import struct
import sys
import termios
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.webjs_helpers import qr_blocks

CHROMIUM = "/usr/bin/chromium"
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")

# A session daemon's log line (`level daemon event key=value`, maybe after a timestamp), e.g.
# "2026-01-01T10:00:00Z info host:1 claimed account_id=1 epoch=1".
LOG_LINE = re.compile(r"\b(debug|info|warning|error)\b \S+:\d+ [a-z]")


@pytest.fixture
def fake_fast():
    from tests.fakes.wa_web import FakeWhatsAppWeb

    with FakeWhatsAppWeb(port=0, ref_interval=3.0) as fake:  # the QR rotates every 3 s
        yield fake


class Screen:
    """The lines a terminal shows after some output: text, CR, LF, cursor up (CSI n A) and erase
    line (CSI 2 K), which is all ``Live`` moves with; other escapes (cursor visibility) are ignored.
    No window height: what scrolled off the top stays in ``lines``, as in a scrollback."""

    TOKENS = re.compile(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)")

    def __init__(self) -> None:
        self.lines, self.row, self.col = [""], 0, 0

    def feed(self, text: str) -> "Screen":
        for token in self.TOKENS.split(text):
            if token == "\r":
                self.col = 0
            elif token == "\n":
                self.row += 1
                self.lines += [""] * (self.row + 1 - len(self.lines))
            elif token.startswith("\x1b["):
                arg, final = token[2:-1], token[-1]
                if final == "A":
                    self.row = max(0, self.row - int(arg or 1))
                elif final == "K":
                    self.lines[self.row] = "" if arg == "2" else self.lines[self.row][:self.col]
            elif token:
                line = self.lines[self.row].ljust(self.col)
                self.lines[self.row] = line[:self.col] + token + line[self.col + len(token):]
                self.col += len(token)
        return self

    @property
    def text(self) -> str:
        return "\n".join(line.rstrip() for line in self.lines).rstrip("\n")


class TerminalCommand:
    """``python -m blazzctl ARGS`` with a real pty (100 x 60) as its controlling terminal."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        full = {k: v for k, v in os.environ.items() if not k.startswith("BLAZZ_")}
        full.update(env, TERM="xterm-256color", COLUMNS="100", LINES="60", PYTHONPATH=str(REPO))
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            try:
                os.execvpe(sys.executable, [sys.executable, "-m", "blazzctl", *args], full)
            finally:
                os._exit(127)
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 60, 100, 0, 0))
        self.raw = b""
        self.code: int | None = None

    @property
    def output(self) -> str:
        return self.raw.decode("utf-8", "replace")

    def screen(self) -> Screen:
        return Screen().feed(self.output)

    def pump(self, wait: float = 0.2) -> None:
        if select.select([self.fd], [], [], wait)[0]:
            try:
                self.raw += os.read(self.fd, 65536)
            except OSError:  # the child closed the terminal
                time.sleep(wait)

    def until(self, predicate, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump()
            found = predicate()
            if found:
                return found
            if self.exited():
                break
        raise AssertionError(f"{what} not seen; screen:\n{self.screen().text[-3000:]}")

    def exited(self) -> bool:
        if self.code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code is not None

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while not self.exited() and time.monotonic() < deadline:
            self.pump(0.05)
        self.pump(0.05)
        return self.code

    def close(self) -> None:
        if not self.exited():
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.fd)


def kill_daemons_of_this_test() -> None:
    """Session daemons left by a failed quickstart (their environment names this test's state dir)."""
    import psutil

    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "daemons.session" in " ".join(proc.info["cmdline"] or []) \
                    and proc.environ().get("XDG_STATE_HOME") == os.environ["XDG_STATE_HOME"]:
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue


def whole_frame(term: TerminalCommand):
    """The screen's text once a frame is drawn whole (the status line last), else None."""
    def check():
        text = term.screen().text
        return text if text.splitlines()[-1].startswith("status: qr_scanning") else None
    return check


def test_screen_follows_lives_redraws():
    """The test's terminal model itself: a redraw moves up and erases, then writes over."""
    screen = Screen().feed("top\r\none\r\ntwo\r\n\r\x1b[1A\x1b[2K\x1b[1A\x1b[2KONE\r\nTWO\r\n")
    assert screen.lines[:3] == ["top", "ONE", "TWO"]


@needs_chromium
def test_quickstart_on_a_terminal_keeps_the_qr_in_place_and_the_daemon_log_in_a_file(fake_fast):
    from sqlalchemy import select as sql_select

    from blazzctl.db import Database
    from blazzctl.models import WhatsAppAccount

    state = Path(os.environ["XDG_STATE_HOME"]) / "blazz"
    db_file, log_file = state / "blazz.db", state / "logs" / "sessiond.log"
    phone = "+6281234567821"
    fake = fake_fast
    term = TerminalCommand("quickstart", "--timeout", "90", env={"BLAZZ_WEBJS_URL": fake.url})
    db = None
    try:
        first = term.until(lambda: qr_blocks(term.screen().text), 90, "a QR")[0]
        # A few rotations later: the screen still holds one QR (the newest) and one status line
        # under it, and no line of the daemon's log, which went to the file named above.
        term.until(lambda: qr_blocks(term.screen().text) and qr_blocks(term.screen().text)[-1] != first,
                   30, "a new QR in place of the first")
        time.sleep(4)
        screen = term.until(whole_frame(term), 20, "a whole frame (QR and status line)")
        assert len(qr_blocks(screen)) == 1, screen
        assert len(qr_blocks(term.output)) >= 2  # drawn more than once, each over the last
        tail = screen.splitlines()
        assert tail[-1].startswith("status: qr_scanning · new code at"), tail[-1]
        assert set(tail[-2]) <= {"█", "▀", "▄", " "}, tail[-2]  # right under the QR
        assert not LOG_LINE.search(term.output), term.output
        assert "session started" not in term.output and "claimed" not in term.output
        assert f"database: {db_file} (SQLite)" in screen, screen
        assert f"daemon log: {log_file}" in screen, screen

        log = log_file.read_text()
        assert "session started" in log and LOG_LINE.search(log), log
        assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(log_file.parent.stat().st_mode) == 0o700

        db = Database(f"sqlite:///{db_file}")
        with db.session() as s:
            account = s.scalars(sql_select(WhatsAppAccount).where(WhatsAppAccount.name == "default")).one()
            qr = account.qr_code
        fake.link(qr, phone)
        term.until(lambda: f"default: connected as {phone}" in term.screen().text, 60, "connected")
        term.until(lambda: "keeps the account online" in term.screen().text, 20, "the daemon kept")
        screen = term.screen().text
        assert not qr_blocks(screen), screen  # the QR is cleared once the phone is linked
        assert f"default: connected as {phone}" in screen.splitlines(), screen  # a line of its own
        assert "\x1b[?25h" in term.output  # the cursor is shown again

        os.kill(term.pid, signal.SIGINT)
        assert term.wait(45) == 0, term.screen().text[-2000:]
        assert "Traceback" not in term.output
    finally:
        term.close()
        kill_daemons_of_this_test()
        if db is not None:
            db.dispose()


def test_where_database_names_the_sqlite_file_and_hides_passwords(tmp_path):
    from blazzctl.services.quickstart import where_database

    assert where_database(f"sqlite:///{tmp_path}/x.db") == f"{tmp_path}/x.db (SQLite)"
    shown = where_database("mysql+pymysql://blazz:s3cret@db.example.com/blazz")
    assert "s3cret" not in shown and "db.example.com/blazz" in shown


def test_the_daemon_log_is_private_even_when_it_existed_before(tmp_path):
    from blazzctl.services.quickstart import open_daemon_log

    path = tmp_path / "new" / "state" / "logs" / "sessiond.log"
    with open_daemon_log(path) as log:
        log.write("one\n")
    for directory in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    path.chmod(0o644)
    with open_daemon_log(path) as log:  # appends, and takes the file back to 0600
        log.write("two\n")
    assert path.read_text() == "one\ntwo\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@needs_chromium
def test_quickstart_that_gives_up_says_its_daemon_stopped_too(fake_fast):
    """Unlike `account connect`, the login does not keep waiting: the daemon quickstart started stops."""
    from tests.webjs_helpers import LiveCommand

    quick = LiveCommand("quickstart", "--timeout", "10", env={"BLAZZ_WEBJS_URL": fake_fast.url})
    try:
        code = quick.wait(90)
    finally:
        quick.kill()
        kill_daemons_of_this_test()
    assert code == 1, (quick.stdout, quick.stderr)
    assert qr_blocks(quick.stdout), quick.stdout
    assert "timed out after 10 s" in quick.stderr and "run `blazzctl quickstart` again" in quick.stderr, quick.stderr
    assert "keeps waiting" not in quick.stderr and "daemon run: stopping daemons" in quick.stderr, quick.stderr


@needs_chromium
def test_the_offline_trial_links_through_the_phone_page_with_its_example_numbers(cli, fake_fast, tmp_path):
    """README's offline trial as written: the QR string from `account qr --json` pasted into the
    fake's /phone page with the page's own example number links; so does a pairing code asked for
    that number (`connect --pair-phone`), entered on the same page."""
    from playwright.sync_api import sync_playwright

    from blazzctl.db import Database
    from tests.daemon_helpers import migrate, wait_for
    from tests.webjs_helpers import WebjsFleet, account_row, wait_qr

    readme = (REPO / "README.md").read_text()
    assert "blazzctl account qr default --json" in readme and "/phone" in readme

    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    migrate(url)
    db = Database(url)
    try:
        assert cli("workspace", "create", "default", db=url).code == 0
        scanned = cli("account", "add", "--workspace", "default", "--name", "default", "--json", db=url).json()
        paired = cli("account", "add", "--workspace", "default", "--name", "paired", "--json", db=url).json()
        with WebjsFleet(tmp_path / "fleet", url, fake_fast.url) as fleet, sync_playwright() as pw:
            fleet.start(1, host="host-a")
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = browser.new_page()
                page.goto(fake_fast.url + "phone")
                link = page.locator("#link")
                example = link.locator("input[name=phone]").get_attribute("placeholder")
                assert example and example in page.inner_text("body"), example  # the number the page suggests

                assert cli("account", "connect", "default", "--no-wait", db=url).code == 0
                wait_qr(db, scanned["id"], 60, fleet)
                r = cli("account", "qr", "default", "--json", db=url)
                assert r.code == 0, r
                link.locator("textarea[name=qr]").fill(r.json()["qr"])
                link.locator("input[name=phone]").fill(example)
                link.locator("button").click()
                page.wait_for_function("document.getElementById('out').textContent.length > 0")
                assert page.inner_text("#out").startswith("200"), page.inner_text("#out")
                wait_for(lambda: account_row(db, scanned["id"])["status"] == "connected", 60,
                         message=lambda: f"connected: {account_row(db, scanned['id'])}\n{fleet.logs(40)}")
                assert account_row(db, scanned["id"])["phone_number"] == example

                # The other number on the page (the message form's sender) as a pairing phone.
                other = page.locator("#message input[name=from]").input_value()
                r = cli("account", "connect", "paired", "--pair-phone", other, "--no-wait", db=url)
                assert r.code == 0, r
                code = wait_for(lambda: pairing_code(db, paired["id"]), 60,
                                message=lambda: f"a pairing code\n{fleet.logs(40)}")
                page.evaluate("document.getElementById('out').textContent = ''")
                link.locator("textarea[name=qr]").fill("")
                link.locator("input[name=code]").fill(code)
                link.locator("input[name=phone]").fill(other)
                link.locator("button").click()
                page.wait_for_function("document.getElementById('out').textContent.length > 0")
                assert page.inner_text("#out").startswith("200"), page.inner_text("#out")
                wait_for(lambda: account_row(db, paired["id"])["status"] == "connected", 60,
                         message=lambda: f"paired: {account_row(db, paired['id'])}\n{fleet.logs(40)}")
                assert account_row(db, paired["id"])["phone_number"] == other
            finally:
                browser.close()
    finally:
        db.dispose()


def pairing_code(db, account_id: int) -> str | None:
    from blazzctl.models import WhatsAppAccount

    with db.session() as s:
        return s.get(WhatsAppAccount, account_id).pairing_code
