"""The command line: parse options, load settings, call the library, map errors to exit codes.

Exit codes: 0 all good · 1 the run failed (config, database, lock) · 2 usage error · 3 the run
finished but some files failed, or ``verify`` found problems.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from sidecar_thumbs import __version__, api, numba_cache
from sidecar_thumbs.cli.common import (
    configure_logging,
    current_log_format,
    fail,
    global_options,
    global_opts,
    notice,
    printable_output,
    problem,
    render_options,
    renderer_is_cold,
    rendering_options,
    roots_for,
    settings_for,
    thumbnail_options,
)
from sidecar_thumbs.errors import EXIT_OK, EXIT_PROBLEMS, SidecarError
from sidecar_thumbs.logs import log_outcome

# -- the group -------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sidecar-thumbs")
@global_options()
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Keep a PNG thumbnail next to every 3D-printing model (STL, 3MF, STEP, zip, ...) and record it in a database.

    -v, -q, --log-format, --env-file and --db work before or after the command's name.

    Example: sidecar-thumbs scan ~/Models
    """
    printable_output()
    configure_logging(ctx)
    # Only our kernels run in this process: numba may skip its probes for features they never use.
    numba_cache.own_process()


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
@global_options(db=False)
@click.pass_context
def render(ctx: click.Context, files: tuple[Path, ...], output: Path | None, **opts: Any) -> None:
    """Render thumbnails for FILES now, without the database.

    Each thumbnail goes beside its model as .<filename>.thumbnail.png unless -o is given, and its
    path is printed (-q: nothing). A file that cannot be thumbnailed prints one line "path: reason";
    the others still render, and the command exits 3.

    Example: sidecar-thumbs render part.stl -o part.png --size 512
    """
    from sidecar_thumbs.work.oneoff import render_files

    settings = settings_for(ctx, **opts)
    options = thumbnail_options(settings)
    quiet = global_opts(ctx).quiet
    if renderer_is_cold(settings):
        notice(ctx, "compiling the renderer: the first run takes about a minute longer (once per installation)")
    to_dir = output is not None and (len(files) > 1 or output.is_dir())
    if to_dir:
        assert output is not None
        output.mkdir(parents=True, exist_ok=True)
    failed = 0
    # Each file's data is ordered before its rename as it is written (while the next file renders); the
    # renames are made durable by one folder fsync per folder at the end, as the pipeline does per batch.
    for done in render_files(files, options, output, to_dir=to_dir):
        if done.error is not None:
            failed += 1
            if current_log_format() == "json":
                log_outcome(str(done.model), ok=False, reason=done.error.message, transient=done.error.transient)
            else:
                click.echo(f"{done.model}: {done.error.message}", err=True)
            continue
        assert done.thumb is not None
        log_outcome(str(done.model), ok=True, source=done.thumb.source, ms=done.thumb.load_ms + done.thumb.render_ms)
        if not quiet:
            click.echo(str(done.dest))
    sys.exit(EXIT_PROBLEMS if failed else EXIT_OK)


# -- verify ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--fix", is_flag=True, help="Re-render missing/stale/corrupt, remove orphans, re-flag rows.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@rendering_options
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
        # Models whose render failed have no sidecar by design: not a problem, but say so.
        known = f"; {report.failed_known} known to fail (reasons: sidecar-thumbs status)" if report.failed_known else ""
        click.echo(f"checked {report.models} models, {report.sidecars} sidecars: {report.fresh} fresh; {kinds}{known}")
    sys.exit(EXIT_PROBLEMS if report.problems else EXIT_OK)


# -- clean -----------------------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--dry-run", is_flag=True, help="Show what would be removed; remove nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@global_options(db=False)
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
            problem(f"left alone (not ours) {p}", str(p))
        for p, r in report.errors:
            problem(f"cannot remove {p}: {r}", str(p))
        click.echo(
            f"{verb} {len(report.removed)} orphaned sidecars, {len(report.temp_removed)} temp files; "
            f"{len(report.left_alone)} foreign files left alone"
        )
    sys.exit(EXIT_PROBLEMS if report.errors else EXIT_OK)


def _register_extra_commands() -> None:
    # Commands that live in their own modules (they import cli's helpers lazily, so no cycle).
    from sidecar_thumbs.cli.daemon import status, watch
    from sidecar_thumbs.cli.gallery import gallery_command
    from sidecar_thumbs.cli.scan import scan

    for command in (scan, watch, status, gallery_command):
        cli.add_command(command)


_register_extra_commands()


def main() -> None:  # pragma: no cover - console entry point
    cli()
