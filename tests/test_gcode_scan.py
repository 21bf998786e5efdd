"""The G-code scanner reads the moves as a Marlin/Klipper printer would, keeps only extrusion, caps
its memory, and survives hostile input; the plain-Python fallback reads the same segments."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from corpus_paths import REPO_ROOT
from gcode_builders import tower_gcode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar_thumbs.errors import NoGeometryError
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.gcode import load_gcode_bytes
from sidecar_thumbs.mesh.gcode_segments import MAX_COORD
from sidecar_thumbs.mesh.jit import COMPILED
from sidecar_thumbs.mesh.toolpath import scan_toolpath


def segs(text: str, cap: int = 10_000) -> np.ndarray:
    return scan_toolpath(text.encode(), cap).segments.astype(np.float64)


def test_only_moves_that_extrude_are_kept() -> None:
    s = segs("G90\nM83\nG0 X10 Y0\nG1 X20 E1\nG1 E-1\nG1 X30\nG1 E1\nG1 Y10 E-0.5\nG1 Y20 E0.5\n")
    assert s.tolist() == [[10, 0, 0, 20, 0, 0], [30, 10, 0, 30, 20, 0]]


def test_absolute_e_and_g92_reset() -> None:
    s = segs("M82\nG1 X10 E5\nG1 X20 E10\nG1 E8\nG92 E0\nG1 X20 Y10 E1\nG1 X0 Y10 E0.5\n")
    # X10->X20 continues the run from 0,0 (merged); E8 retracts; after G92 E0, E1 extrudes, E0.5 does not
    assert s.tolist() == [[0, 0, 0, 20, 0, 0], [20, 0, 0, 20, 10, 0]]


def test_relative_axes_and_inches() -> None:
    s = segs("G20\nG91\nG1 X1 E0.1\nG1 Y1 E0.1\nG21\nG1 X-10 E0.1\n")
    assert np.allclose(s, [[0, 0, 0, 25.4, 0, 0], [25.4, 0, 0, 25.4, 25.4, 0], [25.4, 25.4, 0, 15.4, 25.4, 0]])


def test_collinear_moves_merge_into_one_segment() -> None:
    s = segs("M83\nG1 X1 E.1\nG1 X2 E.1\nG1 X3.5 E.1\nG1 X3.5 Y2 E.1\n")
    assert s.tolist() == [[0, 0, 0, 3.5, 0, 0], [3.5, 0, 0, 3.5, 2, 0]]


def test_full_circle_arc_ij_stays_on_its_circle() -> None:
    s = segs("M83\nG1 X10 Y0\nG3 X10 Y0 I-10 J0 E6\n")
    assert len(s) == 48
    r = np.hypot(s[:, [0, 3]], s[:, [1, 4]])
    assert np.allclose(r, 10.0, atol=1e-4)
    assert s[0, 4] > 0  # counter-clockwise from (10, 0) goes up first


@pytest.mark.parametrize(("cmd", "top"), [("G2", True), ("G3", False)])
def test_arc_r_form_takes_the_short_way_on_the_right_side(cmd: str, top: bool) -> None:
    s = segs(f"M83\n{cmd} X2 Y0 R1 E1\n")
    y = s[:, [1, 4]]
    assert (y.max() > 0.99) if top else (y.min() < -0.99)
    assert np.allclose(np.hypot(s[:, [0, 3]] - 1, y), 1.0, atol=1e-4)


def test_helical_arc_shares_out_z() -> None:
    s = segs("M83\nG1 X5 Y0\nG2 X-5 Y0 Z2 I-5 J0 E3\n")
    assert math.isclose(s[-1, 5], 2.0) and np.all(np.diff(s[:, 5]) > 0)


def test_comments_checksums_and_extended_commands_are_not_moves() -> None:
    text = (
        "M83 ; relative E\n"
        "N10 G1 X10 E1*57 ; checksummed\n"
        "G1 (a comment X99 E9) Y10 E1\n"
        "M201 X1000 Y1000 E5000 ; limits, not a move\n"
        "EXCLUDE_OBJECT_START NAME=cube_id_0_copy_0 X5 E5\n"
        "SET_PRESSURE_ADVANCE ADVANCE=0.04\n"
        "# klipper comment G1 X50 E5\n"
        "G4 P100 X7\n"
        "G1X0Y10E1\n"
    )
    assert segs(text).tolist() == [[0, 0, 0, 10, 0, 0], [10, 0, 0, 10, 10, 0], [10, 10, 0, 0, 10, 0]]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_any_line_ending(newline: str) -> None:
    text = "M83;relative\nG1 X10 E1 (to the right)\nG1 Y10 E1\n".replace("\n", newline)
    assert segs(text).tolist() == [[0, 0, 0, 10, 0, 0], [10, 0, 0, 10, 10, 0]]


def test_modal_motion_lines_without_g_word() -> None:
    assert segs("M83\nG1 X1 E.1\nY5 E.1\n").tolist() == [[0, 0, 0, 1, 0, 0], [1, 0, 0, 1, 5, 0]]


def test_g28_homes_and_g92_sets_position() -> None:
    s = segs("M83\nG92 X50 Y50\nG1 X60 E1\nG28\nG1 X5 E1\n")
    assert s.tolist() == [[50, 50, 0, 60, 50, 0], [0, 0, 0, 5, 0, 0]]


def test_skirt_brim_and_wipe_tower_are_left_out() -> None:
    text = "M83\n;TYPE:Skirt/Brim\nG1 X100 E5\n;TYPE:Perimeter\nG1 Y10 E1\n; FEATURE: Prime tower\nG1 X0 E1\n"
    assert segs(text).tolist() == [[100, 0, 0, 100, 10, 0]]
    s3d = "M83\n; feature skirt\nG1 X100 E5\n; feature outer perimeter\nG1 Y10 E1\n; feature prime pillar\nG1 X0 E1\n"
    assert segs(s3d).tolist() == [[100, 0, 0, 100, 10, 0]]


def test_file_that_never_says_its_e_mode_and_uses_relative_amounts(corpus: Path) -> None:
    path = scan_toolpath((corpus / "gcode" / "gcodenom__arc_demo.gcode").read_bytes(), 10_000)
    assert len(path.segments) > 100


def test_beyond_the_cap_whole_layers_are_sampled_evenly_and_drawn_taller() -> None:
    cap = 2000
    data = tower_gcode(layers=200, solid=True)  # 200 layers of 96 segments
    path = scan_toolpath(data, cap)
    k = path.layer_stride
    assert cap // 4 <= len(path.segments) <= cap and k == 16 and path.stride == 1
    z = np.unique(path.segments[:, 2].round(3))
    assert np.allclose(np.diff(z), k * 0.2)  # every k-th layer, each one whole
    assert z.min() <= 0.2 + 1e-6 and z.max() >= 40.0 - k * 0.2  # from the first layer to near the top
    triangles, _ = load_gcode_bytes(data, LoadLimits(max_toolpath_segments=cap))
    assert abs(triangles[..., 2].max() - 40.0) < k * 0.2  # the object keeps its height
    assert abs(triangles[..., 2].min()) < 1e-3  # and stands on the bed


def test_one_huge_layer_beyond_the_cap_is_sampled_by_segment() -> None:
    data = tower_gcode(layers=1, side=200.0, solid=True)  # one layer of ~890 segments
    path = scan_toolpath(data, 100)
    assert 25 <= len(path.segments) <= 100 and path.stride > 1


def test_purge_line_along_the_bed_edge_is_left_out_of_the_frame() -> None:
    purge = b"M83\nG1 Z0.2\nG1 X0 Y-3\nG1 X60 Y-3 E9\nG1 X100 Y-3 E12.5\n"
    mesh_xy = load_gcode_bytes(
        purge + tower_gcode(layers=10),
    )[0].reshape(-1, 3)
    assert mesh_xy[:, 1].min() > 95  # the tower starts at y = 100


@pytest.mark.parametrize(
    "line",
    [
        "G2 X10 Y10 I1e308 J0 E1",
        "G2 X10 Y10 I99999999999999999999999999999999999999 J0 E1",
        "G3 X0 Y0 I0 J0 E1",
        "G2 X10 Y0 R0.001 E1",
        "G2 X0 Y0 R5 E1",
        "G1 X999999999999999999999999999999999999999999999999 E1",
        "G1 X1" + "0" * 400 + " E1",
        "G1 X-.e5 E1",
        "G1 X" + "9" * 100000 + " E1",
    ],
)
def test_absurd_arcs_and_coordinates_never_make_non_finite_or_huge_geometry(line: str) -> None:
    path = scan_toolpath(f"M83\nG1 X1 Y1 E1\n{line}\nG1 X2 Y2 E1\n".encode(), 1000)
    assert np.isfinite(path.segments).all() and np.abs(path.segments).max() < MAX_COORD


def test_huge_coordinates_everywhere_means_nothing_to_draw() -> None:
    with pytest.raises(NoGeometryError):
        load_gcode_bytes(b"M83\n" + b"G1 X1e99 Y5000000 E1\nG1 X-9999999 Y1 E1\n" * 50)


WORDS = st.sampled_from(["G0", "G1", "G2", "G3", "G90", "G91", "G92", "G20", "G21", "G28", "M82", "M83", "T0"])
AXES = st.sampled_from(list("XYZEIJRFN"))
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.sampled_from(["", "-", ".", "-.5", "1.", "1e5", "nan", "inf"]),
)
JUNK = st.sampled_from([";", "(", ")", "*", "#", " ", "\t", "\r", "\x00", "\xff", "é", "EXCLUDE_OBJECT", "\n"])
LINES = st.lists(st.tuples(WORDS, st.lists(st.tuples(AXES, NUMBERS, JUNK), max_size=6)), max_size=40)


@pytest.mark.integration  # a fuzzer: out of the fast lane with the others
@settings(
    max_examples=120, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(LINES)
def test_fuzzed_gcode_lines_give_finite_geometry_or_one_line_refusal(lines: list) -> None:
    text = "\n".join(w + " " + " ".join(a + n + j for a, n, j in words) for w, words in lines)
    try:
        triangles, kind = load_gcode_bytes(text.encode("utf-8", "surrogateescape"))
    except NoGeometryError as exc:
        assert "\n" not in exc.message
        return
    assert kind == "gcode" and np.isfinite(triangles).all() and np.abs(triangles).max() < 2 * MAX_COORD


def test_a_big_gcode_scans_in_bounded_memory() -> None:
    data = tower_gcode(layers=400, solid=True) * 4  # ~6 MB, ~90k segments
    tracemalloc.start()
    path = scan_toolpath(data, 2000)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert 500 <= len(path.segments) <= 2000 and peak < 2 * 1024 * 1024


@pytest.mark.integration
@pytest.mark.skipif(not COMPILED, reason="numba is not installed: only the Python kernel exists")
def test_python_fallback_reads_the_same_segments_as_numba(corpus: Path) -> None:
    files = [corpus / "gcode" / "gcodepreview__vase.gcode", corpus / "gcode" / "gcodenom__arc_demo.gcode"]
    code = (
        "import json, sys\n"
        "from sidecar_thumbs.mesh.jit import COMPILED\n"
        "from sidecar_thumbs.mesh.toolpath import scan_toolpath\n"
        "assert not COMPILED\n"
        "print(json.dumps([scan_toolpath(open(p, 'rb').read(), 5000).segments.tolist() for p in sys.argv[1:]]))\n"
    )
    env = {**os.environ, "SIDECAR_THUMBS_NO_NUMBA": "1", "PYTHONPATH": str(REPO_ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, files)], env=env, capture_output=True, check=True, timeout=240
    )
    python_segments = json.loads(out.stdout)
    for path, expected in zip(files, python_segments, strict=True):
        got = scan_toolpath(path.read_bytes(), 5000).segments
        assert np.array_equal(got, np.array(expected, np.float32).reshape(-1, 6)), path.name


@pytest.mark.integration  # a bomb or a cost bound, like the reliability suite's: out of the fast lane
@pytest.mark.skipif(not COMPILED, reason="a speed bound for the compiled kernel")
def test_a_file_of_nothing_but_full_circles_costs_about_what_lines_cost() -> None:
    data = b"M83\n" + b"G2 I10 E1\n" * 1_000_000  # 10 MB, 48 pieces a line at full detail
    scan_toolpath(data[:1000], 100)  # load the kernel
    start = time.process_time()
    scan_toolpath(data, 150_000)
    assert time.process_time() - start < 2.0  # ~0.4 s; 4 s when every circle is cut into 48 pieces


def test_a_small_flat_part_apart_from_the_rest_is_kept() -> None:
    washer = tower_gcode(layers=2, side=12.0, x0=10.0, y0=10.0, solid=True)  # 12 x 12 mm, 0.4 mm high
    tall = tower_gcode(layers=150, side=20.0, x0=150.0, y0=150.0, solid=True).replace(b"G28\n", b"")
    xy = load_gcode_bytes(washer + tall)[0].reshape(-1, 3)
    assert xy[:, 0].min() < 11 and xy[:, 1].min() < 11


def test_a_huge_spiral_vase_is_not_drawn_with_towering_boxes(corpus: Path) -> None:
    data = (corpus / "gcode" / "gcodepreview__vase.gcode").read_bytes()
    full = load_gcode_bytes(data)[0]
    sampled = load_gcode_bytes(data, LoadLimits(max_toolpath_segments=500))[0]
    # every k-th segment of the spiral, each one line high: no box rises above the vase
    assert sampled[..., 2].max() <= full[..., 2].max() + 0.5
