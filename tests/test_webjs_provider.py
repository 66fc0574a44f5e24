"""The built-in WhatsApp Web provider end to end: real daemon processes, real Chromium, the fake WhatsApp Web.

Every daemon here runs the default driver (``blazzctl.providers.webjs``) with ``providers.webjs.url``
pointing at ``tests/fakes/wa_web`` on 127.0.0.1, and short daemon timings (leases of 6 s renewed
every 0.5 s). The "phone" is the fake's control API. One fake serves the whole module.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from blazzctl import proctree
from tests.daemon_helpers import migrate, wait_for
from tests.webjs_helpers import (
    LiveCommand,
    Recorder,
    WebjsFleet,
    account_row,
    archive_count,
    decode_qr_image,
    devices_of,
    profile_processes,
    qr_blocks,
    terminal_qr_to_pbm,
    wait_qr,
    wait_status,
    zbarimg,
)

CHROMIUM = "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} "
                                "(apt-get install -y chromium)")


@pytest.fixture
def database_of():
    """``database_of(url)``: a migrated ``Database`` on ``url`` (disposed at the end)."""
    from blazzctl.db import Database

    opened = []

    def make(url: str):
        migrate(url)
        db = Database(url)
        opened.append(db)
        return db

    yield make
    for db in opened:
        db.dispose()


def add_account(cli, url: str, name: str, workspace: str = "acme") -> dict:
    if cli("workspace", "show", workspace, db=url).code != 0:
        assert cli("workspace", "create", workspace, db=url).code == 0
    result = cli("account", "add", "--workspace", workspace, "--name", name, "--json", db=url)
    assert result.code == 0, result
    return result.json()


def new_key(cli, path: Path) -> Path:
    result = cli("key", "generate", "--file", str(path))
    assert result.code == 0, result
    assert (path.stat().st_mode & 0o777) == 0o600
    return path


def link(fake, db, account_id: int, phone: str, fleet: WebjsFleet) -> dict:
    """Scan the account's current QR with ``phone`` and wait until it is connected."""
    fake.link(wait_qr(db, account_id, 60, fleet), phone)
    return wait_status(db, account_id, "connected", 60, fleet)


# --- 1-4: connect with a QR, the QR's forms, handover to another host, logout from the phone ------------

