"""The library's working parts built from :class:`~sidecar_thumbs.settings.fields.Settings`.

Settings say *what* (size, workers, database path); these functions turn them into the objects that do
the work (thumbnail options, the state database, an executor). The public API and the CLI both build
their parts here, so a setting means the same thing whichever way the library is driven. Heavy modules
(numpy, numba, pebble, dask) are imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sidecar_thumbs.errors import ConfigError
from sidecar_thumbs.files.discover import set_model_extensions
from sidecar_thumbs.settings.fields import Settings

if TYPE_CHECKING:
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions
    from sidecar_thumbs.store.state import StateDB
    from sidecar_thumbs.work.executors.local import Executor

__all__ = ["PathArg", "executor_for", "open_state_db", "roots_from", "thumbnail_options"]

PathArg = str | os.PathLike[str]

log = logging.getLogger("sidecar_thumbs")


def thumbnail_options(settings: Settings) -> ThumbnailOptions:
    """What thumbnails look like under ``settings`` (size, colour, kernel, embedded pictures, model
    colours, caps)."""
    from sidecar_thumbs.render import RenderOptions
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions

    return ThumbnailOptions(
        render=RenderOptions(size=settings.size, color=settings.color_rgb, kernel=settings.renderer),
        use_embedded=settings.embedded,
        model_colors=settings.model_colors,
        limits=settings.load_limits(),
    )


def open_state_db(settings: Settings, *, readonly: bool = False, must_exist: bool = False) -> StateDB:
    """The state database the settings name (attached to the asset manager's table when one is mapped).

    Raises:
        DatabaseError: it cannot be opened or created (or, attached, does not match the mapping).
    """
    from sidecar_thumbs.dam.mapping import DamMapping
    from sidecar_thumbs.store.state import StateDB

    # Where the database lives (on a share, inside a root, another user's default: the daemon's?).
    for warning in settings.database_warnings():
        log.warning("%s", warning)
    return StateDB(
        settings.database,
        busy_timeout_ms=settings.busy_timeout_ms,
        readonly=readonly,
        create=not (readonly or must_exist),
        dam=DamMapping.from_settings(settings),
    )


def executor_for(settings: Settings, options: ThumbnailOptions, *, workers: int | None = None) -> Executor:
    """The executor the settings ask for: a Dask cluster, the local process pool, or inline (0 workers)."""
    from sidecar_thumbs.work.executors.local import make_executor

    if settings.executor == "dask":
        from sidecar_thumbs.work.executors.dask import DaskExecutor
        from sidecar_thumbs.work.executors.pathmap import parse_path_map_setting

        path_map = parse_path_map_setting(settings.path_map) if settings.path_map else None
        return DaskExecutor(settings.dask_scheduler, timeout=settings.timeout, options=options, path_map=path_map)
    n = settings.workers if workers is None else workers
    return make_executor(n, timeout=settings.timeout, max_tasks=settings.max_tasks_per_worker, options=options)


def roots_from(paths: PathArg | Sequence[PathArg], settings: Settings) -> list[str]:
    """Folders to work on, canonical: ``paths``, or the configured roots when none are given; also makes
    the settings' ``extensions`` what counts as a model from now on in this process.

    A single path (``"~/Models"``) is accepted as well as a list: a string is never split into letters.
    Roots are real paths, so ``lib`` and a link to it, or a root inside another, count once.

    Raises:
        ConfigError: no path given and no roots configured.
    """
    from sidecar_thumbs.files.roots import canonical_roots

    items: Sequence[PathArg] = [paths] if isinstance(paths, str | os.PathLike) else paths
    given = [os.path.expanduser(os.fspath(p)) for p in items] or [os.fspath(r) for r in settings.roots]
    roots = canonical_roots(given)
    if not roots:
        raise ConfigError("no path given and SIDECAR_THUMBS_ROOTS is not set")
    # Every walk of the API starts here, so this is where the settings say what counts as a model
    # (one answer per process: walk, watcher, event intake, verify, clean, gallery).
    set_model_extensions(settings.model_suffixes)
    return roots
