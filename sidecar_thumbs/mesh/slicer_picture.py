"""The pictures slicers embed in G-code: which are usable, and which one to show.

A usable picture is a PNG, JPEG or QOI image that Pillow decodes completely, at most 4096 pixels a
side, and not blank: a picture that is fully transparent or one flat colour (a slicer that rendered
nothing, or a placeholder) would hide a perfectly good toolpath render. Of several, the largest wins
(slicers write a 16x16 icon next to the real preview).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

__all__ = ["MAX_PICTURE_BYTES", "Picture", "best_picture", "usable_picture"]

MAX_PICTURE_BYTES = 20 * 1024 * 1024
MAX_SIDE = 4096
FORMATS = ("PNG", "JPEG", "QOI")


@dataclass(frozen=True)
class Picture:
    """An embedded picture: its encoded bytes (as stored), format and size in pixels."""

    data: bytes
    format: str  # "PNG", "JPEG" or "QOI"
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def usable_picture(data: bytes) -> Picture | None:
    """The picture in ``data`` if it decodes fully and is not blank, else None (never raises)."""
    if not data or len(data) > MAX_PICTURE_BYTES:
        return None
    from PIL import Image

    try:
        with warnings.catch_warnings():
            # Our side cap below is far stricter than Pillow's bomb warning.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                if im.format not in FORMATS:
                    return None
                w, h = im.size
                if not (0 < w <= MAX_SIDE and 0 < h <= MAX_SIDE):
                    return None
                fmt = str(im.format)
                extrema = im.convert("RGBA").getextrema()  # decodes every pixel: a cut image fails here
    except Exception:  # Pillow raises many types for broken images; any of them means "unusable"
        return None
    if extrema[3][1] == 0:  # fully transparent
        return None
    if all(lo == hi for lo, hi in extrema):  # one flat colour
        return None
    return Picture(data, fmt, w, h)


def best_picture(pictures: list[Picture]) -> Picture | None:
    """The largest picture (by pixels; the first of equals), or None."""
    best: Picture | None = None
    for p in pictures:
        if best is None or p.pixels > best.pixels:
            best = p
    return best