@pytest.mark.parametrize("per_browser", [8, 1], ids=["pooled", "own-browser"])
def test_connect_qr_handover_to_another_host_then_logout_from_phone(cli, fake, mariadb_url, database_of, tmp_path,
                                                                    per_browser):
    """Pooled (several accounts per Chromium, the login a snapshot) and with a Chromium and a
    profile directory of its own (the login a profile archive): the same story."""
    db = database_of(mariadb_url)
    key = new_key(cli, tmp_path / "keys" / "session.key")
    account = add_account(cli, mariadb_url, "sales")
    aid, phone = account["id"], "+4915550001" if per_browser > 1 else "+4915550011"
    pooled = per_browser > 1
    with WebjsFleet(tmp_path / "fleet", mariadb_url, fake.url, key_file=key,
                    webjs={"accounts_per_browser": per_browser}) as fleet:
        first = fleet.start(1, host="host-a")
        connect = LiveCommand("account", "connect", "sales", "--workspace", "acme", "--timeout", "60",
                              env={"BLAZZ_DATABASE_URL": mariadb_url})
        try:
            # 1. The QR: in the database, and drawn by `connect` in the terminal.
            qr = wait_qr(db, aid, 60, fleet)
            assert len(qr.split(",")) == 5 and qr.startswith("2@")
            row = account_row(db, aid)
            assert row["status"] == "qr_scanning" and row["qr_expires_at"] is not None
            assert row["owner"] == first.name
            drawings = wait_for(lambda: qr_blocks(connect.stdout), 30, message=lambda: f"a QR in connect's "
                                f"output: {connect.stdout!r} {connect.stderr!r}")
            assert "status: qr_scanning" in connect.stdout
            if zbarimg():
                assert decode_qr_image(terminal_qr_to_pbm(drawings[-1], tmp_path / "terminal.pbm")) == [qr]

            # 2. `account qr`: --json and --png.
            shown = cli("account", "qr", "sales", "--workspace", "acme", "--json", db=mariadb_url)
            assert shown.code == 0, shown
            assert set(shown.json()) == {"qr", "expires_at"} and shown.json()["qr"] == qr
            assert shown.json()["expires_at"]
            png = tmp_path / "qr.png"
            saved = cli("account", "qr", "sales", "--workspace", "acme", "--png", str(png), db=mariadb_url)
            assert saved.code == 0, saved
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if zbarimg():
                assert decode_qr_image(png) == [qr]

            # The phone scans it: connected, with the number in E.164; connect exits 0 naming it.
            fake.link(qr, phone.lstrip("+"))
            assert connect.wait(60) == 0, (connect.stdout, connect.stderr)
        finally:
            connect.kill()
        assert phone in connect.lines[-1] and "connected" in connect.lines[-1]
        row = account_row(db, aid)
        assert (row["status"], row["phone_number"], row["qr_code"]) == ("connected", phone, None)
        assert len(devices_of(fake, phone)) == 1

        # The login is archived within 10 s of ready.
        wait_for(lambda: account_row(db, aid)["auth_saved_at"] is not None and archive_count(db, aid)[0] >= 1,
                 15, message="a login archive")
        shown = cli("account", "show", str(aid), "--json", db=mariadb_url).json()
        assert shown["auth_saved_at"] is not None
        assert f"kind={'snapshot' if pooled else 'profile'}" in first.log.read_text()

        # 3. The owning daemon and its browser die; a daemon on another host (its own state
        # directory, the same key file) restores the login from the database: no new QR.
        seen = Recorder(db, aid)
        with seen:
            fleet.kill(first)
            second = fleet.start(1, host="host-b")
            wait_for(lambda: seen.reached("connected", second.name), 60,
                     message=lambda: f"connected by {second.name}: {seen.seen}\n{fleet.logs(40)}")
            row = account_row(db, aid)
            assert seen.qrs() == [], seen.seen
            assert "qr_scanning" not in seen.statuses(), seen.seen
            assert row["phone_number"] == phone and row["qr_code"] is None
            assert len(devices_of(fake, phone)) == 1, "the phone linked a second device"
            restored = fleet.profile("host-b", account["session_id"])
            assert restored != fleet.profile("host-a", account["session_id"])
            assert restored.is_dir() != pooled  # a pooled context keeps its storage in memory

            # 4. Logged out from the phone: logged_out, the archives and the local profile are gone.
            fake.logout(phone)
            row = wait_status(db, aid, "logged_out", 30, fleet)
        assert seen.qrs() == [], seen.seen
        assert row["auth_saved_at"] is None and row["desired_state"] == "stopped"
        assert archive_count(db, aid) == (0, 0)
        wait_for(lambda: not restored.exists(), 15, message=f"{restored} deleted")
        assert second.alive()

        # Linked again (archive versions start over), then back to the first host: its profile
        # still holds the old, dead login, which must not pass for the new one.
        assert cli("account", "connect", "sales", "--workspace", "acme", "--no-wait", db=mariadb_url).code == 0
        fake.link(wait_qr(db, aid, 60, fleet), phone)
        wait_for(lambda: seen.reached("connected", second.name) and account_row(db, aid)["auth_saved_at"], 60,
                 message=lambda: f"connected and archived again: {account_row(db, aid)}")
        stale = fleet.profile("host-a", account["session_id"])
        assert stale.is_dir() != pooled
        with Recorder(db, aid) as seen:
            fleet.kill(second)
            third = fleet.start(1, host="host-a")
            wait_for(lambda: seen.reached("connected", third.name), 60,
                     message=lambda: f"connected by {third.name}: {seen.seen}\n{fleet.logs(40)}")
        assert seen.qrs() == [], seen.seen


# --- 5, 6, 8: one SQLite database and one daemon (max_qr 2) for several independent accounts --------------

@pytest.fixture(scope="module")
def shared(fake, tmp_path_factory):
    """A daemon (host-a, its session key generated in its state directory) on a SQLite file."""
    from types import SimpleNamespace

    from blazzctl.db import Database

    root = tmp_path_factory.mktemp("webjs-sqlite")
    url = f"sqlite:///{root / 'blazz.db'}"
    migrate(url)
    db = Database(url)
    fleet = WebjsFleet(root / "fleet", url, fake.url, webjs={"max_qr": 2})
    try:
        daemon = fleet.start(1, host="host-a")
        yield SimpleNamespace(url=url, db=db, fleet=fleet, daemon=daemon)
    finally:
        fleet.close()
        db.dispose()


def connect_and_link(cli, env, name: str, phone: str) -> dict:
    account = add_account(cli, env.url, name)
    assert cli("account", "connect", str(account["id"]), "--no-wait", db=env.url).code == 0
    row = link(env.fake, env.db, account["id"], phone, env.fleet)
    assert row["phone_number"] == phone and row["owner"] == env.daemon.name
    return account


