"""systemd units: checked by systemd-analyze itself, and installed with a stand-in systemctl."""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from blazzctl.errors import InvalidInput
from blazzctl.services import units
from blazzctl.settings import DaemonSettings, Settings
from tests.conftest import REPO, run_blazzctl

ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ordered (key, value) lists (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            current.append((key, value))
    return sections


def value(section: list[tuple[str, str]], key: str) -> str:
    found = [v for k, v in section if k == key]
    assert len(found) == 1, f"{key}: {found}"
    return found[0]


def instance_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    """The rendered files with the template copied to instance 1, as systemd would load it."""
    where = tmp_path / "rendered"
    units.write(files, where)
    shutil.copy(where / units.TEMPLATE, where / "blazz-session@1.service")
    return where


def analyze(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ANALYZE, *args], capture_output=True, text=True, timeout=60)


# --- systemd-analyze ------------------------------------------------------------------------


@needs_analyze
def test_verify_prints_only_that_the_executable_is_not_installed(tmp_path):
    prefix = tmp_path / "not-installed"
    where = instance_dir(tmp_path, units.render(Settings(), instances=3, prefix=prefix))
    done = analyze("verify", str(where / "blazz-session@1.service"), str(where / "blazz.target"))
    lines = (done.stdout + done.stderr).splitlines()
    exe = prefix / "current/venv/bin/blazz-sessiond"
    assert lines == [f"blazz-session@1.service: Command {exe} is not executable: No such file or directory"]


@needs_analyze
def test_verify_prints_nothing_when_the_executable_exists(tmp_path):
    prefix = tmp_path / "opt"
    exe = prefix / "current/venv/bin/blazz-sessiond"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    where = instance_dir(tmp_path, units.render(Settings(), instances=2, prefix=prefix))
    done = analyze("verify", str(where / "blazz-session@1.service"), str(where / "blazz.target"))
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_analyze
def test_verify_would_notice_a_bad_value(tmp_path):
    # The check above can fail: a bad value only prints "..., ignoring" (and exits 0).
    files = units.render(Settings(), instances=1, prefix=tmp_path)
    files[units.TEMPLATE] = files[units.TEMPLATE].replace("KillMode=mixed", "KillMode=bogus")
    where = instance_dir(tmp_path, files)
    done = analyze("verify", str(where / "blazz-session@1.service"))
    assert "failed to parse kill mode" in (done.stdout + done.stderr).lower()


@needs_analyze
@pytest.mark.parametrize("prefix", ["/opt/blazz", None], ids=["deploy-prefix", "beside-python"])
def test_security_exposure_is_at_most_2_5(tmp_path, prefix):
    where = instance_dir(tmp_path, units.render(Settings(), instances=4, prefix=prefix))
    done = analyze("security", "--offline=yes", str(where / "blazz-session@1.service"))
    match = re.search(r"Overall exposure level for blazz-session@1\.service: (\d+\.\d+)", done.stdout)
    assert match, done.stdout + done.stderr
    assert float(match.group(1)) <= 2.5
    assert "MemoryDenyWriteExecute=  " in done.stdout  # still allowed: V8 needs it


# --- what the unit says ---------------------------------------------------------------------


def test_start_limit_can_trip():
    unit = parse_unit(units.render(Settings(), instances=1)[units.TEMPLATE])
    interval = int(value(unit["Unit"], "StartLimitIntervalSec"))
    burst = int(value(unit["Unit"], "StartLimitBurst"))
    restart = int(value(unit["Service"], "RestartSec"))
    startup = int(value(unit["Service"], "TimeoutStartSec"))
    # Burst restarts, each after a start that failed as late as possible, fit in the interval.
    assert burst * (restart + startup) < interval
    assert "StartLimitIntervalSec" not in dict(unit["Service"])


