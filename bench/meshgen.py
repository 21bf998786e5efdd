"""Synthetic, deterministic test meshes and writers for binary STL, ASCII STL, 3MF, OBJ and PLY.

No corpus needed: benchmarks and the examples generator build their inputs from here.

Shapes return an indexed mesh ``(V, F)`` (``*_indexed``) or a float32 triangle soup ``(N, 3, 3)``;
the soup functions are what the renderer eats and what STL stores. Sizes are approximate: each
shape hits the requested triangle count to within a few percent.

Usage: ``python bench/meshgen.py OUTDIR`` writes knot/rock meshes at 10k, 100k and 1M triangles.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np

Indexed = tuple[np.ndarray, np.ndarray]  # (V float (M,3), F int (N,3))

STL_RECORD = np.dtype([("n", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])


def _grid(nu: int, nv: int, wrap_v: bool = True) -> np.ndarray:
    """Two triangles per cell of an (nu x nv) grid, periodic in u (and in v if ``wrap_v``)."""
    i, j = np.meshgrid(np.arange(nu), np.arange(nv if wrap_v else nv - 1), indexing="ij")
    jn = (j + 1) % nv
    a, b = i * nv + j, ((i + 1) % nu) * nv + j
    c, d = ((i + 1) % nu) * nv + jn, i * nv + jn
    return np.concatenate([np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)])


def _orient_outward(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Flip all faces if the mesh's signed volume is negative (inward winding)."""
    v0, v1, v2 = V[F[:, 0]], V[F[:, 1]], V[F[:, 2]]
    vol = np.einsum("ij,ij->i", v0 - V.mean(0), np.cross(v1 - v0, v2 - v0)).sum()
    return F if vol >= 0 else F[:, ::-1].copy()


