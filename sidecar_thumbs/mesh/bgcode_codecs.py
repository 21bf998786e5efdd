"""The two byte codecs of binary G-code: heatshrink decompression and MeatPack decoding.

Both are small state machines, written once in the subset numba compiles (plain Python without it;
see :mod:`sidecar_thumbs.mesh.jit`). Both write into a buffer the caller sized in advance and report
overflow instead of growing it, so a hostile block cannot make them allocate more than it declared.

heatshrink (Scott Vokes' LZSS, the variant libbgcode uses with window 11 or 12 bits and lookahead 4
bits): a stream of bits, most significant first; ``1`` + 8 bits is a literal byte, ``0`` + window bits
(distance - 1) + lookahead bits (length - 1) copies earlier output. The window starts zero-filled, as
in the reference decoder. Trailing bits that do not make a whole token are padding.

MeatPack (Scott Mudge's packing, as libbgcode writes it): two characters of the 15 most common in
G-code (``0-9 . space \\n G X``) share a byte, one nibble each, low nibble first; nibble ``1111``
means "that character follows as a whole byte". ``FF FF cmd`` is a command: enable/disable packing,
enable/disable "no spaces" (where the space code stands for ``E``). Lines come out without spaces
between words (``G1X5Y.5E.02``), which the scanner reads as they are.
"""

from __future__ import annotations

import numpy as np

from sidecar_thumbs.mesh.jit import COMPILED, kernel

__all__ = ["heatshrink_decode", "meatpack_decode"]

ERR_OVERFLOW = -1


@kernel
def _heatshrink(src, dst, window_bits, count_bits):  # type: ignore[no-untyped-def]
    n = len(src)
    cap = len(dst)
    pos = 0  # byte in src
    bit = 0  # bits of src[pos] already used
    o = 0
    while True:
        # Read one token; stop quietly when the bits run out (padding at the end).
        need = 1
        if (n - pos) * 8 - bit < need:
            break
        flag = (src[pos] >> (7 - bit)) & 1
        bit += 1
        if bit == 8:
            bit = 0
            pos += 1
        need = 8 if flag == 1 else window_bits + count_bits
        if (n - pos) * 8 - bit < need:
            break
        value = 0
        for _ in range(need):
            value = (value << 1) | ((src[pos] >> (7 - bit)) & 1)
            bit += 1
            if bit == 8:
                bit = 0
                pos += 1
        if flag == 1:
            if o >= cap:
                return ERR_OVERFLOW
            dst[o] = value
            o += 1
        else:
            distance = (value >> count_bits) + 1
            count = (value & ((1 << count_bits) - 1)) + 1
            if o + count > cap:
                return ERR_OVERFLOW
            for _ in range(count):
                dst[o] = dst[o - distance] if o >= distance else 0
                o += 1
    return o


@kernel
def _mp_char(code, no_spaces):  # type: ignore[no-untyped-def]
    if code <= 9:
        return 48 + code
    if code == 10:
        return 46  # .
    if code == 11:
        return 69 if no_spaces else 32  # E or space
    if code == 12:
        return 10
    if code == 13:
        return 71  # G
    return 88  # X


@kernel
def _meatpack(src, dst):  # type: ignore[no-untyped-def]
    packing = False
    no_spaces = False
    signals = 0  # FF bytes seen in a row (two start a command)
    command = False
    queue = 0  # whole bytes still to come
    held = -1  # a packed character waiting behind a whole byte
    o = 0
    cap = len(dst)
    for i in range(len(src)):
        c = src[i]
        if c == 255:
            if signals > 0:
                command = True
                signals = 0
            else:
                signals = 1
            continue
        if command:
            command = False
            if c == 251:
                packing = True
            elif c == 250 or c == 249:  # disable packing, reset all
                packing = False
            elif c == 247:
                no_spaces = True
            elif c == 246:
                no_spaces = False
            continue
        # A lone FF was data (two whole characters follow), then this byte is data too.
        for k in range(2):
            if k == 0:
                if signals == 0:
                    continue
                signals = 0
                b = 255
            else:
                b = c
            if o + 2 > cap:
                return ERR_OVERFLOW
            if not packing:
                dst[o] = b
                o += 1
            elif queue > 0:
                dst[o] = b
                o += 1
                if held >= 0:
                    dst[o] = held
                    o += 1
                    held = -1
                queue -= 1
            else:
                lo = b & 15
                hi = (b >> 4) & 15
                if lo == 15:
                    queue += 1
                    if hi == 15:
                        queue += 1
                    else:
                        held = _mp_char(hi, no_spaces)
                else:
                    first = _mp_char(lo, no_spaces)
                    dst[o] = first
                    o += 1
                    if first != 10:  # a line ending in the low nibble pads the high one
                        if hi == 15:
                            queue += 1
                        else:
                            dst[o] = _mp_char(hi, no_spaces)
                            o += 1
    return o


def _as_array(data: bytes) -> np.ndarray | bytes:
    return np.frombuffer(data, np.uint8) if COMPILED else data


def heatshrink_decode(data: bytes, size: int, window_bits: int, count_bits: int = 4) -> bytes | None:
    """Decompress ``data`` into exactly ``size`` bytes; None if it makes more or fewer."""
    out = np.zeros(size, np.uint8)
    n = _heatshrink(_as_array(data), out, window_bits, count_bits)
    return out.tobytes() if n == size else None


def meatpack_decode(data: bytes) -> bytes:
    """Unpack MeatPack-encoded G-code (at most two characters come from each byte)."""
    out = np.zeros(2 * len(data) + 2, np.uint8)
    n = _meatpack(_as_array(data), out)
    return out[: max(n, 0)].tobytes()