@pytest.mark.parametrize("daemon", [
    DaemonSettings(),
    DaemonSettings(lease_ttl=40, claim_interval=15, drain_timeout=120, capacity=5, memory_budget_mb=2000),
], ids=["defaults", "tuned"])
def test_the_service_follows_the_daemon_settings(daemon):
    settings = dataclasses.replace(Settings(), daemon=daemon)
    unit = parse_unit(units.render(settings, instances=2, prefix="/opt/blazz", user="wa")[units.TEMPLATE])
    svc = unit["Service"]
    assert value(svc, "Type") == "notify"
    assert value(svc, "Restart") == "on-failure"
    assert value(svc, "KillMode") == "mixed"
    assert value(svc, "OOMPolicy") in ("stop", "kill")
    assert value(svc, "User") == "wa"
    assert value(svc, "StateDirectory") == "blazz"
    assert value(svc, "ExecStart") == "/opt/blazz/current/venv/bin/blazz-sessiond --instance %i"
    assert ("Environment", "BLAZZ_CONFIG=/etc/blazz/blazz.yaml") in svc
    watchdog = int(value(svc, "WatchdogSec"))
    # shorter than the fence deadline; renewals a claim interval apart keep it fed
    assert watchdog < 0.75 * daemon.lease_ttl and daemon.claim_interval < daemon.lease_ttl - watchdog
    assert value(svc, "TimeoutAbortSec") == str(units.ABORT_SEC)
    assert int(value(svc, "TimeoutStopSec")) >= daemon.drain_timeout + 10
    assert int(value(svc, "TasksMax")) >= 200 * daemon.capacity
    if daemon.memory_budget_mb:
        assert (value(svc, "MemoryHigh"), value(svc, "MemoryMax")) == ("2500M", "3000M")
    else:
        assert (value(svc, "MemoryHigh"), value(svc, "MemoryMax")) == ("35%", "42.5%")
    # Chromium's sandbox needs these namespaces and chroot; V8 needs W+X memory.
    assert set(value(svc, "RestrictNamespaces").split()) == {"user", "pid", "net"}
    assert not any(k == "MemoryDenyWriteExecute" for k, _ in svc)
    assert all("~" not in v for k, v in svc if k == "SystemCallFilter")
    assert value(unit["Unit"], "PartOf") == "blazz.target"
    assert value(unit["Install"], "WantedBy") == "blazz.target"


def test_target_is_wanted_at_boot():
    target = parse_unit(units.render(Settings(), instances=1)[units.TARGET])
    assert value(target["Install"], "WantedBy") == "multi-user.target"


def test_without_prefix_the_daemon_beside_this_python_runs():
    unit = parse_unit(units.render(Settings(), instances=1)[units.TEMPLATE])
    exe = Path(sys.executable).absolute().parent / "blazz-sessiond"
    assert value(unit["Service"], "ExecStart") == f"{exe} --instance %i"
    home_hidden = any(p in exe.parents for p in (Path("/home"), Path("/root")))
    assert value(unit["Service"], "ProtectHome") == ("read-only" if home_hidden else "yes")


def test_a_prefix_with_a_space_is_quoted_and_odd_ones_are_refused():
    unit = parse_unit(units.render(Settings(), instances=1, prefix="/srv/my apps")[units.TEMPLATE])
    assert value(unit["Service"], "ExecStart") == '"/srv/my apps/current/venv/bin/blazz-sessiond" --instance %i'
    for odd in ("/srv/50%", "/srv/$HOME", "/srv/a\nb", '/srv/"q"'):
        with pytest.raises(InvalidInput):
            units.render(Settings(), instances=1, prefix=odd)


def test_shipped_units_are_the_rendered_defaults():
    expected = units.render(Settings(), instances=1, prefix="/opt/blazz")
    shipped = {p.name: p.read_text() for p in (REPO / "units").iterdir() if p.is_file()}
    assert shipped == expected, "run: blazzctl units render --instances 1 --prefix /opt/blazz --dest units"


# --- blazzctl units render ------------------------------------------------------------------


def test_render_prints_both_units(cli):
    result = cli("units", "render", "--instances", "2", "--prefix", "/opt/blazz")
    assert result.code == 0, result
    assert "==> blazz.target <==" in result.stdout and "==> blazz-session@.service <==" in result.stdout
    assert "MemoryHigh=35%" in result.stdout


