"""What the command line says (issue 13): options where people type them, a progress bar that never
swallows a log line, JSON logs with fields, misspelt settings named, numbers that add up, exit codes
that repeat, and saying what happened. Every test runs the real command (CliRunner or a process).
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path

import pytest
from cli_helpers import COMPILE_NOTICE, GOOD, clean_env, command, invoke, run_cli

from sidecar_thumbs.files.sidecar import sidecar_path_for

PER_FILE_FIELDS = {"event", "path", "reason", "transient", "ms"}


def _scan(lib: Path, db: Path, *extra: str | Path) -> tuple[int, str, str]:
    r = invoke("scan", lib, "--db", db, "--workers", "0", *extra)
    return r.exit_code, r.stdout, r.stderr


def _json_lines(stderr: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stderr.splitlines()]  # raises on any line that is not JSON


# -- 1. options before and after the command ----------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [["-v", "watch", "--once"], ["watch", "--once", "-v"], ["watch", "-v", "--once"]],
    ids=["before", "after", "between"],
)
def test_verbose_works_before_and_after_the_command(cwd: Path, lib: Path, tmp_path: Path, args: list[str]) -> None:
    # A short settle window: burst mode waits for files still settling (3 s by default).
    r = invoke(*args, lib, "--db", tmp_path / "w.sqlite3", "--workers", "0", "--settle", "0.1")
    assert r.exit_code == 0, r.output
    rendered = [line for line in r.stderr.splitlines() if " rendered: " in line]
    assert len(rendered) == len(GOOD)  # -v: one line per file


@pytest.mark.parametrize("where", ["before", "after"])
def test_log_format_env_file_and_db_work_on_either_side(cwd: Path, lib: Path, tmp_path: Path, where: str) -> None:
    env_file = tmp_path / "conf.env"
    env_file.write_text("SIDECAR_THUMBS_SIZE=64\n")
    db = tmp_path / f"{where}.sqlite3"
    opts = ["--log-format", "json", "--env-file", env_file, "--db", db, "-v"]
    args = [*opts, "scan", lib, "--workers", "0"] if where == "before" else ["scan", lib, "--workers", "0", *opts]
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    assert db.is_file()
    events = [e for e in _json_lines(r.stderr) if e.get("event") == "rendered"]
    assert len(events) == len(GOOD)
    s = invoke("status", "--db", db, "--json")
    assert json.loads(s.stdout)["counts"]["done"] == len(GOOD)


def test_default_output_is_summaries_and_problems_only(cwd: Path, lib: Path, bad: Path, tmp_path: Path) -> None:
    code, out, err = _scan(lib, tmp_path / "d.sqlite3")
    assert code == 3
    assert " rendered: " not in err  # no per-file lines without -v
    assert [line for line in err.splitlines() if "failed:" in line] == [
        line for line in err.splitlines() if str(bad) in line
    ]
    assert len([line for line in err.splitlines() if str(bad) in line]) == 1  # each failure once
    assert str(bad) not in out  # the summary counts it, does not repeat it
    assert out.startswith("found 4: ")


# -- 2. the progress bar on a terminal ----------------------------------------------------------------


def _run_in_pty(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 120) -> tuple[int, str]:
    """Run a command with stderr and stdout on a pseudo-terminal; return (exit code, everything it wrote)."""
    master, slave = pty.openpty()
    # A terminal of 40 rows x 160 columns (a new pty has 0 x 0, where a bar has no room at all).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.integration
def test_a_warning_is_never_glued_to_the_progress_bar(tmp_path: Path, lib: Path, corpus: Path) -> None:
    from cli_helpers import BAD, copy_file

    bads = [copy_file(corpus / BAD, lib / f"broken{i}.stl") for i in range(3)]
    code, out = _run_in_pty(command("scan", lib, "--db", tmp_path / "p.sqlite3", "--workers", "0"), tmp_path,
                            clean_env(tmp_path))  # fmt: skip
    assert code == 3, out
    assert re.search(r"\r[ ▏▎▍▌▋▊▉█]{24} rendering 0/6 ", out), repr(out)  # the bar was drawn
    for b in bads:
        assert out.count(f"failed: {b}:") == 1, out  # each failure shown once
    for m in re.finditer(r"WARNING failed: ", out):
        # What precedes the log line on its screen line is its timestamp only: the bar was cleared first.
        start = max(out.rfind("\r", 0, m.start()), out.rfind("\n", 0, m.start())) + 1
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", out[start : m.start()]), repr(out[start : m.end()])


def test_off_a_terminal_there_is_no_bar_only_plain_lines(cwd: Path, lib: Path, tmp_path: Path) -> None:
    code, _, err = _scan(lib, tmp_path / "n.sqlite3")
    assert code == 0
    assert "\r" not in err and "\x1b[" not in err
    assert re.search(rf"rendering {len(GOOD)}/{len(GOOD)} ", err)


# -- 3. JSON logs -------------------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("cmd", ["scan", "watch"])
def test_json_logs_every_stderr_line_is_an_object_with_fields(tmp_path: Path, lib: Path, bad: Path, cmd: str) -> None:
    args = [cmd, lib, "--db", tmp_path / f"{cmd}.sqlite3", "--workers", "0", "--log-format", "json", "-v"]
    r = run_cli(*args, *(["--once"] if cmd == "watch" else []), cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    events = _json_lines(r.stderr)
    per_file = [e for e in events if e.get("event") in ("rendered", "failed")]
    assert len(per_file) == len(GOOD) + 1
    for e in per_file:
        assert set(e) >= PER_FILE_FIELDS, e
        assert isinstance(e["ms"], float | int) and isinstance(e["transient"], bool)
    (failed,) = [e for e in per_file if e["event"] == "failed"]
    assert failed["path"] == str(bad) and failed["reason"] and failed["transient"] is False
    assert [e for e in events if e.get("event") == "progress"], "progress comes as JSON events too"


# -- 4. misspelt settings -----------------------------------------------------------------------------


def test_a_misspelt_variable_in_the_environment_is_named(cwd: Path, lib: Path, tmp_path: Path) -> None:
    r = invoke("scan", lib, "--db", tmp_path / "m.sqlite3", "--workers", "0", env={"SIDECAR_THUMBS_WORKER": "4"})
    assert r.exit_code == 0
    assert "SIDECAR_THUMBS_WORKER in the environment is not a setting" in r.stderr
    assert "did you mean SIDECAR_THUMBS_WORKERS?" in r.stderr


def test_a_misspelt_prefix_in_an_env_file_is_named(cwd: Path, lib: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "typo.env"
    env_file.write_text("SIDECAR_THUMS_SIZE=512\nOTHER_PROGRAM_SETTING=1\n")
    r = invoke("--env-file", env_file, "render", lib / "block.stl", "-o", tmp_path / "out.png")
    assert r.exit_code == 0
    warnings = [line for line in r.stderr.splitlines() if "is not a setting" in line]
    assert len(warnings) == 1 and f"SIDECAR_THUMS_SIZE in {env_file}" in warnings[0]
    assert "did you mean SIDECAR_THUMBS_SIZE?" in warnings[0]


# -- 8. numbers that add up, exit codes that repeat ---------------------------------------------------

PARTS = ("unchanged", "adopted", "rendered", "embedded", "failed", "known_failed", "pending")


def _summary(lib: Path, db: Path, *extra: str) -> tuple[int, dict[str, int]]:
    code, out, _ = _scan(lib, db, "--json", *extra)
    data = json.loads(out)
    assert sum(data[k] for k in PARTS) == data["found"], data
    return code, data


def test_a_new_database_over_existing_sidecars_adds_up(cwd: Path, lib: Path, tmp_path: Path) -> None:
    _summary(lib, tmp_path / "first.sqlite3")
    code, data = _summary(lib, tmp_path / "second.sqlite3")
    assert code == 0 and data["adopted"] == len(GOOD) == data["found"]
    text = invoke("scan", lib, "--db", tmp_path / "third.sqlite3", "--workers", "0").stdout
    assert text.startswith(f"found {len(GOOD)}: already had a thumbnail {len(GOOD)} ")


def test_unchanged_failures_give_the_same_exit_code_every_run(cwd: Path, lib: Path, bad: Path, tmp_path: Path) -> None:
    db = tmp_path / "f.sqlite3"
    runs = [_summary(lib, db) for _ in range(3)]
    assert [code for code, _ in runs] == [3, 3, 3]
    assert [(d["failed"], d["known_failed"]) for _, d in runs] == [(1, 0), (0, 1), (0, 1)]
    assert "still failing" in invoke("scan", lib, "--db", db, "--workers", "0").stdout
    # Only the scanned paths count: a scan of a folder without the bad file exits 0.
    assert _scan(lib / "block.stl", db)[0] == 0


def test_retry_failed_shows_the_right_total(cwd: Path, lib: Path, bad: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.sqlite3"
    _scan(lib, db)
    code, _, err = _scan(lib, db, "--retry-failed")
    assert code == 3
    assert "rendering 1/1 " in err and "/0 " not in err
    _, data = _summary(lib, db, "--retry-failed")
    assert data["retried"] == 1 and data["failed"] == 1


def test_verify_text_mentions_models_known_to_fail(cwd: Path, lib: Path, bad: Path, tmp_path: Path) -> None:
    db = tmp_path / "v.sqlite3"
    _scan(lib, db)
    r = invoke("verify", lib, "--db", db)
    assert r.exit_code == 0
    assert "1 known to fail" in r.stdout


def test_the_daemon_counts_each_failure_once(cwd: Path, tmp_path: Path, lib: Path, bad: Path) -> None:
    db = tmp_path / "d.sqlite3"
    r = invoke("watch", lib, "--once", "--db", db, "--workers", "0", "--settle", "0.1")
    assert r.exit_code == 3
    assert len([line for line in r.stderr.splitlines() if str(bad) in line]) == 1
    assert "✗ 1" in r.stderr and "✗ 2" not in r.stderr
    # Burst mode answers like scan: the same unchanged failure, the same exit code.
    again = invoke("watch", lib, "--once", "--db", db, "--workers", "0", "--settle", "0.1")
    assert again.exit_code == 3 and str(bad) not in again.stderr


# -- 9. saying what happened --------------------------------------------------------------------------


def test_render_names_each_sidecar_and_quiet_silences_it(cwd: Path, lib: Path) -> None:
    models = [lib / n for n in GOOD]
    r = invoke("render", *models)
    assert r.stdout.splitlines() == [str(sidecar_path_for(m)) for m in models]
    q = invoke("render", "-q", *models)
    assert q.exit_code == 0 and q.stdout == ""


def test_a_warm_renderer_cache_is_not_announced(cwd: Path, lib: Path) -> None:
    pytest.importorskip("numba")
    invoke("render", lib / "block.stl")  # compiles the kernels into the cache if nothing did yet
    again = invoke("render", lib / "block.stl", "--renderer", "numba")
    assert again.exit_code == 0 and COMPILE_NOTICE not in again.stderr


@pytest.mark.integration
def test_a_cold_renderer_cache_is_announced_once(cwd: Path, lib: Path, tmp_path: Path) -> None:
    # Only the announcement is tested here: a missing file fails before anything is compiled.
    env = {"NUMBA_CACHE_DIR": str(tmp_path / "empty-cache")}
    r = run_cli("render", lib / "missing.stl", lib / "missing2.stl", cwd=tmp_path, env=env)
    assert r.returncode == 3
    assert r.stderr.count(COMPILE_NOTICE) == 1
    numpy = run_cli("render", lib / "missing.stl", "--renderer", "numpy", cwd=tmp_path, env=env)
    assert COMPILE_NOTICE not in numpy.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    watch = run_cli("watch", "--once", empty, "--db", tmp_path / "c.sqlite3", "--workers", "0", cwd=tmp_path, env=env)
    assert watch.returncode == 0 and watch.stderr.count(COMPILE_NOTICE) == 1


def test_no_rate_is_ever_shown_as_zero(cwd: Path, lib: Path, tmp_path: Path) -> None:
    db = tmp_path / "z.sqlite3"
    _scan(lib, db)
    _, again, _ = _scan(lib, db)  # nothing rendered
    watch = invoke("watch", lib, "--once", "--db", db, "--workers", "0")
    status = invoke("status", "--db", db)
    for text in (again, watch.stderr, status.stdout):
        assert not re.search(r"\b0\.0+ ?(renders|files)?/s", text), text


@pytest.mark.integration
def test_sigterm_ends_with_stopped_cleanly_and_a_folder_move_is_told_once(tmp_path: Path, lib: Path) -> None:
    db = tmp_path / "daemon.sqlite3"
    sub = lib / "sub"
    sub.mkdir()
    for name in ("block.stl", "pyramid.stl"):
        os.rename(lib / name, sub / name)
    log = tmp_path / "daemon.log"
    env = clean_env(tmp_path, {"SIDECAR_THUMBS_LOG_FILE": str(log)})
    proc = subprocess.Popen(command("watch", lib, "--db", db, "--workers", "0", "--settle", "0.2"), cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        _wait_for(log, "done ✓ 3")
        os.rename(log, tmp_path / "daemon.log.0")  # what newsyslog/logrotate do: the daemon reopens it
        os.rename(sub, lib / "moved")
        _wait_for(log, "moved")
        time.sleep(1.0)  # the per-file events of the move, if any, arrive too
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    assert stderr == ""  # the log went to the file
    text = log.read_text()
    assert text.strip().splitlines()[-1].endswith("stopped cleanly: no partial sidecar left, finished renders saved"), (
        text
    )
    assert "(0 models follow it)" not in text
    assert "done ✓ 3" in (tmp_path / "daemon.log.0").read_text()
    assert sidecar_path_for(lib / "moved" / "block.stl").exists()


def _wait_for(log: Path, text: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged in {timeout} s:\n{log.read_text() if log.exists() else ''}")


@pytest.mark.integration
def test_sigterm_stops_a_scan_cleanly_and_the_next_scan_continues(tmp_path: Path, corpus: Path) -> None:
    from cli_helpers import copy_file

    lib = tmp_path / "big"
    for i in range(12):
        copy_file(corpus / "stl-binary" / "trimesh__counter.unitsmm.STL", lib / f"counter{i:02d}.stl")
    db = tmp_path / "term.sqlite3"
    args = command("scan", lib, "--db", db, "--workers", "0", "-v")
    proc = subprocess.Popen(args, cwd=tmp_path, env=clean_env(tmp_path), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if " rendered: " in line:
                proc.send_signal(signal.SIGTERM)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped cleanly" in err
    assert out.startswith("found 12: ") and " pending " in out
    assert not [p for p in lib.iterdir() if p.name.endswith(".tmp")]
    again = run_cli("scan", lib, "--db", db, "--workers", "0", "--json", cwd=tmp_path)
    data = json.loads(again.stdout)
    assert again.returncode == 0 and data["rendered"] > 0 and data["pending"] == 0
    assert data["unchanged"] + data["rendered"] == 12
