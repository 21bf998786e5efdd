"""Where the shared corpus is, for tests that parametrise over its files at collection time.

A module of its own (not ``conftest``): several ``conftest.py`` files exist, so ``from conftest
import …`` would pick whichever was imported first.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from _pytest.mark.structures import ParameterSet

REPO_ROOT = Path(__file__).resolve().parents[1]


def _corpus_dir() -> Path:
    # CI clones the repo into a fresh folder with a copy of shared/ beside it.
    env = os.environ.get("SIDECAR_THUMBS_CORPUS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"


CORPUS = _corpus_dir()


def corpus_files(*subdirs: str) -> list[Path]:
    """Corpus files under the given subfolders, for parametrising tests at collection time."""
    out: list[Path] = []
    for sub in subdirs:
        d = CORPUS / sub
        if d.is_dir():
            out.extend(sorted(p for p in d.iterdir() if p.is_file()))
    return out


# The files that stand for their folder in the fast lane (`pytest -m "not integration and not soak"`):
# small, so a broken reader shows in seconds, and each shows what its folder is about. A corpus-wide
# sweep runs every other file in the full suite only (plain `pytest`, CI), where the odd file is caught.
FAST_LANE = frozenset(
    {
        "openscad__import_bin_solid.stl",  # stl-binary: binary behind a header that starts with "solid"
        "voron2__Filament_Card.stl",  # stl-binary: a real printer part
        "prusaslicer__20mmbox-CRLF.stl",  # stl-ascii: CRLF line ends
        "trimesh__multibody.stl",  # stl-ascii: several solids in one file
        "lib3mf__WagonWithWheels.3mf",  # 3mf: wheels instanced by nested components
        "boxturtle__desiccant_lid_x4.3mf",  # 3mf: a Bambu Studio project (plate pictures, a type="other" object)
        "libbgcode__mini_cube_ps2.8.1.gcode",  # gcode: PrusaSlicer's, with pictures
        "gcodenom__arc_demo.gcode",  # gcode: arcs, no picture (the toolpath is drawn)
        "libbgcode__mini_cube_ps2.8.1.bgcode",  # bgcode: heatshrink + MeatPack, QOI pictures
        "constructed__model-site-download.zip",  # zip: a model site's download (models, pictures, a readme)
        "constructed__zip-in-zip.zip",  # zip: the model is in an inner zip
        "tinyobj__cornell_box.obj",  # obj: several objects, a material library
        "trimesh__negative_indices.obj",  # obj: relative (negative) indices
    }
)


def corpus_sweep(paths: Iterable[Path], also: Iterable[str] = ()) -> list[ParameterSet]:
    """``paths`` as pytest parameters named by file name, for a sweep over the corpus: the files in
    ``FAST_LANE`` and ``also`` (those a test's own special cases name) run in the fast lane, every
    other file is marked ``integration``. The full suite runs them all under the same test ids."""
    paths = list(paths)
    names = {p.name for p in paths}
    named = set(also)
    fast = FAST_LANE | named
    if paths:  # without the corpus (the tests that need it skip) there is nothing to check
        if missing := named - names:  # a misspelt name would quietly leave the fast lane without it
            raise ValueError(f"not among the swept corpus files: {sorted(missing)}")
        if not names & fast:
            raise ValueError("a corpus sweep with no file in the fast lane: name one in FAST_LANE or `also`")
    return [pytest.param(p, id=p.name, marks=() if p.name in fast else pytest.mark.integration) for p in paths]
