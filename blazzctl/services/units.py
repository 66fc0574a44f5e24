"""systemd units for the session daemons: render them from the settings, install and enable them.

The units are templates in ``unit_templates`` (so an installed release can render its own), and
``units/`` in the repository holds them rendered with the defaults for the deploy layout
(``/opt/blazz/current/venv``); a test keeps the two in step.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from blazzctl.errors import ConfigError, InvalidInput, OperationFailed
from blazzctl.services.unit_templates import (API_SERVICE, HARDENING, SERVICE, STRICT, SYNC_SERVICE, SYNC_TIMER,
                                              TARGET_UNIT)
from blazzctl.settings import DaemonSettings, Settings

SYSTEM_DIR = Path("/etc/systemd/system")
TEMPLATE = "blazz-session@.service"
TARGET = "blazz.target"
SYNC_UNIT = "blazz-sync.service"
SYNC_TIMER_UNIT = "blazz-sync.timer"
API_UNIT = "blazz-api.service"
API_STOP_SEC = 50  # blazz-api's drain (35 s, blazzctl.api.server.GRACE) and a margin
DEFAULT_USER = "blazz"
CONFIG_FILE = "/etc/blazz/blazz.yaml"
MAX_INSTANCES = 64

RESTART_SEC = 5
TIMEOUT_START_SEC = 60  # database connection plus the first claim round, before READY=1
START_LIMIT_BURST = 5
STOP_MARGIN_SEC = 15  # TimeoutStopSec = drain budget + this: closing Chromium after the last release
TASKS_PER_ACCOUNT = 200  # one Chromium tree per account: ~9 processes with their threads
TASKS_BASE = 512
SYNC_ON_CALENDAR = "*-*-* 03:00:00"  # daily at 03:00 (the timer is opt-in: sync.schedule is the other way)
SYNC_WAIT_SEC = 3000  # how long `sync run --wait` waits; the unit's start timeout is a little longer

_USER = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,30}")
_PATH_CHARS = re.compile(r"[A-Za-z0-9_./@+,:=~ -]+")
_INSTANCE_LINK = re.compile(r"blazz-session@(\d+)\.service")


@dataclass(frozen=True)
class Timings:
    """The unit's time settings, in seconds, derived from the daemon settings."""

    watchdog: int
    timeout_abort: int
    restart: int
    timeout_start: int
    timeout_stop: int
    start_limit_burst: int
    start_limit_interval: int


ABORT_SEC = 1  # TimeoutAbortSec: after the watchdog's SIGABRT, SIGKILL to the whole cgroup


def watchdog_sec(lease_ttl: float) -> int:
    """WatchdogSec: 0.4 x lease TTL. The daemon pings only while its last renewal is younger than
    TTL - WatchdogSec - 0.15 x TTL (claimer.Claimer.may_ping), so a daemon frozen after its last
    ping is killed, Chromium included, by 0.85 x TTL + TimeoutAbortSec: before its leases expire."""
    return max(1, math.floor(0.4 * lease_ttl))


def timings(daemon: DaemonSettings) -> Timings:
    """WatchdogSec inside the fence deadline (``watchdog_sec``); a start limit a crash loop really reaches."""
    # Each start that fails (at worst after TimeoutStartSec) is followed by RestartSec, so
    # Burst restarts take at most Burst x (RestartSec + TimeoutStartSec): the interval must
    # be longer, or the limit never trips and a crash loop runs forever.
    loop = START_LIMIT_BURST * (RESTART_SEC + TIMEOUT_START_SEC)
    return Timings(
        watchdog=watchdog_sec(daemon.lease_ttl),
        timeout_abort=ABORT_SEC,
        restart=RESTART_SEC,
        timeout_start=TIMEOUT_START_SEC,
        timeout_stop=math.ceil(daemon.drain_timeout) + STOP_MARGIN_SEC,
        start_limit_burst=START_LIMIT_BURST,
        start_limit_interval=30 * math.ceil((loop + 60) / 30),
    )


def exec_path(prefix: Path | str | None) -> Path:
    """The daemon's executable: in the deploy layout under ``prefix``, else beside this Python."""
    if prefix is None:
        return Path(sys.executable).absolute().parent / "blazz-sessiond"
    return Path(prefix).absolute() / "current" / "venv" / "bin" / "blazz-sessiond"


