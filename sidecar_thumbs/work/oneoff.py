"""Render a list of model files now, without the database (the ``render`` command).

Files are rendered one after another in the calling thread; each thumbnail is written by a writer thread
while the next file renders. Writing waits for the disk: each file's data is ordered before its rename
(:func:`~sidecar_thumbs.files.atomic.order_fsync`, an fsync on Linux: 0.3-0.6 ms on this machine's SSD,
more on a USB disk), and in a thread of its own that wait overlaps the next render instead of adding to
it. Outcomes come back in the order of the files; each folder written is fsynced once, at the end.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sidecar_thumbs.errors import ModelError

if TYPE_CHECKING:
    from sidecar_thumbs.render.thumbnail import Thumbnail, ThumbnailOptions

__all__ = ["Rendered", "render_files"]


@dataclass(frozen=True)
class Rendered:
    """What became of one model: written to ``dest`` (with its ``thumb``), or failed with ``error``."""

    model: Path
    dest: Path | None = None
    thumb: Thumbnail | None = None
    error: ModelError | None = None


def render_files(
    files: Sequence[Path], options: ThumbnailOptions, output: Path | None = None, *, to_dir: bool = False
) -> Iterator[Rendered]:
    """Render each of ``files`` and write its thumbnail: beside the model as its sidecar (``output``
    None), into the folder ``output`` as ``<name>.png`` (``to_dir``), or to the file ``output``.

    One bad file never stops the rest: it comes back with its error (a missing file, an unreadable or
    broken model, a write that failed, a second model whose ``<name>.png`` an earlier one already took).
    Stopping the iteration early still finishes the write in flight and fsyncs the folders written.
    """
    from sidecar_thumbs.files.atomic import fsync_dir
    from sidecar_thumbs.render.thumbnail import make_thumbnail

    taken: dict[Path, Path] = {}
    folders: set[str] = set()
    pending: tuple[Path, Future[Path], Thumbnail] | None = None
    with ThreadPoolExecutor(1, thread_name_prefix="thumbnail-writer") as writer:
        try:
            for model in files:
                failed: Rendered | None = None
                job = None
                try:
                    dest = _destination(model, output, to_dir, taken)
                    thumb = make_thumbnail(model, options)
                    job = (model, writer.submit(_write, model, dest, thumb.png), thumb)
                except ModelError as exc:
                    failed = Rendered(model, error=exc)
                # The previous file's outcome first (its write ran meanwhile). ``pending`` always names the
                # write in flight, also while this yields: a caller that stops here must wait for it.
                previous, pending = pending, job
                if previous is not None:
                    yield _finish(*previous, folders)
                if failed is not None:
                    yield failed
            if pending is not None:
                last, pending = pending, None
                yield _finish(*last, folders)
        finally:
            if pending is not None and pending[1].exception() is None:  # stopped early: the write in flight
                folders.add(os.path.dirname(os.path.abspath(pending[1].result())))  # completes, and counts
            for folder in sorted(folders):
                fsync_dir(folder)


def _destination(model: Path, output: Path | None, to_dir: bool, taken: dict[Path, Path]) -> Path | None:
    if not os.path.lexists(model):
        raise ModelError("no such file")
    if output is None:
        return None  # the sidecar's name: write_sidecar knows it
    if not to_dir:
        return output
    dest = output / f"{model.name}.png"
    if dest in taken:
        raise ModelError(f"{dest} already holds the thumbnail of {taken[dest]}")
    taken[dest] = model
    return dest


def _write(model: Path, dest: Path | None, png: bytes) -> Path:
    """In the writer thread, to ``dest`` or (None) as the model's sidecar: the data ordered before the
    rename; the folder is fsynced at the end."""
    from sidecar_thumbs.files.atomic import atomic_write
    from sidecar_thumbs.files.sidecar import write_sidecar

    if dest is None:
        return write_sidecar(model, png, sync_folder=False)
    try:
        atomic_write(dest, png, sync_folder=False)
    except OSError as exc:
        raise ModelError(f"cannot write {dest}: {exc.strerror or exc}") from None
    return dest


def _finish(model: Path, written: Future[Path], thumb: Thumbnail, folders: set[str]) -> Rendered:
    try:
        dest = written.result()
    except ModelError as exc:
        return Rendered(model, error=exc)
    folders.add(os.path.dirname(os.path.abspath(dest)))
    return Rendered(model, dest=dest, thumb=thumb)