@pytest.fixture
def env(shared, fake):
    shared.fake = fake
    assert shared.daemon.alive(), shared.fleet.logs(40)
    yield shared
    assert shared.daemon.alive(), shared.fleet.logs(40)


def test_conflict_fails_the_account_with_reason_conflict(cli, env, fake):
    phone = "+4915550005"
    account = connect_and_link(cli, env, "conflicted", phone)
    fake.conflict(phone)
    row = wait_status(env.db, account["id"], "failed", 30, env.fleet)
    assert row["status_reason"] == "conflict"
    assert "another browser" in row["last_error"] and "blazzctl account connect" in row["last_error"]
    assert row["desired_state"] == "stopped" and row["owner"] is None
    shown = cli("account", "show", str(account["id"]), "--json", db=env.url).json()
    assert shown["status"] == "failed"


def test_unscanned_qr_codes_expire_after_max_qr_rotations(cli, env, fake, tmp_path):
    account = add_account(cli, env.url, "never-scanned")
    fake.set_ref_interval(1.5)
    try:
        with Recorder(env.db, account["id"]) as seen:
            connect = LiveCommand("account", "connect", "never-scanned", "--workspace", "acme", "--timeout", "60",
                                  env={"BLAZZ_DATABASE_URL": env.url})
            try:
                code = connect.wait(60)
            finally:
                connect.kill()
    finally:
        fake.set_ref_interval(20.0)
    assert code == 1, (connect.stdout, connect.stderr)
    assert "qr_expired" in connect.stderr
    row = account_row(env.db, account["id"])
    assert (row["status"], row["status_reason"], row["qr_code"]) == ("failed", "qr_expired", None)
    assert row["desired_state"] == "stopped"
    assert "2 QR codes" in row["last_error"]
    assert len(set(seen.qrs())) == 2, seen.seen  # max_qr: 2 codes shown, the third ends the attempt
    assert len(qr_blocks(connect.stdout)) == 2, connect.stdout


def test_killed_browser_is_relaunched_and_reconnects_without_a_qr(cli, env, fake):
    phone = "+4915550008"
    account = connect_and_link(cli, env, "crashy", phone)
    # The daemon pools its browsers (accounts_per_browser 8): the account's Chromium is the
    # daemon's pool browser, whose profile is scratch under browsers/ in its state directory.
    pools = env.fleet.state_dir("host-a") / "session-1" / "browsers"
    # Wait for the first login archive, so a relaunch has nothing left to write at start.
    wait_for(lambda: account_row(env.db, account["id"])["auth_saved_at"], 15, message="a login archive")
    live = [d for d in pools.iterdir() if profile_processes(env.daemon.pid, d)]
    assert len(live) == 1, f"one pool browser holds the daemon's one live account: {live}"
    profile = live[0]
    browsers = profile_processes(env.daemon.pid, profile)
    with Recorder(env.db, account["id"]) as seen:
        for proc in browsers:
            proc.kill()
        wait_for(lambda: "disconnected" in seen.statuses(), 30, message=lambda: f"{seen.seen}\n{env.fleet.logs(30)}")
        wait_for(lambda: seen.reached("connected", env.daemon.name), 60,
                 message=lambda: f"reconnected: {seen.seen}\n{env.fleet.logs(30)}")
    assert seen.qrs() == [], seen.seen
    reasons = [r for s, r, *_ in seen.seen if s == "disconnected"]
    assert any("browser" in (r or "") or "crash" in (r or "") for r in reasons), seen.seen
    assert len(devices_of(fake, phone)) == 1, "the phone linked a second device"
    relaunched = [p for d in pools.iterdir() for p in profile_processes(env.daemon.pid, d)]
    assert relaunched and not {p.pid for p in relaunched} & {p.pid for p in browsers}
    wait_for(lambda: not profile.exists(), 10, message="the dead browser's scratch profile removed")
    row = account_row(env.db, account["id"])
    assert (row["status"], row["phone_number"], row["owner"]) == ("connected", phone, env.daemon.name)


# --- 7: a login archive this host's key cannot open --------------------------------------------------

