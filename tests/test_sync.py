"""Sync end to end on MariaDB: `blazzctl sync run` → sync_runs → a real daemon (fake provider) → rows.

The fake provider lists deterministic chats, contacts and groups per account (its ``sync``
option) in the shapes of bridge.js, and fails listing for the accounts named in
``sync_fail_names``. Also: one active run per account, exit codes, runs orphaned by a dead
daemon, and the cron schedule's validation.
"""

from __future__ import annotations

import json

import pytest
import yaml
from sqlalchemy import func, select, update

from blazzctl.db import Database
from blazzctl.enums import SyncStatus
from blazzctl.errors import ConfigError
from blazzctl.models import Chat, Contact, Group, GroupParticipant, SyncRun, WebhookDelivery, WhatsAppAccount
from tests.daemon_helpers import Fleet, migrate, wait_for, write_config

pytestmark = pytest.mark.mariadb

LISTING = {"chats": 12, "groups": 3, "old_chats": 4, "contacts": 15, "participants": 4}


class SyncFleet(Fleet):
    """A fleet whose fake provider lists ``LISTING`` for every account (``fail``: names whose listing fails)."""

    fail: tuple = ()
    delay: float = 0.0
    sync_settings: dict = {}

    def config_for(self, host: str):
        path = write_config(self.root / f"{host}.yaml", url=self.url, journal=self.journal,
                            state_dir=self.root / "state" / host, host=host, link_delay=0.05,
                            provider_options={"sync": LISTING, "sync_fail_names": list(self.fail),
                                              "sync_delay": self.delay})
        config = yaml.safe_load(path.read_text())
        config["sync"] = {"window_days": 30, "max_chats": 1000, "batch_size": 5, **self.sync_settings}
        path.write_text(yaml.safe_dump(config))
        return path


def start_fleet(fleet: SyncFleet, *, fail=(), delay=0.0):
    """Start daemon instance 1 with these fake-provider options (later instances get the same)."""
    fleet.fail, fleet.delay = tuple(fail), delay
    return fleet.start(1)


@pytest.fixture
def fleet(tmp_path, mariadb_url):
    migrate(mariadb_url)
    with SyncFleet(tmp_path / "fleet", mariadb_url) as fleet:
        yield fleet


@pytest.fixture
def db(mariadb_url, fleet):
    database = Database(mariadb_url)
    yield database
    database.dispose()


def add_running(cli, url, *names, workspace="acme"):
    if cli("workspace", "show", workspace, db=url).code != 0:
        assert cli("workspace", "create", workspace, db=url).code == 0
    for name in names:
        assert cli("account", "add", "--workspace", workspace, "--name", name, db=url).code == 0
        r = cli("account", "connect", name, "--workspace", workspace, "--timeout", "30", db=url)
        assert r.code == 0, r


def counts(db, account_id):
    with db.session() as s:
        def n(model, *where):
            return s.scalar(select(func.count()).select_from(model).where(*where))
        return {"chats": n(Chat, Chat.whatsapp_account_id == account_id),
                "private": n(Chat, Chat.whatsapp_account_id == account_id, Chat.chat_type == "private"),
                "group": n(Chat, Chat.whatsapp_account_id == account_id, Chat.chat_type == "group"),
                "contacts": n(Contact, Contact.whatsapp_account_id == account_id),
                "groups": n(Group, Group.whatsapp_account_id == account_id),
                "participants": s.scalar(select(func.count()).select_from(GroupParticipant).join(
                    Group, Group.id == GroupParticipant.group_id).where(Group.whatsapp_account_id == account_id))}


def test_sync_writes_the_right_rows_and_twice_adds_none(cli, fleet, db):
    start_fleet(fleet)
    add_running(cli, fleet.url, "sales")
    hook = cli("webhook", "add", "http://127.0.0.1:9/hook", "--workspace", "acme", "--events", "sync.finished",
               db=fleet.url)
    assert hook.code == 0, hook
    first = cli("sync", "run", "sales", "--workspace", "acme", "--wait", "--timeout", "60", "--json", db=fleet.url)
    assert first.code == 0, (first, fleet.logs())
    [run] = first.json()
    assert run["status"] == "succeeded" and run["handled_by"] == "host-a:1" and run["created"] is True
    # 12 recent private chats + 3 group chats (the 4 year-old chats are outside the window).
    assert run["totals"] == {"chats": 15, "private_chats": 12, "group_chats": 3, "contacts": 15, "groups": 3,
                             "participants": 12}
    assert run["progress_done"] == run["progress_total"] == 15 + 15 + 3
    expected = {"chats": 15, "private": 12, "group": 3, "contacts": 15, "groups": 3, "participants": 12}
    account_id = run["whatsapp_account_id"]
    assert counts(db, account_id) == expected
    with db.session() as s:
        ids_before = sorted(s.scalars(select(Chat.id)))
        chats = {c.jid: c for c in s.scalars(select(Chat))}
    group_chat = next(c for jid, c in chats.items() if jid.endswith("@g.us"))
    assert (str(group_chat.provider_type), group_chat.last_message) == ("webjs", "[image]")
    assert sum(c.unread_count for c in chats.values()) == sum(i % 3 for i in range(12))
    assert {c.last_message for c in chats.values() if c.chat_type == "private"} == {f"hello {i}" for i in range(12)}

    second = cli("sync", "run", "sales", "--workspace", "acme", "--wait", "--timeout", "60", db=fleet.url)
    assert second.code == 0, second
    assert "sales: succeeded: 15 chats (12 private, 3 group), 15 contacts, 3 groups, 12 participants" in second.stdout
    assert counts(db, account_id) == expected
    with db.session() as s:
        assert sorted(s.scalars(select(Chat.id))) == ids_before  # updated in place
        assert s.scalar(select(func.count()).select_from(SyncRun)) == 2

    with db.session() as s:  # each run queued its sync.finished event in the outbox (no dispatcher runs here)
        events = [json.loads(p) for p in s.scalars(select(WebhookDelivery.payload)
                                                   .where(WebhookDelivery.event_type == "sync.finished"))]
    assert [e["data"]["status"] for e in events] == ["succeeded", "succeeded"]
    assert events[0]["data"]["run_id"] == run["id"] and events[0]["data"]["totals"] == run["totals"]
    listed = cli("sync", "list", "--json", db=fleet.url).json()
    assert [r["status"] for r in listed] == ["succeeded", "succeeded"]
    assert cli("chat", "list", "sales", "--type", "group", "--json", db=fleet.url).json()[0]["chat_type"] == "group"


