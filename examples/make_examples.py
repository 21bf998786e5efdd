"""Generate the example models in examples/models/ (the project's own; no third-party files).

Run: python examples/make_examples.py    (deterministic: the same bytes every time)
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "models"
EXTRAS = Path(__file__).resolve().parent / "extras"  # models that need an optional extra to render


def extrude_star(radii: np.ndarray, height: float) -> np.ndarray:
    """Extrude a star-shaped outline (radius per angle step, around the origin) to a closed solid."""
    n = len(radii)
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([radii * np.cos(ang), radii * np.sin(ang)], axis=1)
    tris = []
    for i in range(n):
        a, b = ring[i], ring[(i + 1) % n]
        a0, b0, a1, b1 = [*a, 0.0], [*b, 0.0], [*a, height], [*b, height]
        tris += [[[0, 0, 0], b0, a0], [[0, 0, height], a1, b1], [a0, b0, b1], [a0, b1, a1]]
    return np.asarray(tris, np.float32)


def gear(teeth: int = 18, r: float = 20.0, depth: float = 3.0, height: float = 8.0) -> np.ndarray:
    steps = teeth * 8
    phase = (np.arange(steps) % 8) / 8.0
    radii = np.where((phase >= 0.25) & (phase < 0.75), r, r - depth)
    return extrude_star(radii.astype(np.float64), height)


def torus(R: float = 18.0, r: float = 6.0, nu: int = 48, nv: int = 24) -> np.ndarray:
    u = np.linspace(0, 2 * np.pi, nu, endpoint=False)
    v = np.linspace(0, 2 * np.pi, nv, endpoint=False)

    def p(i: int, j: int) -> list[float]:
        a, b = u[i % nu], v[j % nv]
        return [(R + r * np.cos(b)) * np.cos(a), (R + r * np.cos(b)) * np.sin(a), r * np.sin(b) + r]

    tris = []
    for i in range(nu):
        for j in range(nv):
            tris += [[p(i, j), p(i + 1, j), p(i + 1, j + 1)], [p(i, j), p(i + 1, j + 1), p(i, j + 1)]]
    return np.asarray(tris, np.float32)


def box(x: float, y: float, z: float, origin: tuple[float, float, float] = (0, 0, 0)) -> np.ndarray:
    c = np.array([[i * x, j * y, k * z] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) + origin
    faces = [
        (0, 2, 3),
        (0, 3, 1),
        (4, 5, 7),
        (4, 7, 6),
        (0, 1, 5),
        (0, 5, 4),
        (2, 6, 7),
        (2, 7, 3),
        (0, 4, 6),
        (0, 6, 2),
        (1, 3, 7),
        (1, 7, 5),
    ]
    return c[np.array(faces)].astype(np.float32)


def bracket() -> np.ndarray:
    return np.concatenate([box(40, 20, 4), box(4, 20, 30), box(4, 4, 26, (4, 8, 4))])


def write_binary_stl(path: Path, tri: np.ndarray) -> None:
    rec = np.zeros(len(tri), dtype=[("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")])
    rec["v"] = tri
    with open(path, "wb") as f:
        # Starts with "solid" on purpose: many real binary STLs do, and loaders must not be fooled.
        f.write(b"solid sidecar-thumbs example (binary)".ljust(80, b" "))
        f.write(struct.pack("<I", len(tri)))
        f.write(rec.tobytes())


def write_ascii_stl(path: Path, tri: np.ndarray, name: str) -> None:
    lines = [f"solid {name}"]
    for t in tri:
        lines += ["  facet normal 0 0 0", "    outer loop"]
        lines += [f"      vertex {x:.5f} {y:.5f} {z:.5f}" for x, y, z in t]
        lines += ["    endloop", "  endfacet"]
    lines.append(f"endsolid {name}")
    path.write_text("\n".join(lines) + "\n", encoding="ascii")


def _mesh_xml(tri: np.ndarray) -> str:
    verts, index = [], {}
    faces = []
    for t in tri:
        ids = []
        for v in t:
            key = tuple(np.round(v, 5))
            if key not in index:
                index[key] = len(verts)
                verts.append(key)
            ids.append(index[key])
        faces.append(ids)
    vx = "".join(f'<vertex x="{x:g}" y="{y:g}" z="{z:g}"/>' for x, y, z in verts)
    tx = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in faces)
    return f"<mesh><vertices>{vx}</vertices><triangles>{tx}</triangles></mesh>"


def write_3mf(path: Path, objects: list[np.ndarray], placements: list[tuple[int, str]]) -> None:
    """objects: meshes (ids 1..n); placements: (object index, 3x4 transform) build items."""
    res = "".join(f'<object id="{i + 1}" type="model">{_mesh_xml(t)}</object>' for i, t in enumerate(objects))
    items = "".join(f'<item objectid="{i + 1}" transform="{m}"/>' for i, m in placements)
    model = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<model unit="millimeter" xml:lang="en-US" '
        'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02">'
        f"<resources>{res}</resources><build>{items}</build></model>"
    )
    types = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/>'
        "</Types>"
    )
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
        'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (
            ("[Content_Types].xml", types),
            ("_rels/.rels", rels),
            ("3D/3dmodel.model", model),
        ):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)


MATERIAL_NS = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"


def _package(path: Path, model: str, extra: dict[str, str] | None = None) -> None:
    """A 3MF package with fixed timestamps (the same bytes every run)."""
    rels = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
        'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in [("_rels/.rels", rels), ("3D/3dmodel.model", model), *(extra or {}).items()]:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)


def _model(resources: str, items: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<model unit="millimeter" xml:lang="en-US" '
        'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" '
        f'xmlns:m="{MATERIAL_NS}"><resources>{resources}</resources><build>{items}</build></model>'
    )


def calibration_plate(path: Path) -> None:
    """Six coloured tiles on a plate: one base material per object (3MF materials extension)."""
    colours = ["#D62828", "#F77F00", "#FCBF49", "#2A9D8F", "#3A86FF", "#8338EC", "#A0A0A0"]
    base = "".join(f'<m:base name="PLA {i + 1}" displaycolor="{c}"/>' for i, c in enumerate(colours))
    res = f'<m:basematerials id="1">{base}</m:basematerials>'
    res += f'<object id="2" type="model" pid="1" pindex="6">{_mesh_xml(box(66, 44, 2))}</object>'
    items = '<item objectid="2"/>'
    for i in range(6):
        res += f'<object id="{i + 3}" type="model" pid="1" pindex="{i}">{_mesh_xml(box(18, 18, 4 + 2 * i))}</object>'
        items += f'<item objectid="{i + 3}" transform="1 0 0 0 1 0 0 0 1 {3 + (i % 3) * 21} {3 + (i // 3) * 21} 2"/>'
    _package(path, _model(res, items))


def gradient_knot(path: Path) -> None:
    """A torus with a colour per vertex, blended across each triangle (3MF colour group)."""
    tri = torus(16.0, 6.0, 64, 24)
    verts, faces, index = [], [], {}
    for t in tri:
        ids = []
        for v in t:
            key = tuple(np.round(v, 4))
            ids.append(index.setdefault(key, len(verts)))
            if ids[-1] == len(verts):
                verts.append(key)
        faces.append(ids)
    angle = [np.arctan2(y, x) for x, y, _ in verts]
    colours = "".join(
        '<m:color color="#{:02X}{:02X}{:02X}"/>'.format(
            *(int(127.5 + 127.5 * np.cos(a + k * 2.0944)) for k in range(3))
        )
        for a in angle
    )
    vx = "".join(f'<vertex x="{x:g}" y="{y:g}" z="{z:g}"/>' for x, y, z in verts)
    tx = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}" pid="1" p1="{a}" p2="{b}" p3="{c}"/>' for a, b, c in faces)
    res = f'<m:colorgroup id="1">{colours}</m:colorgroup><object id="2" type="model">'
    res += f"<mesh><vertices>{vx}</vertices><triangles>{tx}</triangles></mesh></object>"
    _package(path, _model(res, '<item objectid="2"/>'))


def painted_project(path: Path) -> None:
    """A Bambu Studio style project: two filaments, a gear in the first with its teeth painted in the second."""
    tri = gear(16, 18, 3, 6)
    mesh = _mesh_xml(tri)
    # The teeth's outer faces (every corner at the tip radius) are painted with filament 2.
    painted = [bool((np.hypot(t[:, 0], t[:, 1]) > 17.9).all()) for t in tri]
    parts = mesh.split("<triangle ")
    mesh = parts[0] + "".join(
        "<triangle " + (p.replace("/>", ' paint_color="8"/>', 1) if paint else p)
        for p, paint in zip(parts[1:], painted, strict=True)
    )
    res = f'<object id="1" type="model">{mesh}</object>'
    res += '<object id="2" type="model"><components><component objectid="1"/></components></object>'
    config = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<config><object id="2"><metadata key="extruder" value="1"/>'
        '<part id="1" subtype="normal_part"><metadata key="extruder" value="1"/></part></object></config>'
    )
    settings = '{"filament_colour": ["#2B2D42", "#EF233C"]}'
    _package(
        path,
        _model(res, '<item objectid="2"/>'),
        {"Metadata/model_settings.config": config, "Metadata/project_settings.config": settings},
    )


def material_blocks(path: Path) -> None:
    """An OBJ with a material library: three stacked blocks, each its own ``usemtl`` colour (``Kd``)."""
    blocks = [(box(30, 30, 8), "red"), (box(22, 22, 8, (4, 4, 8)), "yellow"), (box(14, 14, 8, (8, 8, 16)), "blue")]
    mtl = {"red": (0.86, 0.16, 0.16), "yellow": (0.98, 0.78, 0.12), "blue": (0.16, 0.42, 0.9)}
    lines = [f"mtllib {path.stem}.mtl"]
    n = 0
    for tri, name in blocks:
        lines.append(f"usemtl {name}")
        for t in tri:
            lines += [f"v {x:g} {y:g} {z:g}" for x, y, z in t]
            lines.append(f"f {n + 1} {n + 2} {n + 3}")
            n += 3
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    path.with_suffix(".mtl").write_text(
        "".join(f"newmtl {k}\nKd {r} {g} {b}\n" for k, (r, g, b) in mtl.items()), encoding="ascii"
    )


def vertex_coloured_ply(path: Path) -> None:
    """An ASCII PLY torus whose vertices carry colours (a gradient around the ring)."""
    tri = torus(16.0, 5.0, 48, 18)
    verts = tri.reshape(-1, 3)
    angle = np.arctan2(verts[:, 1], verts[:, 0])
    rgb = np.stack([127.5 + 127.5 * np.cos(angle + k * 2.0944) for k in (0, 1, 2)], axis=1).astype(int)
    head = [
        "ply",
        "format ascii 1.0",
        f"element vertex {len(verts)}",
        "property float x",
        "property float y",
        "property float z",
        "property uchar red",
        "property uchar green",
        "property uchar blue",
        f"element face {len(tri)}",
        "property list uchar int vertex_indices",
        "end_header",
    ]
    body = [
        f"{x:.4f} {y:.4f} {z:.4f} {r} {g} {b}"
        for (x, y, z), (r, g, b) in zip(verts.tolist(), rgb.tolist(), strict=True)
    ]
    faces = [f"3 {3 * i} {3 * i + 1} {3 * i + 2}" for i in range(len(tri))]
    path.write_text("\n".join(head + body + faces) + "\n", encoding="ascii")


def two_colour_amf(path: Path) -> None:
    """An AMF with two objects in their own colours, placed by a constellation."""

    def obj(oid: int, tri: np.ndarray, rgb: tuple[float, float, float]) -> str:
        vx = "".join(
            f"<vertex><coordinates><x>{x:g}</x><y>{y:g}</y><z>{z:g}</z></coordinates></vertex>"
            for x, y, z in tri.reshape(-1, 3)
        )
        tx = "".join(
            f"<triangle><v1>{3 * i}</v1><v2>{3 * i + 1}</v2><v3>{3 * i + 2}</v3></triangle>" for i in range(len(tri))
        )
        r, g, b = rgb
        return (
            f'<object id="{oid}"><color><r>{r}</r><g>{g}</g><b>{b}</b></color><mesh><vertices>{vx}</vertices>'
            f"<volume>{tx}</volume></mesh></object>"
        )

    body = obj(0, gear(14, 12, 2, 5), (0.1, 0.6, 0.35)) + obj(1, bracket() * 0.5, (0.85, 0.35, 0.1))
    body += (
        '<constellation id="2"><instance objectid="0"><deltax>0</deltax><deltay>0</deltay><deltaz>0</deltaz>'
        '</instance><instance objectid="1"><deltax>16</deltax><deltay>-6</deltay><deltaz>0</deltaz></instance>'
        "</constellation>"
    )
    path.write_text(f'<?xml version="1.0" encoding="UTF-8"?>\n<amf unit="millimeter">{body}</amf>\n', encoding="utf-8")


class _StepData:
    """The DATA section of a STEP file, one ``#n=ENTITY(...);`` line an entity."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, entity: str) -> str:
        self.lines.append(f"#{len(self.lines) + 1}={entity};")
        return f"#{len(self.lines)}"


