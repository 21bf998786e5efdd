"""Entry points: pick the loader by file extension and return a :class:`Mesh`."""

from __future__ import annotations

import os

from sidecar_thumbs.errors import BadModelError, LimitExceededError, TransientModelError
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits, Mesh

__all__ = ["detect_format", "load_mesh", "load_mesh_bytes", "warm_up"]

_FORMATS = {".stl": "stl", ".3mf": "3mf"}


def detect_format(name: str) -> str:
    """``"stl"`` or ``"3mf"`` from the file name's extension, in any case.

    Raises:
        BadModelError: any other extension.
    """
    ext = os.path.splitext(str(name))[1].lower()
    try:
        return _FORMATS[ext]
    except KeyError:
        raise BadModelError(f"not a model file (extension {ext or 'missing'!r}; expected .stl or .3mf)") from None


def load_mesh_bytes(data: bytes, name: str, limits: LoadLimits = DEFAULT_LIMITS, colors: bool = False) -> Mesh:
    """Parse a model file's bytes (already read and hashed by the caller).

    Args:
        data: the whole file.
        name: file name or path; only its extension (format) and messages use it.
        limits: caps on file size, triangles and decompressed bytes.
        colors: also read the model's own colours (``Mesh.face_colors``) where the format has them.

    Returns:
        The triangles in millimetres with every transform applied.

    Raises:
        BadModelError: not a valid model (or a subclass: NoGeometryError, LimitExceededError).
    """
    fmt = detect_format(name)
    if len(data) > limits.max_file_bytes:
        raise LimitExceededError(f"file is {len(data)} bytes, more than the limit of {limits.max_file_bytes} bytes")
    try:
        if fmt == "stl":
            from sidecar_thumbs.mesh.stl import load_stl_bytes

            triangles, kind = load_stl_bytes(data, limits)
        else:
            from sidecar_thumbs.mesh.threemf import load_3mf_mesh

            return load_3mf_mesh(data, limits, colors)
    except MemoryError:
        # An absurd but in-limit model: report it as a cap, not as a crash of the worker.
        raise LimitExceededError("model too large to load into memory") from None
    return Mesh(triangles=triangles, format=kind)


def load_mesh(path: str | os.PathLike[str], limits: LoadLimits = DEFAULT_LIMITS) -> Mesh:
    """Read a model file and parse it with :func:`load_mesh_bytes`.

    Raises:
        BadModelError: as :func:`load_mesh_bytes`, also for a file above ``limits.max_file_bytes``.
        TransientModelError: the file could not be read (vanished, busy, permissions).
    """
    name = os.fspath(path)
    detect_format(name)
    try:
        with open(name, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > limits.max_file_bytes:
                raise LimitExceededError(f"file is {size} bytes, more than the limit of {limits.max_file_bytes} bytes")
            data = f.read()
    except OSError as exc:
        raise TransientModelError(f"cannot read {name}: {exc.strerror or exc}") from exc
    return load_mesh_bytes(data, name, limits)


def warm_up() -> None:
    """Compile (or load from the on-disk cache) the numba 3MF scanner on a tiny input.

    Workers call this once at start so the first real file does not pay the JIT cost.
    """
    from sidecar_thumbs.mesh.xmlscan import warm_up as _warm

    _warm()
