"""The daemon's commands: ``watch`` and ``status``."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from sidecar_thumbs import api
from sidecar_thumbs.cli.common import (
    fail,
    global_options,
    log,
    open_db,
    renderer_is_cold,
    rendering_options,
    roots_for,
    settings_for,
)
from sidecar_thumbs.errors import EXIT_OK, EXIT_PROBLEMS, SidecarError

# -- watch -----------------------------------------------------------------------------------------


@click.command()
@click.argument("roots", nargs=-1, type=click.Path(path_type=Path))
@click.option("--once", is_flag=True, help="Burst mode: rescan, render everything pending, then exit (cron, tests).")
@click.option(
    "--polling/--no-polling",
    default=None,
    help="Poll folders instead of FSEvents/inotify: only on a client mount of a share (on the Mac that hosts "
    "the share FSEvents sees SMB writes) [SIDECAR_THUMBS_POLLING].",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(1),
    default=None,
    help="Seconds between polls when polling [SIDECAR_THUMBS_POLL_INTERVAL, default 60].",
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
@rendering_options
def watch(ctx: click.Context, roots: tuple[Path, ...], once: bool, allow_mass_missing: bool, **opts: Any) -> None:
    """Run the daemon: watch ROOTS, render new and changed models, keep the database current.

    ROOTS default to SIDECAR_THUMBS_ROOTS. Events mark files; a sweep every 2 s hands pending files
    to the workers; a full rescan every 10 min catches events that never came. SIGTERM/Ctrl-C stop
    after the running renders (a second signal stops at once); a restart continues where it stopped.
    Only one daemon may run per database. A root that is absent, unmounted or suddenly empty is
    offline: the daemon waits for it (status shows since when) and watches and rescans it when it is
    back; with --once it exits 1 instead. --allow-mass-missing counts for the start-up scan only.

    Example: sidecar-thumbs watch /Volumes/3D-Files/3D-Models
    """
    # A daemon's log is its only voice: INFO by default, unlike the one-shot commands.
    settings = settings_for(ctx, default_level=logging.INFO, **opts)
    dirs = roots_for(roots, settings)
    if settings.executor == "local" and renderer_is_cold(settings):
        log.info("compiling the renderer: the first renders take about a minute longer (once per installation)")
    try:
        failed = api.watch(settings, roots=dirs, once=once, handle_signals=True, allow_mass_missing=allow_mass_missing)
    except SidecarError as exc:
        fail(exc)
    # Burst mode is a run like scan: exit 3 while models under the roots fail, this run or before (cron
    # mails it; the same unchanged failure gives the same answer every run).
    sys.exit(EXIT_PROBLEMS if once and (failed or _failing_under(settings, dirs)) else EXIT_OK)


def _failing_under(settings: Any, roots: list[str]) -> int:
    """Models under ``roots`` whose last render failed (read-only)."""
    from sidecar_thumbs.types import ModelStatus

    db = open_db(settings, readonly=True)
    try:
        return db.counts_under(roots)[ModelStatus.FAILED]
    finally:
        db.close()


# -- status ----------------------------------------------------------------------------------------


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON on stdout.")
@global_options()
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show counts by status, the backlog, the render rate, last failures and whether a daemon runs.

    Reads the database while the daemon writes to it.

    Example: sidecar-thumbs status --json
    """
    from sidecar_thumbs.reports.status import collect_status, current_user, format_since
    from sidecar_thumbs.units import format_duration, format_rate

    settings = settings_for(ctx)
    for warning in settings.database_warnings():
        log.warning("%s", warning)
    try:
        from sidecar_thumbs.dam.mapping import DamMapping

        report = collect_status(
            settings.database, busy_timeout_ms=settings.busy_timeout_ms, dam=DamMapping.from_settings(settings),
            roots=[str(r) for r in settings.roots],
        )  # fmt: skip
    except SidecarError as exc:
        fail(exc)
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
    user = current_user()
    for i, r in enumerate(report.roots):
        click.echo(f"{'roots     ' if i == 0 else '          '}{r.describe(user)}")
    if report.renderer:
        click.echo(f"renderer  {report.renderer} (as the daemon last started)")
    else:
        from sidecar_thumbs.render import describe_kernel

        click.echo(f"renderer  {describe_kernel(settings.renderer)} (here; no daemon has recorded one)")
    counts = " · ".join(f"{k} {v}" for k, v in report.counts.items())
    click.echo(f"models    {report.total}: {counts}")
    rate = format_rate(report.rate_1m) or "no renders"
    eta = f" · ETA {format_duration(report.eta_s)}" if report.backlog and report.eta_s is not None else ""
    click.echo(f"backlog   {report.backlog} · {rate} over the last minute{eta}")
    if report.failures:
        click.echo("last failures:")
        for f in report.failures:
            click.echo(f"  ✗ {f['path']}: {f['error']}")
