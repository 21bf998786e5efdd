"""The public API, used as a program would: ``import sidecar_thumbs`` and nothing else.

Real SQLite files in tmp_path, real models written here, inline rendering (``workers=0``), a real
watchdog observer for ``watch``; the one subprocess test (a fresh interpreter) is ``integration``.
"""

from __future__ import annotations

import inspect
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from mesh_builders import binary_stl
from PIL import Image

import sidecar_thumbs
from sidecar_thumbs import errors
from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.store.lock import DaemonLock, read_lock_holder
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.types import ModelStatus

REPO = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def wait_for(cond: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture(autouse=True)
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No settings from the machine running the tests: no SIDECAR_THUMBS_* variables, no .env files."""
    for name in list(os.environ):
        if name.startswith("SIDECAR_THUMBS_") or name.startswith("DAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def lib(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "sub").mkdir(parents=True)
    (root / "part.stl").write_bytes(binary_stl(40, seed=1))
    (root / "sub" / "other.stl").write_bytes(binary_stl(30, seed=2))
    (root / "broken.stl").write_bytes(b"solid nothing here\n")
    return root


@pytest.fixture
def settings(tmp_path: Path) -> sidecar_thumbs.Settings:
    # A short settle window: burst mode waits for files still settling.
    return sidecar_thumbs.load_settings(database=tmp_path / "state.sqlite3", workers=0, size=64, settle=0.1)


def _status(db_path: Path, model: Path) -> ModelStatus:
    with StateDB(db_path, readonly=True) as db:
        row = db.get(str(model))
    assert row is not None
    return row.status


# -- settings and errors ---------------------------------------------------------------------------


def test_load_settings_takes_overrides_by_field_name(tmp_path: Path) -> None:
    s = sidecar_thumbs.load_settings(database=tmp_path / "x.sqlite3", workers=2, size="128", embedded=False)
    assert (s.database, s.workers, s.size, s.embedded) == (tmp_path / "x.sqlite3", 2, 128, False)
    assert dict(s.sources)["workers"] == "command line"


def test_load_settings_reads_the_env_file_it_is_given(tmp_path: Path) -> None:
    env = tmp_path / "thumbs.env"
    env.write_text("SIDECAR_THUMBS_SIZE=512\nSIDECAR_THUMBS_WORKERS=3\n")
    s = sidecar_thumbs.load_settings(env, workers=1)
    assert (s.size, s.workers) == (512, 1)


def test_an_unknown_setting_is_an_error_that_names_it() -> None:
    with pytest.raises(sidecar_thumbs.UnknownSettingError, match="'wrokers'") as caught:
        sidecar_thumbs.load_settings(wrokers=2)
    assert caught.value.name == "wrokers"
    assert isinstance(caught.value, sidecar_thumbs.ConfigError)
    assert isinstance(caught.value, sidecar_thumbs.SidecarThumbsError)


def test_an_invalid_value_is_a_config_error() -> None:
    with pytest.raises(sidecar_thumbs.ConfigError, match="size=3: must be between 16"):
        sidecar_thumbs.load_settings(size=3)


def test_every_error_class_is_a_sidecar_thumbs_error() -> None:
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, Exception)]
    assert len(classes) >= 10
    assert all(issubclass(c, sidecar_thumbs.SidecarThumbsError) for c in classes)


def test_a_database_that_cannot_be_created_is_a_library_error(tmp_path: Path, lib: Path) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    settings = sidecar_thumbs.load_settings(database=tmp_path / "a-file" / "state.sqlite3", workers=0)
    with pytest.raises(sidecar_thumbs.DatabaseError):
        sidecar_thumbs.scan(lib, settings)


def test_a_root_that_is_not_there_stops_a_scan_and_marks_nothing_missing(
    lib: Path, settings: sidecar_thumbs.Settings
) -> None:
    sidecar_thumbs.scan(lib, settings)
    gone = lib.with_name("unmounted")
    lib.rename(gone)  # as a share that went away looks
    with pytest.raises(sidecar_thumbs.RootOfflineError):
        sidecar_thumbs.scan(lib, settings)
    assert _status(settings.database, lib / "part.stl") is ModelStatus.DONE


def test_no_paths_and_no_roots_is_a_config_error(settings: sidecar_thumbs.Settings) -> None:
    with pytest.raises(sidecar_thumbs.ConfigError, match="SIDECAR_THUMBS_ROOTS"):
        sidecar_thumbs.scan([], settings)


# -- scan ------------------------------------------------------------------------------------------


def test_scan_renders_new_models_and_reports_the_bad_one(lib: Path, settings: sidecar_thumbs.Settings) -> None:
    summary = sidecar_thumbs.scan([lib], settings)
    assert isinstance(summary, sidecar_thumbs.ScanSummary)
    assert (summary.found, summary.rendered, summary.failed, summary.deferred) == (3, 2, 1, 0)
    assert summary.deferred_to is None
    assert [p for p, _ in summary.failures] == [str(lib / "broken.stl")]
    assert sidecar_path_for(lib / "part.stl").is_file()
    assert sidecar_path_for(lib / "sub" / "other.stl").is_file()
    assert not sidecar_path_for(lib / "broken.stl").exists()
    again = sidecar_thumbs.scan(lib, settings)  # a single path works too
    # The bad file is counted as still failing, not as unchanged: the parts add up to found.
    assert (again.rendered, again.unchanged, again.known_failed) == (0, 2, 1)


def test_scan_uses_the_configured_roots_when_given_no_paths(lib: Path, tmp_path: Path) -> None:
    settings = sidecar_thumbs.load_settings(database=tmp_path / "s.sqlite3", workers=0, roots=[lib])
    assert sidecar_thumbs.scan(settings=settings).rendered == 2


def test_scan_holds_the_coordinator_lock_while_it_renders(lib: Path, settings: sidecar_thumbs.Settings) -> None:
    seen = []
    sidecar_thumbs.scan(lib, settings, on_plan=lambda plan, todo: seen.append(read_lock_holder(settings.database)))
    assert seen[0] is not None and (seen[0].role, seen[0].pid) == ("scan", os.getpid())
    assert read_lock_holder(settings.database) is None  # released afterwards


def test_scan_defers_to_a_running_daemon(lib: Path, settings: sidecar_thumbs.Settings) -> None:
    with DaemonLock(settings.database):  # what a running `watch` holds
        summary = sidecar_thumbs.scan(lib, settings)
    assert summary.deferred == 3 and summary.rendered == 0
    assert summary.deferred_to == f"daemon (pid {os.getpid()})"
    assert not sidecar_path_for(lib / "part.stl").exists()
    assert _status(settings.database, lib / "part.stl") is ModelStatus.PENDING
    assert sidecar_thumbs.scan(lib, settings).rendered == 2  # once it is gone, a scan renders


def test_scan_stops_starting_renders_when_stop_is_set(lib: Path, settings: sidecar_thumbs.Settings) -> None:
    stop = threading.Event()
    stop.set()
    summary = sidecar_thumbs.scan(lib, settings, stop=stop)
    assert summary.interrupted and summary.rendered == 0


# -- verify and clean ------------------------------------------------------------------------------


def test_verify_without_fix_changes_nothing_and_needs_no_database(lib: Path, settings: sidecar_thumbs.Settings) -> None:
    report = sidecar_thumbs.verify(lib, settings)
    assert isinstance(report, sidecar_thumbs.VerifyReport)
    assert report.by_kind() == {"missing": 3} and report.fixed == {}
    assert not settings.database.exists()


def test_verify_fix_renders_what_is_missing(lib: Path, settings: sidecar_thumbs.Settings) -> None:
    sidecar_thumbs.scan(lib, settings)
    sidecar_path_for(lib / "part.stl").unlink()
    assert sidecar_thumbs.verify(lib, settings).by_kind() == {"missing": 1, "flag": 1}
    report = sidecar_thumbs.verify(lib, settings, fix=True)
    assert report.fixed["rendered"] == 1 and "deferred" not in report.fixed
    assert report.problems == [] and sidecar_path_for(lib / "part.stl").is_file()


def test_verify_fix_leaves_rendering_to_a_running_daemon(lib: Path, settings: sidecar_thumbs.Settings) -> None:
    sidecar_thumbs.scan(lib, settings)
    sidecar_path_for(lib / "part.stl").unlink()
    with DaemonLock(settings.database):
        report = sidecar_thumbs.verify(lib, settings, fix=True)
    assert report.fixed["deferred"] == 1 and report.fixed["rendered"] == 0
    assert not sidecar_path_for(lib / "part.stl").exists()
    assert _status(settings.database, lib / "part.stl") is ModelStatus.PENDING


def test_clean_removes_orphans_of_ours_and_a_dry_run_removes_nothing(
    lib: Path, settings: sidecar_thumbs.Settings
) -> None:
    sidecar_thumbs.scan(lib, settings)
    (lib / "part.stl").unlink()
    orphan = str(sidecar_path_for(lib / "part.stl"))
    assert sidecar_thumbs.clean(lib, settings, dry_run=True).removed == [orphan]
    assert os.path.exists(orphan)
    report = sidecar_thumbs.clean(lib, settings)
    assert isinstance(report, sidecar_thumbs.CleanReport)
    assert report.removed == [orphan] and not os.path.exists(orphan)


# -- render_file -----------------------------------------------------------------------------------


def test_render_file_returns_png_bytes_and_writes_nothing(lib: Path) -> None:
    before = sorted(os.listdir(lib))
    png = sidecar_thumbs.render_file(lib / "part.stl", size=96)
    assert png.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(png)) as im:
        assert im.size == (96, 96) and im.mode == "RGBA"
    assert sorted(os.listdir(lib)) == before


@pytest.mark.parametrize(("name", "reason"), [("broken.stl", "."), ("nope.stl", "no such file")])
def test_render_file_raises_a_model_error_for_a_file_it_cannot_draw(lib: Path, name: str, reason: str) -> None:
    with pytest.raises(sidecar_thumbs.ModelError, match=reason):
        sidecar_thumbs.render_file(lib / name)


def test_render_file_refuses_a_size_out_of_range(lib: Path) -> None:
    with pytest.raises(sidecar_thumbs.ConfigError, match="SIZE"):
        sidecar_thumbs.render_file(lib / "part.stl", size=8)


# -- watch -----------------------------------------------------------------------------------------


def test_watch_renders_a_new_model_and_returns_once_stop_is_set(lib: Path, tmp_path: Path) -> None:
    settings = sidecar_thumbs.load_settings(
        database=tmp_path / "w.sqlite3", workers=0, size=64, roots=[lib], settle=0.1, sweep_interval=0.05
    )
    stop = threading.Event()
    failed: list[int] = []
    thread = threading.Thread(target=lambda: failed.append(sidecar_thumbs.watch(settings, stop)))
    thread.start()
    try:
        wait_for(lambda: sidecar_path_for(lib / "part.stl").is_file(), what="the start-up scan")
        wait_for(lambda: read_lock_holder(settings.database) is not None, what="the daemon lock")
        with pytest.raises(sidecar_thumbs.LockedError, match="daemon"):
            sidecar_thumbs.watch(settings, stop)  # one daemon per database
        (lib / "new.stl").write_bytes(binary_stl(20, seed=3))
        wait_for(lambda: sidecar_path_for(lib / "new.stl").is_file(), what="the new model's sidecar")
    finally:
        stop.set()
        thread.join(timeout=20)
    assert not thread.is_alive()
    assert failed == [1]  # broken.stl
    assert read_lock_holder(settings.database) is None


def test_watch_once_does_what_is_pending_and_returns(lib: Path, settings: sidecar_thumbs.Settings) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert sidecar_thumbs.watch(settings, roots=[lib], once=True, handle_signals=True) == 1
    assert sidecar_path_for(lib / "part.stl").is_file()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handed back


# -- the package -----------------------------------------------------------------------------------


def test_everything_in_all_is_there() -> None:
    for name in sidecar_thumbs.__all__:
        assert getattr(sidecar_thumbs, name) is not None, name
    with pytest.raises(AttributeError):
        _ = sidecar_thumbs.no_such_thing  # type: ignore[attr-defined]


@pytest.mark.integration
def test_importing_the_package_loads_no_renderer() -> None:
    code = "import sys, sidecar_thumbs; print(sorted({'numpy', 'numba', 'PIL', 'pebble'} & set(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    assert out.strip() == "[]"


def test_the_readme_python_example_runs(lib: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it from Python", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "README's 'Use it from Python' section has no python code block"
    monkeypatch.setenv("SIDECAR_THUMBS_WORKERS", "0")  # render inline: the example is about the API, not the pool
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(code.group(1), "README.md", "exec"), {})
    assert "rendered 2, failed 1" in out.getvalue()
    assert sidecar_path_for(lib / "part.stl").is_file()
    assert (tmp_path / "thumbs.sqlite3").is_file()


def test_the_readme_lists_every_api_function_with_its_docstring_in_the_code() -> None:
    from sidecar_thumbs import api

    section = (REPO / "README.md").read_text(encoding="utf-8").split("## Use it from Python", 1)[1].split("\n## ")[0]
    for name in api.__all__:
        assert f"`{name}(" in section, f"README's 'Use it from Python' does not show {name}()"
        assert (getattr(api, name).__doc__ or "").strip(), f"{name} has no docstring"
