"""Shared fixtures: real databases (a private MariaDB and SQLite files) and the CLI runner.

MariaDB: ``BLAZZ_TEST_DATABASE_URL`` (a server URL; each test gets its own database on
it) when set, otherwise a private ``mariadbd`` started on a random loopback port in a
temporary directory for the whole session and removed afterwards.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def install_datadir(datadir: Path) -> None:
    """``mariadb-install-db`` into ``datadir`` with its own temporary directory beside it: bootstraps
    running side by side (pytest-xdist workers) otherwise collide on temporary tables in /tmp."""
    installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
    tmpdir = datadir.parent / "tmp"
    tmpdir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([installer, "--no-defaults", f"--datadir={datadir}", f"--tmpdir={tmpdir}", "--user=root",
                           "--auth-root-authentication-method=normal", "--skip-test-db"],
                          capture_output=True, text=True, env={**os.environ, "TMPDIR": str(tmpdir)})
    if done.returncode:
        raise RuntimeError(f"mariadb-install-db failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")


class PrivateMariaDB:
    """A throwaway mariadbd in a temp dir (about 2 s to start)."""

    def __init__(self, root: Path, extra_args: tuple[str, ...] = ()) -> None:
        self.root = root
        self.extra_args = extra_args  # more mariadbd options, after (and so over) the ones below
        self.datadir = root / "data"
        self.port = _free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def server_url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}"

    def start(self) -> None:
        installer = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        server = shutil.which("mariadbd") or shutil.which("mysqld") or "/usr/sbin/mariadbd"
        if not installer or not Path(server).exists():
            pytest.exit("MariaDB server binaries not found: apt-get install mariadb-server "
                        "(or set BLAZZ_TEST_DATABASE_URL)", returncode=3)
        install_datadir(self.datadir)
        self.proc = subprocess.Popen(
            [server, "--no-defaults", f"--datadir={self.datadir}", f"--tmpdir={self.datadir.parent / 'tmp'}",
             "--user=root", f"--port={self.port}",
             "--bind-address=127.0.0.1", f"--socket={self.root}/s.sock", "--skip-log-bin",
             "--innodb-buffer-pool-size=256M", "--innodb-flush-log-at-trx-commit=2",
             "--transaction-isolation=READ-COMMITTED", "--max-connections=500",
             f"--log-error={self.root}/error.log", *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        import pymysql

        deadline = time.monotonic() + timeout
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
                return
            except pymysql.err.OperationalError:
                if self.proc and self.proc.poll() is not None:
                    raise RuntimeError(f"mariadbd exited; see {self.root}/error.log")
                if time.monotonic() > deadline:
                    raise RuntimeError("mariadbd did not become ready")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self) -> None:
        """Start the same datadir again on the same port (after stop())."""
        self.proc = subprocess.Popen(
            [shutil.which("mariadbd") or "/usr/sbin/mariadbd", "--no-defaults", f"--datadir={self.datadir}",
             f"--tmpdir={self.datadir.parent / 'tmp'}", "--user=root", f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.root}/s.sock",
             "--skip-log-bin", "--innodb-buffer-pool-size=256M", "--innodb-flush-log-at-trx-commit=2",
             "--transaction-isolation=READ-COMMITTED", "--max-connections=500",
             f"--log-error={self.root}/error.log", *self.extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready()


def bench_database(server_url: str | None, root: Path, name: str) -> tuple[str, str, "PrivateMariaDB | None"]:
    """For benchmarks: (url, server version, private server or None) of a fresh, empty database
    ``name`` on ``server_url``, or on a private mariadbd started under ``root`` when it is None."""
    import pymysql
    from sqlalchemy.engine import make_url

    private = None
    if not server_url:
        private = PrivateMariaDB(root / "mariadb")
        private.root.mkdir(parents=True, exist_ok=True)
        private.start()
        server_url = private.server_url
    parsed = make_url(server_url)
    conn = pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                           password=parsed.password or "")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        cur.execute("SELECT VERSION()")
        version = cur.fetchone()[0]
    conn.close()
    return f"{server_url.rstrip('/')}/{name}", version, private


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory):
    """A MariaDB server URL without a database name (``mysql+pymysql://root@127.0.0.1:PORT``).

    The private server object (for stop/restart in outage tests) is ``mariadb_server.private``,
    None when BLAZZ_TEST_DATABASE_URL is used.
    """
    given = os.environ.get("BLAZZ_TEST_DATABASE_URL")
    if given:
        yield ServerHandle(given.rstrip("/"), None)
        return
    private = PrivateMariaDB(tmp_path_factory.mktemp("mariadb"))
    private.start()
    try:
        yield ServerHandle(private.server_url, private)
    finally:
        private.stop()


class ServerHandle:
    def __init__(self, url: str, private: PrivateMariaDB | None) -> None:
        self.url, self.private = url, private

    def create_database(self, charset: str = "utf8mb4 COLLATE utf8mb4_bin") -> str:
        """A fresh, empty database on this server (default character set ``charset``); returns its URL."""
        import pymysql
        from sqlalchemy.engine import make_url

        parsed = make_url(self.url)
        name = f"blazz_test_{uuid.uuid4().hex[:12]}"
        conn = pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                               password=parsed.password or "")
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET {charset}")
        conn.close()
        return f"{self.url}/{name}"

    def drop_database(self, url: str) -> None:
        import pymysql
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        try:
            conn = pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                                   password=parsed.password or "")
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {parsed.database}")
            conn.close()
        except pymysql.err.OperationalError:
            pass


@pytest.fixture
def mariadb_url(mariadb_server):
    """URL of a fresh, empty MariaDB database (dropped after the test)."""
    url = mariadb_server.create_database()
    yield url
    mariadb_server.drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'blazz.db'}"


@pytest.fixture(params=["sqlite", "mariadb"])
def db_url(request):
    """An empty database URL, once on SQLite and once on MariaDB."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def migrated_url(db_url):
    """A database (SQLite, then MariaDB) migrated to head."""
    from blazzctl.db import Database
    from blazzctl.services import schema

    db = Database(db_url)
    schema.upgrade(db)
    db.dispose()
    return db_url


@pytest.fixture
def database(migrated_url):
    """A ``blazzctl.db.Database`` on a migrated database (both dialects)."""
    from blazzctl.db import Database

    db = Database(migrated_url)
    yield db
    db.dispose()


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test reads the developer's config or state: XDG dirs point into tmp_path."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    for var in list(os.environ):
        if var.startswith("BLAZZ_") and var != "BLAZZ_TEST_DATABASE_URL":
            monkeypatch.delenv(var)
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.chdir(tmp_path)


class CliResult:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    def json(self):
        import json

        return json.loads(self.stdout)

    def __repr__(self) -> str:
        return f"CliResult(code={self.code}, stdout={self.stdout!r}, stderr={self.stderr!r})"


@pytest.fixture
def cli(monkeypatch):
    """Run ``blazzctl`` in-process: ``cli("account", "list", db=url)`` → CliResult.

    ``db`` sets BLAZZ_DATABASE_URL for that call; ``input`` feeds stdin.
    """
    from typer.testing import CliRunner

    from blazzctl.cli.main import app

    def run(*args: str, db: str | None = None, input: str | None = None, env: dict | None = None) -> CliResult:
        runner = CliRunner()
        full_env = dict(env or {})
        if db is not None:
            full_env["BLAZZ_DATABASE_URL"] = db
        result = runner.invoke(app, list(args), input=input, env=full_env, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run


def run_blazzctl(*args: str, env: dict | None = None, timeout: float = 60) -> CliResult:
    """``blazzctl`` as a real subprocess (the installed entry point's code, this interpreter)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "blazzctl", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture(scope="module")
def fake():
    """One fake WhatsApp Web per test module, for daemons driving real Chromium (QR refs rotate
    every 20 s unless a test changes it); a module may override it (test_rolling_webjs.py)."""
    from tests.fakes.wa_web import FakeWhatsAppWeb

    with FakeWhatsAppWeb(port=0, ref_interval=20.0) as fake:
        yield fake


@pytest.fixture
def fake_wa_web():
    """A fake WhatsApp Web on 127.0.0.1 (``tests/fakes/wa_web``; contract in its SURFACE.md).

    ``.url`` for the browser; ``.link(qr, phone)``, ``.deliver(phone, from_, body)``, ``.sent(phone)``,
    ``.ack(phone, id, ack)``, ``.logout(phone)``, ``.conflict(phone)``, ... mirror the control API.
    QR refs rotate every 20 s; change it with ``.set_ref_interval(seconds)``.
    """
    from tests.fakes.wa_web import FakeWhatsAppWeb

    fake = FakeWhatsAppWeb(port=0, ref_interval=20.0).start()
    yield fake
    fake.stop()
