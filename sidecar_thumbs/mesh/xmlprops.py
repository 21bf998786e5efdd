"""Per-triangle property attributes of a 3MF part without numba: the regular-expression twin of the
numba scanner's ``want_props`` capture (same arrays, slower; numba-less platforms only)."""

from __future__ import annotations

import re

import numpy as np

from sidecar_thumbs.mesh.triprops import TriangleProps
from sidecar_thumbs.mesh.xmlscan import MeshScan

__all__ = ["triangle_props_re"]

_SKIPPED = re.compile(rb"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<\?.*?\?>", re.S)
_TRIANGLE = re.compile(rb"""<(?:[^\s/<>:!?]+:)?triangle(?=[\s/>])((?:[^<>"']|"[^"]*"|'[^']*')*)>""")
_ATTR = re.compile(rb"""([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_PROP_COLUMNS = {b"pid": 0, b"materialid": 0, b"p1": 1, b"p2": 2, b"p3": 3}  # materialid: 3MF 0.93
_PAINT = (b"paint_color", b"mmu_segmentation")
_INDEX = re.compile(rb"[ \t\n\r]*\+?([0-9]+)[ \t\n\r]*")  # what the kernel's _index accepts


def triangle_props_re(data: bytes, scan: MeshScan) -> TriangleProps | None:
    """The twin of the numba scanner's property capture: None when the triangles cannot be matched."""
    total = len(scan.triangles)
    props = np.full((total, 4), -1, np.int32)
    paint: dict[int, str] = {}
    t = 0
    for start, end in scan.spans[:, :2].tolist():
        body = _SKIPPED.sub(b"", data[start:end])
        for attrs in _TRIANGLE.findall(body):
            if t >= total:
                return None
            for name, a, b in _ATTR.findall(attrs):
                value = a or b
                col = _PROP_COLUMNS.get(name)
                if col is not None:
                    m = _INDEX.fullmatch(value)
                    if m and int(m.group(1)) < 2**31:
                        props[t, col] = int(m.group(1))
                elif name.rpartition(b":")[2] in _PAINT and value:
                    paint[t] = value.decode("ascii", "replace")
            t += 1
    return TriangleProps(props, paint) if t == total else None
