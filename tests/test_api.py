"""blazz-api as a real process on a free loopback port, driven with httpx (SQLite and MariaDB).

Every route is called with no key and a bad key (401), a key lacking the route's scope (403),
a key of another workspace (404 for every route that names an object), and a good key.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from blazzctl.services import apikeys
from tests.conftest import REPO, _free_port

BLAZZ_API = Path(sys.executable).parent / "blazz-api"


class ApiServer:
    """``blazz-api --config FILE`` on a free port; ``stop()`` sends SIGTERM (and SIGKILL if it hangs)."""

    def __init__(self, root: Path, url: str, *, workers: int = 1, api: dict | None = None,
                 extra: dict | None = None) -> None:
        self.root, self.port = root, _free_port()
        self.config = root / "api.yaml"
        root.mkdir(parents=True, exist_ok=True)
        settings = {"database": {"url": url},
                    "api": {"port": self.port, "workers": workers, **(api or {})}, **(extra or {})}
        self.config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = root / "api.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "ApiServer":
        env = {k: v for k, v in os.environ.items() if not k.startswith("BLAZZ_")}
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([str(BLAZZ_API), "--config", str(self.config)], cwd=str(self.root), env=env,
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.base}/openapi.json", timeout=2)
                return self
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"blazz-api did not start:\n{self.log.read_text()[-3000:]}")
                time.sleep(0.2)

    def stop(self, timeout: float = 45) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)


def make_key(db, workspace: str, name: str, scopes) -> str:
    from blazzctl.services import refs

    with db.session() as s:
        return apikeys.create(s, workspace=refs.workspace(s, workspace), name=name, scopes=list(scopes))[1]


def seed(db) -> dict:
    """Two workspaces; acme's objects that every route can name; keys."""
    from sqlalchemy import update

    from blazzctl.enums import ChatType, DesiredState
    from blazzctl.models import Chat, Contact, Group, GroupParticipant, Message, WebhookDelivery, WhatsAppAccount
    from blazzctl.models.base import utcnow
    from blazzctl.services import accounts, messages, sync, webhooks, workspaces

    w: dict = {}
    with db.session() as s:
        acme, globex = workspaces.create(s, name="acme"), workspaces.create(s, name="globex")
        s.flush()
        w["globex_id"] = globex.id
        sales = accounts.add(s, workspace=acme, name="sales")
        for name in ("ops", "victim", "extra"):
            w[name] = accounts.add(s, workspace=acme, name=name).id
        accounts.add(s, workspace=globex, name="sales")  # the same name elsewhere: ids are used below
        s.flush()
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == sales.id).values(
            connected_at=utcnow(), desired_state=DesiredState.RUNNING, qr_code="2@fakeQRcode,for,tests==",
            pairing_code=None))
        s.refresh(sales)
        w["acc"] = sales.id
        w["msg"] = messages.send(s, account=sales, to="+62 812-3456-7890", text="hello")[0].id
        w["pending"] = messages.send(s, account=sales, to="+62 812-3456-7891", text="cancel me")[0].id
        w["unknown"] = messages.send(s, account=sales, to="+62 812-3456-7892", text="did it go?")[0].id
        s.execute(update(Message).where(Message.id == w["unknown"]).values(status="unknown", error="handed_lost"))
        chat = Chat(workspace_id=acme.id, whatsapp_account_id=sales.id, jid="6281234567890@c.us",
                    chat_type=ChatType.PRIVATE, name="Budi", last_message_at=utcnow(), last_message="hi")
        group = Group(workspace_id=acme.id, whatsapp_account_id=sales.id, jid="120363012345678901@g.us",
                      name="Team", participants_count=1)
        s.add_all([chat, group, Contact(workspace_id=acme.id, whatsapp_account_id=sales.id,
                                        jid="6281234567890@c.us", phone_number="+6281234567890", name="Budi")])
        s.flush()
        s.add(GroupParticipant(group_id=group.id, jid="6281234567890@c.us", is_admin=True))
        w["gjid"] = group.jid
        w["run"] = sync.request(s, accounts=[sales])[0].run.id
        dead_end = f"http://127.0.0.1:{_free_port()}/hook"  # nothing listens: a test delivery fails at once
        hook = webhooks.add(s, workspace=acme, url=dead_end)
        w["wh"] = hook.id
        w["wh_victim"] = webhooks.add(s, workspace=acme, url=dead_end + "2").id
        w["dlv"] = webhooks.queue_test(s, endpoint=hook).id
        s.execute(update(WebhookDelivery).where(WebhookDelivery.id == w["dlv"]).values(status="dead"))
    w["token"] = make_key(db, "acme", "app", apikeys.SCOPES)
    w["other"] = make_key(db, "globex", "app", apikeys.SCOPES)
    w["without"] = {scope: make_key(db, "acme", f"no-{scope.replace(':', '-')}",
                                    [x for x in apikeys.SCOPES if x != scope]) for scope in apikeys.SCOPES}
    return w


