"""G-code, text and binary: the slicer's picture, or the toolpath as triangles.

What a user of PrusaSlicer's or a file manager's preview expects: the picture the slicer embedded
(:func:`find_gcode_picture`), and for a file without one the printed object drawn from its extrusion
moves (:func:`load_gcode_bytes`). Binary G-code is recognised by its ``GCDE`` magic whatever the
file's extension, as PrusaSlicer does (``.gcode`` files that are binary exist in the wild).
"""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.errors import BadModelError, NoGeometryError
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits
from sidecar_thumbs.mesh.bgcode import MAGIC, read_bgcode
from sidecar_thumbs.mesh.slicer_picture import Picture, best_picture
from sidecar_thumbs.mesh.toolpath import ToolpathScanner, scan_toolpath, toolpath_triangles

__all__ = ["ICON_SIDE", "choose_gcode_picture", "find_gcode_picture", "is_binary_gcode", "load_gcode_bytes"]

ICON_SIDE = 64


def is_binary_gcode(data: bytes) -> bool:
    return data[:4] == MAGIC


def find_gcode_picture(data: bytes, binary: bool = False) -> Picture | None:
    """The largest usable picture the slicer embedded, or None. ``binary``: the name says binary
    G-code (``.bgcode``), so text is refused; otherwise the ``GCDE`` magic decides.

    Raises:
        BadModelError: the file is damaged (cut off inside a thumbnail block; for binary G-code a
            broken block structure or a failing checksum outside the thumbnails): such a file gets no
            sidecar even though a picture may survive.
    """
    if not data:
        raise BadModelError("G-code file is empty")
    if binary or is_binary_gcode(data):
        return best_picture(read_bgcode(data).pictures())
    from sidecar_thumbs.mesh.gcode_thumbs import text_gcode_pictures

    return best_picture(text_gcode_pictures(data))


def choose_gcode_picture(data: bytes, limits: LoadLimits = DEFAULT_LIMITS, binary: bool = False) -> Picture | None:
    """The picture a thumbnail should show: the largest embedded one, unless that is only an icon
    (PrusaSlicer's 16x16, below :data:`ICON_SIDE` on its long side: blurred to mush when scaled up)
    and the toolpath can be drawn instead. None: draw the toolpath. Raises as :func:`find_gcode_picture`.
    """
    picture = find_gcode_picture(data, binary)
    if picture is None or max(picture.width, picture.height) >= ICON_SIDE:
        return picture
    try:
        load_gcode_bytes(data, limits, binary)  # parsed twice, but only for a file with nothing but an icon
    except NoGeometryError:
        return picture  # an icon beats no thumbnail at all
    return None


def load_gcode_bytes(data: bytes, limits: LoadLimits = DEFAULT_LIMITS, binary: bool = False) -> tuple[np.ndarray, str]:
    """The toolpath of a G-code file as triangles, and the format (``"gcode"`` or ``"bgcode"``);
    ``binary`` as for :func:`find_gcode_picture`.

    Raises:
        BadModelError: an empty or damaged file (see :mod:`sidecar_thumbs.mesh.bgcode`).
        NoGeometryError: nothing is extruded (a CNC or laser program, or a file holding only a picture).
        LimitExceededError: binary G-code decompressing past the caps.
    """
    if not data:
        raise NoGeometryError("G-code file is empty")
    if binary or is_binary_gcode(data):
        scanner = ToolpathScanner(limits.max_toolpath_segments)
        for text in read_bgcode(data).gcode_text(limits):
            scanner.feed(text)
        path, kind = scanner.finish(), "bgcode"
    else:
        path, kind = scan_toolpath(data, limits.max_toolpath_segments), "gcode"
    return toolpath_triangles(path), kind
