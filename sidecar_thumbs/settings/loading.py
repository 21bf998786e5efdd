"""Loading settings from flags, environment and files, each value parsed and checked.

Precedence, highest first: command-line flags (``overrides``) > the environment > ``.env.local`` >
``.env`` > defaults. The ``.env`` files are read with ``dotenv_values``, so loading never changes
``os.environ`` (spawned workers get their settings passed explicitly, not through the environment).

In every layer an empty value (``SIDECAR_THUMBS_WORKERS=``) means "the default", so the
``.env.example`` file, uncommented, loads to exactly the defaults.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from sidecar_thumbs.errors import ConfigError, UnknownSettingError
from sidecar_thumbs.settings.env_names import unknown_variable_warnings
from sidecar_thumbs.settings.fields import Settings, _check_value, _env, _kind, _setting_fields

__all__ = ["load_settings"]


StrPath = str | os.PathLike[str]


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _to_path(value: str | os.PathLike[str], cwd: Path) -> Path:
    p = Path(os.path.expanduser(os.fspath(value)))
    return p if p.is_absolute() else Path(os.path.normpath(cwd / p))


def _parse_text(name: str, raw: str, cwd: Path) -> Any:
    """Turn a text value (env, file, or string flag) into the field's type; ValueError says why not."""
    kind = _kind(name)
    text = raw.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("not a boolean (use 1/0, true/false, yes/no, on/off)")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError("not an integer") from None
    if kind is float:
        try:
            number = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        if not math.isfinite(number):
            raise ValueError("must be a finite number")
        return number
    if kind is Path:
        return _to_path(text, cwd)
    if kind == tuple[Path, ...]:
        # One per line wins over PATH-style, so a root may contain os.pathsep.
        parts = raw.splitlines() if "\n" in raw else raw.split(os.pathsep)
        return tuple(_to_path(p.strip(), cwd) for p in parts if p.strip())
    if name == "color":
        return text.lower()
    return text


def _coerce(name: str, value: object, cwd: Path) -> Any:
    """Accept an already-typed override (from click) or text; ValueError says why not."""
    if isinstance(value, str):
        return _parse_text(name, value, cwd)
    kind = _kind(name)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return _parse_text(name, repr(float(value)), cwd)  # same finiteness rule as text
    if kind is Path and isinstance(value, os.PathLike):
        return _to_path(value, cwd)
    if kind == tuple[Path, ...] and isinstance(value, list | tuple):
        return tuple(_to_path(p, cwd) for p in value)
    raise ValueError(f"wrong type {type(value).__name__}")


def _read_env_file(path: Path) -> dict[str, str | None]:
    try:
        with open(path, encoding="utf-8") as stream:
            # No interpolation: ${VAR} would read os.environ behind the caller's `environ`.
            return dict(dotenv_values(stream=stream, interpolate=False))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read settings file {path}: {exc}") from None


def load_settings(
    *,
    env_file: StrPath | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    cwd: StrPath | None = None,
) -> Settings:
    """Load settings from flags, environment and ``.env`` files, validated.

    Args:
        env_file: Read only this file instead of ``.env.local`` and ``.env``; it must exist.
        overrides: Command-line values by field name (``{"workers": 4}``); ``None`` values are ignored.
        environ: Environment to read; defaults to ``os.environ`` (which is never modified).
        cwd: Folder holding ``.env``/``.env.local`` and against which relative paths from flags and
            the environment are resolved (a relative path in a settings file is resolved against
            that file's folder); defaults to the current folder.

    Returns:
        The validated :class:`Settings`, remembering where each value came from.

    Raises:
        ConfigError: A missing ``env_file``, an unreadable file, or an invalid value (the message
            names the variable, the value and where it came from).
    """
    base = Path(os.path.abspath(cwd if cwd is not None else os.getcwd()))
    env = os.environ if environ is None else environ

    # Lowest to highest precedence: (source label, {env name: raw}).
    layers: list[tuple[str, Mapping[str, str | None]]] = []
    if env_file is not None:
        path = _to_path(env_file, base)
        if not path.exists():
            raise ConfigError(f"settings file {path} does not exist")
        if not path.is_file():
            raise ConfigError(f"settings file {path} is not a file")
        layers.append((str(path), _read_env_file(path)))
    else:
        for name in (".env", ".env.local"):
            if (base / name).is_file():
                layers.append((str(base / name), _read_env_file(base / name)))
    layers.append(("environment", env))

    known = {f.name for f in _setting_fields()}
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    unknown = sorted(set(flags) - known)
    if unknown:
        raise UnknownSettingError(unknown[0], sorted(known))

    values: dict[str, Any] = {}
    sources: list[tuple[str, str]] = []
    database_explicit = False
    for f in _setting_fields():
        name, var = f.name, _env(f)
        if name in flags:
            source, raw = "command line", flags[name]
            label = f"--{name.replace('_', '-')}={_one_line(raw)}"
        else:
            found = next(((src, layer[var]) for src, layer in reversed(layers) if layer.get(var) is not None), None)
            if found is None:
                continue
            source, raw = found
            label = f"{var}={_one_line(raw)}"
        where = {"command line": "", "environment": " (from the environment)"}.get(source, f" (from {source})")
        sources.append((name, source))
        if isinstance(raw, str) and not raw.strip():
            continue  # empty means the default, whatever a lower layer said
        # A relative path in a settings file means "beside this file", so the file works from anywhere.
        folder = base if source in ("command line", "environment") else Path(source).parent
        try:
            if name in _PATH_TEXT:
                raw = os.fspath(_to_path(str(raw).strip(), folder))
            value = _coerce(name, raw, folder)
        except ValueError as exc:
            raise ConfigError(f"{label}: {exc}{where}") from None
        reason = _check_value(name, value)
        if reason is not None:
            raise ConfigError(f"{label}: {reason}{where}")
        values[name] = value
        database_explicit = database_explicit or name == "database"
    notes = unknown_variable_warnings(layers, {_env(f) for f in _setting_fields()})
    return Settings(**values, database_explicit=database_explicit, sources=tuple(sources), notes=tuple(notes))


# Text settings that hold a path (empty means "none"): resolved like the Path settings.
_PATH_TEXT = frozenset({"dam_path_base", "log_file"})


def _one_line(raw: object) -> str:
    return str(raw).replace("\n", "\\n")
