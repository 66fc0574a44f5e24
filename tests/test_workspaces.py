"""`workspace rename` and `workspace remove` (offboarding a tenant), on SQLite and MariaDB; names
that are only whitespace refused everywhere names are taken.

A removed workspace is a soft delete: its rows stay, nothing shows them, its name is free again.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, update

from tests.daemon_helpers import Fleet, migrate, wait_for
from tests.test_messages import PHONE, mark_linked
from tests.webhook_support import add_endpoint


@pytest.fixture
def bz(cli, migrated_url):
    """``bz(*args)``: blazzctl on the migrated test database (SQLite, then MariaDB)."""
    def run(*args, input=None):
        return cli(*args, db=migrated_url, input=input)

    return run


def ok(result):
    assert result.code == 0, result
    return json.loads(result.stdout) if result.stdout.lstrip().startswith(("{", "[")) else result.stdout


def failed(result, code: int, *needles: str) -> str:
    assert result.code == code, result
    assert result.stdout == "" and result.stderr.startswith("error: ") and "Traceback" not in result.stderr, result
    for needle in needles:
        assert needle in result.stderr, result
    return result.stderr


def count(database, model, *where) -> int:
    with database.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def audit(database, command: str) -> list:
    from blazzctl.models import AuditEvent

    with database.session() as s:
        return [(e.target, e.workspace_id, e.details) for e in s.scalars(
            select(AuditEvent).where(AuditEvent.command == command).order_by(AuditEvent.id))]


# --- names ----------------------------------------------------------------------------------------

BLANK = ["   ", "\u00a0", "\u3000 \u2003", "\u200b", " \u200d "]


@pytest.mark.parametrize("blank", BLANK)
def test_whitespace_only_names_are_refused_like_empty_ones_everywhere(bz, database, blank):
    from blazzctl.models import ApiKey, WhatsAppAccount, Workspace

    ok(bz("workspace", "create", "acme"))
    ok(bz("account", "add", "--workspace", "acme", "--name", "sales"))
    for args, what in [(("workspace", "create", blank), "workspace name"),
                       (("workspace", "rename", "acme", blank), "workspace name"),
                       (("account", "add", "--workspace", "acme", "--name", blank), "account name"),
                       (("account", "update", "sales", "--workspace", "acme", "--name", blank), "account name"),
                       (("apikey", "create", "--workspace", "acme", "--name", blank, "--scope", "accounts:read"),
                        "API key name")]:
        failed(bz(*args), 2, f"{what} must not be only whitespace", "at least one visible character")
    failed(bz("workspace", "create", ""), 2, "workspace name must not be empty")
    assert [w["name"] for w in ok(bz("workspace", "list", "--json"))] == ["acme"]
    assert [a["name"] for a in ok(bz("account", "list", "--json"))] == ["sales"]
    assert count(database, ApiKey) == 0 and count(database, Workspace) == 1 and count(database, WhatsAppAccount) == 1


def test_names_with_blanks_around_visible_text_are_kept_exactly(bz):
    assert ok(bz("workspace", "create", " acme\u00a0", "--json"))["name"] == " acme\u00a0"
    assert ok(bz("account", "add", "--workspace", " acme\u00a0", "--name", "\u200bsales ", "--json"))["name"] == \
        "\u200bsales "


# --- rename ---------------------------------------------------------------------------------------

def test_rename_keeps_id_and_accounts_and_is_audited(bz, database):
    made = ok(bz("workspace", "create", "acme", "--json"))
    ok(bz("account", "add", "--workspace", "acme", "--name", "sales"))
    r = bz("workspace", "rename", "acme", "acme-corp")
    assert r.code == 0 and "renamed workspace acme to acme-corp" in r.stdout, r
    shown = ok(bz("workspace", "show", str(made["id"]), "--json"))
    assert (shown["name"], shown["uuid"]) == ("acme-corp", made["uuid"])
    failed(bz("workspace", "show", "acme"), 3, "workspace 'acme' not found")
    assert [a["workspace"] for a in ok(bz("account", "list", "--workspace", "acme-corp", "--json"))] == ["acme-corp"]
    assert audit(database, "workspace rename") == [("acme-corp", made["id"], {"from": "acme", "to": "acme-corp"})]
    # The same name again changes nothing and records nothing; the old name is free.
    r = bz("workspace", "rename", "acme-corp", "acme-corp", "--json")
    assert ok(r)["name"] == "acme-corp" and len(audit(database, "workspace rename")) == 1
    ok(bz("workspace", "create", "acme"))


def test_rename_refuses_a_taken_name_and_bad_input_writing_nothing(bz, database):
    ok(bz("workspace", "create", "acme"))
    ok(bz("workspace", "create", "globex"))
    failed(bz("workspace", "rename", "acme", "globex"), 4, "a workspace named 'globex' already exists")
    failed(bz("workspace", "rename", "nope", "x"), 3, "workspace 'nope' not found")
    failed(bz("workspace", "rename", "acme", "x" * 101), 2, "the limit is 100")
    failed(bz("workspace", "rename", "acme", "a\tb"), 2, "control character")
    assert [w["name"] for w in ok(bz("workspace", "list", "--json"))] == ["acme", "globex"]
    assert audit(database, "workspace rename") == []


def test_the_database_refuses_two_live_workspaces_of_one_name(database):
    """Not only the code: the unique index on the generated column, around any check."""
    from sqlalchemy import exc

    from blazzctl.models import Workspace
    from blazzctl.models.base import utcnow

    with database.session() as s:
        s.add_all([Workspace(name="acme", deleted_at=utcnow()), Workspace(name="acme", deleted_at=utcnow()),
                   Workspace(name="acme")])  # removed ones never collide
    with pytest.raises(exc.IntegrityError):
        with database.session() as s:
            s.add(Workspace(name="acme"))
    with database.session() as s:
        assert [w.live_name for w in s.scalars(select(Workspace).order_by(Workspace.id))] == [None, None, "acme"]


# --- remove ---------------------------------------------------------------------------------------

def _tenant(bz, database, name: str = "acme") -> dict:
    """A workspace with two accounts (one linked, with a pending message), a webhook, an API key."""
    from blazzctl.models import Workspace

    ws = ok(bz("workspace", "create", name, "--json"))
    for account in ("sales", "support"):
        ok(bz("account", "add", "--workspace", name, "--name", account))
    mark_linked(database.url, "sales", status="disconnected")
    message = ok(bz("message", "send", "sales", "--workspace", name, "--to", PHONE, "--text", "hi", "--json"))
    add_endpoint(database, ws["id"], f"http://127.0.0.1:9/{name}")
    key = ok(bz("apikey", "create", "--workspace", name, "--name", "app", "--scope", "accounts:read", "--json"))
    with database.session() as s:  # a delivery already queued for the tenant
        from blazzctl.services import events

        events.record(s, type="webhook.test", workspace_id=ws["id"], account_id=None, data={})
        assert s.get(Workspace, ws["id"]).deleted_at is None
    return {**ws, "message": message["id"], "token": key["token"]}


def test_remove_refuses_live_accounts_unless_forced_and_asks_first(bz, database):
    from blazzctl.models import WhatsAppAccount, Workspace

    t = _tenant(bz, database)
    with database.session() as s:
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.name == "support").values(desired_state="running"))
    mark_linked(database.url, "sales", status="connected")
    failed(bz("workspace", "remove", "acme", "--yes"), 4, "workspace 'acme' has 2 live (connected or running) "
           "account(s): 'sales', 'support'", "--force")
    # Refused before asking; without --yes and without a terminal it never removes.
    failed(bz("workspace", "remove", "acme"), 4, "live")
    failed(bz("workspace", "remove", "acme", "--force"), 2, "confirmation needed", "--yes")
    failed(bz("workspace", "remove", "nope", "--yes"), 3, "workspace 'nope' not found")
    with database.session() as s:
        assert s.get(Workspace, t["id"]).deleted_at is None
    assert count(database, WhatsAppAccount, WhatsAppAccount.deleted_at.is_not(None)) == 0
    assert audit(database, "workspace remove") == []


def test_remove_offboards_the_tenant_and_frees_its_name(bz, database):
    from blazzctl.models import ApiKey, Message, WebhookDelivery, WebhookEndpoint, WhatsAppAccount
    from blazzctl.services import apikeys, events

    other = _tenant(bz, database, "globex")  # a neighbour that must not be touched
    t = _tenant(bz, database)
    mark_linked(database.url, "sales", status="connected")
    with database.session() as s:  # a stale "connected" of a daemon that died: the CLI writes the status
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.workspace_id == t["id"], WhatsAppAccount.name ==
                                                "sales").values(owner="host-z:1", lease_epoch=3))
    with database.session() as s:
        token_of = {k.workspace_id: k.id for k in s.scalars(select(ApiKey))}
        assert len(token_of) == 2
    removed = ok(bz("workspace", "remove", "acme", "--yes", "--force", "--json"))
    assert (removed["id"], removed["name"], sorted(removed["accounts_removed"])) == (t["id"], "acme",
                                                                                    ["sales", "support"])
    assert removed["removed_at"] and (removed["webhooks_deleted"], removed["api_keys_revoked"]) == (1, 1)

    # Gone from every command, by name, id and uuid.
    for ref in ("acme", str(t["id"]), t["uuid"]):
        failed(bz("workspace", "show", ref), 3, "not found")
        failed(bz("account", "list", "--workspace", ref), 3, "not found")
    failed(bz("account", "show", "sales", "--workspace", "acme"), 3, "not found")
    assert [w["name"] for w in ok(bz("workspace", "list", "--json"))] == ["globex"]
    assert {a["workspace"] for a in ok(bz("account", "list", "--json"))} == {"globex"}
    assert [m["id"] for m in ok(bz("message", "list", "--json"))] == [other["message"]]
    assert {w["workspace_id"] for w in ok(bz("webhook", "list", "--json"))} == {other["id"]}
    assert ok(bz("apikey", "list", "--json"))[0]["workspace"] == "globex"

    with database.session() as s:
        accounts = list(s.scalars(select(WhatsAppAccount).where(WhatsAppAccount.workspace_id == t["id"])))
        assert all(a.deleted_at is not None and str(a.desired_state) == "stopped" for a in accounts)
        stale = next(a for a in accounts if a.name == "sales")
        assert (str(stale.status), stale.owner) == ("disconnected", None)
        assert str(s.get(Message, t["message"]).status) == "cancelled"
        assert str(s.get(Message, other["message"]).status) == "pending"
        # No delivery goes out any more: none queued, and none can be queued.
        assert s.scalar(select(func.count()).select_from(WebhookEndpoint)
                        .where(WebhookEndpoint.workspace_id == t["id"])) == 0
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)
                        .where(WebhookDelivery.workspace_id == t["id"])) == 0
        assert events.record(s, type="account.status", workspace_id=t["id"], account_id=stale.id, data={}) is None
        assert s.scalar(select(func.count()).select_from(WebhookDelivery)
                        .where(WebhookDelivery.workspace_id == other["id"])) == 1
        revoked = s.get(ApiKey, token_of[t["id"]])
        assert revoked.revoked_at is not None and s.get(ApiKey, token_of[other["id"]]).revoked_at is None
        assert apikeys.find(s, t["token"]) is None  # the HTTP API refuses the tenant's keys
        assert apikeys.find(s, other["token"]).workspace_id == other["id"]
    (target, ws_id, details), = audit(database, "workspace remove")
    assert (target, ws_id) == ("acme", t["id"])
    assert details == {"force": True, "accounts": 2, "webhooks": 1, "api_keys": 1}
    assert len([a for a in audit(database, "account remove") if a[1] == t["id"]]) == 2

    # The name (and the account names in it) can be used again: a new tenant, a new id.
    again = ok(bz("workspace", "create", "acme", "--json"))
    assert again["id"] != t["id"]
    ok(bz("account", "add", "--workspace", "acme", "--name", "sales"))
    assert [a["workspace_id"] for a in ok(bz("account", "list", "--workspace", "acme", "--json"))] == [again["id"]]
    failed(bz("workspace", "remove", str(t["id"]), "--yes"), 3, "not found")  # removed once only


def test_renaming_to_the_name_of_a_removed_workspace_is_allowed(bz):
    ok(bz("workspace", "create", "old"))
    ok(bz("workspace", "remove", "old", "--yes"))
    ok(bz("workspace", "create", "new"))
    assert ok(bz("workspace", "rename", "new", "old", "--json"))["name"] == "old"


def test_quickstart_does_not_reuse_a_removed_workspace(database):
    from blazzctl.models import WhatsAppAccount, Workspace
    from blazzctl.services import quickstart, workspaces

    with database.session() as s:
        ws = workspaces.create(s, name="default")
        workspaces.remove(s, workspace=ws)
    with database.session() as s:
        account_id, created = quickstart.ensure_account(s, workspace="default", name="default")
        account = s.get(WhatsAppAccount, account_id)
        assert created and account.workspace_id != ws.id
        assert s.get(Workspace, account.workspace_id).deleted_at is None


def test_a_removed_workspace_hides_its_sync_runs_from_the_list_across_workspaces(bz, database):
    from blazzctl.models import SyncRun, WhatsAppAccount

    for name in ("acme", "globex"):
        ok(bz("workspace", "create", name))
        ok(bz("account", "add", "--workspace", name, "--name", "sales"))
    with database.session() as s:
        for account_id in s.scalars(select(WhatsAppAccount.id)):
            s.add(SyncRun(whatsapp_account_id=account_id))
    assert len(ok(bz("sync", "list", "--json"))) == 2
    ok(bz("workspace", "remove", "acme", "--yes"))
    assert [r["account"] for r in ok(bz("sync", "list", "--json"))] == ["sales"]
    assert count(database, SyncRun) == 2  # kept, not shown


def test_a_connected_account_is_released_by_its_daemon_and_its_events_go_nowhere(cli, tmp_path, mariadb_url):
    """A real daemon (fake provider) holds the account: --force stops it as `account remove --force`
    does; the daemon releases the session, and its status change queues no delivery."""
    from blazzctl.db import Database
    from blazzctl.models import WebhookDelivery, WhatsAppAccount

    migrate(mariadb_url)
    database = Database(mariadb_url)
    try:
        with Fleet(tmp_path / "fleet", mariadb_url) as fleet:
            ws = cli("workspace", "create", "acme", "--json", db=mariadb_url).json()
            assert cli("account", "add", "--workspace", "acme", "--name", "sales", db=mariadb_url).code == 0
            fleet.start(1)
            r = cli("account", "connect", "sales", "--workspace", "acme", "--timeout", "30", db=mariadb_url)
            assert r.code == 0, (r, fleet.logs(30))
            add_endpoint(database, ws["id"], "http://127.0.0.1:9/acme")
            failed(cli("workspace", "remove", "acme", "--yes", db=mariadb_url), 4, "'sales'")
            assert cli("workspace", "remove", "acme", "--yes", "--force", db=mariadb_url).code == 0

            def released():
                with database.session() as s:
                    row = s.scalars(select(WhatsAppAccount)).one()
                    return row.owner is None and str(row.status) != "connected"

            wait_for(released, 30, message=lambda: fleet.logs(30))
            with database.session() as s:
                assert s.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    finally:
        database.dispose()


# --- migration 0008 -------------------------------------------------------------------------------

@pytest.fixture
def at_0007(db_url):
    """A database at revision 0007 holding a workspace with an account, a chat, a webhook and a key."""
    from sqlalchemy import text

    from blazzctl.db import Database
    from blazzctl.models import ApiKey, Chat, WebhookEndpoint, WhatsAppAccount
    from blazzctl.services import schema

    schema.create_sqlite_file(db_url)
    db = Database(db_url)
    schema.upgrade(db, "0007")
    with db.engine.begin() as conn:
        for i, name in ((1, "acme"), (2, "globex")):
            conn.execute(text("INSERT INTO workspaces (id, uuid, name, created_at, updated_at) "
                              "VALUES (:i, :u, :n, '2026-01-01', '2026-01-01')"), {"i": i, "u": f"u{i}", "n": name})
    with db.session() as s:
        account = WhatsAppAccount(workspace_id=1, name="sales", session_id="s1")
        s.add(account)
        s.flush()
        # ON DELETE CASCADE children of workspaces: a rebuild with foreign keys on would delete them.
        s.add_all([Chat(workspace_id=1, whatsapp_account_id=account.id, jid="6281@c.us"),
                   WebhookEndpoint(workspace_id=1, url="http://127.0.0.1:9/", secret="whsec_x", active=True),
                   ApiKey(workspace_id=1, name="app", prefix="blz_x", token_hash="h" * 64, scopes=[])])
    yield db
    db.dispose()


def _counts(db) -> dict[str, int]:
    from sqlalchemy import text

    with db.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT COUNT(*) FROM {t}")).scalar()
                for t in ("workspaces", "whatsapp_accounts", "chats", "webhook_endpoints", "api_keys")}


def test_migration_0008_keeps_every_row_and_the_foreign_keys(at_0007):
    from sqlalchemy import exc

    from blazzctl.models import WhatsAppAccount, Workspace
    from blazzctl.services import schema

    before = _counts(at_0007)
    assert schema.upgrade(at_0007) == ("0007", schema.head_revision())
    assert _counts(at_0007) == before == {"workspaces": 2, "whatsapp_accounts": 1, "chats": 1,
                                          "webhook_endpoints": 1, "api_keys": 1}
    assert schema.pending_model_changes(at_0007) == []
    with at_0007.session() as s:
        assert [(w.name, w.live_name, w.deleted_at) for w in s.scalars(select(Workspace).order_by(Workspace.id))] \
            == [("acme", "acme", None), ("globex", "globex", None)]
    with pytest.raises(exc.IntegrityError):  # foreign keys are enforced again (SQLite: the pragma is back on)
        with at_0007.session() as s:
            s.add(WhatsAppAccount(workspace_id=99, name="ghost", session_id="s99"))
    # Down again: the old unique index on the name is back.
    schema.downgrade(at_0007, "0007")
    assert _counts(at_0007) == before
    with pytest.raises(exc.IntegrityError):
        with at_0007.engine.begin() as conn:
            from sqlalchemy import text

            conn.execute(text("UPDATE workspaces SET name = 'acme' WHERE name = 'globex'"))


def test_a_half_done_0008_on_mariadb_is_finished_by_running_it_again(mariadb_url):
    """MySQL commits each DDL statement on its own: a run that stopped after adding the columns."""
    from sqlalchemy import text

    from blazzctl.db import Database
    from blazzctl.services import schema

    db = Database(mariadb_url)
    try:
        schema.upgrade(db, "0007")
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE workspaces ADD COLUMN deleted_at DATETIME(6) NULL"))
            conn.execute(text("ALTER TABLE workspaces ADD COLUMN live_name VARCHAR(100) GENERATED ALWAYS AS "
                              "(CASE WHEN deleted_at IS NULL THEN name ELSE NULL END) STORED"))
        assert schema.upgrade(db) == ("0007", schema.head_revision())
        assert schema.pending_model_changes(db) == []
    finally:
        db.dispose()


def test_downgrade_below_0008_refuses_when_a_removed_name_was_taken_again(bz, migrated_url):
    from blazzctl.db import Database
    from blazzctl.services import schema

    ok(bz("workspace", "create", "acme"))
    ok(bz("workspace", "remove", "acme", "--yes"))
    ok(bz("workspace", "create", "acme"))
    db = Database(migrated_url)
    try:
        with pytest.raises(Exception) as caught:
            schema.downgrade(db, "0007")
        assert "'acme' belong to a removed workspace and to another one" in str(caught.value)
        assert schema.current_revision(db) == schema.head_revision()
        # Refused before anything was undone: the later revisions' tables and columns are all there
        # (on MySQL each DDL statement commits: a refusal half-way would have dropped them).
        from sqlalchemy import inspect

        assert schema.pending_model_changes(db) == []
        assert "wa_web_versions" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()
