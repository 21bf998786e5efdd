"""A real case-insensitive volume for tests: an exFAT image mounted with FUSE (exfat-fuse) on a loop device.

Linux's own file systems are case-sensitive, and a Mac is not at hand; exFAT folds case like a Mac volume
(it is normalisation-sensitive, unlike APFS). Mounting needs root, /dev/fuse, a free loop device and
Debian's ``exfat-fuse`` + ``exfatprogs`` (``.ci/run`` installs them); otherwise the tests skip, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cannot_mount_reason", "exfat_volume"]


def cannot_mount_reason() -> str | None:
    """Why an exFAT volume cannot be mounted here, or None when it can be tried."""
    if os.geteuid() != 0:
        return "mounting a loop device needs root"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    for tool in ("mkfs.exfat", "mount.exfat-fuse", "losetup"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (apt-get install exfat-fuse exfatprogs)"
    return None


def _run(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout.strip()


@contextmanager
def exfat_volume(tmp: Path, size_mb: int = 32, *, at: Path | None = None) -> Iterator[Path]:
    """Mount a fresh exFAT volume under ``tmp`` (or over the existing folder ``at``) and yield its mount
    point; unmounted afterwards.

    Raises:
        RuntimeError: with the tool's message when any step fails (the caller skips on it).
    """
    image, mnt = tmp / "exfat.img", at or tmp / "exfat"
    if at is None:
        mnt.mkdir()
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    loop = None
    try:
        _run("mkfs.exfat", str(image))
        loop = _run("losetup", "-f", "--show", str(image))
        _run("mount.exfat-fuse", loop, str(mnt))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        if loop:
            subprocess.run(["losetup", "-d", loop], check=False, capture_output=True)
        detail = getattr(exc, "stderr", None) or str(exc)
        raise RuntimeError(f"cannot mount an exFAT test volume: {detail.strip()}") from exc
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False, capture_output=True, timeout=30).returncode != 0:
            # Still busy (a test left a file open): detach it lazily rather than leak the mount.
            subprocess.run(["umount", "-l", str(mnt)], check=False, capture_output=True, timeout=30)
        subprocess.run(["losetup", "-d", loop], check=False, capture_output=True, timeout=30)