def _step_box(data: _StepData, lo: tuple[float, float, float], hi: tuple[float, float, float], name: str) -> str:
    """A box as a B-rep solid (planes bounded by line edges); corner i has bit k set at hi on axis k."""
    corners = [tuple(hi[k] if i >> k & 1 else lo[k] for k in range(3)) for i in range(8)]
    points = [data.add(f"CARTESIAN_POINT('',({x:.1f},{y:.1f},{z:.1f}))") for x, y, z in corners]
    vertices = [data.add(f"VERTEX_POINT('',{p})") for p in points]
    edges: dict[tuple[int, int], str] = {}
    faces = []
    for axis in range(3):
        a, b = [k for k in range(3) if k != axis]
        for side in (0, 1):
            ring = [side << axis | u << a | v << b for u, v in ((0, 0), (1, 0), (1, 1), (0, 1))]
            normal = [0.0, 0.0, 0.0]
            normal[axis] = 1.0 if side else -1.0
            p0, p1, p2 = (np.array(corners[i]) for i in ring[:3])
            if np.dot(np.cross(p1 - p0, p2 - p1), normal) < 0:  # counter-clockwise seen from outside
                ring.reverse()
            oriented = []
            for i, j in zip(ring, ring[1:] + ring[:1], strict=True):
                key = (min(i, j), max(i, j))
                if key not in edges:
                    d = np.array(corners[key[1]]) - np.array(corners[key[0]])
                    length = float(np.abs(d).max())
                    ux, uy, uz = d / length
                    direction = data.add(f"DIRECTION('',({ux:.1f},{uy:.1f},{uz:.1f}))")
                    vector = data.add(f"VECTOR('',{direction},{length:.1f})")
                    line = data.add(f"LINE('',{points[key[0]]},{vector})")
                    edges[key] = data.add(f"EDGE_CURVE('',{vertices[key[0]]},{vertices[key[1]]},{line},.T.)")
                oriented.append(data.add(f"ORIENTED_EDGE('',*,*,{edges[key]},{'.T.' if i < j else '.F.'})"))
            loop = data.add(f"EDGE_LOOP('',({','.join(oriented)}))")
            bound = data.add(f"FACE_OUTER_BOUND('',{loop},.T.)")
            nx, ny, nz = normal
            ref = ["0.0", "0.0", "0.0"]
            ref[a] = "1.0"
            axis_direction = data.add(f"DIRECTION('',({nx:.1f},{ny:.1f},{nz:.1f}))")
            ref_direction = data.add(f"DIRECTION('',({','.join(ref)}))")
            placement = data.add(f"AXIS2_PLACEMENT_3D('',{points[ring[0]]},{axis_direction},{ref_direction})")
            plane = data.add(f"PLANE('',{placement})")
            faces.append(data.add(f"ADVANCED_FACE('',({bound}),{plane},.T.)"))
    shell = data.add(f"CLOSED_SHELL('',({','.join(faces)}))")
    return data.add(f"MANIFOLD_SOLID_BREP('{name}',{shell})")


