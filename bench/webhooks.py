"""Webhook delivery benchmark: 2 dispatcher processes -> 1 local receiver, on MariaDB.

    python3 bench/webhooks.py [--server-url mysql+pymysql://root@127.0.0.1:3306] [--events 10000]
                              [--rate 100] [--seconds 30]

1. Throughput: ``--events`` events are queued, then two dispatcher processes (the daemon's
   ``run_dispatcher``, default settings) deliver them: deliveries per second.
2. Latency: with both dispatchers running, events are committed at ``--rate`` per second for
   ``--seconds``; the receiver stamps each arrival: p50/p99 from commit to receipt.

Without ``--server-url`` a private mariadbd is started in a temp dir (as the tests do).
Targets (issue 6): >= 500 deliveries/s; p99 <= 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = """
import asyncio, signal, sys
from blazzctl.db import Database
from blazzctl.settings import load_settings
from daemons.session.webhooks import run_dispatcher

async def main():
    settings = load_settings()
    db = Database.from_settings(settings)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await run_dispatcher(db, settings, sys.argv[1], stopping)

asyncio.run(main())
"""


def receiver_main(port_out, control, ready) -> None:
    """A minimal keep-alive HTTP/1.1 server: answers 200 and stamps each (webhook-id, arrival time).

    The stamps stay in this process; the parent asks for their count or for all of them
    over ``control`` (a Pipe), so measuring costs the receiver almost nothing per request.
    """
    import threading

    stamps: list[tuple[str, float]] = []

    def serve_control() -> None:
        while True:
            ask = control.recv()
            control.send(len(stamps) if ask == "count" else list(stamps))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length, event_id = 0, None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b": ")
                    name = name.lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        event_id = value.decode()
                await reader.readexactly(length)
                stamps.append((event_id, time.time()))
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        port_out.value = server.sockets[0].getsockname()[1]
        threading.Thread(target=serve_control, daemon=True).start()
        ready.set()
        await server.serve_forever()

    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    asyncio.run(main())


def setup_database(server_url: str | None, tmp: Path):
    from blazzctl.db import Database
    from blazzctl.services import schema

    private = None
    if server_url is None:
        from tests.conftest import PrivateMariaDB

        private = PrivateMariaDB(tmp / "mariadb")
        private.root.mkdir()
        private.start()
        server_url = private.server_url
    import pymysql
    from sqlalchemy.engine import make_url

    parsed = make_url(server_url)
    conn = pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                           password=parsed.password or "")
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS blazz_bench_webhooks")
        cur.execute("CREATE DATABASE blazz_bench_webhooks CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    conn.close()
    url = f"{server_url.rstrip('/')}/blazz_bench_webhooks"
    db = Database(url)
    schema.upgrade(db)
    return db, url, private


def seed(db, receiver_url: str) -> tuple[int, int]:
    from blazzctl.services import accounts, webhooks, workspaces

    with db.session() as session:
        ws = workspaces.create(session, name="bench")
        acc = accounts.add(session, workspace=ws, name="bench-account")
        webhooks.add(session, workspace=ws, url=receiver_url)
        return ws.id, acc.id


def queue(db, ws: int, acc: int, n: int, per_tx: int = 500) -> list[str]:
    from blazzctl.services import events

    ids = []
    for start in range(0, n, per_tx):
        with db.session() as session:
            ids += [events.record(session, type="message.received", workspace_id=ws, account_id=acc,
                                  data={"n": i, "body": "benchmark message"}) for i in range(start, min(n, start + per_tx))]
    return ids


def wait_arrivals(control, total: int, timeout: float) -> dict[str, float]:
    """Wait until the receiver has ``total`` stamps (or the timeout); first arrival per event id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        control.send("count")
        if control.recv() >= total:
            break
        time.sleep(0.2)
    control.send("dump")
    first: dict[str, float] = {}
    for event_id, at in control.recv():
        first.setdefault(event_id, at)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-url", help="MariaDB/MySQL server URL without a database name")
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()

    import yaml

    load_at_start = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="blazz-bench-webhooks-"))
    ctx = mp.get_context("spawn")
    control, their_end = ctx.Pipe()
    port, ready = ctx.Value("i", 0), ctx.Event()
    receiver = ctx.Process(target=receiver_main, args=(port, their_end, ready), daemon=True)
    receiver.start()
    ready.wait(10)
    db, url, private = setup_database(args.server_url, tmp)
    procs = []
    try:
        ws, acc = seed(db, f"http://127.0.0.1:{port.value}/hook")
        config = tmp / "blazz.yaml"
        config.write_text(yaml.safe_dump({"database": {"url": url}}))
        env = {**os.environ, "BLAZZ_CONFIG": str(config)}

        # 1. Throughput over a backlog.
        ids = queue(db, ws, acc, args.events)
        started = time.time()
        procs = [subprocess.Popen([sys.executable, "-c", CHILD, f"bench:{n}"], cwd=REPO, env=env) for n in (1, 2)]
        received = wait_arrivals(control, len(ids), timeout=600)
        finished = max(received.values())
        first = min(received.values())
        print(f"throughput: {len(received)}/{len(ids)} delivered; "
              f"{len(received) / (finished - started):.0f}/s from dispatcher start "
              f"({len(received) / (finished - first):.0f}/s first to last receipt)")

        # 2. Latency at a steady rate.
        from blazzctl.services import events

        committed: dict[str, float] = {}
        interval, total = 1.0 / args.rate, int(args.rate * args.seconds)
        next_at = time.monotonic()
        for i in range(total):
            with db.session() as session:
                event_id = events.record(session, type="message.received", workspace_id=ws, account_id=acc,
                                         data={"n": i})
            committed[event_id] = time.time()
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
        achieved = total / (time.monotonic() - (next_at - total * interval))
        latency = wait_arrivals(control, len(ids) + total, timeout=60)
        lags = sorted(latency[e] - committed[e] for e in committed if e in latency)
        p50 = statistics.median(lags)
        p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))]
        print(f"latency at {achieved:.0f} events/s for {args.seconds:.0f} s: {len(lags)}/{total} received; "
              f"commit->receipt p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {lags[-1] * 1000:.0f} ms")
        print(f"machine: {platform.node()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
              f"{'private mariadbd' if private else 'given server'}; load average at start {load_at_start:.1f}, "
              f"at end {os.getloadavg()[0]:.1f}")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        receiver.terminate()
        db.dispose()
        if private:
            private.stop()


if __name__ == "__main__":
    main()
