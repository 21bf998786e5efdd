"""Small G-code and binary G-code files built in tests (the corpus has no blank pictures, no
thumbnail at the end of a file, no damaged thumbnail block, no decompression bomb)."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
from PIL import Image


def png_bytes(width: int, height: int, blank: str = "") -> bytes:
    """A PNG with a gradient, or ``blank="flat"`` one colour, ``blank="clear"`` fully transparent."""
    if blank == "flat":
        pixels = np.full((height, width, 4), (200, 30, 30, 255), np.uint8)
    elif blank == "clear":
        pixels = np.zeros((height, width, 4), np.uint8)
    else:
        pixels = np.zeros((height, width, 4), np.uint8)
        pixels[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        pixels[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
        pixels[..., 3] = 255
    out = io.BytesIO()
    Image.fromarray(pixels, "RGBA").save(out, "PNG")
    return out.getvalue()


def thumbnail_block(image: bytes, width: int, height: int, tag: str = "thumbnail") -> bytes:
    """A PrusaSlicer-style ``; thumbnail begin`` comment block (base64 in lines of 78)."""
    b64 = base64.b64encode(image).decode()
    lines = [f"; {tag} begin {width}x{height} {len(b64)}"]
    lines += [f"; {b64[i : i + 78]}" for i in range(0, len(b64), 78)]
    lines.append(f"; {tag} end")
    return ("\n".join(lines) + "\n\n").encode()


def tower_gcode(
    layers: int = 20, side: float = 20.0, x0: float = 100.0, y0: float = 100.0, solid: bool = False
) -> bytes:
    """A square tube printed perimeter by perimeter (and with ``solid`` filled by a zigzag), relative E,
    as a slicer writes it."""
    out = ["G21", "G90", "M83", "G28", "G92 E0"]
    for k in range(layers):
        z = 0.2 * (k + 1)
        out.append(f"G1 Z{z:.2f} F720")
        out.append(f"G0 X{x0:.3f} Y{y0:.3f}")
        for dx, dy in ((side, 0), (side, side), (0, side), (0, 0)):
            out.append(f"G1 X{x0 + dx:.3f} Y{y0 + dy:.3f} E{side * 0.033:.5f}")
        if solid:
            y = y0 + 0.45
            right = True
            while y < y0 + side:
                out.append(f"G1 Y{y:.3f} E0.015")
                out.append(f"G1 X{x0 + side if right else x0:.3f} E{side * 0.033:.5f}")
                right = not right
                y += 0.45
        out.append("G1 E-0.8 F2100")
        out.append("G1 E0.8")
    return ("\n".join(out) + "\n").encode()


def bgcode_block(kind: int, data: bytes, params: bytes, compression: int = 0, size: int | None = None) -> bytes:
    """One block with its CRC-32; ``size`` overrides the declared uncompressed size."""
    stored = data
    if compression == 1 and size is None:
        size = len(data)
        stored = zlib.compress(data)
    size = len(stored) if size is None else size
    header = struct.pack("<HHI", kind, compression, size)
    if compression:
        header += struct.pack("<I", len(stored))
    body = header + params + stored
    return body + struct.pack("<I", zlib.crc32(body))


def bgcode_file(*blocks: bytes) -> bytes:
    return b"GCDE" + struct.pack("<IH", 1, 1) + b"".join(blocks)


def meta_block(kind: int = 0, text: bytes = b"Producer=test\n") -> bytes:
    return bgcode_block(kind, text, struct.pack("<H", 0))


def picture_block(image: bytes, width: int, height: int, fmt: int = 0) -> bytes:
    return bgcode_block(5, image, struct.pack("<HHH", fmt, width, height))


def gcode_block(text: bytes, compression: int = 0, size: int | None = None) -> bytes:
    return bgcode_block(1, text, struct.pack("<H", 0), compression, size)