# (method, path, scope, body, status with a good key, whether another workspace's key gets 404)
ROUTES = [
    ("GET", "/v1/accounts", "accounts:read", None, 200, False),
    ("POST", "/v1/accounts", "accounts:write", {"name": "made-by-api"}, 201, False),
    ("GET", "/v1/accounts/{acc}", "accounts:read", None, 200, True),
    ("PATCH", "/v1/accounts/{acc}", "accounts:write", {"phone": "+62 812-3456-7890"}, 200, True),
    ("DELETE", "/v1/accounts/{victim}", "accounts:write", None, 200, True),
    ("POST", "/v1/accounts/{acc}/primary", "accounts:write", None, 200, True),
    ("POST", "/v1/accounts/{ops}/connect", "accounts:write", None, 202, True),
    ("POST", "/v1/accounts/{ops}/disconnect", "accounts:write", None, 202, True),
    ("POST", "/v1/accounts/{ops}/reconnect", "accounts:write", None, 202, True),
    ("POST", "/v1/accounts/{ops}/logout", "accounts:write", None, 202, True),
    ("GET", "/v1/accounts/{acc}/qr", "accounts:read", None, 200, True),
    ("POST", "/v1/accounts/{acc}/messages", "messages:send", {"to": "+62 812 1111 2222", "text": "hi"}, 202, True),
    ("GET", "/v1/accounts/{acc}/messages", "messages:read", None, 200, True),
    ("GET", "/v1/messages/{msg}", "messages:read", None, 200, True),
    ("POST", "/v1/messages/{pending}/cancel", "messages:send", None, 200, True),
    ("POST", "/v1/messages/{unknown}/resend", "messages:send", None, 200, True),
    ("GET", "/v1/accounts/{acc}/chats", "messages:read", None, 200, True),
    ("GET", "/v1/accounts/{acc}/contacts", "messages:read", None, 200, True),
    ("GET", "/v1/accounts/{acc}/groups/{gjid}", "messages:read", None, 200, True),
    ("POST", "/v1/sync-runs", "sync:run", {"accounts": ["{acc}"]}, 202, True),
    ("GET", "/v1/sync-runs", "sync:run", None, 200, False),
    ("GET", "/v1/sync-runs/{run}", "sync:run", None, 200, True),
    ("GET", "/v1/webhooks", "webhooks:manage", None, 200, False),
    ("POST", "/v1/webhooks", "webhooks:manage", {"url": "https://hooks.example.com/x"}, 201, False),
    ("GET", "/v1/webhooks/{wh}", "webhooks:manage", None, 200, True),
    ("PATCH", "/v1/webhooks/{wh}", "webhooks:manage", {"events": ["message.received"]}, 200, True),
    ("DELETE", "/v1/webhooks/{wh_victim}", "webhooks:manage", None, 200, True),
    ("POST", "/v1/webhooks/{wh}/rotate-secret", "webhooks:manage", None, 200, True),
    ("POST", "/v1/webhooks/{wh}/test", "webhooks:manage", None, 200, True),
    ("GET", "/v1/webhooks/{wh}/deliveries", "webhooks:manage", None, 200, True),
    ("POST", "/v1/webhooks/{wh}/deliveries/{dlv}/redeliver", "webhooks:manage", None, 200, True),
    ("POST", "/v1/webhooks/{wh}/redeliver-dead", "webhooks:manage", None, 200, True),
]


def fill(template, w: dict):
    if isinstance(template, str):
        return template.format(**{k: v for k, v in w.items() if not isinstance(v, dict)})
    if isinstance(template, dict):
        return {k: fill(v, w) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, w) for v in template]
    return template


