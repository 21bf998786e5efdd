"""The picture of an archive (``Thing.zip`` → ``.Thing.zip.thumbnail.png``): the models inside.

What it shows, in order of preference:

1. Models: the largest one alone when it is the only one; otherwise the up-to-four largest, each
   drawn in its own cell (two side by side, three as two over one, four as 2x2). A model-site
   download is usually a kit of parts, and in the gallery a grid says "several parts" at a glance,
   where the largest part alone looks like a single-model file; at 256 px a 128 px cell still shows
   a part's shape. Each cell is the same picture a loose file of that model would get (our render,
   or a 3MF's slicer picture): ``thumbnail.make_thumbnail_from_bytes`` makes it at the cell's size,
   so every format and rule of loose files holds inside archives too.
   Archives inside archives are opened (to ``max_archive_depth``) when the outer level has fewer
   than four models.
2. No model, or none that could be read, but pictures (model sites ship ``images/``): the largest
   picture that decodes.
3. Neither: refused with what it holds.

A model inside that cannot be read is skipped for the next largest; if none can be read and there is
no picture, the archive fails with "needs the [step] extra" (or [7z]) when an extra would open more of
it (so it is tried again once the extra is installed), else with the largest model's reason.
"""

from __future__ import annotations

import io
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from sidecar_thumbs.errors import BadModelError, LimitExceededError, MissingExtraError, ModelError, NoGeometryError
from sidecar_thumbs.files.formats import format_for_name
from sidecar_thumbs.mesh import LoadLimits
from sidecar_thumbs.mesh.archive import (
    Archive,
    ArchiveBudgetError,
    Budget,
    Entry,
    EntryKind,
    open_archive,
    sibling_reader,
)
from sidecar_thumbs.types import ThumbSource

if TYPE_CHECKING:
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions

__all__ = ["MAX_CELLS", "archive_picture", "grid_layout"]

MAX_CELLS = 4
# Pictures larger than this are not decoded (Pillow's own bomb warning starts at ~89 Mpx).
MAX_IMAGE_PIXELS = 40_000_000


