"""A binary STL is handed to the renderer raw (a view of its records, not copied, not checked): the same
picture and the same triangle count as the checked copy, for files with NaN, infinite and huge finite
coordinates; every other reader still gets the finite soup."""

from __future__ import annotations

import numpy as np
import pytest

from bench import meshgen
from sidecar_thumbs.errors import NoGeometryError
from sidecar_thumbs.mesh import Mesh, load_mesh_bytes
from sidecar_thumbs.mesh.soup import finish_triangles
from sidecar_thumbs.render import RenderOptions, render_mesh, render_triangles, resolve_kernel
from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail_from_bytes

KERNELS = ["numba", "numpy"] if resolve_kernel("auto") == "numba" else ["numpy"]


def _stl(tri: np.ndarray) -> bytes:
    with np.errstate(all="ignore"):  # the writer's normals of NaN triangles
        return meshgen.binary_stl_bytes(tri)


def _hostile_rock() -> np.ndarray:
    tri = meshgen.rock(2_000).copy()
    tri[3, 1, 2] = np.nan
    tri[::97, 0, 0] = np.inf
    tri[50, 2, 1] = -np.inf
    tri[7] = np.float32(3.3e38)  # finite (counted) but not drawable
    return tri


@pytest.mark.parametrize("kernel", KERNELS)
def test_a_raw_stl_draws_and_counts_as_its_checked_copy(kernel: str) -> None:
    tri = _hostile_rock()
    data = _stl(tri)
    mesh = load_mesh_bytes(data, "rock.stl")
    assert mesh.raw is not None and mesh.format == "stl-binary"
    assert not mesh.raw.flags.c_contiguous  # a view of the 50-byte records, no copy
    checked = finish_triangles(tri)
    opts = RenderOptions(size=128, kernel=kernel)
    assert np.array_equal(render_mesh(mesh, opts), render_triangles(checked, opts))
    assert mesh.triangle_count == len(checked) == int(np.isfinite(tri).all(axis=(1, 2)).sum())


def test_a_raw_stl_gives_other_readers_the_finite_soup_and_count_without_a_render() -> None:
    tri = _hostile_rock()
    mesh = load_mesh_bytes(_stl(tri), "rock.stl")
    assert mesh.triangle_count == len(finish_triangles(tri))  # counted without drawing
    soup = mesh.triangles
    assert soup.flags.c_contiguous and soup.dtype == np.float32 and np.isfinite(soup).all()
    assert np.array_equal(soup, finish_triangles(tri))


def test_the_thumbnail_of_a_raw_stl_records_its_finite_triangles() -> None:
    tri = _hostile_rock()
    data = _stl(tri)
    thumb = make_thumbnail_from_bytes(data, "rock.stl", len(data), 0, ThumbnailOptions(), "0" * 32)
    assert thumb.triangles == len(finish_triangles(tri))


def test_a_binary_stl_with_no_finite_triangle_is_refused_when_loaded() -> None:
    bad = np.full((5_000, 3, 3), np.nan, np.float32)
    with pytest.raises(NoGeometryError, match="non-finite"):
        load_mesh_bytes(_stl(bad), "x.stl")
    bad[4_500, :, :] = 1.0  # one finite triangle beyond the first block of the check
    assert load_mesh_bytes(_stl(bad), "x.stl").triangle_count == 1


def test_a_mesh_has_exactly_one_form() -> None:
    tri = meshgen.rock(80)
    with pytest.raises(ValueError):
        Mesh(triangles=tri, format="stl-binary", raw=tri)
    with pytest.raises(ValueError):
        Mesh(format="3mf", vertices=tri.reshape(-1, 3))