def test_archive_sealed_with_another_key_fails_that_account_only(cli, fake, sqlite_url, database_of, tmp_path):
    from sqlalchemy import update

    from blazzctl import keys
    from blazzctl.models import WhatsAppAccount
    from blazzctl.services import auth_archives

    db = database_of(sqlite_url)
    key_a = keys.read(new_key(cli, tmp_path / "a.key"))
    key_b = new_key(cli, tmp_path / "b.key")
    victim = add_account(cli, sqlite_url, "moved")
    healthy = add_account(cli, sqlite_url, "fresh")
    # Host A archived a login of "moved" under key A (while holding its lease).
    with db.session() as s:
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == victim["id"])
                  .values(owner="host-a:1", lease_epoch=1))
    version = auth_archives.save(db, account_id=victim["id"], owner="host-a:1", epoch=1,
                                 plain=b"a tar of Default/IndexedDB" * 100, key=key_a)
    with db.session() as s:
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == victim["id"]).values(owner=None))
    assert version == 1

    with WebjsFleet(tmp_path / "fleet", sqlite_url, fake.url, key_file=key_b) as fleet:
        daemon = fleet.start(1, host="host-b")
        for ref in ("moved", "fresh"):
            assert cli("account", "connect", ref, "--workspace", "acme", "--no-wait", db=sqlite_url).code == 0
        row = wait_status(db, victim["id"], "failed", 60, fleet)
        assert row["status_reason"] == "auth_archive_undecryptable"
        assert "cannot be decrypted" in row["last_error"] and "session_key_file" in row["last_error"]
        assert row["desired_state"] == "stopped"
        assert archive_count(db, victim["id"])[0] == 1  # kept: the right key can still open it
        # The daemon lives on and serves its other account.
        row = link(fake, db, healthy["id"], "+4915550007", fleet)
        assert row["owner"] == daemon.name and daemon.alive()


# --- a frozen daemon's browser leaves WhatsApp by itself -------------------------------------------------

def test_a_frozen_daemons_page_leaves_whatsapp_at_its_lease_deadline(cli, fake, database_of, tmp_path):
    """Experiment 2: Chromium is a separate process and keeps running while the daemon is
    SIGSTOPped. The page holds the fence deadline the daemon pushed after its last renewal and,
    past it, leaves WhatsApp Web by itself (its connection closes) before the lease could expire
    and another daemon start a second browser on the login. Thawed, the daemon reconnects with
    no QR."""
    import signal
    import time

    from tests.webjs_helpers import WEBJS_FAST

    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    db = database_of(url)
    fleet = WebjsFleet(tmp_path / "fleet", url, fake.url)
    try:
        daemon = fleet.start(1, host="host-a")
        account = add_account(cli, url, "frozen")
        assert cli("account", "connect", str(account["id"]), "--no-wait", db=url).code == 0
        phone = "+4915550021"
        link(fake, db, account["id"], phone, fleet)

        def pages():  # the pages of this phone's device
            state = fake.state()
            conns = {d["active_conn"] for d in state["accounts"].get(phone.lstrip("+"), {}).get("devices", [])}
            return [pg for pg in state["pages"] if pg["conn"] in conns]

        def live_pages():
            return [pg for pg in pages() if pg["alive"]]

        wait_for(lambda: len(live_pages()) == 1, 15, message=pages)
        time.sleep(1.0)  # a renewal has pushed a deadline into the page
        ttl = WEBJS_FAST["lease_ttl"]
        frozen_at = time.time()
        daemon.send(signal.SIGSTOP)
        try:
            wait_for(lambda: not live_pages(), ttl + 5, message=pages)
            left_after = time.time() - frozen_at
            assert left_after < ttl, f"the page left WhatsApp {left_after:.1f} s after the freeze (TTL {ttl})"
            assert [pg["closed"] for pg in pages()] == [True]
        finally:
            daemon.send(signal.SIGCONT)
        wait_status(db, account["id"], "connected", 60, fleet)
        wait_for(lambda: len(live_pages()) == 1, 30, message=pages)
        assert len(devices_of(fake, phone)) == 1, "reconnected by a new QR scan"
        assert "the page passed its lease deadline" in daemon.log.read_text()
    finally:
        fleet.close()


# --- a login moves between a browser of its own and the pool, both ways -----------------------------------

