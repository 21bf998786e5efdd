"""Where the shared corpus is, for tests that parametrise over its files at collection time.

A module of its own (not ``conftest``): several ``conftest.py`` files exist, so ``from conftest
import …`` would pick whichever was imported first.
"""

from __future__ import annotations

import os
from pathlib import Path

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
