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
    return write(path, {"daemon": {"lease_ttl": ttl, "claim_interval": 1, "heartbeat_interval": 1}})


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
    env = {"BLAZZ_DATABASE_URL": "mysql+pymysql://u:p@db/blazz", "BLAZZ_DAEMON_LEASE_TTL": "16.5",
           "BLAZZ_PROVIDERS_WEBJS_HEADLESS": "false", "BLAZZ_WEBJS_URL": "http://127.0.0.1:9/",
           "BLAZZ_PROVIDERS_WEBJS_LAUNCH_ARGS": '["--foo", "--bar"]', "BLAZZ_LOGGING_LEVEL": "debug"}
    s = load_settings(str(path), environ=env)
    assert s.database_url == "mysql+pymysql://u:p@db/blazz"
    assert s.daemon.lease_ttl == 16.5 and s.daemon.capacity == 7
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
    error = r.json()["error"]  # under --json, errors are JSON on stdout
    assert r.code == 78 and error["code"] == "configuration" and "daemon.capacity" in error["message"]


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


# --- "did you mean": unknown keys and BLAZZ_* variables ------------------------------------


def test_unknown_keys_suggest_the_nearest_one(tmp_path):
    path = write(tmp_path / "c.yaml", {"deamon": {}, "daemon": {"leasettl": 3, "pool_size": 2},
                                        "database": {"ur": "sqlite:///x.db"}})
    with pytest.raises(ConfigError) as err:
        load_settings(str(path))
    what = {key: text for _, key, text in err.value.problems}
    assert what == {"deamon": "unknown key (did you mean daemon?)",
                    "daemon.leasettl": "unknown key (did you mean daemon.lease_ttl?)",
                    "daemon.pool_size": "unknown key (did you mean database.pool_size?)",  # another section
                    "database.ur": "unknown key (did you mean database.url?)"}


def test_unknown_blazz_variables_are_warned_about_with_the_nearest_name(cli, tmp_path):
    env = {"BLAZZ_DAEMON_LEASETTL": "3", "BLAZZ_DATABSE_URL": "sqlite:///x.db", "BLAZZ_FOO": "1",
           "BLAZZ_WORKSPACE": "acme", "BLAZZ_TEST_ANYTHING": "1"}
    s = load_settings(environ=env)
    assert s.daemon.lease_ttl == 30 and s.warnings == (
        "environment BLAZZ_DAEMON_LEASETTL: not a blazz setting, ignored (did you mean BLAZZ_DAEMON_LEASE_TTL?)",
        "environment BLAZZ_DATABSE_URL: not a blazz setting, ignored (did you mean BLAZZ_DATABASE_URL?)",
        "environment BLAZZ_FOO: not a blazz setting, ignored")
    checked = cli("config", "check", env=env)
    assert checked.code == 0 and "configuration OK" in checked.stdout
    assert "warning: environment BLAZZ_DAEMON_LEASETTL: not a blazz setting, ignored (did you mean " \
           "BLAZZ_DAEMON_LEASE_TTL?)" in checked.stderr
    # wherever the configuration loads, once per command; JSON on stdout stays JSON
    shown = cli("config", "show", "--json", env={"BLAZZ_DAEMON_CAPACTIY": "3"})
    assert shown.json()["settings"]["daemon"]["capacity"] == 50
    assert shown.stderr.count("did you mean BLAZZ_DAEMON_CAPACITY?") == 1
    assert load_settings(environ={"BLAZZ_CONFIG_X": "1"}).warnings  # only exact names are known
    assert load_settings(environ={"BLAZZ_WEBJS_URL": "http://x/", "BLAZZ_CONFIG": ""}).warnings == ()


# --- database URLs: parsed as the engine parses them ------------------------------------------

PASSWORD = "Zq7@k:x9/vv"  # unencoded: user blazz, password Zq7, host k, port x9 (ValueError), ...
ENCODED = "Zq7%40k%3Ax9%2Fvv"


@pytest.mark.parametrize("url,what", [
    (f"mysql+pymysql://blazz:{PASSWORD}@db.example/blazz", "the port (after the host's ':') is not a number"),
    ("mysql+pymysql://blazz:Zq7@kk@db.example/blazz", "the host or database name contains '@' or '/'"),
    ("mysql+pymysql://blazz:Zq7@kk/9@db.example/blazz", "the host or database name contains '@' or '/'"),
])
def test_a_password_that_needs_percent_encoding_is_explained(cli, tmp_path, url, what):
    path = write(tmp_path / "c.yaml", {"database": {"url": url}})
    for result in (cli("config", "check", "--config", str(path)), cli("config", "check", env={"BLAZZ_DATABASE_URL": url})):
        assert result.code == 78 and result.stdout == "" and "Traceback" not in result.stderr, result
        assert f"database.url: {what}" in result.stderr
        assert "percent-encoded" in result.stderr and "p@ss:w/rd is written p%40ss%3Aw%2Frd" in result.stderr
        assert "urllib.parse.quote(getpass.getpass()" in result.stderr  # their own password's encoded form
        assert '"Database URL" in docs/operations.md' in result.stderr
        for fragment in ("Zq7", "k:x9", "x9/vv", "kk"):
            assert fragment not in result.stderr  # no piece of the password


@pytest.mark.parametrize("command", [("init",), ("db", "upgrade"), ("db", "current"), ("account", "list"),
                                     ("workspace", "create", "acme"), ("daemon", "list"), ("config", "show"),
                                     ("daemon", "run", "--instances", "1"), ("quickstart",)])
