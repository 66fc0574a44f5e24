"""Shell completion (Typer's own): `blazzctl --install-completion` installs a script whose
requests the console script answers; ordinary commands never set it up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BLAZZCTL = str(Path(sys.executable).with_name("blazzctl"))  # the console script: its name is the prog name


def blazzctl(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([BLAZZCTL, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **env})


def complete(words: str, tmp_path) -> list[str]:
    """What bash completion offers for the last word of ``words`` (as the installed script asks)."""
    done = blazzctl(env={"_BLAZZCTL_COMPLETE": "complete_bash", "COMP_WORDS": words,
                         "COMP_CWORD": str(len(words.split()) - 1),
                         "BLAZZ_DATABASE_URL": f"sqlite:///{tmp_path / 'none.db'}"})
    assert done.returncode == 0, done
    return done.stdout.split()


def test_install_completion_writes_the_script_for_bash(tmp_path):
    home = tmp_path / "home"
    # Typer's own switch: name the shell instead of detecting the one this test runs under.
    done = blazzctl("--install-completion", "bash",
                    env={"HOME": str(home), "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"})
    assert done.returncode == 0, done
    script = home / ".bash_completions" / "blazzctl.sh"
    assert "_BLAZZCTL_COMPLETE=complete_bash" in script.read_text()
    assert f"source '{script}'" in (home / ".bashrc").read_text()


def test_completion_requests_are_answered(tmp_path):
    assert complete("blazzctl acc", tmp_path) == ["account"]
    assert complete("blazzctl account li", tmp_path) == ["list"]
    assert "--status" in complete("blazzctl account list --st", tmp_path)
    assert not (tmp_path / "none.db").exists()  # completing reads no database


def test_an_ordinary_command_does_not_set_up_completion(migrated_url):
    """Start-up: `account list --json` neither detects the shell nor builds another command
    (completion is set up only when asked for, by its options or its environment variable)."""
    code = ("import sys, shellingham\n"
            "def refuse(*a, **k):\n    raise SystemExit('shell detection at start-up')\n"
            "shellingham.detect_shell = refuse\n"
            "sys.argv = ['blazzctl', 'account', 'list', '--json']\n"
            "from blazzctl.cli import main\n"
            "try:\n    main.app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in sys.modules if m.startswith('blazzctl.cli.')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BLAZZ_DATABASE_URL": migrated_url})
    assert done.returncode == 0, done.stderr
    loaded = done.stdout.splitlines()[-1]
    assert "blazzctl.cli.account" in loaded and "blazzctl.cli.workspace" not in loaded, loaded
