"""`account logout`: never `logged_out` while a restorable login remains.

Without a session (no daemon owns the account) nothing can tell WhatsApp, so every saved copy
of the login is deleted (database archives, this host's profiles) and the account gets a new
session id; the phone still lists the device, and the output says so. With a session the
daemon logs out in the page, and the claim round must not undo it while it does. The last
test does it with real Chromium against the fake WhatsApp Web: a later connect needs a new QR.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select, update

from tests.daemon_helpers import Fleet, migrate, wait_for

CHROMIUM = "/usr/bin/chromium"


def _row(database, account_id: int) -> dict:
    from blazzctl.models import WhatsAppAccount as A

    with database.session() as s:
        row = s.execute(select(A.status, A.status_reason, A.desired_state, A.session_id, A.auth_saved_at,
                               A.connected_at, A.owner).where(A.id == account_id)).one()
    return dict(row._mapping)


def _archives(database) -> tuple[int, int]:
    from blazzctl.models import AuthArchive, AuthArchiveChunk

    with database.session() as s:
        return (s.scalar(select(func.count()).select_from(AuthArchive)),
                s.scalar(select(func.count()).select_from(AuthArchiveChunk)))


def _profile(base: Path, instance: int, session_id: str) -> Path:
    profile = base / f"session-{instance}" / "profiles" / session_id
    (profile / "Default" / "IndexedDB").mkdir(parents=True)
    (profile / "Default" / "IndexedDB" / "login.ldb").write_bytes(b"credentials")
    return profile


def test_logout_without_a_session_deletes_every_saved_login(cli, migrated_url, database, tmp_path):
    from blazzctl.models import AuthArchive, AuthArchiveChunk, WhatsAppAccount
    from blazzctl.models.base import utcnow

    assert cli("workspace", "create", "acme", db=migrated_url).code == 0
    account = cli("account", "add", "--workspace", "acme", "--name", "sales", "--json", db=migrated_url).json()
    aid, sid = account["id"], account["session_id"]
    other = cli("account", "add", "--workspace", "acme", "--name", "other", "--json", db=migrated_url).json()
    with database.session() as s:  # a login saved by a daemon, which released the account since
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == aid).values(
            status="disconnected", connected_at=utcnow(), auth_saved_at=utcnow(), phone_number="+4915550001"))
        archive = AuthArchive(whatsapp_account_id=aid, version=1, checksum="0" * 64, size_bytes=3, chunk_count=1)
        s.add(archive)
        s.flush()
        s.add(AuthArchiveChunk(archive_id=archive.id, seq=0, data=b"abc"))
    base = tmp_path / "daemon-state"
    profiles = [_profile(base, 1, sid), _profile(base, 2, sid)]  # two instances held it once
    kept = _profile(base, 1, other["session_id"])

    r = cli("account", "logout", "sales", "--workspace", "acme", "--timeout", "5", db=migrated_url,
            env={"BLAZZ_DAEMON_STATE_DIR": str(base)})
    assert r.code == 0, r
    assert "the phone lists this device until you remove it there (Linked devices)" in r.stdout
    assert "sales: logged_out" in r.stdout
    assert _archives(database) == (0, 0)
    assert not any(p.exists() for p in profiles) and kept.is_dir()
    row = _row(database, aid)
    assert (row["status"], row["desired_state"], row["owner"]) == ("logged_out", "stopped", None)
    assert row["auth_saved_at"] is None and row["connected_at"] is None
    # Profiles are named by the session id: a copy left anywhere else is never used again.
    assert row["session_id"] != sid and row["session_id"].startswith("wa_")

    shown = cli("account", "logout", "sales", "--workspace", "acme", "--json", db=migrated_url).json()
    assert "deleted" in shown["command"]["result"] and "remove the device on the phone" in shown["command"]["result"]


@pytest.mark.mariadb
def test_a_slow_logout_in_the_page_is_not_undone_by_the_claim_round(cli, tmp_path, mariadb_url):
    """The logout in the page takes seconds (WhatsApp answers); meanwhile the claim rounds of
    two daemons run. The account must stay its daemon's until logged_out is written: never
    released as a stray, claimed back and relaunched (restoring the login) before ending
    logged_out, and the reason recorded, and sent in account.status, is the operator's."""
    from blazzctl.db import Database
    from blazzctl.models import WebhookDelivery
    from tests.webhook_support import add_endpoint

    migrate(mariadb_url)
    fleet = Fleet(tmp_path / "fleet", mariadb_url)
    for host in ("host-a", "host-b"):
        config = fleet.config_for(host)
        doc = yaml.safe_load(config.read_text())
        doc["providers"]["webjs"]["options"]["logout_delay"] = 2.0  # four claim rounds
        config.write_text(yaml.safe_dump(doc))
    database = Database(mariadb_url)
    try:
        with fleet:
            assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
            account = cli("account", "add", "--workspace", "acme", "--name", "sales", "--json",
                          db=mariadb_url).json()
            add_endpoint(database, account["workspace_id"], "http://127.0.0.1:9/all", events=["account.status"])
            fleet.start(1, host="host-a")
            fleet.start(1, host="host-b")
            assert cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30",
                       db=mariadb_url).code == 0
            r = cli("account", "logout", "sales", "--workspace", "acme", "--timeout", "30", db=mariadb_url)
            assert r.code == 0, (r, fleet.logs(40))
            row = _row(database, account["id"])
            assert (row["status"], row["desired_state"], row["owner"]) == ("logged_out", "stopped", None)
            assert row["status_reason"] == "operator logout"
            assert row["session_id"] != account["session_id"] and row["connected_at"] is None
            journal = [json.loads(line) for line in fleet.journal.read_text().splitlines()]
            events = [e["event"] for e in journal if e["account_id"] == account["id"]]
            assert events[-1] == "logout" and events.count("start") == 1, events
            with database.session() as s:
                sent = [json.loads(p)["data"] for p in s.scalars(
                    select(WebhookDelivery.payload).where(WebhookDelivery.whatsapp_account_id == account["id"])
                    .order_by(WebhookDelivery.id))]
            statuses = [e["status"] for e in sent]
            # connected, then logged_out: nothing in between (no release, no second start).
            assert statuses[statuses.index("connected"):] == ["connected", "logged_out"], sent
            assert sent[-1]["reason"] == "operator logout"
    finally:
        database.dispose()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")
