"""Webhook delivery benchmark: 2 dispatcher processes -> 1 local receiver, on MariaDB.

    python3 bench/webhooks.py [--server-url mysql+pymysql://root@127.0.0.1:3306] [--events 10000]
                              [--rate 100] [--seconds 30] [--write]

1. Throughput: ``--events`` events are queued, then two dispatcher processes (the daemon's
   ``run_dispatcher``, default settings) deliver them: deliveries per second.
2. Latency: with both dispatchers running, events are committed at ``--rate`` per second for
   ``--seconds``; the receiver stamps each arrival: p50/p99 from commit to receipt.

Without ``--server-url`` a private mariadbd is started in a temp dir (as the tests do).
Targets (issue 6): >= 500 deliveries/s; p99 <= 2 s. ``--write`` puts the figures into
docs/benchmarks.md (its own section, between bench:webhooks markers).
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
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchdoc import write_section  # noqa: E402  (bench/ is the script's own directory)
DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:webhooks -->", "<!-- /bench:webhooks -->"



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
    from tests.conftest import bench_database

    url, _version, private = bench_database(server_url, tmp, "blazz_bench_webhooks")
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


def produce(db, ws: int, acc: int, rate: float, seconds: float, producers: int = 4) -> tuple[dict[str, float], float]:
    """Commit events at ``rate``/s from a few threads; returns commit times and the rate achieved."""
    import threading

    from blazzctl.services import events

    committed: dict[str, float] = {}
    total = int(rate * seconds)
    begin = time.monotonic() + 0.1

    def producer(k: int) -> None:
        for i in range(k, total, producers):
            time.sleep(max(0.0, begin + i / rate - time.monotonic()))
            with db.session() as session:
                event_id = events.record(session, type="message.received", workspace_id=ws, account_id=acc,
                                         data={"n": i})
            committed[event_id] = time.time()

    threads = [threading.Thread(target=producer, args=(k,)) for k in range(producers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return committed, total / (time.monotonic() - begin)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    import psutil

    return sum(sum(psutil.Process(pid).cpu_times()[:2]) for pid in pids)


def run(args, where: str) -> dict:
    import yaml

    tmp = Path(tempfile.mkdtemp(prefix="blazz-bench-webhooks-"))
    ctx = mp.get_context("spawn")
    control, their_end = ctx.Pipe()
    port, ready = ctx.Value("i", 0), ctx.Event()
    receiver = ctx.Process(target=receiver_main, args=(port, their_end, ready), daemon=True)
    receiver.start()
    ready.wait(10)
    from tests.webhook_support import CHILD

    db, url, private = setup_database(args.server_url, tmp)
    procs: list[subprocess.Popen] = []
    out: dict = {"where": where, "database": "private mariadbd (as the tests start it)" if private else "given server"}
    try:
        ws, acc = seed(db, f"http://127.0.0.1:{port.value}/hook")
        config = tmp / "blazz.yaml"
        config.write_text(yaml.safe_dump({"database": {"url": url}}))
        env = {**os.environ, "BLAZZ_CONFIG": str(config)}

        # 1. Throughput: the dispatchers are up and idle; a backlog appears in one commit.
        procs = [subprocess.Popen([sys.executable, "-c", CHILD, f"bench:{n}"], cwd=REPO, env=env) for n in (1, 2)]
        time.sleep(5)  # imports and first polls out of the way
        others = [receiver.pid] + ([private.proc.pid] if private else [])
        ids = queue(db, ws, acc, args.events, per_tx=args.events)
        committed_at = time.time()
        cpu_before, other_before = cpu_seconds([p.pid for p in procs]), cpu_seconds(others)
        received = wait_arrivals(control, len(ids), timeout=600)
        last = max(received.values())
        cpu = cpu_seconds([p.pid for p in procs]) - cpu_before
        other = cpu_seconds(others) - other_before
        out.update(events=len(ids), delivered=len(received), steady=len(received) / (last - committed_at),
                   drain=last - committed_at, cpu_ms=1000 * cpu / len(received),
                   other_ms=1000 * other / len(received) if private else None)

        # 2. Latency at a steady rate, both dispatchers idle-polling.
        committed, achieved = produce(db, ws, acc, args.rate, args.seconds)
        latency = wait_arrivals(control, len(ids) + len(committed), timeout=60)
        lags = sorted(latency[e] - committed[e] for e in committed if e in latency)
        out.update(rate=achieved, seconds=args.seconds, sent=len(committed), got=len(lags),
                   p50=statistics.median(lags), p99=lags[min(len(lags) - 1, int(len(lags) * 0.99))], max=lags[-1],
                   load_end=" ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            proc.wait(30)
        receiver.terminate()
        db.dispose()
        if private:
            private.stop()
    return out


def render(r: dict) -> str:
    ok_rate = "meets" if r["steady"] >= 500 else "misses"
    ok_p99 = "meets" if r["p99"] <= 2 else "misses"
    return "\n".join([
        BEGIN, "## Webhook delivery (`bench/webhooks.py`)", "",
        f"Measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC on {r['where']}; at the end {r['load_end']}.",
        f"Two dispatcher processes (the daemon's `run_dispatcher`, default `webhooks` settings) deliver to one "
        f"local keep-alive HTTP receiver; {r['database']}. Regenerate with `python bench/webhooks.py --write`.", "",
        "| figure | value |", "|---|---:|",
        f"| backlog of {r['events']} events committed at once: deliveries/s until the last receipt | {r['steady']:.0f} |",
        f"| time from that commit to the last receipt | {r['drain']:.1f} s |",
        f"| dispatcher CPU per delivery (both processes, user+system) | {r['cpu_ms']:.2f} ms |",
        *([f"| receiver + mariadbd CPU per delivery | {r['other_ms']:.2f} ms |",
           f"| CPU-bound ceiling on {os.cpu_count()} idle cores: cores / total CPU per delivery | "
           f"{os.cpu_count() * 1000 / (r['cpu_ms'] + r['other_ms']):.0f}/s |"] if r.get("other_ms") else []),
        f"| steady load: events committed per second (for {r['seconds']:.0f} s) | {r['rate']:.0f} |",
        f"| commit -> receipt p50 | {r['p50'] * 1000:.0f} ms |",
        f"| commit -> receipt p99 | {r['p99'] * 1000:.0f} ms |",
        f"| commit -> receipt max | {r['max'] * 1000:.0f} ms |",
        f"| received / committed | {r['got']} / {r['sent']} |", "",
        f"Targets (issue 6): >= 500 deliveries/s: this run **{ok_rate}** it; p99 <= 2 s: this run **{ok_p99}** it.",
        "The machine is shared with the other engineers' test runs (see the load average): the dispatcher "
        "CPU per delivery is the figure that depends least on that load. Most of it is httpx (0.7-1 ms "
        "a request here, with one single-connection client per in-flight slot; one shared pool cost "
        "about twice that at 16 in flight); claims and outcome writes are batched (a few statements per batch, "
        "`CASE id` for per-row values).", "", END]) + "\n"


def machine() -> str:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{platform.node() or 'host'}: {os.cpu_count()} cores, Linux {platform.release()}, "
            f"Python {platform.python_version()}; load average at the start {load}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server-url", help="MariaDB/MySQL server URL without a database name")
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md (its own section)")
    args = parser.parse_args()
    section = render(run(args, machine()))
    print(section)
    if args.write:
        write_section(section, BEGIN, END, DOC)
        print(f"wrote {DOC.relative_to(REPO)}")


if __name__ == "__main__":
    main()
