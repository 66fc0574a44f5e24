"""Configuration: lookup order, environment overrides, validation, `config check/show`, the example."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from blazzctl import settings as settings_mod
from blazzctl.errors import ConfigError
from blazzctl.settings import example_yaml, load_settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config" / "blazz.example.yaml"


def write(path: Path, data: dict | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def lease_file(path: Path, ttl: float) -> Path:
    return write(path, {"daemon": {"lease_ttl": ttl}})


# --- lookup order ------------------------------------------------------------------------


def test_no_file_at_all_gives_defaults(tmp_path):
    s = load_settings()
    assert s.source is None
    assert s.daemon.lease_ttl == 30 and s.database.url is None
    assert s.database_url == f"sqlite:///{tmp_path / 'state' / 'blazz' / 'blazz.db'}"


def test_lookup_order(tmp_path, monkeypatch):
    xdg = lease_file(tmp_path / "config" / "blazz" / "blazz.yaml", 11)
    assert load_settings().source == str(xdg) and load_settings().daemon.lease_ttl == 11
    cwd = lease_file(tmp_path / "blazz.yaml", 12)
    assert load_settings().daemon.lease_ttl == 12 and Path(load_settings().source) == Path("blazz.yaml")
    env = lease_file(tmp_path / "env.yaml", 13)
    monkeypatch.setenv("BLAZZ_CONFIG", str(env))
    assert load_settings().daemon.lease_ttl == 13
    explicit = lease_file(tmp_path / "explicit.yaml", 14)
    assert load_settings(str(explicit)).daemon.lease_ttl == 14
    assert cwd.is_file() and xdg.is_file()


@pytest.mark.parametrize("how", ["option", "env"])
def test_a_named_file_must_exist(tmp_path, monkeypatch, how):
    lease_file(tmp_path / "blazz.yaml", 12)  # no silent fallback to ./blazz.yaml
    missing = str(tmp_path / "missing.yaml")
    if how == "env":
        monkeypatch.setenv("BLAZZ_CONFIG", missing)
    with pytest.raises(ConfigError) as err:
        load_settings(missing if how == "option" else None)
    assert err.value.exit_code == 78
    assert "missing.yaml" in str(err.value) and ("--config" if how == "option" else "BLAZZ_CONFIG") in str(err.value)


# --- environment -------------------------------------------------------------------------


def test_xdg_config_home_defaults_to_dot_config(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = lease_file(tmp_path / "home" / ".config" / "blazz" / "blazz.yaml", 15)
    s = load_settings()
    assert s.source == str(path) and s.daemon.lease_ttl == 15


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path / "blazz.yaml", {"database": {"url": "sqlite:///from-file.db"},
                                            "daemon": {"lease_ttl": 40, "capacity": 7}})
    env = {"BLAZZ_DATABASE_URL": "mysql+pymysql://u:p@db/blazz", "BLAZZ_DAEMON_LEASE_TTL": "12.5",
           "BLAZZ_PROVIDERS_WEBJS_HEADLESS": "false", "BLAZZ_WEBJS_URL": "http://127.0.0.1:9/",
           "BLAZZ_PROVIDERS_WEBJS_LAUNCH_ARGS": '["--foo", "--bar"]', "BLAZZ_LOGGING_LEVEL": "debug"}
    s = load_settings(str(path), environ=env)
    assert s.database_url == "mysql+pymysql://u:p@db/blazz"
    assert s.daemon.lease_ttl == 12.5 and s.daemon.capacity == 7
    assert s.providers.webjs.headless is False and s.providers.webjs.url == "http://127.0.0.1:9/"
    assert s.providers.webjs.launch_args == ["--foo", "--bar"] and s.logging.level == "debug"


def test_every_setting_has_an_environment_variable():
    env = {settings_mod.env_name(key): "" for key, _, _ in settings_mod.iter_fields(settings_mod.Settings)}
    assert "BLAZZ_DATABASE_URL" in env and "BLAZZ_DAEMON_LEASE_TTL" in env
    assert "BLAZZ_PROVIDERS_WEBJS_CHROMIUM_PATH" in env


def test_environment_strings_stay_strings():
    s = load_settings(environ={"BLAZZ_PROVIDERS_WEBJS_USER_AGENT": "123",
                               "BLAZZ_DATABASE_URL": "sqlite:///x: y.db"})
    assert s.providers.webjs.user_agent == "123" and s.database.url == "sqlite:///x: y.db"


# --- validation: every problem, with file and key ------------------------------------------


def test_every_problem_is_listed_with_file_and_key(tmp_path):
    path = write(tmp_path / "bad.yaml", {
        "database": {"pool_size": 0, "passwrd": "x"},
        "daemon": {"lease_ttl": "soon", "capacity": 2.5, "heartbeat_interval": -1},
        "logging": {"level": "loud"},
        "providers": {"webjs": {"headless": "yes please"}},
        "extra": 1,
    })
    with pytest.raises(ConfigError) as err:
        load_settings(str(path), environ={"BLAZZ_DAEMON_CAPACITY": "many"})
    problems = {(src, key) for src, key, _ in err.value.problems}
    file = str(path)
    assert problems == {
        (file, "database.pool_size"), (file, "database.passwrd"), (file, "daemon.lease_ttl"),
        (file, "daemon.capacity"), (file, "daemon.heartbeat_interval"), (file, "logging.level"),
        (file, "providers.webjs.headless"), (file, "extra"),
        ("environment BLAZZ_DAEMON_CAPACITY", "daemon.capacity"),
    }
    what = {key: text for _, key, text in err.value.problems if _ == file}
    assert what["database.pool_size"] == "must be at least 1, not 0"
    assert what["database.passwrd"] == "unknown key"
    assert "one of debug, info, warning, error" in what["logging.level"]
    assert "must be true or false" in what["providers.webjs.headless"]


@pytest.mark.parametrize("text,what", [("daemon: [1, 2\n", "cannot read YAML"),
                                       ("- just\n- a list\n", "must be a mapping"),
                                       ("daemon: 5\n", "must be a mapping"),
                                       ("daemon: []\n", "must be a mapping")])
def test_malformed_files(tmp_path, text, what):
    path = write(tmp_path / "bad.yaml", text)
    with pytest.raises(ConfigError) as err:
        load_settings(str(path))
    assert what in str(err.value) and str(path) in str(err.value)


def test_empty_file_and_empty_sections_are_fine(tmp_path):
    assert load_settings(str(write(tmp_path / "empty.yaml", ""))).daemon.lease_ttl == 30
    assert load_settings(str(write(tmp_path / "s.yaml", "daemon:\nlogging: {}\n"))).logging.level == "info"


# --- the commands ------------------------------------------------------------------------


def test_config_check_ok(cli, tmp_path):
    r = cli("config", "check")
    assert r.code == 0 and "configuration OK" in r.stdout and "defaults" in r.stdout
    path = lease_file(tmp_path / "c.yaml", 20)
    r = cli("config", "check", "--config", str(path))
    assert r.code == 0 and str(path) in r.stdout


def test_config_check_lists_every_problem_and_exits_78(cli, tmp_path):
    path = write(tmp_path / "bad.yaml", {"daemon": {"lease_ttl": "soon", "capacity": 0}, "nope": 1,
                                         "database": {"url": "postgresql://blazz:Secr3t@db/blazz"}})
    r = cli("config", "check", "--config", str(path), env={"BLAZZ_LOGGING_FORMAT": "xml"})
    assert r.code == 78 and r.stdout == "" and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0] == "error: invalid configuration:"
    for line in (f"{path}: daemon.lease_ttl: must be a number", f"{path}: daemon.capacity: must be at least 1",
                 f"{path}: nope: unknown key", "environment BLAZZ_LOGGING_FORMAT: logging.format: must be one of",
                 f"{path}: database.url: must be a mysql+pymysql://"):
        assert any(line in got for got in lines), (line, r.stderr)
    assert "Secr3t" not in r.stderr
    assert "blazzctl config check" in r.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_option_before_and_after_the_subcommand(cli, tmp_path, where):
    good = lease_file(tmp_path / "good.yaml", 21)
    bad = write(tmp_path / "bad.yaml", {"daemon": {"lease_ttl": -5}})
    for path, code in ((good, 0), (bad, 78)):
        args = ["--config", str(path), "config", "check"] if where == "before" else \
            ["config", "check", "--config", str(path)]
        assert cli(*args).code == code
    args = ["-c", str(good), "config", "show", "--json"] if where == "before" else \
        ["config", "show", "--json", "-c", str(good)]
    shown = cli(*args).json()
    assert shown["source"] == str(good) and shown["settings"]["daemon"]["lease_ttl"] == 21


def test_config_after_the_subcommand_wins(cli, tmp_path):
    first = lease_file(tmp_path / "first.yaml", 21)
    second = lease_file(tmp_path / "second.yaml", 22)
    shown = cli("-c", str(first), "config", "show", "--json", "-c", str(second)).json()
    assert shown["settings"]["daemon"]["lease_ttl"] == 22


def test_config_show_redacts_the_database_password(cli, tmp_path):
    path = write(tmp_path / "c.yaml", {"database": {"url": "mysql+pymysql://blazz:T0p-s3cret@db.example:3306/blazz"}})
    human = cli("config", "show", "--config", str(path))
    assert human.code == 0 and "T0p-s3cret" not in human.stdout + human.stderr
    assert "mysql+pymysql://blazz:***@db.example:3306/blazz" in human.stdout
    assert yaml.safe_load(human.stdout)["daemon"]["lease_ttl"] == 30
    r = cli("config", "show", "--config", str(path), "--json")
    assert r.code == 0 and "T0p-s3cret" not in r.stdout
    shown = json.loads(r.stdout)
    assert shown["source"] == str(path)
    assert shown["settings"]["database"]["url"] == "mysql+pymysql://blazz:***@db.example:3306/blazz"
    assert shown["settings"]["database"]["effective_url"] == "mysql+pymysql://blazz:***@db.example:3306/blazz"
    from_env = cli("config", "show", "--json", env={"BLAZZ_DATABASE_URL": "mysql+pymysql://a:Pw9@h/d"})
    assert "Pw9" not in from_env.stdout and from_env.json()["settings"]["database"]["url"] == "mysql+pymysql://a:***@h/d"


def test_config_show_lists_every_key(cli):
    shown = cli("config", "show", "--json").json()["settings"]
    for key, _, _ in settings_mod.iter_fields(settings_mod.Settings):
        node = shown
        for part in key.split("."):
            node = node[part]
    assert shown["database"]["effective_url"].endswith("/state/blazz/blazz.db")


def test_config_show_on_a_bad_config_is_78(cli, tmp_path):
    path = write(tmp_path / "bad.yaml", {"daemon": {"capacity": "lots"}})
    r = cli("config", "show", "--json", "--config", str(path))
    assert r.code == 78 and r.stdout == "" and "daemon.capacity" in r.stderr


# --- the example file --------------------------------------------------------------------


def test_example_file_is_generated_from_the_settings():
    assert EXAMPLE.read_text(encoding="utf-8") == example_yaml(), (
        "config/blazz.example.yaml is out of date; regenerate it with: python scripts/gen_docs.py")


def test_example_file_documents_every_key_with_its_default():
    loaded = yaml.safe_load(example_yaml())
    defaults = settings_mod.redacted(settings_mod.Settings())
    assert loaded == defaults
    for key, _, _ in settings_mod.iter_fields(settings_mod.Settings):
        assert f"{key.rsplit('.', 1)[-1]}:" in example_yaml()


def test_example_file_loads_cleanly(cli):
    s = load_settings(str(EXAMPLE))
    assert dataclass_values(s) == dataclass_values(settings_mod.Settings())
    assert cli("config", "check", "--config", str(EXAMPLE)).code == 0


def dataclass_values(s) -> dict:
    import dataclasses

    return {k: v for k, v in dataclasses.asdict(s).items() if k != "source"}