def config_file_of(settings: Settings) -> str:
    """The configuration the daemons must read: the file these settings came from (``-c PATH``,
    ``$BLAZZ_CONFIG`` or the default lookup), absolute, since systemd starts them in ``/``;
    ``/etc/blazz/blazz.yaml`` when no file was found (defaults)."""
    return os.path.abspath(settings.source) if settings.source else CONFIG_FILE


def render(settings: Settings, *, instances: int, prefix: Path | str | None = None,
           user: str = DEFAULT_USER, config_file: str | None = None) -> dict[str, str]:
    """The unit files as ``{file name: text}``. Raises InvalidInput for bad options.

    ``config_file`` (default: ``config_file_of(settings)``) becomes ``BLAZZ_CONFIG`` of every unit.
    """
    check_instances(instances)
    check_user(user)
    config_file = config_file or config_file_of(settings)
    exe = exec_path(prefix)
    daemon = settings.daemon
    t = timings(daemon)
    high, max_ = _memory_limits(daemon, instances)
    where = f"prefix {Path(prefix).absolute()}" if prefix is not None else f"the Python in {exe.parent}"
    values = dict(
        origin=f"# Rendered by `blazzctl units render` for {instances} instance(s), {where}.",
        exec_start=f"{_quoted_path(str(exe), 'the executable path')} --instance %i",
        user=user, config_env=_quoted_env("BLAZZ_CONFIG", config_file),
        protect_home=_protect_home(exe, Path(config_file)), memory_high=high, memory_max=max_,
        tasks_max=TASKS_BASE + TASKS_PER_ACCOUNT * daemon.capacity, drain=_seconds(daemon.drain_timeout),
        sync_exec_start=f"{_quoted_path(str(exe.parent / 'blazzctl'), 'the blazzctl path')} sync run --all --wait "
                        f"--quiet --timeout {SYNC_WAIT_SEC}",
        sync_on_calendar=SYNC_ON_CALENDAR, t_sync_timeout=SYNC_WAIT_SEC + 120,
        api_exec_start=_quoted_path(str(exe.parent / "blazz-api"), "the blazz-api path"),
        t_api_timeout_stop=API_STOP_SEC,
        **{f"t_{name}": value for name, value in vars(t).items()},
    )
    values = {**values, "hardening": HARDENING.format(**values), "strict": STRICT}
    return {TARGET: TARGET_UNIT.format(**values), TEMPLATE: SERVICE.format(**values),
            SYNC_UNIT: SYNC_SERVICE.format(**values), SYNC_TIMER_UNIT: SYNC_TIMER.format(**values),
            API_UNIT: API_SERVICE.format(**values)}


def check_instances(instances: int) -> int:
    if isinstance(instances, bool) or not isinstance(instances, int) or not 1 <= instances <= MAX_INSTANCES:
        raise InvalidInput(f"instances must be a whole number from 1 to {MAX_INSTANCES}, not {instances!r}",
                           hint="Give --instances N, or set daemon.instances in the configuration.")
    return instances


def check_user(user: str) -> str:
    if not _USER.fullmatch(user or ""):
        raise InvalidInput(f"{user!r} is not a valid user name",
                           hint="Give --user NAME: a letter or _, then letters, digits, _ or -, at most 31.")
    return user


# --- writing and installing --------------------------------------------------------------


@dataclass
class InstallResult:
    dest: Path
    files: dict[str, str]  # file name -> created | updated | unchanged
    commands: list[list[str]] = field(default_factory=list)
    enabled: list[str] = field(default_factory=list)
    disabled: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def write(units: Mapping[str, str], dest: Path) -> dict[str, str]:
    """Write the unit files into ``dest`` (atomically, 0644); returns what happened to each."""
    status: dict[str, str] = {}
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for name, text in units.items():
            path = dest / name
            old = path.read_text(encoding="utf-8") if path.is_file() else None
            status[name] = "unchanged" if old == text else "created" if old is None else "updated"
            if old == text:
                continue
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.chmod(0o644)
            os.replace(tmp, path)
    except OSError as error:
        raise OperationFailed(f"cannot write the unit files into {dest}: {error.strerror or error}",
                              hint="Run as root for /etc/systemd/system, or give --dest DIR.") from None
    return status


