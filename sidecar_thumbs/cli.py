"""The command line: parse options, load settings, call the library, map errors to exit codes.

Exit codes: 0 all good · 1 the run failed (config, database, lock) · 2 usage error · 3 the run
finished but some files failed, or ``verify`` found problems.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from sidecar_thumbs import __version__, api
from sidecar_thumbs.cli_common import (
    fail,
    log,
    log_level,
    mass_missing_option,
    pool_options,
    printable_output,
    render_options,
    roots_for,
    settings_for,
    thumbnail_options,
)
from sidecar_thumbs.errors import EXIT_OK, EXIT_PROBLEMS, SidecarError

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
    printable_output()
    setup_logging(log_level(verbose, quiet), log_format or "text")


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

    settings = settings_for(ctx, **opts)
    options = thumbnail_options(settings)
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
@mass_missing_option
@pool_options
@render_options
@click.pass_context
def scan(
    ctx: click.Context,
    paths: tuple[Path, ...],
    force: bool,
    retry_failed: bool,
    as_json: bool,
    allow_mass_missing: bool,
    **opts: Any,
) -> None:
    """Scan PATHS once and render every model that is new, changed or missing its thumbnail.

    Unchanged models cost one stat each: the content is hashed only when size or mtime moved, and
    a touched or identically copied file is not rendered again. Ctrl-C stops cleanly; the next scan
    continues where this one stopped. A root that is absent, unmounted, unreadable or suddenly empty is
    offline: the scan stops with exit 1 and marks nothing missing.

    Example: sidecar-thumbs scan /Volumes/3D-Files/3D-Models --workers 8
    """
    from sidecar_thumbs.progress import Progress

    settings = settings_for(ctx, **opts)
    roots = roots_for(paths, settings)
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

    try:
        summary = api.scan(
            roots,
            settings,
            force=force,
            retry_failed=retry_failed,
            on_outcome=on_outcome,
            on_plan=on_plan,
            allow_mass_missing=allow_mass_missing,
        )
    except KeyboardInterrupt:
        click.echo("\ninterrupted: finished renders are saved; run the scan again to continue", err=True)
        sys.exit(130)
    except SidecarError as exc:
        fail(exc)
    finally:
        if progress is not None:
            progress.finish()
    if summary.deferred_to is not None and not as_json:
        click.echo(
            f"another sidecar-thumbs {summary.deferred_to} runs on this database: {summary.deferred} models marked "
            "for it to render (sidecar-thumbs status)",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        _print_scan_summary(summary)
    sys.exit(EXIT_PROBLEMS if summary.failed else EXIT_OK)


def _print_scan_summary(s: Any) -> None:
    healed = f"healed {s.healed} · " if s.healed else ""  # rows marked missing whose model came back
    click.echo(
        f"found {s.found} · unchanged {s.unchanged + s.touched} · rendered {s.rendered} · "
        f"embedded {s.embedded} · failed {s.failed} · missing {s.missing} · {healed}"
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
@mass_missing_option
@pool_options
@render_options
@click.pass_context
def verify(
    ctx: click.Context, paths: tuple[Path, ...], fix: bool, as_json: bool, allow_mass_missing: bool, **opts: Any
) -> None:
    """Find missing, stale, orphaned and corrupt sidecars, and database flags that disagree.

    Works from the files alone when the database does not exist. Exits 3 when problems are found
    (after --fix: when problems remain).

    Example: sidecar-thumbs verify ~/Models --fix
    """
    settings = settings_for(ctx, **opts)
    roots = roots_for(paths, settings)
    try:
        report = api.verify(roots, settings, fix=fix, allow_mass_missing=allow_mass_missing)
    except SidecarError as exc:
        fail(exc)
    fixed = report.fixed
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
    settings = settings_for(ctx)
    try:
        report = api.clean(roots_for(paths, settings), settings, dry_run=dry_run)
    except SidecarError as exc:
        fail(exc)
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


def _register_extra_commands() -> None:
    # Commands that live in their own modules (they import cli's helpers lazily, so no cycle).
    from sidecar_thumbs.cli_daemon import status, watch
    from sidecar_thumbs.gallery_cli import gallery_command

    for command in (watch, status, gallery_command):
        cli.add_command(command)


_register_extra_commands()


def main() -> None:  # pragma: no cover - console entry point
    cli()
