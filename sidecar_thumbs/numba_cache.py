"""Where numba keeps the compiled kernels: a per-user cache folder, not the installed package.

numba's default is a ``__pycache__`` beside the module. That fails for a read-only install, and
after ``pip uninstall`` the left-over cache folders turn ``site-packages/sidecar_thumbs`` into a
namespace package that shadows a later (editable) install — seen on this project's own machines.
A per-user folder (``~/Library/Caches/sidecar-thumbs/numba/<digest>`` on macOS, ``~/.cache/…`` on
Linux) survives reinstalls.

``<digest>`` is a hash of the source of every kernel file of the package (a file that imports numba or
:mod:`sidecar_thumbs.mesh.jit`) and of the package modules those import. numba checks a cached
function only against its *own* file's timestamp: when a helper it calls from another file (or a
constant it froze from one) changes, it keeps running the old machine code — a stale G-code ``scan``
once kept old arc code that way. With the digest in the path any kernel change starts a fresh folder,
so helpers can live in shared modules. A folder no process has used for :data:`STALE_DAYS` days (an
older version's kernels) is removed when another one is chosen: the cache would otherwise grow by one
folder per upgrade, forever.

An explicit ``NUMBA_CACHE_DIR`` always wins (numba's own rules then apply, timestamps only).

Our own processes (the command line, the pool's workers: :func:`own_process`) also skip two probes
numba makes on its first compile or cache load, for features no kernel of ours uses
(:func:`configure`), and load kernels with the cyclic garbage collector paused (:func:`loading`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import importlib.util
import os
import re
import sys
from collections.abc import Iterator
from types import ModuleType

__all__ = [
    "STALE_DAYS",
    "chosen_kernel",
    "configure",
    "import_kernel",
    "is_cold",
    "kernel_digest",
    "kernel_sources_digest",
    "loading",
    "own_process",
    "prune_stale",
]

# Days after which a digest folder no process has chosen is an old version's, and removed. Long enough
# that a second install of another version (a scan from a venv beside the daemon) used now and then
# keeps its kernels: each use marks its folder.
STALE_DAYS = 30
# Our folder names: the 16 hex digits of kernel_digest(); nothing else under the root is ever removed.
_DIGEST_NAME = re.compile(r"[0-9a-f]{16}")

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# Modules numba imports only to probe for optional features, and the numba modules that probe:
# ``scipy.linalg.cython_blas`` (numba.np.arraymath: whether np.convolve/np.correlate in compiled code may
# call BLAS; numba's linear algebra imports scipy itself when used) and ``cffi`` (numba.core.typing.
# cffi_utils: calling C functions through cffi from compiled code). No kernel of ours uses either.
_PROBES = {"scipy.linalg.cython_blas": "numba.np.arraymath", "cffi": "numba.core.typing.cffi_utils"}
_OWN_PROCESS = False
# A kernel file: it compiles with numba, directly or through mesh/jit.py.
_KERNEL_FILE = re.compile(rb"^[ \t]*(?:import numba\b|from numba[ .]|from sidecar_thumbs\.mesh\.jit import )", re.M)
# ``from sidecar_thumbs.a.b import c, d``: numba freezes the globals a kernel reads (constants) into its code.
_PACKAGE_IMPORT = re.compile(rb"^[ \t]*from (sidecar_thumbs[\w.]*) import \(?([\w, \t]*)", re.M)


def _imported_files(source: bytes, package_dir: str) -> set[str]:
    """The package's source files that ``source`` imports from (a module, or modules of a package)."""
    root = os.path.dirname(package_dir)
    found: set[str] = set()
    for m in _PACKAGE_IMPORT.finditer(source):
        base = os.path.join(root, *m.group(1).decode().split("."))
        if os.path.isfile(base + ".py"):
            found.add(base + ".py")
        for name in m.group(2).decode().replace(",", " ").split():
            if os.path.isfile(os.path.join(base, name + ".py")):
                found.add(os.path.join(base, name + ".py"))
    return found


@functools.cache  # once per process; spawned workers inherit the folder it names
def kernel_digest() -> str:
    """:func:`kernel_sources_digest` of this package."""
    return kernel_sources_digest(_PACKAGE_DIR)


def kernel_sources_digest(package_dir: str) -> str:
    """A short hash of the numba kernel sources: every kernel file and the package modules it imports.

    Reads each of the package's ~120 source files (about 6 ms); spawned workers inherit the folder
    through ``NUMBA_CACHE_DIR`` and do not compute it again."""
    sources: dict[str, bytes] = {}
    for folder, dirs, files in os.walk(package_dir):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.endswith(".py"):
                with open(os.path.join(folder, name), "rb") as f:
                    sources[os.path.join(folder, name)] = f.read()
    # The substring test first: the multi-line regex over all ~0.9 MB would cost 8 ms, this 2 ms.
    kernels = {p for p, src in sources.items() if (b"numba" in src or b".jit" in src) and _KERNEL_FILE.search(src)}
    for path in list(kernels):
        kernels |= _imported_files(sources[path], package_dir) & sources.keys()
    import hashlib  # here, not at the top: OpenSSL's start-up is ~10 ms of every command's start

    digest = hashlib.sha256()
    for path in sorted(kernels):
        digest.update(os.path.relpath(path, package_dir).encode() + b"\0" + sources[path] + b"\0")
    return digest.hexdigest()[:16]


def own_process() -> None:
    """Declare this process one of ours (the command line, a pool worker), where only our kernels run:
    :func:`configure` then skips numba's probes for scipy's BLAS and for cffi. Not for a library caller's
    process, whose own compiled code may use them."""
    global _OWN_PROCESS
    _OWN_PROCESS = True


