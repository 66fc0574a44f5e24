"""deploy.sh end to end: real releases (virtualenvs), the stand-in systemctl running real daemons, MariaDB.

The wheels are built once per test run (``wheelhouse``): the package as it is, and a copy whose
``blazz-sessiond`` exits at once (a release whose daemons fail to start). Release virtualenvs use
``--system-site-packages`` so only blazz itself is installed, offline (PIP_NO_INDEX=1).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from blazzctl.db import Database
from tests.conftest import REPO
from tests.daemon_helpers import migrate, owners, seed_accounts, wait_for
from tests.systemd_helpers import FakeSystemd, host_config

DEPLOY = REPO / "deploy.sh"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="a file only another user cannot read needs root")
ACCOUNTS = 6
PACKAGE = ("blazzctl", "daemons", "migrations", "setup.cfg", "pyproject.toml", "README.md")
STEPS = ("db upgrade", "units install", "switch current", "restart blazz-session@1", "restart blazz-session@2",
         "health")


def _copy_package(dest: Path) -> Path:
    dest.mkdir(parents=True)
    for name in PACKAGE:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy(source, dest / name)
    return dest


def _wheel(source: Path, out: Path) -> Path:
    # Offline when setuptools can build wheels here; else pip fetches the build backend (PyPI, cached).
    offline = ["--no-build-isolation"] if importlib.util.find_spec("wheel") else []
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--disable-pip-version-check",
                    *offline, "-w", str(out), str(source)], check=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory):
    """{"good": wheel of this checkout, "broken": the same with a blazz-sessiond that exits 1}."""
    root = tmp_path_factory.mktemp("wheelhouse")
    good = _wheel(_copy_package(root / "good"), root / "good-dist")
    broken_src = _copy_package(root / "broken")
    init = broken_src / "blazzctl" / "__init__.py"
    init.write_text(init.read_text().replace('__version__ = "', '__version__ = "0+broken.'))
    main = broken_src / "daemons" / "session" / "main.py"
    text = main.read_text()
    assert "    args = parse_args(argv)\n" in text
    main.write_text(text.replace("    args = parse_args(argv)\n", "    args = parse_args(argv)\n"
                                 "    sys.stderr.write('error: this release is broken on purpose\\n')\n"
                                 "    raise SystemExit(1)\n", 1))
    return {"good": good, "broken": _wheel(broken_src, root / "broken-dist")}


class Site:
    """A host to deploy to: a prefix, the stand-in systemd, a configuration, a MariaDB database."""

    def __init__(self, root: Path, url: str) -> None:
        self.root, self.prefix = root, root / "opt" / "blazz"
        self.systemd = FakeSystemd(root)
        self.config = host_config(root, url, daemon={"instances": 2, "unowned_grace": 20})
        self.db = Database(url)
        # The fake provider is imported from `tests`, and only from there: the daemons must run
        # the release's blazzctl and daemons packages, not this checkout's.
        importable = root / "importable"
        importable.mkdir()
        (importable / "tests").symlink_to(REPO / "tests")
        # No BLAZZ_CONFIG here: the units must name the configuration deploy.sh was given.
        self.systemd.drop_in({"PYTHONPATH": str(importable)})
        # Relative, as an operator may write it: every step, and the units, must read the same file.
        self.env = {**{k: v for k, v in os.environ.items() if not k.startswith(("BLAZZ_", "PIP_", "PYTHON"))},
                    **self.systemd.env, "BLAZZ_CONFIG": self.config.name, "PIP_NO_INDEX": "1",
                    "PYTHON": sys.executable}

    def deploy(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(DEPLOY), "--prefix", str(self.prefix), "--unit-dir", str(self.systemd.unit_dir),
                               "--system-site-packages", "--timeout", "60", "--health-wait", "60", *args],
                              capture_output=True, text=True, timeout=timeout, env=self.env, cwd=self.root)

    def current(self) -> str:
        return os.readlink(self.prefix / "current")

    def releases(self) -> list[str]:
        return sorted(p.name for p in (self.prefix / "releases").iterdir())

    def runs(self, release: str, instance: int) -> bool:
        """Whether blazz-session@N runs the Python of ``release`` (its shebang names the release's venv)."""
        return str(self.prefix / "releases" / release / "venv" / "bin" / "python") in self.systemd.cmdline(instance)

    def all_owned(self) -> bool:
        snap = owners(self.db)
        return len(snap) == ACCOUNTS and all(o in ("host-a:1", "host-a:2") for o, _ in snap.values())

    def health(self, release: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.prefix / "releases" / release / "venv" / "bin" / "blazzctl"), "health"],
                              capture_output=True, text=True, timeout=60, env=self.env, cwd=self.root)