def two_colour_step(path: Path) -> None:
    """Two boxes of one part, coloured as CAD programs write it: a STYLED_ITEM with a COLOUR_RGB per
    solid (AP214), the XCAF colours OpenCASCADE reads."""
    data = _StepData()
    context = data.add("APPLICATION_CONTEXT('core data for automotive mechanical design processes')")
    data.add(f"APPLICATION_PROTOCOL_DEFINITION('international standard','automotive_design',2000,{context})")
    product_context = data.add(f"PRODUCT_CONTEXT('',{context},'mechanical')")
    product = data.add(f"PRODUCT('two-colours','two colours','',({product_context}))")
    formation = data.add(f"PRODUCT_DEFINITION_FORMATION('','',{product})")
    definition_context = data.add(f"PRODUCT_DEFINITION_CONTEXT('part definition',{context},'design')")
    definition = data.add(f"PRODUCT_DEFINITION('design','',{formation},{definition_context})")
    shape = data.add(f"PRODUCT_DEFINITION_SHAPE('','',{definition})")
    mm = data.add("(LENGTH_UNIT()NAMED_UNIT(*)SI_UNIT(.MILLI.,.METRE.))")
    radian = data.add("(NAMED_UNIT(*)PLANE_ANGLE_UNIT()SI_UNIT($,.RADIAN.))")
    steradian = data.add("(NAMED_UNIT(*)SI_UNIT($,.STERADIAN.)SOLID_ANGLE_UNIT())")
    accuracy = data.add(f"UNCERTAINTY_MEASURE_WITH_UNIT(LENGTH_MEASURE(1.E-07),{mm},'distance_accuracy_value','')")
    geometry = data.add(
        f"(GEOMETRIC_REPRESENTATION_CONTEXT(3)GLOBAL_UNCERTAINTY_ASSIGNED_CONTEXT(({accuracy}))"
        f"GLOBAL_UNIT_ASSIGNED_CONTEXT(({mm},{radian},{steradian}))REPRESENTATION_CONTEXT('',''))"
    )
    solids = {
        _step_box(data, (0, 0, 0), (20, 20, 20), "red block"): (0.86, 0.16, 0.16),
        _step_box(data, (26, 0, 0), (36, 20, 30), "blue block"): (0.16, 0.42, 0.90),
    }
    brep = data.add(f"ADVANCED_BREP_SHAPE_REPRESENTATION('',({','.join(solids)}),{geometry})")
    data.add(f"SHAPE_DEFINITION_REPRESENTATION({shape},{brep})")
    styled = []
    for solid, (r, g, b) in solids.items():
        rgb = data.add(f"COLOUR_RGB('',{r},{g},{b})")
        fill_colour = data.add(f"FILL_AREA_STYLE_COLOUR('',{rgb})")
        fill_style = data.add(f"FILL_AREA_STYLE('',({fill_colour}))")
        fill_area = data.add(f"SURFACE_STYLE_FILL_AREA({fill_style})")
        side_style = data.add(f"SURFACE_SIDE_STYLE('',({fill_area}))")
        usage = data.add(f"SURFACE_STYLE_USAGE(.BOTH.,{side_style})")
        style = data.add(f"PRESENTATION_STYLE_ASSIGNMENT(({usage}))")
        styled.append(data.add(f"STYLED_ITEM('color',({style}),{solid})"))
    data.add(f"MECHANICAL_DESIGN_GEOMETRIC_PRESENTATION_REPRESENTATION('',({','.join(styled)}),{geometry})")
    header = (
        "ISO-10303-21;\nHEADER;\nFILE_DESCRIPTION(('two coloured blocks'),'2;1');\n"
        "FILE_NAME('two colours.step','2026-01-01T00:00:00',(''),(''),'sidecar-thumbs make_examples','','');\n"
        "FILE_SCHEMA(('AUTOMOTIVE_DESIGN { 1 0 10303 214 1 1 1 1 }'));\nENDSEC;\nDATA;\n"
    )
    path.write_text(header + "\n".join(data.lines) + "\nENDSEC;\nEND-ISO-10303-21;\n", encoding="ascii")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "parts").mkdir(exist_ok=True)
    write_binary_stl(OUT / "gear.stl", gear())
    write_binary_stl(OUT / "parts" / "bracket.stl", bracket())
    write_ascii_stl(OUT / "parts" / "torus (ascii).stl", torus(nu=28, nv=14), "torus")
    write_3mf(
        OUT / "plate.3mf",
        [gear(12, 10, 2, 5), torus(8, 3, 32, 16)],
        [(0, "1 0 0 0 1 0 0 0 1 -15 0 0"), (1, "1 0 0 0 1 0 0 0 1 15 0 0"), (0, "1 0 0 0 1 0 0 0 1 0 25 0")],
    )
    (OUT / "colors").mkdir(exist_ok=True)
    calibration_plate(OUT / "colors" / "calibration plate.3mf")
    gradient_knot(OUT / "colors" / "vertex colours.3mf")
    painted_project(OUT / "colors" / "painted gear (Bambu project).3mf")
    material_blocks(OUT / "colors" / "material blocks.obj")
    vertex_coloured_ply(OUT / "colors" / "vertex colours.ply")
    two_colour_amf(OUT / "colors" / "two colours.amf")
    # Not under models/: `scan examples/models` right after `pip install .` (no [step] extra) stays all good.
    EXTRAS.mkdir(exist_ok=True)
    two_colour_step(EXTRAS / "two colours.step")
    print(f"wrote examples to {OUT} and {EXTRAS}")


if __name__ == "__main__":
    main()
