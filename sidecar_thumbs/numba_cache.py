"""Where numba keeps the compiled kernels: a per-user cache folder, not the installed package.

numba's default is a ``__pycache__`` beside the module. That fails for a read-only install, and
after ``pip uninstall`` the left-over cache folders turn ``site-packages/sidecar_thumbs`` into a
namespace package that shadows a later (editable) install — seen on this project's own machines.
A per-user folder (``~/Library/Caches/sidecar-thumbs/numba`` on macOS, ``~/.cache/…`` on Linux)
survives reinstalls; numba keys entries by source path and timestamp, so versions do not collide.
An explicit ``NUMBA_CACHE_DIR`` always wins.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import os
import sys
from types import ModuleType

__all__ = ["chosen_kernel", "configure", "import_kernel", "is_cold"]


def configure() -> None:
    """Point numba at our cache folder; call before the first ``import numba`` (later is too late)."""
    if "numba" in sys.modules or os.environ.get("NUMBA_CACHE_DIR"):
        return
    import platformdirs

    # Spawned workers inherit the environment, so they use the same folder.
    os.environ["NUMBA_CACHE_DIR"] = os.path.join(platformdirs.user_cache_dir("sidecar-thumbs"), "numba")


@functools.cache  # asked once per module and process: the kernel choice does not change while we run
def import_kernel(module: str) -> ModuleType | None:
    """Import a numba kernel module, or None when numba is missing or ``SIDECAR_THUMBS_NO_NUMBA`` is
    set (the caller then uses its pure NumPy/Python twin, which gives the same arrays)."""
    if os.environ.get("SIDECAR_THUMBS_NO_NUMBA"):
        return None
    configure()
    try:
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
    configure()
    render_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "render")
    cache_dir = os.environ.get("NUMBA_CACHE_DIR")
    if cache_dir:
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