def test_render_json(cli):
    result = cli("units", "render", "--instances", "2", "--json")
    assert result.code == 0, result
    data = result.json()
    assert set(data["units"]) == {"blazz.target", "blazz-session@.service", "blazz-sync.service", "blazz-sync.timer",
                                  "blazz-api.service"}
    assert data["written"] is None


def test_render_writes_with_dest_and_reports_changes(cli, tmp_path):
    dest = tmp_path / "out"
    first = cli("units", "render", "-n", "2", "--prefix", "/opt/blazz", "--dest", str(dest))
    assert first.code == 0, first
    assert "created" in first.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["blazz-api.service", "blazz-session@.service",
                                                     "blazz-sync.service", "blazz-sync.timer", "blazz.target"]
    again = cli("units", "render", "-n", "2", "--prefix", "/opt/blazz", "--dest", str(dest), "--json")
    assert set(again.json()["written"].values()) == {"unchanged"}
    changed = cli("units", "render", "-n", "4", "--prefix", "/opt/blazz", "--dest", str(dest), "--json")
    assert changed.json()["written"]["blazz-session@.service"] == "updated"


def test_instances_default_to_the_configuration(cli, tmp_path):
    (tmp_path / "blazz.yaml").write_text("daemon:\n  instances: 4\n")
    result = cli("units", "render", "--prefix", "/opt/blazz")
    assert "for 4 instance(s)" in result.stdout
    assert "MemoryHigh=17.5%" in result.stdout


@pytest.mark.parametrize("args", [
    ["--instances", "0"], ["--instances", "65"], ["--instances", "-1"], ["--user", "bad user"],
    ["--user", "9lives"], ["--user", ""], ["--prefix", "/opt/50%"],
], ids=lambda a: " ".join(a))
@pytest.mark.parametrize("command", ["render", "install"])
def test_bad_input_exits_2_and_writes_nothing(cli, tmp_path, stand_in_systemctl, args, command):
    dest = tmp_path / "out"
    result = cli("units", command, "--dest", str(dest), *args, env={"SYSTEMCTL": str(stand_in_systemctl.path)})
    assert result.code == 2, result
    assert "error:" in result.stderr or "Usage" in result.stderr
    assert not dest.exists()
    assert stand_in_systemctl.calls() == []


def test_render_through_the_installed_entry_point(tmp_path):
    result = run_blazzctl("units", "render", "--instances", "1", "--prefix", "/opt/blazz")
    assert result.code == 0, result
    assert (REPO / "units" / "blazz-session@.service").read_text() in result.stdout


# --- blazzctl units install -----------------------------------------------------------------


