"""Run N session daemons in the foreground, for machines without systemd (development, quick start).

Children run in their own process group, so a Ctrl-C reaches only the supervisor, which
passes one SIGTERM to each child: they drain (close sessions, release leases) and exit.
A second Ctrl-C passes a second SIGTERM, which makes the children exit at once. A child
that dies on its own is started again after a growing backoff, except one refused because its
instance already runs (another supervisor, or systemd): that is said once and left alone,
since starting it again would only be refused again.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

log = logging.getLogger("blazz.supervisor")

MAX_BACKOFF = 30.0
TWIN_EXIT = 4  # blazz-sessiond's exit code (Conflict) when a live daemon already has its name


@dataclass
class Child:
    instance: int
    proc: subprocess.Popen | None = None
    failures: int = 0
    restart_at: float = 0.0
    started_at: float = field(default_factory=time.monotonic)
    elsewhere: bool = False  # the instance runs under another supervisor: not ours to start


class Supervisor:
    def __init__(self, instances: int, *, config: str | None = None, out=sys.stderr,
                 running: Mapping[int, str] | None = None) -> None:
        """``running``: instances already running elsewhere, with what to say about each."""
        self.children = [Child(i) for i in range(1, instances + 1)]
        self.config = config
        self.out = out
        self.logs = None  # a file for the children's output (quickstart keeps its terminal clear); None: ours
        self.signals = 0
        for child in self.children:
            if running and child.instance in running:
                self._leave(child, running[child.instance])

    def command(self, instance: int) -> list[str]:
        cmd = [sys.executable, "-m", "daemons.session", "--instance", str(instance)]
        return cmd + (["--config", self.config] if self.config else [])

    def _spawn(self, child: Child) -> None:
        child.proc = subprocess.Popen(self.command(child.instance), start_new_session=True, stdout=self.logs,
                                      stderr=self.logs)
        child.started_at = time.monotonic()
        self._say(f"started blazz-sessiond --instance {child.instance} (pid {child.proc.pid})")

    def _say(self, text: str) -> None:
        self.out.write(f"daemon run: {text}\n")
        self.out.flush()

    def _on_signal(self, signum, _frame) -> None:
        self.signals += 1
        what = "stopping daemons (Ctrl-C again to force)" if self.signals == 1 else "forcing exit"
        self._say(what)
        for child in self.children:
            if child.proc and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)

    def _leave(self, child: Child, why: str) -> None:
        child.elsewhere, child.proc = True, None
        self._say(f"instance {child.instance} {why}: not starting it here")

    def run(self, *, spawn: bool = True) -> int:
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if spawn:
                for child in self.children:
                    if not child.elsewhere:
                        self._spawn(child)
            while True:
                if all(c.elsewhere for c in self.children):
                    self._say("every instance already runs elsewhere: nothing to supervise")
                    return 1
                if self.signals:
                    if all(c.proc is None or c.proc.poll() is not None for c in self.children):
                        codes = [c.proc.returncode for c in self.children if c.proc]
                        self._say("all daemons stopped")
                        # -SIGTERM: the child got our signal before it installed its handler,
                        # so before it touched the database: a clean stop too.
                        return 0 if all(code in (0, -signal.SIGTERM) for code in codes) else 1
                else:
                    self._reap()
                time.sleep(0.2)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    # --- background use (quickstart): children run while the caller does other work -------------

    def start(self) -> None:
        for child in self.children:
            if not child.elsewhere:
                self._spawn(child)

    def stop_all(self) -> None:
        self._on_signal(signal.SIGTERM, None)
        for child in self.children:
            if child.proc is not None:
                try:
                    child.proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    child.proc.kill()

    def wait(self) -> int:
        """Supervise already started children in the foreground until a signal stops them."""
        return self.run(spawn=False)

    def _reap(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.elsewhere:
                continue
            if child.proc is not None and child.proc.poll() is not None:
                code = child.proc.returncode
                if code == TWIN_EXIT:  # started meanwhile by someone else (the daemon said who)
                    self._leave(child, "is already running")
                    continue
                # A child that ran a while before dying gets a fresh backoff.
                child.failures = 1 if now - child.started_at > 60 else child.failures + 1
                delay = min(MAX_BACKOFF, 2.0 ** (child.failures - 1))
                child.proc, child.restart_at = None, now + delay
                self._say(f"instance {child.instance} exited with {code}; restarting in {delay:g} s")
            elif child.proc is None and now >= child.restart_at:
                self._spawn(child)


def run_foreground(instances: int, config: str | None, *, running: Mapping[int, str] | None = None) -> int:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return Supervisor(instances, config=config, running=running).run()


def running_elsewhere(settings, instances: int) -> dict[int, str]:
    """Instances 1..N of this host whose daemon is already running: ``{instance: what to say}``."""
    import socket

    from blazzctl.db import Database
    from daemons.session.heartbeat import running_twins

    host = settings.daemon.host or socket.gethostname()
    names = {f"{host}:{n}": n for n in range(1, instances + 1)}
    db = Database.from_settings(settings)
    try:
        twins = running_twins(db, host=host, names=list(names))
    finally:
        db.dispose()
    return {names[name]: f"is already running ({name}, pid {pid})" for name, pid in twins.items()}
