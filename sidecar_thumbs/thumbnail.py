"""One model file in, one thumbnail PNG out. Pure: reads the model, writes nothing.

This is the whole job a worker does (``jobs.render_job`` wraps it); ``sidecar-thumbs render`` calls it
directly. The file is read once; the bytes are hashed and then parsed, so the PNG provably shows the
content whose hash it records.
"""

from __future__ import annotations

import io
import os
import stat
import time
from dataclasses import dataclass, field

import numpy as np

from sidecar_thumbs.errors import BadModelError, LimitExceededError, NoGeometryError, TransientModelError
from sidecar_thumbs.fingerprint import hash_bytes
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.sidecar import encode_png, metadata_for

__all__ = ["Thumbnail", "ThumbnailOptions", "make_thumbnail", "read_model_bytes"]

SOURCE_RENDERED = "rendered"
SOURCE_EMBEDDED = "embedded"
# Bump when the renderer's look changes, so existing sidecars count as made with other settings.
# 2: the model's own colours, and our render instead of a 3MF's slicer picture by default.
LOOK_VERSION = 2


@dataclass(frozen=True)
class ThumbnailOptions:
    """Everything that decides what a thumbnail looks like (and so belongs in its metadata)."""

    render: RenderOptions = field(default_factory=RenderOptions)
    # Our render, in the model's colours, by default: one camera and framing for the whole gallery. A
    # slicer's picture (dark grids, whole plates, captions, first filament only) stays available, and
    # is always the fallback when nothing in the file can be drawn.
    use_embedded: bool = False
    limits: LoadLimits = DEFAULT_LIMITS
    model_colors: bool = True

    def describe(self) -> str:
        """The settings string stored in the PNG; ``verify`` calls a sidecar made with other settings
        stale. The kernel is left out on purpose: numba and numpy draw the same picture."""
        r, g, b = self.render.color
        colour = f"#{r:02x}{g:02x}{b:02x}"
        return (
            f"look={LOOK_VERSION} size={self.render.size} color={colour} embedded={int(self.use_embedded)} "
            f"colors={int(self.model_colors)}"
        )


@dataclass(frozen=True)
class Thumbnail:
    """A finished thumbnail and the facts of the content it was made from."""

    png: bytes
    source: str  # "rendered" or "embedded"
    content_hash: str
    size: int
    mtime_ns: int
    triangles: int | None
    load_ms: float
    render_ms: float


