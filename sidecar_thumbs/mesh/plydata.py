"""The data of a PLY file's elements, as columns: a scalar property's values, or a list property's
flat items with the start of each record's items.

Properties come in any order and any type; a list has any integer count type and any item type.
Records of fixed size, and lists whose length is the same in every record (all triangles: nearly
every file), are read as one NumPy view. Other binary lists (polygons of mixed sizes, as Blender
writes them) are walked record by record by a numba kernel (:mod:`plyrecords_numba`), or by
``struct`` without numba. ASCII data is one record a line.
"""

from __future__ import annotations

import math
import struct
from types import ModuleType
from typing import Any

import numpy as np

from sidecar_thumbs import numba_cache
from sidecar_thumbs.errors import BadModelError
from sidecar_thumbs.mesh.plyheader import PlyElement, PlyHeader
from sidecar_thumbs.mesh.textnumbers import blank_separated

__all__ = ["Column", "numba_available", "read_elements", "warm_up"]

# A column: a scalar property's values (count,), or a list property's (flat values, starts).
Column = np.ndarray | tuple[np.ndarray, np.ndarray]


def _load_kernel() -> ModuleType | None:
    return numba_cache.import_kernel("sidecar_thumbs.mesh.plyrecords_numba")


def numba_available() -> bool:
    return _load_kernel() is not None


def warm_up() -> None:
    """Load (or compile) the record walker on a tiny element."""
    if _load_kernel() is not None:
        from sidecar_thumbs.mesh.plyheader import parse_ply_header

        data = b"ply\nformat binary_little_endian 1.0\nelement f 2\nproperty list uchar int v\nend_header\n"
        data += bytes([1, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0])
        read_elements(data, parse_ply_header(data), use_numba=True)


def read_elements(data: bytes, header: PlyHeader, use_numba: bool | None = None) -> dict[str, list[Column]]:
    """Columns of every element (by name; the first of a repeated name wins). ``use_numba`` forces
    one way of walking binary records of varying length (tests); default: numba when importable."""
    out: dict[str, list[Column]] = {}
    if header.format == "ascii":
        # One record a line, as every writer does it: a line may carry more numbers than the header
        # says (VCGLIB's texture numbers in trimesh's fuze.ply), which are ignored, as trimesh does.
        lines = [line for line in data[header.body_offset :].splitlines() if line.strip()]
        at = 0
        for el in header.elements:
            if at + el.count > len(lines):
                raise BadModelError(f"PLY data ends inside the {el.name} element ({el.count} records declared)")
            out.setdefault(el.name, _read_ascii(lines[at : at + el.count], el))
            at += el.count
    else:
        off = header.body_offset
        for el in header.elements:
            cols, off = _read_binary(data, off, el, header.byte_order, use_numba)
            out.setdefault(el.name, cols)
    return out


def _ascii_numbers(text: bytes) -> np.ndarray:
    values = blank_separated(text, np.float64)
    if values is None:
        raise BadModelError("PLY ASCII data holds something that is not a number")
    return values


def _read_ascii(lines: list[bytes], el: PlyElement) -> list[Column]:
    n = el.count
    if n == 0:
        return [np.empty(0) if not p.is_list else (np.empty(0), np.zeros(1, np.int64)) for p in el.properties]
    # Guess the record layout from the first record; if every line has it, one reshape reads all.
    first = _ascii_numbers(lines[0])
    widths = []
    at = 0
    for p in el.properties:
        if at >= len(first):
            raise BadModelError(f"PLY {el.name} record is shorter than its properties")
        k = _list_length(first[at], el) if p.is_list else 0
        widths.append(k)
        at += 1 + k if p.is_list else 1
    stride = at
    tokens = _ascii_numbers(b"\n".join(lines))
    if len(tokens) == n * stride:
        rows = tokens.reshape(n, stride)
        if _uniform(rows, el, widths):
            return _split_rows(rows, el, widths)
    return _read_ascii_one_list(lines, el) or _read_ascii_records(lines, el)


