"""Reading a file beside a model (an OBJ's ``.mtl``): by bare name, in the model's folder, capped.

A model may name another file (``mtllib cube.mtl``). Such a name is data from the file, so it is
never a path: anything with a separator or ``..`` is refused; it is opened by
:func:`sidecar_thumbs.files.safeio.open_regular` (a regular file only, symlinks not followed, never
blocking) and read only if at most :data:`MAX_SIBLING_BYTES`. A sibling that is missing or
refused is simply absent (the model still draws, without its colours).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sidecar_thumbs.files.safeio import open_regular, read_fd

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
        try:
            fd, st = open_regular(os.path.join(folder, name), follow=False)
        except OSError:  # missing, a link, a FIFO or folder: no colours from it
            return None
        try:
            return None if st.st_size > cap else read_fd(fd, st.st_size)
        except OSError:
            return None
        finally:
            os.close(fd)

    return read
