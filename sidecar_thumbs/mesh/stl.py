"""STL loader, binary and ASCII, from bytes.

Binary or ASCII is decided by the size formula, never by a ``solid`` header alone (many binary
exporters start their 80-byte header with "solid"):

* **binary** iff ``len >= 84`` and ``84 + 50*n <= len < 84 + 50*n + 50``, where ``n`` is the
  little-endian count at byte 80. The exact match is the norm; a tail shorter than one record is
  tolerated because some exporters pad the file (numpy-stl's HalfDonut has 1 extra byte). A tail of
  a whole record or more means the count is not to be trusted, so the file is not read as binary.
  An ASCII file cannot pass this test by accident: bytes 80-83 would be printable text, giving
  ``n >= 0x09090909`` and so a required size above 7 GB.
* otherwise, a file whose first word is ``solid`` and that looks like text is parsed as **ASCII**
  (and ASCII parse errors are reported);
* otherwise, a binary-looking file whose count needs more bytes than it has is **truncated**.
"""

from __future__ import annotations

import re

import numpy as np

from sidecar_thumbs import numba_cache
from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits, Mesh
from sidecar_thumbs.mesh.soup import finish_triangles

__all__ = ["binary_stl_view", "is_binary_stl", "load_stl_bytes", "load_stl_mesh", "parse_ascii_stl", "parse_binary_stl"]

_HEADER = 84
_RECORD = 50


# One facet, after lower-casing. \s covers LF, CR and CRLF alike. The numbers are captured as
# tokens and converted by numpy, which rejects anything that is not a number.
_S = rb"\s+"
_NUM = rb"(\S+)"
_BATCH = 1 << 15  # facets converted at a time (parse_ascii_stl)
# A plain file (_plain_ascii): facets read a chunk at a time, and the most text around its runs of facets.
_CHUNK = 1 << 16
_MAX_GAP = 1 << 16
_FIRST_FACET = re.compile(rb"(?<!\S)facet(?!\S)", re.IGNORECASE)
# MeshLab and others write comments after endloop/endfacet on the same line (PrusaSlicer reads them);
# such words are tolerated as long as they are not a keyword that starts the next element.
_JUNK = rb"(?:[ \t]+(?!(?:end)?(?:facet|solid|loop)(?!\S))[^\s]+)"
_VERTEX = rb"vertex" + _S + _NUM + _S + _NUM + _S + _NUM + _S
_FACET = re.compile(
    rb"(?<!\S)facet" + _S + rb"normal" + _S + rb"\S+" + _S + rb"\S+" + _S + rb"\S+" + _S
    + rb"outer" + _S + rb"loop" + _S + _VERTEX + _VERTEX + _VERTEX
    + rb"endloop" + _JUNK + rb"*?" + _S + rb"endfacet(?!\S)" + _JUNK + rb"*"
)  # fmt: skip


def _count(data: bytes) -> int:
    return int.from_bytes(data[80:84], "little")


def is_binary_stl(data: bytes) -> bool:
    """True when the size formula says ``data`` is a binary STL (see the module docstring)."""
    if len(data) < _HEADER:
        return False
    expected = _HEADER + _RECORD * _count(data)
    return expected <= len(data) < expected + _RECORD


