"""Twenty processes make different accounts of one workspace primary at once (MariaDB).

At the end exactly one account is primary, and every call exited 0 or 4 (never a traceback).
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from blazzctl.db import Database
from blazzctl.models import AuditEvent, WhatsAppAccount
from blazzctl.services import accounts, schema, workspaces

N = 20
pytestmark = pytest.mark.mariadb


@pytest.fixture
def workspace_with_accounts(mariadb_url):
    db = Database(mariadb_url)
    schema.upgrade(db)
    with db.session() as session:
        ws = workspaces.create(session, name="acme")
        other = workspaces.create(session, name="globex")
        ids = [accounts.add(session, workspace=ws, name=f"acc-{i:02d}").id for i in range(N)]
        bystander = accounts.add(session, workspace=other, name="acc-00")
        accounts.make_primary(session, account=bystander)
    db.dispose()  # no connection of ours crosses a fork
    return mariadb_url, ids, bystander.id


def primaries(url: str) -> list[tuple[int, int]]:
    db = Database(url)
    with db.session() as session:
        rows = session.execute(select(WhatsAppAccount.workspace_id, WhatsAppAccount.id)
                               .where(WhatsAppAccount.is_primary.is_(True)).order_by(WhatsAppAccount.id)).all()
        audits = session.scalars(select(AuditEvent).where(AuditEvent.command == "account primary")).all()
    db.dispose()
    return [tuple(r) for r in rows], len(audits)


def _worker(url: str, account_id: int, barrier, results) -> None:
    """One process: warm up (imports, settings), wait for all, then run the real CLI."""
    import io
    import contextlib

    os.environ["BLAZZ_DATABASE_URL"] = url
    from blazzctl.cli.main import app
    from blazzctl.services import accounts as _accounts, refs as _refs  # noqa: F401  (warm imports)

    err = io.StringIO()
    barrier.wait(timeout=60)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            app(["account", "primary", str(account_id), "--workspace", "acme"], prog_name="blazzctl")
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            code, err = -1, io.StringIO(repr(exc))
    results.put((account_id, code, err.getvalue()))


@pytest.mark.parametrize("round_", range(2))
def test_twenty_processes_racing_leave_exactly_one_primary(workspace_with_accounts, round_):
    url, ids, bystander = workspace_with_accounts
    ctx = multiprocessing.get_context("fork")
    barrier, results = ctx.Barrier(N), ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, account_id, barrier, results)) for account_id in ids]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    bad = [o for o in outcomes if o[1] not in (0, 4) or (o[1] == 4 and "error:" not in o[2])]
    assert bad == [], bad
    assert any(code == 0 for _, code, _ in outcomes)
    rows, audits = primaries(url)
    acme = [account_id for ws_id, account_id in rows if account_id != bystander]
    assert len(acme) == 1 and acme[0] in ids, rows
    assert (rows[-1] if rows[-1][1] == bystander else rows[0])[1] == bystander  # other workspace untouched
    assert len(rows) == 2
    assert audits == 1 + sum(1 for _, code, _ in outcomes if code == 0)


def test_twenty_blazzctl_subprocesses(workspace_with_accounts):
    """The literal form: 20 `python -m blazzctl account primary` processes started together."""
    url, ids, bystander = workspace_with_accounts
    repo = str(Path(__file__).resolve().parent.parent)  # this checkout, whatever the editable install says
    env = {**os.environ, "BLAZZ_DATABASE_URL": url, "BLAZZ_WORKSPACE": "acme",
           "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    procs = [subprocess.Popen([sys.executable, "-m", "blazzctl", "account", "primary", f"acc-{i:02d}", "--json"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(N)]
    outcomes = []
    for p in procs:
        out, err = p.communicate(timeout=180)
        outcomes.append((p.returncode, out, err))
    assert [o for o in outcomes if o[0] not in (0, 4) or "Traceback" in o[2]] == []
    winners = [o for o in outcomes if o[0] == 0]
    assert winners and all('"is_primary": true' in out for _, out, _ in winners)
    rows, _ = primaries(url)
    assert len([r for r in rows if r[1] != bystander]) == 1 and len(rows) == 2