@pytest.fixture
def site(tmp_path, mariadb_url):
    migrate(mariadb_url)
    s = Site(tmp_path, mariadb_url)
    seed_accounts(s.db, ACCOUNTS)
    yield s
    s.systemd.close()
    s.db.dispose()


def _explain(result: subprocess.CompletedProcess, site: Site) -> str:
    return f"exit {result.returncode}\n{result.stdout}\n{result.stderr}\n{site.systemd.logs()}"


def _release_of(result: subprocess.CompletedProcess) -> str:
    (line,) = [line for line in result.stdout.splitlines() if line.startswith("deploy: deploying ")]
    return line.split()[2]


@pytest.mark.mariadb
@pytest.mark.slow
def test_a_good_release_the_same_again_then_a_broken_one_rolled_back(site, wheelhouse):
    """One story, to deploy the first release only once: (1) good, (2) re-run, (3) broken -> rollback."""
    # (1) A good release onto a host with accounts and no daemons yet.
    first = site.deploy("--wheel", str(wheelhouse["good"]))
    assert first.returncode == 0, _explain(first, site)
    release = _release_of(first)
    assert release.startswith("0.1.0-w")
    for name in STEPS:
        assert f"deploy: step: {name}" in first.stdout
    assert site.current() == f"releases/{release}"
    assert site.runs(release, 1) and site.runs(release, 2), site.systemd.cmdline(1)
    assert site.all_owned(), owners(site.db)
    assert site.health(release).returncode == 0
    pids = {n: site.systemd.pid(n) for n in (1, 2)}

    # (2) The same release again, with old releases for --keep 2 to remove (never the current one).
    for n, name in enumerate(("0.0.1-wold1", "0.0.2-wold2")):
        (site.prefix / "releases" / name).mkdir()
        (site.prefix / "releases" / name / ".complete").write_text("old\n")
        os.utime(site.prefix / "releases" / name, (1_000_000 + n, 1_000_000 + n))
    again = site.deploy("--wheel", str(wheelhouse["good"]), "--keep", "2")
    assert again.returncode == 0, _explain(again, site)
    assert f"release {release} is installed already: reusing it" in again.stdout
    assert f"current is {release} already" in again.stdout
    assert site.current() == f"releases/{release}"
    assert site.releases() == ["0.0.2-wold2", release]
    assert {n: site.systemd.pid(n) for n in (1, 2)} != pids  # restarted, onto the same release
    assert site.runs(release, 1) and site.runs(release, 2)
    assert site.all_owned(), owners(site.db)
    assert site.health(release).returncode == 0
    restarts_before = [c for c in site.systemd.calls() if c.startswith("restart")]

    # (3) A release whose daemons exit at once: rolled back onto the good one.
    bad = site.deploy("--wheel", str(wheelhouse["broken"]))
    assert bad.returncode == 1, _explain(bad, site)
    broken = _release_of(bad)
    assert "step 'restart blazz-session@1' failed" in bad.stderr
    assert f"rolled back to {release}" in bad.stderr
    assert site.current() == f"releases/{release}"
    # Instance 1 was restarted onto the broken release, then back; instance 2 was never touched.
    restarts = [c for c in site.systemd.calls() if c.startswith("restart")][len(restarts_before):]
    assert restarts == ["restart blazz-session@1.service"] * 2, restarts
    assert site.runs(release, 1) and site.runs(release, 2)
    assert "broken on purpose" in site.systemd.log(1)
    wait_for(site.all_owned, 30, message=lambda: f"every account owned again: {owners(site.db)}")
    assert site.health(release).returncode == 0
    assert broken in site.releases()  # kept for inspection; --keep removes it later