def test_sync_run_all_wait_quiet_exit_codes(cli, fleet, db):
    start_fleet(fleet, fail=["broken"])
    add_running(cli, fleet.url, "sales", "support")
    ok = cli("sync", "run", "--all", "--wait", "--quiet", "--timeout", "60", db=fleet.url)
    assert (ok.code, ok.stdout, ok.stderr) == (0, "", ""), (ok, fleet.logs())

    add_running(cli, fleet.url, "broken", workspace="other")
    bad = cli("sync", "run", "--all", "--wait", "--quiet", "--timeout", "60", db=fleet.url)
    assert bad.code == 1, bad
    assert bad.stdout == ""
    assert "1 of 3 sync run(s) did not succeed" in bad.stderr
    assert "broken: failed: RuntimeError: the fake phone refused to list" in bad.stderr
    assert "sales" not in bad.stderr  # errors only

    loud = cli("sync", "run", "--workspace", "acme", "--wait", "--timeout", "60", db=fleet.url)
    assert loud.code == 0 and "sales: succeeded" in loud.stdout and "support: succeeded" in loud.stdout
    with db.session() as s:
        failed = s.scalars(select(SyncRun).where(SyncRun.status == SyncStatus.FAILED)).one()
        assert failed.finished_at is not None and "refused" in failed.error


def test_one_active_run_per_account_and_timeouts_without_a_daemon(cli, fleet, db):
    url = fleet.url
    assert cli("workspace", "create", "acme", db=url).code == 0
    assert cli("account", "add", "--workspace", "acme", "--name", "sales", db=url).code == 0
    stopped = cli("sync", "run", "sales", db=url)
    assert stopped.code == 4 and "not running" in stopped.stderr
    with db.session() as s:  # desired running, but no daemon: the run stays queued
        s.execute(update(WhatsAppAccount).values(desired_state="running"))
    first = cli("sync", "run", "sales", "--json", db=url).json()
    again = cli("sync", "run", "sales", "--kind", "contacts", "--json", db=url).json()
    assert first[0]["id"] == again[0]["id"] and (first[0]["created"], again[0]["created"]) == (True, False)
    waited = cli("sync", "run", "--all", "--wait", "--timeout", "1", "--quiet", db=url)
    assert waited.code == 1
    assert "sales: timed out after 1 s: still queued" in waited.stderr
    assert cli("sync", "run", db=url).code == 2
    assert cli("sync", "run", "--kind", "everything", "--all", db=url).code == 2


def test_a_run_whose_daemon_is_killed_mid_sync_is_finished_by_the_next_owner(cli, fleet, db):
    first = start_fleet(fleet, delay=1.5)  # each listing takes 1.5 s: time to kill the daemon mid-run
    add_running(cli, fleet.url, "sales")
    requested = cli("sync", "run", "sales", "--json", db=fleet.url)
    assert requested.code == 0, requested
    run_id = requested.json()[0]["id"]

    def run_row():
        with db.session() as s:
            return s.get(SyncRun, run_id, populate_existing=True)

    wait_for(lambda: run_row().status == SyncStatus.RUNNING, 30, message=lambda: fleet.logs())
    fleet.kill(first)  # SIGKILL: the run stays "running", the lease expires after its TTL (4 s)
    assert run_row().status == SyncStatus.RUNNING and run_row().handled_by == "host-a:1"
    fleet.start(2)
    run = wait_for(lambda: (r := run_row()).status == SyncStatus.SUCCEEDED and r, 60, message=lambda: fleet.logs())
    assert run.handled_by == "host-a:2" and run.totals["chats"] == 15
    assert counts(db, run.whatsapp_account_id)["chats"] == 15
    report = fleet.check()
    assert report.violations == []