def find_systemctl(environ: Mapping[str, str] | None = None) -> str:
    """``$SYSTEMCTL`` when set, else ``systemctl`` from PATH. Raises OperationFailed when missing."""
    environ = os.environ if environ is None else environ
    given = environ.get("SYSTEMCTL")
    found = shutil.which(given, path=environ.get("PATH")) if given else shutil.which(
        "systemctl", path=environ.get("PATH"))
    if not found:
        what = f"SYSTEMCTL={given!r} is not an executable" if given else "systemctl was not found on PATH"
        raise OperationFailed(f"{what}; nothing was installed",
                              hint="Install systemd, or set SYSTEMCTL to the systemctl to use.")
    return found


def install(settings: Settings, *, instances: int, prefix: Path | str | None = None,
            user: str = DEFAULT_USER, dest: Path = SYSTEM_DIR,
            environ: Mapping[str, str] | None = None, api: bool = False) -> InstallResult:
    """Write the units, reload systemd, enable blazz.target and instances 1..N (and blazz-api.service
    with ``api``: a host serves the HTTP API only when asked to; one enabled before stays so).

    blazz-sync.timer is written but not enabled: it is the alternative to ``sync.schedule``
    (enable it with ``systemctl enable --now blazz-sync.timer``).

    Instances above N that are enabled in ``dest`` (links in ``blazz.target.wants``) are
    disabled and stopped, so shrinking N takes effect. Safe to run again.
    """
    config_file = config_file_of(settings)
    units = render(settings, instances=instances, prefix=prefix, user=user, config_file=config_file)
    config = check_config(config_file, user=user)
    if not config.ok:
        raise ConfigError([(config_file, "-", config.detail)], hint=_config_hint(config_file, user))
    systemctl = find_systemctl(environ)
    result = InstallResult(dest=dest, files=write(units, dest))
    wanted = [f"blazz-session@{n}.service" for n in range(1, instances + 1)]
    stale = _enabled_instances_above(dest, instances)
    _systemctl(result, systemctl, "daemon-reload")
    _systemctl(result, systemctl, "enable", TARGET)
    _systemctl(result, systemctl, "enable", *wanted)
    result.enabled = [TARGET, *wanted]
    if api:
        _systemctl(result, systemctl, "enable", API_UNIT)
        result.enabled.append(API_UNIT)
    if stale:
        _systemctl(result, systemctl, "disable", "--now", *stale)
        result.disabled = stale
    if not _user_exists(user):
        result.warnings.append(f"user {user!r} does not exist on this host (so whether it can read "
                               f"{config_file} was not checked): create it, e.g. "
                               f"useradd --system --home-dir /var/lib/blazz --shell /usr/sbin/nologin {user}")
    result.warnings += config.warnings
    return result


# --- what the units need on this host ----------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    warnings: tuple[str, ...] = ()


def check_host(settings: Settings, *, user: str = DEFAULT_USER,
               environ: Mapping[str, str] | None = None) -> list[Check]:
    """What ``install`` needs, checked without writing anything: the configuration the units
    will name, readable by ``user``; that user; systemctl."""
    check_user(user)
    checks = [check_config(config_file_of(settings), user=user),
              Check("user", True, f"{user!r} exists") if _user_exists(user)
              else Check("user", False, f"user {user!r} does not exist on this host")]
    checks.append(_check_systemd(environ))
    return checks


def _check_systemd(environ: Mapping[str, str] | None) -> Check:
    environ = os.environ if environ is None else environ
    try:
        systemctl = find_systemctl(environ)
    except OperationFailed as error:
        return Check("systemctl", False, error.message)
    # sd_booted(): systemctl alone (a container, a chroot) does not mean systemd runs the host.
    # $SYSTEMCTL names a stand-in on purpose, so only the real one is held to it.
    if not environ.get("SYSTEMCTL") and not Path("/run/systemd/system").is_dir():
        return Check("systemctl", False, f"{systemctl} is installed but systemd is not running this host "
                                         "(no /run/systemd/system): run the daemons with `blazzctl daemon run`")
    return Check("systemctl", True, systemctl)


