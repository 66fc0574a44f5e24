"""A tiny sd_notify client: readiness, status, watchdog and stop notices for systemd.

The protocol is one datagram of ``KEY=value`` lines to the unix socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the Linux abstract namespace). Without the
variable (not started by systemd, or ``Type=`` other than notify) every call is a
no-op. A failed send is logged at debug level and never raised: telling systemd how
we are must not be what brings the daemon down.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping

log = logging.getLogger(__name__)

SEND_TIMEOUT = 2.0  # seconds; a full receive queue must not wedge the daemon loop


class Notifier:
    """Sends sd_notify messages to one socket address (None: every call is a no-op)."""

    def __init__(self, address: str | None, *, environ: Mapping[str, str] | None = None) -> None:
        self.address = _socket_address(address) if address else None
        self._environ = environ
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Notifier":
        """The notifier systemd asked for through ``$NOTIFY_SOCKET`` (a no-op one when unset)."""
        environ = os.environ if environ is None else environ
        return cls(environ.get("NOTIFY_SOCKET") or None, environ=environ)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def watchdog_interval(self) -> float | None:
        """Seconds systemd waits for ``WATCHDOG=1`` before it aborts us, or None (no watchdog)."""
        return watchdog_interval(self._environ)

    def ready(self, status: str | None = None) -> bool:
        """Start-up is complete (``READY=1``), optionally with a status line."""
        return self.send(READY=1, STATUS=status) if status else self.send(READY=1)

    def status(self, text: str) -> bool:
        """A free-text line shown by ``systemctl status``."""
        return self.send(STATUS=text)

    def watchdog(self) -> bool:
        """Keep-alive (``WATCHDOG=1``); send it at least every ``watchdog_interval() / 2``."""
        return self.send(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        """The daemon is draining (``STOPPING=1``)."""
        return self.send(STOPPING=1, STATUS=status) if status else self.send(STOPPING=1)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before the start/stop timeout fires (``EXTEND_TIMEOUT_USEC``)."""
        return self.send(EXTEND_TIMEOUT_USEC=max(0, int(seconds * 1_000_000)))

    def send(self, **fields: object) -> bool:
        """Send ``KEY=value`` lines in one datagram; True when it was sent.

        Keys are upper-cased; newlines inside a value become spaces (one line per field).
        """
        if self.address is None or not fields:
            return False
        lines = [f"{key.upper()}={_one_line(value)}" for key, value in fields.items()]
        payload = "\n".join(lines).encode("utf-8", "replace")
        with self._lock:
            try:
                if self._sock is None:
                    self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                    self._sock.settimeout(SEND_TIMEOUT)
                self._sock.sendto(payload, self.address)
                return True
            except OSError as error:
                log.debug("sd_notify to %r failed: %s", self.address, error)
                self._close_locked()
                return False

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """The watchdog timeout systemd set for this process, in seconds, or None when there is none.

    ``$WATCHDOG_USEC`` holds it; ``$WATCHDOG_PID``, when set, names the process it is meant
    for (a child that inherited the variables must not think it is watched).
    """
    environ = os.environ if environ is None else environ
    pid = environ.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


def _socket_address(value: str) -> str | bytes:
    # "@name" is an abstract socket: the kernel name starts with a NUL byte.
    return b"\0" + value[1:].encode() if value.startswith("@") else value


def _one_line(value: object) -> str:
    return str(value).replace("\r", " ").replace("\n", " ")
