"""The command line: parse options, load settings, call the library, map errors to exit codes.

Exit codes: 0 all good · 1 the run failed (config, database, lock) · 2 usage error · 3 the run
finished but some files failed, or ``verify`` found problems.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from sidecar_thumbs import __version__
from sidecar_thumbs.config import Settings, load_settings
from sidecar_thumbs.errors import EXIT_OK, EXIT_PROBLEMS, SidecarError

log = logging.getLogger("sidecar_thumbs")


# -- plumbing --------------------------------------------------------------------------------------


def _fail(exc: SidecarError) -> NoReturn:
    click.echo(f"sidecar-thumbs: {exc.message}", err=True)
    sys.exit(exc.exit_code)


def _settings(ctx: click.Context, **overrides: Any) -> Settings:
    obj = ctx.find_root().obj or {}
    try:
        return load_settings(env_file=obj.get("env_file"), overrides=overrides)
    except SidecarError as exc:
        _fail(exc)


def _log_level(verbose: int, quiet: bool, default: int = logging.WARNING) -> int:
    if quiet:
        return logging.ERROR
    if verbose > 1:
        return logging.DEBUG
    return logging.INFO if verbose else default


def _thumbnail_options(settings: Settings) -> Any:
    from sidecar_thumbs.render import RenderOptions
    from sidecar_thumbs.thumbnail import ThumbnailOptions

    return ThumbnailOptions(
        render=RenderOptions(size=settings.size, color=settings.color_rgb, kernel=settings.renderer),
        use_embedded=settings.embedded,
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
    return f


def _open_db(settings: Settings, *, readonly: bool = False, must_exist: bool = False) -> Any:
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
        _fail(exc)


def _roots(paths: tuple[Path, ...], settings: Settings) -> list[str]:
    roots = [os.path.abspath(p) for p in paths] or [os.path.abspath(r) for r in settings.roots]
    if not roots:
        raise click.UsageError("no PATH given and SIDECAR_THUMBS_ROOTS is not set")
    return roots


# -- the group -------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sidecar-thumbs")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read settings from this file instead of ./.env.local and ./.env.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default=None,
    help="Log lines as text or one JSON object per line [SIDECAR_THUMBS_LOG_FORMAT].",
)
@click.pass_context
def cli(ctx: click.Context, env_file: Path | None, verbose: int, quiet: bool, log_format: str | None) -> None:
    """Keep a PNG thumbnail next to every STL and 3MF model, and record it in a database.

    Example: sidecar-thumbs scan ~/Models
    """
    from sidecar_thumbs.logs import setup_logging

    ctx.obj = {"env_file": env_file, "verbose": verbose, "quiet": quiet, "log_format": log_format}
    setup_logging(_log_level(verbose, quiet), log_format or "text")


# -- render ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Write here instead of beside the model: a file for one model, a folder for several.",
)
@render_options
@click.pass_context
def render(ctx: click.Context, files: tuple[Path, ...], output: Path | None, **opts: Any) -> None:
    """Render thumbnails for FILES now, without the database.

    Each thumbnail goes beside its model as .<filename>.thumbnail.png unless -o is given. A file
    that cannot be thumbnailed prints one line "path: reason"; the others still render, and the
    command exits 3.

    Example: sidecar-thumbs render part.stl -o part.png --size 512
    """
    from sidecar_thumbs.atomic import atomic_write
    from sidecar_thumbs.errors import ModelError
    from sidecar_thumbs.sidecar import write_sidecar
    from sidecar_thumbs.thumbnail import make_thumbnail

    settings = _settings(ctx, **opts)
    options = _thumbnail_options(settings)
    to_dir = output is not None and (len(files) > 1 or output.is_dir())
    if to_dir:
        assert output is not None
        output.mkdir(parents=True, exist_ok=True)
    failed = 0
    written: dict[Path, Path] = {}
    for f in files:
        try:
            if not os.path.lexists(f):
                raise ModelError("no such file")
            if output is not None and to_dir:
                dest = output / f"{f.name}.png"
                if dest in written:
                    raise ModelError(f"{dest} already holds the thumbnail of {written[dest]}")
                written[dest] = f
            thumb = make_thumbnail(f, options)
            if output is None:
                dest = write_sidecar(f, thumb.png)
            else:
                dest = output / f"{f.name}.png" if to_dir else output
                try:
                    atomic_write(dest, thumb.png)
                except OSError as exc:
                    raise ModelError(f"cannot write {dest}: {exc.strerror or exc}") from None
        except ModelError as exc:
            failed += 1
            click.echo(f"{f}: {exc.message}", err=True)
            continue
        log.info("%s -> %s (%s, %.0f ms)", f, dest, thumb.source, thumb.load_ms + thumb.render_ms)
    sys.exit(EXIT_PROBLEMS if failed else EXIT_OK)


# -- scan ------------------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Render every model again, changed or not.")
@click.option("--retry-failed", is_flag=True, help="Try models that failed before again, even unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@pool_options
@render_options
@click.pass_context
def scan(
    ctx: click.Context, paths: tuple[Path, ...], force: bool, retry_failed: bool, as_json: bool, **opts: Any
) -> None:
    """Scan PATHS once and render every model that is new, changed or missing its thumbnail.

    Unchanged models cost one stat each: the content is hashed only when size or mtime moved, and
    a touched or identically copied file is not rendered again. Ctrl-C stops cleanly; the next scan
    continues where this one stopped.

    Example: sidecar-thumbs scan /Volumes/3D-Files/3D-Models --workers 8
    """
    from sidecar_thumbs.executors import make_executor
    from sidecar_thumbs.progress import Progress
    from sidecar_thumbs.scan import scan as run_scan

    settings = _settings(ctx, **opts)
    roots = _roots(paths, settings)
    options = _thumbnail_options(settings)
    quiet = ctx.find_root().obj.get("quiet", False)
    progress: Progress | None = None

    def on_plan(plan: Any, todo: int) -> None:
        nonlocal progress
        log.info(
            "found %d models: %d new, %d changed, %d unchanged; %d to render",
            plan.new + plan.changed + plan.unchanged + plan.touched,
            plan.new,
            plan.changed,
            plan.unchanged + plan.touched,
            todo,
        )
        progress = Progress(todo, enabled=not quiet and not as_json)

    def on_outcome(o: Any) -> None:
        if progress is not None:
            progress.update(o.ok)
        if not o.ok:
            log.warning("failed: %s: %s", o.path, o.error)

    db = _open_db(settings)
    summary = None
    try:
        summary = run_scan(
            roots,
            db=db,
            options=options,
            batch_size=settings.batch_size,
            timeout=settings.timeout,
            make_executor=lambda: make_executor(
                settings.workers,
                timeout=settings.timeout,
                max_tasks=settings.max_tasks_per_worker,
                options=options,
            ),
            force=force,
            retry_failed=retry_failed,
            on_outcome=on_outcome,
            on_plan=on_plan,
        )
    except KeyboardInterrupt:
        click.echo("\ninterrupted: finished renders are saved; run the scan again to continue", err=True)
        sys.exit(130)
    except SidecarError as exc:
        _fail(exc)
    finally:
        if progress is not None:
            progress.finish()
        db.close()
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        _print_scan_summary(summary)
    sys.exit(EXIT_PROBLEMS if summary.failed else EXIT_OK)


def _print_scan_summary(s: Any) -> None:
    click.echo(
        f"found {s.found} · unchanged {s.unchanged + s.touched} · rendered {s.rendered} · "
        f"embedded {s.embedded} · failed {s.failed} · missing {s.missing} · "
        f"{s.elapsed:.1f} s · {s.renders_per_s:.1f} renders/s"
    )
    for path, reason in s.failures[:20]:
        click.echo(f"  ✗ {path}: {reason}", err=True)
    if len(s.failures) > 20:
        click.echo(f"  … and {len(s.failures) - 20} more (sidecar-thumbs status)", err=True)
    for p in s.problems[:10]:
        click.echo(f"  ! {p.path}: {p.reason}", err=True)


# -- verify ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--fix", is_flag=True, help="Re-render missing/stale/corrupt, remove orphans, re-flag rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@pool_options
@render_options
@click.pass_context
def verify(ctx: click.Context, paths: tuple[Path, ...], fix: bool, as_json: bool, **opts: Any) -> None:
    """Find missing, stale, orphaned and corrupt sidecars, and database flags that disagree.

    Works from the files alone when the database does not exist. Exits 3 when problems are found
    (after --fix: when problems remain).

    Example: sidecar-thumbs verify ~/Models --fix
    """
    from sidecar_thumbs import verify as v

    settings = _settings(ctx, **opts)
    roots = _roots(paths, settings)
    options = _thumbnail_options(settings)
    # Reading only unless asked to fix: verify must never change what it checks.
    db = _open_db(settings, readonly=not fix) if (fix or settings.database.exists()) else None
    try:
        report = v.verify(roots, db=db, expected_settings=options.describe())
        fixed: dict[str, object] = {}
        if fix and report.problems:
            fixed = _fix(report, roots, settings, options, db)
            report = v.verify(roots, db=db, expected_settings=options.describe())
    except SidecarError as exc:
        _fail(exc)
    finally:
        if db is not None:
            db.close()
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "fixed": fixed}, indent=2))
    else:
        if fixed:
            click.echo("fixed: " + ", ".join(f"{k} {v}" for k, v in fixed.items()))
        for p in report.problems:
            click.echo(f"{p.kind.value:9} {p.path}: {p.detail}")
        kinds = ", ".join(f"{k} {n}" for k, n in report.by_kind().items()) or "no problems"
        click.echo(f"checked {report.models} models, {report.sidecars} sidecars: {report.fresh} fresh; {kinds}")
    sys.exit(EXIT_PROBLEMS if report.problems else EXIT_OK)


def _fix(report: Any, roots: list[str], settings: Settings, options: Any, db: Any) -> dict[str, object]:
    from sidecar_thumbs.executors import make_executor
    from sidecar_thumbs.pipeline import Pipeline, run_pending
    from sidecar_thumbs.verify import plan_fixes

    fixes = plan_fixes(report, db)
    rendered = failed = 0
    if fixes.rerender:
        executor = make_executor(
            min(settings.workers, len(fixes.rerender)),
            timeout=settings.timeout,
            max_tasks=settings.max_tasks_per_worker,
            options=options,
        )
        pipeline = Pipeline(db, executor, options, timeout=settings.timeout)
        try:
            stats = run_pending(pipeline, settings.batch_size, roots)
        finally:
            executor.shutdown()
            pipeline.close()
        rendered, failed = stats.rendered + stats.embedded, stats.failed
    return {
        "rendered": rendered,
        "render_failed": failed,
        "orphans_removed": len(fixes.removed),
        "reflagged": fixes.reflagged,
        "rows_marked_missing": fixes.forgotten,
    }


# -- clean -----------------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.pass_context
def clean(ctx: click.Context, paths: tuple[Path, ...], dry_run: bool, as_json: bool) -> None:
    """Remove orphaned sidecars (their model is gone) and temp files of interrupted writes.

    Only files that carry sidecar-thumbs' own metadata are removed; anything else with a similar name
    is reported and left alone.

    Example: sidecar-thumbs clean ~/Models --dry-run
    """
    from sidecar_thumbs.clean import clean as run_clean

    settings = _settings(ctx)
    report = run_clean(_roots(paths, settings), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "dry_run": dry_run}, indent=2))
    else:
        verb = "would remove" if dry_run else "removed"
        for p in report.removed:
            click.echo(f"{verb} {p}")
        for p in report.temp_removed:
            click.echo(f"{verb} temp {p}")
        for p in report.left_alone:
            click.echo(f"left alone (not ours) {p}", err=True)
        for p, r in report.errors:
            click.echo(f"cannot remove {p}: {r}", err=True)
        click.echo(
            f"{verb} {len(report.removed)} orphaned sidecars, {len(report.temp_removed)} temp files; "
            f"{len(report.left_alone)} foreign files left alone"
        )
    sys.exit(EXIT_PROBLEMS if report.errors else EXIT_OK)


# -- watch -----------------------------------------------------------------------------------------


@cli.command()
@click.argument("roots", nargs=-1, type=click.Path(path_type=Path))
@click.option("--once", is_flag=True, help="Burst mode: rescan, render everything pending, then exit (cron, tests).")
@click.option(
    "--polling/--no-polling",
    default=None,
    help="Poll folders instead of FSEvents/inotify, for shares where events do not arrive [SIDECAR_THUMBS_POLLING].",
)
@click.option(
    "--settle",
    type=click.FloatRange(0, 3600),
    default=None,
    help="Seconds a file must stay unchanged before it is rendered [SIDECAR_THUMBS_SETTLE, default 3].",
)
@click.option(
    "--rescan-interval",
    type=click.FloatRange(0),
    default=None,
    help="Seconds between full rescans that catch missed events; 0 disables "
    "[SIDECAR_THUMBS_RESCAN_INTERVAL, default 600].",
)
@pool_options
@render_options
@click.pass_context
def watch(ctx: click.Context, roots: tuple[Path, ...], once: bool, **opts: Any) -> None:
    """Run the daemon: watch ROOTS, render new and changed models, keep the database current.

    ROOTS default to SIDECAR_THUMBS_ROOTS. Events mark files; a sweep every 2 s hands pending files
    to the workers; a full rescan every 10 min catches events that never came. SIGTERM/Ctrl-C stop
    after the running renders (a second signal stops at once); a restart continues where it stopped.
    Only one daemon may run per database.

    Example: sidecar-thumbs watch /Volumes/3D-Files/3D-Models
    """
    from sidecar_thumbs.daemon import Daemon, DaemonConfig
    from sidecar_thumbs.executors import make_executor
    from sidecar_thumbs.lock import DaemonLock
    from sidecar_thumbs.logs import setup_logging

    settings = _settings(ctx, **opts)
    obj = ctx.find_root().obj
    # A daemon's log is its only voice: INFO by default, unlike the one-shot commands.
    setup_logging(_log_level(obj["verbose"], obj["quiet"], logging.INFO), obj["log_format"] or settings.log_format)
    dirs = _roots(roots, settings)
    for warning in settings.database_warnings():
        log.warning("%s", warning)
    options = _thumbnail_options(settings)
    config = DaemonConfig(
        roots=tuple(dirs), settle=settings.settle, sweep_interval=settings.sweep_interval,
        rescan_interval=settings.rescan_interval, batch_size=settings.batch_size,
        grace_period=settings.grace_period, timeout=settings.timeout, polling=settings.polling, once=once,
    )  # fmt: skip
    db = _open_db(settings)
    log.info("sidecar-thumbs %s: database %s, %d workers", __version__, settings.database, settings.workers)
    daemon = Daemon(
        config, db=db, options=options, lock=DaemonLock(settings.database),
        make_executor=lambda: make_executor(settings.workers, timeout=settings.timeout,
                                            max_tasks=settings.max_tasks_per_worker, options=options),
    )  # fmt: skip
    daemon.install_signal_handlers()
    try:
        code = daemon.run()
    except SidecarError as exc:
        _fail(exc)
    finally:
        db.close()
    sys.exit(code)


# -- status ----------------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
@click.option(
    "--db",
    "database",
    type=click.Path(path_type=Path),
    default=None,
    help="State database [DAM_DATABASE_PATH].",
)
@click.pass_context
def status(ctx: click.Context, as_json: bool, database: Path | None) -> None:
    """Show counts by status, the backlog, the render rate, last failures and whether a daemon runs.

    Reads the database while the daemon writes to it.

    Example: sidecar-thumbs status --json
    """
    from sidecar_thumbs.progress import format_duration
    from sidecar_thumbs.status import collect_status, format_since

    settings = _settings(ctx, database=database)
    try:
        from sidecar_thumbs.dam import DamMapping

        report = collect_status(
            settings.database, busy_timeout_ms=settings.busy_timeout_ms, dam=DamMapping.from_settings(settings)
        )
    except SidecarError as exc:
        _fail(exc)
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    click.echo(f"database  {report.database}")
    if report.dam is not None:
        dam = report.dam
        click.echo(
            f"attached  table {dam['table']}: {dam['models']} models, {dam['without_thumbnail']} without a "
            f"thumbnail ({dam['flag_column']} = 0)"
        )
    d = report.daemon
    click.echo(f"daemon    running, pid {d.pid}, since {format_since(d.since)}" if d else "daemon    not running")
    counts = " · ".join(f"{k} {v}" for k, v in report.counts.items())
    click.echo(f"models    {report.total}: {counts}")
    eta = format_duration(report.eta_s) if report.eta_s is not None else "-"
    click.echo(f"backlog   {report.backlog} · {report.rate_1m:.1f} renders/s over the last minute · ETA {eta}")
    if report.failures:
        click.echo("last failures:")
        for f in report.failures:
            click.echo(f"  ✗ {f['path']}: {f['error']}")


def _register_extra_commands() -> None:
    # Commands that live in their own modules (they import cli's helpers lazily, so no cycle).
    from sidecar_thumbs.gallery_cli import gallery_command

    cli.add_command(gallery_command)


_register_extra_commands()


def main() -> None:  # pragma: no cover - console entry point
    cli()
