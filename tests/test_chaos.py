"""The chaos benchmark, short: two minutes of random faults on real daemons (private MariaDB).

``bench/chaos.py`` injects SIGSTOP past the TTL, SIGKILL, a SIGTERM drain with slow-closing
browsers, MariaDB restarts and a TCP partition, while messages are sent and received, then checks
the fake browser's journal, the fake WhatsApp's outbox and inbox, and the database. The counts
must be 0; times are the benchmark's business (docs/benchmarks.md), not asserted here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.mariadb, pytest.mark.slow]


def test_two_minutes_of_faults_break_no_guarantee(tmp_path):
    keep = tmp_path / "chaos"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("BLAZZ_CONFIG", None)
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "chaos.py"), "--minutes", "2", "--daemons", "3",
                           "--accounts", "12", "--json", "--keep", str(keep)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=REPO)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    logs = "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:])
                     for p in sorted((keep / "fleet").glob("*.log")))
    assert result["faults"] >= 5, result
    assert set(result["fault_kinds"]) == {"sigstop", "sigkill", "sigterm", "db_restart", "partition"}, result
    counts = {k: result[k] for k in ("double_drive_overlaps", "duplicate_sends", "lost_sends", "lost_inbound",
                                     "unowned_at_end", "journal_violations")}
    assert counts == dict.fromkeys(counts, 0), f"{result}\n{logs}"
    assert result["sent"] > 0 and result["received"] > 0, result  # the run did move messages
    assert result["exit_codes"] == [0, 0, 0], f"{result}\n{logs}"
