"""Settings: one frozen dataclass, every field documented with its variable, help, group and check.

Build it with :func:`~sidecar_thumbs.settings.loading.load_settings`; constructing it directly runs the same
checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_type_hints

import platformdirs

from sidecar_thumbs.errors import ConfigError
from sidecar_thumbs.files.formats import ALL_SUFFIXES, parse_suffixes
from sidecar_thumbs.settings.checks import Check, _between, _colour, _extensions, _identifier, _one_of
from sidecar_thumbs.settings.dbplace import database_on_network_share

if TYPE_CHECKING:
    from sidecar_thumbs.mesh import LoadLimits

__all__ = ["ENV_PREFIX", "Settings", "default_database_path", "default_workers"]


ENV_PREFIX = "SIDECAR_THUMBS_"
_MIB = 1024 * 1024


def default_database_path() -> Path:
    """The state database's default home: the user data folder, on local disk, never on the share."""
    return Path(platformdirs.user_data_dir("sidecar-thumbs", appauthor=False)) / "state.sqlite3"


def default_workers() -> int:
    """CPUs this process may use (respects affinity masks and container CPU sets), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


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
        "Tasks (a file, or a chunk of up to 16 small files) a worker runs before it is replaced (bounds leaks); "
        "0 never replaces",
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
