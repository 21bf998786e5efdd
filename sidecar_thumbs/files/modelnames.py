"""Which file and folder names are models, and which are never walked or read.

What counts as a model is an extension of :mod:`sidecar_thumbs.files.formats` that the ``extensions``
setting lists, any case; what never is one is macOS and NAS litter, our own sidecars and temp files,
and office lock files. One answer per process, so the walker (:mod:`.discover`), the watcher and the
daemon's event intake, verify and the gallery agree.
"""

from __future__ import annotations

from collections.abc import Sequence

from sidecar_thumbs.files.formats import ALL_SUFFIXES, parse_suffixes

__all__ = [
    "IGNORED_DIRS",
    "MODEL_SUFFIXES",
    "is_ignored_dir",
    "is_ignored_name",
    "is_model_name",
    "model_suffixes",
    "set_model_extensions",
]

# Every extension we have a reader for; the default of the ``extensions`` setting.
MODEL_SUFFIXES: tuple[str, ...] = ALL_SUFFIXES
# What this process counts as a model: the CLI and the daemon set it once from the settings
# (set_model_extensions); library callers get every format. One value per process, so every place that
# asks "is this a model" (walk, watcher, event intake, verify, gallery) gives the same answer.
_active_suffixes: tuple[str, ...] = MODEL_SUFFIXES

# Sidecar naming is owned by sidecar.py: ``.<name>.thumbnail.png`` and, while being written,
# ``.sidecar-thumbs-<random>.tmp`` (atomic.py; ``.<name>.thumbnail.png.<random>.tmp`` before).
# Only the tell-tale parts are needed here.
_SIDECAR_SUFFIX = ".thumbnail.png"
_SIDECAR_LEN = len(_SIDECAR_SUFFIX)
_SIDECAR_TEMP_MARK = ".thumbnail.png."
_TEMP_PREFIX = ".sidecar-thumbs-"

# Folders that hold copies, metadata, snapshots or trash, never the library itself. Walking
# snapshot folders (.zfs, #snapshot, .snapshot) would thumbnail every model once per snapshot.
# Compared case-insensitively: macOS and SMB shares are usually case-insensitive.
IGNORED_DIRS: frozenset[str] = frozenset(
    {
        # macOS
        "__MACOSX",
        ".Trashes",
        ".Trash",
        ".TemporaryItems",
        "Temporary Items",
        ".Spotlight-V100",
        ".fseventsd",
        ".DocumentRevisions-V100",
        ".MobileBackups",
        ".PKInstallSandboxManager",
        "Network Trash Folder",
        # netatalk (AFP) metadata
        ".AppleDouble",
        ".AppleDB",
        ".AppleDesktop",
        # Synology
        "@eaDir",
        "#recycle",
        "#snapshot",
        # QNAP
        "@Recycle",
        "@Recently-Snapshot",
        ".@__thumb",
        # ZFS / NetApp snapshots
        ".zfs",
        ".snapshot",
        # Windows
        "$RECYCLE.BIN",
        "System Volume Information",
        # Linux
        "lost+found",
    }
)
_IGNORED_DIRS_FOLDED = frozenset(d.casefold() for d in IGNORED_DIRS)


def is_ignored_name(name: str) -> bool:
    """Tell whether a file name is litter that is never a model, whatever its extension.

    Args:
        name: A bare file name (no folder part).

    Returns:
        True for AppleDouble ``._*`` files, ``.DS_Store``, our sidecars (``.x.stl.thumbnail.png``)
        and their temp files (``.sidecar-thumbs-<random>.tmp``, formerly
        ``.x.stl.thumbnail.png.<random>.tmp``), and office-style lock files
        (``~$x``, ``.~lock.x#``).
    """
    if name.startswith(("._", "~$", ".~lock.")) or name == ".DS_Store":
        return True
    if name.startswith("."):
        if name.endswith(_SIDECAR_SUFFIX):
            return True
        if name.endswith(".tmp") and (_SIDECAR_TEMP_MARK in name or name.startswith(_TEMP_PREFIX)):
            return True
    return False


def set_model_extensions(extensions: str | Sequence[str]) -> tuple[str, ...]:
    """Set which extensions count as models in this process (the ``extensions`` setting).

    Args:
        extensions: ``".stl .3mf obj"`` (any case, dots optional) or a sequence of such words.

    Returns:
        The suffixes now in force.

    Raises:
        ValueError: an extension we have no reader for.
    """
    global _active_suffixes
    text = extensions if isinstance(extensions, str) else " ".join(extensions)
    _active_suffixes = parse_suffixes(text)
    return _active_suffixes


def model_suffixes() -> tuple[str, ...]:
    """The lower-case suffixes that count as models in this process."""
    return _active_suffixes


def is_model_name(name: str) -> bool:
    """Tell whether a file name is a model to thumbnail.

    Args:
        name: A bare file name (no folder part).

    Returns:
        True when it ends in one of :func:`model_suffixes` (any case: ``.STL``, ``.Amf.Xml``) and is
        not :func:`is_ignored_name`. ``.mtl``, images and text are never models.
    """
    return name.lower().endswith(_active_suffixes) and not is_ignored_name(name)


def is_ignored_dir(name: str) -> bool:
    """Tell whether a folder is never walked (see :data:`IGNORED_DIRS`; also ``.Trash-<uid>``).

    Args:
        name: A bare folder name.

    Returns:
        True when the folder and everything below it is skipped.
    """
    folded = name.casefold()
    return folded in _IGNORED_DIRS_FOLDED or folded.startswith(".trash-")
