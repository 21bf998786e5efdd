"""Colours of a placed 3MF build (mesh.threemf_colors): instances that mix per-triangle, per-corner and
object colours, slicer filaments and paint, each triangle checked against colours worked out here."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from mesh_builders import make_3mf, model_xml, unit_cube_mesh

from sidecar_thumbs.mesh.threemf import load_3mf_mesh

MAT = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"
GROUP = ["#C0392B", "#27AE60", "#2980B9", "#F1C40F", "#8E44AD"]
RED, GREEN, BLUE, YELLOW, PURPLE = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in GROUP]
BASE = (0xD3, 0x54, 0x00)
FILAMENTS = ["#1E8451", "#B9A46A"]
FIL1, FIL2 = [tuple(int(c[i : i + 2], 16) for i in (1, 3, 5)) for c in FILAMENTS]


def _with_triangle_attrs(attrs: list[str]) -> str:
    """The unit cube with ``attrs[i]`` added to its i-th triangle."""
    mesh = unit_cube_mesh()
    found = re.findall(r"<triangle [^/]*/>", mesh)
    assert len(found) == len(attrs) == 12
    pieces = mesh.split("<triangles>")[0] + "<triangles>"
    pieces += "".join(t[:-2] + a + "/>" for t, a in zip(found, attrs, strict=True))
    return pieces + "</triangles></mesh>"


# Object 1: a colour per triangle; object 2: a colour per corner; object 3: its base material only.
PER_TRIANGLE = [f' pid="2" p1="{k % 5}"' for k in range(12)]
PER_CORNER = [f' pid="2" p1="{k % 5}" p2="{(k + 1) % 5}" p3="{(k + 2) % 5}"' for k in range(12)]
RESOURCES = (
    '<m:colorgroup id="2">' + "".join(f'<m:color color="{c}"/>' for c in GROUP) + "</m:colorgroup>"
    '<m:basematerials id="4"><m:base name="PLA" displaycolor="#D35400"/></m:basematerials>'
    f'<object id="1" type="model">{_with_triangle_attrs(PER_TRIANGLE)}</object>'
    f'<object id="2" type="model">{_with_triangle_attrs(PER_CORNER)}</object>'
    f'<object id="3" type="model" pid="4" pindex="0">{unit_cube_mesh()}</object>'
)


def _expected(object_id: int) -> np.ndarray:
    """(12, 3, 3) corner colours of one object, worked out from the attributes above."""
    if object_id == 3:
        return np.array([[BASE] * 3] * 12, np.uint8)
    attrs = PER_TRIANGLE if object_id == 1 else PER_CORNER
    out = []
    for a in attrs:
        p = [int(v) for v in re.findall(r'p\d="(\d+)"', a)]
        p = p + [p[0]] * (3 - len(p))
        out.append([[RED, GREEN, BLUE, YELLOW, PURPLE][i] for i in p])
    return np.array(out, np.uint8)


@pytest.mark.parametrize("order", [(1, 2, 3), (2, 1, 3), (3, 1, 2), (1, 1), (2,), (1,)])
def test_instances_mixing_triangle_corner_and_object_colours(order: tuple[int, ...]) -> None:
    build = "".join(f'<item objectid="{o}"/>' for o in order)
    mesh = load_3mf_mesh(make_3mf(model_xml(RESOURCES, build, extra_ns=f' xmlns:m="{MAT}"')))
    assert mesh.face_colors is not None and mesh.color_mask is not None and mesh.color_mask.all()
    want = np.concatenate([_expected(o) for o in order])
    got = mesh.face_colors
    if got.ndim == 2:  # no corner differs anywhere: one colour a triangle
        assert 2 not in order
        got = np.repeat(got[:, None, :], 3, axis=1)
    assert np.array_equal(got, want)


def test_slicer_filament_corner_colours_and_paint_on_one_object() -> None:
    # Extruder 1 for the object; triangles 0-3 have vertex colours; paint: "8" (filament 2) on 1 and 5,
    # "4" (filament 1) on 6, "1C" (filament 4, which the project lacks) on 7.
    attrs = [PER_CORNER[k] if k < 4 else "" for k in range(12)]
    paint = {1: "8", 5: "8", 6: "4", 7: "1C"}
    attrs = [a + (f' paint_color="{paint[k]}"' if k in paint else "") for k, a in enumerate(attrs)]
    res = (
        '<m:colorgroup id="2">' + "".join(f'<m:color color="{c}"/>' for c in GROUP) + "</m:colorgroup>"
        f'<object id="1" type="model">{_with_triangle_attrs(attrs)}</object>'
    )
    project = {
        "Metadata/model_settings.config": b'<?xml version="1.0"?><config><object id="1">'
        b'<metadata key="extruder" value="2"/></object></config>',
        "Metadata/project_settings.config": json.dumps({"filament_colour": FILAMENTS}).encode(),
    }
    mesh = load_3mf_mesh(make_3mf(model_xml(res, '<item objectid="1"/>', extra_ns=f' xmlns:m="{MAT}"'), project))
    want = np.array([[FIL2] * 3] * 12, np.uint8)
    want[:4] = _expected(2)[:4]
    want[1] = want[5] = [FIL2] * 3
    want[6] = [FIL1] * 3
    assert mesh.face_colors is not None and mesh.face_colors.shape == (12, 3, 3)
    assert np.array_equal(mesh.face_colors, want)
    assert mesh.color_mask is not None and mesh.color_mask.all()
