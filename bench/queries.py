"""Query benchmark at scale: 3,000 accounts, 300,000 chats, 1,000,000 messages on MariaDB.

    python3 bench/queries.py [--server-url mysql+pymysql://root@127.0.0.1:3306] [--runs 200] [--keep]

Seeds with multi-row INSERTs (values generated here, so no escaping is needed), then times
the code behind each command (the service functions themselves, in a unit of work as the CLI
opens one) and prints p50/p95, then EXPLAINs every SELECT those functions sent (captured from
the engine) and checks that each uses an index and neither scans a whole table nor filesorts a
large set. One "heavy" account holds 30,000 chats and 200,000 messages so the deep pages are
really deep (keyset pagination makes their cost independent of depth).

Without ``--server-url`` a private mariadbd is started in a temp dir (as the tests do).
Target (issue 5): every p95 <= 30 ms, and EXPLAIN shows index use for each.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

WORKSPACES, ACCOUNTS, CHATS, MESSAGES = 300, 3_000, 300_000, 1_000_000
HEAVY_CHATS, HEAVY_MESSAGES = 30_000, 200_000  # account 1
PENDING_EVERY = 500  # one message in 500 is pending (the outbound poll's rows)
FREE_ACCOUNTS = 100  # runnable accounts without a lease (what the claim query finds)
ROWS_PER_INSERT = 5_000
SYNC_RUNS = 30_000  # ten finished runs per account: the sync worker's idle poll must not scan them


def uuid_of(kind: int, i: int) -> str:
    h = f"{kind:04x}{i:028x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def ts(dt: datetime) -> str:
    return dt.strftime("'%Y-%m-%d %H:%M:%S.%f'")


def insert(connect, table: str, columns: str, rows, senders: int = 2) -> None:
    """Multi-row INSERTs of already-rendered value tuples, ROWS_PER_INSERT at a time.

    This thread renders statements while ``senders`` threads (each with its own connection)
    send them, so Python and the server work at the same time.
    """
    import queue
    import threading

    statements: queue.Queue = queue.Queue(maxsize=2 * senders)
    failures = []

    def send() -> None:
        conn = connect()
        cur = conn.cursor()
        cur.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        while (sql := statements.get()) is not None:
            try:
                cur.execute(sql)
                conn.commit()
            except Exception as exc:  # reported after the join
                failures.append(exc)
        conn.close()

    threads = [threading.Thread(target=send) for _ in range(senders)]
    for t in threads:
        t.start()
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) == ROWS_PER_INSERT:
            statements.put(f"INSERT INTO {table} ({columns}) VALUES {','.join(batch)}")
            batch = []
    if batch:
        statements.put(f"INSERT INTO {table} ({columns}) VALUES {','.join(batch)}")
    for _ in threads:
        statements.put(None)
    for t in threads:
        t.join()
    if failures:
        raise failures[0]


def chat_counts() -> list[int]:
    """Chats per account (index 0 = account 1, the heavy one)."""
    rest, others = CHATS - HEAVY_CHATS, ACCOUNTS - 1
    return [HEAVY_CHATS] + [rest // others + (1 if i < rest % others else 0) for i in range(others)]


def seed(connect, now: datetime) -> dict:
    """Everything the queries read; returns facts the timing needs (chat id ranges per account)."""
    t0 = time.perf_counter()
    n = ts(now)
    insert(connect, "workspaces", "id, uuid, name, created_at, updated_at",
           (f"({w},'{uuid_of(1, w)}','ws-{w:04d}',{n},{n})" for w in range(1, WORKSPACES + 1)))
    per_ws = ACCOUNTS // WORKSPACES
    lease = ts(now + timedelta(hours=1))

    def account(a: int) -> str:
        ws = (a - 1) // per_ws + 1
        free = a > ACCOUNTS - FREE_ACCOUNTS
        owner = "NULL" if free else f"'host-{a % 7}:{a % 4 + 1}'"
        expires = "NULL" if free else lease
        return (f"({a},'{uuid_of(2, a)}',{ws},'acc-{a:05d}','wa_{a:024x}','+6281{a:08d}','webjs','connected',"
                f"{1 if (a - 1) % per_ws == 0 else 0},'running',{owner},{a},{expires},0,{n},{n},{n})")
    insert(connect, "whatsapp_accounts", "id, uuid, workspace_id, name, session_id, phone_number, provider_type, status, "
           "is_primary, desired_state, owner, lease_epoch, lease_expires_at, event_sequence, last_activity_at, "
           "created_at, updated_at", (account(a) for a in range(1, ACCOUNTS + 1)))
    counts = chat_counts()
    first_chat, chat_id = [], 0
    chat_rows = []
    for a, k in enumerate(counts, start=1):
        ws = (a - 1) // per_ws + 1
        first_chat.append(chat_id + 1)
        for c in range(k):
            chat_id += 1
            group = c % 10 == 0
            jid = f"1203630{chat_id:011d}@g.us" if group else f"62812{chat_id:08d}@c.us"
            last = ts(now - timedelta(seconds=c * 37 + a))
            chat_rows.append(f"({chat_id},{ws},{a},'{jid}','{'group' if group else 'private'}','webjs','Chat {c}',"
                             f"{c % 4},{last},'last message {c}',0,{n},{n})")
    insert(connect, "chats", "id, workspace_id, whatsapp_account_id, jid, chat_type, provider_type, name, unread_count, "
           "last_message_at, last_message, archived, created_at, updated_at", chat_rows)
    del chat_rows
    t_chats = time.perf_counter()

    def messages():
        rest, others = MESSAGES - HEAVY_MESSAGES, ACCOUNTS - 1
        mid = 0
        for a in range(1, ACCOUNTS + 1):
            ws = (a - 1) // per_ws + 1
            k = HEAVY_MESSAGES if a == 1 else rest // others + (1 if a - 2 < rest % others else 0)
            chats = counts[a - 1]
            for m in range(k):
                mid += 1
                chat = first_chat[a - 1] + m % chats
                out = m % 2 == 0
                status = "pending" if mid % PENDING_EVERY == 0 else ("read" if out else "received")
                at = ts(now - timedelta(seconds=m * 11 + a))
                yield (f"({mid},'{uuid_of(3, mid)}',{ws},{a},{chat},'c{chat}@c.us','{'out' if out else 'in'}','text',"
                       f"'message body {m}','{status}',{'NULL' if status == 'pending' else 3},"
                       f"{'NULL' if status == 'pending' else repr(f'3EB0{mid:020X}')},0,{at},{at})")
    insert(connect, "messages", "id, uuid, workspace_id, whatsapp_account_id, chat_id, chat_jid, direction, type, body, "
           "status, ack, wa_message_id, attempts, created_at, updated_at", messages())
    t_msgs = time.perf_counter()
    done = ts(now - timedelta(days=1))
    insert(connect, "sync_runs", "id, uuid, whatsapp_account_id, kind, status, progress_done, progress_total, "
           "requested_at, started_at, finished_at", (
               f"({r},'{uuid_of(4, r)}',{(r - 1) % ACCOUNTS + 1},'all','succeeded',10,10,{done},{done},{done})"
               for r in range(1, SYNC_RUNS + 1)))
    conn = connect()
    cur = conn.cursor()
    for table in ("workspaces", "whatsapp_accounts", "chats", "messages", "sync_runs"):
        cur.execute(f"ANALYZE TABLE {table}")
        cur.fetchall()
    conn.close()
    return {"first_chat": first_chat, "seed_s": time.perf_counter() - t0, "chats_s": t_chats - t0,
            "messages_s": t_msgs - t_chats}


class Captured:
    """The SELECTs the engine sent while ``on`` (for EXPLAIN)."""

    def __init__(self) -> None:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        self.on, self.seen = False, {}
        # Every engine: the code may read through another pool than db.engine (db.read()).
        event.listen(Engine, "before_cursor_execute", self._hook)

    def _hook(self, conn, cursor, statement, parameters, context, executemany):
        if self.on and statement.lstrip().upper().startswith("SELECT"):
            self.seen.setdefault(statement, parameters)


def timed(db, fn, runs: int, own_session: bool = False) -> list[float]:
    """Milliseconds per call; the call runs in a unit of work, as a command runs it (unless it opens its own)."""
    out = []
    for i in range(runs):
        started = time.perf_counter()
        if own_session:
            fn(None, i)
        else:
            with db.session() as s:
                fn(s, i)
        out.append((time.perf_counter() - started) * 1000)
    return out


def explain(db, statement: str, parameters) -> list[dict]:
    with db.engine.connect() as conn:
        cursor = conn.connection.cursor()
        cursor.execute("EXPLAIN " + statement, parameters)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def verdict(plan: list[dict]) -> tuple[bool, str]:
    """Index used by every table access; no full scan; a filesort only over a handful of rows."""
    notes, ok = [], True
    for row in plan:
        key, extra, kind, rows = row.get("key"), row.get("Extra") or "", row.get("type"), row.get("rows") or 0
        notes.append(f"{row.get('table')}: type={kind} key={key} rows={rows} {extra}".strip())
        if key is None and kind not in ("const", "system") or kind == "ALL":
            ok = False
        if "filesort" in extra and int(rows) > 1000:
            ok = False
    return ok, "; ".join(notes)


def scenarios(db, facts: dict):
    """(name, function(session, i)) pairs: the code behind each command."""
    from blazzctl.services import accounts, chats, refs
    from daemons.session import leases

    try:
        from blazzctl.services.messages import list_messages
    except ImportError:  # the messages service is not there yet: the same keyset query
        list_messages = _list_messages_equivalent
    rng = random.Random(5)
    heavy_first = facts["first_chat"][0]
    deep_chat = heavy_first + HEAVY_CHATS - 100  # about 29,900 chats down the list
    deep_msg = HEAVY_MESSAGES - 1_000  # a message ~199,000 down account 1's list

    def ws_list(s, i):
        accounts.account_views(s, workspace=refs.workspace(s, f"ws-{rng.randint(1, WORKSPACES):04d}"))

    def page_first(s, i):  # what `blazzctl account list` asks for without --limit
        accounts.account_views(s, limit=100)

    def page_deep(s, i):
        accounts.account_views(s, limit=100, after=ACCOUNTS - 200 + (i % 50))

    def page_large(s, i):
        accounts.account_views(s, limit=1000)

    def all_list(s, i):
        accounts.account_views(s)

    def chat_first(s, i):
        chats.list_chats(s, account_id=1 if i % 2 else rng.randint(2, ACCOUNTS), limit=50)

    def chat_deep(s, i):
        chats.list_chats(s, account_id=1, limit=50, before=deep_chat - (i % 50))

    def msg_first(s, i):
        list_messages(s, account_id=1 if i % 2 else rng.randint(2, ACCOUNTS), limit=50)

    def msg_deep(s, i):
        list_messages(s, account_id=1, limit=50, before=deep_msg - (i % 50) * 7)

    try:  # the sender's own poll (it opens its own unit of work)
        from blazzctl.settings import Settings
        from daemons.session.outbound import Outbound

        due = Outbound(db, None, "bench", Settings().messages).due
    except ImportError:  # not there yet: the same statement
        due = None

    def outbound_poll(s, i):
        owned = rng.sample(range(1, ACCOUNTS + 1), 50)
        if due is not None:
            due(owned)
        else:
            with db.session() as own:
                own.execute(_outbound_query(owned)).all()

    from daemons.session.sync import take_next

    def sync_poll(s, i):
        owned = rng.sample(range(1, ACCOUNTS + 1), 50)
        take_next(db, owner="bench", live={a: a for a in owned}, skip=set())

    def claim(s, i):
        list(s.scalars(leases.claim_query(10)))

    return [("account list --workspace WS (10 of 3,000 accounts)", ws_list),
            ("account list, first page (default --limit 100)", page_first),
            ("account list, deep page (--limit 100 --after ~2,800)", page_deep),
            ("account list --limit 1000 (not a target: a large page)", page_large),
            ("all 3,000 accounts in one call (not a target: no page)", all_list),
            ("chat list, first page (50)", chat_first), ("chat list, deep page (~29,900 down)", chat_deep),
            ("message list, first page (50)", msg_first), ("message list, deep page (~199,000 down)", msg_deep),
            ("daemon outbound poll (50 owned accounts)", outbound_poll),
            ("daemon sync poll (50 owned accounts)", sync_poll), ("claim query (LIMIT 10, SKIP LOCKED)", claim)]


OWN_SESSION = {"daemon outbound poll (50 owned accounts)", "daemon sync poll (50 owned accounts)"}


def _outbound_query(account_ids: list[int]):
    """The outbound sender's poll (daemons.session.outbound.Outbound.due), as a statement."""
    from sqlalchemy import or_, select

    from blazzctl.db import db_now
    from blazzctl.enums import MessageStatus
    from blazzctl.models import Message

    return (select(Message.id, Message.whatsapp_account_id).where(
        Message.whatsapp_account_id.in_(account_ids), Message.status.in_([MessageStatus.PENDING, MessageStatus.SENDING]),
        or_(Message.next_attempt_at.is_(None), Message.next_attempt_at <= db_now())).order_by(Message.id).limit(100))