@pytest.mark.slow
def test_a_first_deploy_that_fails_has_nothing_to_roll_back_and_the_next_runs_on_the_chosen_config(
        tmp_path, sqlite_url, wheelhouse):
    """No drop-in names the configuration: the daemons read it only if the units do."""
    migrate(sqlite_url)
    site = Site(tmp_path, sqlite_url)
    try:
        seed_accounts(site.db, ACCOUNTS)
        broken = site.deploy("--wheel", str(wheelhouse["broken"]))
        assert broken.returncode == 1, _explain(broken, site)
        assert "step 'restart blazz-session@1' failed" in broken.stderr
        assert "nothing to roll back (first deploy)" in broken.stderr
        assert "ROLLBACK INCOMPLETE" not in broken.stderr
        assert site.current() == f"releases/{_release_of(broken)}"  # nothing to go back to

        good = site.deploy("--wheel", str(wheelhouse["good"]))
        assert good.returncode == 0, _explain(good, site)
        release = _release_of(good)
        unit = (site.systemd.unit_dir / "blazz-session@.service").read_text()
        assert f"Environment=BLAZZ_CONFIG={site.config}\n" in unit
        assert site.runs(release, 1) and site.runs(release, 2)
        wait_for(site.all_owned, 30, message=lambda: f"every account owned: {owners(site.db)}")
        assert site.health(release).returncode == 0
    finally:
        site.systemd.close()
        site.db.dispose()


def test_a_failure_before_the_switch_leaves_current_alone(tmp_path, wheelhouse):
    """The database is unreachable: `db upgrade` fails, nothing was switched, nothing restarted."""
    systemd = FakeSystemd(tmp_path)
    config = tmp_path / "blazz.yaml"
    config.write_text("database:\n  url: mysql+pymysql://root@127.0.0.1:1/blazz\n  connect_timeout: 1\n")
    prefix = tmp_path / "opt"
    (prefix / "releases" / "0.0.9-wbefore").mkdir(parents=True)
    (prefix / "current").symlink_to("releases/0.0.9-wbefore")
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("BLAZZ_", "PIP_"))}, **systemd.env,
           "BLAZZ_CONFIG": str(config), "PIP_NO_INDEX": "1", "PYTHON": sys.executable}
    result = subprocess.run([str(DEPLOY), "--prefix", str(prefix), "--unit-dir", str(systemd.unit_dir),
                             "--system-site-packages", "--instances", "1", "--wheel", str(wheelhouse["good"])],
                            capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert result.returncode == 1, result
    assert "step 'db upgrade' failed" in result.stderr
    assert "current was not switched: nothing to roll back" in result.stdout
    assert os.readlink(prefix / "current") == "releases/0.0.9-wbefore"
    assert systemd.calls() == []
    assert (prefix / "releases" / _release_of(result) / ".complete").exists()  # reused by the next try


def _dry_run(tmp_path: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("BLAZZ_", "SYSTEMCTL", "PYTHON"))}
    return subprocess.run([str(DEPLOY), "--dry-run", "--prefix", str(tmp_path / "opt"), *args],
                          capture_output=True, text=True, timeout=120, env={**base, **(env or {})}, cwd=tmp_path)


def _checks(result: subprocess.CompletedProcess) -> dict[str, str]:
    """{check name: "ok ..." | "FAILED ..."} from the `check:` lines."""
    found = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"check: (ok|FAILED) +([a-z ]+): (.*)", line)
        if match:
            found[match.group(2)] = f"{match.group(1)} {match.group(3)}"
    return found


def test_dry_run_prints_the_plan_touches_nothing_and_names_each_failed_check(tmp_path):
    prefix, units = tmp_path / "opt", tmp_path / "units"
    result = _dry_run(tmp_path, "--unit-dir", str(units), "--instances", "2", "--user", "no-such-user",
                      env={"PATH": "/usr/bin:/bin", "PYTHON": "/nonexistent/python3"})
    lines = result.stdout.splitlines()
    for name in STEPS:
        assert sum(line.startswith(f"plan: {name}") for line in lines) == 1, (name, lines)
    checks = _checks(result)
    assert checks["python"].startswith("FAILED /nonexistent/python3 does not run"), checks
    assert checks["service user"].startswith("FAILED no-such-user does not exist"), checks
    # No configuration file anywhere in the lookup: the units would name a missing /etc/blazz/blazz.yaml.
    assert checks["configuration"] == "FAILED /etc/blazz/blazz.yaml: the file does not exist", checks
    assert "check: skipped database" in result.stdout
    assert result.returncode == 1, result
    assert re.search(r"dry run: \d check\(s\) failed: python, service user, configuration", result.stderr), result
    assert not prefix.exists() and not units.exists()
    assert list(tmp_path.iterdir()) == []