def grid_layout(n: int, size: int) -> list[tuple[int, int, int]]:
    """``(x, y, cell)`` of ``n`` (1..4) pictures in a ``size`` square: one fills it, more share 2x2 cells,
    centred (2: side by side; 3: two over one)."""
    if n <= 1:
        return [(0, 0, size)]
    cell = size // 2
    pad = (size - 2 * cell) // 2
    if n == 2:
        top = (size - cell) // 2
        return [(pad, top, cell), (pad + cell, top, cell)]
    cells = [(pad, pad, cell), (pad + cell, pad, cell)]
    if n == 3:
        return [*cells, ((size - cell) // 2, pad + cell, cell)]
    return [*cells, (pad, pad + cell, cell), (pad + cell, pad + cell, cell)]


def _candidates(
    archive: Archive, depth: int, budget: Budget, limits: LoadLimits, missing: list[MissingExtraError]
) -> list[tuple[Archive, Entry]]:
    """Models, largest first: the archive's own, then (if fewer than four) those of nested archives.
    A nested archive that needs a missing extra (a .7z without py7zr) is noted in ``missing``."""
    models = sorted((e for e in archive.entries if e.kind is EntryKind.MODEL), key=lambda e: -e.size)
    found: list[tuple[Archive, Entry]] = [(archive, e) for e in models]
    if len(found) >= MAX_CELLS or depth >= limits.max_archive_depth:
        return found
    for inner in sorted((e for e in archive.entries if e.kind is EntryKind.ARCHIVE), key=lambda e: -e.size):
        fmt = format_for_name(os.path.basename(inner.name))
        if len(found) >= MAX_CELLS or inner.encrypted or fmt is None:
            continue
        try:
            nested = open_archive(archive.read(inner), fmt.name, budget, limits)
        except LimitExceededError:
            raise  # a bomb inside refuses the whole file
        except MissingExtraError as exc:
            missing.append(exc)
            continue
        except BadModelError:
            continue  # a damaged inner archive costs itself only
        found.extend(_candidates(nested, depth + 1, budget, limits, missing))
    return found


def _image_picture(archive: Archive, options: ThumbnailOptions) -> np.ndarray | None:
    from PIL import Image

    from sidecar_thumbs.render.thumbnail import _fit_embedded

    for entry in sorted((e for e in archive.entries if e.kind is EntryKind.IMAGE), key=lambda e: -e.size):
        try:
            data = archive.read(entry)
            with Image.open(io.BytesIO(data)) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    continue
            rgba = _fit_embedded(data, options.render.size)
            if rgba is not None:  # None: a blank picture (one flat colour), never a thumbnail
                return rgba
        except ArchiveBudgetError:
            raise  # the archive-wide budget is spent: the whole file is refused
        except Exception:  # a damaged entry, or not a picture Pillow can decode: try the next one
            continue
    return None


def _refusal(archive: Archive, depth_cap: int) -> str:
    kinds = Counter(
        os.path.splitext(e.name)[1].lower() or "(no extension)"
        for e in archive.entries
        if not os.path.basename(e.name).startswith("._")
    )
    if not kinds:
        return "archive is empty: no model or picture to show"
    shown = ", ".join(f"{n} {ext}" for ext, n in kinds.most_common(4))
    if any(e.kind is EntryKind.ARCHIVE for e in archive.entries):
        shown += f"; archives inside archives are opened {depth_cap} levels deep"
    return f"archive holds no model or picture ({shown})"


@dataclass(frozen=True, eq=False)
class _Cell:
    rgba: np.ndarray
    source: ThumbSource
    triangles: int | None


def _model_cell(data: bytes, name: str, options: ThumbnailOptions, siblings: Callable[[str], bytes | None]) -> _Cell:
    """A model inside the archive, drawn exactly as the loose file would be (the same function makes
    both, so every format and rule of the loose files holds inside archives too)."""
    from PIL import Image

    from sidecar_thumbs.render.thumbnail import make_thumbnail_from_bytes

    # The hash of an inner file is never stored: skip computing it.
    thumb = make_thumbnail_from_bytes(data, name, len(data), 0, options, "-", resolve_sibling=siblings)
    with Image.open(io.BytesIO(thumb.png)) as im:
        rgba = np.asarray(im.convert("RGBA"))
    return _Cell(rgba, thumb.source, thumb.triangles)


def archive_picture(data: bytes, name: str, options: ThumbnailOptions) -> tuple[np.ndarray, ThumbSource, int | None]:
    """The picture of an archive's contents (see the module docstring): ``(rgba, source, triangles)``.

    Raises:
        BadModelError: unreadable archive, nothing to show, or no model inside could be read.
        LimitExceededError: a cap (entries, ratio, overlap, inflated bytes) was hit.
        MissingExtraError: ``.7z`` without the [7z] extra, or the only models need an extra.
    """
    limits = options.limits
    fmt = format_for_name(name)
    assert fmt is not None
    budget = Budget(limits.max_decompressed_bytes)
    archive = open_archive(data, fmt.name, budget, limits)
    errors: list[ModelError] = []
    missing: list[MissingExtraError] = []
    candidates = _candidates(archive, 1, budget, limits, missing)
    size = options.render.size
    cells: list[_Cell] = []
    for index, (owner, entry) in enumerate(candidates):
        if len(cells) >= MAX_CELLS:
            break
        # Cells are drawn at their final size (a 2x2 cell at half size), so lines stay crisp.
        n_after = min(MAX_CELLS, len(cells) + len(candidates) - index)
        cell_options = _with_size(options, grid_layout(n_after, size)[0][2])
        try:
            siblings = sibling_reader(owner, entry)  # an OBJ's .mtl, from its own folder of the archive
            cells.append(_model_cell(owner.read(entry), os.path.basename(entry.name), cell_options, siblings))
        except ArchiveBudgetError:
            raise  # the archive-wide budget is spent: the whole file is refused
        except ModelError as exc:  # this model only: try the next largest
            errors.append(exc)
    if cells:
        triangles = sum(c.triangles or 0 for c in cells) or None
        source = ThumbSource.RENDERED if any(c.source == ThumbSource.RENDERED for c in cells) else ThumbSource.EMBEDDED
        return _compose(cells, size), source, triangles
    # No model could be drawn: a picture the download ships is better than nothing (e.g. an OBJ
    # whose reader is missing, next to its render in images/).
    image = _image_picture(archive, options)
    if image is not None:
        return image, ThumbSource.EMBEDDED, None
    errors.extend(missing)  # nothing drawn: what an extra would have opened may be all there is
    # An extra that would open more of it wins: once installed, the archive is tried again.
    waiting = [e for e in errors if isinstance(e, MissingExtraError)]
    if waiting:
        raise waiting[0]
    if errors:
        first = errors[0]
        raise type(first)(f"no model in the archive could be read; the largest: {first.message}")
    raise NoGeometryError(_refusal(archive, limits.max_archive_depth))


def _with_size(options: ThumbnailOptions, size: int) -> ThumbnailOptions:
    return replace(options, render=replace(options.render, size=size))


def _compose(pictures: list[_Cell], size: int) -> np.ndarray:
    if len(pictures) == 1 and pictures[0].rgba.shape[0] == size:
        return pictures[0].rgba
    canvas = np.zeros((size, size, 4), dtype=np.uint8)
    for (x, y, cell), pic in zip(grid_layout(len(pictures), size), pictures, strict=False):
        img = pic.rgba
        if img.shape[0] != cell:
            from PIL import Image

            img = np.asarray(Image.fromarray(img).resize((cell, cell), Image.Resampling.LANCZOS))
        canvas[y : y + cell, x : x + cell] = img
    return canvas
