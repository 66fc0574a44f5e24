"""`--json` on every command, and errors under `--json` as one JSON document on stdout:
``{"error": {"code": ..., "message": ...}}``, with the exit code the error has without it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import run_blazzctl


def leaf_commands():
    """Every command of the real click tree (built the way `--help` builds it), as paths."""
    import typer.main

    from blazzctl.cli.main import app

    try:
        from typer import _click as click
    except ImportError:  # pragma: no cover - older Typer
        import click

    def walk(command, path, ctx):
        if not hasattr(command, "list_commands"):
            yield path, command
            return
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            yield from walk(sub, [*path, name], click.Context(sub, parent=ctx, info_name=name))

    root = typer.main.get_command(app)
    return list(walk(root, [], click.Context(root, info_name="blazzctl")))


def test_every_command_has_json():
    leaves = leaf_commands()
    assert len(leaves) > 50 and ["account", "list"] in [path for path, _ in leaves]
    lacking = [" ".join(path) for path, command in leaves
               if not any("--json" in param.opts for param in command.params)]
    assert lacking == []


def error_of(result, code: int) -> dict:
    assert result.code == code, result
    assert result.stderr == "", result  # the error is in the JSON, once
    body = json.loads(result.stdout)
    assert list(body) == ["error"] and isinstance(body["error"]["message"], str), body
    return body["error"]


def test_service_errors_under_json(cli, migrated_url):
    def bz(*args):
        return cli(*args, db=migrated_url)

    error = error_of(bz("account", "show", "nobody", "--json"), 3)
    assert error["code"] == "not-found" and "nobody" in error["message"] and "account list" in error["hint"]
    assert bz("workspace", "create", "acme").code == 0
    assert error_of(bz("workspace", "create", "acme", "--json"), 4)["code"] == "conflict"
    assert error_of(bz("workspace", "create", "  ", "--json"), 2)["code"] == "invalid-input"
    # The same errors without --json: text on stderr, nothing on stdout.
    plain = bz("account", "show", "nobody")
    assert (plain.code, plain.stdout) == (3, "") and plain.stderr.startswith("error: account 'nobody'")


def test_usage_errors_under_json_keep_their_exit_code(cli, sqlite_url):
    for args, code, needle in [
        (["account", "list", "--limit", "x", "--json"], 2, "--limit"),
        (["account", "list", "--bogus", "--json"], 2, "No such option: --bogus"),
        (["account", "show", "--json"], 2, "Missing argument 'REF'"),
        (["acount", "list", "--json"], 2, "Did you mean 'account'"),
        (["--bogus", "--json"], 2, "--bogus"),
        (["health", "--wait", "soon", "--json"], 3, "--wait"),  # health: usage errors are UNKNOWN
    ]:
        error = error_of(cli(*args, db=sqlite_url), code)
        assert error["code"] == "usage" and needle in error["message"], (args, error)
    plain = cli("account", "list", "--bogus", db=sqlite_url)
    assert plain.code == 2 and plain.stdout == "" and "No such option" in plain.stderr
    # After `--`, "--json" is an argument, not the option.
    assert "error" not in cli("account", "show", "--", "--json", db=sqlite_url).stdout


def test_config_and_database_errors_under_json(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("daemon:\n  lease_ttl: soon\n")
    result = run_blazzctl("account", "list", "--json", "--config", str(bad))
    error = error_of(result, 78)
    assert error["code"] == "configuration" and "daemon.lease_ttl" in error["message"]
    result = run_blazzctl("account", "list", "--json",
                          env={"BLAZZ_DATABASE_URL": "mysql+pymysql://root@127.0.0.1:1/nothing",
                               "BLAZZ_DATABASE_CONNECT_TIMEOUT": "1"})
    assert error_of(result, 69)["code"] == "database-unavailable"


def test_commands_that_gained_json_print_json(cli, sqlite_url, tmp_path):
    def js(*args, code=0):
        result = cli(*args, db=sqlite_url)
        assert result.code == code, result
        return json.loads(result.stdout)

    config = tmp_path / "config" / "blazz" / "blazz.yaml"
    created = js("init", "--write-config", str(config), "--json")
    assert created["schema"] and created["database"].endswith("blazz.db") and created["config_written"] == str(config)
    assert js("db", "upgrade", "--json")["changed"] is False
    assert js("db", "check", "--json")["at_head"] is True
    assert js("config", "check", "--config", str(config), "--json") == {
        "valid": True, "source": str(config), "warnings": []}
    key = js("key", "generate", "--file", str(tmp_path / "session.key"), "--json")
    assert key["path"] == str(tmp_path / "session.key") and len(key["key_id"]) == 16
    assert "paths" in js("api", "openapi", "--json")
    refused = js("api", "run", "--host", "0.0.0.0", "--json", code=78)  # refused before serving
    assert refused["error"]["code"] == "configuration" and "api.allow_remote" in refused["error"]["message"]


def test_db_upgrade_json_says_what_changed(cli, sqlite_url):
    fresh = cli("db", "upgrade", "--json", db=sqlite_url)
    assert fresh.code == 0, fresh
    body = fresh.json()
    assert body["before"] is None and body["after"] and body["changed"] is True


def test_daemon_run_json_logs_json_lines(tmp_path, sqlite_url):
    from tests.daemon_helpers import REPO, migrate, write_config

    migrate(sqlite_url)
    config = write_config(tmp_path / "blazz.yaml", url=sqlite_url, journal=tmp_path / "journal.jsonl",
                          state_dir=tmp_path / "state", host="dev")  # logging.format text in the file
    proc = subprocess.Popen([sys.executable, "-m", "blazzctl", "daemon", "run", "--instances", "1", "--json",
                             "--config", str(config)], env={**os.environ, "PYTHONPATH": str(REPO)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        logged = []  # the daemon's lines; the supervisor's own start with "daemon run:"
        while not any("ready" in entry.values() for entry in logged):
            line = proc.stderr.readline()
            assert line, (logged, proc.poll())
            if not line.startswith("daemon run:"):
                logged.append(json.loads(line))
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == ""


def test_quickstart_json_prints_the_outcome_and_progress_on_stderr(tmp_path, sqlite_url):
    """With a daemon of the fake provider (the phone links at once): the account connect JSON on
    stdout as soon as it has linked, while the daemon keeps running."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    from tests.daemon_helpers import REPO, write_config

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    config = write_config(tmp_path / "blazz.yaml", url=sqlite_url, journal=tmp_path / "journal.jsonl",
                          state_dir=tmp_path / "state", host="dev")
    with HTTPServer(("127.0.0.1", 0), Answer) as web:  # stands in for WhatsApp Web's reachability
        Thread(target=web.serve_forever, daemon=True).start()
        env = {**os.environ, "PYTHONPATH": str(REPO), "BLAZZ_WEBJS_URL": f"http://127.0.0.1:{web.server_port}/"}
        proc = subprocess.Popen([sys.executable, "-m", "blazzctl", "quickstart", "--json", "--timeout", "60",
                                 "--config", str(config)], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            document, line = "", ""
            while line != "}\n":  # the document's last line (indented JSON)
                line = proc.stdout.readline()
                assert line, (document, proc.poll())
                document += line
            outcome = json.loads(document)
            assert outcome["status"] == "connected" and outcome["command"]["status"] == "succeeded"
            assert proc.poll() is None  # the daemon keeps the account online
        finally:
            proc.send_signal(signal.SIGINT)
            rest, err = proc.communicate(timeout=60)
            web.shutdown()
    assert rest == "" and "database:" in err and "daemon log:" in err, (rest, err)


def test_an_error_after_the_command_printed_its_document_goes_to_stderr(cli, sqlite_url):
    """`api health --json` prints the API's answer, then fails on a 503: stdout stays one document."""
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from threading import Thread

    class Unhealthy(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b'{"status": "unavailable"}')

        def log_message(self, *args):
            pass

    with HTTPServer(("127.0.0.1", 0), Unhealthy) as api:
        Thread(target=api.serve_forever, daemon=True).start()
        result = cli("api", "health", "--url", f"http://127.0.0.1:{api.server_port}", "--json", db=sqlite_url)
        api.shutdown()
    assert result.code == 1, result
    assert result.json() == {"status": "unavailable"}
    assert result.stderr.startswith("error: the API at") and "answered 503" in result.stderr


@pytest.mark.parametrize("value", ["2026-12-04T10:00:59.999999+00:00", "0999-01-02T03:04:05+00:00",
                                   "2026-02-28T23:59:59+00:00", "2026-12-04T10:00:00+02:00", "2026-12-04T10:00:00"])
def test_times_are_iso_8601_to_the_second_in_utc_with_a_z(value):
    """The fast path of views.iso (database times, UTC) writes what isoformat writes; other
    offsets and naive times keep isoformat's form."""
    from datetime import datetime, timezone

    from blazzctl import views

    parsed = datetime.fromisoformat(value)
    expected = parsed.isoformat(timespec="seconds").replace("+00:00", "Z")
    assert views.iso(parsed) == expected
    if parsed.tzinfo is not None and parsed.utcoffset().total_seconds() == 0:
        assert views.iso(parsed.replace(tzinfo=timezone.utc)).endswith("Z")
    assert views.iso(None) is None
