"""Real session daemons driving the built-in ``webjs`` provider (real Chromium) against the fake WhatsApp Web.

Builds on ``tests/daemon_helpers.py``: ``WebjsFleet`` is a ``Fleet`` whose configs use the default
driver pointed at the fake, and whose kills take the daemon's Chromium processes with it (Playwright
starts Chromium detached, in its own process group, so killing the daemon alone would leave it
running, which a host crash or systemd's cgroup kill would not).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psutil
import yaml

from tests.daemon_helpers import FAST, REPO, Daemon, Fleet, wait_for

# Leases of 6 s renewed every 0.5 s: a SIGKILLed owner's accounts are free again within ~6 s.
WEBJS_FAST = {**FAST, "lease_ttl": 6.0, "drain_timeout": 15.0}


def write_webjs_config(path: Path, *, url: str, fake_url: str, state_dir: Path, host: str,
                       key_file: Path | None = None, daemon: dict | None = None, webjs: dict | None = None,
                       level: str = "info") -> Path:
    """A daemon config with the built-in WhatsApp Web driver pointed at the fake."""
    config: dict[str, Any] = {
        "database": {"url": url},
        "daemon": {**WEBJS_FAST, **(daemon or {}), "host": host, "state_dir": str(state_dir)},
        "providers": {"webjs": {"url": fake_url, "checkpoint_interval": 10, "start_timeout": 30,
                                **(webjs or {})}},
        "webhooks": {"enabled": False},
        "logging": {"level": level, "format": "text"},
    }
    if key_file is not None:
        config["secrets"] = {"session_key_file": str(key_file)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def browser_processes(pid: int) -> list[psutil.Process]:
    """Every descendant of ``pid`` (Playwright's driver and the Chromium trees it launched)."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def kill_processes(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def profile_processes(pid: int, profile: Path) -> list[psutil.Process]:
    """The Chromium processes of one profile among ``pid``'s descendants (the browser and its children)."""
    marker = f"--user-data-dir={profile}"
    roots = []
    for proc in browser_processes(pid):
        try:
            if marker in proc.cmdline():
                roots.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    found = {p.pid: p for p in roots}
    for root in roots:
        for child in browser_processes(root.pid):
            found.setdefault(child.pid, child)
    return list(found.values())


class WebjsFleet(Fleet):
    """Session daemons with the real provider; ``close()`` kills them and their browsers."""

    def __init__(self, root: Path, url: str, fake_url: str, *, key_file: Path | None = None,
                 daemon: dict | None = None, webjs: dict | None = None, level: str = "info",
                 python: str | None = None) -> None:
        super().__init__(root, url, daemon=daemon, level=level, python=python)
        self.fake_url = fake_url
        self.key_file = key_file
        self.webjs = webjs or {}

    def config_for(self, host: str, *, key_file: Path | None = None, webjs: dict | None = None) -> Path:
        path = self.root / f"{host}.yaml"
        if not path.exists():
            write_webjs_config(path, url=self.url, fake_url=self.fake_url, state_dir=self.state_dir(host),
                               host=host, key_file=key_file or self.key_file, daemon=self.daemon_settings,
                               webjs={**self.webjs, **(webjs or {})}, level=self.level)
        return path

    def state_dir(self, host: str) -> Path:
        return self.root / "state" / host

    def profile(self, host: str, session_id: str, instance: int = 1) -> Path:
        return self.state_dir(host) / f"session-{instance}" / "profiles" / session_id

    def start(self, instance: int, *, host: str = "host-a", key_file: Path | None = None,
              webjs: dict | None = None) -> Daemon:
        self.config_for(host, key_file=key_file, webjs=webjs)
        return super().start(instance, host=host)

    def kill(self, daemon: Daemon) -> float:
        """SIGKILL the daemon and every process it started (its Chromium browsers too)."""
        children = browser_processes(daemon.pid)
        t = super().kill(daemon)
        kill_processes(children + [p for c in children for p in browser_processes(c.pid)])
        return t

    def close(self) -> None:
        doomed = {d.name: browser_processes(d.pid) for d in self.daemons.values() if d.alive()}
        super().close()
        kill_processes([p for procs in doomed.values() for p in procs])


# --- the database -----------------------------------------------------------------------------------

def account_row(db, account_id: int) -> dict[str, Any]:
    from sqlalchemy import select

    from blazzctl.models import WhatsAppAccount as A

    with db.session() as s:
        row = s.execute(select(A.status, A.status_reason, A.qr_code, A.qr_expires_at, A.phone_number,
                               A.push_name, A.owner, A.lease_epoch, A.last_error, A.auth_saved_at,
                               A.desired_state)
                        .where(A.id == account_id)).one()
    return {k: (str(v) if k in ("status", "desired_state") else v) for k, v in row._mapping.items()}


def archive_count(db, account_id: int) -> tuple[int, int]:
    """(archives of the account, chunks in the whole table: orphans count too)."""
    from sqlalchemy import func, select

    from blazzctl.models import AuthArchive, AuthArchiveChunk

    with db.session() as s:
        archives = s.scalar(select(func.count()).select_from(AuthArchive)
                            .where(AuthArchive.whatsapp_account_id == account_id))
        chunks = s.scalar(select(func.count()).select_from(AuthArchiveChunk))
    return archives or 0, chunks or 0


class Recorder:
    """Polls an account's row in a thread: every distinct (status, reason, qr_code, owner, epoch) it passes."""

    def __init__(self, db, account_id: int, interval: float = 0.05) -> None:
        self.db, self.account_id, self.interval = db, account_id, interval
        self.seen: list[tuple[str, str | None, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                row = account_row(self.db, self.account_id)
            except Exception:  # noqa: BLE001 - a busy SQLite file: try again
                row = None
            if row is not None:
                now = (row["status"], row["status_reason"], row["qr_code"], row["owner"], row["lease_epoch"])
                if not self.seen or self.seen[-1] != now:
                    self.seen.append(now)
            self._stop.wait(self.interval)

    def __enter__(self) -> "Recorder":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def reached(self, status: str, owner: str) -> bool:
        """Whether ``owner`` brought the account to ``status`` after starting a session of its own."""
        started = False
        for seen in self.seen:
            if seen[3] == owner and seen[0] == "starting":
                started = True
            elif started and seen[3] == owner and seen[0] == status:
                return True
        return False

    def statuses(self) -> list[str]:
        return [seen[0] for seen in self.seen]

    def qrs(self) -> list[str]:
        return [seen[2] for seen in self.seen if seen[2]]


def wait_status(db, account_id: int, status: str | set[str], timeout: float, fleet: Fleet | None = None) -> dict:
    wanted = {status} if isinstance(status, str) else status

    def reached():
        row = account_row(db, account_id)
        return row if row["status"] in wanted else None

    def why() -> str:
        try:
            row = account_row(db, account_id)
        except Exception as exc:  # noqa: BLE001
            row = repr(exc)
        return f"account {account_id} in {sorted(wanted)}; now {row}" + (f"\n{fleet.logs(40)}" if fleet else "")

    return wait_for(reached, timeout, interval=0.1, message=why)


def wait_qr(db, account_id: int, timeout: float, fleet: Fleet | None = None, *, other_than: str | None = None) -> str:
    def shown():
        qr = account_row(db, account_id)["qr_code"]
        return qr if qr and qr != other_than else None

    return wait_for(shown, timeout, interval=0.1,
                    message=lambda: f"a QR on account {account_id}; now {account_row(db, account_id)}"
                    + (f"\n{fleet.logs(40)}" if fleet else ""))


def devices_of(fake, phone: str) -> list[dict]:
    """The linked devices the fake's "servers" know for ``phone`` (each link makes one)."""
    return fake.state()["accounts"].get(phone.lstrip("+"), {}).get("devices", [])


# --- QR codes ----------------------------------------------------------------------------------------

def zbarimg() -> str | None:
    """The zbarimg binary, installed through apt when missing (None when it cannot be)."""
    found = shutil.which("zbarimg")
    if found or os.geteuid() != 0:
        return found
    for args in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "zbar-tools"]):
        try:
            subprocess.run(args, capture_output=True, timeout=300, check=False,
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        except (OSError, subprocess.TimeoutExpired):
            return None
    return shutil.which("zbarimg")


def decode_qr_image(path: Path) -> list[str]:
    """The QR payloads zbarimg reads in an image file."""
    proc = subprocess.run([zbarimg() or "zbarimg", "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(path)],
                          capture_output=True, text=True, timeout=60)
    return [line for line in proc.stdout.splitlines() if line]


HALF_BLOCKS = {"█": (1, 1), "▀": (1, 0), "▄": (0, 1), " ": (0, 0)}  # (top light, bottom light)


def terminal_qr_to_pbm(lines: list[str], path: Path, scale: int = 8) -> Path:
    """Turn a half-block QR drawn by ``blazzctl account connect`` back into an image (PBM, light = block).

    The terminal draws light modules as blocks in its (light) foreground colour on a dark
    background; a camera sees the blocks as the light squares, which is what this reproduces.
    """
    width = max(len(line) for line in lines)
    rows: list[list[int]] = []
    for line in lines:
        cells = [HALF_BLOCKS[ch] for ch in line.ljust(width)]
        rows.append([1 - top for top, _ in cells])      # PBM: 1 is black (dark module)
        rows.append([1 - bottom for _, bottom in cells])
    margin = 4  # extra light quiet zone around the drawing
    width_px = (width + 2 * margin) * scale
    out = [f"P1\n{width_px} {(len(rows) + 2 * margin) * scale}\n"]
    blank = " ".join("0" * width_px)
    for _ in range(margin * scale):
        out.append(blank + "\n")
    for row in rows:
        line = " ".join(["0"] * (margin * scale) + [str(v) for v in row for _ in range(scale)]
                        + ["0"] * (margin * scale))
        out.extend(line + "\n" for _ in range(scale))
    for _ in range(margin * scale):
        out.append(blank + "\n")
    path.write_text("".join(out))
    return path


def qr_blocks(text: str) -> list[list[str]]:
    """Each QR drawing in ``connect``'s output: runs of lines made only of half-block characters."""
    drawings, current = [], []
    for line in text.splitlines():
        if line and set(line) <= set(HALF_BLOCKS) and set(line) & {"█", "▀", "▄"}:
            current.append(line)
        else:
            if len(current) >= 10:
                drawings.append(current)
            current = []
    if len(current) >= 10:
        drawings.append(current)
    return drawings


# --- the CLI as a subprocess, its output read while it runs --------------------------------------------

class LiveCommand:
    """``python -m blazzctl ARGS`` in the background; its stdout collected line by line."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("BLAZZ_")}
        full_env.update(env)
        full_env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [full_env.get("PYTHONPATH")])])
        self.proc = subprocess.Popen([sys.executable, "-m", "blazzctl", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, encoding="utf-8", env=full_env)
        self.lines: list[str] = []
        self.stderr = ""
        self._out = threading.Thread(target=self._read, daemon=True)
        self._out.start()
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._err.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def _read_err(self) -> None:
        self.stderr = self.proc.stderr.read()

    @property
    def stdout(self) -> str:
        return "\n".join(self.lines)

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout)
        self._out.join(5)
        self._err.join(5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def wait_until(predicate, timeout: float, message: str = "condition") -> Any:
    """``wait_for`` polling every 0.1 s (used by tests/test_webjs_messaging.py)."""
    return wait_for(predicate, timeout, interval=0.1, message=message)
