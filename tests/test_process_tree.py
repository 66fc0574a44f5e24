"""The heartbeat's memory figures: PSS of the process tree (what `daemon list` shows), and RSS."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import psutil

from daemons.session import heartbeat
from tests.daemon_helpers import migrate, wait_for

# A parent that fills 64 MiB and forks three children sharing those pages (copy-on-write):
# summed RSS counts them four times, PSS once.
SHARING = textwrap.dedent("""
    import os, sys, time
    block = bytearray(64 * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    for _ in range(3):
        if os.fork() == 0:
            time.sleep(120)
            os._exit(0)
    print("ready", flush=True)
    time.sleep(120)
""")


def test_pss_counts_pages_the_tree_shares_once():
    proc = subprocess.Popen([sys.executable, "-c", SHARING], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        wait_for(lambda: len(psutil.Process(proc.pid).children()) == 3, timeout=30)
        stats = heartbeat.ProcessTree(proc.pid).stats()
        assert stats.process_count == 4
        assert stats.rss_bytes > 4 * 64 * 1024 * 1024  # each process maps the 64 MiB
        assert 64 * 1024 * 1024 < stats.pss_bytes < 0.5 * stats.rss_bytes
    finally:
        for child in psutil.Process(proc.pid).children():
            child.kill()
        proc.kill()
        proc.wait()


def test_pss_is_measured_at_most_every_interval():
    tree = heartbeat.ProcessTree(pss_interval=3600)
    first = tree.stats().pss_bytes
    block = bytearray(32 * 1024 * 1024)  # grows this process by 32 MiB
    for i in range(0, len(block), 4096):
        block[i] = 1
    assert tree.stats().pss_bytes == first  # the figure of the last measurement
    assert heartbeat.ProcessTree(pss_interval=0).stats().pss_bytes > first + 16 * 1024 * 1024


def test_daemon_list_shows_the_pss_the_heartbeat_stored(cli, sqlite_url):
    from blazzctl.db import Database

    migrate(sqlite_url)
    db = Database(sqlite_url)
    try:
        heartbeat.register_birth(db, name="h:1", host="h", instance=1, version="t", capacity=5)
        heartbeat.heartbeat(db, name="h:1", status="running", status_text="ok", owned=0,
                            tree=heartbeat.TreeStats(rss_bytes=900 * 1048576, pss_bytes=300 * 1048576,
                                                     process_count=10, cpu_percent=1.0))
    finally:
        db.dispose()
    (row,) = cli("daemon", "list", "--json", db=sqlite_url).json()
    assert (row["pss_bytes"], row["rss_bytes"]) == (300 * 1048576, 900 * 1048576)
    table = cli("daemon", "list", db=sqlite_url).stdout
    assert "PSS" in table and "300 MB" in table and "900 MB" not in table
