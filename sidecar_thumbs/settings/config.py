"""Settings: one frozen dataclass, every field documented, loaded from flags, environment and files.

Precedence, highest first: command-line flags (``overrides``) > the environment > ``.env.local`` >
``.env`` > defaults. The ``.env`` files are read with ``dotenv_values``, so loading never changes
``os.environ`` (spawned workers get their settings passed explicitly, not through the environment).

In every layer an empty value (``SIDECAR_THUMBS_WORKERS=``) means "the default", so the
``.env.example`` file, uncommented, loads to exactly the defaults.
"""

from __future__ import annotations

import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

import platformdirs
from dotenv import dotenv_values

from sidecar_thumbs.errors import ConfigError, UnknownSettingError
from sidecar_thumbs.files.formats import ALL_SUFFIXES, parse_suffixes
from sidecar_thumbs.settings.env_names import unknown_variable_warnings

if TYPE_CHECKING:
    from sidecar_thumbs.mesh import LoadLimits

__all__ = [
    "ENV_PREFIX",
    "SettingDoc",
    "Settings",
    "database_on_network_share",
    "default_database_path",
    "default_workers",
    "env_example_text",
    "iter_setting_docs",
    "load_settings",
]

StrPath = str | os.PathLike[str]

ENV_PREFIX = "SIDECAR_THUMBS_"
_MIB = 1024 * 1024
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

# A check returns why a value is invalid, or None when it is fine.
Check = Callable[[Any], str | None]


def default_database_path() -> Path:
    """The state database's default home: the user data folder, on local disk, never on the share."""
    return Path(platformdirs.user_data_dir("sidecar-thumbs", appauthor=False)) / "state.sqlite3"