@pytest.mark.parametrize("per_browser", [8, 1], ids=["pooled", "own-browser"])
def test_connect_after_a_logout_without_a_session_needs_a_new_qr(cli, tmp_path, sqlite_url, per_browser):
    """Real Chromium, the fake WhatsApp Web: link, disconnect (the login is archived, and with a
    browser of its own it stays in the local profile too), log out with no session, connect
    again: a QR, not the old login."""
    from blazzctl.db import Database
    from tests.fakes.wa_web import FakeWhatsAppWeb
    from tests.webjs_helpers import Recorder, WebjsFleet, account_row, devices_of, wait_qr, wait_status

    migrate(sqlite_url)
    db = Database(sqlite_url)
    phone = "+4915550077"
    try:
        with FakeWhatsAppWeb(port=0, ref_interval=20.0) as fake, \
                WebjsFleet(tmp_path / "fleet", sqlite_url, fake.url,
                           webjs={"accounts_per_browser": per_browser}) as fleet:
            assert cli("workspace", "create", "acme", db=sqlite_url).code == 0
            account = cli("account", "add", "--workspace", "acme", "--name", "sales", "--json", db=sqlite_url).json()
            aid = account["id"]
            fleet.start(1, host="host-a")
            assert cli("account", "connect", "sales", "--workspace", "acme", "--no-wait", db=sqlite_url).code == 0
            fake.link(wait_qr(db, aid, 60, fleet), phone.lstrip("+"))
            wait_status(db, aid, "connected", 60, fleet)
            wait_for(lambda: account_row(db, aid)["auth_saved_at"] is not None, 20, message="a login archive")
            r = cli("account", "disconnect", "sales", "--workspace", "acme", "--timeout", "30", db=sqlite_url)
            assert r.code == 0, r
            profile = fleet.profile("host-a", account["session_id"])
            assert profile.is_dir() == (per_browser == 1)  # the login is in the database (and on disk)

            r = cli("account", "logout", "sales", "--workspace", "acme", "--timeout", "10", db=sqlite_url,
                    env={"BLAZZ_DAEMON_STATE_DIR": str(fleet.state_dir("host-a"))})
            assert r.code == 0, r
            assert "Linked devices" in r.stdout and not profile.exists()
            assert len(devices_of(fake, phone)) == 1  # what the output says: the phone still lists it

            with Recorder(db, aid) as seen:
                assert cli("account", "connect", "sales", "--workspace", "acme", "--no-wait",
                           db=sqlite_url).code == 0
                wait_qr(db, aid, 60, fleet)
            assert "connected" not in seen.statuses(), seen.seen
    finally:
        db.dispose()


@pytest.mark.mariadb
def test_a_logout_taken_while_the_session_comes_up_waits_for_the_page(cli, tmp_path, mariadb_url):
    """A logout taken while the account's session is still starting (just claimed, e.g. taken
    over from a dead daemon) waits for the page: run at once, it could not tell WhatsApp."""
    from blazzctl.db import Database
    from blazzctl.models import WebhookDelivery
    from tests.webhook_support import add_endpoint

    migrate(mariadb_url)
    database = Database(mariadb_url)
    try:
        with Fleet(tmp_path / "fleet", mariadb_url, link_delay=6.0) as fleet:
            assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
            account = cli("account", "add", "--workspace", "acme", "--name", "sales", "--json",
                          db=mariadb_url).json()
            add_endpoint(database, account["workspace_id"], "http://127.0.0.1:9/all", events=["account.status"])
            fleet.start(1)
            assert cli("account", "connect", "sales", "--workspace", "acme", "--no-wait", db=mariadb_url).code == 0
            wait_for(lambda: _row(database, account["id"])["status"] == "starting", 20, message="the session starting")
            r = cli("account", "logout", "sales", "--workspace", "acme", "--timeout", "40", db=mariadb_url)
            assert r.code == 0, (r, fleet.logs(40))
            with database.session() as s:
                sent = [json.loads(p)["data"]["status"] for p in s.scalars(
                    select(WebhookDelivery.payload).where(WebhookDelivery.whatsapp_account_id == account["id"])
                    .order_by(WebhookDelivery.id))]
            assert sent[-2:] == ["connected", "logged_out"], sent  # the page was up when it logged out
            assert _row(database, account["id"])["status_reason"] == "operator logout"
    finally:
        database.dispose()
