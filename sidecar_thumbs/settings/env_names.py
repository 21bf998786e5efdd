"""Misspelt settings: a ``SIDECAR_THUMBS_*`` variable that is not a setting is named, with the closest real one.

Silently ignoring ``SIDECAR_THUMBS_WORKER=4`` (or ``SIDECAR_THUMS_SIZE=512``, a typo in the prefix)
leaves a user wondering why the setting does nothing. Only our own prefix (and near misses of it) is
looked at: an env file may be shared with the asset manager, whose other variables are its business.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

__all__ = ["OTHER_VARIABLES", "unknown_variable_warnings"]

PREFIX = "SIDECAR_THUMBS_"
# Variables with our prefix that are read but are not settings (tests, debugging switches).
OTHER_VARIABLES = frozenset(
    {"SIDECAR_THUMBS_CORPUS", "SIDECAR_THUMBS_NO_NUMBA", "SIDECAR_THUMBS_SOAK", "SIDECAR_THUMBS_SCREENSHOT_DIR",
     "SIDECAR_THUMBS_CHROMIUM"}
)  # fmt: skip
# How alike a name's start must be to the prefix to count as a misspelt one (SIDECAR_THUMS_ → 0.97).
PREFIX_SIMILARITY = 0.85


def _looks_like_ours(name: str) -> bool:
    upper = name.upper()
    if upper.startswith(PREFIX):
        return True
    if not upper.startswith("SIDE"):
        return False  # cheap: the environment holds many unrelated names
    head = upper[: len(PREFIX) + 1]
    return difflib.SequenceMatcher(None, head, PREFIX).ratio() >= PREFIX_SIMILARITY


def unknown_variable_warnings(layers: Iterable[tuple[str, Mapping[str, str | None]]], known: set[str]) -> list[str]:
    """One warning per variable that looks like a setting but is not one.

    Args:
        layers: (where it came from: "environment" or a file path, {name: value}).
        known: every setting's variable name.
    """
    out = []
    for source, values in layers:
        for name in sorted(values):
            if name in known or name in OTHER_VARIABLES or not _looks_like_ours(name):
                continue
            where = "in the environment" if source == "environment" else f"in {source}"
            close = difflib.get_close_matches(name.upper(), sorted(known), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else " (every setting: .env.example)"
            out.append(f"{name} {where} is not a setting and is ignored{hint}")
    return out
