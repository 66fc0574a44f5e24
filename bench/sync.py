"""Sync write benchmark: 10,000 chats + 10,000 contacts for one account, on MariaDB.

    python3 bench/sync.py [--server-url mysql+pymysql://root@127.0.0.1:3306] [--chats 10000] [--contacts 10000]

1. Ours: the daemon's own store path (``SyncWorker._store``: listings mapped once, then
   batched insert-or-update of ``sync.batch_size`` rows per transaction, each fenced by the
   account's lease and recording progress) — on empty tables, then again (every row an update).
2. Row by row, what the original did (``updateOrCreate`` per row): a SELECT by (account, jid)
   then an INSERT or UPDATE, one transaction per row — on a second account, same data.

Without ``--server-url`` a private mariadbd is started in a temp dir (as the tests do).
Target (issue 5): ours <= 2 s and >= 20x faster than row by row.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def setup_database(server_url: str | None, tmp: Path, name: str):
    """A fresh migrated database on the given server, or on a private mariadbd; (db, url, private, version)."""
    from blazzctl.db import Database
    from blazzctl.services import schema
    from tests.conftest import bench_database

    url, version, private = bench_database(server_url, tmp, name)
    db = Database(url)
    schema.upgrade(db)
    return db, url, private, version


def listings(chats: int, contacts: int) -> dict[str, list]:
    """Chats and contacts in the shapes bridge.js returns, all within the sync window."""
    now = int(time.time())
    return {
        "chats": [{"id": f"{4915550000000 + i}@c.us", "name": f"Chat {i}", "is_group": False, "unread": i % 3,
                   "t": now - i, "archived": False,
                   "last": {"body": f"last message of chat {i}", "type": "chat", "t": now - i}} for i in range(chats)],
        "contacts": [{"id": f"{4915560000000 + i}@c.us", "number": str(4915560000000 + i), "name": f"Contact {i}",
                      "pushname": f"Push {i}", "is_business": i % 10 == 0, "is_my_contact": True}
                     for i in range(contacts)],
    }


def owned_account(db, name: str, owner: str) -> tuple[int, int]:
    from sqlalchemy import update

    from blazzctl.models import WhatsAppAccount
    from blazzctl.services import accounts, workspaces

    with db.session() as s:
        ws = workspaces.create(s, name=name)
        acc = accounts.add(s, workspace=ws, name=name)
        s.flush()
        s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id == acc.id).values(owner=owner, lease_epoch=1))
        return ws.id, acc.id


def ours(db, data: dict, ws: int, acc: int, owner: str) -> tuple[float, dict]:
    from blazzctl.enums import SyncKind
    from blazzctl.models import SyncRun
    import dataclasses

    from blazzctl.settings import Settings, SyncSettings
    from daemons.session.sync import SyncWorker, Taken

    with db.session() as s:
        run = SyncRun(whatsapp_account_id=acc, kind=SyncKind.ALL)
        s.add(run)
        s.flush()
        run_id, uuid = run.id, run.uuid
    settings = dataclasses.replace(Settings(), sync=SyncSettings(max_chats=1_000_000))  # the default caps at 1000
    worker = SyncWorker(db, sessions=None, settings=settings, owner=owner)
    taken = Taken(run_id, uuid, acc, ws, 1, SyncKind.ALL, datetime.now(timezone.utc))
    started, cpu = time.perf_counter(), time.process_time()
    totals = worker._store(taken, data)
    CPU.append(time.process_time() - cpu)
    return time.perf_counter() - started, totals


CPU: list[float] = []  # this process's CPU seconds per run of ours (mapping, SQLAlchemy, PyMySQL)


def row_by_row(db, data: dict, ws: int, acc: int) -> float:
    """updateOrCreate per row: SELECT by (account, jid), then INSERT or UPDATE; one transaction each."""
    from sqlalchemy import select

    from blazzctl.models import Chat, Contact
    from blazzctl.services import sync_store

    now = datetime.now(timezone.utc)
    scope = sync_store.Scope(ws, acc)
    chats = sync_store.chat_rows(data["chats"], scope, now)
    contacts = sync_store.contact_rows(data["contacts"], scope, now)
    started = time.perf_counter()
    for model, rows in ((Chat, chats), (Contact, contacts)):
        for row in rows:
            with db.session() as s:
                found = s.scalars(select(model).where(model.whatsapp_account_id == acc, model.jid == row["jid"])).first()
                if found is None:
                    s.add(model(**row))
                else:
                    for key, value in row.items():
                        if key != "created_at":
                            setattr(found, key, value)
    return time.perf_counter() - started


def count(db, model, acc: int) -> int:
    from sqlalchemy import func, select

    with db.session() as s:
        return s.scalar(select(func.count()).select_from(model).where(model.whatsapp_account_id == acc))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url")
    parser.add_argument("--chats", type=int, default=10_000)
    parser.add_argument("--contacts", type=int, default=10_000)
    args = parser.parse_args()
    from blazzctl.models import Chat, Contact

    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        db, _url, private, version = setup_database(args.server_url, Path(tmp), "blazz_bench_sync")
        try:
            data = listings(args.chats, args.contacts)
            rows = args.chats + args.contacts
            ws, acc = owned_account(db, "ours", "bench:1")
            first, totals = ours(db, data, ws, acc, "bench:1")
            second, _ = ours(db, data, ws, acc, "bench:1")
            assert (count(db, Chat, acc), count(db, Contact, acc)) == (args.chats, args.contacts), "rows missing"
            ws2, acc2 = owned_account(db, "row-by-row", "bench:2")
            slow = row_by_row(db, data, ws2, acc2)
            assert (count(db, Chat, acc2), count(db, Contact, acc2)) == (args.chats, args.contacts)
        finally:
            db.dispose()
            if private is not None:
                private.stop()
    print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"MariaDB {version}")
    print(f"load average before/after: {load[0]:.1f} / {os.getloadavg()[0]:.1f} (2-core machine shared with other work)")
    print(f"rows: {args.chats} chats + {args.contacts} contacts for one account; batch_size 500 (default)")
    print(f"ours, empty tables (inserts): {first:.2f} s ({rows / first:,.0f} rows/s, client CPU {CPU[0]:.2f} s); "
          f"totals {totals}")
    print(f"ours, again (all updates):    {second:.2f} s ({rows / second:,.0f} rows/s, client CPU {CPU[1]:.2f} s)")
    print(f"row by row (get-or-create):   {slow:.2f} s ({rows / slow:,.0f} rows/s)")
    print(f"speed-up: {slow / first:.0f}x (inserts), {slow / second:.0f}x (updates)")
    ok = max(first, second) <= 2.0 and slow / max(first, second) >= 20
    print(f"target ours <= 2 s and >= 20x faster: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
