"""Shared pieces of the command line: settings, options, database and executor from settings.

The commands themselves live in ``cli`` (one-off commands), ``cli_daemon`` (watch, status) and
``gallery_cli``; each parses options, loads settings, calls the library and maps errors to exit codes.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from sidecar_thumbs.config import Settings, load_settings
from sidecar_thumbs.errors import SidecarError
from sidecar_thumbs.wiring import executor_for, open_state_db, thumbnail_options

__all__ = [
    "executor_for",
    "fail",
    "log",
    "log_level",
    "open_db",
    "pool_options",
    "render_options",
    "roots_for",
    "settings_for",
    "thumbnail_options",
]

log = logging.getLogger("sidecar_thumbs")


def fail(exc: SidecarError) -> NoReturn:
    click.echo(f"sidecar-thumbs: {exc.message}", err=True)
    sys.exit(exc.exit_code)


def printable_output() -> None:
    """File names need not be valid UTF-8 (a model copied from an old Windows share): Python keeps
    such bytes as surrogates, and a strict stdout (macOS's default UTF-8 locale) raised
    ``UnicodeEncodeError`` on the first such path, after ``clean`` had already deleted files. Paths
    go out as the bytes they are (surrogateescape, like ``ls``), messages on stderr with
    backslash escapes; ``--json`` output escapes them anyway (``ensure_ascii``)."""
    for stream, errors in ((sys.stdout, "surrogateescape"), (sys.stderr, "backslashreplace")):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None and getattr(stream, "errors", None) == "strict":
            with contextlib.suppress(ValueError, OSError):  # a stream that cannot change: leave it
                reconfigure(errors=errors)


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
        help="Use a 3MF's own slicer thumbnail when it has one [SIDECAR_THUMBS_EMBEDDED, default on].",
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
    try:
        return open_state_db(settings, readonly=readonly, must_exist=must_exist)
    except SidecarError as exc:
        fail(exc)


def roots_for(paths: tuple[Path, ...], settings: Settings) -> list[str]:
    """The roots to work on, canonical: ``lib`` and a link to it, or a root inside another, count once."""
    from sidecar_thumbs.wiring import roots_from

    if not paths and not settings.roots:
        raise click.UsageError("no PATH given and SIDECAR_THUMBS_ROOTS is not set")
    return roots_from(paths, settings)


def mass_missing_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--allow-mass-missing",
        is_flag=True,
        help="Believe a root that lists no models, or lost more than SIDECAR_THUMBS_MASS_MISSING_SHARE of them "
        "at once: the models were really deleted (without it such a root counts as offline, exit 1).",
    )(f)
