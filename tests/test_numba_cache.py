"""numba_cache: choosing the kernel or its pure twin (one rule for every reader that has both), and a cache
folder that follows the kernel sources, so a changed helper in another file is never stale."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

import sidecar_thumbs
from sidecar_thumbs import numba_cache
from sidecar_thumbs.mesh.cutout import cut_out
from sidecar_thumbs.numba_cache import chosen_kernel

KERNEL = types.ModuleType("a_kernel")
PACKAGE = Path(sidecar_thumbs.__file__).resolve().parent


def test_the_kernel_runs_when_it_was_imported_and_nothing_is_forced() -> None:
    assert chosen_kernel(KERNEL, None) is KERNEL
    assert chosen_kernel(None, None) is None  # no numba: the twin


def test_forcing_the_twin_skips_an_imported_kernel() -> None:
    assert chosen_kernel(KERNEL, False) is None
    assert chosen_kernel(None, False) is None


def test_forcing_the_kernel_without_numba_is_an_error() -> None:
    assert chosen_kernel(KERNEL, True) is KERNEL
    with pytest.raises(RuntimeError, match="numba is not available"):
        chosen_kernel(None, True)


def test_cut_out_removes_each_range_and_keeps_the_rest() -> None:
    data = b"<a>0123<b>4567</b></a>"
    assert cut_out(data, [(3, 7), (10, 14)]) == b"<a><b></b></a>"
    assert cut_out(data, []) == data
    assert cut_out(data, [(0, len(data))]) == b""


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A copy of the package's sources whose files a test may edit."""
    copy = tmp_path / "sidecar_thumbs"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


def _digest_after(package: Path, relpath: str, extra: str) -> str:
    path = package / relpath
    path.write_text(path.read_text() + extra)
    return numba_cache.kernel_sources_digest(str(package))


def test_digest_is_the_installed_packages_and_stable(package_copy: Path) -> None:
    assert numba_cache.kernel_digest() == numba_cache.kernel_sources_digest(str(package_copy))
    assert len(numba_cache.kernel_digest()) == 16


@pytest.mark.parametrize(
    "relpath",
    [
        "mesh/lex.py",  # a helper module the OBJ, G-code and 3MF kernels call
        "mesh/objcodes.py",  # constants numba freezes into the OBJ kernel
        "render/kernel_numba.py",
        "mesh/gcode_kernel.py",
    ],
)
def test_changing_a_kernel_or_what_it_imports_changes_the_folder(package_copy: Path, relpath: str) -> None:
    before = numba_cache.kernel_sources_digest(str(package_copy))
    assert _digest_after(package_copy, relpath, "\nX = 1\n") != before


def test_changing_other_modules_keeps_the_compiled_kernels(package_copy: Path) -> None:
    before = numba_cache.kernel_sources_digest(str(package_copy))
    assert _digest_after(package_copy, "reports/clean.py", "\n# a comment\n") == before
    assert _digest_after(package_copy, "cli/main.py", "\nX = 1\n") == before