def check_config(config_file: str, *, user: str) -> Check:
    """Whether ``user`` (the daemons' ``User=``) can read ``config_file``, judged by its ids, not ours."""
    from blazzctl.services import file_access

    ids = file_access.user_ids(user)
    if ids is None:  # nobody to check as: at least the file must be there
        ok = os.path.isfile(config_file)
        reason = None if ok else "the file does not exist"
    else:
        reason = file_access.unreadable_reason(config_file, ids)
    if reason is not None:
        return Check("config", False, reason)
    # PrivateTmp=yes gives the daemons a /tmp of their own: a file in the host's /tmp is not there.
    warnings: tuple[str, ...] = ()
    if any(d in Path(config_file).parents for d in (Path("/tmp"), Path("/var/tmp"))):
        warnings = (f"{config_file} is in a temporary directory, which the units hide (PrivateTmp=yes): "
                    "under systemd the daemons will not find it; keep the configuration in /etc/blazz",)
    readable = f"readable by {user!r}" if ids is not None else "exists"
    return Check("config", True, f"{config_file} {readable}", warnings)


def _config_hint(config_file: str, user: str) -> str:
    return (f"The units run the daemons as {user!r} with BLAZZ_CONFIG={config_file}. Create the file, or "
            f"let {user!r} read it (e.g. chgrp {user} {config_file} && chmod 0640 {config_file}, and "
            "search permission on its directories), or choose another one with -c PATH or $BLAZZ_CONFIG.")


def _systemctl(result: InstallResult, systemctl: str, *args: str) -> None:
    command = [systemctl, *args]
    result.commands.append(command)
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise OperationFailed(f"`systemctl {' '.join(args)}` could not run: {error}",
                              hint=f"The unit files are in {result.dest}; fix this and run the install again.") from None
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip() or "no output"
        raise OperationFailed(f"`systemctl {' '.join(args)}` failed (exit {done.returncode}): {detail}",
                              hint=f"The unit files are in {result.dest}; fix this and run the install again.")


def _enabled_instances_above(dest: Path, instances: int) -> list[str]:
    wants = dest / f"{TARGET}.wants"
    found = []
    for link in wants.glob("blazz-session@*.service") if wants.is_dir() else ():
        match = _INSTANCE_LINK.fullmatch(link.name)
        if match and int(match.group(1)) > instances:
            found.append((int(match.group(1)), link.name))
    return [name for _, name in sorted(found)]


def _user_exists(user: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


# --- template details ---------------------------------------------------------------------


def _memory_limits(daemon: DaemonSettings, instances: int) -> tuple[str, str]:
    """MemoryHigh (throttle) and MemoryMax (OOM kill) per instance."""
    if daemon.memory_budget_mb:
        # The daemon stops claiming at its budget; sessions it holds may still grow a little.
        return f"{math.ceil(daemon.memory_budget_mb * 1.25)}M", f"{math.ceil(daemon.memory_budget_mb * 1.5)}M"
    # No budget: share the host's memory between the instances, leaving room for the rest.
    return _percent(70 / instances), _percent(85 / instances)


def _percent(value: float) -> str:
    return f"{max(value, 0.1):.1f}%".replace(".0%", "%")


def _protect_home(*paths: Path) -> str:
    # ProtectHome=yes hides /home, /root and /run/user: the daemon must still be able to run
    # when it (a developer's virtualenv) or its configuration is there.
    hidden = (Path("/home"), Path("/root"), Path("/run/user"))
    return "read-only" if any(p == h or h in p.parents for p in paths for h in hidden) else "yes"


def _quoted_path(value: str, what: str) -> str:
    if not value.startswith("/") or not _PATH_CHARS.fullmatch(value):
        raise InvalidInput(f"{what} {value!r} must be absolute and use only letters, digits, spaces "
                           "and _ . / @ + , : = ~ -", hint="Install under a plainer directory.")
    return f'"{value}"' if " " in value else value


def _quoted_env(name: str, value: str) -> str:
    quoted = _quoted_path(value, name)
    return f'"{name}={value}"' if quoted != value else f"{name}={value}"


def _seconds(value: float) -> str:
    return f"{value:g}"
