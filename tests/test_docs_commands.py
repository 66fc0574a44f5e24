"""Every `blazzctl` command line shown in the docs runs, so the manual cannot rot.

From README.md and docs/*.md (not docs/cli.md: that is `--help`, checked by test_docs.py),
every line of a shell block (```sh, ```bash, ```console after "$ ", untagged ``` and
```crontab, whose command part is taken) that calls `blazzctl` is run, in order, file by
file, against a fresh MariaDB database with a session daemon (the fake provider: a phone that
links at once) and must exit 0. Absolute paths under /etc/blazz, /opt/blazz, /var/... and ~
are mapped into a temporary root, and `sudo` is dropped, so nothing outside the test's
directory is touched. A line that needs what a test cannot give (systemd, a phone, the
internet) ends with ``# not run by the docs test: <reason>``; that list stays short.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.daemon_helpers import FAST, REPO, Fleet, migrate, wait_for

pytestmark = pytest.mark.mariadb

DOCS = [REPO / "README.md", *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "cli.md")]
SHELL_FENCES = {"", "sh", "bash", "shell", "console", "crontab"}
SKIP_MARK = "# not run by the docs test:"
MAX_SKIPPED = 8
CRON_LINE = re.compile(r"^(@\w+|(\S+\s+){5})\s*\S+\s+(?P<command>.*)$")  # system crontab: time, user, command
MAPPED_ROOTS = ("/etc/blazz", "/opt/blazz", "/var/backups", "/var/lib/blazz", "/etc/cron.d")
CONTROL = {"&&", "||", ";", "|", ">", ">>", "<", "&", "$(", "`"}


@dataclass(frozen=True)
class DocLine:
    path: Path
    lineno: int
    text: str  # the command as written (crontab: its command part), without the skip comment
    skip: str | None  # the reason it is not run

    def __str__(self) -> str:
        where = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path
        return f"{where}:{self.lineno}: {self.text}"


def doc_lines(path: Path) -> list[DocLine]:
    """The lines of ``path``'s shell blocks that call blazzctl, in order."""
    out, fence = [], None
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("```"):
            fence = stripped[3:].strip().lower() if fence is None else None
            continue
        if fence not in SHELL_FENCES or not stripped or stripped.startswith("#"):
            continue
        text = stripped
        if fence == "console":
            if not text.startswith("$ "):
                continue  # output, not a command
            text = text[2:]
        cron = CRON_LINE.match(text) if fence in ("", "crontab") and re.match(r"^[\d*@]", text) else None
        if cron:
            text = cron["command"]
        skip = None
        if SKIP_MARK in text:
            text, skip = (part.strip() for part in text.split(SKIP_MARK, 1))
        if any(_is_blazzctl(_command(segment)) for segment in _segments(_words(text))):
            out.append(DocLine(path, lineno, text, skip))
    return out