def default_workers() -> int:
    """CPUs this process may use (respects affinity masks and container CPU sets), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _between(lo: float, hi: float | None = None) -> Check:
    def check(value: float) -> str | None:
        if value < lo or (hi is not None and value > hi):
            return f"must be between {lo:g} and {hi:g}" if hi is not None else f"must be at least {lo:g}"
        return None

    return check


def _one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _identifier(optional: bool) -> Check:
    """SQL identifiers for the asset manager's table: a fixed grammar (letters, digits, underscore),
    so a value from a settings file can never carry SQL; they are also double-quoted when used."""

    def check(value: str) -> str | None:
        if optional and value == "":
            return None
        if IDENTIFIER_RE.fullmatch(value):
            return None
        return "not a plain SQL name (letters, digits and _ only, not starting with a digit, at most 64)"

    return check


def _colour(value: str) -> str | None:
    digits = value[1:] if value.startswith("#") else ""
    if len(digits) == 6 and all(c in "0123456789abcdefABCDEF" for c in digits):
        return None
    return "not a colour like #5c8fdb"


def _extensions(value: str) -> str | None:
    try:
        parse_suffixes(value)
    except ValueError as exc:
        return str(exc)
    return None


def _setting(
    default: Any,
    help: str,
    group: str,
    check: Check | None = None,
    *,
    env: str = "",
    factory: Callable[[], Any] | None = None,
    default_doc: str = "",
) -> Any:
    """A documented field. ``env`` defaults to ``SIDECAR_THUMBS_<NAME>``; ``default_doc`` describes a
    computed default (written as an empty value in ``.env.example``)."""
    meta = {"env": env, "help": help, "group": group, "check": check, "default_doc": default_doc}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Everything sidecar-thumbs can be told. Build it with :func:`load_settings`."""

    # The env name is the origin DAM's own, so one .env file serves both programs.
    database: Path = _setting(  # noqa: RUF009 (_setting returns a dataclasses.field)
        None, "SQLite state database; keep it on local disk, never on the model share", "Storage",
        env="DAM_DATABASE_PATH", factory=default_database_path,
        default_doc="user data folder; macOS: ~/Library/Application Support/sidecar-thumbs/state.sqlite3",
    )  # fmt: skip
    roots: tuple[Path, ...] = _setting(
        (), f'Model folders, separated by "{os.pathsep}" like PATH, or one per line (then names may hold '
        f'"{os.pathsep}")', "Storage",
    )  # fmt: skip
    extensions: str = _setting(
        " ".join(ALL_SUFFIXES), "File extensions that are models (any case; spaces or commas between)", "Storage",
        _extensions,
    )  # fmt: skip
    busy_timeout_ms: int = _setting(5000, "Milliseconds a database writer waits for a lock", "Storage", _between(0))
    mass_missing_share: float = _setting(
        0.5, "A walk that finds more than this share of a root's known models gone (and at least "
        "MASS_MISSING_MIN) takes the root for offline, not the models for deleted", "Storage", _between(0, 1),
    )  # fmt: skip
    mass_missing_min: int = _setting(
        100, "Fewest models a walk must lose at once before the share above is applied", "Storage", _between(1)
    )

    workers: int = _setting(
        None, "Render processes; 0 renders inline in this process (debugging, tests)", "Work", _between(0),
        factory=default_workers, default_doc="the number of CPUs",
    )  # fmt: skip
    batch_size: int = _setting(200, "Files handed out per sweep", "Work", _between(1))
    full_fsync: bool = _setting(
        False, "Flush the drive's cache for every sidecar (macOS F_FULLFSYNC); off: ordered writes only", "Work"
    )
    timeout: float = _setting(300.0, "Seconds one file may take before its worker is killed", "Work", _between(0.001))
    max_tasks_per_worker: int = _setting(
        500,
        "Files a worker renders before it is replaced (bounds leaks); 0 never replaces",
        "Work",
        _between(0),
    )
    executor: str = _setting(
        "local",
        "local (process pool on this machine) or dask (a Dask cluster)",
        "Work",
        _one_of("local", "dask"),
    )
    dask_scheduler: str = _setting("", "Dask scheduler address, e.g. tcp://mac.local:8786 (executor=dask)", "Work")
    path_map: str = _setting(
        "",
        "How Dask workers see the share: SOURCE=TARGET rules separated by ; or newlines, e.g. "
        "/Volumes/3D-Files=/mnt/3d",
        "Work",
    )

    sweep_interval: float = _setting(
        2.0, "Seconds between sweeps that hand pending files to workers", "Watching", _between(0.01)
    )
    settle: float = _setting(
        3.0,
        "Seconds a file must stay unchanged before it is queued (copies in progress)",
        "Watching",
        _between(0),
    )
    rescan_interval: float = _setting(
        600.0, "Seconds between full rescans that catch missed events; 0 disables", "Watching", _between(0)
    )
    polling: bool = _setting(
        False, "Poll folders instead of FSEvents/inotify: only for a client mount of a share", "Watching"
    )
    # Each poll stats every file under the roots (34k models and their sidecars over SMB): not every second.
    poll_interval: float = _setting(
        60.0, "Seconds between polls when polling (each one stats every file)", "Watching", _between(1)
    )
    grace_period: float = _setting(
        30.0,
        "Seconds running renders may finish after a stop signal before being killed",
        "Watching",
        _between(0),
    )

    size: int = _setting(256, "Thumbnail width and height in pixels", "Thumbnails", _between(16, 4096))
    color: str = _setting("#5c8fdb", "Model colour, #rrggbb", "Thumbnails", _colour)
    renderer: str = _setting(
        "auto", "auto, numba or numpy (same pixels; numpy needs no compiler)", "Thumbnails",
        _one_of("auto", "numba", "numpy"),
    )  # fmt: skip
    embedded: bool = _setting(
        False,
        "Use the picture a slicer saved in a 3MF instead of our render (always the fallback when nothing in the "
        "file can be drawn)",
        "Thumbnails",
    )
    model_colors: bool = _setting(
        True, "Draw the model's own colours (3MF materials, slicer filaments and paint, OBJ/PLY/AMF)", "Thumbnails"
    )

    max_file_mb: int = _setting(1024, "Skip model files larger than this many MiB", "Limits", _between(1))
    max_triangles: int = _setting(20_000_000, "Skip models with more triangles", "Limits", _between(1))
    max_decompressed_mb: int = _setting(
        2048,
        "Largest 3MF part unpacked, and all that one archive (.zip, .7z) unpacks, MiB (zip bombs)",
        "Limits",
        _between(1),
    )

    log_format: str = _setting("text", "text, or json (one object per line)", "Logging", _one_of("text", "json"))
    log_file: str = _setting(
        "", "Write the log to this file instead of stderr, reopened when it is rotated (newsyslog, logrotate)",
        "Logging",
    )  # fmt: skip

    dam_table: str = _setting(
        "", "An asset manager's table of models in DAM_DATABASE_PATH to read and flag (empty: standalone)",
        "Asset manager", _identifier(optional=True),
    )  # fmt: skip
    dam_id_column: str = _setting("id", "Its id column", "Asset manager", _identifier(optional=False))
    dam_path_column: str = _setting(
        "path", "Its column with the model's path (absolute, or relative to SIDECAR_THUMBS_DAM_PATH_BASE)",
        "Asset manager", _identifier(optional=False),
    )  # fmt: skip
    dam_flag_column: str = _setting(
        "has_thumbnail", "Its 0/1 column we set when a sidecar exists", "Asset manager", _identifier(optional=False)
    )
    dam_path_base: str = _setting(
        "", "Folder that relative paths in the path column start from (empty: paths are absolute)", "Asset manager"
    )
    dam_sidecar_column: str = _setting(
        "", "Optional column we fill with the sidecar's path", "Asset manager", _identifier(optional=True)
    )
    dam_rendered_at_column: str = _setting(
        "", "Optional column we fill with the render time (unix seconds)", "Asset manager",
        _identifier(optional=True),
    )  # fmt: skip

    # Not settings: how this instance came to be (for `config` output and warnings).
    database_explicit: bool = field(default=False, metadata={"internal": True})
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False, repr=False, metadata={"internal": True})
    # Warnings found while loading (a misspelt variable), for the CLI to log.
    notes: tuple[str, ...] = field(default=(), compare=False, repr=False, metadata={"internal": True})

    def __post_init__(self) -> None:
        # Direct construction (tests, library users) gets the same checks as loading.
        for f in _setting_fields():
            reason = _check_value(f.name, getattr(self, f.name))
            if reason is not None:
                raise ConfigError(f"{_env(f)}={_show(f.name, getattr(self, f.name))}: {reason}")
        if self.executor == "dask" and not self.dask_scheduler:
            raise ConfigError(
                "SIDECAR_THUMBS_EXECUTOR=dask needs SIDECAR_THUMBS_DASK_SCHEDULER (--scheduler tcp://HOST:8786)"
            )

    @property
    def color_rgb(self) -> tuple[int, int, int]:
        """The model colour as an ``(r, g, b)`` tuple of 0..255 ints."""
        h = self.color.lstrip("#")
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)

    @property
    def model_suffixes(self) -> tuple[str, ...]:
        """``extensions`` as lower-case suffixes with their dot, for discovery."""
        return parse_suffixes(self.extensions)

    def load_limits(self) -> LoadLimits:
        """The loaders' hard caps, from ``max_file_mb``, ``max_triangles`` and ``max_decompressed_mb``."""
        from sidecar_thumbs.mesh import LoadLimits  # lazy: keeps numpy out of plain config use

        return LoadLimits(
            max_file_bytes=self.max_file_mb * _MIB,
            max_triangles=self.max_triangles,
            max_decompressed_bytes=self.max_decompressed_mb * _MIB,
        )

    def database_warnings(self) -> list[str]:
        """One-line warnings about where the database lives, for the CLI to print (empty: fine)."""
        warnings = []
        if database_on_network_share(self.database):
            warnings.append(
                f"database {self.database} seems to be on a network or external volume; SQLite needs "
                "local disk: set DAM_DATABASE_PATH to a local path"
            )
        db = os.path.realpath(self.database)
        for root in self.roots:
            real_root = os.path.realpath(root)
            if db.startswith(real_root.rstrip(os.sep) + os.sep):
                warnings.append(f"database {self.database} is inside library root {root}; keep it off the share")
        from sidecar_thumbs.files.dbowner import other_user_warnings

        # A daemon run by launchd as another user has another per-user default database.
        warnings += other_user_warnings(
            Path(self.database), default=None if self.database_explicit else default_database_path()
        )
        return warnings

    def describe(self) -> list[tuple[str, str, str, str]]:
        """Every setting as ``(name, env variable, value, source)``; source is "default",
        "command line", "environment" or the path of the ``.env`` file it came from."""
        origin = dict(self.sources)
        return [
            (f.name, _env(f), _show(f.name, getattr(self, f.name)), origin.get(f.name, "default"))
            for f in _setting_fields()
        ]