def _read_ascii_one_list(lines: list[bytes], el: PlyElement) -> list[Column] | None:
    """Records with one list of varying length (mixed polygons, as Blender writes them), in bulk:
    where each line's list lies follows from its count of words. None when the element has another
    shape or a line holds more or fewer numbers than its list says (read line by line then)."""
    lists = [i for i, p in enumerate(el.properties) if p.is_list]
    if len(lists) != 1:
        return None
    at = lists[0]  # scalars before the list: as many as its position
    words = np.fromiter(map(len, map(bytes.split, lines)), np.int64, len(lines))
    tokens = _ascii_numbers(b"\n".join(lines))
    if len(tokens) != int(words.sum()):
        return None
    first = np.zeros(len(lines), np.int64)
    np.cumsum(words[:-1], out=first[1:])
    count_at = first + at
    if (words <= at).any():
        return None
    counts = tokens[count_at]
    # A count is a whole number no larger than its line (checked before the cast: 1e39 does not fit).
    if not (np.isfinite(counts).all() and (counts >= 0).all() and (counts <= words).all()):
        return None
    if not (counts == np.floor(counts)).all():
        return None
    k = counts.astype(np.int64)
    if not (words == len(el.properties) + k).all():  # the scalars, the count and its k items
        return None
    starts = np.zeros(len(lines) + 1, np.int64)
    np.cumsum(k, out=starts[1:])
    within = np.arange(int(starts[-1]), dtype=np.int64) - np.repeat(starts[:-1], k)
    cols: list[Column] = []
    for i in range(len(el.properties)):
        if i < at:
            cols.append(tokens[first + i])
        elif i == at:
            cols.append((tokens[np.repeat(count_at + 1, k) + within], starts))
        else:
            cols.append(tokens[count_at + 1 + k + (i - at - 1)])
    return cols


def _list_length(value: float, el: PlyElement) -> int:
    if not (math.isfinite(value) and value >= 0 and value == int(value)):
        raise BadModelError(f"PLY {el.name} list has a bad length {value!r}")
    return int(value)


def _uniform(rows: np.ndarray, el: PlyElement, widths: list[int]) -> bool:
    col = 0
    for p, k in zip(el.properties, widths, strict=True):
        if p.is_list:
            if not (rows[:, col] == k).all():
                return False
            col += 1 + k
        else:
            col += 1
    return True


def _split_rows(rows: np.ndarray, el: PlyElement, widths: list[int]) -> list[Column]:
    n = rows.shape[0]
    cols: list[Column] = []
    col = 0
    for p, k in zip(el.properties, widths, strict=True):
        if p.is_list:
            cols.append((rows[:, col + 1 : col + 1 + k].reshape(-1), np.arange(n + 1, dtype=np.int64) * k))
            col += 1 + k
        else:
            cols.append(rows[:, col])
            col += 1
    return cols


def _read_ascii_records(lines: list[bytes], el: PlyElement) -> list[Column]:
    """Line by line, for lists whose length varies or lines with extra numbers."""
    scalars: list[list[float]] = [[] for _ in el.properties]
    lists: list[tuple[list[np.ndarray], list[int]]] = [([], [0]) for _ in el.properties]
    for line in lines:
        values = _ascii_numbers(line)
        pos = 0
        for i, p in enumerate(el.properties):
            if pos >= len(values):
                raise BadModelError(f"PLY {el.name} record is shorter than its properties")
            if p.is_list:
                k = _list_length(values[pos], el)
                if pos + 1 + k > len(values):
                    raise BadModelError(f"PLY {el.name} record is shorter than its list")
                items, starts = lists[i]
                items.append(values[pos + 1 : pos + 1 + k])
                starts.append(starts[-1] + k)
                pos += 1 + k
            else:
                scalars[i].append(float(values[pos]))
                pos += 1
    cols: list[Column] = []
    for i, p in enumerate(el.properties):
        if p.is_list:
            items, starts = lists[i]
            cols.append((np.concatenate(items) if items else np.empty(0), np.array(starts, np.int64)))
        else:
            cols.append(np.array(scalars[i], np.float64))
    return cols


def _read_binary(data: bytes, off: int, el: PlyElement, order: str, use_numba: bool | None) -> tuple[list[Column], int]:
    n = el.count
    counts = []
    at = off
    for p in el.properties:  # the first record gives the guessed layout
        if not p.is_list:
            at += np.dtype(p.type).itemsize
            continue
        assert p.count_type is not None
        csize = np.dtype(p.count_type).itemsize
        if n == 0:
            counts.append(0)
            continue
        if at + csize > len(data):
            raise BadModelError(f"PLY data ends inside the {el.name} element")
        k = int(np.frombuffer(data, order + p.count_type, 1, at)[0])
        if k < 0:
            raise BadModelError(f"PLY {el.name} list has a negative length {k}")
        counts.append(k)
        at += csize + k * np.dtype(p.type).itemsize
        if at > len(data):
            raise BadModelError(f"PLY data ends inside the {el.name} element")
    fields: list[tuple[str, str] | tuple[str, str, tuple[int]]] = []
    li = 0
    for i, p in enumerate(el.properties):
        if p.is_list:
            fields.append((f"n{i}", order + str(p.count_type)))
            fields.append((f"p{i}", order + p.type, (counts[li],)))
            li += 1
        else:
            fields.append((f"p{i}", order + p.type))
    dtype = np.dtype(fields)
    if off + n * dtype.itemsize <= len(data):
        rec = np.frombuffer(data, dtype, n, off)
        lists = [i for i, p in enumerate(el.properties) if p.is_list]
        if all((rec[f"n{i}"] == k).all() for i, k in zip(lists, counts, strict=True)):
            cols: list[Column] = []
            for i, p in enumerate(el.properties):
                values = rec[f"p{i}"]
                if p.is_list:
                    k = values.shape[1] if values.ndim == 2 else 0
                    cols.append((values.reshape(-1), np.arange(n + 1, dtype=np.int64) * k))
                else:
                    cols.append(values)
            return cols, off + n * dtype.itemsize
    elif not any(p.is_list for p in el.properties):
        raise BadModelError(f"PLY data ends inside the {el.name} element ({n} records declared)")
    return _read_binary_records(data, off, el, order, use_numba)