@pytest.mark.integration  # a fresh interpreter, where numba is not imported yet
@pytest.mark.parametrize("user_folder", [False, True])
def test_configure_names_the_digest_folder_and_the_users_folder_wins(tmp_path: Path, user_folder: bool) -> None:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONPATH=str(PACKAGE.parent))
    if user_folder:
        env["NUMBA_CACHE_DIR"] = str(tmp_path / "mine")
    code = (
        "import os; from sidecar_thumbs import numba_cache; numba_cache.configure(); "
        "print(os.environ['NUMBA_CACHE_DIR']); print(numba_cache.is_cold())"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    folder, cold = out.split()
    if user_folder:
        assert folder == str(tmp_path / "mine")
    elif sys.platform != "darwin":  # macOS keeps caches in ~/Library/Caches whatever XDG says
        assert folder == str(tmp_path / "cache" / "sidecar-thumbs" / "numba" / numba_cache.kernel_digest())
    assert cold == "True"  # nothing compiled into a new folder yet


_PROBE_CODE = """
import gc, importlib.util, json, sys
from sidecar_thumbs import numba_cache
if sys.argv[1] == "ours":
    numba_cache.own_process()
with numba_cache.loading():
    paused = not gc.isenabled()
    import numba.core.typing.cffi_utils as cffi_utils
    import numba.np.arraymath as arraymath
has = lambda name: importlib.util.find_spec(name) is not None
blocked = [n for n in ("scipy.linalg.cython_blas", "cffi") if n in sys.modules and sys.modules[n] is None]
if has("cffi"):
    import cffi  # works again after the probe
print(json.dumps({"blas": arraymath._HAVE_BLAS, "cffi": cffi_utils.SUPPORTED, "scipy": has("scipy"),
                  "has_cffi": has("cffi"), "blocked": blocked, "linalg": "scipy.linalg" in sys.modules,
                  "paused": paused, "enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}))
"""


@pytest.mark.integration  # a fresh interpreter, where numba is not imported yet
@pytest.mark.parametrize("who", ["ours", "library"])
def test_our_processes_skip_numbas_probes_and_pause_the_gc_and_a_library_callers_do_not(
    tmp_path: Path, who: str
) -> None:
    if importlib.util.find_spec("numba") is None:
        pytest.skip("numba is not installed")
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(PACKAGE.parent)}
    env.pop("SIDECAR_THUMBS_NO_NUMBA", None)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE_CODE, who], env=env, capture_output=True, text=True, check=True
    ).stdout
    got = json.loads(out)
    assert got["blocked"] == []  # nothing stays blocked for later imports
    assert got["enabled"]  # the collector runs again after the import
    if who == "ours":
        # numba took the paths without scipy's BLAS and cffi, and never imported scipy.linalg for it; the
        # collector was paused during the import, and what the import built is frozen.
        assert (got["blas"], got["cffi"], got["linalg"]) == (False, False, False)
        assert got["paused"] and got["frozen"] > 10_000
    else:
        assert (got["blas"], got["cffi"]) == (got["scipy"], got["has_cffi"])
        assert not got["paused"] and got["frozen"] == 0


def test_prune_removes_only_old_digest_folders(tmp_path: Path) -> None:
    """An old version's kernels go after STALE_DAYS unused; the current folder, a recently used one and
    anything that is not one of our digest folders stay."""
    now = 2_000_000_000.0
    old = now - (numba_cache.STALE_DAYS + 1) * 86400
    recent = now - 86400
    for name, when in [("0123456789abcdef", old), ("fedcba9876543210", recent), ("aaaaaaaaaaaaaaaa", old)]:
        (tmp_path / name / "render_x").mkdir(parents=True)
        (tmp_path / name / "render_x" / "kernel_numba.render-1.py311.nbi").write_bytes(b"x")
        os.utime(tmp_path / name, (when, when))
    (tmp_path / "notes").mkdir()  # not ours
    os.utime(tmp_path / "notes", (old, old))
    (tmp_path / "0000000000000000").write_bytes(b"a file, not a folder")
    os.utime(tmp_path / "0000000000000000", (old, old))

    removed = numba_cache.prune_stale(str(tmp_path), "aaaaaaaaaaaaaaaa", now=now)

    assert removed == ["0123456789abcdef"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "0000000000000000",
        "aaaaaaaaaaaaaaaa",
        "fedcba9876543210",
        "notes",
    ]
    # Choosing a folder marks it used, so an install that only reads its kernels keeps them.
    assert (tmp_path / "aaaaaaaaaaaaaaaa").stat().st_mtime == now


def test_prune_creates_the_current_folder_and_never_raises(tmp_path: Path) -> None:
    assert numba_cache.prune_stale(str(tmp_path / "new" / "numba"), "0123456789abcdef") == []
    assert (tmp_path / "new" / "numba" / "0123456789abcdef").is_dir()
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    assert numba_cache.prune_stale(str(blocked / "numba"), "0123456789abcdef") == []
