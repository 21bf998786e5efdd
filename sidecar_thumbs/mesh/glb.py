"""Triangles out of a binary glTF (``.glb``), with every node's transform applied.

Only what OpenCASCADE's glTF writer (through ``cascadio``) produces needs reading: one scene, a node
tree with ``matrix`` or translation/rotation/scale, triangle primitives with float positions and
unsigned indices. glTF is Y up and in metres; models here are Z up in millimetres.

Colours: OpenCASCADE writes a STEP file's XCAF colours (per solid, shell or face) as one glTF material
per colour, ``pbrMetallicRoughness.baseColorFactor``, and splits a mesh into one primitive per
material; it writes no ``COLOR_0`` vertex colours. The factor is linear light (glTF 2.0, 3.9.2), so it
is turned back into the sRGB value the STEP file holds (``COLOUR_RGB`` 0.8667 → linear 0.7231 → 221).
A primitive without a material has no colour (drawn in the default one).
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError

__all__ = ["glb_triangles", "srgb_from_linear"]

_GLB_MAGIC = b"glTF"
_JSON_CHUNK = 0x4E4F534A
_BIN_CHUNK = 0x004E4942
_INDEX_TYPES = {5121: np.uint8, 5123: np.uint16, 5125: np.uint32}
_TRIANGLES = 4
# Y up, metres → Z up, millimetres: (x, y, z) → 1000 * (x, -z, y).
_TO_Z_UP_MM = np.array([[1, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=np.float64) * np.array(
    [[1000], [1000], [1000], [1]], dtype=np.float64
)


def _chunks(data: bytes) -> tuple[dict[str, Any], memoryview]:
    if len(data) < 20 or data[:4] != _GLB_MAGIC:
        raise BadModelError("tessellated STEP is not a glTF binary")
    mv = memoryview(data)
    doc: dict[str, Any] | None = None
    binary = memoryview(b"")
    pos = 12
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from("<II", data, pos)
        body = mv[pos + 8 : pos + 8 + length]
        if kind == _JSON_CHUNK:
            doc = json.loads(bytes(body))
        elif kind == _BIN_CHUNK:
            binary = body
        pos += 8 + length + (-length % 4)
    if doc is None:
        raise BadModelError("tessellated STEP has no glTF JSON")
    return doc, binary


def _node_matrix(node: dict[str, Any]) -> np.ndarray:
    if "matrix" in node:
        return np.array(node["matrix"], dtype=np.float64).reshape(4, 4).T  # glTF stores column-major
    t = np.eye(4)
    if "scale" in node:
        t = np.diag([*node["scale"], 1.0]) @ t
    if "rotation" in node:
        x, y, z, w = node["rotation"]
        r = np.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
        rot = np.eye(4)
        rot[:3, :3] = r
        t = rot @ t
    if "translation" in node:
        tr = np.eye(4)
        tr[:3, 3] = node["translation"]
        t = tr @ t
    return t


def srgb_from_linear(linear: np.ndarray) -> np.ndarray:
    """Linear-light 0..1 → sRGB-encoded 0..1 (the IEC 61966-2-1 curve)."""
    c = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1.0 / 2.4) - 0.055)


def _material_rgba(doc: dict[str, Any]) -> list[np.ndarray]:
    """Each material's colour as uint8 RGBA (alpha 255), or alpha 0 where it gives no base colour."""
    out = []
    for material in doc.get("materials") or []:
        rgba = np.zeros(4, np.uint8)
        factor = (material.get("pbrMetallicRoughness") or {}).get("baseColorFactor")
        if isinstance(factor, list) and len(factor) >= 3:
            rgb = srgb_from_linear(np.asarray(factor[:3], dtype=np.float64))
            if np.isfinite(rgb).all():
                rgba[:3] = np.round(rgb * 255.0)
                rgba[3] = 255
        out.append(rgba)
    return out


