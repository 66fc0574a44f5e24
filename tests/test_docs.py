"""Generated documentation never drifts from the code (docs/cli.md, config/blazz.example.yaml)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def gen_docs():
    spec = importlib.util.spec_from_file_location("gen_docs", REPO / "scripts" / "gen_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_is_up_to_date(gen_docs):
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == gen_docs.cli_markdown(), (
        "docs/cli.md does not match the commands' --help; regenerate it with: python scripts/gen_docs.py")


def test_cli_reference_covers_every_command(gen_docs):
    text = gen_docs.cli_markdown()
    paths = [" ".join(path) for path, _, _ in gen_docs._command_tree()]
    for required in ("blazzctl", "blazzctl config check", "blazzctl config show", "blazzctl db upgrade",
                     "blazzctl db current", "blazzctl db check", "blazzctl init", "blazzctl workspace create",
                     "blazzctl workspace list", "blazzctl workspace show", "blazzctl account add",
                     "blazzctl account list", "blazzctl account show", "blazzctl account update",
                     "blazzctl account remove", "blazzctl account primary", "blazzctl audit list"):
        assert required in paths
    for path in paths:
        assert f"\n## {path}\n" in text
    assert len(set(paths)) == len(paths)


def test_generation_does_not_depend_on_the_terminal(gen_docs, monkeypatch):
    expected = gen_docs.cli_markdown()
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert gen_docs.cli_markdown() == expected
    assert "\x1b[" not in expected
    assert all(len(line) <= gen_docs.WIDTH for line in expected.splitlines() if not line.startswith(("#", "Exit")))


def test_example_config_is_up_to_date(gen_docs):
    committed = (REPO / "config" / "blazz.example.yaml").read_text(encoding="utf-8")
    assert committed == gen_docs.example_yaml(), (
        "config/blazz.example.yaml is out of date; regenerate it with: python scripts/gen_docs.py")


def test_check_mode_reports_drift_and_how_to_fix(tmp_path):
    """`gen_docs.py --check` (for CI and hooks) exits 1 naming the stale file and the fix."""
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    (copy / "scripts" / "gen_docs.py").write_text((REPO / "scripts" / "gen_docs.py").read_text())
    (copy / "docs").mkdir()
    (copy / "docs" / "cli.md").write_text("stale\n")
    (copy / "config").mkdir()
    (copy / "config" / "blazz.example.yaml").write_text((REPO / "config" / "blazz.example.yaml").read_text())
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # this checkout's blazzctl, not another editable install
    result = subprocess.run([sys.executable, str(copy / "scripts" / "gen_docs.py"), "--check"],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert "docs/cli.md is out of date; run: python scripts/gen_docs.py" in result.stdout
    assert "blazz.example.yaml" not in result.stdout
