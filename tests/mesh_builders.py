"""Builders for small hand-written 3MF packages and glTF binaries used by the mesh tests."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from typing import Any

import numpy as np

CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
PROD = "http://schemas.microsoft.com/3dmanufacturing/production/2015/06"
ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>'
    "{extra}</Relationships>"
)


def unit_cube_mesh() -> str:
    """A unit cube (0..1) as a 3MF <mesh>, 8 vertices and 12 triangles."""
    v = [(x, y, z) for z in (0, 1) for y in (0, 1) for x in (0, 1)]
    faces = [
        (0, 2, 1), (1, 2, 3), (4, 5, 6), (5, 7, 6), (0, 1, 4), (1, 5, 4),
        (2, 6, 3), (3, 6, 7), (0, 4, 2), (2, 4, 6), (1, 3, 5), (3, 7, 5),
    ]  # fmt: skip
    verts = "".join(f'<vertex x="{x}" y="{y}" z="{z}"/>' for x, y, z in v)
    tris = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in faces)
    return f"<mesh><vertices>{verts}</vertices><triangles>{tris}</triangles></mesh>"


def model_xml(resources: str, build: str, unit: str = "millimeter", extra_ns: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<model unit="{unit}" xmlns="{CORE}" '
        f'xmlns:p="{PROD}"{extra_ns}><resources>{resources}</resources><build>{build}</build></model>'
    )


def make_3mf(
    model: str | bytes,
    parts: dict[str, bytes] | None = None,
    rels_extra: str = "",
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A 3MF package: root model at 3D/3dmodel.model plus any other members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        z.writestr("_rels/.rels", ROOT_RELS.format(extra=rels_extra))
        z.writestr("3D/3dmodel.model", model if isinstance(model, bytes) else model.encode())
        for name, data in (parts or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


def synthetic_3mf(n_triangles: int, seed: int = 0) -> bytes:
    """A 3MF with one random mesh of about ``n_triangles`` triangles, written like lib3mf does."""
    rng = np.random.default_rng(seed)
    nv = max(3, n_triangles // 2)
    verts = rng.uniform(-50, 50, (nv, 3)).round(6)
    tris = rng.integers(0, nv, (n_triangles, 3))
    lines = [f'<model unit="millimeter" xmlns="{CORE}"><resources><object id="1" type="model"><mesh><vertices>']
    lines += [f'<vertex x="{x:g}" y="{y:g}" z="{z:g}" />' for x, y, z in verts.tolist()]
    lines.append("</vertices><triangles>")
    lines += [f'<triangle v1="{a}" v2="{b}" v3="{c}" />' for a, b, c in tris.tolist()]
    lines.append('</triangles></mesh></object></resources><build><item objectid="1" /></build></model>')
    return make_3mf("\n".join(lines))


def binary_stl(n: int, seed: int = 0) -> bytes:
    """A valid binary STL of ``n`` random small triangles (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    rec = np.zeros(n, dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    centres = rng.uniform(-20, 20, (n, 1, 3)).astype(np.float32)
    rec["v"] = centres + rng.normal(0, 0.5, (n, 3, 3)).astype(np.float32)
    return b"binary".ljust(80, b"\0") + np.uint32(n).tobytes() + rec.tobytes()


def make_glb(doc: dict[str, Any], binary: bytes) -> bytes:
    """A glTF binary (``.glb``) of a JSON document and one binary chunk, both padded to 4 bytes."""
    js = json.dumps(doc).encode()
    js += b" " * (-len(js) % 4)
    binary += b"\0" * (-len(binary) % 4)
    body = struct.pack("<II", len(js), 0x4E4F534A) + js + struct.pack("<II", len(binary), 0x004E4942) + binary
    return b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body


def one_triangle_glb(node: dict[str, Any], primitives: list[dict[str, Any]] | None = None, **doc: Any) -> bytes:
    """A glb whose scene has one node (``node``'s transform) with a mesh of one 1 mm triangle per entry
    of ``primitives`` (extra keys of that primitive, e.g. ``material``; default one plain primitive);
    ``doc`` adds top-level keys (``materials``)."""
    extra = primitives if primitives is not None else [{}]
    pos = np.array([[0, 0, 0], [0.001, 0, 0], [0, 0.001, 0]], dtype=np.float32).tobytes()
    idx = np.array([0, 1, 2], dtype=np.uint16).tobytes()
    gltf = {
        "scenes": [{"nodes": [0]}],
        "nodes": [{"children": [1]}, {**node, "mesh": 0}],
        "meshes": [{"primitives": [{"attributes": {"POSITION": 0}, "indices": 1, **e} for e in extra]}],
        "accessors": [
            {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"},
            {"bufferView": 1, "componentType": 5123, "count": 3, "type": "SCALAR"},
        ],
        "bufferViews": [
            {"buffer": 0, "byteOffset": 0, "byteLength": 36},
            {"buffer": 0, "byteOffset": 36, "byteLength": 6},
        ],
        "buffers": [{"byteLength": 42}],
        **doc,
    }
    return make_glb(gltf, pos + idx)