def _accessor(doc: dict[str, Any], binary: memoryview, index: int, width: int, dtype: Any) -> np.ndarray:
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    count = int(acc["count"])
    itemsize = np.dtype(dtype).itemsize * width
    stride = int(view.get("byteStride") or itemsize)
    start = int(view.get("byteOffset", 0)) + int(acc.get("byteOffset", 0))
    end = start + stride * (count - 1) + itemsize if count else start
    if end > len(binary) or start < 0:
        raise BadModelError("tessellated STEP: glTF accessor outside its buffer")
    raw = np.frombuffer(binary[start:end], dtype=np.uint8)
    if stride == itemsize:
        return raw.view(dtype).reshape(count, width) if width > 1 else raw.view(dtype)
    rows = np.lib.stride_tricks.as_strided(raw, shape=(count, itemsize), strides=(stride, 1))
    out = np.ascontiguousarray(rows).view(dtype)
    return out.reshape(count, width) if width > 1 else out.reshape(count)


def glb_triangles(data: bytes, max_triangles: int) -> tuple[np.ndarray, np.ndarray | None]:
    """All triangles of the default scene as ``float32 (N, 3, 3)``, Z up, millimetres, and their
    colours: uint8 ``(N, 4)`` RGBA from each primitive's material (alpha 0 where it has none), or None
    when no primitive has a colour.

    Raises:
        BadModelError: not a glTF binary we can read.
        NoGeometryError: no triangles.
        LimitExceededError: more than ``max_triangles``.
    """
    doc, binary = _chunks(data)
    nodes = doc.get("nodes", [])
    scenes = doc.get("scenes") or [{"nodes": list(range(len(nodes)))}]
    roots = scenes[int(doc.get("scene", 0))].get("nodes", [])
    parts: list[np.ndarray] = []
    part_colors: list[np.ndarray] = []
    no_color = np.zeros(4, np.uint8)
    total = 0
    stack = [(int(i), _TO_Z_UP_MM, 0) for i in roots]
    try:
        materials = _material_rgba(doc)
        while stack:
            i, parent, depth = stack.pop()
            if depth > 64:
                raise BadModelError("tessellated STEP: node tree too deep")
            node = nodes[i]
            world = parent @ _node_matrix(node)
            stack.extend((int(c), world, depth + 1) for c in node.get("children", []))
            if "mesh" not in node:
                continue
            for prim in doc["meshes"][node["mesh"]].get("primitives", []):
                if prim.get("mode", _TRIANGLES) != _TRIANGLES or "POSITION" not in prim.get("attributes", {}):
                    continue
                pos = _accessor(doc, binary, prim["attributes"]["POSITION"], 3, np.float32).astype(np.float64)
                if "indices" in prim:
                    ctype = doc["accessors"][prim["indices"]]["componentType"]
                    idx = _accessor(doc, binary, prim["indices"], 1, _INDEX_TYPES[ctype]).astype(np.int64)
                else:
                    idx = np.arange(len(pos), dtype=np.int64)
                idx = idx[: len(idx) - len(idx) % 3]
                if idx.size and (idx.max() >= len(pos)):
                    raise BadModelError("tessellated STEP: glTF index out of range")
                total += len(idx) // 3
                if total > max_triangles:
                    raise LimitExceededError(f"model has more than {max_triangles} triangles")
                placed = pos @ world[:3, :3].T + world[:3, 3]
                parts.append(placed[idx].reshape(-1, 3, 3))
                m = prim.get("material")  # a bad index loses the colour, never the shape
                part_colors.append(materials[m] if isinstance(m, int) and 0 <= m < len(materials) else no_color)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise BadModelError(f"tessellated STEP: unreadable glTF ({exc})") from None
    if not parts or total == 0:
        raise NoGeometryError("STEP file has no solid or surface to draw")
    triangles = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    if not any(c[3] for c in part_colors):
        return triangles, None
    counts = [len(p) for p in parts]
    return triangles, np.ascontiguousarray(np.repeat(np.stack(part_colors), counts, axis=0))