def _read_binary_records(
    data: bytes, off: int, el: PlyElement, order: str, use_numba: bool | None
) -> tuple[list[Column], int]:
    """Record by record, for lists whose length varies (polygons of mixed sizes)."""
    kernel = numba_cache.chosen_kernel(_load_kernel(), use_numba)
    if kernel is not None:
        return _walk_numba(kernel, data, off, el, order)
    return _walk_struct(data, off, el, order)


def _walk_numba(kernel: ModuleType, data: bytes, off: int, el: PlyElement, order: str) -> tuple[list[Column], int]:
    props = el.properties
    is_list = np.array([p.is_list for p in props], np.bool_)
    sizes = np.array([np.dtype(p.count_type or p.type).itemsize for p in props], np.int64)
    item_sizes = np.array([np.dtype(p.type).itemsize for p in props], np.int64)
    signed = np.array([(p.count_type or "u")[0] == "i" for p in props], np.bool_)
    offsets = np.empty((el.count, len(props)), np.int64)
    counts = np.empty((el.count, len(props)), np.int64)
    buf = np.frombuffer(data, np.uint8)
    end = kernel.walk(buf, off, el.count, is_list, sizes, item_sizes, signed, order == ">", offsets, counts)
    if end == kernel.NEGATIVE:
        raise BadModelError(f"PLY {el.name} list has a negative length")
    if end < 0:
        raise BadModelError(f"PLY data ends inside the {el.name} element")
    cols: list[Column] = []
    for i, p in enumerate(props):
        item = np.dtype(order + p.type)
        total = int(counts[:, i].sum())
        raw = np.empty(total * item.itemsize, np.uint8)
        kernel.gather(buf, offsets[:, i], counts[:, i], item.itemsize, raw)
        values = raw.view(item)
        if p.is_list:
            starts = np.zeros(el.count + 1, np.int64)
            np.cumsum(counts[:, i], out=starts[1:])
            cols.append((values, starts))
        else:
            cols.append(values.astype(np.float64))
    return cols, int(end)


def _walk_struct(data: bytes, off: int, el: PlyElement, order: str) -> tuple[list[Column], int]:
    steps: list[tuple[struct.Struct, np.dtype[Any] | None]] = []
    for p in el.properties:
        if p.is_list:
            assert p.count_type is not None
            steps.append((struct.Struct(order + _struct_code(p.count_type)), np.dtype(order + p.type)))
        else:
            steps.append((struct.Struct(order + _struct_code(p.type)), None))
    scalars: list[list[float]] = [[] for _ in el.properties]
    lists: list[tuple[list[tuple[int, int]], list[int]]] = [([], [0]) for _ in el.properties]
    end = len(data)
    try:
        for _ in range(el.count):
            for i, (st, item) in enumerate(steps):
                (value,) = st.unpack_from(data, off)
                off += st.size
                if item is None:
                    scalars[i].append(value)
                    continue
                size = value * item.itemsize
                if value < 0:
                    raise BadModelError(f"PLY {el.name} list has a negative length")
                if off + size > end:
                    raise BadModelError(f"PLY data ends inside the {el.name} element")
                spans, starts = lists[i]
                spans.append((off, value))
                starts.append(starts[-1] + value)
                off += size
    except struct.error:
        raise BadModelError(f"PLY data ends inside the {el.name} element") from None
    cols: list[Column] = []
    for i, (_, item) in enumerate(steps):
        if item is None:
            cols.append(np.array(scalars[i], np.float64))
            continue
        spans, starts = lists[i]
        flat = np.empty(starts[-1], item)
        for (at, k), s in zip(spans, starts, strict=False):
            flat[s : s + k] = np.frombuffer(data, item, k, at)
        cols.append((flat, np.array(starts, np.int64)))
    return cols, off


def _struct_code(numpy_type: str) -> str:
    return {"i1": "b", "u1": "B", "i2": "h", "u2": "H", "i4": "i", "u4": "I", "f4": "f", "f8": "d"}[numpy_type]
