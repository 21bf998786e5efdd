"""Shared pieces of the command line: settings, options, database and executor from settings.

The commands themselves live in ``cli`` (one-off commands), ``cli_daemon`` (watch, status) and
``gallery_cli``; each parses options, loads settings, calls the library and maps errors to exit codes.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from sidecar_thumbs.config import Settings, load_settings
from sidecar_thumbs.errors import SidecarError

log = logging.getLogger("sidecar_thumbs")


def fail(exc: SidecarError) -> NoReturn:
    click.echo(f"sidecar-thumbs: {exc.message}", err=True)
    sys.exit(exc.exit_code)


def settings_for(ctx: click.Context, **overrides: Any) -> Settings:
    obj = ctx.find_root().obj or {}
    try:
        return load_settings(env_file=obj.get("env_file"), overrides=overrides)
    except SidecarError as exc:
        fail(exc)


def log_level(verbose: int, quiet: bool, default: int = logging.WARNING) -> int:
    if quiet:
        return logging.ERROR
    if verbose > 1:
        return logging.DEBUG
    return logging.INFO if verbose else default


def thumbnail_options(settings: Settings) -> Any:
    from sidecar_thumbs.render import RenderOptions
    from sidecar_thumbs.thumbnail import ThumbnailOptions

    return ThumbnailOptions(
        render=RenderOptions(size=settings.size, color=settings.color_rgb, kernel=settings.renderer),
        use_embedded=settings.embedded,
        model_colors=settings.model_colors,
        limits=settings.load_limits(),
    )


def render_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Options that change what a thumbnail looks like (each overrides its setting)."""
    f = click.option(
        "--renderer",
        type=click.Choice(["auto", "numba", "numpy"]),
        default=None,
        help="Rasteriser kernel [SIDECAR_THUMBS_RENDERER, default auto].",
    )(f)
    f = click.option("--color", default=None, metavar="#RRGGBB", help="Model colour [SIDECAR_THUMBS_COLOR].")(f)
    f = click.option(
        "--embedded/--no-embedded",
        default=None,
        help="Use a 3MF's own slicer picture instead of our render [SIDECAR_THUMBS_EMBEDDED, default off].",
    )(f)
    f = click.option(
        "--model-colors/--no-model-colors",
        default=None,
        help="Draw the model's own colours [SIDECAR_THUMBS_MODEL_COLORS, default on].",
    )(f)
    f = click.option(
        "--size",
        type=click.IntRange(16, 4096),
        default=None,
        help="Thumbnail width and height in px [SIDECAR_THUMBS_SIZE, default 256].",
    )(f)
    return f


def pool_options(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--workers",
        type=click.IntRange(0, 1024),
        default=None,
        help="Render processes; 0 renders inline [SIDECAR_THUMBS_WORKERS, default: CPU count].",
    )(f)
    f = click.option(
        "--db",
        "database",
        type=click.Path(path_type=Path),
        default=None,
        help="State database [DAM_DATABASE_PATH, default: the user data folder].",
    )(f)
    f = click.option(
        "--executor",
        type=click.Choice(["local", "dask"]),
        default=None,
        help="Render on this machine's process pool or on a Dask cluster [SIDECAR_THUMBS_EXECUTOR].",
    )(f)
    f = click.option(
        "--scheduler",
        "dask_scheduler",
        default=None,
        metavar="tcp://HOST:8786",
        help="The Dask scheduler (with --executor dask) [SIDECAR_THUMBS_DASK_SCHEDULER].",
    )(f)
    f = click.option(
        "--path-map",
        "path_map",
        multiple=True,
        metavar="SRC=DST",
        help="Where Dask workers find the share, e.g. /Volumes/3D-Files=/mnt/3d; repeatable [SIDECAR_THUMBS_PATH_MAP].",
        callback=lambda _ctx, _param, value: ";".join(value) if value else None,
    )(f)
    return f


def open_db(settings: Settings, *, readonly: bool = False, must_exist: bool = False) -> Any:
    from sidecar_thumbs.dam import DamMapping
    from sidecar_thumbs.state import StateDB

    try:
        return StateDB(
            settings.database,
            busy_timeout_ms=settings.busy_timeout_ms,
            readonly=readonly,
            create=not (readonly or must_exist),
            dam=DamMapping.from_settings(settings),
        )
    except SidecarError as exc:
        fail(exc)


def roots_for(paths: tuple[Path, ...], settings: Settings) -> list[str]:
    roots = [os.path.abspath(p) for p in paths] or [os.path.abspath(r) for r in settings.roots]
    if not roots:
        raise click.UsageError("no PATH given and SIDECAR_THUMBS_ROOTS is not set")
    return roots


def executor_for(settings: Settings, options: Any, *, workers: int | None = None) -> Any:
    """The executor the settings ask for: a Dask cluster, the local process pool, or inline (0 workers)."""
    from sidecar_thumbs.executors import make_executor

    if settings.executor == "dask":
        from sidecar_thumbs.executors_dask import DaskExecutor
        from sidecar_thumbs.pathmap import parse_path_map_setting

        path_map = parse_path_map_setting(settings.path_map) if settings.path_map else None
        return DaskExecutor(settings.dask_scheduler, timeout=settings.timeout, options=options, path_map=path_map)
    n = settings.workers if workers is None else workers
    return make_executor(n, timeout=settings.timeout, max_tasks=settings.max_tasks_per_worker, options=options)
