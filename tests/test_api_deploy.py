"""deploy.sh --api: blazz-api.service enabled, restarted after the session daemons, gated on GET /health."""

from __future__ import annotations

import os
import signal

import httpx
import psutil
import pytest
import yaml

from tests.conftest import _free_port
from tests.daemon_helpers import migrate, seed_accounts
from tests.test_deploy import ACCOUNTS, Site, _explain, _release_of, wheelhouse  # noqa: F401 - the fixture


def _api_pid(site: Site) -> int | None:
    try:
        return int((site.systemd.run_dir / "blazz-api.service.pid").read_text().split()[0])
    except (OSError, ValueError):
        return None


@pytest.mark.mariadb
@pytest.mark.slow
def test_deploy_with_api_restarts_it_after_the_daemons_and_gates_on_its_health(tmp_path, mariadb_url, wheelhouse):
    migrate(mariadb_url)
    site = Site(tmp_path, mariadb_url)
    seed_accounts(site.db, ACCOUNTS)
    port = _free_port()
    config = yaml.safe_load(site.config.read_text())
    config["api"] = {"port": port, "workers": 1}
    site.config.write_text(yaml.safe_dump(config, sort_keys=False))
    try:
        plan = site.deploy("--wheel", str(wheelhouse["good"]), "--api", "--dry-run")
        assert "plan: restart blazz-api" in plan.stdout and "--api" in plan.stdout, _explain(plan, site)
        first = site.deploy("--wheel", str(wheelhouse["good"]), "--api")
        assert first.returncode == 0, _explain(first, site)
        release = _release_of(first)
        steps = [line for line in first.stdout.splitlines() if line.startswith("deploy: step: ")]
        assert steps.index("deploy: step: restart blazz-api") == steps.index("deploy: step: health") - 1
        assert steps.index("deploy: step: restart blazz-session@2") < steps.index("deploy: step: restart blazz-api")
        assert (site.systemd.unit_dir / "multi-user.target.wants" / "blazz-api.service").is_symlink()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        pid = _api_pid(site)
        assert str(site.prefix / "releases" / release / "venv") in " ".join(psutil.Process(pid).cmdline())
        # Enabled once, restarted by every deploy (no --api needed again).
        again = site.deploy("--wheel", str(wheelhouse["good"]))
        assert again.returncode == 0, _explain(again, site)
        assert "deploy: step: restart blazz-api" in again.stdout and _api_pid(site) != pid
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        pid = _api_pid(site)
        if pid:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        site.systemd.close()
        site.db.dispose()


def test_deploy_without_an_enabled_api_does_not_touch_it(tmp_path):
    """The plan says nothing of blazz-api unless --api is given or the unit is enabled."""
    from tests.test_deploy import DEPLOY

    import subprocess

    done = subprocess.run([str(DEPLOY), "--prefix", str(tmp_path / "p"), "--unit-dir", str(tmp_path / "u"),
                           "--dry-run"], capture_output=True, text=True, timeout=120,
                          env={k: v for k, v in os.environ.items() if not k.startswith("BLAZZ_")})
    assert "plan: restart blazz-api" not in done.stdout, done.stdout
