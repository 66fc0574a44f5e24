"""The session key: encrypts login archives (AES-256-GCM). Every host sharing a database needs it.

The key file holds 32 random bytes in standard base64 on one line, mode 0600. Where it comes
from: ``secrets.session_key_file``; else a systemd credential (``$CREDENTIALS_DIRECTORY/
session-key``); else ``session.key`` in the daemon state directory, generated on first use.
"""

from __future__ import annotations

import base64
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from blazzctl.errors import Conflict, InvalidInput, OperationFailed

KEY_BYTES = 32
CREDENTIAL_NAME = "session-key"


@dataclass(frozen=True)
class SessionKey:
    key: bytes
    source: Path

    @property
    def key_id(self) -> str:
        """A short fingerprint that names the key without revealing it."""
        return hashlib.sha256(b"blazz-key-id" + self.key).hexdigest()[:16]


def generate(path: Path) -> SessionKey:
    """Write a new key file with mode 0600; refuses to overwrite an existing one."""
    path = path.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise Conflict(f"{path} already exists", hint="Keep it (every host needs the same key), "
                                                      "or remove it first if you really mean to replace it.") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(key).decode() + "\n")
    return SessionKey(key, path)


def read(path: Path) -> SessionKey:
    path = path.expanduser()
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        raise OperationFailed(f"session key file {path} does not exist",
                              hint="Copy the key file from a host that shares this database, or create the "
                                   "first one with `blazzctl key generate --file PATH`.") from None
    except OSError as exc:
        raise OperationFailed(f"cannot read session key file {path}: {exc.strerror}") from None
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise InvalidInput(f"{path} is not a blazz session key (32 bytes in base64)",
                           hint="Generate one with `blazzctl key generate`.")
    return SessionKey(key, path)


def default_path(state_dir: Path) -> Path:
    return state_dir / "session.key"


def resolve(configured: str | None, state_dir: Path) -> SessionKey:
    """The key to use: the configured file (must exist), a systemd credential, or a generated one."""
    if configured:
        return read(Path(configured))
    cred_dir = os.environ.get("CREDENTIALS_DIRECTORY")
    if cred_dir and (Path(cred_dir) / CREDENTIAL_NAME).is_file():
        return read(Path(cred_dir) / CREDENTIAL_NAME)
    path = default_path(state_dir)
    if path.is_file():
        return read(path)
    try:
        return generate(path)
    except Conflict:  # another daemon instance generated it a moment ago
        return read(path)
