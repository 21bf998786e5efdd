"""Scan a 3MF model part as it is inflated, chunk by chunk, keeping only what is not mesh content.

The numba kernel's :func:`~sidecar_thumbs.mesh.xmlscan_numba.scan_step` is resumable: each chunk is
scanned from where the last one stopped, and a construct cut by the chunk boundary (a tag, a
number, a comment) is carried over and scanned again with the next chunk. Mesh contents (the
vertices and triangles, nearly all of a part) become arrays and are dropped as they go; everything
else is kept, so memory is bounded by the mesh arrays plus the rest of the markup (which is capped),
never by the XML text. The result is the same :class:`MeshScan` as the whole-buffer scan of the
*kept* text: mesh contents are empty ranges, cuts (resource contents) point into the kept text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from sidecar_thumbs.errors import BadModelError, LimitExceededError
from sidecar_thumbs.mesh.paintvalues import PaintValues
from sidecar_thumbs.mesh.scancodes import OK, scan_error
from sidecar_thumbs.mesh.triprops import TriangleProps
from sidecar_thumbs.mesh.xmlscan import MeshScan

__all__ = ["MAX_KEPT_BYTES", "scan_meshes_stream"]

# Markup outside meshes (structure, metadata, colour groups) is small in real files; a part padded
# with megabytes of it is refused rather than held.
MAX_KEPT_BYTES = 64 << 20
# A single construct (comment, attribute value) longer than this is refused: the carry-over buffer
# that holds it must stay small.
MAX_CARRY_BYTES = 16 << 20
_HEAD = 4096
# The arrays are first sized for the part's inflated size (from the ZIP header), at most this much:
# beyond it they grow as the scan finds more.
MAX_SIZE_HINT = 64 << 20


class _Stream:
    def __init__(self, kernel, max_triangles: int, part: str, want_props: bool, max_kept: int, size_hint: int) -> None:  # type: ignore[no-untyped-def]
        self.k = kernel
        self.max_triangles = max_triangles
        self.part = part
        self.want_props = want_props
        self.max_kept = max_kept
        self.arrays = kernel.new_state(min(max(size_hint, 0), MAX_SIZE_HINT), want_props)
        self.kept: list[bytes] = []
        self.kept_len = 0
        self.emitted = 0  # absolute offset up to which bytes were kept or dropped
        self.next_mesh = 0  # the first mesh whose content has not been passed yet
        self.lines = 0  # newlines before the current window, for messages (unless recounted on error)
        self.restart: Callable[[], Iterable[bytes]] | None = None
        self.npaint = 0
        self.paint = PaintValues()

    def step(self, window: bytes, base: int, final: bool) -> int:
        """Scan ``window`` (absolute offset ``base``); returns where the next window starts."""
        st, verts, tris, props, paints, spans, cuts = self.arrays
        start = int(st[self.k.ST_RESUME]) - base  # where scanning starts in the window
        buf = np.frombuffer(window, np.uint8)
        status, s, e, verts, tris, props, paints, spans, cuts = self.k.reserve_and_scan(
            buf, base, final, self.max_triangles, self.want_props, st, verts, tris, props, paints, spans, cuts
        )
        self.arrays = (st, verts, tris, props, paints, spans, cuts)
        if status != OK and status != self.k.NEED_MORE:
            self._raise(status, s - base, e - base, window, start, base)
        end = base + len(window) if final else int(st[self.k.ST_RESUME])
        self._keep(window, base, end)
        npaint = int(st[self.k.ST_NPAINT])
        if npaint > self.npaint:  # paint values live in dropped text: copy them now
            rows = paints[self.npaint : npaint]
            self.paint.add(window, rows[:, 0], rows[:, 1:] - base)
        self.npaint = npaint
        if self.restart is None:
            self.lines += window.count(b"\n", start, end - base)
        return end

    def _keep(self, window: bytes, base: int, end: int) -> None:
        st, spans = self.arrays[0], self.arrays[5]
        nm = int(st[self.k.ST_NM])
        open_last = bool(st[self.k.ST_IN_MESH])
        pos = self.emitted
        while pos < end:
            k = self.next_mesh
            if k >= nm:
                self._add(window[pos - base : end - base])
                break
            start = int(spans[k, 0])
            if pos < start:
                stop = min(start, end)
                self._add(window[pos - base : stop - base])
                pos = stop
                continue
            closed = k < nm - 1 or not open_last
            if closed and int(spans[k, 1]) <= end:
                pos = max(pos, int(spans[k, 1]))
                self.next_mesh += 1
            else:
                pos = end
        self.emitted = end

    def _add(self, piece: bytes) -> None:
        if piece:
            self.kept.append(piece)
            self.kept_len += len(piece)
            if self.kept_len > self.max_kept:
                raise LimitExceededError(
                    f"3MF part {self.part} has more than {self.max_kept} bytes of markup outside its meshes"
                )

    def _raise(self, status: int, s: int, e: int, window: bytes, start: int, base: int) -> None:
        if self.restart is None:
            line = self.lines + window.count(b"\n", start, max(s, start)) + 1
        else:  # counting every chunk's newlines costs ~10% of a scan: read the part again instead
            line = _line_at(self.restart(), base + max(s, start))
        raise scan_error(status, window, s, e, f"{self.part} line {line}", self.max_triangles)

    def result(self) -> tuple[MeshScan, bytes]:
        st, verts, tris, props, paints, spans, cuts = self.arrays
        _, _, _, verts, tris, spans, cuts, props, _ = self.k.finish(
            st, self.want_props, verts, tris, props, paints, spans, cuts
        )
        # Offsets into the kept text: each is moved back by the mesh content dropped before it.
        lengths = np.cumsum(spans[:, 1] - spans[:, 0])
        ends = spans[:, 1]

        def moved(x: np.ndarray) -> np.ndarray:
            idx = np.searchsorted(ends, x, "right")
            return x - np.where(idx > 0, lengths[np.maximum(idx - 1, 0)], 0) if len(ends) else x

        spans = spans.copy()
        spans[:, 0] = moved(spans[:, 0])
        spans[:, 1] = spans[:, 0]
        cuts = moved(cuts.reshape(-1)).reshape(-1, 2) if len(cuts) else cuts
        found = TriangleProps(props, self.paint.result()) if self.want_props else None
        kept = b"".join(self.kept)
        self.kept = []
        return MeshScan(vertices=verts, triangles=tris, spans=spans, skippable=cuts, props=found), kept


def _line_at(chunks: Iterable[bytes], offset: int) -> int:
    line, at = 1, 0
    for chunk in chunks:
        if at + len(chunk) >= offset:
            return line + chunk.count(b"\n", 0, offset - at)
        line += chunk.count(b"\n")
        at += len(chunk)
    return line


def scan_meshes_stream(
    chunks: Iterable[bytes],
    max_triangles: int,
    part: str = "model part",
    want_props: bool = False,
    max_kept: int = MAX_KEPT_BYTES,
    restart: Callable[[], Iterable[bytes]] | None = None,
    size_hint: int = 4 << 20,
) -> tuple[MeshScan, bytes]:
    """Scan a model part from its inflated chunks (numba kernel only).

    Returns:
        ``(scan, kept)``: ``kept`` is the part with every mesh's content removed, and the scan's
        offsets point into it, so ``scan.skeleton(kept)`` is the whole-buffer scan's skeleton.

    Raises:
        BadModelError: as :func:`~sidecar_thumbs.mesh.xmlscan.scan_meshes`, and a construct longer
            than 16 MiB.
        LimitExceededError: too many triangles, or more than ``max_kept`` bytes outside meshes.

    ``restart``, when given, yields the part's chunks again: the line number of an error is then
    counted by reading the part again, instead of counting every chunk's newlines as it goes.
    ``size_hint`` (the part's inflated size, if known) sizes the arrays up front, so that they
    need not grow by copying as the scan goes.
    """
    from sidecar_thumbs.mesh import xmlscan_numba

    stream = _Stream(xmlscan_numba, max_triangles, part, want_props, max_kept, size_hint)
    stream.restart = restart
    carry = b""
    base = 0
    for chunk in chunks:
        if carry and len(chunk) > _HEAD:
            # The construct cut by the last boundary is finished with a copy of the chunk's head
            # only; the rest of the chunk is then scanned in place, without a copy.
            chunk_base = base + len(carry)
            end = stream.step(carry + chunk[:_HEAD], base, final=False)
            if end >= chunk_base:
                carry, base = b"", end
                window, window_base = chunk, chunk_base
            else:
                window, window_base = carry + chunk, base
        else:
            window, window_base = (carry + chunk if carry else chunk), base
        end = stream.step(window, window_base, final=False)
        carry = window[end - window_base :]
        base = end
        if len(carry) > MAX_CARRY_BYTES:
            raise BadModelError(f"3MF part {part}: XML is not well-formed (a construct longer than 16 MiB)")
    stream.step(carry, base, final=True)
    return stream.result()
