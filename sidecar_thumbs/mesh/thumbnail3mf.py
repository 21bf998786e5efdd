"""The thumbnail image a slicer or CAD tool embedded in a 3MF (see :func:`find_thumbnail`)."""

from __future__ import annotations

import io
import warnings
import zipfile

from sidecar_thumbs.errors import SidecarError
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits
from sidecar_thumbs.mesh.opc import Package

__all__ = ["MAX_THUMBNAIL_BYTES", "MAX_THUMBNAIL_SIDE", "find_thumbnail"]

THUMBNAIL_REL = "http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail"
# Where PrusaSlicer/SuperSlicer, Bambu Studio/OrcaSlicer and Cura put theirs.
WELL_KNOWN = (
    "Metadata/thumbnail.png",
    "Metadata/plate_1.png",
    "Auxiliaries/.thumbnails/thumbnail_middle.png",
)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_THUMBNAIL_BYTES = 20 * 1024 * 1024
MAX_THUMBNAIL_SIDE = 4096


def find_thumbnail(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> tuple[str, bytes] | None:
    """``(member name, image bytes)`` of the first usable embedded thumbnail, or None.

    The package thumbnail relationship comes first, then the well-known slicer names. Anything
    wrong (not a ZIP, missing or corrupt member, not an image, too large) means None.
    """
    try:
        package = Package(data, min(limits.max_decompressed_bytes, MAX_THUMBNAIL_BYTES))
    except SidecarError:
        return None
    try:
        candidates = [t for typ, t in package.relationships() if typ.lower() == THUMBNAIL_REL]
    except Exception:  # broken relationships: still try the well-known names
        candidates = []
    seen: set[str] = set()
    for name in [*candidates, *WELL_KNOWN]:
        info = package.find(name)
        if info is None or info.filename in seen or not info.filename.lower().endswith(IMAGE_SUFFIXES):
            continue
        seen.add(info.filename)
        image = _read_image(package, info)
        if image is not None:
            return info.filename, image
    return None


def _read_image(package: Package, info: zipfile.ZipInfo) -> bytes | None:
    from PIL import Image

    try:
        data = package.read_member(info)
    except SidecarError:
        return None
    try:
        with warnings.catch_warnings():
            # Our own pixel cap below is far stricter than Pillow's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.format not in ("PNG", "JPEG"):
                    return None
                w, h = im.size
                if not (0 < w <= MAX_THUMBNAIL_SIDE and 0 < h <= MAX_THUMBNAIL_SIDE):
                    return None
                im.verify()
    except Exception:  # Pillow raises many types for broken images; any of them means "unusable"
        return None
    return data
