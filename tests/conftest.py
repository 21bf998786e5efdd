"""Shared fixtures. Tests use real parts: corpus files, SQLite files in tmp_path, real processes."""

from __future__ import annotations

from pathlib import Path

import pytest
from corpus_paths import CORPUS, REPO_ROOT, corpus_files

__all__ = ["CORPUS", "REPO_ROOT", "corpus_files"]


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real STL/3MF files (read-only; never copied into the repo)."""
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return CORPUS
