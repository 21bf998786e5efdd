"""STEP / STP (ISO 10303-21) through the optional ``[step]`` extra: OpenCASCADE via ``cascadio``.

``cascadio`` (a small nanobind wrapper of OpenCASCADE's STEP reader, mesher and glTF writer) reads a
file path and writes a ``.glb``; both live in a private temporary folder of the worker, never next to
the model, and are deleted at once (or, if the file timeout killed the worker, by the next STEP
file's worker, which sweeps folders of dead processes). Assemblies come out as a glTF node tree with each occurrence's
placement, which :mod:`sidecar_thumbs.mesh.glb` applies. The tessellation's linear deflection is a
fixed fraction of the model's size (its bounding box, estimated from the file's 3D points before
meshing), so a 5 mm clip and a 300 mm bed plate both come out smooth at thumbnail size without a
bed plate costing millions of triangles. The worker's file timeout bounds the time it may take.

Without the extra a STEP file raises :class:`~sidecar_thumbs.errors.MissingExtraError`: recorded as
"needs the [step] extra", and pending again once ``cascadio`` can be imported.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator

import numpy as np

from sidecar_thumbs.errors import BadModelError
from sidecar_thumbs.files.formats import require_extra
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.glb import glb_triangles

__all__ = ["TEMP_PREFIX", "check_step_bytes", "load_step_bytes", "step_deflection", "sweep_orphaned_temp_dirs"]

TEMP_PREFIX = "sidecar-thumbs-step-"

# Chord error as a fraction of the bounding-box diagonal: 1/1000 of a model drawn ~230 px across is
# a quarter of a pixel. Angular deflection 0.35 rad: a hole gets >= 18 segments (0.5 rad gave 13,
# visibly polygonal on large bores).
RELATIVE_DEFLECTION = 1e-3
ANGULAR_DEFLECTION = 0.35
_MIN_DEFLECTION_MM = 0.001
_MAX_DEFLECTION_MM = 5.0
_FALLBACK_DEFLECTION_MM = 0.1

_HEADER = re.compile(rb"\A(?:\xef\xbb\xbf)?\s*ISO-10303-21\s*;")
_POINT = re.compile(rb"CARTESIAN_POINT\s*\(\s*'[^']*'\s*,\s*\(([^()]*)\)")
_INCH = re.compile(rb"CONVERSION_BASED_UNIT\s*\(\s*'INCH'", re.IGNORECASE)
_SI_LENGTH = re.compile(rb"SI_UNIT\s*\(\s*(\.\w+\.|\$)\s*,\s*\.METRE\.\s*\)")
_SI_PREFIX_MM = {b".MILLI.": 1.0, b".CENTI.": 10.0, b".DECI.": 100.0, b"$": 1000.0, b".KILO.": 1e6}


def _length_unit_mm(data: bytes) -> float:
    if _INCH.search(data):
        return 25.4
    m = _SI_LENGTH.search(data)
    return _SI_PREFIX_MM.get(m.group(1), 1.0) if m else 1.0


def step_deflection(data: bytes) -> float:
    """Linear deflection in millimetres for this file: :data:`RELATIVE_DEFLECTION` of its size."""
    coords: list[float] = []
    for m in _POINT.finditer(data):
        parts = m.group(1).split(b",")
        if len(parts) == 3:  # 2D points are curve parameters on a surface, not positions
            try:
                coords.extend(float(p) for p in parts)
            except ValueError:
                continue
    if not coords:
        return _FALLBACK_DEFLECTION_MM
    pts = np.asarray(coords, dtype=np.float64).reshape(-1, 3)
    diagonal = float(np.linalg.norm(pts.max(axis=0) - pts.min(axis=0))) * _length_unit_mm(data)
    if not np.isfinite(diagonal) or diagonal <= 0:
        return _FALLBACK_DEFLECTION_MM
    return min(_MAX_DEFLECTION_MM, max(_MIN_DEFLECTION_MM, diagonal * RELATIVE_DEFLECTION))


@contextlib.contextmanager
def _native_output_silenced() -> Iterator[None]:
    """In a pool worker, send OpenCASCADE's own console lines (``**** ERR StepFile : ...``) to
    /dev/null: the reason reaches the log once, as our one-line error. Not in the main process
    (``--workers 0``), whose stderr carries the log of other threads."""
    if multiprocessing.parent_process() is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_orphaned_temp_dirs(tmp: str | None = None) -> int:
    """Remove our STEP temp folders whose worker is gone (killed by the file timeout before it could
    clean up). Only folders with our prefix, owned by this user, of a process that no longer exists.
    Returns how many were removed."""
    tmp = tmp or tempfile.gettempdir()
    removed = 0
    try:
        names = [n for n in os.listdir(tmp) if n.startswith(TEMP_PREFIX)]
    except OSError:
        return 0
    for name in names:
        pid_text = name[len(TEMP_PREFIX) :].split("-", 1)[0]
        if not pid_text.isdigit() or int(pid_text) == os.getpid() or _alive(int(pid_text)):
            continue
        path = os.path.join(tmp, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_uid == os.getuid() and stat.S_ISDIR(st.st_mode):
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed


def check_step_bytes(data: bytes) -> None:
    """Cheap checks that need no extra: the ISO-10303-21 header and end marker.

    Raises:
        BadModelError: not a STEP file (e.g. a Git LFS pointer), or cut short.
    """
    if not _HEADER.match(data[:64]):
        raise BadModelError("not a STEP file (no ISO-10303-21 header)")
    if b"END-ISO-10303-21" not in data[-4096:]:
        raise BadModelError("STEP file is cut short (no END-ISO-10303-21 at its end)")


def load_step_bytes(data: bytes, limits: LoadLimits) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Tessellate a STEP file's solids and surfaces, placed by their assembly transforms.

    Returns:
        ``(triangles, "step", face_colors)``: float32 ``(N, 3, 3)`` in millimetres; uint8 ``(N, 4)``
        RGBA from the file's XCAF colours (alpha 0 where a shape has none), or None without colours.

    Raises:
        BadModelError: not a STEP file, or OpenCASCADE cannot read it.
        MissingExtraError: the ``[step]`` extra is not installed.
        NoGeometryError: it reads, but holds nothing to draw.
    """
    check_step_bytes(data)
    cascadio = require_extra("step")
    deflection = step_deflection(data)
    sweep_orphaned_temp_dirs()
    # mode 0700, removed on exit; the pid in the name lets a later call remove it if we are killed.
    with tempfile.TemporaryDirectory(prefix=f"{TEMP_PREFIX}{os.getpid()}-") as folder:
        src = os.path.join(folder, "model.step")
        out = os.path.join(folder, "model.glb")
        with open(src, "wb") as f:
            f.write(data)
        # use_parallel=False: a pool worker is one core's worth of work; OCCT threads would fight
        # the other workers.
        with _native_output_silenced():
            rc = cascadio.step_to_glb(
                src, out, tol_linear=deflection, tol_angular=ANGULAR_DEFLECTION, tol_relative=False, use_parallel=False
            )
        if rc != 0 or not os.path.exists(out):
            raise BadModelError("OpenCASCADE cannot read this STEP file")
        with open(out, "rb") as f:
            glb = f.read()
    triangles, colors = glb_triangles(glb, limits.max_triangles)
    return triangles, "step", colors
