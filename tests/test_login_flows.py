"""Logging in end to end: a pairing code instead of a QR, and `blazzctl quickstart` (offline and online).

Real daemon processes and real Chromium against the fake WhatsApp Web (``tests/fakes/wa_web``) on
127.0.0.1; the embedded SQLite database. `connect` and `quickstart` run as subprocesses whose output is
read while they run (``LiveCommand``).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from tests.daemon_helpers import migrate, wait_for
from tests.webjs_helpers import LiveCommand, WebjsFleet, account_row, devices_of, qr_blocks, wait_qr

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} "
                                "(apt-get install -y chromium)")

PAIRING = re.compile(r"pairing code: ([A-Z0-9]{8})\b")


def pairing_code(db, account_id: int) -> str | None:
    from blazzctl.models import WhatsAppAccount

    with db.session() as s:
        return s.get(WhatsAppAccount, account_id).pairing_code


def command_count(db) -> int:
    from sqlalchemy import func, select

    from blazzctl.models import AccountCommand

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(AccountCommand)) or 0


# --- 1. pairing code -------------------------------------------------------------------------------------

def test_connect_with_pair_phone_shows_a_pairing_code_and_links_with_it(cli, fake, tmp_path):
    from blazzctl.db import Database

    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    migrate(url)
    db = Database(url)
    try:
        assert cli("workspace", "create", "acme", db=url).code == 0
        account = cli("account", "add", "--workspace", "acme", "--name", "paired", "--json", db=url).json()
        aid, phone = account["id"], "+6281234567801"

        # An invalid phone: usage error, nothing requested, nothing written on the account.
        before, commands = account_row(db, aid), command_count(db)
        bad = cli("account", "connect", "paired", "--workspace", "acme", "--pair-phone", "+12", "--no-wait",
                  db=url)
        assert bad.code == 2, bad
        assert "phone" in bad.stderr
        assert command_count(db) == commands and account_row(db, aid) == before
        assert pairing_code(db, aid) is None

        with WebjsFleet(tmp_path / "fleet", url, fake.url) as fleet:
            fleet.start(1, host="host-a")
            # Nobody enters the code before --timeout: connect fails naming the timeout. (The session
            # is not closed by that: a later connect shows the code it still holds, or a new one.)
            late = LiveCommand("account", "connect", "paired", "--workspace", "acme", "--pair-phone", phone,
                               "--timeout", "8", env={"BLAZZ_DATABASE_URL": url})
            try:
                assert late.wait(40) == 1, (late.stdout, late.stderr)
            finally:
                late.kill()
            assert PAIRING.search(late.stdout), (late.stdout, late.stderr, fleet.logs(40))
            assert "timed out" in late.stderr, late.stderr

            connect = LiveCommand("account", "connect", "paired", "--workspace", "acme", "--pair-phone", phone,
                                  "--timeout", "60", env={"BLAZZ_DATABASE_URL": url})
            try:
                shown = wait_for(lambda: PAIRING.search(connect.stdout) or connect.proc.poll() is not None, 60,
                                 message=lambda: f"a pairing code in connect's output: {connect.stdout!r} "
                                 f"{connect.stderr!r}\n{fleet.logs(40)}")
                assert shown is not True, (connect.stdout, connect.stderr)
                code = shown.group(1)
                row = account_row(db, aid)
                assert (row["status"], row["status_reason"]) == ("qr_scanning", "pairing_code"), row
                assert pairing_code(db, aid) == code
                assert row["qr_code"] is None, "a QR was stored while pairing with a code"
                assert "status: qr_scanning (pairing_code)" in connect.stdout
                assert not qr_blocks(connect.stdout), connect.stdout

                fake.link(code=code, phone=phone)
                assert connect.wait(60) == 0, (connect.stdout, connect.stderr)
            finally:
                connect.kill()
            assert phone in connect.lines[-1] and "connected" in connect.lines[-1], connect.stdout
            row = account_row(db, aid)
            assert (row["status"], row["phone_number"], row["qr_code"]) == ("connected", phone, None)
            assert pairing_code(db, aid) is None
            assert len(devices_of(fake, phone)) == 1

            # A QR login is waiting already when a pairing code is asked for: the code is shown
            # (the session starts again in that mode), not the QR.
            other = cli("account", "add", "--workspace", "acme", "--name", "switched", "--json", db=url).json()
            assert cli("account", "connect", "switched", "--workspace", "acme", "--no-wait", db=url).code == 0
            wait_qr(db, other["id"], 60, fleet)
            second = "+6281234567804"
            connect = LiveCommand("account", "connect", "switched", "--workspace", "acme", "--pair-phone", second,
                                  "--timeout", "60", env={"BLAZZ_DATABASE_URL": url})
            try:
                shown = wait_for(lambda: PAIRING.search(connect.stdout) or connect.proc.poll() is not None, 60,
                                 message=lambda: f"a pairing code: {connect.stdout!r} {connect.stderr!r}")
                assert shown is not True, (connect.stdout, connect.stderr)
                assert account_row(db, other["id"])["qr_code"] is None, "the QR of the last session is stale"
                connect.kill()

                # And back: a plain connect while the pairing code waits draws a QR again.
                connect = LiveCommand("account", "connect", "switched", "--workspace", "acme", "--timeout", "60",
                                      env={"BLAZZ_DATABASE_URL": url})
                wait_for(lambda: qr_blocks(connect.stdout.split("pairing code:")[-1]), 60,
                         message=lambda: f"a QR again: {connect.stdout!r} {connect.stderr!r}")
                assert pairing_code(db, other["id"]) is None
                connect.kill()

                connect = LiveCommand("account", "connect", "switched", "--workspace", "acme", "--pair-phone",
                                      second, "--timeout", "60", env={"BLAZZ_DATABASE_URL": url})
                shown = wait_for(lambda: PAIRING.search(connect.stdout) or connect.proc.poll() is not None, 60,
                                 message=lambda: f"a pairing code: {connect.stdout!r} {connect.stderr!r}")
                assert shown is not True, (connect.stdout, connect.stderr)
                fake.link(code=shown.group(1), phone=second)
                assert connect.wait(60) == 0, (connect.stdout, connect.stderr)
            finally:
                connect.kill()
            assert second in connect.lines[-1], connect.stdout
            assert pairing_code(db, other["id"]) is None

            # A code waits for one phone and the operator asks for another: a code for that phone.
            third = cli("account", "add", "--workspace", "acme", "--name", "rephoned", "--json", db=url).json()
            first_phone, right_phone = "+6281234567805", "+6281234567806"
            assert cli("account", "connect", "rephoned", "--workspace", "acme", "--pair-phone", first_phone,
                       "--no-wait", db=url).code == 0
            old_code = wait_for(lambda: pairing_code(db, third["id"]), 60,
                                message=lambda: f"a pairing code for {first_phone}\n{fleet.logs(40)}")
            connect = LiveCommand("account", "connect", "rephoned", "--workspace", "acme", "--pair-phone",
                                  right_phone, "--timeout", "60", env={"BLAZZ_DATABASE_URL": url})
            try:
                def new_code():
                    codes = [m for m in PAIRING.finditer(connect.stdout) if m.group(1) != old_code]
                    return codes[-1] if codes else connect.proc.poll() is not None

                shown = wait_for(new_code, 60,
                                 message=lambda: f"a new pairing code: {connect.stdout!r} {connect.stderr!r}")
                assert shown is not True, (connect.stdout, connect.stderr)
                fake.link(code=shown.group(1), phone=right_phone)  # the fake refuses a code of another phone
                assert connect.wait(60) == 0, (connect.stdout, connect.stderr)
            finally:
                connect.kill()
            assert account_row(db, third["id"])["phone_number"] == right_phone
    finally:
        db.dispose()


# --- 2, 3. quickstart ----------------------------------------------------------------------------------------

def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sessiond_processes() -> list[psutil.Process]:
    """Session daemons started from this test run (their environment names this test's state dir)."""
    state = os.environ["XDG_STATE_HOME"]
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if "daemons.session" in " ".join(proc.info["cmdline"] or []) \
                    and proc.environ().get("XDG_STATE_HOME") == state:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def test_quickstart_offline_fails_fast_naming_the_url(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/"
    started = time.monotonic()
    quick = LiveCommand("quickstart", "--timeout", "30", env={"BLAZZ_WEBJS_URL": url})
    try:
        code = quick.wait(30)
    finally:
        quick.kill()
    elapsed = time.monotonic() - started
    assert code == 1, (quick.stdout, quick.stderr)
    assert url in quick.stderr, quick.stderr
    assert elapsed < 20, elapsed  # behaviour (fails fast rather than waiting out --timeout), generous margin
    assert not sessiond_processes()


def daemon_rows(db) -> list[tuple[str, str]]:
    from sqlalchemy import select

    from blazzctl.models import SessionDaemon

    with db.session() as s:
        return [(name, str(status)) for name, status in s.execute(select(SessionDaemon.name, SessionDaemon.status))]


def stop_quickstart(quick: LiveCommand) -> int:
    quick.proc.send_signal(signal.SIGINT)
    return quick.wait(45)


def test_quickstart_links_a_phone_keeps_the_daemon_and_reuses_the_login(fake, tmp_path):
    from blazzctl.db import Database

    env = {"BLAZZ_WEBJS_URL": fake.url}
    db_file = Path(os.environ["XDG_STATE_HOME"]) / "blazz" / "blazz.db"
    phone = "+6281234567802"
    leftovers: list[psutil.Process] = []

    quick = LiveCommand("quickstart", "--timeout", "60", env=env)
    db = None
    try:
        wait_for(lambda: qr_blocks(quick.stdout) or quick.proc.poll() is not None, 60,
                 message=lambda: f"a QR in quickstart's output: {quick.stdout!r} {quick.stderr!r}")
        assert quick.proc.poll() is None, (quick.stdout, quick.stderr)
        assert "created account 'default' in workspace 'default'" in quick.stdout
        assert "started a session daemon" in quick.stdout
        # Piped: plain lines, no cursor movement; the daemon's log in its file, named here.
        log_file = db_file.parent / "logs" / "sessiond.log"
        assert f"database: {db_file} (SQLite)" in quick.stdout and f"daemon log: {log_file}" in quick.stdout
        assert "\x1b[" not in quick.stdout
        wait_for(lambda: "session started" in log_file.read_text(), 20, message="the daemon's log in its file")
        db = Database(f"sqlite:///{db_file}")
        from sqlalchemy import select

        from blazzctl.models import WhatsAppAccount

        with db.session() as s:
            aid = s.scalars(select(WhatsAppAccount.id).where(WhatsAppAccount.name == "default")).one()
        qr = account_row(db, aid)["qr_code"]
        assert qr, account_row(db, aid)
        fake.link(qr, phone)
        wait_for(lambda: f"default: connected as {phone}" in quick.stdout, 60,
                 message=lambda: f"connected in quickstart's output: {quick.stdout!r} {quick.stderr!r}")
        wait_for(lambda: "keeps the account online" in quick.stdout, 10, message=lambda: quick.stdout)
        assert quick.proc.poll() is None, "quickstart exited instead of keeping the daemon running"
        leftovers = sessiond_processes()
        assert len(leftovers) == 1, leftovers
        # The login is archived within ~10 s of ready: the second run restores it from there.
        wait_for(lambda: account_row(db, aid)["auth_saved_at"] is not None, 20, message="a login archive")

        assert stop_quickstart(quick) == 0, (quick.stdout, quick.stderr)
        assert "session started" not in quick.stderr and "daemon run: all daemons stopped" in quick.stderr
        row = account_row(db, aid)
        assert row["owner"] is None, row
        assert [status for _, status in daemon_rows(db)] == ["stopped"], daemon_rows(db)
        assert not sessiond_processes()

        # Second run: the same account, its login restored: no QR, connected again.
        quick = LiveCommand("quickstart", "--timeout", "60", env=env)
        wait_for(lambda: f"default: connected as {phone}" in quick.stdout or quick.proc.poll() is not None, 60,
                 message=lambda: f"connected again: {quick.stdout!r} {quick.stderr!r}")
        assert quick.proc.poll() is None, (quick.stdout, quick.stderr)
        assert "using account 'default' in workspace 'default'" in quick.stdout
        assert not qr_blocks(quick.stdout) and "qr_scanning" not in quick.stdout, quick.stdout
        assert account_row(db, aid)["status"] == "connected"
        wait_for(lambda: "keeps the account online" in quick.stdout, 10, message=lambda: quick.stdout)
        leftovers = sessiond_processes()
        assert stop_quickstart(quick) == 0, (quick.stdout, quick.stderr)
        row = account_row(db, aid)
        assert row["owner"] is None, row
        assert {status for _, status in daemon_rows(db)} == {"stopped"}, daemon_rows(db)
        assert not sessiond_processes()
    finally:
        quick.kill()
        leftovers += sessiond_processes()
        for proc in leftovers:
            try:
                for child in proc.children(recursive=True):
                    child.kill()
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        if db is not None:
            db.dispose()


def test_quickstart_interrupted_while_the_qr_is_shown_stops_its_daemon(fake, tmp_path):
    from blazzctl.db import Database

    db_file = Path(os.environ["XDG_STATE_HOME"]) / "blazz" / "blazz.db"
    quick = LiveCommand("quickstart", "--timeout", "60", env={"BLAZZ_WEBJS_URL": fake.url})
    db = None
    try:
        wait_for(lambda: qr_blocks(quick.stdout) or quick.proc.poll() is not None, 60,
                 message=lambda: f"a QR in quickstart's output: {quick.stdout!r} {quick.stderr!r}")
        assert quick.proc.poll() is None, (quick.stdout, quick.stderr)
        assert len(sessiond_processes()) == 1
        started = time.monotonic()
        quick.proc.send_signal(signal.SIGINT)
        try:
            code = quick.wait(45)
        except subprocess.TimeoutExpired:
            log = db_file.parent / "logs" / "sessiond.log"
            pytest.fail(f"quickstart still running 45 s after Ctrl-C: {quick.stdout[-1500:]!r} {quick.stderr!r}; "
                        f"its daemon's log: {log.read_text()[-4000:] if log.exists() else 'none'} "
                        f"processes: {[(p.pid, p.status()) for p in sessiond_processes()]}")
        assert code == 130, (quick.stdout, quick.stderr)
        assert time.monotonic() - started < 30  # the daemon drains; generous margin
        assert not sessiond_processes()
        db = Database(f"sqlite:///{db_file}")
        row = account_row(db, 1)
        assert row["owner"] is None and row["qr_code"] is None, row
        assert {status for _, status in daemon_rows(db)} == {"stopped"}, daemon_rows(db)
    finally:
        quick.kill()
        for proc in sessiond_processes():
            proc.kill()
        if db is not None:
            db.dispose()


def test_connect_that_gives_up_says_the_login_goes_on_and_disconnect_shows_no_qr(cli, fake, tmp_path):
    """`connect --timeout` ends only the wait: it says so and how to stop the login; that
    `disconnect` (of an account showing QR codes) prints statuses, not the QR it is ending."""
    from blazzctl.db import Database

    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    migrate(url)
    db = Database(url)
    try:
        assert cli("workspace", "create", "acme", db=url).code == 0
        account = cli("account", "add", "--workspace", "acme", "--name", "front desk", "--json", db=url).json()
        with WebjsFleet(tmp_path / "fleet", url, fake.url) as fleet:
            fleet.start(1, host="host-a")
            r = cli("account", "connect", "front desk", "--workspace", "acme", "--timeout", "8", db=url)
            assert r.code == 1, r
            assert qr_blocks(r.stdout), r.stdout  # a login: the QR was shown
            assert "timed out after 8 s" in r.stderr and "The login keeps waiting" in r.stderr, r.stderr
            assert "blazzctl account qr 'front desk' --workspace acme" in r.stderr, r.stderr
            stop = re.search(r"To stop it: (blazzctl account disconnect .*)", r.stderr)
            assert stop and stop.group(1) == "blazzctl account disconnect 'front desk' --workspace acme", r.stderr
            row = account_row(db, account["id"])
            assert (row["status"], row["desired_state"]) == ("qr_scanning", "running") and row["qr_code"], row

            # The command it names, as printed (the quoted name is one argument).
            r = cli(*shlex.split(stop.group(1))[1:], db=url)
            assert r.code == 0, r
            assert not qr_blocks(r.stdout) and "Scan with WhatsApp" not in r.stdout, r.stdout
            assert r.stdout.splitlines()[-1] == "front desk: disconnected", r.stdout
            row = account_row(db, account["id"])
            assert (row["status"], row["desired_state"], row["qr_code"]) == ("disconnected", "stopped", None), row
    finally:
        db.dispose()


def test_an_unanswered_pairing_code_expires_and_fails_the_login(cli, fake, tmp_path):
    """A pairing code nobody enters ends like an unscanned QR: failed, and the browser is let go."""
    from blazzctl.db import Database

    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    migrate(url)
    db = Database(url)
    try:
        assert cli("workspace", "create", "acme", db=url).code == 0
        account = cli("account", "add", "--workspace", "acme", "--name", "slow", "--json", db=url).json()
        with WebjsFleet(tmp_path / "fleet", url, fake.url, webjs={"pairing_timeout": 6}) as fleet:
            fleet.start(1, host="host-a")
            r = cli("account", "connect", "slow", "--workspace", "acme", "--pair-phone", "+6281234567809",
                    "--timeout", "60", db=url)
            assert r.code == 1, r
            assert "pairing_code_expired" in r.stderr
            row = account_row(db, account["id"])
            assert row["status"] == "failed" and row["owner"] is None
            assert pairing_code(db, account["id"]) is None
    finally:
        db.dispose()
