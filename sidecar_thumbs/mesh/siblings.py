"""Reading a file beside a model (an OBJ's ``.mtl``): by bare name, in the model's folder, capped.

A model may name another file (``mtllib cube.mtl``). Such a name is data from the file, so it is
never a path: anything with a separator or ``..`` is refused, symlinks are not followed, only a
regular file is read, and at most :data:`MAX_SIBLING_BYTES` of it. A sibling that is missing or
refused is simply absent (the model still draws, without its colours).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable

__all__ = ["MAX_SIBLING_BYTES", "SiblingReader", "sibling_reader"]

MAX_SIBLING_BYTES = 4 * 1024 * 1024  # material libraries are a few kilobytes

SiblingReader = Callable[[str], "bytes | None"]


def sibling_reader(model_path: str | os.PathLike[str], cap: int = MAX_SIBLING_BYTES) -> SiblingReader:
    """A function ``name -> bytes | None`` reading ``name`` from the folder of ``model_path``."""
    folder = os.path.dirname(os.path.abspath(os.fspath(model_path)))

    def read(name: str) -> bytes | None:
        while name.startswith("./"):
            name = name[2:]
        if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
            return None
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        try:
            fd = os.open(os.path.join(folder, name), flags)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_size > cap:
                return None
            with os.fdopen(os.dup(fd), "rb", buffering=0) as f:
                data = f.read(cap + 1)
        except OSError:
            return None
        finally:
            os.close(fd)
        return data if len(data) <= cap else None

    return read
