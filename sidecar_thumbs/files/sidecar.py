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
import logging
import os
import struct
import urllib.parse
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sidecar_thumbs import __version__
from sidecar_thumbs.errors import ModelError
from sidecar_thumbs.files.atomic import TEMP_PREFIX, atomic_write
from sidecar_thumbs.files.formats import mimetype_for_name
from sidecar_thumbs.files.safeio import open_regular, read_fd

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "SOFTWARE",
    "SidecarInfo",
    "encode_png",
    "is_appledouble_twin",
    "is_sidecar_name",
    "metadata_for",
    "model_name_for_sidecar",
    "move_our_sidecar",
    "read_sidecar",
    "sidecar_name_for",
    "sidecar_path_for",
    "write_sidecar",
]

SOFTWARE_NAME = "sidecar-thumbs"
SOFTWARE = f"{SOFTWARE_NAME} {__version__}"
SIDECAR_SUFFIX = ".thumbnail.png"

log = logging.getLogger(__name__)

KEY_HASH = "X-SidecarThumbs::Hash"
KEY_MTIME_NS = "X-SidecarThumbs::MTimeNs"
KEY_SOURCE = "X-SidecarThumbs::Source"
KEY_SETTINGS = "X-SidecarThumbs::Settings"
KEY_TRIANGLES = "X-SidecarThumbs::Triangles"

_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the fixed last chunk of every PNG
# Our largest sidecar (4096 px, incompressible) is under 70 MB; a bigger file is not ours, and
# reading it whole would only cost memory.
MAX_SIDECAR_BYTES = 128 << 20


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


