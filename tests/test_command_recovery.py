"""Commands never get lost: a command `running` on a daemon that is gone (or no longer holds
the account's lease) goes back to pending, is taken over by the account's next owner, or, for
an account nobody will claim, is finished without a session; past its deadline it fails with
the reason; `--wait` always ends.

The end-to-end tests SIGKILL a real fake-provider daemon in the middle of a slow logout
(``logout_delay``) and let another daemon finish it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
import yaml
from sqlalchemy import select, update

from tests.daemon_helpers import REPO, Fleet, migrate, wait_for
from tests.webhook_support import add_endpoint

DEAD = "host-z:1"  # a daemon that died holding things: no process has this name


def _command(db, command_id: int) -> dict:
    from blazzctl.models import AccountCommand as C

    with db.session() as s:
        row = s.execute(select(C.status, C.handled_by, C.result).where(C.id == command_id)).one()
    return {"status": str(row.status), "handled_by": row.handled_by, "result": row.result}


def _account(db, account_id: int) -> dict:
    from blazzctl.models import WhatsAppAccount as A

    with db.session() as s:
        row = s.execute(select(A.status, A.status_reason, A.desired_state, A.owner, A.lease_expires_at)
                        .where(A.id == account_id)).one()
    return {k: (str(v) if k in ("status", "desired_state") else v) for k, v in row._mapping.items()}


def _status_events(db, account_id: int) -> list[dict]:
    from blazzctl.models import WebhookDelivery as D

    with db.session() as s:
        payloads = s.scalars(select(D.payload).where(D.whatsapp_account_id == account_id,
                                                     D.event_type == "account.status").order_by(D.id)).all()
    return [json.loads(p)["data"] for p in payloads]


def _orphan(db, *, kind, desired="running", status="connected", deadline=None, lease_live=False) -> tuple[int, int]:
    """An account whose daemon DEAD took ``kind`` and then died: command running, lease left behind."""
    from blazzctl.db import db_now
    from blazzctl.enums import CommandKind
    from blazzctl.models import AccountCommand, WhatsAppAccount
    from blazzctl.models.base import utcnow
    from blazzctl.services import accounts, commands, workspaces

    with db.session() as s:
        ws = workspaces.create(s, name="acme")
        account = accounts.add(s, workspace=ws, name="sales")
        command = commands.request(s, account=account, kind=CommandKind(kind))
        ids = (account.id, command.id)
        args = {"deadline": (utcnow() + timedelta(seconds=deadline)).isoformat()} if deadline is not None else None
        s.execute(update(AccountCommand).where(AccountCommand.id == command.id).values(
            status="running", handled_by=DEAD, started_at=utcnow(), result=None, finished_at=None, args=args))
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == account.id).values(
            status=status, desired_state=desired, owner=DEAD, lease_epoch=3,
            lease_expires_at=db_now(30 if lease_live else -5)))
    add_endpoint(db, ws_id(db), "http://127.0.0.1:9/all")
    return ids


def ws_id(db) -> int:
    from blazzctl.models import Workspace

    with db.session() as s:
        return s.scalar(select(Workspace.id).where(Workspace.name == "acme"))


# --- the owner's takeover and the deadline (SQLite and MariaDB) --------------------------------------------

def test_the_owner_takes_over_a_command_whose_daemon_lost_the_account(database):
    """The account's new owner finds the command running under the daemon that died: it takes
    it over (the first daemon never finished it); its own running commands it leaves alone."""
    from daemons.session.commands import take_pending

    account_id, command_id = _orphan(database, kind="logout")
    assert take_pending(database, owner="host-b:1", account_ids=[account_id], mine=set()) == [
        (command_id, account_id, "logout")]
    assert _command(database, command_id) == {"status": "running", "handled_by": "host-b:1", "result": None}
    # Now ours: not taken again, and the dead daemon's late finish changes nothing.
    assert take_pending(database, owner="host-b:1", account_ids=[account_id], mine={command_id}) == []
    from daemons.session.status import StatusWriter

    StatusWriter(database, DEAD).finish_command(command_id, "failed", "account not owned any more")
    assert _command(database, command_id)["status"] == "running"


def test_an_orphaned_command_past_its_deadline_fails_with_the_reason(database):
    from daemons.session.commands import take_pending

    account_id, command_id = _orphan(database, kind="reconnect", deadline=-1)
    assert take_pending(database, owner="host-b:1", account_ids=[account_id], mine=set()) == []
    row = _command(database, command_id)
    assert row["status"] == "failed" and row["result"] == (
        f"{DEAD} stopped while running it, and the command's deadline passed")


def test_a_wait_requeues_a_command_whose_daemon_is_gone(database):
    """What `--wait` does every 2 s: the command goes back to pending for the next owner."""
    from blazzctl.services import commands

    account_id, command_id = _orphan(database, kind="logout", deadline=60)
    with database.session() as s:
        assert commands.recover(s, command_id=command_id) == f"requeued: {DEAD} no longer holds the account"
    assert _command(database, command_id) == {
        "status": "pending", "handled_by": None, "result": f"requeued: {DEAD} no longer holds the account"}
    with database.session() as s:  # pending now: nothing more to do
        assert commands.recover(s, command_id=command_id) is None


def test_a_wait_leaves_a_command_alone_while_its_daemon_holds_the_lease(database):
    from blazzctl.services import commands

    account_id, command_id = _orphan(database, kind="logout", lease_live=True)
    with database.session() as s:
        assert commands.recover(s, command_id=command_id) is None
    assert _command(database, command_id)["status"] == "running"


def test_a_disconnect_whose_daemon_died_is_finished_without_a_session(database, cli):
    """Desired state stopped: no daemon will claim the account again, so the wait (or any daemon's
    sweep) finishes the disconnect as without a session, with its account.status event."""
    from blazzctl.services import commands

    account_id, command_id = _orphan(database, kind="disconnect", desired="stopped")
    with database.session() as s:
        commands.recover(s, command_id=command_id)
    assert _command(database, command_id) == {
        "status": "succeeded", "handled_by": DEAD, "result": f"disconnected ({DEAD} stopped while disconnecting)"}
    account = _account(database, account_id)
    assert (account["status"], account["owner"], account["lease_expires_at"]) == ("disconnected", None, None)
    assert _status_events(database, account_id) == [
        {"status": "disconnected", "previous_status": "connected", "reason": "operator disconnect"}]


def test_the_sweep_settles_accounts_a_dead_daemon_left_stopped(database):
    from blazzctl.services import commands

    account_id, command_id = _orphan(database, kind="logout", desired="stopped")
    with database.session() as s:
        assert commands.recover_stopped_accounts(s) == 1
    row = _command(database, command_id)
    assert row["status"] == "succeeded" and row["result"].startswith(f"{DEAD} stopped while logging out; ")
    account = _account(database, account_id)
    assert (account["status"], account["owner"]) == ("logged_out", None)
    assert [e["status"] for e in _status_events(database, account_id)] == ["logged_out"]
    with database.session() as s:
        assert commands.recover_stopped_accounts(s) == 0  # nothing left: one statement a pass


# --- real daemons -----------------------------------------------------------------------------------------------

def _slow_logout_fleet(tmp_path, url, delay: float) -> Fleet:
    fleet = Fleet(tmp_path / "fleet", url)
    config = fleet.config_for("host-a")
    doc = yaml.safe_load(config.read_text())
    doc["providers"]["webjs"]["options"]["logout_delay"] = delay  # host-b logs out at once
    config.write_text(yaml.safe_dump(doc))
    return fleet


def _blazzctl(url: str, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLAZZ_")}
    env.update(BLAZZ_DATABASE_URL=url, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "blazzctl", *args], env=env, cwd=str(REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _journal(fleet) -> list[dict]:
    return [json.loads(line) for line in fleet.journal.read_text().splitlines() if line.strip()]


@pytest.mark.mariadb
@pytest.mark.parametrize("waiting", [True, False], ids=["wait", "no-wait"])
def test_a_logout_whose_daemon_is_killed_is_finished_by_the_next_owner(cli, tmp_path, mariadb_url, waiting):
    """host-a takes the logout and is SIGKILLed while the page logs out; host-b claims the account
    and finishes the logout. With --wait, the wait requeues the command (and says so) and ends
    when host-b is done; with --no-wait, host-b takes over the command still marked running."""
    from blazzctl.db import Database
    from blazzctl.models import AccountCommand

    migrate(mariadb_url)
    db = Database(mariadb_url)
    fleet = _slow_logout_fleet(tmp_path, mariadb_url, delay=60.0)
    try:
        with fleet:
            assert cli("workspace", "create", "acme", db=mariadb_url).code == 0
            aid = cli("account", "add", "--workspace", "acme", "--name", "sales", "--json", db=mariadb_url).json()["id"]
            add_endpoint(db, ws_id(db), "http://127.0.0.1:9/all")
            a = fleet.start(1, host="host-a")
            assert cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30",
                       db=mariadb_url).code == 0
            args = ["account", "logout", "sales", "--workspace", "acme"]
            waiter = _blazzctl(mariadb_url, *args, "--timeout", "90") if waiting else None
            if not waiting:
                assert cli(*args, "--no-wait", db=mariadb_url).code == 0

            def command_id():
                with db.session() as s:
                    return s.scalar(select(AccountCommand.id).where(AccountCommand.whatsapp_account_id == aid,
                                                                    AccountCommand.command == "logout"))
            wait_for(lambda: command_id() and _command(db, command_id())["handled_by"] == "host-a:1", 30,
                     message=lambda: f"host-a taking the logout\n{fleet.logs(30)}")
            fleet.kill(a)  # in the page's logout: the command stays running under a dead daemon
            if waiting:  # the wait sees host-a's lease expire and requeues
                wait_for(lambda: _command(db, command_id())["status"] == "pending", 30, message="a requeue")
            fleet.start(1, host="host-b")
            wait_for(lambda: _command(db, command_id())["status"] == "succeeded", 60,
                     message=lambda: f"host-b finishing the logout: {_command(db, command_id())}\n{fleet.logs(30)}")
            assert _command(db, command_id())["handled_by"] == "host-b:1"
            account = _account(db, aid)
            assert (account["status"], account["status_reason"], account["desired_state"], account["owner"]) == (
                "logged_out", "operator logout", "stopped", None)
            assert [(e["daemon"], e["event"]) for e in _journal(fleet)
                    if e["account_id"] == aid and e["event"] == "logout"] == [("host-b:1", "logout")]
            last = _status_events(db, aid)[-1]  # host-b's session may be starting or up when it logs out
            assert (last["status"], last["reason"]) == ("logged_out", "operator logout"), last
            if waiting:
                out, err = waiter.communicate(timeout=60)
                assert waiter.returncode == 0, (out, err)
                assert "command requeued: host-a:1 no longer holds the account" in out
                assert "sales: logged_out" in out
    finally:
        if waiting and waiter.poll() is None:
            waiter.kill()
        db.dispose()


@pytest.mark.mariadb
def test_a_daemon_settles_a_disconnect_left_by_a_dead_daemon(tmp_path, mariadb_url):
    """No wait is watching, the account is stopped (nobody claims it): a live daemon, owning
    nothing, finishes the disconnect and ends the stale `connected` with its event."""
    from blazzctl.db import Database

    migrate(mariadb_url)
    db = Database(mariadb_url)
    try:
        account_id, command_id = _orphan(db, kind="disconnect", desired="stopped")
        with Fleet(tmp_path / "fleet", mariadb_url) as fleet:
            fleet.start(1)
            wait_for(lambda: _command(db, command_id)["status"] == "succeeded", 30,
                     message=lambda: f"the sweep\n{fleet.logs(20)}")
        assert _account(db, account_id)["status"] == "disconnected"
        assert [e["status"] for e in _status_events(db, account_id)] == ["disconnected"]
    finally:
        db.dispose()


@pytest.mark.mariadb
def test_the_sweep_query_uses_the_claim_index_without_filesort(mariadb_url):
    """Every daemon runs it every 10 s: it must stay one cheap statement however many accounts."""
    from blazzctl.db import Database
    from blazzctl.services.commands import left_by_dead_daemons
    from tests.daemon_helpers import seed_accounts

    migrate(mariadb_url)
    db = Database(mariadb_url)
    try:
        seed_accounts(db, 300, running=False)
        seed_accounts(db, 300, running=True, prefix="run")
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE TABLE whatsapp_accounts")
            sql = str(left_by_dead_daemons(1).compile(conn, compile_kwargs={"literal_binds": True}))
            plan = [dict(row._mapping) for row in conn.exec_driver_sql("EXPLAIN " + sql)]
    finally:
        db.dispose()
    (row,) = plan
    assert row["key"] == "ix_whatsapp_accounts_claim", plan
    assert "filesort" not in (row["Extra"] or ""), plan