def test_every_command_exits_78_on_a_url_the_engine_cannot_read(cli, command):
    result = cli(*command, env={"BLAZZ_DATABASE_URL": f"mysql+pymysql://blazz:{PASSWORD}@db.example/blazz"})
    assert result.code == 78, result
    assert "Traceback" not in result.stderr and "percent-encoded" in result.stderr and "Zq7" not in result.stderr


def test_code_without_settings_gets_the_same_error():
    """Daemons and tools that open a Database from a URL directly (no ValueError from the engine)."""
    from blazzctl.db import Database

    with pytest.raises(ConfigError) as err:
        Database(f"mysql+pymysql://blazz:{PASSWORD}@db.example/blazz")
    assert err.value.exit_code == 78 and "percent-encoded" in str(err.value) and "Zq7" not in str(err.value)


@pytest.mark.parametrize("url,what", [
    ("mysql+pymysql://u:pw@db/blazz?sslmode=require", "PyMySQL takes no parameter 'sslmode'"),
    ("mysql+pymysql://u:pw@db/blazz?connect_timeout=soon", "query parameters cannot be used"),
    ("mysql+pymysql://u:pw@db:70000/blazz", "port 70000 is out of range"),
    ("sqlite:///x.db?timeout=soon", "query parameters cannot be used"),
])
def test_the_drivers_connect_arguments_are_checked_too(cli, url, what):
    result = cli("config", "check", env={"BLAZZ_DATABASE_URL": url})
    assert result.code == 78 and what in result.stderr and "Traceback" not in result.stderr, result


@pytest.mark.parametrize("url", [f"mysql+pymysql://blazz:{ENCODED}@db.example:3306/blazz",
                                 "mysql+pymysql://blazz:pw@db.example/blazz?ssl_ca=/etc/blazz/ca.pem"
                                 "&ssl_check_hostname=false",
                                 "mariadb+pymysql://blazz:p%25w@[::1]/blazz", "sqlite:///relative.db"])
def test_urls_the_engine_reads_pass(cli, url):
    result = cli("config", "check", env={"BLAZZ_DATABASE_URL": url})
    assert result.code == 0, result


@pytest.mark.mariadb
def test_an_encoded_password_connects(cli, mariadb_server, mariadb_url):
    """The rule the message teaches works: a user whose password is p@ss:w/rd-like, in a URL
    with the password percent-encoded, migrates the database; a wrong password is exit 69 with
    the same advice."""
    import pymysql
    from sqlalchemy.engine import make_url

    parsed = make_url(mariadb_url)
    conn = pymysql.connect(host=parsed.host, port=parsed.port, user="root", autocommit=True)
    user = f"u{parsed.database[-8:]}"
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%%' IDENTIFIED BY %s", (PASSWORD,))
        cur.execute(f"GRANT ALL ON {parsed.database}.* TO '{user}'@'%'")
    try:
        base = f"mysql+pymysql://{user}:{{}}@{parsed.host}:{parsed.port}/{parsed.database}"
        assert cli("init", db=base.format(ENCODED)).code == 0
        assert cli("workspace", "create", "acme", db=base.format(ENCODED)).code == 0
        denied = cli("workspace", "list", db=base.format("Zq7k9vv"))
        assert denied.code == 69 and "Access denied" in denied.stderr and "percent-encoded" in denied.stderr
        assert "Zq7k9vv" not in denied.stderr
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP USER '{user}'@'%'")
        conn.close()


def test_lease_timings_that_cannot_work_are_refused_naming_both_keys(cli, tmp_path):
    """A claim round every half lease or slower self-fences a healthy daemon after one slow round;
    heartbeats a third of a lease apart make a live daemon look dead."""
    path = write(tmp_path / "c.yaml", {"daemon": {"lease_ttl": 10, "claim_interval": 5, "heartbeat_interval": 4}})
    r = cli("config", "check", "--config", str(path))
    assert r.code == 78 and r.stdout == "", r
    assert f"{path}: daemon.claim_interval: 5 must be below half of daemon.lease_ttl (10)" in r.stderr
    assert f"{path}: daemon.heartbeat_interval: 4 must be below a third of daemon.lease_ttl (10)" in r.stderr
    r = cli("config", "check", env={"BLAZZ_DAEMON_LEASE_TTL": "12"})  # the defaults (5 s) against 12 s
    assert r.code == 78 and "defaults and environment: daemon.heartbeat_interval" in r.stderr, r
    path = write(tmp_path / "ok.yaml", {"daemon": {"lease_ttl": 10, "claim_interval": 4.9, "heartbeat_interval": 3.3}})
    assert cli("config", "check", "--config", str(path)).code == 0


@pytest.mark.parametrize("types,what", [(["image", "pictures"], "unknown resource type 'pictures'"),
                                        (["script"], "cannot run without documents and scripts")])
def test_block_resources_names_only_types_a_page_can_do_without(tmp_path, types, what):
    path = write(tmp_path / "blazz.yaml", yaml.safe_dump({"providers": {"webjs": {"block_resources": types}}}))
    with pytest.raises(ConfigError) as err:
        load_settings(str(path))
    assert what in str(err.value) and "providers.webjs.block_resources" in str(err.value)
    assert load_settings(str(write(tmp_path / "ok.yaml", "providers: {webjs: {block_resources: []}}"))) \
        .providers.webjs.block_resources == []
