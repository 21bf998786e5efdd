"""One model file in, one thumbnail PNG out. Pure: reads the model, writes nothing.

This is the whole job a worker does (``jobs.render_job`` wraps it); ``sidecar-thumbs render`` calls it
directly. The file is read once; the bytes are hashed and then parsed, so the PNG provably shows the
content whose hash it records.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from sidecar_thumbs.errors import (
    BadModelError,
    EmptyBuildError,
    LimitExceededError,
    NoGeometryError,
    TransientModelError,
)
from sidecar_thumbs.files.fingerprint import hash_bytes
from sidecar_thumbs.files.formats import is_archive_name, settings_for
from sidecar_thumbs.files.safeio import LinkOutsideRootsError, NotRegularFileError, open_regular, read_fd
from sidecar_thumbs.files.sidecar import encode_png, metadata_for
from sidecar_thumbs.mesh import DEFAULT_LIMITS, LoadLimits
from sidecar_thumbs.mesh.siblings import SiblingReader, sibling_reader
from sidecar_thumbs.mesh.slicer_picture import is_blank
from sidecar_thumbs.render import RenderOptions
from sidecar_thumbs.types import ThumbSource

__all__ = ["Thumbnail", "ThumbnailOptions", "make_thumbnail", "read_model_bytes"]

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
    # A G-code's own picture shows the print; its toolpath is the stand-in when it has none. False draws
    # the toolpath whenever there is one (tests, and a gallery that wants every G-code drawn alike).
    gcode_picture: bool = True

    def describe(self) -> str:
        """The settings string stored in the PNG; ``verify`` calls a sidecar made with other settings
        stale. The kernel is left out on purpose: numba and numpy draw the same picture."""
        r, g, b = self.render.color
        colour = f"#{r:02x}{g:02x}{b:02x}"
        return (
            f"look={LOOK_VERSION} size={self.render.size} color={colour} embedded={int(self.use_embedded)} "
            f"colors={int(self.model_colors)} gcode={int(self.gcode_picture)}"
        )


@dataclass(frozen=True)
class Thumbnail:
    """A finished thumbnail and the facts of the content it was made from."""

    png: bytes
    source: ThumbSource
    content_hash: str
    size: int
    mtime_ns: int
    triangles: int | None
    load_ms: float
    render_ms: float


def read_model_bytes(
    path: str | os.PathLike[str], limits: LoadLimits = DEFAULT_LIMITS, *, roots: Sequence[str] | None = None
) -> tuple[bytes, int, int]:
    """Read a whole model file; returns (data, size, mtime_ns) of the content actually read.

    Only a regular file is opened, never blocking, and at most its size is read
    (:func:`~sidecar_thumbs.files.safeio.open_regular`): a FIFO or a link to ``/dev/zero`` fails at once.

    Args:
        path: the model.
        limits: the size cap is checked before reading.
        roots: when given, a symlink is followed only into these.

    Raises:
        TransientModelError: the file vanished, is busy or changed while being read (try later).
        LimitExceededError: the file is larger than the cap (checked before reading); carries
            ``size`` and ``mtime_ns`` so the failure can be recorded without reading the file.
        BadModelError: not a regular file, or a symlink out of the roots.
    """
    try:
        fd, before = open_regular(path, roots=roots)
    except (NotRegularFileError, LinkOutsideRootsError) as exc:
        raise BadModelError(exc.strerror) from None
    except FileNotFoundError:
        raise TransientModelError("file vanished before it could be read") from None
    except PermissionError:
        raise TransientModelError("permission denied reading the file") from None
    except OSError as exc:
        raise TransientModelError(f"cannot open: {exc.strerror or exc}") from None
    try:
        if before.st_size > limits.max_file_bytes:
            cap_mib = limits.max_file_bytes / 2**20
            err = LimitExceededError(f"file is {before.st_size / 2**20:.0f} MiB, over the {cap_mib:.0f} MiB cap")
            err.size, err.mtime_ns = before.st_size, before.st_mtime_ns  # type: ignore[attr-defined]
            raise err
        # One byte more than the size: a file still growing is noticed instead of cut short.
        data = read_fd(fd, before.st_size + 1)
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


def _fit_embedded(image_bytes: bytes, size: int) -> np.ndarray | None:
    """Scale a slicer's picture into size x size, keeping its aspect, padded transparent; None when
    the picture is blank (see :func:`~sidecar_thumbs.mesh.slicer_picture.is_blank`)."""
    from PIL import Image

    with Image.open(io.BytesIO(image_bytes)) as opened:
        im = opened.convert("RGBA")
        if is_blank(np.asarray(im)):
            return None
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


def _picture_fallback(data: bytes, name: str, fmt: str, options: ThumbnailOptions) -> np.ndarray | None:
    """When nothing in the file can be drawn: the slicer's picture fitted to the thumbnail, or None (no
    picture, or a blank one). A G-code that prints nothing (a picture-only file); a slice-only or
    beam-lattice 3MF when our render was asked for (with ``use_embedded`` its picture was tried first)."""
    picture: bytes | None = None
    if fmt in ("gcode", "bgcode"):
        from sidecar_thumbs.mesh.gcode import find_gcode_picture

        found_gcode = find_gcode_picture(data, binary=fmt == "bgcode")
        picture = None if found_gcode is None else found_gcode.data
    elif fmt == "3mf" and not options.use_embedded:
        from sidecar_thumbs.mesh.threemf import find_embedded_thumbnail

        found_3mf = find_embedded_thumbnail(data, options.limits)
        picture = None if found_3mf is None else found_3mf[1]
    if picture is None:
        return None
    try:
        return _fit_embedded(picture, options.render.size)  # None for a blank picture
    except Exception:  # an undecodable picture is no fallback
        return None


def make_thumbnail_from_bytes(
    data: bytes,
    name: str,
    size: int,
    mtime_ns: int,
    options: ThumbnailOptions,
    content_hash: str | None = None,
    resolve_sibling: SiblingReader | None = None,
) -> Thumbnail:
    """Build the thumbnail for a model whose bytes are already read (``name`` gives the format;
    ``content_hash`` is computed here unless the caller already has it; ``resolve_sibling`` reads
    files the model names beside it, such as an OBJ's ``.mtl``)."""
    from sidecar_thumbs.mesh.load import detect_format, load_mesh_bytes
    from sidecar_thumbs.render import render_mesh

    content_hash = content_hash or hash_bytes(data)
    t0 = time.perf_counter()
    triangles: int | None = None
    rgba: np.ndarray | None = None
    source = ThumbSource.RENDERED
    blank_picture = False
    fmt = detect_format(name)
    if options.use_embedded and fmt == "3mf":
        from sidecar_thumbs.mesh.threemf import check_3mf_bytes, find_embedded_thumbnail

        found = find_embedded_thumbnail(data, options.limits)
        if found is not None:
            # A sidecar only for a model that loads: an invalid package keeps no picture even if a
            # slicer put one in it (issue #6); this raises the loader's one-line reason, also for an
            # empty build (EmptyBuildError). A valid package with nothing we draw (a beam lattice)
            # still shows its own picture.
            try:
                triangles = check_3mf_bytes(data, options.limits)
            except EmptyBuildError:
                raise
            except NoGeometryError:
                triangles = None
            try:
                rgba = _fit_embedded(found[1], options.render.size)
            except Exception:  # an undecodable picture: fall back to rendering the mesh
                rgba = None
            else:
                # A blank picture (one flat colour, fully transparent) is never a thumbnail: render.
                blank_picture = rgba is None
                source = ThumbSource.RENDERED if blank_picture else ThumbSource.EMBEDDED
    elif options.gcode_picture and fmt in ("gcode", "bgcode"):
        from sidecar_thumbs.mesh.gcode import choose_gcode_picture

        # A G-code's own picture shows the print; its toolpath is the stand-in when it has none (or only
        # a blank one or a lone icon). Raises for a damaged file (cut off, failing checksum).
        picture = choose_gcode_picture(data, options.limits, binary=fmt == "bgcode")
        if picture is not None:
            rgba = _fit_embedded(picture.data, options.render.size)  # the finder already refused blank ones
            source = ThumbSource.EMBEDDED if rgba is not None else ThumbSource.RENDERED
    if rgba is None and is_archive_name(name):
        # An archive shows the models inside, each made by this same function (archive_picture.py).
        from sidecar_thumbs.render.archive_picture import archive_picture

        rgba, source, triangles = archive_picture(data, name, options)
    t1 = time.perf_counter()
    if rgba is None:
        try:
            mesh = load_mesh_bytes(data, name, options.limits, resolve_sibling, colors=options.model_colors)
        except NoGeometryError as exc:
            # Nothing we draw: the slicer's picture, if the file has one.
            rgba = _picture_fallback(data, name, fmt, options)
            if rgba is None:
                if blank_picture:
                    raise NoGeometryError(f"the slicer's picture is blank and {exc.message}") from None
                raise
            source = ThumbSource.EMBEDDED
        else:
            t1 = time.perf_counter()
            colors = mesh.colors_for(options.render.color) if options.model_colors else None
            rgba = render_mesh(mesh, options.render, colors)
            triangles = mesh.triangle_count  # after the render, which counts a raw STL's as it draws
    meta = metadata_for(
        name,
        size=size,
        mtime_ns=mtime_ns,
        content_hash=content_hash,
        source=source,
        settings=settings_for(name, options.describe()),
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
    name = os.path.basename(os.fspath(path))
    return make_thumbnail_from_bytes(data, name, size, mtime_ns, options, resolve_sibling=sibling_reader(path))