def _list_messages_equivalent(session, *, account_id: int, limit: int = 50, before: int | None = None):
    from sqlalchemy import and_, or_, select

    from blazzctl.models import Message

    query = select(Message).where(Message.whatsapp_account_id == account_id)
    if before is not None:
        cursor = session.execute(select(Message.created_at, Message.id).where(Message.id == before)).one()
        query = query.where(or_(Message.created_at < cursor.created_at,
                                and_(Message.created_at == cursor.created_at, Message.id < cursor.id)))
    return list(session.scalars(query.order_by(Message.created_at.desc(), Message.id.desc()).limit(limit)))


def setup(server_url: str | None, tmp: Path):
    import pymysql
    from sqlalchemy.engine import make_url

    from blazzctl.db import Database
    from blazzctl.services import schema

    private = None
    if server_url is None:
        from tests.conftest import PrivateMariaDB

        private = PrivateMariaDB(tmp / "mariadb")
        private.root.mkdir()
        private.start()
        server_url = private.server_url
    parsed = make_url(server_url)

    def connect(database: str | None = "blazz_bench_queries"):
        return pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                               password=parsed.password or "", database=database, max_allowed_packet=64 << 20)
    conn = connect(None)
    cur = conn.cursor()
    if private is not None:  # room for the working set; the test server's 256 MB is small for 1M rows
        cur.execute("SET GLOBAL innodb_buffer_pool_size = 1073741824")
    cur.execute("DROP DATABASE IF EXISTS blazz_bench_queries")
    cur.execute("CREATE DATABASE blazz_bench_queries CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    cur.execute("SELECT VERSION()")
    version = cur.fetchone()[0]
    url = f"{server_url.rstrip('/')}/blazz_bench_queries"
    db = Database(url)
    schema.upgrade(db)
    conn.close()
    return db, connect, private, version


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-url")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--scale", type=float, default=1.0, help="Fraction of the data (quick trial runs).")
    args = parser.parse_args()
    global ACCOUNTS, WORKSPACES, CHATS, MESSAGES, HEAVY_CHATS, HEAVY_MESSAGES, FREE_ACCOUNTS, SYNC_RUNS
    if args.scale != 1.0:
        WORKSPACES, ACCOUNTS, CHATS, MESSAGES, HEAVY_CHATS, HEAVY_MESSAGES, FREE_ACCOUNTS, SYNC_RUNS = (
            max(1, int(v * args.scale)) for v in (WORKSPACES, ACCOUNTS, CHATS, MESSAGES, HEAVY_CHATS,
                                                   HEAVY_MESSAGES, FREE_ACCOUNTS, SYNC_RUNS))
    with tempfile.TemporaryDirectory() as tmp:
        db, connect, private, version = setup(args.server_url, Path(tmp))
        try:
            facts = seed(connect, datetime.now(timezone.utc).replace(microsecond=0))
            print(f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPUs, "
                  f"Python {platform.python_version()}, MariaDB {version}")
            print(f"seeded {WORKSPACES} workspaces, {ACCOUNTS} accounts, {CHATS:,} chats, {MESSAGES:,} messages, "
                  f"{SYNC_RUNS:,} sync runs in "
                  f"{facts['seed_s']:.0f} s (chats {facts['chats_s']:.0f} s, messages {facts['messages_s']:.0f} s)")
            return report(db, facts, args.runs)
        finally:
            db.dispose()
            if private is not None:
                private.stop()


def report(db, facts: dict, runs: int) -> int:
    captured = Captured()
    all_ok = True
    print(f"\n{'query':50} {'p50 ms':>8} {'p95 ms':>8}  EXPLAIN")
    for name, fn in scenarios(db, facts):
        own = name in OWN_SESSION
        timed(db, fn, 5, own)  # warm the pool and the statement cache
        captured.on, captured.seen = True, {}
        load = os.getloadavg()[0]
        times = timed(db, fn, runs, own)
        captured.on = False
        p50, p95 = statistics.median(times), statistics.quantiles(times, n=20)[18]
        plans = [verdict(explain(db, stmt, params)) for stmt, params in captured.seen.items()
                 if "information_schema" not in stmt]
        ok = p95 <= 30 and all(p[0] for p in plans)
        if "not a target" not in name:
            all_ok &= ok
        print(f"{name:50} {p50:8.2f} {p95:8.2f}  {'ok' if ok else 'NOT OK'}  (load average {load:.1f})")
        for good, text in plans:
            print(f"{'':70}{'' if good else '!! '}{text}")
    print(f"\ntarget every p95 <= 30 ms with index use: {'met' if all_ok else 'NOT met'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
