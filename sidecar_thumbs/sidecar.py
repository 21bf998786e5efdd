"""The sidecar PNG: its name beside the model, its metadata, encoding and reading back.

A sidecar of ``Gear v2.stl`` is ``.Gear v2.stl.thumbnail.png`` in the same folder. Its tEXt chunks
follow the freedesktop Thumbnail Managing Standard (``Thumb::URI``, ``Thumb::MTime``, ``Thumb::Size``,
``Thumb::Mimetype``, ``Software``) so other tools can read them, plus our own keys: the model's xxh3
content hash, its exact mtime in ns, where the image came from, and the render settings. With them a
sidecar is checkable from the files alone, without the database.
"""

from __future__ import annotations

import errno
import io
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sidecar_thumbs import __version__
from sidecar_thumbs.atomic import atomic_write
from sidecar_thumbs.errors import ModelError
from sidecar_thumbs.formats import mimetype_for_name

__all__ = [
    "SOFTWARE",
    "SidecarInfo",
    "encode_png",
    "is_sidecar_name",
    "metadata_for",
    "model_name_for_sidecar",
    "read_sidecar",
    "sidecar_name_for",
    "sidecar_path_for",
    "write_sidecar",
]

SOFTWARE_NAME = "sidecar-thumbs"
SOFTWARE = f"{SOFTWARE_NAME} {__version__}"
SIDECAR_SUFFIX = ".thumbnail.png"

KEY_HASH = "X-SidecarThumbs::Hash"
KEY_MTIME_NS = "X-SidecarThumbs::MTimeNs"
KEY_SOURCE = "X-SidecarThumbs::Source"
KEY_SETTINGS = "X-SidecarThumbs::Settings"
KEY_TRIANGLES = "X-SidecarThumbs::Triangles"

_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the fixed last chunk of every PNG

# zlib level, measured on 256 px thumbnails (bench/render.py): level 1 2.2 ms / 34.0 KB, level 3
# 3.1 ms / 32.2 KB, level 6 7.7 ms / 31.5 KB. Level 6 would cost half the time of a 10k-triangle render
# for 2% smaller files; level 3 keeps nearly all of the size gain.
PNG_COMPRESS_LEVEL = 3


def sidecar_name_for(model_name: str) -> str:
    """``Gear v2.stl`` → ``.Gear v2.stl.thumbnail.png`` (a bare name; plain strings for hot paths)."""
    return f".{model_name}{SIDECAR_SUFFIX}"


def sidecar_path_for(model: str | os.PathLike[str]) -> Path:
    """``dir/Gear v2.stl`` → ``dir/.Gear v2.stl.thumbnail.png``. Always in the model's own folder."""
    p = Path(model)
    return p.with_name(sidecar_name_for(p.name))


def is_sidecar_name(name: str) -> bool:
    """Whether a file name has the shape of one of our sidecars (not proof that we wrote it)."""
    return name.startswith(".") and name.endswith(SIDECAR_SUFFIX) and len(name) > 1 + len(SIDECAR_SUFFIX)


def model_name_for_sidecar(name: str) -> str:
    """``.Gear v2.stl.thumbnail.png`` → ``Gear v2.stl``."""
    if not is_sidecar_name(name):
        raise ValueError(f"not a sidecar name: {name!r}")
    return name[1 : -len(SIDECAR_SUFFIX)]


@dataclass(frozen=True)
class SidecarInfo:
    """What a sidecar on disk says about itself."""

    path: Path
    ours: bool  # carries our Software key: only such files are ever replaced or removed
    readable: bool  # a PNG that decodes
    content_hash: str | None
    size: int | None  # model size in bytes when rendered
    mtime_ns: int | None  # model mtime when rendered
    source: str | None  # "rendered" or "embedded"
    settings: str | None
    width: int | None = None
    height: int | None = None

    def is_fresh_for(self, size: int, mtime_ns: int, content_hash: str | None = None) -> bool:
        """Fresh when it was made from this content: same hash, or same size and mtime when the
        hash is not known (the cheap check the freedesktop spec uses)."""
        if not (self.ours and self.readable):
            return False
        if content_hash is not None and self.content_hash is not None:
            return content_hash == self.content_hash
        return self.size == size and self.mtime_ns == mtime_ns


def _uri_for(model_name: str) -> str:
    # The spec's shared-repository form: relative to the thumbnail's folder. Percent-encoding keeps
    # the value ASCII, which tEXt (Latin-1 only) needs for names with emoji or invalid UTF-8.
    raw = os.fsencode(model_name)
    return "./" + urllib.parse.quote_from_bytes(raw, safe="")


