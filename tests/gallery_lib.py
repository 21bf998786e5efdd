"""A small real library for the gallery tests: corpus models under awkward names, scanned for real.

Every state the gallery shows is planted: fresh rendered and embedded sidecars, a failed model with
its reason in a real SQLite database, a model without a sidecar, a stale sidecar, and names with
spaces, ``#``, ``?``, ``%``, brackets, unicode and HTML.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.scan import scan

OPTIONS = ThumbnailOptions(use_embedded=True)  # the library holds a slicer-picture sidecar too

# library path → corpus file (small models: the whole library renders inline in about a second)
FRESH = {
    "bunny.stl": "stl-binary/prusaslicer__bunny.stl",
    "parts/wheel [a] #2?.stl": "stl-binary/prusaslicer__pyramid.stl",
    "parts/100% Würfel ☠.stl": "stl-binary/admesh__binary.stl",
    "parts/<b>bold</b> & co.stl": "stl-binary/lib3mf__Helix.stl",
    "3mf/box.3mf": "3mf/3mfsamples__box.3mf",
    "3mf/with picture.3mf": "3mf/lib3mf__Thumbnail_Package.3mf",
}
TRIANGLES = {"bunny.stl": 292, "parts/wheel [a] #2?.stl": 6, "parts/100% Würfel ☠.stl": 12}
EMBEDDED = "3mf/with picture.3mf"
FAILED = "broken/no build.3mf"
FAILED_SRC = "bad/3mfsamples__MUSTFAIL_Chapter3.4b_MissingBuildElement.3mf"
FAILED_REASON = "has no <build> element"
MISSING = "parts/added later.stl"  # copied in after the scan: no sidecar
STALE = "parts/changed.stl"  # rendered, then its content replaced
# A file name cannot hold "/", so the script tag is split across a folder and a file name.
SCRIPT = "<script>alert(1)</script>.stl"


@dataclass(frozen=True)
class Library:
    root: Path
    db_path: Path

    def model(self, rel: str) -> str:
        return str(self.root / rel)


def _copy(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)  # not copy2: corpus files are read-only


def build_library(corpus: Path, base: Path) -> Library:
    """Copy, scan (inline, real SQLite) and then plant the missing and stale models."""
    root = base / "library"
    for rel, src in FRESH.items():
        _copy(corpus / src, root / rel)
    _copy(corpus / "stl-binary/stlthumb__cube.stl", root / SCRIPT)
    _copy(corpus / FAILED_SRC, root / FAILED)
    _copy(corpus / "stl-binary/numpystl__StarWithEmptyHeader.stl", root / STALE)
    db_path = base / "state" / "db.sqlite3"
    db = StateDB(db_path)
    try:
        s = scan([str(root)], db=db, make_executor=InlineExecutor, options=OPTIONS, durable=False)
    finally:
        db.close()
    assert s.failed == 1, s.failures
    _copy(corpus / "stl-binary/prusaslicer__box.stl", root / MISSING)
    stale = root / STALE
    stale.write_bytes((corpus / "stl-binary/openscad__import_bin_solid.stl").read_bytes())
    st = stale.stat()
    os.utime(stale, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    return Library(root, db_path)