def _good_host(tmp_path: Path, url: str, *, instances: int = 3) -> dict[str, str]:
    config = tmp_path / "etc" / "blazz.yaml"
    config.parent.mkdir()
    config.write_text(f"database:\n  url: {url}\n  connect_timeout: 1\ndaemon:\n  instances: {instances}\n")
    return {"BLAZZ_CONFIG": str(config), "SYSTEMCTL": str(REPO / "tests" / "fakes" / "systemctl"),
            "PYTHON": sys.executable}


@pytest.mark.parametrize("source", ["checkout", "wheel"])
def test_dry_run_passes_when_the_host_is_ready_and_plans_the_real_instance_count(tmp_path, sqlite_url, source,
                                                                                 request):
    migrate(sqlite_url)
    args = ["--wheel", str(request.getfixturevalue("wheelhouse")["good"])] if source == "wheel" else []
    result = _dry_run(tmp_path, "--user", "root", *args, env=_good_host(tmp_path, sqlite_url))
    assert result.returncode == 0, result
    checks = _checks(result)
    assert set(checks) == {"python", "service user", "configuration", "systemd", "database"}, result.stdout
    assert all(v.startswith("ok") for v in checks.values()), checks
    assert "nothing to migrate" in checks["database"]
    assert "readable by 'root'" in checks["configuration"]
    assert [line for line in result.stdout.splitlines() if line.startswith("plan: restart")] == \
        [f"plan: restart blazz-session@{n}" for n in (1, 2, 3)]
    assert "--instances 3" in result.stdout and "plan: instances: 3 (daemon.instances)" in result.stdout


@pytest.mark.parametrize("state, expected", [
    ("empty", "ok reachable; empty: `db upgrade` will create the schema"),
    ("behind", "ok reachable; `db upgrade` will migrate 0001 -> "),
    ("unknown", "FAILED the schema is at 9999zz, which this release does not know"),
    ("unreachable", "FAILED "),
])
def test_dry_run_checks_the_database_without_migrating_it(tmp_path, sqlite_url, state, expected):
    import sqlite3

    from sqlalchemy import text

    url = "mysql+pymysql://root@127.0.0.1:1/blazz" if state == "unreachable" else sqlite_url
    sqlite3.connect(sqlite_url.removeprefix("sqlite:///")).close()
    if state in ("behind", "unknown"):
        migrate(sqlite_url)
        db = Database(sqlite_url)
        with db.engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"),
                         {"v": "0001" if state == "behind" else "9999zz"})
        db.dispose()
    def schema() -> list:
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as conn:
            tables = conn.execute("SELECT name FROM sqlite_master ORDER BY name").fetchall()
            version = conn.execute("SELECT * FROM alembic_version").fetchall() if tables else []
        return tables + version

    before = schema()
    result = _dry_run(tmp_path, "--user", "root", env=_good_host(tmp_path, url))
    assert _checks(result)["database"].startswith(expected), result.stdout
    assert result.returncode == (1 if expected.startswith("FAILED") else 0), result
    assert schema() == before  # nothing applied


@needs_root
def test_dry_run_refuses_a_configuration_the_service_user_cannot_read(tmp_path, sqlite_url):
    env = _good_host(tmp_path, sqlite_url)
    Path(env["BLAZZ_CONFIG"]).chmod(0o600)
    result = _dry_run(tmp_path, "--user", "nobody", env=env)
    assert result.returncode == 1, result
    assert "user 'nobody' cannot" in _checks(result)["configuration"], result.stdout
    assert "failed: configuration" in result.stderr


def test_dry_run_with_nothing_to_read_the_configuration_names_the_restart_step(tmp_path):
    # A checkout without .venv, no blazzctl on PATH, no usable Python: no count to plan with.
    tree = _copy_package(tmp_path.parent / f"{tmp_path.name}-tree")
    result = _dry_run(tmp_path, "--source", str(tree), env={"PATH": "/usr/bin:/bin", "PYTHON": "/nonexistent/python3"})
    assert "plan: restart blazz-session@1 .. blazz-session@N" in result.stdout
    assert "check: FAILED  blazzctl: no environment with blazz's dependencies" in result.stdout
    assert result.returncode == 1


