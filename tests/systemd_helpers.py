"""A host's systemd for tests: the stand-in ``tests/fakes/systemctl`` over a unit directory.

``FakeSystemd(root)`` gives the environment that makes `blazzctl units install --dest`,
`blazzctl daemon restart` and `deploy.sh` use the stand-in, drop-ins to point the units at a
test configuration, the daemons' pids, and ``close()``, which kills whatever it started.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parent.parent
SYSTEMCTL = REPO / "tests" / "fakes" / "systemctl"


class FakeSystemd:
    def __init__(self, root: Path) -> None:
        self.unit_dir = root / "system"
        self.run_dir = root / "run"
        self.unit_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(parents=True, exist_ok=True)

    @property
    def env(self) -> dict[str, str]:
        return {"SYSTEMCTL": str(SYSTEMCTL), "FAKE_SYSTEMD_UNIT_DIR": str(self.unit_dir),
                "FAKE_SYSTEMD_RUN_DIR": str(self.run_dir)}

    def drop_in(self, environment: dict[str, str], *, unit: str = "blazz-session@.service",
                name: str = "test.conf") -> Path:
        """An override as an operator would write it: ``Environment=`` lines for ``unit``."""
        path = self.unit_dir / f"{unit}.d" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("[Service]\n" + "".join(f'Environment="{k}={v}"\n' for k, v in environment.items()))
        return path

    def systemctl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([str(SYSTEMCTL), *args], capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **self.env})

    def calls(self) -> list[str]:
        log = self.run_dir / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def pid(self, instance: int) -> int | None:
        """The running main pid of blazz-session@N, or None."""
        try:
            pid = int((self.run_dir / f"blazz-session@{instance}.service.pid").read_text().split()[0])
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def cmdline(self, instance: int) -> list[str]:
        pid = self.pid(instance)
        return psutil.Process(pid).cmdline() if pid else []

    def log(self, instance: int, lines: int = 30) -> str:
        path = self.run_dir / f"blazz-session@{instance}.service.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def logs(self) -> str:
        found = sorted(self.run_dir.glob("blazz-session@*.service.log"))
        return "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-20:])
                         for p in found)

    def close(self) -> None:
        """SIGKILL every daemon group the stand-in started (tests never leave one behind)."""
        for pid_file in self.run_dir.glob("blazz-session@*.service.pid"):
            try:
                pid = int(pid_file.read_text().split()[0])
                os.killpg(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass


def host_config(root: Path, url: str, *, daemon: dict | None = None) -> Path:
    """A host's configuration: the fake provider and short timings (``daemon_helpers.write_config``)
    plus a shared session key file, so `blazzctl health` can be OK on MariaDB."""
    from blazzctl import keys
    from tests.daemon_helpers import write_config

    path = write_config(root / "blazz.yaml", url=url, journal=root / "journal.jsonl", state_dir=root / "state",
                        daemon=daemon)
    key = root / "session.key"
    keys.generate(key)
    config = yaml.safe_load(path.read_text())
    config["secrets"] = {"session_key_file": str(key)}
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path