def read_model_bytes(path: str | os.PathLike[str], limits: LoadLimits = DEFAULT_LIMITS) -> tuple[bytes, int, int]:
    """Read a whole model file; returns (data, size, mtime_ns) of the content actually read.

    Raises:
        TransientModelError: the file vanished, is busy or changed while being read (try later).
        LimitExceededError: the file is larger than the cap (checked before reading).
        BadModelError: not a regular file.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise TransientModelError("file vanished before it could be read") from None
    except PermissionError:
        raise TransientModelError("permission denied reading the file") from None
    except OSError as exc:
        raise TransientModelError(f"cannot open: {exc.strerror or exc}") from None
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise BadModelError("not a regular file")
        if before.st_size > limits.max_file_bytes:
            cap_mib = limits.max_file_bytes / 2**20
            raise LimitExceededError(f"file is {before.st_size / 2**20:.0f} MiB, over the {cap_mib:.0f} MiB cap")
        with os.fdopen(os.dup(fd), "rb", buffering=0) as fh:
            data = fh.read(limits.max_file_bytes + 1)
        after = os.fstat(fd)
    except OSError as exc:
        raise TransientModelError(f"read failed: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) != after.st_size or (before.st_size, before.st_mtime_ns) != (
        after.st_size,
        after.st_mtime_ns,
    ):
        # Still being written (a copy over SMB arrives in pieces): never thumbnail half a file.
        raise TransientModelError("file changed while it was being read")
    return data, after.st_size, after.st_mtime_ns


def _fit_embedded(image_bytes: bytes, size: int) -> np.ndarray:
    """Scale a slicer's picture into size x size, keeping its aspect, padded transparent."""
    from PIL import Image

    with Image.open(io.BytesIO(image_bytes)) as im:
        im = im.convert("RGBA")
        im.thumbnail((size, size), Image.Resampling.LANCZOS)
        if im.width < size and im.height < size:
            # Small slicer thumbnails (e.g. 128 px) are scaled up to the requested size.
            scale = size / max(im.width, im.height)
            im = im.resize(
                (max(1, round(im.width * scale)), max(1, round(im.height * scale))), Image.Resampling.LANCZOS
            )
        canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
        canvas.paste(im, ((size - im.width) // 2, (size - im.height) // 2))
        return np.asarray(canvas)


def _is_blank(rgba: np.ndarray) -> bool:
    """True for a picture with nothing in it: fully transparent, or one flat colour."""
    visible = rgba[..., 3] > 0
    if not visible.any():
        return True
    px = rgba[visible][:, :3].astype(np.int16)
    return bool((px.max(axis=0) - px.min(axis=0)).max() <= 2)


def _embedded_fallback(data: bytes, name: str, options: ThumbnailOptions) -> np.ndarray | None:
    """The slicer's picture of a 3MF fitted to the thumbnail, or None (no picture, or a blank one)."""
    if not name.lower().endswith(".3mf"):
        return None
    from sidecar_thumbs.mesh.threemf import find_embedded_thumbnail

    found = find_embedded_thumbnail(data, options.limits)
    if found is None:
        return None
    try:
        rgba = _fit_embedded(found[1], options.render.size)
    except Exception:  # an undecodable picture is no fallback
        return None
    return None if _is_blank(rgba) else rgba


def make_thumbnail_from_bytes(
    data: bytes,
    name: str,
    size: int,
    mtime_ns: int,
    options: ThumbnailOptions,
    content_hash: str | None = None,
) -> Thumbnail:
    """Build the thumbnail for a model whose bytes are already read (``name`` gives the format;
    ``content_hash`` is computed here unless the caller already has it)."""
    from sidecar_thumbs.mesh.load import load_mesh_bytes
    from sidecar_thumbs.render import render_triangles

    content_hash = content_hash or hash_bytes(data)
    t0 = time.perf_counter()
    triangles: int | None = None
    rgba: np.ndarray | None = None
    source = SOURCE_RENDERED
    if options.use_embedded and name.lower().endswith(".3mf"):
        from sidecar_thumbs.mesh.threemf import check_3mf_bytes, find_embedded_thumbnail

        found = find_embedded_thumbnail(data, options.limits)
        if found is not None:
            # A sidecar only for a model that loads: an invalid package keeps no picture even if a
            # slicer put one in it (issue #6); this raises the loader's one-line reason. A valid
            # package with nothing we draw (a beam lattice) still shows its own picture.
            try:
                triangles = check_3mf_bytes(data, options.limits)
            except NoGeometryError:
                triangles = None
            try:
                rgba = _fit_embedded(found[1], options.render.size)
                source = SOURCE_EMBEDDED
            except Exception:  # an undecodable picture: fall back to rendering the mesh
                rgba = None
            if rgba is not None and _is_blank(rgba):  # a blank slicer picture never becomes a thumbnail
                rgba, source = None, SOURCE_RENDERED
    t1 = time.perf_counter()
    if rgba is None:
        try:
            mesh = load_mesh_bytes(data, name, options.limits, colors=options.model_colors)
        except NoGeometryError:
            # Nothing we draw (a slice-only or beam-lattice 3MF): the slicer's picture, if it has one.
            fallback = _embedded_fallback(data, name, options) if not options.use_embedded else None
            if fallback is None:
                raise
            rgba, source = fallback, SOURCE_EMBEDDED
        else:
            triangles = mesh.triangle_count
            t1 = time.perf_counter()
            colors = mesh.colors_for(options.render.color) if options.model_colors else None
            rgba = render_triangles(mesh.triangles, options.render, colors)
    meta = metadata_for(
        name,
        size=size,
        mtime_ns=mtime_ns,
        content_hash=content_hash,
        source=source,
        settings=options.describe(),
        triangles=triangles,
    )
    png = encode_png(rgba, meta)
    t2 = time.perf_counter()
    return Thumbnail(png, source, content_hash, size, mtime_ns, triangles, (t1 - t0) * 1e3, (t2 - t1) * 1e3)


def make_thumbnail(path: str | os.PathLike[str], options: ThumbnailOptions | None = None) -> Thumbnail:
    """Read ``path`` and make its thumbnail. Raises a :class:`~sidecar_thumbs.errors.ModelError` for a
    file that cannot be thumbnailed (with ``transient`` telling whether to try again later)."""
    options = options or ThumbnailOptions()
    data, size, mtime_ns = read_model_bytes(path, options.limits)
    return make_thumbnail_from_bytes(data, os.path.basename(os.fspath(path)), size, mtime_ns, options)
