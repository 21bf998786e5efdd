"""Triangle soup → RGBA thumbnail: an orthographic, auto-framed, flat-shaded software rasteriser.

Two kernels draw the same image: ``numba`` (default, compiled) and ``numpy`` (fallback where numba is
not installed, e.g. Intel Macs). :func:`render_mesh` is all a worker needs::

    rgba = render_mesh(mesh, RenderOptions(size=256))

(:func:`render_triangles` draws a triangle soup, :func:`render_indexed` vertices and faces: the same
picture for the same triangles, to the last bit.)

numba compiles each kernel once and caches the machine code on disk (``cache=True``), next to the
package when that directory is writable, otherwise in numba's per-user cache directory; set
``NUMBA_CACHE_DIR`` to choose the place (e.g. a read-only install with a shared writable cache).
Call :func:`warm_up` once per worker process so the first real file does not pay for loading it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from sidecar_thumbs import numba_cache
from sidecar_thumbs.errors import ConfigError, NoGeometryError
from sidecar_thumbs.render.camera import shading_for
from sidecar_thumbs.render.colors import kernel_colors

if TYPE_CHECKING:
    from sidecar_thumbs.mesh import Mesh

__all__ = [
    "KERNELS",
    "RenderOptions",
    "describe_kernel",
    "render_indexed",
    "render_mesh",
    "render_triangles",
    "resolve_kernel",
    "warm_up",
]

KERNELS = ("auto", "numba", "numpy")
MIN_SIZE, MAX_SIZE = 16, 4096


@dataclass(frozen=True)
class RenderOptions:
    """How a thumbnail looks.

    Attributes:
        size: Output width and height in pixels (16..4096).
        color: Base colour of the model as 0..255 RGB; lit faces come out near this colour.
        kernel: ``"auto"`` (numba when importable, else numpy), ``"numba"`` or ``"numpy"``.
        supersample: Samples per pixel along each axis (2 = 2x2 antialiasing; 1..4).
        margin: Empty border on each side as a fraction of the image side (0 <= margin < 0.5).
    """

    size: int = 256
    color: tuple[int, int, int] = (92, 143, 219)
    kernel: str = "auto"
    supersample: int = 2
    margin: float = 0.06

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and MIN_SIZE <= self.size <= MAX_SIZE):
            raise ConfigError(f"thumbnail size must be a whole number of pixels from 16 to 4096, got {self.size!r}")
        if not (
            isinstance(self.color, tuple | list)
            and len(self.color) == 3
            and all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in self.color)
        ):
            raise ConfigError(f"colour must be three integers 0..255 (R, G, B), got {self.color!r}")
        # A list (e.g. from a JSON or .env setting) becomes a tuple: options are hashed and pickled.
        object.__setattr__(self, "color", tuple(self.color))
        if self.kernel not in KERNELS:
            raise ConfigError(f"renderer must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if not (isinstance(self.supersample, int) and 1 <= self.supersample <= 4):
            raise ConfigError(f"supersample must be 1, 2, 3 or 4, got {self.supersample!r}")
        if not (isinstance(self.margin, int | float) and 0.0 <= self.margin < 0.5):
            raise ConfigError(f"margin must be at least 0 and below 0.5, got {self.margin!r}")


@cache
def _numba_available() -> bool:
    # find_spec is cheap; the import itself (~0.4 s) happens only when the kernel is first used.
    try:
        return importlib.util.find_spec("numba") is not None
    except (ImportError, ValueError):  # a broken or blocked install counts as missing
        return False


def resolve_kernel(name: str = "auto") -> str:
    """The kernel a name stands for on this machine.

    Args:
        name: ``"auto"``, ``"numba"`` or ``"numpy"``.

    Returns:
        ``"numba"`` or ``"numpy"``.

    Raises:
        ConfigError: Unknown name, or ``"numba"`` asked for where numba is not installed.
    """
    if name == "auto":
        return "numba" if _numba_available() else "numpy"
    if name == "numba":
        if not _numba_available():
            raise ConfigError("renderer 'numba' asked for but numba is not installed; use 'auto' or 'numpy'")
        return name
    if name == "numpy":
        return name
    raise ConfigError(f"renderer must be one of {', '.join(KERNELS)}, got {name!r}")


def describe_kernel(name: str = "auto") -> str:
    """One line for logs and ``status``: the kernel a setting stands for here, and why when it is numpy.

    numpy draws the same picture about 8x slower; on an Intel Mac it is what ``auto`` falls back to when
    numba is missing (numba publishes macOS x86_64 wheels up to 0.62, for Python up to 3.13).
    """
    try:
        kernel = resolve_kernel(name)
    except ConfigError as exc:
        return f"none: {exc.message}"
    if kernel == "numba":
        try:
            return f"numba {importlib.metadata.version('numba')}"
        except importlib.metadata.PackageNotFoundError:
            return "numba"
    if name == "numpy":
        return "numpy (asked for)"
    intel_mac = sys.platform == "darwin" and platform.machine() == "x86_64"
    hint = "pip install 'numba>=0.59,<0.63' (Python <= 3.13)" if intel_mac else "pip install numba"
    return f"numpy (numba is not installed, about 8x slower: {hint})"


@cache
def _kernel_module(name: str) -> ModuleType:
    if name == "numba":
        try:
            with numba_cache.loading():
                from sidecar_thumbs.render import kernel_numba
        except ImportError as exc:  # installed but broken (e.g. llvmlite mismatch)
            raise ConfigError(f"renderer 'numba' cannot be loaded: {exc}; use 'numpy'") from exc
        return kernel_numba
    from sidecar_thumbs.render import kernel_numpy

    return kernel_numpy


def _as_rows(tri: np.ndarray) -> np.ndarray:
    """(N, 3, 3) → (N, 9) float32 rows, without copying when each triangle's nine floats are contiguous.

    That avoids a copy of e.g. a strided view into a binary STL's records (36 of every 50 bytes).
    """
    if tri.dtype != np.float32:
        tri = tri.astype(np.float32)
    if tri.strides[1:] == (12, 4):
        return np.lib.stride_tricks.as_strided(tri, (tri.shape[0], 9), (tri.strides[0], 4), writeable=False)
    return np.ascontiguousarray(tri).reshape(-1, 9)


def render_triangles(
    triangles: np.ndarray,
    options: RenderOptions = RenderOptions(),
    colors: np.ndarray | None = None,
    winding: int = 0,
) -> np.ndarray:
    """Draw a triangle soup as a square RGBA thumbnail with a transparent background.

    The view is orthographic from the front-left and above (Z up), framed to fit the model exactly
    with ``options.margin`` around it. Faces are lit from both sides, so inconsistent winding never
    shows holes. Triangles with NaN/inf coordinates are ignored; zero-area ones draw nothing.

    Args:
        triangles: (N, 3, 3) array (triangle, corner, xyz) in millimetres. float32 is used in place
            whenever each triangle's nine floats are contiguous (any row stride, e.g. a view into binary
            STL records, read-only or unaligned); anything else is converted first.
        options: Size, colour, kernel and antialiasing.
        colors: the model's own colours, drawn instead of ``options.color`` (moved into a readable
            luminance band): uint8 (N, 3) RGB per triangle, or (N, 3, 3) per corner (blended across
            the triangle); None for the base colour.
        winding: as for :func:`render_indexed` (1 for an STL's triangles: the format winds them outward).

    Returns:
        uint8 array (size, size, 4): straight (not premultiplied) RGBA.

    Raises:
        NoGeometryError: No triangles, or none with finite coordinates.
        ConfigError: The requested kernel is not available.
    """
    tri = np.asarray(triangles)
    if tri.ndim != 3 or tri.shape[1:] != (3, 3):
        raise ValueError(f"triangles must have shape (N, 3, 3), got {tri.shape}")
    return _render(_as_rows(tri), None, tri.shape[0], options, colors, winding)[0]


def render_indexed(
    vertices: np.ndarray,
    faces: np.ndarray,
    options: RenderOptions = RenderOptions(),
    colors: np.ndarray | None = None,
    winding: int = 0,
) -> np.ndarray:
    """Draw an indexed mesh: the same picture as :func:`render_triangles` of ``vertices[faces]``, to the
    last bit, without building that soup (the framing looks at each vertex once; the raster reads the
    corners through the indices).

    Args:
        vertices: (V, 3) coordinates in millimetres (float32 used in place when C-contiguous).
        faces: (N, 3) integer indices into ``vertices``, one row per triangle.
        options: Size, colour, kernel and antialiasing.
        colors: as for :func:`render_triangles`, one row per face.
        winding: 1 when the faces are known to be wound outward (counter-clockwise seen from outside),
            -1 inward, 0 unknown (:attr:`Mesh.winding <sidecar_thumbs.mesh.Mesh.winding>`). Saves the
            numba kernel a pass that finds it out; a wrong hint draws the same picture, only slower.

    Returns:
        uint8 array (size, size, 4): straight (not premultiplied) RGBA.

    Raises:
        NoGeometryError: No faces, or none whose three vertices are finite.
        ValueError: Wrong shapes, or a face index outside ``vertices``.
        ConfigError: The requested kernel is not available.
    """
    v = np.asarray(vertices)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3:
        raise ValueError(f"vertices must have shape (V, 3), got {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or not np.issubdtype(f.dtype, np.integer):
        raise ValueError(f"faces must be integers of shape (N, 3), got {f.dtype} {f.shape}")
    if f.dtype != np.int32:
        if f.size and (f.min() < 0 or f.max() >= v.shape[0]):
            raise ValueError(f"a face index is outside the {v.shape[0]} vertices")
        f = f.astype(np.int32)
    v = np.ascontiguousarray(v, dtype=np.float32)
    return _render(v, np.ascontiguousarray(f), f.shape[0], options, colors, winding)[0]


def render_mesh(mesh: Mesh, options: RenderOptions = RenderOptions(), colors: np.ndarray | None = None) -> np.ndarray:
    """Draw a loaded :class:`~sidecar_thumbs.mesh.Mesh` in the form it holds (indexed without a soup).

    Args:
        mesh: The model.
        options: Size, colour, kernel and antialiasing.
        colors: as for :func:`render_triangles`, one row per triangle (e.g. ``mesh.colors_for(...)``).
    """
    if mesh.vertices is not None and mesh.faces is not None:
        return render_indexed(mesh.vertices, mesh.faces, options, colors, mesh.winding)
    if mesh.raw is not None:
        # Not copied, not checked: the kernel skips non-finite triangles and counts the finite ones.
        img, finite = _render(_as_rows(mesh.raw), None, mesh.raw.shape[0], options, colors, mesh.winding)
        if finite >= 0:
            mesh.note_finite_count(finite)
        return img
    return render_triangles(mesh.triangles, options, colors, mesh.winding)


def _render(
    geometry: np.ndarray,
    faces: np.ndarray | None,
    count: int,
    options: RenderOptions,
    colors: np.ndarray | None,
    winding: int = 0,
) -> tuple[np.ndarray, int]:
    """Both forms: ``geometry`` is the (N, 9) soup when ``faces`` is None, else the (V, 3) vertices. Also
    returns the number of the soup's triangles with finite coordinates (-1 for an indexed mesh)."""
    if count == 0:
        raise NoGeometryError("model has no triangles")
    packed = None
    base = options.color
    name = resolve_kernel(options.kernel)
    if colors is not None:
        if colors.shape[0] != count:
            raise ValueError(f"colors must have one row per triangle ({count}), got {colors.shape}")
        # One colour for the whole model comes back as the base colour (the plain kernel path).
        packed, single = kernel_colors(colors, use_numba=None if name == "numba" else False)
        base = single or base
    kernel = _kernel_module(name)
    shading = shading_for(base)
    img, finite = kernel.render_and_count(
        geometry, options.size, options.supersample, options.margin, shading, packed, faces=faces, winding=winding
    )
    if img is None:
        raise NoGeometryError("model has no drawable triangles: every coordinate is NaN, infinite or absurdly large")
    return img, finite


def warm_up(options: RenderOptions = RenderOptions()) -> None:
    """Load (or, the very first time, compile) the kernel so the first real render is fast.

    Args:
        options: The options workers will render with (selects the kernel).
    """
    tetra = np.array(
        [
            [[0, 0, 0], [1, 0, 0], [0, 1, 0]],
            [[0, 0, 0], [0, 0, 1], [1, 0, 0]],
            [[0, 0, 0], [0, 1, 0], [0, 0, 1]],
        ],
        dtype=np.float32,
    )
    tiny = RenderOptions(size=MIN_SIZE, kernel=options.kernel)
    render_triangles(tetra, tiny)
    # Corner colours too: the colour pass (render/colors_numba.py) loads on the first coloured model,
    # and on a cold cache compiles there (~1.5 s) unless this does it first.
    corners = np.array([[[200, 30, 30], [30, 200, 30], [30, 30, 200]]] * 3, dtype=np.uint8)
    render_triangles(tetra, tiny, corners)