def _words(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.commenters = "#"
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:  # an unbalanced quote: not something we run
        return text.split()


def _segments(words: list[str]) -> list[list[str]]:
    """Simple commands between the shell's control operators."""
    segments: list[list[str]] = [[]]
    for word in words:
        if word in CONTROL:
            segments.append([])
        else:
            segments[-1].append(word)
    return segments


def _command(words: list[str]) -> list[str]:
    """The command and its arguments, without leading VAR=value assignments and sudo (with options)."""
    words = list(words)
    while True:
        if words and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", words[0]):
            words.pop(0)
        elif words and words[0] == "sudo":
            words.pop(0)
            while words and words[0].startswith("-"):
                if words.pop(0) in ("-u", "-g"):
                    words.pop(0)
        else:
            return words


def _is_blazzctl(words: list[str]) -> bool:
    return bool(words) and (words[0] == "blazzctl" or words[0].endswith("/blazzctl"))


def argv_of(line: DocLine) -> tuple[dict[str, str], list[str]]:
    """(environment assignments, blazzctl arguments) of a plain blazzctl line; AssertionError otherwise."""
    words = _words(line.text)
    bad = [w for w in words if w in CONTROL or w.startswith(("$(", "`"))]
    assert not bad, (f"{line}\n  is not a plain blazzctl command ({bad[0]!r}): simplify it, or end it with "
                     f"'{SKIP_MARK} <reason>'")
    command = _command(words)
    assert _is_blazzctl(command), (
        f"{line}\n  does not start with blazzctl: simplify it, or end it with '{SKIP_MARK} <reason>'")
    env = dict(w.split("=", 1) for w in words[:len(words) - len(command)] if "=" in w and not w.startswith("-"))
    return env, command[1:]


class Sandbox:
    """A temporary root for the paths the docs name, a config file there and a daemon on it."""

    def __init__(self, tmp_path: Path, url: str, *, provider_options: dict) -> None:
        self.root = tmp_path / "root"
        self.home = tmp_path / "home"
        self.home.mkdir(parents=True)
        self.url = url
        self.fleet = Fleet(tmp_path / "fleet", url)
        config = {
            "database": {"url": url},
            "daemon": {**FAST, "host": "docs-host", "instances": 1, "state_dir": str(tmp_path / "state")},
            "providers": {"webjs": {"driver": "tests.fakes.provider:FakeProvider",
                                    "options": {"journal": str(tmp_path / "journal.jsonl"), "link_delay": 0.05,
                                                **provider_options}}},
            "secrets": {"session_key_file": str(self.root / "etc/blazz/session.key")},
            "webhooks": {"enabled": False},
        }
        self.config = self.root / "etc/blazz/blazz.yaml"
        self.config.parent.mkdir(parents=True)
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.fleet.config_for("docs-host").write_text(self.config.read_text())

    def map_path(self, word: str) -> str:
        if word.startswith("~/") or word == "~":
            return str(self.home) + word[1:]
        for prefix in MAPPED_ROOTS:
            if word == prefix or word.startswith(prefix + "/"):
                return str(self.root) + word
        key, sep, value = word.partition("=")  # --file=/etc/blazz/...
        return key + sep + self.map_path(value) if key.startswith("--") and sep else word

    def run(self, line: DocLine):
        """Run the line in-process (as the `cli` fixture does): .exit_code, .stdout, .stderr."""
        from typer.testing import CliRunner

        from blazzctl.cli.main import app

        env_words, args = argv_of(line)
        env = {"HOME": str(self.home), "XDG_CONFIG_HOME": str(self.home / ".config"),
               "XDG_STATE_HOME": str(self.home / ".local/state"), "BLAZZ_CONFIG": str(self.config),
               "COLUMNS": "120", **{k: self.map_path(v) for k, v in env_words.items()}}
        cwd = os.getcwd()
        os.chdir(self.home)
        try:
            return CliRunner().invoke(app, [self.map_path(a) for a in args], env=env, catch_exceptions=False)
        finally:
            os.chdir(cwd)


# --- what each file expects to exist before its first line ------------------------------------------


def _acme_sales(db) -> None:
    from blazzctl.services import accounts, workspaces

    with db.session() as s:
        accounts.add(s, workspace=workspaces.create(s, name="acme"), name="sales")


def _sync_fixtures(db) -> None:
    from blazzctl.models import Group, WhatsAppAccount

    _acme_sales(db)
    with db.session() as s:  # the group `group show` names (the fake phone's groups have other ids)
        acc = s.query(WhatsAppAccount).filter_by(name="sales").one()
        s.add(Group(workspace_id=acc.workspace_id, whatsapp_account_id=acc.id, jid="120363012345678901@g.us",
                    name="Sales team", participants_count=0))


def _webhook_fixtures(db) -> None:
    """acme, webhooks 1 and 2 before the one the page adds (so it is number 3), and delivery 1234."""
    from sqlalchemy import insert

    from blazzctl.models import WebhookDelivery
    from blazzctl.services import webhooks, workspaces

    with db.session() as s:
        ws = workspaces.create(s, name="acme")
        first = [webhooks.add(s, workspace=ws, url=f"https://hooks.example.com/other-{i}") for i in (1, 2)][0]
        s.flush()
        s.execute(insert(WebhookDelivery).values(id=1234, endpoint_id=first.id, event_id="evt_docs",
                                                 event_type="message.received", workspace_id=ws.id, payload="{}",
                                                 status="dead", attempts=10))


def _operations_fixtures(db) -> None:
    """The WhatsApp Web build the releases section names, as a session would have recorded it, and
    a connected account to run it as a canary (its own workspace, meant to stay stopped)."""
    from blazzctl.enums import AccountStatus, DesiredState
    from blazzctl.models import WaWebVersion
    from blazzctl.models.base import utcnow
    from blazzctl.services import accounts, wa_versions, workspaces

    with db.session() as s:
        s.add(WaWebVersion(version="2.3000.1017100000", html=wa_versions.compress(b"<!doctype html>"),
                           html_sha256="0" * 64, last_live_at=utcnow(), last_connected_at=utcnow()))
        account = accounts.add(s, workspace=workspaces.create(s, name="releases"), name="canary")
        account.status, account.desired_state = AccountStatus.CONNECTED, DesiredState.STOPPED


FIXTURES = {"docs/sync.md": _sync_fixtures, "docs/webhooks.md": _webhook_fixtures,
            "docs/operations.md": _operations_fixtures}
CONNECTED = {"docs/sync.md"}  # files whose account must be online before the first line
PROVIDER = {"docs/sync.md": {"sync": {"chats": 4, "groups": 1, "contacts": 3, "participants": 2}}}


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("doc", DOCS, ids=_rel)
def test_every_blazzctl_line_of_the_page_runs(doc, tmp_path, mariadb_server):
    lines = doc_lines(doc)
    runnable = [line for line in lines if not line.skip]
    if not runnable:
        pytest.skip(f"{_rel(doc)} shows no blazzctl command")
    for line in runnable:
        argv_of(line)  # every line is a plain command before anything starts
    url = mariadb_server.create_database()
    migrate(url)
    from blazzctl.db import Database

    db = Database(url)
    sandbox = Sandbox(tmp_path, url, provider_options=PROVIDER.get(_rel(doc), {}))
    try:
        FIXTURES.get(_rel(doc), lambda _db: None)(db)
        if not any(args[:2] == ["key", "generate"] for _, args in map(argv_of, runnable)):
            from blazzctl import keys

            keys.generate(Path(sandbox.config.parent / "session.key"))
        sandbox.fleet.start(1, host="docs-host")
        if _rel(doc) in CONNECTED:
            _connect_all(db, sandbox)
        for line in runnable:
            result = sandbox.run(line)
            assert result.exit_code == 0, (f"{line}\n  exited {result.exit_code}\n  stdout: {result.stdout[-1500:]}"
                                            f"\n  stderr: {result.stderr[-1500:]}\n{sandbox.fleet.logs(15)}")
    finally:
        sandbox.fleet.close()
        db.dispose()


def _connect_all(db, sandbox: Sandbox) -> None:
    from sqlalchemy import select, update

    from blazzctl.enums import AccountStatus, DesiredState
    from blazzctl.models import WhatsAppAccount as A

    with db.session() as s:
        s.execute(update(A).values(desired_state=DesiredState.RUNNING))

    def connected():
        with db.session() as s:
            return all(st == AccountStatus.CONNECTED for st in s.scalars(select(A.status)))

    wait_for(connected, 30, message=lambda: sandbox.fleet.logs())


def test_the_extractor_sees_the_commands():
    """The docs test cannot pass by finding nothing: known lines are found, prose and output are not."""
    readme = [line.text for line in doc_lines(REPO / "README.md")]
    assert "blazzctl workspace create acme" in readme and "blazzctl health" in readme
    ops = doc_lines(REPO / "docs" / "operations.md")
    assert len([line for line in ops if not line.skip]) >= 20
    assert any(line.text.startswith("blazzctl webhook deliveries") for line in ops)  # a crontab line's command
    assert all("Usage:" not in line.text for doc in DOCS for line in doc_lines(doc))


def test_the_not_run_list_is_short_and_says_why():
    skipped = [line for doc in DOCS for line in doc_lines(doc) if line.skip is not None]
    assert len(skipped) <= MAX_SKIPPED, "\n".join(map(str, skipped))
    assert all(len(line.skip) >= 10 for line in skipped), "\n".join(map(str, skipped))


def test_compound_lines_must_be_marked(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("```sh\nblazzctl db upgrade && rm -rf /\nsudo -u blazz BLAZZ_X=1 blazzctl health --wait 5\n"
                    "$ not a console block\n```\n\n```console\n$ blazzctl top --once\nOK\n```\n"
                    "```crontab\n0 3 * * *  blazz  /opt/blazz/current/venv/bin/blazzctl sync run --all\n```\n")
    lines = doc_lines(page)
    assert [line.text for line in lines] == ["blazzctl db upgrade && rm -rf /",
                                            "sudo -u blazz BLAZZ_X=1 blazzctl health --wait 5",
                                            "blazzctl top --once",
                                            "/opt/blazz/current/venv/bin/blazzctl sync run --all"]
    with pytest.raises(AssertionError, match="not a plain blazzctl command"):
        argv_of(lines[0])
    assert argv_of(lines[1]) == ({"BLAZZ_X": "1"}, ["health", "--wait", "5"])
    assert argv_of(lines[3])[1] == ["sync", "run", "--all"]


@pytest.mark.slow
def test_the_manual_is_right_about_statement_binlogs(tmp_path):
    """docs/operations.md: with binlog_format STATEMENT every write under READ COMMITTED fails (1665); MIXED works."""
    import shutil
    import subprocess

    import pymysql

    from blazzctl.db import Database
    from blazzctl.errors import ConfigError
    from daemons.session import leases
    from tests.conftest import _free_port, install_datadir
    from tests.daemon_helpers import seed_accounts

    port, data = _free_port(), tmp_path / "data"
    install_datadir(data)
    server = subprocess.Popen([shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={data}",
                               f"--tmpdir={tmp_path / 'tmp'}",
                               "--user=root", f"--port={port}", "--bind-address=127.0.0.1",
                               f"--socket={tmp_path}/s.sock", f"--log-bin={tmp_path}/binlog", "--server-id=1",
                               "--binlog-format=STATEMENT", "--innodb-buffer-pool-size=64M"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        def ready():
            with pymysql.connect(host="127.0.0.1", port=port, user="root", connect_timeout=1) as conn:
                conn.cursor().execute("CREATE DATABASE IF NOT EXISTS blazz")
            return True

        wait_for(ready, 60)
        url = f"mysql+pymysql://root@127.0.0.1:{port}/blazz"
        with pytest.raises(ConfigError, match="binlog_format: is STATEMENT"):  # checked before migrating
            migrate(url)
        with pymysql.connect(host="127.0.0.1", port=port, user="root", database="blazz") as conn:
            cur = conn.cursor()  # what that check spares the operator: InnoDB refuses the write
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB")
            with pytest.raises(pymysql.err.OperationalError, match="1665.*BINLOG_FORMAT = STATEMENT"):
                cur.execute("INSERT INTO t VALUES (1)")
        with pymysql.connect(host="127.0.0.1", port=port, user="root") as conn:
            conn.cursor().execute("DROP DATABASE blazz")
            conn.cursor().execute("CREATE DATABASE blazz")
            conn.cursor().execute("SET GLOBAL binlog_format = 'MIXED'")
        migrate(url)
        db = Database(url)
        try:
            seed_accounts(db, 3)
            assert len(leases.claim(db, owner="docs:1", limit=3, ttl=30)) == 3
        finally:
            db.dispose()
    finally:
        server.terminate()
        server.wait(30)
