"""``bash .ci/run`` is the README's test command: pytest in a venv made with the README's
interpreter, with its arguments passed on to pytest."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.daemon_helpers import REPO


def test_ci_run_passes_its_arguments_to_pytest_in_the_readme_venv():
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    proc = subprocess.run(["bash", ".ci/run", "--co", "-q", "tests/test_profile_archive.py"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    collected = [line for line in proc.stdout.splitlines() if "::" in line]
    assert collected and all(line.startswith("tests/test_profile_archive.py::") for line in collected), proc.stdout
    venv = Path(REPO) / os.environ.get("BLAZZ_TEST_VENV", ".venv")
    home = dict(line.split(" = ", 1) for line in (venv / "pyvenv.cfg").read_text().splitlines() if " = " in line)
    expected = "/usr/bin" if Path("/usr/bin/python3").exists() else None
    if expected:
        assert home["home"] == expected, f"{venv} was made with {home['home']}, not the README's /usr/bin/python3"