@pytest.fixture(scope="module", params=["sqlite", "mariadb"])
def api(request, tmp_path_factory):
    """(server, world, db) on a freshly migrated database of each dialect."""
    from blazzctl.db import Database
    from tests.daemon_helpers import migrate

    root = tmp_path_factory.mktemp(f"api-{request.param}")
    if request.param == "sqlite":
        url, drop = f"sqlite:///{root / 'blazz.db'}", None
        from blazzctl.services import schema

        schema.create_sqlite_file(url)
    else:
        server = request.getfixturevalue("mariadb_server")
        url = server.create_database()
        drop = lambda: server.drop_database(url)  # noqa: E731
    migrate(url)
    db = Database(url)
    world = seed(db)
    srv = ApiServer(root, url, api={"rate_limit_per_minute": 0}).start()
    try:
        yield srv, world, db
    finally:
        srv.stop()
        db.dispose()
        if drop:
            drop()


def call(srv: ApiServer, method: str, path: str, token: str | None = None, body=None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    return httpx.request(method, srv.base + path, headers=headers, json=body, timeout=30, **kw)


def problem(response: httpx.Response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    data = response.json()
    assert data["type"] == f"urn:blazz:problem:{slug}" and data["status"] == status and data["detail"], data
    assert "Traceback" not in response.text
    return data


@pytest.mark.parametrize("route", ROUTES, ids=[f"{m} {p}" for m, p, *_ in ROUTES])
def test_every_route_401_403_404_and_ok(api, route):
    srv, w, _db = api
    method, template, scope, body, good, scoped_404 = route
    path, body = fill(template, w), fill(body, w)
    problem(call(srv, method, path, None, body), 401, "unauthorized")
    problem(call(srv, method, path, "blz_" + "x" * 43, body), 401, "unauthorized")
    problem(call(srv, method, path, "not-even-a-token", body), 401, "unauthorized")
    assert problem(call(srv, method, path, w["without"][scope], body), 403, "forbidden")["scope"] == scope
    foreign = call(srv, method, path, w["other"], body)
    if scoped_404:
        problem(foreign, 404, "not-found")
    elif method == "GET":  # a list of the caller's own workspace: nothing of acme's in it
        assert foreign.status_code == 200, foreign.text
        assert {row["workspace_id"] for row in foreign.json()} <= {w["globex_id"]}, foreign.text
    ok = call(srv, method, path, w["token"], body)
    assert ok.status_code == good, ok.text
    assert ok.headers["content-type"].startswith("application/json")


def test_every_route_of_the_application_is_in_the_table(api):
    srv = api[0]
    document = httpx.get(f"{srv.base}/openapi.json").json()
    served = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops} - {("GET", "/health")}
    tested = {(m, p.replace("{victim}", "{acc}").replace("{ops}", "{acc}").replace("{pending}", "{msg}")
               .replace("{unknown}", "{msg}").replace("{wh_victim}", "{wh}")) for m, p, *_ in ROUTES}
    named = {(m, p.replace("{ref}", "{acc}").replace("{message_id}", "{msg}").replace("{run_id}", "{run}")
              .replace("{endpoint_id}", "{wh}").replace("{delivery_id}", "{dlv}").replace("{jid}", "{gjid}"))
             for m, p in served}
    assert named == tested
    assert httpx.get(f"{srv.base}/docs").status_code == 200


def test_health_needs_no_key_and_says_what_blazzctl_health_says(api):
    srv = api[0]
    answer = httpx.get(f"{srv.base}/health")
    data = answer.json()
    names = [c["name"] for c in data["checks"]]
    assert "database" in names and "daemons" in names
    # no session daemon runs here: CRITICAL, so 503
    assert data["status"] == "CRITICAL" and answer.status_code == 503


def test_the_json_is_the_clis_json(api, cli):
    srv, w, db = api
    api_view = call(srv, "GET", f"/v1/accounts/{w['extra']}", w["token"]).json()
    shown = cli("account", "show", str(w["extra"]), "--json", db=db.url)
    assert shown.code == 0 and json.loads(shown.stdout) == api_view
    api_list = call(srv, "GET", f"/v1/accounts/{w['acc']}/messages?limit=50", w["token"]).json()
    listed = cli("message", "list", str(w["acc"]), "--json", "--limit", "50", db=db.url)
    assert json.loads(listed.stdout) == api_list and api_list


def test_keyset_pages_follow_the_link_header(api):
    srv, w, _ = api
    seen, path, pages = [], "/v1/accounts?limit=2", 0
    while path:
        answer = call(srv, "GET", path, w["token"])
        seen += [a["id"] for a in answer.json()]
        link = answer.headers.get("link")
        path = link.split(";")[0].strip("<>") if link else None
        pages += 1
        assert pages < 20
    everything = [a["id"] for a in call(srv, "GET", "/v1/accounts?limit=1000", w["token"]).json()]
    # no empty last page: a Link header only when more rows follow
    assert seen == everything and len(everything) > 2 and pages == -(-len(everything) // 2)


def test_validation_conflict_and_state_errors_are_problems(api):
    srv, w, _ = api
    bad = problem(call(srv, "POST", "/v1/accounts", w["token"], {}), 422, "invalid-input")
    assert bad["errors"][0]["field"] == "body.name"
    typo = problem(call(srv, "POST", "/v1/accounts", w["token"], {"name": "x", "fone": "1"}), 422, "invalid-input")
    assert any(e["field"] == "body.fone" for e in typo["errors"])
    problem(call(srv, "POST", "/v1/accounts", w["token"], {"name": "bad\nname"}), 422, "invalid-input")
    problem(call(srv, "POST", "/v1/accounts", w["token"], {"name": "extra"}), 409, "conflict")
    problem(call(srv, "GET", "/v1/accounts?limit=0", w["token"]), 422, "invalid-input")
    problem(call(srv, "GET", "/v1/accounts?status=dancing", w["token"]), 422, "invalid-input")
    problem(call(srv, "GET", "/v1/accounts/999999", w["token"]), 404, "not-found")
    problem(call(srv, "GET", f"/v1/accounts/{w['extra']}/qr", w["token"]), 409, "operation-failed")
    # a message for an account that never connected: nothing queued
    problem(call(srv, "POST", f"/v1/accounts/{w['extra']}/messages", w["token"], {"to": "+62 812 1111 2222",
                                                                               "text": "x"}), 409, "operation-failed")
    problem(call(srv, "GET", "/v1/nothing-here", w["token"]), 404, "not-found")


def test_resend_queues_an_unknown_message_and_refuses_any_other(api):
    srv, w, db = api
    from blazzctl.models import Message

    with db.session() as s:
        m = s.get(Message, w["msg"])
        account_id = m.whatsapp_account_id
    sent = call(srv, "POST", f"/v1/accounts/{account_id}/messages", w["token"], {"to": "+62 812 1111 3333",
                                                                                 "text": "resend me"}).json()
    with db.session() as s:
        s.get(Message, sent["id"]).status = "unknown"
    problem(call(srv, "POST", f"/v1/messages/{w['msg']}/resend", w["token"]), 409, "conflict")  # pending
    again = call(srv, "POST", f"/v1/messages/{sent['id']}/resend", w["token"])
    assert again.status_code == 200 and again.json()["status"] == "pending", again.text
    problem(call(srv, "POST", f"/v1/messages/{sent['id']}/resend", w["token"]), 409, "conflict")  # not twice


def test_idempotent_send_makes_one_message(api):
    srv, w, _ = api
    body = {"to": "+62 812 5555 0001", "text": "once"}
    headers = {"Idempotency-Key": "order-17"}
    first = call(srv, "POST", f"/v1/accounts/{w['acc']}/messages", w["token"], body, headers=headers)
    again = call(srv, "POST", f"/v1/accounts/{w['acc']}/messages", w["token"], body, headers=headers)
    assert first.status_code == 202 and again.status_code == 200, (first.text, again.text)
    assert again.headers["idempotent-replayed"] == "true" and first.json() == again.json()
    assert first.json()["idempotency_key"] == "order-17"
    other = call(srv, "POST", f"/v1/accounts/{w['acc']}/messages", w["token"], {**body, "text": "twice"},
                 headers=headers)
    problem(other, 409, "conflict")
    listed = call(srv, "GET", f"/v1/accounts/{w['acc']}/messages?limit=1000", w["token"]).json()
    assert [m["idempotency_key"] for m in listed].count("order-17") == 1


def test_media_as_base64_or_multipart_is_stored_with_the_message(api):
    from blazzctl.services import message_media

    srv, w, db = api
    png = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    as_json = call(srv, "POST", f"/v1/accounts/{w['acc']}/messages", w["token"],
                   {"to": "+62 812 5555 0002", "media": {"filename": "dot.png", "data": base64.b64encode(png).decode()},
                    "caption": "a dot"}, headers={"Idempotency-Key": "media-1"})
    assert as_json.status_code == 202, as_json.text
    assert as_json.json()["type"] == "image" and as_json.json()["body"] == "a dot"
    retried = call(srv, "POST", f"/v1/accounts/{w['acc']}/messages", w["token"],
                   {"to": "+62 812 5555 0002", "media": {"filename": "dot.png", "data": base64.b64encode(png).decode()},
                    "caption": "a dot"}, headers={"Idempotency-Key": "media-1"})
    assert retried.status_code == 200 and retried.json()["id"] == as_json.json()["id"]
    multi = httpx.post(f"{srv.base}/v1/accounts/{w['acc']}/messages",
                       headers={"Authorization": f"Bearer {w['token']}"},
                       data={"to": "+62 812 5555 0003", "caption": "by form"},
                       files={"file": ("report.pdf", b"%PDF-1.4 fake", "application/pdf")})
    assert multi.status_code == 202 and multi.json()["type"] == "document", multi.text
    with db.session() as s:
        assert message_media.load(s, as_json.json()["id"]) == png
        assert message_media.load(s, multi.json()["id"]) == b"%PDF-1.4 fake"
    problem(call(srv, "POST", f"/v1/accounts/{w['acc']}/messages", w["token"],
                 {"to": "+62 812 5555 0002", "media": {"filename": "x.png", "data": "***"}}), 422, "invalid-input")


def test_qr_as_png_decodes_to_the_json_string(api, tmp_path):
    srv, w, _ = api
    as_json = call(srv, "GET", f"/v1/accounts/{w['acc']}/qr", w["token"]).json()
    assert set(as_json) == {"qr", "expires_at", "pairing_code"} and as_json["qr"]
    png = call(srv, "GET", f"/v1/accounts/{w['acc']}/qr", w["token"], headers={"Accept": "image/png"})
    assert png.headers["content-type"] == "image/png"
    (tmp_path / "qr.png").write_bytes(png.content)
    decoded = subprocess.run(["zbarimg", "--raw", "-q", str(tmp_path / "qr.png")], capture_output=True, text=True,
                             timeout=30)
    assert decoded.stdout.strip() == as_json["qr"]
    problem(call(srv, "GET", f"/v1/accounts/{w['acc']}/qr", w["token"], headers={"Accept": "text/html"}), 406,
            "not-acceptable")


def test_long_poll_answers_when_the_account_changes(api):
    import threading

    from sqlalchemy import update

    from blazzctl.models import WhatsAppAccount

    srv, w, db = api
    path = f"/v1/accounts/{w['extra']}"
    now = call(srv, "GET", path, w["token"])
    tag = now.headers["etag"]
    # nothing changes: the wait ends after its time, with the same state
    started = time.monotonic()
    same = call(srv, "GET", path + "?wait=1", w["token"], headers={"If-None-Match": tag})
    assert same.headers["etag"] == tag and time.monotonic() - started >= 0.9

    def rename_later():
        time.sleep(1.0)
        with db.session() as s:
            s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == w["extra"]).values(status_reason="poked"))

    threading.Thread(target=rename_later).start()
    started = time.monotonic()
    changed = call(srv, "GET", path + "?wait=30", w["token"], headers={"If-None-Match": tag})
    assert changed.json()["status_reason"] == "poked" and changed.headers["etag"] != tag
    assert time.monotonic() - started < 20  # answered on the change, not at the end of the wait
    problem(call(srv, "GET", path + "?wait=31", w["token"]), 422, "invalid-input")


def test_audit_rows_name_the_key_and_last_used_is_recorded(api):
    from sqlalchemy import select

    from blazzctl.models import ApiKey, AuditEvent

    srv, w, db = api
    assert call(srv, "POST", "/v1/accounts", w["token"], {"name": "audited"}).status_code == 201
    with db.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.command == "account add",
                                                   AuditEvent.target == "acme/audited")).one()
        assert event.details["api_key"]["name"] == "app"
        key = s.scalars(select(ApiKey).where(ApiKey.token_hash == apikeys.token_hash(w["token"]))).one()
        assert key.last_used_at is not None


def test_a_revoked_key_is_refused(api):
    srv, w, db = api
    token = make_key(db, "acme", "short-lived", ["accounts:read"])
    assert call(srv, "GET", "/v1/accounts", token).status_code == 200
    with db.session() as s:
        apikeys.revoke(s, key=apikeys.get(s, "short-lived"))
    deadline = time.monotonic() + 15  # each worker caches a key for a few seconds
    while call(srv, "GET", "/v1/accounts", token).status_code == 200:
        assert time.monotonic() < deadline, "a revoked key kept working"
        time.sleep(0.5)
    problem(call(srv, "GET", "/v1/accounts", token), 401, "unauthorized")
