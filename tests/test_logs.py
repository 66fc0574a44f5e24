"""Daemon logs: one line per lifecycle event with structured fields, as text or JSON.

The JSON tests run real daemon processes (fake provider, SQLite) through a whole life, birth to
drain, and parse every line they write; the formatter tests pin the text format with and
without systemd's journal (which adds its own timestamps).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys

import pytest
import yaml

from daemons.session import logs
from tests.daemon_helpers import REPO, migrate, seed_accounts, wait_for, write_config

LIFECYCLE = ["registered", "claimed", "session started", "account connected", "ready", "stop requested: draining",
             "session released", "stopped"]


def _run_daemon(tmp_path, url: str, *, config_format: str, flag: str | None) -> tuple[int, list[str]]:
    """Start a daemon on two accounts, wait until both are connected, SIGTERM it; (exit code, stderr lines)."""
    config = write_config(tmp_path / "blazz.yaml", url=url, journal=tmp_path / "journal.jsonl",
                          state_dir=tmp_path / "state")
    doc = yaml.safe_load(config.read_text())
    doc["logging"]["format"] = config_format
    config.write_text(yaml.safe_dump(doc))
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLAZZ_") and k not in ("NOTIFY_SOCKET",
                                                                                            "JOURNAL_STREAM")}
    env["PYTHONPATH"] = str(REPO)
    log = tmp_path / "daemon.log"
    args = [sys.executable, "-m", "daemons.session", "--instance", "1", "--config", str(config)]
    if flag:
        args += ["--log-format", flag]
    with open(log, "wb") as err:
        proc = subprocess.Popen(args, cwd=str(REPO), env=env, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for(lambda: log.read_text().count("account connected") >= 2, 30, message=lambda: log.read_text())
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return code, log.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def two_accounts(sqlite_url):
    from blazzctl.db import Database

    migrate(sqlite_url)
    db = Database(sqlite_url)
    seed_accounts(db, 2)
    db.dispose()
    return sqlite_url


@pytest.mark.parametrize("config_format, flag", [("json", None), ("text", "json")],
                         ids=["logging.format-json", "--log-format-json"])
def test_json_logs_are_one_object_per_line_with_fields(tmp_path, two_accounts, config_format, flag):
    code, lines = _run_daemon(tmp_path, two_accounts, config_format=config_format, flag=flag)
    assert code == 0
    docs = [json.loads(line) for line in lines]  # every line, not just some: nothing else is written
    assert docs, "no log lines"
    for doc in docs:
        assert {"ts", "level", "daemon", "logger", "event"} <= set(doc), doc
        assert doc["daemon"] == "host-a:1" and doc["level"] in ("debug", "info", "warning", "error")
    events = [d["event"] for d in docs]
    for event in LIFECYCLE:
        assert event in events, (event, events)
    first = {e: next(d for d in docs if d["event"] == e) for e in LIFECYCLE}
    assert first["registered"]["version"] and "released_stale_leases" in first["registered"]
    assert isinstance(first["claimed"]["account_id"], int) and first["claimed"]["epoch"] >= 1
    assert first["ready"]["pid"] > 0 and "accounts" in first["ready"]
    assert first["stop requested: draining"]["signal"] == "SIGTERM"
    assert first["session released"]["reason"] == "daemon stopping"
    assert first["stopped"]["released"] == 2
    order = [events.index(e) for e in ("registered", "ready", "stop requested: draining", "stopped")]
    assert order == sorted(order)


def test_text_logs_are_key_value_lines(tmp_path, two_accounts):
    code, lines = _run_daemon(tmp_path, two_accounts, config_format="text", flag=None)
    assert code == 0
    claimed = [line for line in lines if " claimed " in line]
    assert len(claimed) == 2
    # 2026-11-26T16:00:00Z info host-a:1 claimed account_id=1 epoch=1
    stamp, level, daemon, *rest = claimed[0].split(" ")
    assert stamp.endswith("Z") and "T" in stamp and (level, daemon) == ("info", "host-a:1")
    assert rest[0] == "claimed" and rest[1].startswith("account_id=") and rest[2].startswith("epoch=")


def _record(msg: str, **fields) -> logging.LogRecord:
    record = logging.LogRecord("blazz.test", logging.INFO, __file__, 1, msg, (), None)
    record.__dict__.update(fields)
    return record


def test_text_under_systemd_has_no_timestamp_and_quotes_values():
    journal = logs.TextFormatter(timestamps=False, daemon="h:1")
    line = journal.format(_record("lease lost", account_id=7, reason='has "quotes" and spaces', empty=""))
    assert line == 'info h:1 lease lost account_id=7 reason="has \\"quotes\\" and spaces" empty=""'
    terminal = logs.TextFormatter(timestamps=True, daemon="h:1").format(_record("ready"))
    assert terminal.endswith("Z info h:1 ready") and terminal[:4].isdigit()


def test_setup_picks_the_journal_format_from_the_environment(monkeypatch):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
        logs.setup(level="info", fmt="text", daemon="h:1")
        assert root.handlers[0].formatter.timestamps is False
        monkeypatch.delenv("JOURNAL_STREAM")
        logs.setup(level="warning", fmt="json", daemon="h:1")
        assert isinstance(root.handlers[0].formatter, logs.JsonFormatter) and root.level == logging.WARNING
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])


def test_json_keeps_a_traceback_on_its_one_line():
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        record = logging.LogRecord("blazz.test", logging.ERROR, __file__, 1, "session start failed", (),
                                   sys.exc_info())
    record.account_id = 3
    line = logs.JsonFormatter(daemon="h:1").format(record)
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["event"] == "session start failed" and doc["account_id"] == 3
    assert "RuntimeError: boom" in doc["exception"]