@dataclass(frozen=True)
class SettingDoc:
    """Documentation of one setting, for ``.env.example`` and the ``config`` command."""

    name: str
    env: str
    default: str  # as written in a .env file; "" for computed defaults
    help: str
    group: str
    default_doc: str  # describes a computed default, else ""


def _setting_fields() -> tuple[Any, ...]:
    return tuple(f for f in fields(Settings) if not f.metadata.get("internal"))


def _env(f: Any) -> str:
    return str(f.metadata["env"] or ENV_PREFIX + f.name.upper())


_KINDS: dict[str, Any] = {}


def _kind(name: str) -> Any:
    if not _KINDS:
        _KINDS.update(get_type_hints(Settings))
    return _KINDS[name]


def _check_value(name: str, value: Any) -> str | None:
    check = next(f.metadata["check"] for f in _setting_fields() if f.name == name)
    return check(value) if check is not None else None


def _show(name: str, value: Any) -> str:
    """A value as it would be written in a .env file (one line)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if _kind(name) == tuple[Path, ...]:
        return os.pathsep.join(str(p) for p in value)
    return str(value).replace("\n", "\\n")


def iter_setting_docs() -> Iterator[SettingDoc]:
    """Yield the documentation of every setting, in declaration (and ``.env.example``) order."""
    defaults = Settings()
    for f in _setting_fields():
        computed = bool(f.metadata["default_doc"])
        yield SettingDoc(
            name=f.name,
            env=_env(f),
            default="" if computed else _show(f.name, getattr(defaults, f.name)),
            help=f.metadata["help"],
            group=f.metadata["group"],
            default_doc=f.metadata["default_doc"],
        )


def env_example_text() -> str:
    """The text of ``.env.example``: every setting commented out, with its help and default."""
    lines = [
        "# sidecar-thumbs settings. Copy what you need to .env (or .env.local, which wins over .env)",
        "# and uncomment it. Precedence: command-line flags > environment > .env.local > .env > defaults.",
        "# An empty value means the default. Booleans: 1/0, true/false, yes/no, on/off.",
    ]
    group = None
    for doc in iter_setting_docs():
        if doc.group != group:
            group = doc.group
            lines += ["", f"# === {group} ==="]
        default = doc.default_doc or doc.default or "empty"
        lines += ["", f"# {doc.help} (default: {default})", f"# {doc.env}={doc.default}"]
    return "\n".join(lines) + "\n"


# --- parsing ------------------------------------------------------------------------------------


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


# --- where the database lives -------------------------------------------------------------------

# Filesystem types (Linux /proc/mounts names) where SQLite's locking and WAL cannot be trusted.
_NETWORK_FS = frozenset(
    [
        "cifs",
        "smb3",
        "smbfs",
        "nfs",
        "nfs4",
        "afpfs",
        "webdav",
        "davfs",
        "fuse.sshfs",
        "9p",
        "ceph",
        "glusterfs",
    ]
)
_MOUNT_ESCAPE = re.compile(r"\\([0-7]{3})")


def _mount_fstype(path: str, mounts_text: str) -> str | None:
    """Filesystem type of the mount holding ``path`` (a realpath), from /proc/mounts text."""
    best, fstype = "", None
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        # /proc/mounts escapes space, tab, newline and backslash as octal (\040 ...).
        point = _MOUNT_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), parts[1])
        prefix = point if point.endswith("/") else point + "/"
        if (path == point or path.startswith(prefix)) and len(point) >= len(best):
            best, fstype = point, parts[2]
    return fstype


def database_on_network_share(path: StrPath) -> bool:
    """Best-effort guess whether ``path`` is on a network (or, on macOS, any non-boot) volume.

    SQLite's WAL mode does not work over network filesystems, and the share's host must own the
    database, so the CLI warns when this returns True.

    Args:
        path: The database path; it need not exist yet.

    Returns:
        True on macOS for paths under ``/Volumes/`` other than the boot volume; on Linux when the
        mount holding the path is cifs/smb/nfs/sshfs-like. False when unsure.
    """
    real = os.path.realpath(os.path.abspath(os.fspath(path)))
    if sys.platform == "darwin":
        # /Volumes/Macintosh HD is a symlink to /, so realpath already maps the boot volume away.
        return real.startswith("/Volumes/")
    try:
        with open("/proc/mounts", encoding="utf-8", errors="replace") as f:
            mounts = f.read()
    except OSError:
        return False
    fstype = _mount_fstype(real, mounts)
    return fstype is not None and (fstype in _NETWORK_FS or fstype.startswith("nfs"))
