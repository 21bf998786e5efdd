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

import numpy as np

__all__ = ["BLANK_TOLERANCE", "MAX_PICTURE_BYTES", "Picture", "best_picture", "is_blank", "usable_picture"]

MAX_PICTURE_BYTES = 20 * 1024 * 1024
MAX_SIDE = 4096
# Largest per-channel spread (0-255) of a picture that still counts as one flat colour.
BLANK_TOLERANCE = 4
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
                blank = is_blank(np.asarray(im.convert("RGBA")))  # decodes every pixel: a cut image fails here
    except Exception:  # Pillow raises many types for broken images; any of them means "unusable"
        return None
    return None if blank else Picture(data, fmt, w, h)


def is_blank(rgba: np.ndarray) -> bool:
    """One flat colour, or nothing visible: a slicer's placeholder, never a picture of the model.
    A little tolerance for compression noise (a flat JPEG is not exactly flat)."""
    visible = rgba[rgba[..., 3] > 0]
    if visible.size == 0:
        return True
    spread = visible.max(axis=0).astype(np.int16) - visible.min(axis=0).astype(np.int16)
    return bool((spread <= BLANK_TOLERANCE).all())


def best_picture(pictures: list[Picture]) -> Picture | None:
    """The largest picture (by pixels; the first of equals), or None."""
    best: Picture | None = None
    for p in pictures:
        if best is None or p.pixels > best.pixels:
            best = p
    return best
