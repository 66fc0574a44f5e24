"""Loading and describing settings: lookup of the file, YAML plus ``BLAZZ_*`` overrides,
validation that lists every problem, redaction, and the generated example file.

The schema itself (the dataclasses and their documented fields) is ``blazzctl.settings``.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from pathlib import Path
from typing import Any

from blazzctl import paths
from blazzctl.errors import ConfigError
from blazzctl.settings import CONFIG_ENV, Settings

# --- loading -----------------------------------------------------------------------------


def find_config_file(explicit: str | None = None) -> Path | None:
    """The configuration file in lookup order, or None when there is none (defaults apply)."""
    chosen = explicit or os.environ.get(CONFIG_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if not path.is_file():
            origin = "--config" if explicit else CONFIG_ENV
            raise ConfigError([(str(path), "-", f"file not found (given by {origin})")],
                              hint="Give an existing file, or run `blazzctl init --write-config`.")
        return path
    for candidate in (Path("blazz.yaml"), paths.config_home() / "blazz.yaml", Path("/etc/blazz/blazz.yaml")):
        if candidate.is_file():
            return candidate
    return None


def load_settings(explicit: str | None = None, *, environ: typing.Mapping[str, str] | None = None) -> Settings:
    """Load, merge and validate. Raises ConfigError listing every problem."""
    environ = os.environ if environ is None else environ
    path = find_config_file(explicit)
    raw: dict = {}
    problems: list[tuple[str, str, str]] = []
    if path is not None:
        import yaml  # deferred (start-up time): only a file, or a non-string override, needs it

        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ConfigError([(str(path), "-", f"cannot read YAML: {exc}")]) from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError([(str(path), "-", "the file must be a mapping of sections")])
        raw = loaded
    values = _build(Settings, raw, str(path) if path else "defaults", "", problems)
    _apply_env(values, environ, problems)
    if problems:
        raise ConfigError(problems, hint="Fix these keys (see config/blazz.example.yaml), then run "
                                         "`blazzctl config check`.")
    try:
        settings = _instantiate(Settings, values)
    except ConfigError as error:  # a rule between keys (the sections' __post_init__): name where they came from
        raise ConfigError([(str(path) if path else "defaults and environment", key, what)
                           for _section, key, what in error.problems],
                          hint="Fix these keys (see config/blazz.example.yaml), then run `blazzctl config check`.") \
            from None
    return dataclasses.replace(settings, source=str(path) if path else None,
                               warnings=tuple(unknown_variables(environ)))


# BLAZZ_* variables that are not settings: read by the CLI, or reserved for the test suite and
# the benchmarks. Any other unknown BLAZZ_* variable is probably a misspelt setting.
OTHER_VARIABLES = (CONFIG_ENV, "BLAZZ_WORKSPACE")
RESERVED_PREFIXES = ("BLAZZ_TEST_", "BLAZZ_BENCH_")


def unknown_variables(environ: typing.Mapping[str, str]) -> list[str]:
    """A warning for every BLAZZ_* variable that blazz does not read, with the nearest known name.

    Warnings, not errors: the variable may belong to a script of the operator's, and the
    environment of a unit or a shell is shared with other programs."""
    known = [*OTHER_VARIABLES]
    for key, fld, _ in iter_fields(Settings):
        known.append(env_name(key))
        if fld.metadata.get("env"):
            known.append(fld.metadata["env"])
    out = []
    for name in sorted(environ):
        if name.startswith("BLAZZ_") and name not in known and not name.startswith(RESERVED_PREFIXES):
            match = _closest(name, known)
            out.append(f"environment {name}: not a blazz setting, ignored"
                       + (f" (did you mean {match}?)" if match else ""))
    return out


def _closest(name: str, candidates: typing.Iterable[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.75)
    return close[0] if close else None


def _build(cls: type, raw: Any, source: str, prefix: str, problems: list) -> dict:
    """Validate ``raw`` against dataclass ``cls``; returns a dict of checked values."""
    out: dict = {}
    if not isinstance(raw, dict):
        problems.append((source, prefix.rstrip(".") or "-", "must be a mapping"))
        raw = {}
    known = {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("internal")}
    for key in raw:
        if key not in known:
            problems.append((source, f"{prefix}{key}", "unknown key" + _suggest_key(str(key), prefix, known)))
    for name, fld in known.items():
        if fld.metadata.get("section"):
            section_raw = raw.get(name)  # an empty section ("daemon:") is None: defaults
            out[name] = _build(fld.default_factory, {} if section_raw is None else section_raw, source,
                               f"{prefix}{name}.", problems)
        elif name in raw:
            ok, value = _check(fld, raw[name], cls)
            if ok:
                out[name] = value
            else:
                problems.append((source, f"{prefix}{name}", value))
    return out


def _suggest_key(key: str, prefix: str, known: dict) -> str:
    """" (did you mean ...?)" for an unknown key: a close name in its section, else a close key of
    another section (``database.instances`` -> ``daemon.instances``), else nothing."""
    nearby = _closest(key, known)
    if nearby:
        return f" (did you mean {prefix}{nearby}?)"
    elsewhere = {dotted.rsplit(".", 1)[-1]: dotted for dotted, _, _ in iter_fields(Settings)}
    elsewhere.update({f.name: f.name for f in dataclasses.fields(Settings) if f.metadata.get("section")})
    match = _closest(key, elsewhere)
    return f" (did you mean {elsewhere[match]}?)" if match else ""


def _apply_env(values: dict, environ: typing.Mapping[str, str], problems: list) -> None:
    for key, fld, owner in iter_fields(Settings):
        names = [env_name(key)] + ([fld.metadata["env"]] if fld.metadata.get("env") else [])
        for name in names:
            if name not in environ:
                continue
            text = environ[name]
            if not text.strip():
                parsed = None
            elif _type_of(fld, owner) is str:
                parsed = text  # taken literally: "123" or "a: b" stay strings
            else:
                parsed = _parse_env_value(text)
            ok, value = _check(fld, parsed, owner)
            if ok:
                target = values
                *parents, leaf = key.split(".")
                for part in parents:
                    target = target.setdefault(part, {})
                target[leaf] = value
            else:
                problems.append((f"environment {name}", key, value))


def _parse_env_value(text: str) -> Any:
    """A non-string override is YAML: 12.5, false, [--a, --b], {k: v}."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _instantiate(cls: type, values: dict) -> Any:
    kwargs = {}
    for fld in dataclasses.fields(cls):
        if fld.metadata.get("section"):
            kwargs[fld.name] = _instantiate(fld.default_factory, values.get(fld.name, {}))
        elif fld.name in values:
            kwargs[fld.name] = values[fld.name]
    return cls(**kwargs)