def soup(V: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Indexed mesh → C-contiguous float32 triangle soup (N, 3, 3)."""
    return np.ascontiguousarray(np.asarray(V, dtype=np.float32)[F])


def indexed(tri: np.ndarray) -> Indexed:
    """Triangle soup → indexed mesh, merging bit-identical vertices."""
    v = np.ascontiguousarray(np.asarray(tri, dtype=np.float32).reshape(-1, 3))
    key = v.view(np.dtype((np.void, 12))).ravel()
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return v[first], inverse.reshape(-1, 3)


def torus_knot_indexed(n_triangles: int, p: int = 2, q: int = 3) -> Indexed:
    """A (p, q) torus-knot tube, ~60 mm across: smooth, self-occluding, watertight."""
    R, r, tube = 30.0, 10.0, 4.0
    nv = max(8, round(np.sqrt(n_triangles / 16)))  # ~8:1 segments along vs around the tube
    nu = max(16, round(n_triangles / 2 / nv))
    t = np.linspace(0, 2 * np.pi, nu, endpoint=False)

    def curve(s: np.ndarray) -> np.ndarray:
        rr = R + r * np.cos(q * s)
        return np.stack([rr * np.cos(p * s), rr * np.sin(p * s), r * np.sin(q * s)], -1)

    c = curve(t)
    tangent = curve(t + 1e-4) - curve(t - 1e-4)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    normal = np.cross(tangent, [0.0, 0.0, 1.0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    binormal = np.cross(tangent, normal)
    phi = np.linspace(0, 2 * np.pi, nv, endpoint=False)
    ring = np.cos(phi)[None, :, None] * normal[:, None] + np.sin(phi)[None, :, None] * binormal[:, None]
    V = (c[:, None] + tube * ring).reshape(-1, 3)
    # Orientation test against the tube axis (the knot's global volume test is fine too, but local is exact).
    F = _grid(nu, nv)
    v0 = V[F[:, 0]]
    n = np.cross(V[F[:, 1]] - v0, V[F[:, 2]] - v0)
    if np.einsum("ij,ij->i", n, v0 - c[F[:, 0] // nv]).mean() < 0:
        F = F[:, ::-1].copy()
    return V, F


def torus_knot(n_triangles: int) -> np.ndarray:
    """Torus-knot tube as a float32 soup of ~``n_triangles`` triangles."""
    return soup(*torus_knot_indexed(n_triangles))


def rock_indexed(n_triangles: int, seed: int = 1) -> Indexed:
    """A lumpy closed 'rock' (~50 mm) with a flat cut top: organic, many tiny facets at high counts."""
    rng = np.random.default_rng(seed)
    radius = 25.0
    n = max(3, round(np.sqrt(n_triangles / 4)))
    nu, nv = 2 * n, n
    th = np.linspace(0, 2 * np.pi, nu, endpoint=False)
    ph = np.linspace(0.0, np.pi, nv + 2)[1:-1]
    TH, PH = np.meshgrid(th, ph, indexing="ij")
    d = np.stack([np.sin(PH) * np.cos(TH), np.sin(PH) * np.sin(TH), np.cos(PH)], -1).reshape(-1, 3)
    disp = np.zeros(len(d))
    for _ in range(24):
        c = rng.normal(size=3)
        c /= np.linalg.norm(c)
        disp += rng.uniform(0.05, 0.2) * np.exp(-((1 - d @ c) * rng.uniform(3, 20)))
    disp += 0.02 * np.sin(d[:, 0] * 40) * np.sin(d[:, 1] * 37) * np.sin(d[:, 2] * 43)
    V = d * (radius * (1 + disp))[:, None] * np.array([1.0, 0.8, 0.6])
    V[:, 2] = np.minimum(V[:, 2], radius * 0.45)
    F = _grid(nu, nv, wrap_v=False)
    top, bot = len(V), len(V) + 1
    V = np.vstack([V, [[0, 0, V[:, 2].max()]], [[0, 0, V[:, 2].min() - 0.5]]])
    ii = np.arange(nu)
    cap_top = np.stack([np.full(nu, top), ((ii + 1) % nu) * nv, ii * nv], -1)
    cap_bot = np.stack([np.full(nu, bot), ii * nv + nv - 1, ((ii + 1) % nu) * nv + nv - 1], -1)
    return V, _orient_outward(V, np.concatenate([F, cap_top, cap_bot]))


def rock(n_triangles: int, seed: int = 1) -> np.ndarray:
    """Rock as a float32 soup of ~``n_triangles`` triangles."""
    return soup(*rock_indexed(n_triangles, seed))


def _extrude_radial(outer: np.ndarray, inner: np.ndarray, height: float) -> Indexed:
    """Solid between two closed radial polylines (same point count), extruded along Z."""
    m = len(outer)
    rings = [np.c_[outer, np.zeros(m)], np.c_[outer, np.full(m, height)]]
    rings += [np.c_[inner, np.full(m, height)], np.c_[inner, np.zeros(m)]]
    V = np.concatenate(rings)
    # Ring k connects to ring k+1 (mod 4): outer wall, top annulus, inner wall, bottom annulus.
    i = np.arange(m)
    faces = []
    for k in range(4):
        a, b = k * m + i, k * m + (i + 1) % m
        c, d = ((k + 1) % 4) * m + (i + 1) % m, ((k + 1) % 4) * m + i
        faces += [np.stack([a, b, c], -1), np.stack([a, c, d], -1)]
    F = np.concatenate(faces)
    return V, _orient_outward(V, F)


def gear_indexed(n_triangles: int = 2_000, teeth: int = 24) -> Indexed:
    """A spur gear with a bore, 40 mm across and 8 mm thick: flat faces and sharp edges."""
    m = max(teeth * 8, n_triangles // 8)
    a = np.linspace(0, 2 * np.pi, m, endpoint=False)
    phase = (a * teeth / (2 * np.pi)) % 1.0
    tooth = np.clip(np.minimum(phase, 1 - phase) * 6 - 0.9, 0, 1)  # flat-topped teeth
    r_out = 17.0 + 3.0 * tooth
    outer = np.c_[r_out * np.cos(a), r_out * np.sin(a)]
    inner = np.c_[5.0 * np.cos(a), 5.0 * np.sin(a)]
    return _extrude_radial(outer, inner, 8.0)


def gear(n_triangles: int = 2_000, teeth: int = 24) -> np.ndarray:
    """Gear as a float32 soup."""
    return soup(*gear_indexed(n_triangles, teeth))


def _box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> np.ndarray:
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    V = np.array(
        [
            [x0, y0, z0],
            [x1, y0, z0],
            [x1, y1, z0],
            [x0, y1, z0],
            [x0, y0, z1],
            [x1, y0, z1],
            [x1, y1, z1],
            [x0, y1, z1],
        ]
    )
    F = np.array(
        [
            [0, 2, 1],
            [0, 3, 2],
            [4, 5, 6],
            [4, 6, 7],
            [0, 1, 5],
            [0, 5, 4],
            [1, 2, 6],
            [1, 6, 5],
            [2, 3, 7],
            [2, 7, 6],
            [3, 0, 4],
            [3, 4, 7],
        ]
    )
    return V[F]


def bracket() -> np.ndarray:
    """An L-bracket with a gusset (three overlapping boxes, 36 triangles): the simplest real-looking part."""
    parts = [
        _box((0, 0, 0), (40, 20, 4)),
        _box((0, 0, 0), (4, 20, 30)),
        _box((4, 8, 4), (20, 12, 14)),
    ]
    return np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)


# ------------------------------------------------------------------ writers


def _as_soup(mesh: np.ndarray | Indexed) -> np.ndarray:
    if isinstance(mesh, tuple):
        return soup(*mesh)
    return np.ascontiguousarray(mesh, dtype=np.float32).reshape(-1, 3, 3)


def _unit_normals(tri: np.ndarray) -> np.ndarray:
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / np.linalg.norm(n, axis=1, keepdims=True)
    return np.nan_to_num(n, nan=0.0).astype(np.float32)


def binary_stl_bytes(mesh: np.ndarray | Indexed, header: bytes = b"sidecar-thumbs synthetic") -> bytes:
    """A binary STL file's bytes (80-byte header, count, 50-byte records with facet normals)."""
    tri = _as_soup(mesh)
    rec = np.zeros(len(tri), STL_RECORD)
    rec["n"] = _unit_normals(tri)
    rec["v"] = tri
    return header[:80].ljust(80, b" ") + np.uint32(len(tri)).tobytes() + rec.tobytes()


def write_binary_stl(path: str | Path, mesh: np.ndarray | Indexed) -> None:
    """Write a binary STL from a soup (N, 3, 3) or an indexed mesh (V, F)."""
    Path(path).write_bytes(binary_stl_bytes(mesh))


def ascii_stl_text(mesh: np.ndarray | Indexed, name: str = "synthetic") -> str:
    """An ASCII STL file's text (LF line endings)."""
    tri = _as_soup(mesh)
    rows = np.concatenate([_unit_normals(tri), tri.reshape(-1, 9)], axis=1).astype(np.float64)
    facet = (
        "facet normal %.6e %.6e %.6e\n outer loop\n  vertex %.6e %.6e %.6e\n"
        "  vertex %.6e %.6e %.6e\n  vertex %.6e %.6e %.6e\n endloop\nendfacet\n"
    )
    body = "".join(facet % tuple(r) for r in rows.tolist())
    return f"solid {name}\n{body}endsolid {name}\n"


def write_ascii_stl(path: str | Path, mesh: np.ndarray | Indexed) -> None:
    """Write an ASCII STL from a soup (N, 3, 3) or an indexed mesh (V, F)."""
    Path(path).write_text(ascii_stl_text(mesh), encoding="ascii")


_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
    '<Default Extension="png" ContentType="image/png"/></Types>'
)
_REL_MODEL = (
    '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
    'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/>'
)
_REL_THUMB = (
    '<Relationship Target="/Metadata/thumbnail.png" Id="rel1" '
    'Type="http://schemas.openxmlformats.org/package/2006/relationships/metadata/thumbnail"/>'
)
UNITS = ("micron", "millimeter", "centimeter", "inch", "foot", "meter")