def _skip_probes() -> None:
    """Load numba's probing modules while their optional imports fail, then make those imports work again.

    The probes cost a third of a ``render`` command's start-up: 0.17 s of CPU on each start of the
    command line or of a worker (0.82 -> 0.65 s, 2 cores), nearly all of it importing scipy (for
    ``scipy.linalg.cython_blas``) and cffi's C parser. A worker also no longer maps scipy's OpenBLAS. What
    changes in the process: compiled np.convolve/np.correlate use numba's own loop, and compiled code
    cannot call cffi functions; neither is used by any kernel of ours (numba's linear algebra still
    finds scipy when asked).
    """
    blocked = [name for name, prober in _PROBES.items() if name not in sys.modules and prober not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError, parents untouched
    try:
        for prober in _PROBES.values():
            importlib.import_module(prober)
    except Exception:  # numba missing or broken: the caller's own import reports it
        pass
    finally:
        for name in blocked:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def configure() -> None:
    """Point numba at our cache folder for this version of the kernels, and in :func:`own_process` skip
    numba's unused probes; call just before importing numba kernels (for the folder: before the first
    ``import numba``, later is too late)."""
    _choose_folder()
    if _OWN_PROCESS and not os.environ.get("SIDECAR_THUMBS_NO_NUMBA"):
        _skip_probes()


@contextlib.contextmanager
def loading() -> Iterator[None]:
    """Around an import of numba or of numba kernels: :func:`configure` first, and in :func:`own_process`
    the cyclic garbage collector paused until the import is done, then what it built frozen.

    numba builds its type registries and loads each kernel's machine code on the first import: some 100k
    long-lived objects, over which the collector ran ~230 times for ~40 ms of a ``render`` command's
    start-up (2 cores). Frozen (``gc.freeze``), they are never traversed again, also not by a daemon's or
    worker's later full collections. Not in a library caller's process, whose collector is its own.
    """
    pause = _OWN_PROCESS and gc.isenabled()
    if pause:
        gc.disable()  # before configure(): skipping the probes imports numba
    try:
        configure()
        yield
    finally:
        if pause:
            gc.freeze()
            gc.enable()


def _choose_folder() -> None:
    if "numba" in sys.modules or os.environ.get("NUMBA_CACHE_DIR"):
        return
    import platformdirs

    root = os.path.join(platformdirs.user_cache_dir("sidecar-thumbs"), "numba")
    # Spawned workers inherit the environment, so they use the same folder.
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(root, kernel_digest())
    prune_stale(root, kernel_digest())


def prune_stale(root: str, current: str, now: float | None = None) -> list[str]:
    """Mark ``root/current`` as used now and remove the other digest folders under ``root`` that no
    process has marked for :data:`STALE_DAYS` days. Never raises: a read-only or missing cache, or a
    folder another process removes first, only leaves things as they are.

    Returns:
        the names of the folders removed.
    """
    import shutil
    import time

    now = time.time() if now is None else now
    mine = os.path.join(root, current)
    try:
        os.makedirs(mine, exist_ok=True)
        os.utime(mine, (now, now))  # a kernel cache read (not written) for months is still in use
        names = os.listdir(root)
    except OSError:
        return []
    removed = []
    for name in names:
        path = os.path.join(root, name)
        if name == current or not _DIGEST_NAME.fullmatch(name):
            continue
        try:
            if os.path.isdir(path) and not os.path.islink(path) and now - os.stat(path).st_mtime > STALE_DAYS * 86400:
                shutil.rmtree(path)
                removed.append(name)
        except OSError:
            continue
    return removed


@functools.cache  # asked once per module and process: the kernel choice does not change while we run
def import_kernel(module: str) -> ModuleType | None:
    """Import a numba kernel module, or None when numba is missing or ``SIDECAR_THUMBS_NO_NUMBA`` is
    set (the caller then uses its pure NumPy/Python twin, which gives the same arrays)."""
    if os.environ.get("SIDECAR_THUMBS_NO_NUMBA"):
        return None
    try:
        with loading():
            return importlib.import_module(module)
    except ImportError:
        return None


def chosen_kernel(kernel: ModuleType | None, use_numba: bool | None) -> ModuleType | None:
    """The kernel to run, or None for the pure twin: ``use_numba`` None takes the kernel when it was
    imported; True (tests) insists on it and raises ``RuntimeError`` without numba; False refuses it."""
    if use_numba is None:
        use_numba = kernel is not None
    if use_numba and kernel is None:
        raise RuntimeError("numba is not available")
    return kernel if use_numba else None


def is_cold() -> bool:
    """Whether the renderer's kernels are not compiled yet (the first render will take ~30 s).

    Looks for numba's index files of ``render/kernel_numba.py`` where numba keeps them: with a cache
    folder set (ours, or ``NUMBA_CACHE_DIR``), only in its subfolder ``<folder name>_<sha1 of the
    folder's absolute path>`` (numba's rule for a user-provided cache dir,
    ``_CacheLocator.get_suitable_cache_subpath``; ``__pycache__`` is then never used); without one
    (numba was imported before :func:`configure`), in ``__pycache__`` beside the module. Cheap: no
    numba import. False when numba is not installed (numpy renders).
    """
    if importlib.util.find_spec("numba") is None:
        return False
    _choose_folder()
    render_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "render")
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    if cache_dir:
        import hashlib  # see kernel_sources_digest

        places = [os.path.join(cache_dir, f"render_{hashlib.sha1(render_dir.encode()).hexdigest()}")]
    else:
        places = [os.path.join(render_dir, "__pycache__")]
    for place in places:
        try:
            names = os.listdir(place)
        except OSError:
            continue
        if any(n.startswith("kernel_numba.") and n.endswith(".nbi") for n in names):
            return False
    return True
