"""Every account status change sends `account.status`, whoever makes it: the CLI changes the
status itself for accounts no daemon owns (disconnect, logout, connect of a failed account,
removal of an account whose daemon died), in the transaction of the change (the outbox row),
through the one function daemons use too (`accounts.set_status`)."""

from __future__ import annotations

import json

from sqlalchemy import select, update

from tests.webhook_support import add_endpoint

DEAD = "host-z:1"


def _setup(cli, database, status: str, *, dead_owner: bool = True) -> int:
    """An account whose status says `status`; with ``dead_owner`` its daemon died holding it."""
    from blazzctl.db import db_now
    from blazzctl.models import WhatsAppAccount

    url = database.url
    assert cli("workspace", "create", "acme", db=url).code == 0
    account = cli("account", "add", "--workspace", "acme", "--name", "sales", "--json", db=url).json()
    values = {"status": status}
    if dead_owner:
        values.update(owner=DEAD, lease_epoch=2, lease_expires_at=db_now(-10))
    with database.session() as s:
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == account["id"]).values(**values))
    add_endpoint(database, account["workspace_id"], "http://127.0.0.1:9/all")
    add_endpoint(database, account["workspace_id"], "http://127.0.0.1:9/messages", events=["message.received"])
    return account["id"]


def _events(database, account_id: int) -> list[tuple[int, dict]]:
    """(sequence, data) of the account.status outbox rows: one per subscribed endpoint and event."""
    from blazzctl.models import WebhookDelivery as D

    with database.session() as s:
        rows = s.execute(select(D.event_type, D.sequence, D.payload).where(D.whatsapp_account_id == account_id)
                         .order_by(D.id)).all()
    assert {r.event_type for r in rows} <= {"account.status"}, rows
    return [(r.sequence, json.loads(r.payload)["data"]) for r in rows]


def test_disconnect_without_a_session_sends_account_status(cli, database):
    aid = _setup(cli, database, "connected")  # its daemon died: the status is stale
    r = cli("account", "disconnect", "sales", "--workspace", "acme", "--timeout", "5", db=database.url)
    assert r.code == 0, r
    assert _events(database, aid) == [
        (1, {"status": "disconnected", "previous_status": "connected", "reason": "operator disconnect"})]
    # Disconnecting again changes no status: no event.
    assert cli("account", "disconnect", "sales", "--workspace", "acme", db=database.url).code == 0
    assert len(_events(database, aid)) == 1


def test_logout_without_a_session_sends_account_status(cli, database):
    aid = _setup(cli, database, "disconnected", dead_owner=False)
    r = cli("account", "logout", "sales", "--workspace", "acme", "--timeout", "5", db=database.url)
    assert r.code == 0, r
    ((sequence, data),) = _events(database, aid)
    assert (sequence, data["status"], data["previous_status"]) == (1, "logged_out", "disconnected")
    assert data["reason"].startswith("operator logout without a session")


def test_connect_of_a_failed_account_without_a_session_sends_account_status(cli, database):
    aid = _setup(cli, database, "failed", dead_owner=False)
    r = cli("account", "connect", "sales", "--workspace", "acme", "--no-wait", db=database.url)
    assert r.code == 0, r
    assert _events(database, aid) == [
        (1, {"status": "disconnected", "previous_status": "failed", "reason": "connect requested"})]


def test_removing_an_account_whose_daemon_died_sends_account_status(cli, database):
    aid = _setup(cli, database, "qr_scanning")
    r = cli("account", "remove", "sales", "--workspace", "acme", "--yes", db=database.url)
    assert r.code == 0, r
    assert _events(database, aid) == [
        (1, {"status": "disconnected", "previous_status": "qr_scanning", "reason": "account removed"})]
    from blazzctl.models import WhatsAppAccount

    with database.session() as s:
        row = s.get(WhatsAppAccount, aid)
        assert (row.owner, row.lease_expires_at, row.qr_code, str(row.desired_state)) == (None, None, None, "stopped")


def test_removing_an_owned_account_leaves_the_status_to_its_daemon(cli, database):
    """A live daemon owns it: the daemon releases it (and writes the event); the CLI does not."""
    from blazzctl.db import db_now
    from blazzctl.models import WhatsAppAccount

    aid = _setup(cli, database, "qr_scanning", dead_owner=False)
    with database.session() as s:
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == aid).values(
            owner="host-a:1", lease_epoch=1, lease_expires_at=db_now(60)))
    assert cli("account", "remove", "sales", "--workspace", "acme", "--yes", db=database.url).code == 0
    assert _events(database, aid) == []
    with database.session() as s:
        assert str(s.get(WhatsAppAccount, aid).status) == "qr_scanning"


def test_every_status_write_goes_through_accounts_set_status():
    """A guard for new code (workspace removal, ...): an account status written anywhere but in
    `accounts.set_status` (a `values(status=...)`, a `{"status": AccountStatus...}`, an ORM
    assignment) would send no event. Each status written must be an argument of a set_status call."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    write = re.compile(r"\bstatus\s*=\s*AccountStatus\.|[\"']status[\"']\s*:\s*AccountStatus\.|"
                       r"\.status\s*=\s*AccountStatus\.")
    found = []
    for path in [*(root / "blazzctl").rglob("*.py"), *(root / "daemons").rglob("*.py")]:
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if write.search(line) and not any("set_status(" in lines[j] for j in range(max(0, i - 2), i + 1)):
                found.append(f"{path.relative_to(root)}:{i + 1}: {line.strip()}")
    assert found == [], "status written without accounts.set_status (no account.status event):\n" + "\n".join(found)
