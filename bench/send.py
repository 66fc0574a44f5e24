"""Outbound throughput and latency: messages queued through the CLI's service function, sent by D daemons.

    python3 bench/send.py [--messages 3000] [--accounts 40] [--daemons 4] [--rate 100] [--json]

Real daemon processes with the fake provider (its "WhatsApp" is a file: one line per
message that reached it), rate limits off, on MariaDB (``BLAZZ_BENCH_DATABASE_URL`` or a
private mariadbd). Messages are queued by worker processes through
``blazzctl.services.messages.send`` (what `blazzctl message send` calls).

1. throughput: ``--messages`` are queued before the daemons start; once the accounts
   connect the daemons send the backlog: messages / (last ``sent_at`` - first ``sent_at``).
2. latency: messages queued at a steady ``--rate`` per second for 10 s; insert
   (``created_at``) to ``sent_at``, both on the database clock.
Targets (issue 5): >= 200 messages/s, p50 <= 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--accounts", type=int, default=40)
    ap.add_argument("--daemons", type=int, default=4)
    ap.add_argument("--writers", type=int, default=4, help="processes queueing messages")
    ap.add_argument("--rate", type=float, default=100.0, help="messages per second in the latency phase")
    ap.add_argument("--server-url", default=os.environ.get("BLAZZ_BENCH_DATABASE_URL"))
    ap.add_argument("--json", action="store_true")
    return ap.parse_args(argv)


def say(args, text):
    if not args.json:
        print(text, file=sys.stderr, flush=True)


def queue(url: str, account_ids: list[int], count: int, offset: int, rate: float = 0.0) -> None:
    """Queue ``count`` messages (at ``rate`` per second when given) in this worker process."""
    from blazzctl.db import Database
    from blazzctl.models import WhatsAppAccount
    from blazzctl.services import messages

    db = Database(url, pool_size=2)
    start = time.monotonic()
    try:
        for i in range(count):
            if rate:
                time.sleep(max(0.0, start + i / rate - time.monotonic()))
            with db.session() as s:
                account = s.get(WhatsAppAccount, account_ids[(offset + i) % len(account_ids)])
                messages.send(s, account=account, to=f"+6281234{(offset + i) % 100000:05d}", text=f"bench {offset + i}")
    finally:
        db.dispose()


def queue_in_processes(url: str, account_ids: list[int], total: int, workers: int, rate: float = 0.0) -> None:
    import multiprocessing

    per = total // workers
    procs = [multiprocessing.Process(target=queue, args=(url, account_ids, per, w * per, rate / workers))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()


def run(args) -> dict:
    from sqlalchemy import func, select, text

    from blazzctl.db import Database
    from blazzctl.models import Message
    from tests.conftest import bench_database
    from tests.daemon_helpers import Fleet, migrate, seed_accounts, wait_for

    work = Path(tempfile.mkdtemp(prefix="blazz-bench-send-"))
    url, _version, private = bench_database(args.server_url, work, f"blazz_bench_{uuid.uuid4().hex[:8]}")
    fleet = None
    try:
        migrate(url)
        db = Database(url)
        ids = seed_accounts(db, args.accounts)
        with db.session() as s:  # a backlog waits for accounts a phone linked once (never linked: refused)
            from sqlalchemy import update

            from blazzctl.models import WhatsAppAccount
            from blazzctl.models.base import utcnow

            s.execute(update(WhatsAppAccount).where(WhatsAppAccount.id.in_(ids)).values(connected_at=utcnow()))
        fleet = Fleet(work / "fleet", url, link_delay=0.05, level="warning",
                      daemon={"heartbeat_interval": 2, "claim_interval": 2, "lease_ttl": 20, "start_stagger": 0,
                              "capacity": args.accounts})
        import yaml

        for host in ("bench",):
            config = fleet.config_for(host)
            doc = yaml.safe_load(config.read_text())
            doc["providers"]["webjs"]["options"]["outbox"] = str(work / "outbox.jsonl")
            doc["messages"] = {"rate_per_minute": 0, "jitter": 0, "poll_interval": 0.1}
            config.write_text(yaml.safe_dump(doc))
        total = args.messages - args.messages % args.writers
        t0 = time.monotonic()
        queue_in_processes(url, ids, total, args.writers)
        queued_s = time.monotonic() - t0
        say(args, f"queued {total} in {queued_s:.1f} s; starting {args.daemons} daemons")
        for i in range(args.daemons):
            fleet.start(i + 1, host="bench")

        def sent():
            with db.session() as s:
                return s.scalar(select(func.count()).select_from(Message).where(Message.status == "sent"))
        wait_for(lambda: sent() == total, timeout=900, interval=0.5)
        with db.session() as s:
            first, last = s.execute(select(func.min(Message.sent_at), func.max(Message.sent_at))).one()
        span = (last - first).total_seconds()
        say(args, f"backlog sent at {total / span:.0f}/s; latency phase at {args.rate:g}/s")

        latency_total = int(args.rate * 10) - int(args.rate * 10) % args.writers
        with db.session() as s:
            boundary = s.scalar(select(func.max(Message.id)))
        queue_in_processes(url, ids, latency_total, args.writers, rate=args.rate)
        wait_for(lambda: sent() == total + latency_total, timeout=300, interval=0.5)
        with db.session() as s:
            lat = [r[0] for r in s.execute(text(
                "SELECT TIMESTAMPDIFF(MICROSECOND, created_at, sent_at) / 1e6 FROM messages WHERE id > :b"),
                {"b": boundary})]
        lat = sorted(float(x) for x in lat)
        return {"messages": total, "accounts": args.accounts, "daemons": args.daemons,
                "queue_s": round(queued_s, 2), "queued_per_s": round(total / queued_s, 1),
                "span_s": round(span, 2), "sent_per_s": round(total / span, 1),
                "latency_phase": {"rate_per_s": args.rate, "messages": latency_total},
                "latency_p50_s": round(statistics.median(lat), 3),
                "latency_p95_s": round(lat[int(0.95 * (len(lat) - 1))], 3),
                "latency_max_s": round(lat[-1], 3),
                "targets_met": {"throughput>=200/s": total / span >= 200, "p50<=1.5s": statistics.median(lat) <= 1.5},
                "machine": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    finally:
        if fleet is not None:
            fleet.stop_all(60)
            fleet.close()
        if private is not None:
            private.stop()


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0 if all(result["targets_met"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
