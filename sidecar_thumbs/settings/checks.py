"""The checks a setting's value must pass: each returns why a value is invalid, or None when it is fine."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sidecar_thumbs.files.formats import parse_suffixes

# A check returns why a value is invalid, or None when it is fine.
Check = Callable[[Any], str | None]


def _between(lo: float, hi: float | None = None) -> Check:
    def check(value: float) -> str | None:
        if value < lo or (hi is not None and value > hi):
            return f"must be between {lo:g} and {hi:g}" if hi is not None else f"must be at least {lo:g}"
        return None

    return check


def _one_of(*choices: str) -> Check:
    def check(value: str) -> str | None:
        return None if value in choices else f"must be one of {', '.join(choices)}"

    return check


IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _identifier(optional: bool) -> Check:
    """SQL identifiers for the asset manager's table: a fixed grammar (letters, digits, underscore),
    so a value from a settings file can never carry SQL; they are also double-quoted when used."""

    def check(value: str) -> str | None:
        if optional and value == "":
            return None
        if IDENTIFIER_RE.fullmatch(value):
            return None
        return "not a plain SQL name (letters, digits and _ only, not starting with a digit, at most 64)"

    return check


def _colour(value: str) -> str | None:
    digits = value[1:] if value.startswith("#") else ""
    if len(digits) == 6 and all(c in "0123456789abcdefABCDEF" for c in digits):
        return None
    return "not a colour like #5c8fdb"


def _extensions(value: str) -> str | None:
    try:
        parse_suffixes(value)
    except ValueError as exc:
        return str(exc)
    return None