def metadata_for(
    model: str | os.PathLike[str],
    *,
    size: int,
    mtime_ns: int,
    content_hash: str,
    source: str,
    settings: str,
    triangles: int | None = None,
) -> dict[str, str]:
    """The tEXt chunks for a sidecar of ``model``."""
    name = Path(model).name
    meta = {
        "Thumb::URI": _uri_for(name),
        "Thumb::MTime": str(mtime_ns // 1_000_000_000),
        "Thumb::Size": str(size),
        "Thumb::Mimetype": mimetype_for_name(name),
        "Software": SOFTWARE,
        KEY_HASH: content_hash,
        KEY_MTIME_NS: str(mtime_ns),
        KEY_SOURCE: source,
        KEY_SETTINGS: settings,
    }
    if triangles is not None:
        meta[KEY_TRIANGLES] = str(triangles)
    return meta


def encode_png(rgba: np.ndarray, metadata: dict[str, str]) -> bytes:
    """RGBA uint8 (H, W, 4) → PNG bytes with ``metadata`` as tEXt chunks."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in metadata.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba), "RGBA").save(
        buf, "PNG", pnginfo=info, compress_level=PNG_COMPRESS_LEVEL
    )
    return buf.getvalue()


def int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def read_sidecar(path: str | os.PathLike[str]) -> SidecarInfo | None:
    """Read a sidecar's metadata and check that the image decodes. None when there is no file.

    Never raises for a bad file: a corrupt or foreign file comes back with ``readable``/``ours`` False.
    """
    from PIL import Image

    p = Path(path)
    foreign = SidecarInfo(p, False, False, None, None, None, None, None)
    try:
        if p.is_symlink():
            return foreign  # we only ever write regular files, so a link there is not ours
        if not p.exists():
            return None
        if not p.is_file():
            return foreign
        data = p.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return None  # no file can exist under a name the file system refuses
        return foreign
    try:
        if not data.endswith(_IEND):
            # Pillow decodes a PNG cut inside its last chunk without complaint; a whole PNG ends here.
            raise ValueError("truncated PNG")
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # every chunk's CRC
        with Image.open(io.BytesIO(data)) as im:
            text = dict(getattr(im, "text", {}) or {})
            width, height = im.size
            im.load()  # decodes every pixel
    except Exception:  # Pillow raises many types for broken files; all mean "not readable"
        ours = b"tEXtSoftware\x00" + SOFTWARE_NAME.encode() in data
        return SidecarInfo(p, ours, False, None, None, None, None, None)
    software = text.get("Software", "")
    return SidecarInfo(
        path=p,
        ours=software.split(" ")[0] == SOFTWARE_NAME,
        readable=True,
        content_hash=text.get(KEY_HASH),
        size=int_or_none(text.get("Thumb::Size")),
        mtime_ns=int_or_none(text.get(KEY_MTIME_NS)),
        source=text.get(KEY_SOURCE),
        settings=text.get(KEY_SETTINGS),
        width=width,
        height=height,
    )


class SidecarWriteError(ModelError):
    """the sidecar could not be written"""


def write_sidecar(model: str | os.PathLike[str], png: bytes, *, durable: bool = True) -> Path:
    """Write ``png`` as the sidecar of ``model``, atomically. Returns the sidecar's path.

    Never replaces a file that we did not write: a foreign file under the sidecar's name (or a
    symlink there) is left alone and reported.

    Raises:
        SidecarWriteError: the folder is read-only, the disk is full, or a foreign file is in the way.
            ``transient`` is set where trying later may help (disk full, I/O error).
    """
    target = sidecar_path_for(model)
    name_max = _name_max(target.parent)
    if len(os.fsencode(target.name)) > name_max:
        # ".<name>.thumbnail.png" adds 15 bytes: a model name near the limit cannot have a sidecar.
        raise SidecarWriteError(
            f"file name too long for a sidecar: {target.name[:40]!r}... would be "
            f"{len(os.fsencode(target.name))} bytes, the file system allows {name_max}"
        )
    existing = read_sidecar(target)
    if existing is not None and not existing.ours:
        raise SidecarWriteError(f"{target.name} exists and was not written by sidecar-thumbs; left alone")
    try:
        atomic_write(target, png, durable=durable)
    except PermissionError:
        raise SidecarWriteError("cannot write the sidecar: permission denied (read-only folder?)") from None
    except FileNotFoundError:
        err = SidecarWriteError("cannot write the sidecar: the model's folder vanished")
        err.transient = True
        raise err from None
    except OSError as exc:
        err = SidecarWriteError(f"cannot write the sidecar: {exc.strerror or exc}")
        # A read-only file system stays read-only: retrying in a loop would only fill the log.
        # Disk full or an I/O error may pass: retried after a back-off.
        err.transient = exc.errno not in _PERMANENT_ERRNOS
        if exc.errno == errno.EROFS:
            err = SidecarWriteError("cannot write the sidecar: read-only file system")
        raise err from None
    return target


# Write errors that do not go away by waiting (issue #6: recorded, not retried in a loop).
_PERMANENT_ERRNOS = frozenset({errno.EROFS, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG})


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255