def test_a_login_moves_from_a_profile_into_the_pool_and_back_with_no_qr(cli, fake, database_of, tmp_path):
    """Linked with accounts_per_browser 1 (a profile archive). A daemon with 8 per browser starts
    it once with a Chromium of its own (the newest archive is a profile) and archives it as a
    snapshot (its key was made exportable by the init script); the next daemon runs it pooled;
    back to 1, the snapshot is written into a fresh profile and archived as a profile again.
    Never a QR, always the same linked device."""
    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    db = database_of(url)
    key = new_key(cli, tmp_path / "keys" / "session.key")
    account = add_account(cli, url, "mover")
    aid, phone = account["id"], "+4915550031"

    def archived(daemon, kind: str) -> bool:
        return f"kind={kind}" in daemon.log.read_text()

    with WebjsFleet(tmp_path / "fleet", url, fake.url, key_file=key) as fleet:
        own = fleet.start(1, host="host-a", webjs={"accounts_per_browser": 1})
        assert cli("account", "connect", str(aid), "--no-wait", db=url).code == 0
        link(fake, db, aid, phone, fleet)
        wait_for(lambda: archived(own, "profile"), 20, message=lambda: f"a profile archive\n{fleet.logs(30)}")
        with Recorder(db, aid) as seen:
            steps = [("host-b", 8, "snapshot", False), ("host-c", 8, "snapshot", True), ("host-d", 1, "profile", False)]
            previous = own
            for host, per_browser, kind, pooled in steps:
                fleet.kill(previous)
                daemon = fleet.start(1, host=host, webjs={"accounts_per_browser": per_browser})
                wait_for(lambda: seen.reached("connected", daemon.name), 60,
                         message=lambda: f"connected by {daemon.name}: {seen.seen}\n{fleet.logs(40)}")
                wait_for(lambda: archived(daemon, kind), 30,
                         message=lambda: f"{daemon.name} archived a {kind}\n{fleet.logs(40)}")
                log_text = daemon.log.read_text()
                assert ("browser started" in log_text) == pooled, log_text
                assert ("restoring login snapshot" in log_text) == (host != "host-b"), log_text
                previous = daemon
        assert seen.qrs() == [], seen.seen
        assert "qr_scanning" not in seen.statuses(), seen.seen
        assert len(devices_of(fake, phone)) == 1, "the phone linked a second device"


def test_a_login_that_cannot_be_snapshotted_says_so_and_keeps_its_last_archive(cli, database_of, tmp_path):
    """The page makes a key in a Web Worker (the fake's `worker_key`): no snapshot can carry it.
    The account stays connected, says why in `last_error`, and keeps its last archive, which
    another host still restores with no QR."""
    import time

    from sqlalchemy import func, select

    from blazzctl.models import AuthArchive
    from tests.fakes.wa_web import FakeWhatsAppWeb

    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    db = database_of(url)
    key = new_key(cli, tmp_path / "keys" / "session.key")
    account = add_account(cli, url, "workerkey")
    aid, phone = account["id"], "+4915550041"

    def newest_version():
        with db.session() as s:
            return s.scalar(select(func.max(AuthArchive.version)).where(AuthArchive.whatsapp_account_id == aid))

    with FakeWhatsAppWeb(port=0, ref_interval=20.0) as fake, \
            WebjsFleet(tmp_path / "fleet", url, fake.url, key_file=key, webjs={"snapshot_after": 1}) as fleet:
        first = fleet.start(1, host="host-a")
        assert cli("account", "connect", str(aid), "--no-wait", db=url).code == 0
        link(fake, db, aid, phone, fleet)
        wait_for(lambda: newest_version(), 20, message="a first archive")
        fake.behave(worker_key=True)
        wait_for(lambda: "login not archived" in (account_row(db, aid)["last_error"] or ""), 30,
                 message=lambda: f"last_error says so: {account_row(db, aid)}\n{fleet.logs(30)}")
        row = account_row(db, aid)
        assert row["status"] == "connected" and "cannot be exported" in row["last_error"], row
        assert "IndexedDB wawc_worker/keys" in row["last_error"]
        kept = newest_version()
        time.sleep(3)  # storage keeps changing; no snapshot may replace the archive meanwhile
        assert newest_version() == kept
        with Recorder(db, aid) as seen:
            fleet.kill(first)
            second = fleet.start(1, host="host-b")
            wait_for(lambda: seen.reached("connected", second.name), 60,
                     message=lambda: f"connected by {second.name}: {seen.seen}\n{fleet.logs(40)}")
        assert seen.qrs() == [], seen.seen
        assert len(devices_of(fake, phone)) == 1