def _type_of(fld: dataclasses.Field, owner: type) -> Any:
    hint = typing.get_type_hints(owner)[fld.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return args[0]
    return typing.get_origin(hint) or hint


def _nullable(fld: dataclasses.Field, owner: type) -> bool:
    return type(None) in typing.get_args(typing.get_type_hints(owner)[fld.name])


def _check(fld: dataclasses.Field, value: Any, owner: type) -> tuple[bool, Any]:
    """(True, normalised value) or (False, what is wrong)."""
    meta = fld.metadata
    kind = _type_of(fld, owner)
    if value is None or value == "":
        return (True, None) if _nullable(fld, owner) else (False, "must not be empty")
    if kind is bool:
        return (True, value) if isinstance(value, bool) else (False, f"must be true or false, not {value!r}")
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not float(value).is_integer()):
            return False, f"must be {'an integer' if kind is int else 'a number'} (seconds for durations), not {value!r}"
        value = kind(value)
        if meta["min"] is not None and value < meta["min"]:
            return False, f"must be at least {meta['min']:g}, not {value:g}"
        if meta["max"] is not None and value > meta["max"]:
            return False, f"must be at most {meta['max']:g}, not {value:g}"
        return True, value
    if kind is str:
        if not isinstance(value, str):
            return False, f"must be a string, not {value!r}"
        if meta["choices"] and value not in meta["choices"]:
            return False, f"must be one of {', '.join(meta['choices'])}, not {value!r}"
        problem = meta["check"](value) if meta.get("check") else None
        return (False, problem) if problem else (True, value)
    if kind is list:
        if not isinstance(value, list):
            return False, "must be a list"
        return True, list(value)
    if kind is dict:
        return (True, dict(value)) if isinstance(value, dict) else (False, "must be a mapping")
    return True, value


# --- introspection (config show, example file) -------------------------------------------


def iter_fields(cls: type, prefix: str = ""):
    """Yield ``(dotted key, field, owner class)`` for every leaf setting."""
    for fld in dataclasses.fields(cls):
        if fld.metadata.get("internal"):
            continue
        if fld.metadata.get("section"):
            yield from iter_fields(fld.default_factory, f"{prefix}{fld.name}.")
        else:
            yield f"{prefix}{fld.name}", fld, cls


def env_name(key: str) -> str:
    return "BLAZZ_" + key.replace(".", "_").upper()


def redacted(settings: Settings) -> dict:
    """The effective settings as a nested dict, secrets redacted."""
    from blazzctl.db import redact_url

    def walk(obj: Any) -> dict:
        out = {}
        for fld in dataclasses.fields(obj):
            if fld.metadata.get("internal"):
                continue
            value = getattr(obj, fld.name)
            if fld.metadata.get("section"):
                out[fld.name] = walk(value)
            elif fld.metadata.get("secret") and value:
                out[fld.name] = redact_url(value) if "://" in str(value) else "***"
            else:
                out[fld.name] = value
        return out

    return walk(settings)


def example_yaml() -> str:
    """The documented example configuration: every key with its default."""
    lines = ["# blazz configuration: every key with its default.",
             "# Lookup: --config PATH or $BLAZZ_CONFIG, else ./blazz.yaml, else",
             "# $XDG_CONFIG_HOME/blazz/blazz.yaml, else /etc/blazz/blazz.yaml.",
             "# Every key can be overridden by an environment variable: BLAZZ_<SECTION>_<KEY>,",
             "# e.g. BLAZZ_DATABASE_URL or BLAZZ_DAEMON_LEASE_TTL. Durations are seconds.", ""]

    def emit(cls: type, indent: int) -> None:
        pad = "  " * indent
        for fld in dataclasses.fields(cls):
            if fld.metadata.get("internal"):
                continue
            lines.append(f"{pad}# {fld.metadata['doc']}")
            if fld.metadata.get("section"):
                lines.append(f"{pad}{fld.name}:")
                emit(fld.default_factory, indent + 1)
                if indent == 0:
                    lines.append("")
                continue
            default = fld.default if fld.default is not dataclasses.MISSING else fld.default_factory()
            extra = []
            if fld.metadata.get("choices"):
                extra.append("one of " + ", ".join(fld.metadata["choices"]))
            if fld.metadata.get("env"):
                extra.append(f"env {fld.metadata['env']}")
            if extra:
                lines[-1] += f" ({'; '.join(extra)})"
            lines.append(f"{pad}{fld.name}: {_yaml_scalar(default)}")

    emit(Settings, 0)
    return "\n".join(lines).rstrip() + "\n"


def _yaml_scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return "[]" if isinstance(value, list) and not value else ("{}" if not value else repr(value))
    if isinstance(value, float):
        return f"{value:g}" if not value.is_integer() else f"{int(value)}"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)