def model_xml(mesh: np.ndarray | Indexed, unit: str = "millimeter") -> bytes:
    """The ``3D/3dmodel.model`` part: one object with an indexed mesh and one build item."""
    if unit not in UNITS:
        raise ValueError(f"3MF unit must be one of {UNITS}, got {unit!r}")
    V, F = mesh if isinstance(mesh, tuple) else indexed(mesh)
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64)
    verts = ('<vertex x="%.5f" y="%.5f" z="%.5f"/>\n' * len(V)) % tuple(V.ravel().tolist())
    tris = ('<triangle v1="%d" v2="%d" v3="%d"/>\n' * len(F)) % tuple(F.ravel().tolist())
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<model unit="{unit}" xml:lang="en-US" '
        'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">\n'
        '<resources>\n<object id="1" type="model">\n<mesh>\n<vertices>\n'
        f"{verts}</vertices>\n<triangles>\n{tris}</triangles>\n</mesh>\n</object>\n</resources>\n"
        '<build>\n<item objectid="1"/>\n</build>\n</model>\n'
    ).encode("ascii")


def obj_bytes(mesh: np.ndarray | Indexed, style: str = "v") -> bytes:
    """A Wavefront OBJ: ``v`` lines, then ``f`` lines in ``style`` ``"v"`` (``f 1 2 3``) or ``"v/vt/vn"``
    (``f 1/1/1 2/2/2 3/3/3``, as Blender writes, with as many ``vt``/``vn`` lines as vertices)."""
    V, F = mesh if isinstance(mesh, tuple) else indexed(mesh)
    V = np.asarray(V, dtype=np.float64)
    F = np.asarray(F, dtype=np.int64) + 1
    out = [("v %.6f %.6f %.6f\n" * len(V)) % tuple(V.ravel().tolist())]
    if style == "v":
        out.append(("f %d %d %d\n" * len(F)) % tuple(F.ravel().tolist()))
    else:
        out.append(("vt 0.5 0.5\n" * len(V)) + ("vn 0 0 1\n" * len(V)))
        out.append(("f %d/%d/%d %d/%d/%d %d/%d/%d\n" * len(F)) % tuple(np.repeat(F.ravel(), 3).tolist()))
    return "".join(out).encode("ascii")


