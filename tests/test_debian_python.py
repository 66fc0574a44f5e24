"""The README's path on Debian 12: blazz installed into a virtualenv made with ``/usr/bin/python3``
(3.11.2 there) hands a connected account from one daemon to another with no QR.

The handover restores the login archive, which is what broke on 3.11.2 (``tarfile``'s
``filter=`` does not exist before 3.11.4). The suite itself runs on whatever interpreter
``.ci/run`` chose; this test installs blazz afresh, as the README does, so it runs the installed
package, not this checkout. Elsewhere it uses ``python3`` from PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.daemon_helpers import REPO, migrate, wait_for
from tests.webjs_helpers import Recorder, WebjsFleet, account_row, archive_count, devices_of, wait_qr, wait_status

CHROMIUM = "/usr/bin/chromium"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM}")]


def readme_python() -> str:
    return "/usr/bin/python3" if Path("/usr/bin/python3").exists() else shutil.which("python3") or sys.executable


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh virtualenv with blazz installed from a copy of this checkout (``pip install .``)."""
    root = tmp_path_factory.mktemp("readme-venv")
    source = root / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info",
                                                                 "__pycache__", ".pytest_cache"))
    venv = root / "venv"
    subprocess.run([readme_python(), "-m", "venv", str(venv)], check=True, timeout=120)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(source)],
                         capture_output=True, text=True, timeout=900)
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv


def venv_blazzctl(venv: Path, *args: str, url: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLAZZ_") and k != "PYTHONPATH"}
    env["BLAZZ_DATABASE_URL"] = url
    return subprocess.run([str(venv / "bin" / "blazzctl"), *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=str(venv))


@pytest.mark.parametrize("per_browser", [8, 1], ids=["pooled", "own-browser"])
def test_handover_without_qr_on_the_readme_interpreter(installed, fake, tmp_path, per_browser):
    """Both kinds of login archive, on the interpreter the README installs with: a snapshot
    (pooled browsers, the default) and a profile archive (a tar, unpacked safely without
    tarfile's ``filter=``, which Debian 12's 3.11.2 lacks)."""
    from blazzctl.db import Database

    python = installed / "bin" / "python"
    version = subprocess.run([str(python), "-c", "import sys, blazzctl; print(sys.version.split()[0], blazzctl.__file__)"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert str(installed) in version[1], f"the venv runs the installed package, not the checkout: {version}"
    url = f"sqlite:///{tmp_path / 'blazz.db'}"
    migrate(url)
    db = Database(url)
    try:
        key = tmp_path / "keys" / "session.key"
        assert venv_blazzctl(installed, "key", "generate", "--file", str(key), url=url).returncode == 0
        assert venv_blazzctl(installed, "workspace", "create", "acme", url=url).returncode == 0
        added = venv_blazzctl(installed, "account", "add", "--workspace", "acme", "--name", "sales", "--json", url=url)
        assert added.returncode == 0, added.stderr
        account = json.loads(added.stdout)
        aid, phone = account["id"], "+4915550011" if per_browser > 1 else "+4915550012"
        connect = venv_blazzctl(installed, "account", "connect", "sales", "--workspace", "acme", "--no-wait", url=url)
        assert connect.returncode == 0, connect.stderr
        with WebjsFleet(tmp_path / "fleet", url, fake.url, key_file=key, python=str(python),
                        webjs={"accounts_per_browser": per_browser}) as fleet:
            first = fleet.start(1, host="host-a")
            fake.link(wait_qr(db, aid, 60, fleet), phone.lstrip("+"))
            wait_status(db, aid, "connected", 60, fleet)
            wait_for(lambda: archive_count(db, aid)[0] >= 1, 30, message="a login archive")
            with Recorder(db, aid) as seen:
                fleet.kill(first)
                second = fleet.start(1, host="host-b")
                wait_for(lambda: seen.reached("connected", second.name), 90,
                         message=lambda: f"connected by {second.name} (Python {version[0]}): {seen.seen}\n"
                                         f"{fleet.logs(40)}")
            assert seen.qrs() == [] and "qr_scanning" not in seen.statuses(), seen.seen
            assert account_row(db, aid)["phone_number"] == phone
            assert len(devices_of(fake, phone)) == 1, "the phone linked a second device"
            restored = "restoring login snapshot" if per_browser > 1 else "restored login"
            assert restored in second.tail(200), second.tail(40)
    finally:
        db.dispose()
