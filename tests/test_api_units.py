"""blazz-api.service: rendered with the other units, hardened like them, enabled with `units install --api`."""

from __future__ import annotations

import re

import pytest

from blazzctl.services import units
from blazzctl.services.unit_templates import HARDENING
from blazzctl.settings import Settings
from tests.test_units import analyze, needs_analyze, parse_unit, value


def test_the_api_unit_runs_blazz_api_of_the_release_with_the_shared_sandbox():
    text = units.render(Settings(), instances=2, prefix="/opt/blazz", config_file="/etc/blazz/blazz.yaml")[units.API_UNIT]
    service = parse_unit(text)["Service"]
    assert value(service, "ExecStart") == "/opt/blazz/current/venv/bin/blazz-api"
    assert value(service, "Type") == "exec" and value(service, "User") == "blazz"
    assert ("Environment", "BLAZZ_CONFIG=/etc/blazz/blazz.yaml") in service
    assert int(value(service, "TimeoutStopSec")) > 35  # longer than blazz-api's own drain
    for line in HARDENING.format(protect_home="yes").splitlines():
        assert tuple(line.split("=", 1)) in service, line
    assert value(service, "MemoryDenyWriteExecute") == "yes"  # no JIT here, unlike Chromium
    assert value(parse_unit(text)["Install"], "WantedBy") == "multi-user.target"


@needs_analyze
def test_the_api_unit_verifies_and_is_hardened(tmp_path):
    where = tmp_path / "rendered"
    units.write(units.render(Settings(), instances=1, prefix=tmp_path / "nowhere"), where)
    done = analyze("verify", str(where / units.API_UNIT))
    lines = (done.stdout + done.stderr).splitlines()
    assert lines == [f"{units.API_UNIT}: Command {tmp_path}/nowhere/current/venv/bin/blazz-api is not executable: "
                     "No such file or directory"]
    security = analyze("security", "--offline=yes", str(where / units.API_UNIT))
    match = re.search(r"Overall exposure level for blazz-api\.service: (\d+\.\d+)", security.stdout)
    assert match and float(match.group(1)) <= 2.0, security.stdout


@pytest.mark.parametrize("api", [True, False])
def test_install_enables_the_api_only_when_asked(cli, tmp_path, api):
    from tests.test_units import StandInSystemctl

    (tmp_path / "blazz.yaml").write_text("daemon:\n  instances: 1\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    systemctl = StandInSystemctl(bin_dir)
    args = ["units", "install", "-n", "1", "--dest", str(tmp_path / "s"), "--json"] + (["--api"] if api else [])
    result = cli(*args, env={"SYSTEMCTL": str(systemctl.path)})
    assert result.code == 0, result
    assert (tmp_path / "s" / units.API_UNIT).is_file()
    assert ("enable blazz-api.service" in systemctl.calls()) is api
    assert ("blazz-api.service" in result.json()["enabled"]) is api