class StandInSystemctl:
    """A `systemctl` that records its arguments (one call per line) and can be told to fail."""

    def __init__(self, root: Path) -> None:
        self.path, self.log = root / "systemctl", root / "systemctl.log"
        self.succeed()

    def succeed(self) -> None:
        self.path.write_text(f'#!/bin/sh\necho "$*" >> "{self.log}"\n')
        self.path.chmod(0o755)

    def fail(self, message: str) -> None:
        self.path.write_text(f'#!/bin/sh\necho "$*" >> "{self.log}"\necho "{message}" >&2\nexit 1\n')
        self.path.chmod(0o755)

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def stand_in_systemctl(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    return StandInSystemctl(bin_dir)


@pytest.fixture
def config_here(tmp_path) -> Path:
    """./blazz.yaml (the tests run in tmp_path): the file the default lookup finds first."""
    path = tmp_path / "blazz.yaml"
    path.write_text("daemon:\n  instances: 1\n")
    return path


def test_install_writes_reloads_and_enables(cli, tmp_path, stand_in_systemctl, config_here):
    dest = tmp_path / "system"
    env = {"SYSTEMCTL": str(stand_in_systemctl.path)}
    result = cli("units", "install", "-n", "3", "--prefix", "/opt/blazz", "--dest", str(dest), "--json", env=env)
    assert result.code == 0, result
    data = result.json()
    assert data["files"] == {"blazz.target": "created", "blazz-session@.service": "created",
                             "blazz-sync.service": "created", "blazz-sync.timer": "created",
                             "blazz-api.service": "created"}
    assert stand_in_systemctl.calls() == [
        "daemon-reload",
        "enable blazz.target",
        "enable blazz-session@1.service blazz-session@2.service blazz-session@3.service",
    ]
    assert (dest / "blazz-session@.service").read_text() == units.render(
        Settings(), instances=3, prefix="/opt/blazz", config_file=str(config_here))[units.TEMPLATE]
    assert oct((dest / "blazz.target").stat().st_mode & 0o777) == "0o644"
    # Again: nothing changes on disk, and the same calls make the state certain.
    again = cli("units", "install", "-n", "3", "--prefix", "/opt/blazz", "--dest", str(dest), "--json", env=env)
    assert set(again.json()["files"].values()) == {"unchanged"}
    assert stand_in_systemctl.calls()[3:] == stand_in_systemctl.calls()[:3]


def test_install_finds_systemctl_on_path(cli, tmp_path, stand_in_systemctl, config_here):
    env = {"PATH": str(stand_in_systemctl.path.parent)}
    result = cli("units", "install", "-n", "1", "--dest", str(tmp_path / "system"), env=env)
    assert result.code == 0, result
    assert stand_in_systemctl.calls()[-1] == "enable blazz-session@1.service"
    assert "enabled blazz.target, blazz-session@1.service" in result.stdout


def test_install_disables_instances_above_n(cli, tmp_path, stand_in_systemctl, config_here):
    dest = tmp_path / "system"
    wants = dest / "blazz.target.wants"
    wants.mkdir(parents=True)
    for n in (1, 2, 3, 4, 12):  # links as `systemctl enable` leaves them
        (wants / f"blazz-session@{n}.service").symlink_to(dest / "blazz-session@.service")
    env = {"SYSTEMCTL": str(stand_in_systemctl.path)}
    result = cli("units", "install", "-n", "2", "--dest", str(dest), env=env)
    assert result.code == 0, result
    assert stand_in_systemctl.calls()[-1] == \
        "disable --now blazz-session@3.service blazz-session@4.service blazz-session@12.service"
    assert "disabled and stopped" in result.stdout


@pytest.mark.parametrize("env", [{"SYSTEMCTL": "/nonexistent/systemctl"}, {"PATH": "/nonexistent"}],
                         ids=["bad-SYSTEMCTL", "not-on-PATH"])
def test_install_without_systemctl_exits_1_and_writes_nothing(cli, tmp_path, env, config_here):
    dest = tmp_path / "system"
    result = cli("units", "install", "-n", "1", "--dest", str(dest), env=env)
    assert result.code == 1, result
    assert "SYSTEMCTL" in result.stderr
    assert not dest.exists()


def test_a_failing_systemctl_exits_1_with_its_message(cli, tmp_path, stand_in_systemctl, config_here):
    stand_in_systemctl.fail("Failed to connect to bus: No such file or directory")
    env = {"SYSTEMCTL": str(stand_in_systemctl.path)}
    result = cli("units", "install", "-n", "1", "--dest", str(tmp_path / "system"), env=env)
    assert result.code == 1, result
    assert "`systemctl daemon-reload` failed (exit 1): Failed to connect to bus" in result.stderr
    assert stand_in_systemctl.calls() == ["daemon-reload"]


def test_install_warns_when_the_user_does_not_exist(cli, tmp_path, stand_in_systemctl, config_here):
    env = {"SYSTEMCTL": str(stand_in_systemctl.path)}
    result = cli("units", "install", "-n", "1", "--user", "blazz_nobody_here", "--dest", str(tmp_path / "s"),
                 env=env)
    assert result.code == 0, result
    assert "user 'blazz_nobody_here' does not exist" in result.stderr
    assert "User=blazz_nobody_here" in (tmp_path / "s" / "blazz-session@.service").read_text()


# --- the sync timer (the systemd alternative to sync.schedule) -------------------------------


def test_sync_service_runs_the_cron_command_and_the_timer_is_daily():
    files = units.render(Settings(), instances=2, prefix="/opt/blazz", user="wa")
    svc = parse_unit(files[units.SYNC_UNIT])["Service"]
    assert value(svc, "Type") == "oneshot"
    assert value(svc, "ExecStart") == \
        f"/opt/blazz/current/venv/bin/blazzctl sync run --all --wait --quiet --timeout {units.SYNC_WAIT_SEC}"
    assert int(value(svc, "TimeoutStartSec")) > units.SYNC_WAIT_SEC
    assert value(svc, "User") == "wa" and ("Environment", "BLAZZ_CONFIG=/etc/blazz/blazz.yaml") in svc
    timer = parse_unit(files[units.SYNC_TIMER_UNIT])
    assert value(timer["Timer"], "OnCalendar") == "*-*-* 03:00:00"
    assert value(timer["Timer"], "Persistent") == "true"
    assert value(timer["Install"], "WantedBy") == "timers.target"


@needs_analyze
def test_sync_units_verify_and_are_hardened(tmp_path):
    where = tmp_path / "rendered"
    units.write(units.render(Settings(), instances=1, prefix=tmp_path / "nowhere"), where)
    done = analyze("verify", str(where / units.SYNC_UNIT), str(where / units.SYNC_TIMER_UNIT))
    lines = (done.stdout + done.stderr).splitlines()
    assert lines == [f"{units.SYNC_UNIT}: Command {tmp_path}/nowhere/current/venv/bin/blazzctl is not executable: "
                     "No such file or directory"]
    security = analyze("security", "--offline=yes", str(where / units.SYNC_UNIT))
    match = re.search(r"Overall exposure level for blazz-sync\.service: (\d+\.\d+)", security.stdout)
    assert match and float(match.group(1)) <= 2.0, security.stdout


def test_install_does_not_enable_the_sync_timer(cli, tmp_path, stand_in_systemctl, config_here):
    env = {"SYSTEMCTL": str(stand_in_systemctl.path)}
    result = cli("units", "install", "-n", "1", "--dest", str(tmp_path / "s"), env=env)
    assert result.code == 0, result
    assert (tmp_path / "s" / units.SYNC_TIMER_UNIT).is_file()
    assert not any("blazz-sync" in call for call in stand_in_systemctl.calls())


# --- the configuration the units name -------------------------------------------------------


def _config_env(text: str) -> str:
    (found,) = [v for k, v in parse_unit(text)["Service"] if k == "Environment" and v.startswith("BLAZZ_CONFIG=")]
    return found


@pytest.mark.parametrize("how", ["-c relative", "-c absolute", "BLAZZ_CONFIG", "lookup ./blazz.yaml"])
def test_units_name_the_configuration_the_operator_chose(cli, tmp_path, how):
    chosen = tmp_path / "etc" / "chosen.yaml"
    chosen.parent.mkdir()
    chosen.write_text("daemon:\n  instances: 3\n")
    args, env = [], {}
    if how == "-c relative":
        args = ["-c", "etc/chosen.yaml"]
    elif how == "-c absolute":
        args = ["-c", str(chosen)]
    elif how == "BLAZZ_CONFIG":
        env = {"BLAZZ_CONFIG": "etc/chosen.yaml"}
    else:
        chosen = tmp_path / "blazz.yaml"
        chosen.write_text("daemon:\n  instances: 3\n")
    result = cli("units", "render", "--json", *args, env=env)
    assert result.code == 0, result
    for name in (units.TEMPLATE, units.SYNC_UNIT):
        assert _config_env(result.json()["units"][name]) == f"BLAZZ_CONFIG={chosen}"
    assert "for 3 instance(s)" in result.json()["units"][units.TEMPLATE]  # and read from it


def test_without_a_configuration_file_the_units_name_etc_blazz(cli):
    result = cli("units", "render", "--json")
    assert _config_env(result.json()["units"][units.TEMPLATE]) == "BLAZZ_CONFIG=/etc/blazz/blazz.yaml"


def test_install_refuses_a_configuration_that_does_not_exist(cli, tmp_path, stand_in_systemctl):
    dest = tmp_path / "system"
    result = cli("units", "install", "-n", "1", "--user", "root", "--dest", str(dest),
                 env={"SYSTEMCTL": str(stand_in_systemctl.path)})
    assert result.code == 78, result
    assert "/etc/blazz/blazz.yaml: -: the file does not exist" in result.stderr, result
    assert "-c PATH" in result.stderr
    assert not dest.exists() and stand_in_systemctl.calls() == []


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to other users needs root")


@pytest.fixture
def open_dir():
    """A directory every user may enter (pytest's tmp_path is under a 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="blazz-units-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@needs_root
def test_install_refuses_a_configuration_the_service_user_cannot_read(cli, tmp_path, open_dir, stand_in_systemctl):
    config = open_dir / "blazz.yaml"
    config.write_text("daemon:\n  instances: 1\n")
    config.chmod(0o600)  # root's: root (running this) reads it, nobody does not
    dest = tmp_path / "system"
    env = {"SYSTEMCTL": str(stand_in_systemctl.path)}
    result = cli("units", "install", "-n", "1", "--user", "nobody", "-c", str(config), "--dest", str(dest), env=env)
    assert result.code == 78, result
    assert f"{config}: -: user 'nobody' cannot read it (mode 0600, owner root:root)" in result.stderr
    assert f"chgrp nobody {config}" in result.stderr
    assert not dest.exists() and stand_in_systemctl.calls() == []

    os.chown(config, 0, grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_gid)
    config.chmod(0o640)  # its group now: readable
    result = cli("units", "install", "-n", "1", "--user", "nobody", "-c", str(config), "--dest", str(dest), env=env)
    assert result.code == 0, result
    assert f"Environment=BLAZZ_CONFIG={config}\n" in (dest / units.TEMPLATE).read_text()

    check = cli("units", "check", "--user", "nobody", "-c", str(config), "--json", env=env)
    assert check.code == 0, check
    assert [c["ok"] for c in check.json()["checks"]] == [True, True, True]


@needs_root
def test_a_directory_the_user_cannot_enter_is_named(tmp_path, open_dir):
    from blazzctl.services import file_access

    inner = open_dir / "private"
    inner.mkdir(mode=0o700)
    (inner / "blazz.yaml").write_text("{}\n")
    (inner / "blazz.yaml").chmod(0o644)
    nobody = file_access.user_ids("nobody")
    assert file_access.unreadable_reason(inner / "blazz.yaml", nobody) == \
        f"user 'nobody' cannot enter {inner} (mode 0700, owner root:root)"
    assert file_access.unreadable_reason(inner / "blazz.yaml", file_access.user_ids("root")) is None


@needs_root
@pytest.mark.parametrize("owner, group, mode, readable", [
    (4242, 0, 0o400, True),      # the owner
    (4242, 0, 0o040, False),     # the owner class decides, even when the group could read
    (0, 4343, 0o040, True),      # a supplementary group
    (0, 4444, 0o044, True),      # others
    (0, 4444, 0o440, False),     # neither owner nor group: others' bits, none
], ids=["owner", "owner-class-first", "supplementary-group", "other", "nobody-bit"])
def test_permission_classes_as_the_kernel_applies_them(open_dir, owner, group, mode, readable):
    from blazzctl.services import file_access

    path = open_dir / "blazz.yaml"
    path.write_text("{}\n")
    os.chown(path, owner, group)
    path.chmod(mode)
    user = file_access.UserIds("svc", 4242, frozenset({4242, 4343}))
    assert (file_access.unreadable_reason(path, user) is None) is readable


def test_a_configuration_under_home_keeps_home_visible_read_only():
    unit = parse_unit(units.render(Settings(), instances=1, prefix="/opt/blazz",
                                   config_file="/home/ops/blazz.yaml")[units.TEMPLATE])
    assert value(unit["Service"], "ProtectHome") == "read-only"
    unit = parse_unit(units.render(Settings(), instances=1, prefix="/opt/blazz",
                                   config_file="/etc/blazz/blazz.yaml")[units.TEMPLATE])
    assert value(unit["Service"], "ProtectHome") == "yes"


def test_install_warns_about_a_configuration_in_tmp(cli, tmp_path, stand_in_systemctl, config_here):
    result = cli("units", "install", "-n", "1", "--user", "root", "--dest", str(tmp_path / "s"),
                 env={"SYSTEMCTL": str(stand_in_systemctl.path)})
    assert result.code == 0, result
    assert "PrivateTmp=yes" in result.stderr and str(config_here) in result.stderr
