"""Which volume a root is on now, cheaply: enough to tell "the same volume as last time" from "another one".

How a volume compares names (:func:`~.pathcanon.probe_rules`) is asked by writing a hidden file into the root:
on an SMB share a round trip and a write into other people's library at every start. The answer belongs to
the volume, so it is kept per root with the volume's identity (:class:`RulesCache`, the state database) and
asked again only when the identity changes — another volume mounted at the same path, a folder put where
the volume was, or the same volume mounted anew under another device number (macOS numbers network mounts
as they come, so a remount usually costs one probe).

The identity: ``st_dev`` and ``st_ino`` of the root (one stat, which the probe needs anyway), the mount
point, and on Linux the file system type and mount source from ``/proc/self/mountinfo`` (a local file, no
round trip). Elsewhere the mount point is the nearest ancestor on another device, one stat per parent.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import asdict, dataclass
from typing import Protocol

__all__ = ["RulesCache", "VolumeIdentity", "volume_identity"]

_MOUNTINFO = "/proc/self/mountinfo"
_OCTAL_ESCAPE = re.compile(rb"\\([0-7]{3})")  # mountinfo writes space, tab, newline and backslash as \ooo


@dataclass(frozen=True, slots=True)
class VolumeIdentity:
    """What tells one mounted volume at a root from another (see the module's docstring).

    Attributes:
        device: ``st_dev`` of the root.
        inode: ``st_ino`` of the root: another volume at the same mount point has another folder here.
        mount_point: Where the volume holding the root is mounted.
        fs_type: The file system type (Linux; None where not read cheaply).
        source: What is mounted there (``//server/share``, ``/dev/sdb1``; Linux, else None).
    """

    device: int
    inode: int
    mount_point: str
    fs_type: str | None = None
    source: str | None = None

    def as_text(self) -> str:
        """A stable text form, compared as a whole (the database stores it as given)."""
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=True)


class RulesCache(Protocol):
    """Where the answers of earlier probes are kept (the state database; files/ does not know it).

    ``identity`` is :meth:`VolumeIdentity.as_text`; rules are ``(case_insensitive, norm_insensitive)``.
    """

    def cached_volume_rules(self, root: str, identity: str) -> tuple[bool, bool] | None:
        """The rules probed for ``root`` while it had this identity, or None."""
        ...

    def remember_volume_rules(self, root: str, identity: str, rules: tuple[bool, bool]) -> None:
        """Keep what a probe of ``root`` found (replacing what another identity had)."""
        ...


def volume_identity(root: str, st: os.stat_result | None = None) -> VolumeIdentity | None:
    """The identity of the volume holding ``root`` now (``st``: its stat, when the caller has it).

    Returns:
        The identity, or None when ``root`` cannot be stat'ed.
    """
    try:
        st = os.stat(root) if st is None else st
    except OSError:
        return None
    root = os.path.abspath(root)
    if sys.platform.startswith("linux"):
        found = _from_mountinfo(root, st.st_dev)
        if found is not None:
            mount_point, fs_type, source = found
            return VolumeIdentity(st.st_dev, st.st_ino, mount_point, fs_type, source)
    return VolumeIdentity(st.st_dev, st.st_ino, _mount_point_by_stat(root, st.st_dev))


def _mount_point_by_stat(root: str, device: int) -> str:
    """The highest ancestor of ``root`` on ``device`` (``os.path.ismount``'s rule, one stat per parent)."""
    here = root
    while True:
        parent = os.path.dirname(here)
        if parent == here:
            return here
        try:
            if os.stat(parent).st_dev != device:
                return here
        except OSError:
            return here
        here = parent


def _from_mountinfo(root: str, device: int) -> tuple[str, str, str] | None:
    """(mount point, type, source) of the innermost mount holding ``root`` on ``device``, from mountinfo."""
    try:
        with open(_MOUNTINFO, "rb") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    want = f"{os.major(device)}:{os.minor(device)}".encode()
    best: tuple[str, str, str] | None = None
    for line in lines:
        # ID PARENT MAJ:MIN ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - TYPE SOURCE SUPER_OPTIONS
        head, sep, tail = line.partition(b" - ")
        fields, rest = head.split(b" "), tail.split(b" ")
        if not sep or len(fields) < 5 or len(rest) < 2 or fields[2] != want:
            continue
        mount_point = _unescape(fields[4])
        inside = root == mount_point or root.startswith(mount_point.rstrip(os.sep) + os.sep)
        if inside and (best is None or len(mount_point) > len(best[0])):
            best = (mount_point, _unescape(rest[0]), _unescape(rest[1]))
    return best


def _unescape(raw: bytes) -> str:
    return os.fsdecode(_OCTAL_ESCAPE.sub(lambda m: bytes([int(m.group(1), 8)]), raw))