def is_appledouble_twin(name: str) -> bool:
    """Whether a name is the AppleDouble file (``._`` + name) that an SMB client or a non-Mac volume keeps
    beside one of our sidecars or its temp file: ``._.x.stl.thumbnail.png``. Not ours, not foreign: litter
    that follows our file and is none of our business."""
    return name.startswith("._.") and (SIDECAR_SUFFIX in name or name[2:].startswith(TEMP_PREFIX))


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
    triangles: int | None = None


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
        # First: clean recognises our temp files by this chunk right after the header.
        "Software": SOFTWARE,
        "Thumb::URI": _uri_for(name),
        "Thumb::MTime": str(mtime_ns // 1_000_000_000),
        "Thumb::Size": str(size),
        "Thumb::Mimetype": mimetype_for_name(name),
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
    # Software first, right after IHDR: clean tells our temp files from a user's by it.
    # Here, not at the top: a no-op rescan only lists sidecar names, and the CLI's scan then never loads numpy.
    import numpy as np

    from sidecar_thumbs.files.pngwrite import encode_rgba_png

    text = sorted(metadata.items(), key=lambda kv: kv[0] != "Software")
    return encode_rgba_png(np.ascontiguousarray(rgba), text)


def int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Our tEXt chunks come before IDAT and add up to well under 1 KiB; a file whose header chunks go on
# for longer than this is not one of ours.
_MAX_HEADER_BYTES = 1 << 16


def read_sidecar(path: str | os.PathLike[str], *, decode: bool = True) -> SidecarInfo | None:
    """Read a sidecar's metadata and check that it is a whole PNG. None when there is no file.

    Args:
        path: The sidecar file.
        decode: Decode every pixel (and check every chunk's CRC) to call it ``readable``. Without it,
            only the header chunks before the image data are read and checked, and the file must end
            with IEND: that catches truncated and overwritten files in microseconds, not a bit flip
            inside the compressed pixels (a 256 px PNG costs ~1 ms to decode: half a minute for
            34,000 models, too slow for the gallery).

    Never raises for a bad file: a corrupt or foreign file comes back with ``readable``/``ours`` False.
    """
    p = Path(path)
    foreign = SidecarInfo(p, False, False, None, None, None, None, None)
    try:
        # Never a link (we only ever write regular files, so a link there is not ours), never a
        # FIFO or device (it would block or never end): see safeio.
        fd, st = open_regular(p, follow=False)
        try:
            if decode:
                head = read_fd(fd, min(st.st_size, MAX_SIDECAR_BYTES))
                tail = head[-len(_IEND) :]
            else:
                head = read_fd(fd, min(st.st_size, _MAX_HEADER_BYTES))
                tail = os.pread(fd, len(_IEND), max(0, st.st_size - len(_IEND)))
        finally:
            os.close(fd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return None  # no file can exist under a name the file system refuses
        return foreign
    text = _decoded_text(head) if decode else _header_text(head)
    if text is None or tail != _IEND:
        # Pillow decodes a PNG cut inside its last chunk without complaint; a whole PNG ends with IEND.
        ours = b"tEXtSoftware\x00" + SOFTWARE_NAME.encode() in head
        return SidecarInfo(p, ours, False, None, None, None, None, None)
    width, height = _ihdr_size(head)
    return SidecarInfo(
        path=p,
        ours=text.get("Software", "").split(" ")[0] == SOFTWARE_NAME,
        readable=True,
        content_hash=text.get(KEY_HASH),
        size=int_or_none(text.get("Thumb::Size")),
        mtime_ns=int_or_none(text.get(KEY_MTIME_NS)),
        source=text.get(KEY_SOURCE),
        settings=text.get(KEY_SETTINGS),
        width=width,
        height=height,
        triangles=int_or_none(text.get(KEY_TRIANGLES)),
    )


def _decoded_text(data: bytes) -> dict[str, str] | None:
    """The tEXt chunks of a PNG that verifies and decodes whole; None when it does not."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            im.verify()  # every chunk's CRC
        with Image.open(io.BytesIO(data)) as im:
            text = dict(getattr(im, "text", {}) or {})
            im.load()  # decodes every pixel
    except Exception:  # Pillow raises many types for broken files; all mean "not readable"
        return None
    return text


def _header_text(head: bytes) -> dict[str, str] | None:
    """The tEXt chunks before the image data, each CRC-checked; None when they do not reach IDAT intact."""
    if not head.startswith(_PNG_SIGNATURE):
        return None
    text: dict[str, str] = {}
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(head):
        (length,) = struct.unpack_from(">I", head, pos)
        kind = head[pos + 4 : pos + 8]
        if kind == b"IDAT":
            return text
        body_end = pos + 8 + length
        if body_end + 4 > len(head):
            return None
        (crc,) = struct.unpack_from(">I", head, body_end)
        if zlib.crc32(head[pos + 4 : body_end]) != crc:
            return None
        if kind == b"tEXt":
            key, _, value = head[pos + 8 : body_end].partition(b"\x00")
            text[key.decode("latin-1")] = value.decode("latin-1")
        pos = body_end + 4
    return None


def _ihdr_size(head: bytes) -> tuple[int | None, int | None]:
    """Width and height from the IHDR chunk, which the PNG standard puts first."""
    if head[12:16] != b"IHDR" or len(head) < 24:
        return None, None
    width, height = struct.unpack_from(">II", head, 16)
    return width, height


def move_our_sidecar(src_model: str, dest_model: str, *, same_entry: bool = False) -> bool:
    """Rename the sidecar of ``src_model`` to that of ``dest_model`` (the model was moved or renamed).

    Only a sidecar of ours moves, and never onto another file. ``same_entry`` says that the two names are
    one entry on this volume (a rename by case or Unicode normalisation on a Mac volume): the new name
    then "exists" already, being the old one, and the rename only changes its spelling.

    Returns:
        True when the sidecar now sits under the new name.
    """
    old, new = sidecar_path_for(src_model), sidecar_path_for(dest_model)
    info = read_sidecar(old)
    if info is None or not info.ours:
        return False
    # Taken: by another file, unless it is this one under another spelling. Both names listed means two
    # entries after all (the volume is not as insensitive as we were told): never replace the other.
    if os.path.lexists(new) and (not same_entry or (old.name != new.name and new.name in os.listdir(new.parent))):
        return False
    try:
        os.rename(old, new)
    except OSError as exc:
        log.warning("could not move sidecar %s: %s", old, exc.strerror)
        return False
    return True


class SidecarWriteError(ModelError):
    """the sidecar could not be written"""


def write_sidecar(
    model: str | os.PathLike[str], png: bytes, *, durable: bool = True, full: bool = False, sync_folder: bool = True
) -> Path:
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
    # Only whose it is matters here, which the header says: decoding the old picture's pixels (Pillow, ~1 ms)
    # halved the coordinator's rate when re-rendering (bench/coordinator.py: 1.5 against 0.8 ms of CPU a file).
    existing = read_sidecar(target, decode=False)
    if existing is not None and not existing.ours:
        raise SidecarWriteError(f"{target.name} exists and was not written by sidecar-thumbs; left alone")
    try:
        atomic_write(target, png, durable=durable, full=full, sync_folder=sync_folder)
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
