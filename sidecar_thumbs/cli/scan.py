"""``sidecar-thumbs scan``: one sweep with a progress display and a summary that adds up."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from sidecar_thumbs import api
from sidecar_thumbs.cli.common import (
    current_log_format,
    fail,
    global_opts,
    log,
    notice,
    renderer_is_cold,
    rendering_options,
    roots_for,
    settings_for,
)
from sidecar_thumbs.errors import EXIT_OK, EXIT_PROBLEMS, SidecarError
from sidecar_thumbs.logs import log_outcome, log_problem
from sidecar_thumbs.units import format_rate

__all__ = ["scan"]


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Render every model again, changed or not.")
@click.option("--retry-failed", is_flag=True, help="Try models that failed before again, even unchanged.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@rendering_options
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
    continues where this one stopped. Exits 3 while models under PATHS fail (this run or before). A
    root that is absent, unmounted, unreadable or suddenly empty is offline: the scan stops with exit 1
    and marks nothing missing.

    Example: sidecar-thumbs scan /Volumes/3D-Files/3D-Models --workers 8
    """
    from sidecar_thumbs.cli.progress import Progress

    settings = settings_for(ctx, **opts)
    roots = roots_for(paths, settings)
    g = global_opts(ctx)
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
        cold = todo > 0 and renderer_is_cold(settings)
        if cold:
            notice(ctx, "compiling the renderer: the first run takes about a minute longer (once per installation)")
        mode = "off" if g.quiet or as_json else ("json" if current_log_format() == "json" else "auto")
        progress = Progress(todo, mode=mode, compiling=cold).start()

    def on_outcome(o: Any) -> None:
        log_outcome(o.path, ok=o.ok, source=o.source, reason=o.error, transient=o.transient, ms=o.render_ms)
        if progress is not None:
            progress.update(o.ok)

    # SIGTERM (a service manager, `kill`): stop starting renders, let the running ones finish and be
    # saved, then end with a summary; a second SIGTERM stops at once, like Ctrl-C.
    stop = threading.Event()

    def on_sigterm(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        log.warning("SIGTERM: stopping after the running renders (again to stop now)")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        summary = api.scan(
            roots, settings, force=force, retry_failed=retry_failed, on_outcome=on_outcome, on_plan=on_plan,
            stop=stop, allow_mass_missing=allow_mass_missing,
        )  # fmt: skip
    except KeyboardInterrupt:
        if progress is not None:
            progress.finish()
        log.warning("interrupted: finished renders are saved; run the scan again to continue")
        sys.exit(130)
    except SidecarError as exc:
        if progress is not None:
            progress.finish()
        fail(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if progress is not None:
            progress.finish()
    if summary.deferred_to is not None:
        log.warning(
            "another sidecar-thumbs %s runs on this database: %d models marked for it to render "
            "(sidecar-thumbs status)",
            summary.deferred_to,
            summary.deferred,
        )
    if stop.is_set():
        log.warning("stopped cleanly: finished renders are saved; run the scan again to continue")
    for p in summary.problems[:10]:
        log_problem(p.path, p.reason)
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
    else:
        # Each failure was logged once, as it happened; the summary only counts them.
        click.echo(summary_line(summary))
    if stop.is_set():
        sys.exit(128 + signal.SIGTERM)  # the shell's code for "ended by SIGTERM", after a clean stop
    sys.exit(EXIT_PROBLEMS if summary.failed or summary.known_failed else EXIT_OK)


def summary_line(s: Any) -> str:
    """found N · then every part of N that is not zero (they add up to N), then time and rate."""
    parts = [
        ("unchanged", s.unchanged),
        ("already had a thumbnail", s.adopted),
        ("rendered", s.rendered),
        ("embedded", s.embedded),
        ("failed", s.failed),
        ("still failing (unchanged; --retry-failed)", s.known_failed),
        ("pending", s.pending),
    ]
    shown = [f"{name} {n}" for name, n in parts if n] or ["nothing"]
    tail = [f"{s.missing} gone"] if s.missing else []
    tail += [f"{s.healed} healed"] if s.healed else []  # rows marked missing whose model came back
    rate = format_rate(s.renders_per_s)
    tail += [f"{s.elapsed:.1f} s", *([rate] if rate else [])]
    return f"found {s.found}: " + " · ".join(shown) + " · " + " · ".join(tail)
