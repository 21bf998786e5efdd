"""Shared pieces of the command line: settings, options, database and executor from settings.

The commands themselves live in ``cli`` (one-off commands), ``cli_daemon`` (watch, status) and
``gallery_cli``; each parses options, loads settings, calls the library and maps errors to exit codes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from sidecar_thumbs.errors import SidecarError
from sidecar_thumbs.files.discover import set_model_extensions
from sidecar_thumbs.logs import json_line, setup_logging
from sidecar_thumbs.settings.fields import Settings
from sidecar_thumbs.settings.loading import load_settings
from sidecar_thumbs.wiring import executor_for, open_state_db, thumbnail_options

__all__ = [
    "configure_logging",
    "current_log_format",
    "executor_for",
    "fail",
    "fail_message",
    "global_options",
    "global_opts",
    "log",
    "log_level",
    "notice",
    "open_db",
    "pool_options",
    "problem",
    "render_options",
    "renderer_is_cold",
    "rendering_options",
    "roots_for",
    "settings_for",
    "thumbnail_options",
]

log = logging.getLogger("sidecar_thumbs")

_META_KEY = "sidecar_thumbs.global_options"
_state = {"format": "text"}  # the log format in use, for error lines printed before exiting


@dataclass
class GlobalOptions:
    """The options every command takes, before or after its name (``-v watch`` = ``watch -v``)."""

    env_file: Path | None = None
    verbose: int = 0
    quiet: bool = False
    log_format: str | None = None
    database: Path | None = None


def global_opts(ctx: click.Context) -> GlobalOptions:
    """The global options given so far, the group's and the command's merged."""
    found = ctx.meta.get(_META_KEY)
    if not isinstance(found, GlobalOptions):
        found = ctx.meta[_META_KEY] = GlobalOptions()
    return found


def _merge(ctx: click.Context, param: click.Parameter, value: Any) -> None:
    # The group's options are parsed first, the command's after: counts add up, a flag set anywhere
    # stays set, and a value given after the command wins over one given before it.
    opts = global_opts(ctx)
    name = param.name or ""
    if name == "verbose":
        opts.verbose += value or 0
    elif name == "quiet":
        opts.quiet = opts.quiet or bool(value)
    elif value is not None:
        setattr(opts, name, value)


def global_options(db: bool = True) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Add -v/-q/--log-format/--env-file (and --db) to a command; the group has them too."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        if db:
            f = click.option(
                "--db", "database", type=click.Path(path_type=Path, readable=False), default=None, expose_value=False,
                callback=_merge, help="State database [DAM_DATABASE_PATH, default: the user data folder].",
            )(f)  # fmt: skip
        f = click.option(
            "--env-file", type=click.Path(dir_okay=False, path_type=Path), default=None, expose_value=False,
            callback=_merge, help="Read settings from this file instead of ./.env.local and ./.env.",
        )(f)  # fmt: skip
        f = click.option(
            "--log-format", type=click.Choice(["text", "json"]), default=None, expose_value=False, callback=_merge,
            help="Log lines as text or one JSON object per line [SIDECAR_THUMBS_LOG_FORMAT].",
        )(f)  # fmt: skip
        f = click.option(
            "-q", "--quiet", is_flag=True, default=False, expose_value=False, callback=_merge,
            help="Only errors (and the final summary).",
        )(f)  # fmt: skip
        f = click.option(
            "-v", "--verbose", count=True, expose_value=False, callback=_merge,
            help="A line per file rendered or failed (-vv: debug).",
        )(f)  # fmt: skip
        return f

    return decorate


def fail(exc: SidecarError) -> NoReturn:
    fail_message(exc.message, exc.exit_code)


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


def fail_message(message: str, code: int = 1) -> NoReturn:
    if _state["format"] == "json":
        click.echo(json_line("error", "sidecar_thumbs", message), err=True)
    else:
        click.echo(f"sidecar-thumbs: {message}", err=True)
    sys.exit(code)


def configure_logging(
    ctx: click.Context, log_format: str = "text", default_level: int = logging.WARNING, log_file: str = ""
) -> None:
    """Set up logging from the merged -v/-q/--log-format (the settings ``log_format``, ``log_file`` as fallback)."""
    opts = global_opts(ctx)
    fmt = opts.log_format or log_format
    _state["format"] = fmt
    level = log_level(opts.verbose, opts.quiet, default_level)
    try:
        setup_logging(level, fmt, per_file=opts.verbose > 0, log_file=log_file)
    except OSError as exc:
        fail_message(f"cannot write the log file {log_file}: {exc.strerror or exc} (SIDECAR_THUMBS_LOG_FILE)")


def current_log_format() -> str:
    return _state["format"]


def settings_for(ctx: click.Context, default_level: int = logging.WARNING, **overrides: Any) -> Settings:
    """Load the settings (flags > environment > env file) and set up logging as they and -v/-q ask."""
    opts = global_opts(ctx)
    if overrides.get("database") is None and opts.database is not None:
        overrides["database"] = opts.database
    # Until the settings are loaded, the environment's log format is the best guess (for an error in them).
    early = os.environ.get("SIDECAR_THUMBS_LOG_FORMAT", "text")
    configure_logging(ctx, early if early in ("text", "json") else "text", default_level)
    try:
        settings = load_settings(env_file=opts.env_file, overrides=overrides)
    except SidecarError as exc:
        fail(exc)
    configure_logging(ctx, settings.log_format, default_level, settings.log_file)
    # What counts as a model is one answer per process: walk, watcher, event intake, verify, gallery.
    set_model_extensions(settings.model_suffixes)
    for note in settings.notes:
        log.warning("%s", note)
    return settings


def notice(ctx: click.Context, message: str) -> None:
    """A line the user should see by default that is not a problem (e.g. why the first run is slow):
    on stderr, as JSON with --log-format json, not with -q."""
    if global_opts(ctx).quiet:
        return
    if _state["format"] == "json":
        click.echo(json_line("info", "sidecar_thumbs", message, event="notice"), err=True)
    else:
        click.echo(message, err=True)


def problem(message: str, path: str | None = None) -> None:
    """A problem line on stderr that is a command's own output (not a log record): as printed in text,
    a JSON warning event with --log-format json, so every stderr line stays one object there."""
    if _state["format"] == "json":
        fields: dict[str, Any] = {"event": "problem", "path": path} if path is not None else {}
        click.echo(json_line("warning", "sidecar_thumbs", message, **fields), err=True)
    else:
        click.echo(message, err=True)


def renderer_is_cold(settings: Settings) -> bool:
    """Whether this run's renders will first compile the numba renderer (about a minute, once)."""
    from sidecar_thumbs import numba_cache

    return settings.renderer != "numpy" and numba_cache.is_cold()


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


def rendering_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """The options of every command that renders (scan, verify, watch): the mass-missing guard, the pool,
    the thumbnails and the global ones; the command is passed the click context."""
    for option in (click.pass_context, global_options(), render_options, pool_options, mass_missing_option):
        f = option(f)
    return f