def test_a_login_snapshot_of_another_origin_fails_that_account_saying_why(cli, fake, sqlite_url, database_of,
                                                                          tmp_path):
    """providers.webjs.url moved to another origin than the snapshot was taken on: retrying cannot
    help (the app would find no login there), so the account fails at once with the reason."""
    from sqlalchemy import update

    from blazzctl import keys
    from blazzctl.models import WhatsAppAccount
    from blazzctl.providers.webjs import snapshot
    from blazzctl.services import auth_archives

    db = database_of(sqlite_url)
    key = new_key(cli, tmp_path / "k.key")
    victim = add_account(cli, sqlite_url, "elsewhere")
    with db.session() as s:
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == victim["id"])
                  .values(owner="host-a:1", lease_epoch=1))
    auth_archives.save(db, account_id=victim["id"], owner="host-a:1", epoch=1, key=keys.read(key),
                       plain=snapshot.encode({"origin": "https://web.whatsapp.com", "localStorage": {"x": "1"},
                                              "indexedDB": []}))
    with db.session() as s:
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == victim["id"]).values(owner=None))
    with WebjsFleet(tmp_path / "fleet", sqlite_url, fake.url, key_file=key) as fleet:
        fleet.start(1, host="host-a")
        assert cli("account", "connect", "elsewhere", "--workspace", "acme", "--no-wait", db=sqlite_url).code == 0
        row = wait_status(db, victim["id"], "failed", 60, fleet)
    assert row["status_reason"] == "auth_archive_corrupt"
    assert "https://web.whatsapp.com" in row["last_error"] and "providers.webjs.url" in row["last_error"]


def test_a_browser_over_max_browser_mb_moves_its_accounts_out_one_by_one_with_no_qr(cli, database_of, tmp_path):
    """A page that leaks (the fake's heap_mb ballast: 400 MB the page holds once loaded) takes its
    pooled browser over max_browser_mb. The daemon restarts that browser's accounts one at a time
    into a fresh browser, each restored from its snapshot: no QR, one linked device each, the
    second restarted only once the first is connected again; the fresh browser, with no leak,
    stays."""
    from tests.fakes.wa_web import FakeWhatsAppWeb

    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    db = database_of(url)
    key = new_key(cli, tmp_path / "keys" / "session.key")
    phones = {add_account(cli, url, name)["id"]: phone for name, phone in (("leaky", "+4915550051"),
                                                                           ("tidy", "+4915550052"))}
    leaky, tidy = phones
    webjs = {"accounts_per_browser": 2, "max_browser_mb": 550, "browser_check_interval": 1, "snapshot_after": 1}
    with FakeWhatsAppWeb(port=0) as fake, \
            WebjsFleet(tmp_path / "fleet", url, fake.url, key_file=key, webjs=webjs) as fleet:
        fake.seed(phones[leaky], chats=2, groups=0, heap_mb=400)
        daemon = fleet.start(1, host="host-a")
        for account_id, phone in phones.items():
            assert cli("account", "connect", str(account_id), "--no-wait", db=url).code == 0
            link(fake, db, account_id, phone, fleet)
        fake.seed(phones[leaky], chats=2, groups=0, heap_mb=0)  # the leak: only the page already loaded holds it
        with Recorder(db, leaky) as first, Recorder(db, tidy) as second:
            wait_for(lambda: first.reached("connected", daemon.name) and second.reached("connected", daemon.name),
                     90, message=lambda: f"{first.seen}\n{second.seen}\n{fleet.logs(40)}")
        log_text = daemon.log.read_text()
        assert "passed max_browser_mb" in log_text, log_text
        restarts = [line for line in log_text.splitlines() if "restarting the session at the provider's request"
                    in line or "account connected" in line]
        order = [(("restart" if "restarting" in line else "connected"),
                  leaky if f"account_id={leaky} " in line + " " else tidy) for line in restarts]
        asked = [a for kind, a in order if kind == "restart"]
        assert sorted(asked[:2]) == [leaky, tidy], order
        between = order[order.index(("restart", asked[0])):order.index(("restart", asked[1]))]
        assert ("connected", asked[0]) in between, f"the second restart came before the first reconnected: {order}"
        for recorder in (first, second):
            assert recorder.qrs() == [] and "qr_scanning" not in recorder.statuses(), recorder.seen
        for phone in phones.values():
            assert len(devices_of(fake, phone)) == 1, "a phone linked a second device"
        pools = fleet.state_dir("host-a") / "session-1" / "browsers"
        live = [d for d in pools.iterdir() if profile_processes(daemon.pid, d)]
        assert len(live) == 1, f"the drained browser closed, one fresh browser holds both: {live}"
        fresh = proctree.pss(profile_processes(daemon.pid, live[0]))
        assert fresh < 550 * 1024 * 1024, f"the fresh browser ({fresh >> 20} MB) is under the limit: left alone"
