"""Model loading: STL (binary and ASCII), 3MF, OBJ, PLY and AMF into one :class:`Mesh` type.

Loaders take the file's bytes (read once by the caller, who also hashes them), so the thumbnail
is provably made from the content whose hash is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

__all__ = [
    "DEFAULT_LIMITS",
    "LoadLimits",
    "Mesh",
    "detect_format",
    "find_embedded_thumbnail",
    "load_mesh",
    "load_mesh_bytes",
    "warm_up",
]


@dataclass(frozen=True)
class LoadLimits:
    """Hard caps that protect the worker from hostile or absurd files. A cap hit is a
    :class:`~sidecar_thumbs.errors.LimitExceededError`, never an out-of-memory crash."""

    max_file_bytes: int = 1024 * 1024 * 1024  # 1 GiB model file
    max_triangles: int = 20_000_000
    max_decompressed_bytes: int = 2 * 1024 * 1024 * 1024  # per 3MF part, zipped AMF or archive, all entries
    # A G-code toolpath keeps at most this many extrusion segments (8 triangles each); beyond it every
    # k-th layer is kept and drawn k layers tall, so a 500 MB G-code renders like a ~1M-triangle model.
    max_toolpath_segments: int = 150_000
    # Archives (.zip, .7z): a real model download has tens of entries; deflate cannot beat ~1032:1 and
    # real models compress < 20:1, so 100:1 on an entry over 1 MiB is a bomb; nesting as the issue asks.
    max_archive_entries: int = 10_000
    max_archive_ratio: float = 100.0
    archive_ratio_floor_bytes: int = 1024 * 1024
    max_archive_depth: int = 2


DEFAULT_LIMITS: LoadLimits = LoadLimits()


@dataclass(frozen=True, eq=False, init=False)
class Mesh:
    """A mesh in millimetres, Z up (the 3D-printing convention), build-item and component transforms
    applied; every triangle has finite coordinates (loaders drop the others).

    Three forms, built as ``Mesh(triangles=..., format=...)``, ``Mesh(vertices=..., faces=..., format=...)``
    or ``Mesh(raw=..., format=...)``:

    * a triangle soup: ``triangles`` is a C-contiguous ``float32`` array of shape ``(N, 3, 3)``:
      triangle, corner, xyz;
    * indexed (the 3MF reader): ``vertices`` is C-contiguous ``float32`` ``(V, 3)`` and ``faces``
      C-contiguous ``int32`` ``(N, 3)`` indices into it. A vertex no face uses may be non-finite;
    * raw (the binary STL reader): ``raw`` is a float32 ``(N, 3, 3)`` view of the file's records (each
      triangle's nine floats contiguous, any row stride), not copied and not checked: it may hold
      triangles with a NaN or infinite coordinate, which the renderer skips as it draws, counting the
      others for :attr:`triangle_count` (a copy and a check cost a 100k-triangle STL 0.7 ms a file).

    The renderer draws each form as it is (:func:`sidecar_thumbs.render.render_mesh`); ``triangles``
    (finite triangles only) is built on first use for the other two, so every other reader still gets
    the soup.

    ``face_colors`` is None, or a C-contiguous ``uint8`` array of shape ``(N, 4)``: the RGBA colour
    the file gives each triangle (OBJ material or vertex colours, PLY, AMF, STEP). Alpha is 255 for a
    triangle with a colour and 0 for one without (drawn in the default colour); a file's own
    transparency is not kept, as a thumbnail draws every part opaque.
    """

    # "stl-binary", "stl-ascii", "3mf", "obj", "ply-ascii", "ply-binary", "amf", "gcode" or "bgcode"
    format: str
    # The model's own colours, when it has any, uint8: (N, 4) RGBA per triangle with alpha 0 where a
    # triangle has none (the OBJ, PLY, AMF and STEP readers), or (N, 3) per triangle / (N, 3, 3) per corner with
    # ``color_mask`` bool (N,) marking the triangles that have one (None: all of them; the 3MF reader).
    # Triangles without a colour are drawn in the configured default.
    face_colors: np.ndarray | None
    color_mask: np.ndarray | None
    # The indexed form (None otherwise).
    vertices: np.ndarray | None
    faces: np.ndarray | None
    # The raw form (None otherwise).
    raw: np.ndarray | None
    # How the loader knows the faces are wound: 1 outward (counter-clockwise seen from outside, as the 3MF
    # and STL specs require), -1 inward (a 3MF mirrored by every placement), 0 unknown. A hint for the
    # renderer's speed only: a file that breaks the rule draws the same picture, more slowly.
    winding: int

    def __init__(
        self,
        triangles: np.ndarray | None = None,
        format: str = "",
        face_colors: np.ndarray | None = None,
        color_mask: np.ndarray | None = None,
        *,
        vertices: np.ndarray | None = None,
        faces: np.ndarray | None = None,
        raw: np.ndarray | None = None,
        winding: int = 0,
    ) -> None:
        forms = (triangles is not None) + (vertices is not None or faces is not None) + (raw is not None)
        if forms != 1 or (vertices is None) != (faces is None):
            raise ValueError("a Mesh is given one of: triangles, both vertices and faces, or raw")
        object.__setattr__(self, "format", format)
        object.__setattr__(self, "face_colors", face_colors)
        object.__setattr__(self, "color_mask", color_mask)
        object.__setattr__(self, "vertices", vertices)
        object.__setattr__(self, "faces", faces)
        object.__setattr__(self, "raw", raw)
        object.__setattr__(self, "winding", winding)
        object.__setattr__(self, "_soup", triangles)
        object.__setattr__(self, "_count", None)

    @property
    def triangles(self) -> np.ndarray:
        """The triangle soup, C-contiguous float32 (N, 3, 3), finite triangles only (built on first use
        for an indexed or raw mesh; for a raw mesh with no finite triangle this raises NoGeometryError)."""
        soup: np.ndarray | None = self.__dict__["_soup"]
        if soup is None:
            if self.raw is not None:
                from sidecar_thumbs.mesh.soup import finish_triangles

                soup = finish_triangles(self.raw)
            else:
                assert self.vertices is not None and self.faces is not None
                soup = np.take(self.vertices, self.faces, axis=0)
            object.__setattr__(self, "_soup", soup)
        return soup

    def note_finite_count(self, count: int) -> None:
        """Record how many triangles of a raw mesh are finite, as the renderer counted them while drawing,
        so :attr:`triangle_count` needs no pass of its own."""
        object.__setattr__(self, "_count", int(count))

    @property
    def indexed(self) -> bool:
        """Whether the mesh holds vertices and faces (else only a soup)."""
        return self.faces is not None

    def colors_for(self, default: tuple[int, int, int]) -> np.ndarray | None:
        """Colours to draw, one row per triangle (``default`` where the model gives none), or None
        when the model has no colour at all."""
        if self.face_colors is None:
            return None
        colors, mask = self.face_colors, self.color_mask
        if colors.ndim == 2 and colors.shape[1] == 4:
            colors, mask = colors[:, :3], colors[:, 3] > 0
            if not mask.any():
                return None
        if mask is None or mask.all():
            return colors
        out = colors.copy()
        out[~mask] = default
        return out

    @property
    def triangle_count(self) -> int:
        """Triangles with finite coordinates."""
        if self.faces is not None:
            return int(self.faces.shape[0])
        counted: int | None = self.__dict__["_count"]
        return counted if counted is not None else int(self.triangles.shape[0])

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """(min xyz, max xyz) over all vertices; raises ValueError on an empty mesh."""
        v = self.triangles.reshape(-1, 3)
        return v.min(axis=0), v.max(axis=0)


# Re-exports (after the types above, which the loaders import from here).
from sidecar_thumbs.mesh.load import detect_format, load_mesh, load_mesh_bytes, warm_up  # noqa: E402

if TYPE_CHECKING:
    from sidecar_thumbs.mesh.threemf import find_embedded_thumbnail


def __getattr__(name: str) -> object:
    # The 3MF reader (with its colour tables) loads when first asked for, so rendering an STL does not
    # pay ~30 ms of start-up for it.
    if name == "find_embedded_thumbnail":
        from sidecar_thumbs.mesh.threemf import find_embedded_thumbnail

        return find_embedded_thumbnail
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