def test_schedule_accepts_five_field_cron_only():
    from daemons.session.schedule import trigger

    assert trigger("0 3 * * *") is not None and trigger("*/15 * * * 1-5") is not None
    for bad in ("0 3 * *", "0 3 * * * *", "61 * * * *", "@daily"):
        with pytest.raises(ConfigError):
            trigger(bad)


# --- through the real WhatsApp Web provider: Chromium, bridge.js, the fake WhatsApp Web ---------------


@pytest.mark.skipif(not __import__("pathlib").Path("/usr/bin/chromium").exists(), reason="no Chromium")
def test_sync_through_the_webjs_provider_and_the_fake_whatsapp_web(cli, tmp_path, mariadb_url, fake_wa_web):
    from tests.webjs_helpers import WebjsFleet, wait_qr, wait_status

    migrate(mariadb_url)
    phone = "+4915550700001"
    fake_wa_web.seed(phone, chats=6, groups=2, participants=3, contacts=2)
    database = Database(mariadb_url)
    try:
        with WebjsFleet(tmp_path / "webjs", mariadb_url, fake_wa_web.url) as fleet:
            fleet.start(1)
            assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
            account = cli("account", "add", "--workspace", "acme", "--name", "sales", "--json", db=mariadb_url).json()
            assert cli("account", "connect", "sales", "--no-wait", db=mariadb_url).code == 0
            fake_wa_web.link(wait_qr(database, account["id"], 60, fleet), phone)
            wait_status(database, account["id"], "connected", 60, fleet)
            for attempt in range(2):
                result = cli("sync", "run", "sales", "--wait", "--timeout", "120", "--json", db=mariadb_url)
                assert result.code == 0, (result, fleet.logs(40))
                [run] = result.json()
                assert run["totals"]["private_chats"] == 6 and run["totals"]["group_chats"] == 2, run
                assert run["totals"]["groups"] == 2 and run["totals"]["participants"] == 6, run
                assert counts(database, account["id"]) == {
                    "chats": 8, "private": 6, "group": 2, "contacts": run["totals"]["contacts"], "groups": 2,
                    "participants": 6}
            assert run["totals"]["contacts"] >= 8  # the chats' 6 people and the 2 extra contacts
            chats = cli("chat", "list", "sales", "--json", db=mariadb_url).json()
            assert {c["provider_type"] for c in chats} == {"webjs"}
            assert all(c["last_message"] and c["last_message_at"] for c in chats)
            assert sorted(c["unread_count"] for c in chats if c["chat_type"] == "private") == [0, 0, 1, 1, 2, 2]
            groups = [c for c in chats if c["chat_type"] == "group"]
            group = cli("group", "show", "sales", groups[0]["jid"], "--json", db=mariadb_url).json()
            assert len(group["participants"]) == 3
            assert f"{phone.lstrip('+')}@c.us" in {p["jid"] for p in group["participants"]}
    finally:
        database.dispose()


def test_schedule_requests_the_owned_accounts_once(sqlite_url):
    """The daemon's cron job (called directly): owned, runnable accounts get one run each, never two."""
    import asyncio
    from datetime import datetime, timedelta, timezone
    from types import SimpleNamespace

    from blazzctl.services import accounts, workspaces
    from daemons.session.schedule import SyncSchedule

    migrate(sqlite_url)
    db = Database(sqlite_url)
    try:
        with db.session() as s:
            ws = workspaces.create(s, name="acme")
            ids = [accounts.add(s, workspace=ws, name=n).id for n in ("a", "b", "stopped")]
            s.flush()
            s.execute(update(WhatsAppAccount).where(WhatsAppAccount.name != "stopped").values(desired_state="running"))
        sessions = SimpleNamespace(owned={i: None for i in ids})
        woken = []

        async def go():
            schedule = SyncSchedule(db, sessions, "*/5 * * * *", owner="host-a:1", wake=lambda: woken.append(1))
            schedule.start()
            job = schedule.scheduler.get_job("sync")
            assert timedelta(0) < job.next_run_time - datetime.now(timezone.utc) <= timedelta(minutes=5)
            await schedule.tick()
            await schedule.tick()  # the runs are still queued: nothing new
            schedule.stop()

        asyncio.run(go())
        with db.session() as s:
            runs = s.execute(select(SyncRun.whatsapp_account_id, SyncRun.requested_by)).all()
        assert sorted(r[0] for r in runs) == ids[:2]
        assert {r[1] for r in runs} == {"schedule host-a:1"} and woken == [1, 1]
    finally:
        db.dispose()


def test_config_check_names_a_bad_schedule(cli, tmp_path):
    (tmp_path / "blazz.yaml").write_text('sync:\n  schedule: "0 25 * * *"\n')
    result = cli("config", "check")
    assert result.code == 78, result
    assert "sync.schedule" in result.stderr and "'25' is not a valid hour (0-23)" in result.stderr
    (tmp_path / "blazz.yaml").write_text('sync:\n  schedule: "30 2 * * mon-fri"\n')
    assert cli("config", "check").code == 0