def ply_bytes(mesh: np.ndarray | Indexed, fmt: str = "binary_little_endian") -> bytes:
    """A PLY with float x y z vertices and ``list uchar int vertex_indices`` triangles."""
    V, F = mesh if isinstance(mesh, tuple) else indexed(mesh)
    head = (
        f"ply\nformat {fmt} 1.0\nelement vertex {len(V)}\nproperty float x\nproperty float y\n"
        f"property float z\nelement face {len(F)}\nproperty list uchar int vertex_indices\nend_header\n"
    ).encode("ascii")
    if fmt == "ascii":
        verts = ("%.6f %.6f %.6f\n" * len(V)) % tuple(np.asarray(V, np.float64).ravel().tolist())
        faces = ("3 %d %d %d\n" * len(F)) % tuple(np.asarray(F, np.int64).ravel().tolist())
        return head + (verts + faces).encode("ascii")
    order = "<" if fmt == "binary_little_endian" else ">"
    rec = np.empty(len(F), np.dtype([("n", "u1"), ("v", order + "i4", (3,))]))
    rec["n"] = 3
    rec["v"] = F
    return head + np.asarray(V, order + "f4").tobytes() + rec.tobytes()


def amf_bytes(mesh: np.ndarray | Indexed, compressed: bool = False) -> bytes:
    """An AMF with one object (one volume), as Slic3r writes it; ``compressed``: inside a zip."""
    V, F = mesh if isinstance(mesh, tuple) else indexed(mesh)
    verts = ("<vertex><coordinates><x>%.6f</x><y>%.6f</y><z>%.6f</z></coordinates></vertex>\n" * len(V)) % tuple(
        np.asarray(V, np.float64).ravel().tolist()
    )
    tris = ("<triangle><v1>%d</v1><v2>%d</v2><v3>%d</v3></triangle>\n" * len(F)) % tuple(
        np.asarray(F, np.int64).ravel().tolist()
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<amf unit="millimeter">\n<object id="0">\n<mesh>\n'
        f"<vertices>\n{verts}</vertices>\n<volume>\n{tris}</volume>\n</mesh>\n</object>\n</amf>\n"
    ).encode("ascii")
    if not compressed:
        return xml
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("model.amf", xml)
    return buf.getvalue()


def threemf_bytes(mesh: np.ndarray | Indexed, unit: str = "millimeter", thumbnail_png: bytes | None = None) -> bytes:
    """A 3MF package's bytes: content types, root relationships, the model, optionally a thumbnail."""
    rels = _REL_MODEL + (_REL_THUMB if thumbnail_png is not None else "")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}'
            "</Relationships>",
        )
        z.writestr("3D/3dmodel.model", model_xml(mesh, unit))
        if thumbnail_png is not None:
            z.writestr("Metadata/thumbnail.png", thumbnail_png, compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def write_3mf(
    path: str | Path,
    mesh: np.ndarray | Indexed,
    unit: str = "millimeter",
    thumbnail_png: bytes | None = None,
) -> None:
    """Write a 3MF package from a soup (N, 3, 3) or an indexed mesh (V, F).

    Args:
        path: Where to write.
        mesh: Triangle soup (vertices are merged) or ``(V, F)``.
        unit: The model unit attribute (``millimeter``, ``inch``, ...). Coordinates are written as given.
        thumbnail_png: If given, stored as ``Metadata/thumbnail.png`` with a package thumbnail relationship.
    """
    Path(path).write_bytes(threemf_bytes(mesh, unit, thumbnail_png))


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for label, n in [("10k", 10_000), ("100k", 100_000), ("1m", 1_000_000)]:
        for name, make in [("knot", torus_knot_indexed), ("rock", rock_indexed)]:
            mesh = make(n)
            write_binary_stl(out / f"{name}_{label}.stl", mesh)
            if label != "1m":
                write_3mf(out / f"{name}_{label}.3mf", mesh)
            print(name, label, len(mesh[1]))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "meshes"))
