"""The one table of file formats: extension → format name, MIME type, what kind of reader it needs.

Everything that decides "is this a model" (discovery, the watcher, the loaders' dispatch, the archive
reader choosing entries) and the sidecar's ``Thumb::Mimetype`` read this table, so a format is added
in one place. Pure data and string functions: no numpy, no loader imports (discovery uses it).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from types import ModuleType

__all__ = [
    "ALL_SUFFIXES",
    "ARCHIVE_FORMATS",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "FileFormat",
    "extra_available",
    "format_for_name",
    "is_archive_name",
    "mimetype_for_name",
    "parse_suffixes",
    "require_extra",
    "settings_for",
]


@dataclass(frozen=True)
class FileFormat:
    """One file format we make thumbnails for."""

    name: str  # short id used in code and bench rows: "stl", "3mf", "zip", ...
    suffixes: tuple[str, ...]  # lower case, with the dot; the longest match wins (".amf.xml")
    mimetype: str  # registered (IANA) type where one exists, else the common x- type
    extra: str = ""  # the pip extra the reader needs ("step", "7z"); "" when always available
    # Bump when only this reader's pictures change (it learnt colours, say): the settings string of its
    # sidecars then names the revision, so `verify` calls only this format's older sidecars stale and
    # `verify --fix` redraws them, not the whole library (a global change bumps the renderer's LOOK_VERSION).
    look: int = 0


# Order is the README's order. MIME types: model/stl, model/3mf, model/obj, model/step are IANA
# registrations; PLY, AMF, G-code, binary G-code and 7z have none, so the types the freedesktop
# shared-mime-info database uses (application/x-amf, text/x-gcode, application/x-7z-compressed) or the
# maker's own (application/x-bgcode, Prusa's libbgcode) are written.
FORMATS: tuple[FileFormat, ...] = (
    FileFormat("stl", (".stl",), "model/stl"),
    FileFormat("3mf", (".3mf",), "model/3mf"),
    FileFormat("obj", (".obj",), "model/obj"),
    FileFormat("ply", (".ply",), "model/x-ply"),
    FileFormat("amf", (".amf", ".amf.xml"), "application/x-amf"),
    # 1: STEP's XCAF colours are drawn.
    FileFormat("step", (".step", ".stp"), "model/step", extra="step", look=1),
    FileFormat("gcode", (".gcode",), "text/x-gcode"),
    FileFormat("bgcode", (".bgcode",), "application/x-bgcode"),
    # Archives draw one of their members, which may be a STEP file: they follow its revisions.
    FileFormat("zip", (".zip",), "application/zip", look=1),
    FileFormat("7z", (".7z",), "application/x-7z-compressed", extra="7z", look=1),
)

ARCHIVE_FORMATS = frozenset({"zip", "7z"})

# Longest first, so ".amf.xml" is tried before any shorter suffix could match.
_BY_SUFFIX: tuple[tuple[str, FileFormat], ...] = tuple(
    sorted(((s, f) for f in FORMATS for s in f.suffixes), key=lambda p: -len(p[0]))
)
ALL_SUFFIXES: tuple[str, ...] = tuple(s for f in FORMATS for s in f.suffixes)

# Pictures an archive may hold instead of a model (model sites ship images/).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp")


def format_for_name(name: str) -> FileFormat | None:
    """The format of a file name by its extension (any case), or None when it is not a model."""
    lower = name.lower()
    for suffix, fmt in _BY_SUFFIX:
        if lower.endswith(suffix):
            return fmt
    return None


def settings_for(name: str, settings: str) -> str:
    """The settings string a sidecar of the model ``name`` carries: the thumbnail settings, plus the
    reader's own look revision when its format has one (what the writer stores and freshness expects)."""
    fmt = format_for_name(name)
    return f"{settings} reader={fmt.look}" if fmt is not None and fmt.look else settings


def is_archive_name(name: str) -> bool:
    """Whether a file name is an archive we look into (``.zip``, ``.7z``, any case)."""
    fmt = format_for_name(name)
    return fmt is not None and fmt.name in ARCHIVE_FORMATS


def mimetype_for_name(name: str) -> str:
    """``Thumb::Mimetype`` for a model file name (``application/octet-stream`` when unknown)."""
    fmt = format_for_name(name)
    return fmt.mimetype if fmt is not None else "application/octet-stream"


def parse_suffixes(text: str) -> tuple[str, ...]:
    """A setting's extension list (``".stl .3mf, obj"``: spaces or commas, dots optional, any case) as
    lower-case suffixes with a dot.

    Raises:
        ValueError: an extension we have no reader for, or an empty list.
    """
    out: list[str] = []
    for word in text.replace(",", " ").split():
        suffix = "." + word.lower().lstrip(".")
        if suffix not in ALL_SUFFIXES:
            raise ValueError(f"unknown model extension {word!r} (known: {' '.join(ALL_SUFFIXES)})")
        if suffix not in out:
            out.append(suffix)
    if not out:
        raise ValueError("no model extensions given")
    return tuple(out)


# The module each optional extra installs (pyproject.toml's [project.optional-dependencies]).
EXTRA_MODULES = {"step": "cascadio", "7z": "py7zr"}


def extra_available(extra: str) -> bool:
    """Whether an optional extra's module can be imported here, without importing it (cheap: a scan
    asks this to re-queue files that were waiting for the extra)."""
    try:
        return importlib.util.find_spec(EXTRA_MODULES[extra]) is not None
    except (ValueError, ImportError):  # ValueError: sys.modules holds None (blocked import)
        return False


def require_extra(extra: str) -> ModuleType:
    """Import an optional extra's module.

    Raises:
        MissingExtraError: it is not installed (the file waits for it, it has not failed).
    """
    from sidecar_thumbs.errors import MissingExtraError

    try:
        return importlib.import_module(EXTRA_MODULES[extra])
    except ImportError:
        raise MissingExtraError(extra) from None