def test_release_ids_follow_the_source(tmp_path, wheelhouse):
    def plan(*args: str) -> str:
        result = subprocess.run([str(DEPLOY), "--dry-run", "--instances", "1", "--prefix", str(tmp_path / "p"),
                                 *args], capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert result.stdout.startswith("plan: release "), result  # the checks may fail here: not the point
        return result.stdout.splitlines()[0].split()[2].rstrip(":")

    assert plan("--wheel", str(wheelhouse["good"])) == plan("--wheel", str(wheelhouse["good"]))
    assert plan("--wheel", str(wheelhouse["good"])) != plan("--wheel", str(wheelhouse["broken"]))
    assert plan("--wheel", str(wheelhouse["broken"])).startswith("0+broken.0.1.0-w")
    # The checkout deploy.sh is in (others may be committing to it: only the form is stable).
    assert re.fullmatch(r"0\.1\.0-g[0-9a-f]{12}(-dirty[0-9a-f]{8})?", plan()), plan()
    tree = _copy_package(tmp_path / "tree")
    first = plan("--source", str(tree))
    assert first.startswith("0.1.0-s") and first == plan("--source", str(tree))
    (tree / "daemons" / "session" / "main.py").write_text("# changed\n", encoding="utf-8")
    assert plan("--source", str(tree)) != first


def test_release_ids_of_a_git_checkout(tmp_path):
    tree = _copy_package(tmp_path / "checkout")
    git = ["git", "-C", str(tree), "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "release"], check=True)
    commit = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()

    def plan() -> str:
        result = subprocess.run([str(DEPLOY), "--dry-run", "--instances", "1", "--source", str(tree)],
                                capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert result.stdout.startswith("plan: release "), result
        return result.stdout.splitlines()[0].split()[2].rstrip(":")

    assert plan() == f"0.1.0-g{commit}"
    index = (tree / ".git" / "index").stat().st_mtime_ns
    (tree / "NEW.txt").write_text("untracked\n")
    dirty = plan()
    assert dirty.startswith(f"0.1.0-g{commit}-dirty") and dirty == plan()
    (tree / "NEW.txt").write_text("changed\n")
    assert plan() != dirty
    (tree / "NEW.txt").unlink()
    (tree / "README.md").write_text("edited\n")
    assert plan().startswith(f"0.1.0-g{commit}-dirty")
    assert (tree / ".git" / "index").stat().st_mtime_ns == index  # --dry-run wrote nothing, not even git's index


@pytest.mark.parametrize("args, message", [
    (["--source", ".", "--wheel", "x.whl"], "give --source or --wheel, not both"),
    (["--instances", "0"], "--instances must be a whole number from 1 to 64"),
    (["--instances", "65"], "--instances must be a whole number from 1 to 64"),
    (["--keep", "zero"], "--keep must be a whole number"),
    (["--user", "bad user"], "is not a valid user name"),
    (["--wheel", "/nonexistent.whl"], "is not a wheel file"),
    (["--source", "/"], "is not a blazz checkout"),
    (["--prefix"], "--prefix needs a value"),
    (["--bogus"], "unknown option: --bogus"),
])
def test_bad_options_exit_2_naming_the_problem(tmp_path, args, message):
    result = subprocess.run([str(DEPLOY), "--dry-run", *args], capture_output=True, text=True, timeout=60,
                            cwd=tmp_path)
    assert result.returncode == 2, result
    assert message in result.stderr
    assert result.stdout == ""


def test_help_lists_every_option_and_step():
    result = subprocess.run([str(DEPLOY), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for text in ("--prefix DIR", "--source DIR", "--wheel FILE", "--instances N", "--user USER", "--keep K",
                 "--dry-run", "--system-site-packages", "PIP_NO_INDEX", "SYSTEMCTL", *STEPS[:3],
                 "restart blazz-session@N", "health"):
        assert text in result.stdout


def test_deploy_sh_is_strict_executable_and_shellcheck_clean():
    assert os.access(DEPLOY, os.X_OK)
    assert "set -euo pipefail" in DEPLOY.read_text().splitlines()[4]
    shellcheck = shutil.which("shellcheck")
    if shellcheck is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run([shellcheck, str(DEPLOY)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
