"""Shared fixtures. Tests use real parts: corpus files, SQLite files in tmp_path, real processes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from corpus_paths import CORPUS, REPO_ROOT, corpus_files

__all__ = ["CORPUS", "REPO_ROOT", "corpus_files"]

# The command-line tests' fixtures (lib, bad, cwd) live beside their helpers; fast_lane keeps the
# integration-only files out of the fast lane's collection.
pytest_plugins = ["cli_helpers", "fast_lane"]


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The shared corpus of real STL/3MF files (read-only; never copied into the repo)."""
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return CORPUS


EXAMPLE_MODELS = REPO_ROOT / "examples" / "models"


def _hash_tree(root: Path) -> dict[str, str]:
    """xxh3 of every file under ``root`` (sidecars included: the shared folders must hold none)."""
    import xxhash

    out: dict[str, str] = {}
    if not root.is_dir():
        return out
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            h = xxhash.xxh3_128()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
            out[path] = h.hexdigest()
    return out


@pytest.fixture(scope="session", autouse=True)
def source_models_never_modified() -> Iterator[None]:
    """Issue #6 item 8: the corpus and the example models are read, never written. Tests that need
    to change a model copy it into tmp_path first; the originals must hash the same after the run,
    and no file (a stray sidecar, a temp file) may appear or vanish among them."""
    roots = [CORPUS, EXAMPLE_MODELS]
    before = {str(r): _hash_tree(r) for r in roots}
    yield
    problems: list[str] = []
    for root in roots:
        after = _hash_tree(root)
        old = before[str(root)]
        problems += [f"changed: {p}" for p in sorted(old.keys() & after.keys()) if old[p] != after[p]]
        problems += [f"removed: {p}" for p in sorted(old.keys() - after.keys())]
        problems += [f"appeared: {p}" for p in sorted(after.keys() - old.keys())]
    if problems:
        pytest.fail("source models were modified by the test run:\n" + "\n".join(problems[:50]), pytrace=False)