def parse_binary_stl(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Triangles of a binary STL (whose size already passed :func:`is_binary_stl`).

    Each 50-byte record is normal (12 bytes), three vertices (36), attribute (2). The normal is
    ignored: the renderer recomputes it from the winding, which is what slicers trust too.

    Raises:
        LimitExceededError: the header count is above ``limits.max_triangles`` (checked before
            allocating anything).
    """
    n = _count(data)
    if n > limits.max_triangles:
        raise LimitExceededError(f"binary STL has {n} triangles, more than the limit of {limits.max_triangles}")
    records = np.frombuffer(data, np.uint8, _RECORD * n, _HEADER).reshape(n, _RECORD)
    # One strided copy of the vertex bytes; the float32 view of it is the result (little-endian
    # on every platform numpy wheels exist for, but say so explicitly).
    raw = np.ascontiguousarray(records[:, 12:48])
    return raw.view("<f4").reshape(n, 3, 3).astype(np.float32, copy=False)


def binary_stl_view(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> np.ndarray:
    """The triangles of a binary STL as a read-only float32 ``(N, 3, 3)`` view of its records: no copy
    (each triangle's nine floats are contiguous, rows 50 bytes apart) and NaN and inf kept; only checked
    to hold at least one finite triangle.

    Raises:
        LimitExceededError: as :func:`parse_binary_stl`.
        NoGeometryError: no triangle, or none with finite coordinates.
    """
    n = _count(data)
    if n > limits.max_triangles:
        raise LimitExceededError(f"binary STL has {n} triangles, more than the limit of {limits.max_triangles}")
    if n == 0:
        raise NoGeometryError("no triangles")
    records = np.frombuffer(data, np.uint8, _RECORD * n, _HEADER).reshape(n, _RECORD)
    view = records[:, 12:48].view("<f4").reshape(n, 3, 3)
    # At least one finite triangle, as finish_triangles would leave: found in the first block of almost
    # every file (the whole view is read only when no triangle is finite).
    for start in range(0, n, 4096):
        if np.isfinite(view[start : start + 4096]).all(axis=(1, 2)).any():
            return view
    raise NoGeometryError("no triangles: every triangle has a non-finite coordinate")


def load_stl_mesh(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> Mesh:
    """:func:`load_stl_bytes` as a :class:`Mesh`; a binary STL's records are handed over raw
    (:func:`binary_stl_view`, ``Mesh.raw``), as the renderer skips non-finite triangles itself.

    Raises:
        The errors of :func:`load_stl_bytes`.
    """
    # STL's rule (as 3MF's): counter-clockwise seen from outside. A file that breaks it draws the same.
    if is_binary_stl(data):
        return Mesh(raw=binary_stl_view(data, limits), format="stl-binary", winding=1)
    triangles, kind = load_stl_bytes(data, limits)
    return Mesh(triangles=triangles, format=kind, winding=1)


def parse_ascii_stl(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Triangles of an ASCII STL: any keyword case, LF/CRLF/CR line ends, several solids.

    Raises:
        BadModelError: text outside ``solid``/``endsolid`` lines that is not a complete facet
            (wrong vertex count, truncated facet, junk), or a coordinate that is not a number.
        LimitExceededError: more than ``limits.max_triangles`` facets.
    """
    plain = _plain_ascii(data, limits)
    if plain is not None:
        return plain
    # ASCII lower-casing leaves bytes >= 0x80 alone, so non-UTF-8 solid names are harmless.
    text = data.lower()
    # Facets are converted a batch at a time: all of a file's number tokens at once cost 1.4 KB a facet
    # (a 110 MB, 500k-facet file took 690 MB over its own size). What is not a facet (the text between
    # them) is checked once at the end, as the text with every facet replaced by a space.
    batches: list[np.ndarray] = []
    gaps: list[bytes] = []
    batch: list[tuple[bytes, ...]] = []
    count, pos = 0, 0
    for m in _FACET.finditer(text):
        gaps.append(text[pos : m.start()])
        pos = m.end()
        count += 1
        if count <= limits.max_triangles:
            batch.append(m.groups())
            if len(batch) == _BATCH:
                batches.append(_coordinates(batch))
                batch = []
    gaps.append(text[pos:])
    if count > limits.max_triangles:
        raise LimitExceededError(f"ASCII STL has {count} facets, more than the limit of {limits.max_triangles}")
    _check_leftover(b" ".join(gaps))
    if batch:
        batches.append(_coordinates(batch))
    if not batches:
        return np.zeros((0, 3, 3), np.float32)
    return (batches[0] if len(batches) == 1 else np.concatenate(batches)).reshape(-1, 3, 3)


def _plain_ascii(data: bytes, limits: LoadLimits) -> np.ndarray | None:
    """The facets of a plain ASCII STL, or None for anything else (the facet expression then reads it).

    Plain: runs of facets of exactly 21 words (``facet normal a b c outer loop``, three ``vertex x y z``,
    ``endloop endfacet``), and before, between and after the runs only ``solid``/``endsolid`` lines (a
    file of several solids is several runs): what nearly every exporter writes. The numba kernel
    (:mod:`~sidecar_thumbs.mesh.stlscan_numba`) reads the facets in place, in any case, a chunk a call;
    the few coordinates it cannot convert exactly are converted by numpy as the expression's are. So the
    triangles are the same as the expression's, and a file it does not take (or any file, without numba)
    goes to the expression, errors included.
    """
    kernel = numba_cache.import_kernel("sidecar_thumbs.mesh.stlscan_numba")
    if kernel is None:
        return None
    buf = np.frombuffer(data, np.uint8)
    pieces: list[np.ndarray] = []
    count, pos = 0, 0
    while True:
        # The text up to the next run of facets (or the end) must be solid/endsolid lines: a few bytes
        # in a plain file. The expression checks the text between its facets the same way.
        found = _FIRST_FACET.search(data, pos)
        gap = data[pos : found.start() if found else len(data)]
        if len(gap) > _MAX_GAP:
            return None
        try:
            _check_leftover(gap.lower())
        except BadModelError:
            return None
        if found is None:
            break
        status, pos = kernel.FULL, found.start()
        while status == kernel.FULL:
            # One more facet than the limit allows, at most: reading it means the file is over the limit.
            out = np.empty((min(_CHUNK, limits.max_triangles - count + 1), 9), np.float32)
            slow = np.empty((9 * len(out), 3), np.int64)
            status, pos, k, nslow = kernel.scan_facets(buf, pos, out, slow)
            count += k
            if status == kernel.NOT_PLAIN or count > limits.max_triangles:
                return None
            if nslow:  # numbers near a float32 rounding boundary: converted as the expression converts them
                at = slow[:nslow]
                out.reshape(-1)[at[:, 0]] = _coordinates([tuple(data[s:e] for s, e in at[:, 1:].tolist())])
            pieces.append(out[:k])
    if not pieces:
        return None
    return (pieces[0] if len(pieces) == 1 else np.concatenate(pieces)).reshape(-1, 3, 3)


def warm_up() -> None:
    """Load (or compile, the first time on a machine: ~3 s of CPU) the plain ASCII kernel on a tiny file."""
    facet = b"facet normal 0 0 1 outer loop vertex 0 0 0 vertex 1 0 0 vertex 0 1 0 endloop endfacet\n"
    parse_ascii_stl(b"solid warm\n" + facet + b"endsolid warm\n")


def _coordinates(facets: list[tuple[bytes, ...]]) -> np.ndarray:
    """The number tokens of each facet (nine, or any) as float32, flat."""
    tokens = b" ".join(b" ".join(m) for m in facets).split()
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError as exc:
        bad = next(t for t in tokens if not _is_number(t))
        raise BadModelError(f"ASCII STL has a vertex coordinate that is not a number: {_show(bad)}") from exc
    # Parsing as float64 then rounding once to float32 gives the correctly rounded float32 for any
    # input that float64 represents exactly enough (all real-world STL text).
    # A coordinate beyond float32's range becomes inf here, and finish_triangles drops its
    # triangle: expected for hostile input, so no RuntimeWarning (fuzzer finding, issue #6).
    with np.errstate(over="ignore", invalid="ignore"):
        return values.astype(np.float32)


def _is_number(token: bytes) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True


def _check_leftover(rest: bytes) -> None:
    # Whatever is not a complete facet must be solid/endsolid lines (with any name) or blank: a facet
    # with 2 or 4 vertices, a truncated facet or stray text does not match _FACET and lands here.
    for line in rest.splitlines():
        word = line.strip()
        if word and not word.startswith((b"solid", b"endsolid")):
            raise BadModelError(f"ASCII STL is malformed near {_show(word)} (expected a complete facet)")


def _show(token: bytes, width: int = 40) -> str:
    text = " ".join(token.decode("utf-8", "replace").split())
    return repr(text if len(text) <= width else text[:width] + "...")


def _looks_like_text(head: bytes) -> bool:
    # Binary STL bytes nearly always include NUL (the count's high byte, float exponents of 0.0),
    # text never does; other control bytes are left to the ASCII parser to report.
    return b"\x00" not in head


def _starts_with_solid(data: bytes) -> bool:
    return data[:512].lstrip().lower().startswith(b"solid")


def load_stl_bytes(data: bytes, limits: LoadLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, str]:
    """Parse an STL file's bytes.

    Args:
        data: the whole file.
        limits: caps on triangles.

    Returns:
        ``(triangles, format)``: C-contiguous float32 ``(N, 3, 3)`` without non-finite triangles,
        and ``"stl-binary"`` or ``"stl-ascii"``.

    Raises:
        BadModelError: neither a binary nor an ASCII STL, truncated, or malformed.
        NoGeometryError: the file holds no (finite) triangles.
        LimitExceededError: more triangles than ``limits.max_triangles``.
    """
    if is_binary_stl(data):
        return finish_triangles(parse_binary_stl(data, limits)), "stl-binary"
    if not data.strip():
        raise NoGeometryError("empty file: no triangles")
    if _starts_with_solid(data) and _looks_like_text(data[:4096]):
        return finish_triangles(parse_ascii_stl(data, limits)), "stl-ascii"
    if len(data) >= _HEADER and not _looks_like_text(data[:4096]):
        n = _count(data)
        holds = (len(data) - _HEADER) // _RECORD
        if _HEADER + _RECORD * n > len(data):
            raise BadModelError(f"binary STL truncated: header says {n} triangles, file holds {holds}")
        raise BadModelError(f"binary STL size does not match: header says {n} triangles, file holds {holds} records")
    raise BadModelError("not an STL file: no 'solid' header and the size does not match a binary triangle count")
