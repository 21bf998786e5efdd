"""Shared fixtures. Tests use real parts: corpus files, SQLite files in tmp_path, real processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _corpus_dir() -> Path:
    # CI clones the repo into a fresh folder with a copy of shared/ beside it.
    env = os.environ.get("SIDECAR_THUMBS_CORPUS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "corpus"


CORPUS = _corpus_dir()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real STL/3MF files (read-only; never copied into the repo)."""
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return CORPUS


def corpus_files(*subdirs: str) -> list[Path]:
    """Corpus files under the given subfolders, for parametrising tests at collection time."""
    out: list[Path] = []
    for sub in subdirs:
        d = CORPUS / sub
        if d.is_dir():
            out.extend(sorted(p for p in d.iterdir() if p.is_file()))
    return out
