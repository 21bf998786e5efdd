"""Entry points: pick the loader by file extension and return a :class:`Mesh`."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from sidecar_thumbs.errors import BadModelError, LimitExceededError, TransientModelError
from sidecar_thumbs.files.formats import ALL_SUFFIXES, format_for_name
from sidecar_thumbs.files.safeio import LinkOutsideRootsError, NotRegularFileError, open_regular, read_fd
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits, Mesh
from sidecar_thumbs.mesh.siblings import SiblingReader, sibling_reader

__all__ = ["detect_format", "load_mesh", "load_mesh_bytes", "warm_up"]

_LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def detect_format(name: str) -> str:
    """The format name (``"stl"``, ``"3mf"``, ``"zip"``, ...) from the file name's extension, in any case
    (``.amf.xml`` is AMF; a name that is only an extension, ``.stl``, is an STL too).

    Raises:
        BadModelError: an extension that is no model format.
    """
    fmt = format_for_name(os.path.basename(str(name)))
    if fmt is None:
        ext = os.path.splitext(str(name))[1].lower()
        raise BadModelError(
            f"not a model file (extension {ext or 'missing'!r}; expected one of {' '.join(ALL_SUFFIXES)})"
        )
    return fmt.name


def load_mesh_bytes(
    data: bytes,
    name: str,
    limits: LoadLimits = DEFAULT_LIMITS,
    resolve_sibling: SiblingReader | None = None,
    *,
    colors: bool = False,
) -> Mesh:
    """Parse a model file's bytes (already read and hashed by the caller).

    Args:
        data: the whole file.
        name: file name or path; only its extension (format) and messages use it.
        limits: caps on file size, triangles and decompressed bytes.
        resolve_sibling: reads a file the model names from its folder (an OBJ's ``.mtl``), see
            :func:`~sidecar_thumbs.mesh.siblings.sibling_reader`; None: such files are not read.
        colors: also read the model's own colours (``Mesh.face_colors``) where the format has them.

    Returns:
        The triangles in millimetres with every transform applied.

    Raises:
        BadModelError: not a valid model (or a subclass: NoGeometryError, LimitExceededError).
    """
    fmt = detect_format(name)
    if len(data) > limits.max_file_bytes:
        raise LimitExceededError(f"file is {len(data)} bytes, more than the limit of {limits.max_file_bytes} bytes")
    if data.startswith(_LFS_POINTER):
        # A repository cloned without Git LFS holds these small text files in place of its models.
        raise BadModelError("a Git LFS pointer, not the model itself (fetch the file with 'git lfs pull')")
    rgba: np.ndarray | None = None  # OBJ, PLY, AMF and STEP readers: (N, 4), alpha 0 where a triangle has none
    try:
        if fmt == "stl":
            from sidecar_thumbs.mesh.stl import load_stl_mesh

            return load_stl_mesh(data, limits)
        elif fmt in ("gcode", "bgcode"):
            from sidecar_thumbs.mesh.gcode import load_gcode_bytes

            triangles, kind = load_gcode_bytes(data, limits, binary=fmt == "bgcode")
        elif fmt == "3mf":
            from sidecar_thumbs.mesh.threemf import load_3mf_mesh

            return load_3mf_mesh(data, limits, colors)
        elif fmt == "obj":
            from sidecar_thumbs.mesh.obj import load_obj_bytes

            triangles, kind, rgba = load_obj_bytes(data, limits, resolve_sibling)
        elif fmt == "ply":
            from sidecar_thumbs.mesh.ply import load_ply_bytes

            triangles, kind, rgba = load_ply_bytes(data, limits)
        elif fmt == "amf":
            from sidecar_thumbs.mesh.amf import load_amf_bytes

            triangles, kind, rgba = load_amf_bytes(data, limits)
        elif fmt == "step":
            from sidecar_thumbs.mesh.step import load_step_bytes

            triangles, kind, rgba = load_step_bytes(data, limits)
        else:
            # Archives are pictures of what they hold, not meshes: thumbnail.py handles them.
            raise BadModelError(f"no mesh reader for {fmt} files")
    except MemoryError:
        # An absurd but in-limit model: report it as a cap, not as a crash of the worker.
        raise LimitExceededError("model too large to load into memory") from None
    return Mesh(triangles=triangles, format=kind, face_colors=rgba)


def load_mesh(path: str | os.PathLike[str], limits: LoadLimits = DEFAULT_LIMITS) -> Mesh:
    """Read a model file and parse it with :func:`load_mesh_bytes`.

    Raises:
        BadModelError: as :func:`load_mesh_bytes`, also for a file above ``limits.max_file_bytes``.
        TransientModelError: the file could not be read (vanished, busy, permissions).
    """
    name = os.fspath(path)
    detect_format(name)
    try:
        fd, st = open_regular(name)  # never a FIFO or device: they would block or never end
    except (NotRegularFileError, LinkOutsideRootsError) as exc:
        raise BadModelError(exc.strerror) from None
    except OSError as exc:
        raise TransientModelError(f"cannot read {name}: {exc.strerror or exc}") from exc
    try:
        if st.st_size > limits.max_file_bytes:
            cap = limits.max_file_bytes
            raise LimitExceededError(f"file is {st.st_size} bytes, more than the limit of {cap} bytes")
        data = read_fd(fd, st.st_size)
    except OSError as exc:
        raise TransientModelError(f"cannot read {name}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    return load_mesh_bytes(data, name, limits, sibling_reader(name))


def warm_up() -> None:
    """Compile (or load from the on-disk cache) the numba 3MF, OBJ, PLY and ASCII STL kernels on tiny inputs.

    Workers call this once at start so the first real file does not pay the JIT cost.
    """
    for step in warm_up_steps():
        step()


def warm_up_steps() -> list[Callable[[], None]]:
    """:func:`warm_up` in its parts, each compiling its own kernels (cold, 2 cores: the 3MF scanner ~80 s,
    OBJ ~16 s, ASCII STL ~3 s, PLY and vertex colours < 1 s of CPU). A pool's workers share them out on a
    cold cache, each step compiled by one worker and loaded by the others (``work/jobs.py``)."""
    from sidecar_thumbs.mesh.objscan import warm_up as _warm_obj
    from sidecar_thumbs.mesh.plydata import warm_up as _warm_ply
    from sidecar_thumbs.mesh.stl import warm_up as _warm_stl
    from sidecar_thumbs.mesh.vertexcolors import warm_up as _warm_vertex_colors

    return [_warm_3mf, _warm_obj, _warm_ply, _warm_vertex_colors, _warm_stl]


def _warm_3mf() -> None:
    """The whole-part and the streamed 3MF scans in one step: both call the same compiled ``scan_step``
    (the long compile), so one worker compiles it for both."""
    from sidecar_thumbs.mesh.xmlscan import warm_up as _warm_whole

    _warm_whole()
    _warm_stream()


def _warm_stream() -> None:
    """A real 3MF part goes through the streamed scan, which calls the kernels with its own argument types,
    and a coloured one through the colour-group kernels: load two tiny packages (plain and coloured) so a
    worker's first 3MF does not compile them (hundreds of MB and seconds on a cold cache, as
    tests/reliability/test_bombs.py measures)."""
    import io
    import zipfile

    from sidecar_thumbs import numba_cache

    if numba_cache.import_kernel("sidecar_thumbs.mesh.xmlscan_numba") is None:
        return
    core = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
    rels = (
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
        'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>'
    )
    colours = '<m:colorgroup id="2"><m:color color="#FF0000"/><m:color color="#00FF00"/></m:colorgroup>'
    for group, props in (("", ""), (colours, ' pid="2" p1="0" p2="1" p3="0"')):
        model = (
            f'<model unit="millimeter" xmlns="{core}" '
            'xmlns:m="http://schemas.microsoft.com/3dmanufacturing/material/2015/02">'
            f'<resources>{group}<object id="1" type="model"><mesh><vertices><vertex x="0" y="0" z="0"/>'
            '<vertex x="1" y="0" z="0"/><vertex x="0" y="1" z="0"/></vertices><triangles>'
            f'<triangle v1="0" v2="1" v3="2"{props}/></triangles></mesh></object></resources>'
            '<build><item objectid="1"/></build></model>'
        )
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("_rels/.rels", rels)
            z.writestr("3D/3dmodel.model", model)
        mesh = load_mesh_bytes(buf.getvalue(), "warm-up.3mf", colors=True)
        mesh.colors_for((128, 128, 128))
