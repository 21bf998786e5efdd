"""Things that are not model files, under real processes: ``watch``, ``scan``, ``render``, ``gallery``.

A FIFO ``x.stl``, a symlink ``y.stl`` -> ``/dev/zero``, a socket ``z.stl``, a character device (when
this machine lets us make one) and a link out of the root. Before issue 11 the first two hung the
daemon for ever and two SIGTERMs did not stop it. Every process here has a time bound, and every
long-running one a SIGTERM that must end it within the grace period.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_util import ENV, Daemon, binary_stl, bind_socket, wait_for

from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.store.state import StateDB

pytestmark = pytest.mark.integration

GRACE = 5.0  # SIDECAR_THUMBS_GRACE_PERIOD for the daemons here
ODD = ("x.stl", "y.stl", "z.stl", "c.stl", "out.stl")


def run(
    *args: str, timeout: float = 120.0, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    """``python -m sidecar_thumbs ARGS`` with a hard time bound (a hang fails the test, not the run)."""
    return subprocess.run(
        [sys.executable, "-m", "sidecar_thumbs", *args], capture_output=True, timeout=timeout, env=env or ENV, cwd=cwd
    )


@contextlib.contextmanager
def odd_files(root: Path, outside: Path) -> Iterator[list[str]]:
    """Create every kind of non-regular file under model names; yields the names made."""
    os.mkfifo(root / "x.stl")
    (root / "y.stl").symlink_to("/dev/zero")
    sock = bind_socket(root / "z.stl")
    made = ["x.stl", "y.stl", "z.stl"]
    try:
        os.mknod(root / "c.stl", 0o600 | stat.S_IFCHR, os.makedev(1, 5))  # /dev/zero's numbers
        made.append("c.stl")
    except (PermissionError, OSError):
        pass  # not root, or a file system that refuses devices (nodev): the link to /dev/zero stands in
    (root / "out.stl").symlink_to(outside)
    made.append("out.stl")
    try:
        yield made
    finally:
        sock.close()


@pytest.fixture
def lib(tmp_path: Path, corpus: Path) -> tuple[Path, Path]:
    root = tmp_path / "lib"
    root.mkdir()
    shutil.copyfile(corpus / "stl-binary/admesh__binary.stl", root / "good.stl")
    outside = tmp_path / "outside" / "secret.stl"
    outside.parent.mkdir()
    outside.write_bytes(binary_stl(20, seed=7))
    return root, outside


def _no_trace_of(root: Path, db: Path, names: list[str]) -> None:
    for name in names:
        assert not sidecar_path_for(root / name).exists(), f"a sidecar was made for {name}"
    with StateDB(db, readonly=True) as state:
        rows = set(state.rows_under([str(root)]))
    assert not rows & {str(root / n) for n in names}, rows


def test_watch_is_not_stopped_by_non_regular_files_and_sigterm_ends_it(lib: tuple[Path, Path], tmp_path: Path) -> None:
    root, outside = lib
    db = tmp_path / "state.sqlite3"
    env = {**ENV, "SIDECAR_THUMBS_GRACE_PERIOD": str(GRACE)}
    log = tmp_path / "watch.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar_thumbs", "-vv", "watch", str(root), "--db", str(db), "--workers", "1",
             "--size", "64", "--settle", "0.3", "--rescan-interval", "2"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            wait_for(lambda: sidecar_path_for(root / "good.stl").exists(), 90, "the first sidecar")
            with odd_files(root, outside) as made:
                with open(root / "big.stl", "wb") as f:
                    f.truncate(200 * 2**30)  # a 200 GiB sparse file: over the cap, must not be hashed
                # A model arriving after them must still be rendered: the daemon is not stuck.
                (root / "after.stl").write_bytes(binary_stl(30, seed=1))
                wait_for(lambda: sidecar_path_for(root / "after.stl").exists(), 60, "a sidecar after the odd files")
                time.sleep(4.5)  # two rescans over them as well
                _no_trace_of(root, db, made)
                assert not sidecar_path_for(outside).exists() and not any(outside.parent.glob(".*.png"))
                with StateDB(db, readonly=True) as state:
                    big = state.get(str(root / "big.stl"))
                assert big is not None and big.hash is not None and big.hash.startswith("over-cap:"), big
                assert big.error is not None and "cap" in big.error
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(GRACE + 10)
                assert time.monotonic() - t0 < GRACE + 6, "SIGTERM did not end the daemon within the grace period"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    text = log.read_text(errors="replace")
    assert code == 0, text[-3000:]
    assert "Traceback" not in text


def test_scan_render_and_gallery_pass_non_regular_files_by(lib: tuple[Path, Path], tmp_path: Path) -> None:
    root, outside = lib
    db = tmp_path / "state.sqlite3"
    with odd_files(root, outside) as made:
        os.mkfifo(root / ".good.stl.thumbnail.png.fifo")  # not a sidecar name: ignored
        t0 = time.monotonic()
        scan = run("scan", str(root), "--db", str(db), "--workers", "0", "--size", "64", timeout=120)
        assert scan.returncode == 0, scan.stderr.decode(errors="replace")
        assert read_sidecar(sidecar_path_for(root / "good.stl")).ours  # type: ignore[union-attr]
        _no_trace_of(root, db, made)

        # render on each: one line per file, exit 3, nothing written, quickly. (A link the user names
        # on the command line is followed: they chose that file.)
        special = [n for n in made if n != "out.stl"]
        render = run("render", *(str(root / n) for n in special), timeout=60)
        err = render.stderr.decode(errors="replace")
        assert render.returncode == 3, err
        for name in special:
            assert f"{root / name}: not a regular file" in err
        assert not any(sidecar_path_for(root / n).exists() for n in special)

        # gallery, with the sidecar of a real model replaced by a FIFO.
        sidecar = sidecar_path_for(root / "good.stl")
        sidecar.unlink()
        os.mkfifo(sidecar)
        gallery = run("gallery", str(root), "--db", str(db), "-o", str(tmp_path / "g.html"), "--embed", timeout=60)
        assert gallery.returncode == 0, gallery.stderr.decode(errors="replace")
        assert "1 models" in gallery.stdout.decode()
        verify = run("verify", str(root), "--db", str(db), timeout=60)
        assert verify.returncode == 3 and b"foreign" in verify.stdout
        assert time.monotonic() - t0 < 240


def test_sigterm_ends_scan_render_and_gallery(lib: tuple[Path, Path], tmp_path: Path) -> None:
    """One-off commands keep the default SIGTERM action: they end at once, even mid-work, with every
    kind of non-regular file among the models."""
    root, outside = lib
    for i in range(40):
        (root / f"m{i:02d}.stl").write_bytes(binary_stl(4000, seed=i))
    db = tmp_path / "state.sqlite3"
    models = [str(p) for p in sorted(root.glob("m*.stl"))]
    commands = [
        ["scan", str(root), "--db", str(db), "--workers", "1", "--size", "64"],
        ["render", str(root / "x.stl"), str(root / "y.stl"), *models, "-o", str(tmp_path / "out")],
        ["gallery", str(root), "-o", str(tmp_path / "g.html")],
    ]
    with odd_files(root, outside):
        for args in commands:
            proc = subprocess.Popen(
                [sys.executable, "-m", "sidecar_thumbs", *args],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, start_new_session=True,
            )  # fmt: skip
            try:
                time.sleep(2.0)
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                proc.wait(15)
                assert time.monotonic() - t0 < 10, args[0]
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)


def test_a_stop_signal_ends_a_process_stuck_in_the_kernel(tmp_path: Path) -> None:
    """The main thread blocked in ``open()`` of a FIFO (Python retries it after the handler, PEP 475):
    the handler's hard-stop timer still ends the process."""
    fifo = tmp_path / "stuck"
    os.mkfifo(fifo)
    script = (
        "import signal, sys\n"
        "from sidecar_thumbs.daemon.hardstop import HardStop\n"
        "hard = HardStop()\n"
        "signal.signal(signal.SIGTERM, lambda *_: hard.arm(1.0))\n"
        "print('ready', flush=True)\n"
        "open(sys.argv[1], 'rb')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(fifo)], stdout=subprocess.PIPE, env=ENV)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        time.sleep(0.3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 1
        assert time.monotonic() - t0 < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_link_out_of_the_root_made_while_watching_is_never_read(lib: tuple[Path, Path], tmp_path: Path) -> None:
    root, outside = lib
    db = tmp_path / "state.sqlite3"
    d = Daemon(root, db, "--settle", "0.3", "--rescan-interval", "1", workers=1)
    try:
        wait_for(lambda: sidecar_path_for(root / "good.stl").exists(), 90, "the first sidecar")
        (root / "leak.stl").symlink_to(outside)
        (root / "sub").mkdir()
        (root / "sub" / "inside.stl").write_bytes(binary_stl(10, seed=3))
        (root / "linkdir").symlink_to(outside.parent)  # a folder link out of the root, too
        wait_for(lambda: sidecar_path_for(root / "sub" / "inside.stl").exists(), 60, "the next model")
        time.sleep(2.5)  # rescans
        assert not sidecar_path_for(root / "leak.stl").exists()
        assert not (root / "linkdir" / sidecar_path_for(outside).name).exists()
        with StateDB(db, readonly=True) as state:
            assert not [p for p in state.rows_under() if "leak" in p or "linkdir" in p]
        assert "leak.stl" in d.log()  # said once why it was passed by
    finally:
        d.proc.send_signal(signal.SIGTERM)
        assert d.wait(40) == 0
        d.reap_group()

    # Rows and sidecars that older versions made for such a link: the daemon's rescan marks the row
    # missing and removes the sidecar; verify reports them, clean removes them.
    from sidecar_thumbs.files.sidecar import write_sidecar
    from sidecar_thumbs.types import FileState, ModelStatus

    good_png = sidecar_path_for(root / "good.stl").read_bytes()
    write_sidecar(root / "leak.stl", good_png, durable=False)
    st = outside.stat()
    with StateDB(db) as state:
        state.upsert_files([FileState(str(root / "leak.stl"), st.st_size, st.st_mtime_ns, None, False)])
    once = run("watch", str(root), "--db", str(db), "--once", "--workers", "1", "--size", "64", timeout=120)
    assert once.returncode == 0, once.stderr.decode(errors="replace")
    assert not sidecar_path_for(root / "leak.stl").exists()
    with StateDB(db, readonly=True) as state:
        assert state.get(str(root / "leak.stl")).status is ModelStatus.MISSING  # type: ignore[union-attr]
    write_sidecar(root / "leak.stl", good_png, durable=False)
    verify = run("verify", str(root), "--db", str(db), timeout=60)
    assert b"orphaned" in verify.stdout and b"leak.stl" in verify.stdout, verify.stdout
    clean = run("clean", str(root), timeout=60)
    assert clean.returncode == 0 and not sidecar_path_for(root / "leak.stl").exists()
    assert outside.exists()


def test_sigterm_ends_the_daemon_within_the_grace_period_while_the_database_stays_locked(tmp_path: Path) -> None:
    """Another process holds the database's write lock, so the daemon cannot commit its last results
    (it would wait for them for 30 s more): the stop still ends it at grace period + 5 s, and the
    next run finishes the work."""
    from reliability_util import check_library

    from sidecar_thumbs.daemon.hardstop import HARD_STOP_MARGIN

    root = tmp_path / "lib"
    root.mkdir()
    models = []
    for i in range(30):
        models.append(root / f"m{i:02d}.stl")
        models[-1].write_bytes(binary_stl(20000, seed=i))
    db = tmp_path / "state.sqlite3"
    grace = 2.0
    env = {**ENV, "SIDECAR_THUMBS_GRACE_PERIOD": str(grace), "SIDECAR_THUMBS_BUSY_TIMEOUT_MS": "200"}
    log = tmp_path / "watch.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar_thumbs", "-vv", "watch", str(root), "--db", str(db), "--workers", "1",
             "--size", "64", "--settle", "0.2"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        holder = None
        try:
            wait_for(lambda: any(sidecar_path_for(m).exists() for m in models), 90, "the first sidecars")
            import sqlite3

            holder = sqlite3.connect(db, timeout=30, isolation_level=None)
            holder.execute("BEGIN IMMEDIATE")  # the asset manager holding its write lock
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(grace + HARD_STOP_MARGIN + 20)
            took = time.monotonic() - t0
        finally:
            if holder is not None:
                holder.rollback()
                holder.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    text = log.read_text(errors="replace")
    assert took < grace + HARD_STOP_MARGIN + 3, text[-3000:]
    final = run("watch", str(root), "--db", str(db), "--once", "--workers", "1", "--size", "64", timeout=300)
    assert final.returncode == 0, final.stderr.decode(errors="replace")
    check_library(root, db, models)
