"""The public API: load settings, then scan, verify, clean, render or watch a model library.

Everything here is exported from ``sidecar_thumbs``; the CLI is a thin layer over these functions. The
safety rules live here, not in the CLI: ``scan`` and ``verify(fix=True)`` take the coordinator lock on
the database (one renderer per database), and when a daemon already holds it they only mark what needs
rendering, for the daemon to render. Every error raised is a :class:`SidecarThumbsError`.

Heavy modules (numpy, numba, the process pool) are imported when a function runs, so
``import sidecar_thumbs`` stays cheap.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sidecar_thumbs.errors import LockedError, ModelError
from sidecar_thumbs.settings import loading
from sidecar_thumbs.settings.fields import Settings
from sidecar_thumbs.wiring import PathArg, executor_for, open_state_db, roots_from, thumbnail_options

if TYPE_CHECKING:
    from sidecar_thumbs.files.roots import MassMissingGuard
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions
    from sidecar_thumbs.reports.clean import CleanReport
    from sidecar_thumbs.reports.verify import VerifyReport
    from sidecar_thumbs.store.lock import DaemonLock
    from sidecar_thumbs.store.state import StateDB
    from sidecar_thumbs.work.outcomes import Outcome
    from sidecar_thumbs.work.plan import Plan
    from sidecar_thumbs.work.scan import ScanSummary

__all__ = ["clean", "load_settings", "render_file", "scan", "verify", "watch"]

# The CLI's logger: the daemon's start-up lines read the same whichever way it was started.
log = logging.getLogger("sidecar_thumbs")

Paths = PathArg | Sequence[PathArg]


def load_settings(env_file: PathArg | None = None, **overrides: object) -> Settings:
    """Load the settings as the CLI does: defaults < ``.env`` < ``.env.local`` < environment < ``overrides``.

    Args:
        env_file: Read only this file instead of ``./.env.local`` and ``./.env``; it must exist.
        **overrides: Values by field name (``database="/tmp/t.sqlite3", workers=2``), typed or as text;
            ``None`` means "not given".

    Raises:
        UnknownSettingError: an override names no setting (the message names it).
        ConfigError: a value is invalid (the message names the variable, the value and its source).
    """
    return loading.load_settings(env_file=env_file, overrides=overrides)


def mass_missing_guard(settings: Settings, allow_mass_missing: bool = False) -> MassMissingGuard:
    """When a walk's losses are believed: from the settings, and the caller's word for a real mass deletion."""
    from sidecar_thumbs.files.roots import MassMissingGuard

    return MassMissingGuard(settings.mass_missing_share, settings.mass_missing_min, allow_mass_missing)


def _take_lock(database: PathArg, role: str) -> tuple[DaemonLock, str | None]:
    """The coordinator lock, or who holds it: ``(lock, None)`` when ours, else ``(lock, "daemon (pid 12)")``."""
    from sidecar_thumbs.store.lock import DaemonLock

    lock = DaemonLock(database, role=role)
    try:
        lock.acquire()
    except LockedError:
        holder = lock.holder
        return lock, f"{holder.role} (pid {holder.pid})" if holder else "process"
    return lock, None


def scan(
    paths: Paths = (),
    settings: Settings | None = None,
    *,
    force: bool = False,
    retry_failed: bool = False,
    on_plan: Callable[[Plan, int], None] | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    stop: threading.Event | None = None,
    allow_mass_missing: bool = False,
) -> ScanSummary:
    """Scan ``paths`` once and render every model that is new, changed or missing its thumbnail.

    Takes the coordinator lock on the database for the run. When another coordinator (a running
    daemon, another scan) holds it, nothing is rendered here: the models are marked pending for it,
    and the summary says how many (``deferred``) and who renders them (``deferred_to``).

    Args:
        paths: folders or model files; default the configured roots.
        settings: default :func:`load_settings` ().
        force: render every model again, changed or not.
        retry_failed: try models that failed before again, even unchanged.
        on_plan: called with the plan and the number of models to render, before rendering starts.
        on_outcome: called for every model rendered or failed (progress).
        stop: set it from another thread to stop starting new renders.
        allow_mass_missing: believe a root that lists no models or lost more than the set share of them at
            once (the models were really deleted); without it such a root is offline.

    Raises:
        RootOfflineError: a root is absent, unmounted, unreadable or suddenly empty; nothing was marked
            missing.
        ConfigError, DatabaseError: the run cannot start or go on. One bad model never raises: it is
            counted in ``failed`` with its reason in ``failures``.
    """
    from sidecar_thumbs.work.scan import scan as run_scan

    settings = settings if settings is not None else load_settings()
    roots = roots_from(paths, settings)
    # Made on first use (a hash or a render): they import the renderer, which a no-op rescan never needs.
    options = functools.cache(functools.partial(thumbnail_options, settings))
    db = open_state_db(settings)
    try:
        _check_dam_paths(db, roots)
        # One coordinator per database: while a daemon runs, it renders what this scan marks; while this
        # scan renders, a daemon starting meanwhile refuses (it would hand our claims out again).
        lock, holder = _take_lock(settings.database, "scan")
        try:
            summary = run_scan(
                roots,
                db=db,
                options=options,
                batch_size=settings.batch_size,
                timeout=settings.timeout,
                full_fsync=settings.full_fsync,
                make_executor=lambda: executor_for(settings, options()),
                force=force,
                retry_failed=retry_failed,
                on_outcome=on_outcome,
                on_plan=on_plan,
                stop=stop,
                mark_only=holder is not None,
                holds_lock=holder is None,
                guard=mass_missing_guard(settings, allow_mass_missing),
            )
        finally:
            lock.release()
    finally:
        db.close()
    summary.deferred_to = holder
    return summary


def _check_dam_paths(db: StateDB, roots: Sequence[str]) -> None:
    """Attached to an asset manager: refuse at start a path column that holds no paths (ConfigError)."""
    if db.dam is not None:
        db.check_dam_paths(roots)


def verify(
    paths: Paths = (), settings: Settings | None = None, fix: bool = False, *, allow_mass_missing: bool = False
) -> VerifyReport:
    """Find missing, stale, orphaned and corrupt sidecars and database flags that disagree; repair them
    with ``fix``.

    Without ``fix`` nothing is changed (the database, if it exists, is opened read-only; without one the
    check works from the files alone). With ``fix`` the repairs are applied, the models that need a new
    sidecar are rendered under the coordinator lock (or, when a daemon holds it, marked for the daemon),
    and the returned report is of a second check after the repairs; ``report.fixed`` says what was done.

    Raises:
        RootOfflineError: a root is offline (``allow_mass_missing`` as for :func:`scan`).
    """
    from sidecar_thumbs.reports.verify import verify as run_verify

    settings = settings if settings is not None else load_settings()
    roots = roots_from(paths, settings)
    options = thumbnail_options(settings)
    expected = options.describe()
    # Reading only unless asked to fix: verify must never change what it checks.
    db = open_state_db(settings, readonly=not fix) if (fix or settings.database.exists()) else None
    try:
        guard = mass_missing_guard(settings, allow_mass_missing)
        report = run_verify(roots, db=db, expected_settings=expected, guard=guard)
        if fix and report.problems:
            assert db is not None
            fixed = _fix(report, roots, settings, options, db)
            report = run_verify(roots, db=db, expected_settings=expected, guard=guard)
            report.fixed = fixed
    finally:
        if db is not None:
            db.close()
    return report


def _fix(
    report: VerifyReport, roots: list[str], settings: Settings, options: ThumbnailOptions, db: StateDB
) -> dict[str, int]:
    from sidecar_thumbs.reports.verify import plan_fixes
    from sidecar_thumbs.work.claims import run_pending
    from sidecar_thumbs.work.pipeline import Pipeline

    lock, holder = _take_lock(settings.database, "verify")
    try:
        fixes = plan_fixes(report, db)
        rendered = failed = 0
        if fixes.rerender and holder is None:
            executor = executor_for(settings, options, workers=min(settings.workers, len(fixes.rerender)))
            pipeline = Pipeline(db, executor, options, timeout=settings.timeout, roots=roots)
            try:
                stats = run_pending(pipeline, settings.batch_size, roots)
            finally:
                executor.shutdown()
                pipeline.close()
            rendered, failed = stats.rendered + stats.embedded, stats.failed
    finally:
        lock.release()
    fixed = {
        "rendered": rendered,
        "render_failed": failed,
        "orphans_removed": len(fixes.removed),
        "reflagged": fixes.reflagged,
        "rows_marked_missing": fixes.forgotten,
    }
    if holder is not None:
        fixed["deferred"] = len(fixes.rerender)  # marked pending: the running daemon renders them
    return fixed


def clean(paths: Paths = (), settings: Settings | None = None, dry_run: bool = False) -> CleanReport:
    """Remove orphaned sidecars of ours (their model is gone) and temp files of interrupted writes.

    Only files that carry sidecar-thumbs' own metadata are removed; anything else with a sidecar-shaped
    name is listed in ``left_alone``. A file that cannot be removed is listed in ``errors``.

    Raises:
        RootOfflineError: a root is offline: nothing is removed under it.
    """
    from sidecar_thumbs.reports.clean import clean as run_clean

    settings = settings if settings is not None else load_settings()
    return run_clean(roots_from(paths, settings), dry_run=dry_run)


def render_file(path: PathArg, size: int = 256, embedded: bool = True, *, settings: Settings | None = None) -> bytes:
    """The thumbnail of one model file as PNG bytes (with our metadata); no database, nothing written.

    Args:
        path: an STL or 3MF file.
        size: width and height in pixels (16..4096).
        embedded: use a 3MF's own slicer picture when it has one.
        settings: colour, renderer and load limits (default: the defaults); ``size`` and ``embedded``
            always come from the arguments.

    Raises:
        ModelError: the file cannot be thumbnailed (the message says why).
        ConfigError: ``size`` is out of range.
    """
    from sidecar_thumbs.render.thumbnail import make_thumbnail

    base = settings if settings is not None else Settings()
    options = thumbnail_options(dataclasses.replace(base, size=size, embedded=embedded))
    if not os.path.lexists(path):
        raise ModelError("no such file")
    return make_thumbnail(path, options).png


def watch(
    settings: Settings | None = None,
    stop: threading.Event | None = None,
    *,
    roots: Paths = (),
    once: bool = False,
    handle_signals: bool = False,
    allow_mass_missing: bool = False,
) -> int:
    """Run the daemon: watch the roots, render new and changed models, keep the database current.

    Blocks until ``stop`` is set (running renders finish within the grace period; nothing partial is
    left) or, with ``once``, until everything pending is done. Only one daemon (or scan) may run per
    database: a second one raises :class:`LockedError` naming the first.

    Args:
        settings: default :func:`load_settings` (); ``settings.roots`` unless ``roots`` is given.
        stop: a ``threading.Event`` another thread sets to stop the daemon.
        roots: folders to watch instead of the configured roots.
        once: burst mode: rescan, render everything pending, then return (cron, tests).
        handle_signals: stop on SIGTERM/SIGINT (a second signal stops at once); main thread only.
        allow_mass_missing: believe the first walk of a root that lists no models or lost most of them.

    Returns:
        How many models failed during the run.
    """
    from sidecar_thumbs import __version__
    from sidecar_thumbs.daemon.loop import Daemon, DaemonConfig
    from sidecar_thumbs.store.lock import DaemonLock

    settings = settings if settings is not None else load_settings()
    dirs = roots_from(roots, settings)
    options = thumbnail_options(settings)
    daemon_config = DaemonConfig(
        roots=tuple(dirs), settle=settings.settle, sweep_interval=settings.sweep_interval,
        rescan_interval=settings.rescan_interval, batch_size=settings.batch_size,
        grace_period=settings.grace_period, timeout=settings.timeout, polling=settings.polling,
        poll_interval=settings.poll_interval, once=once, full_fsync=settings.full_fsync,
        guard=mass_missing_guard(settings, allow_mass_missing),
    )  # fmt: skip
    db = open_state_db(settings)
    try:
        _check_dam_paths(db, dirs)
        where = (
            f"Dask cluster at {settings.dask_scheduler}"
            if settings.executor == "dask"
            else f"{settings.workers} workers"
        )
        log.info("sidecar-thumbs %s: database %s, %s", __version__, settings.database, where)
        daemon = Daemon(
            daemon_config, db=db, options=options, lock=DaemonLock(settings.database),
            make_executor=lambda: executor_for(settings, options),
        )  # fmt: skip
        # The caller's handlers come back afterwards: a later Ctrl-C must not go to a daemon that is gone.
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if handle_signals else {}
        if handle_signals:
            daemon.install_signal_handlers()
        finished = threading.Event()
        if stop is not None:
            threading.Thread(
                target=_relay_stop, args=(stop, finished, daemon.request_stop), name="sidecar-thumbs-stop", daemon=True
            ).start()
        try:
            daemon.run()
        finally:
            finished.set()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
    finally:
        db.close()
    return daemon.failed_total


def _relay_stop(stop: threading.Event, finished: threading.Event, request_stop: Callable[[], None]) -> None:
    # The caller's event is theirs to set and read: we only watch it, and never set it ourselves.
    while not finished.is_set():
        if stop.wait(0.1):
            request_stop()
            return
