"""Map the coordinator's model paths to the paths a remote render worker sees.

The daemon walks the share where the Mac mounts it (``/Volumes/3D-Files/...``); a Linux worker may
mount the same share at ``/mnt/3d``. ``--path-map /Volumes/3D-Files=/mnt/3d`` (several allowed) tells
the coordinator how to name a file for the workers. The longest matching prefix wins, and a prefix
matches whole path components only: ``/Volumes/3D`` does not match ``/Volumes/3D-Files/x.stl``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from sidecar_thumbs.errors import ConfigError

__all__ = ["PathMap", "PathMapping", "parse_path_map", "parse_path_map_setting", "parse_path_mapping"]

# A Windows worker path: "Z:\models", "Z:/models" or "\\server\share".
_WINDOWS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


def _is_absolute(path: str) -> bool:
    return path.startswith("/") or bool(_WINDOWS.match(path))


def _components(path: str) -> tuple[str, ...]:
    # NFC for comparing only: HFS+ hands out decomposed names while a user types composed ones, and
    # "Modèles" must match "Modèles" either way. The remainder keeps the path's own spelling.
    return tuple(unicodedata.normalize("NFC", c) for c in path.split("/") if c)


@dataclass(frozen=True)
class PathMapping:
    """One ``SOURCE=TARGET`` rule: ``source`` as the coordinator sees it, ``target`` on the workers."""

    source: str
    target: str

    @property
    def separator(self) -> str:
        """The separator for the remainder: a backslash for a Windows target written with them."""
        return "\\" if _WINDOWS.match(self.target) and "/" not in self.target else "/"

    def __str__(self) -> str:
        return f"{self.source}={self.target}"


def parse_path_mapping(spec: str) -> PathMapping:
    """Parse one ``SOURCE=TARGET`` rule, e.g. ``/Volumes/3D-Files=/mnt/3d``.

    Both sides must be absolute. A path may itself hold ``=``: the rule is split at the one ``=``
    that has an absolute path on both sides.

    Raises:
        ConfigError: the rule is malformed or ambiguous.
    """
    splits = [i for i, ch in enumerate(spec) if ch == "="]
    if not splits:
        raise ConfigError(f"path map {spec!r} has no '=': write SOURCE=TARGET, e.g. /Volumes/3D-Files=/mnt/3d")
    candidates = [i for i in splits if _is_absolute(spec[:i]) and _is_absolute(spec[i + 1 :])]
    if not candidates:
        raise ConfigError(f"path map {spec!r}: both sides must be absolute paths, e.g. /Volumes/3D-Files=/mnt/3d")
    if len(candidates) > 1:
        raise ConfigError(f"path map {spec!r} is ambiguous: more than one '=' could separate the two paths")
    i = candidates[0]
    source = "/" + "/".join(c for c in spec[:i].split("/") if c)
    target = spec[i + 1 :]
    if len(target) > 1 and target.endswith(("/", "\\")) and not re.fullmatch(r"[A-Za-z]:[\\/]", target):
        target = target.rstrip("/\\") or target[0]
    return PathMapping(source, target)


class PathMap:
    """Several rules; :meth:`__call__` maps one path (unchanged when no rule matches)."""

    def __init__(self, mappings: Iterable[PathMapping] = ()) -> None:
        rules = list(mappings)
        seen: dict[tuple[str, ...], PathMapping] = {}
        for rule in rules:
            key = _components(rule.source)
            if key in seen and seen[key].target != rule.target:
                raise ConfigError(f"path map has two targets for {rule.source}: {seen[key].target} and {rule.target}")
            seen[key] = rule
        # Longest source first, so the most specific rule wins.
        self._rules = sorted(((k, r) for k, r in seen.items()), key=lambda kr: -len(kr[0]))
        self.mappings: tuple[PathMapping, ...] = tuple(r for _, r in self._rules)

    def __bool__(self) -> bool:
        return bool(self._rules)

    def __repr__(self) -> str:
        return f"PathMap({[str(m) for m in self.mappings]!r})"

    def __call__(self, path: str) -> str:
        """The worker's name for the coordinator's absolute ``path``."""
        if not self._rules or not path.startswith("/"):
            return path
        parts = [c for c in path.split("/") if c]
        normalized = tuple(unicodedata.normalize("NFC", c) for c in parts)
        for key, rule in self._rules:
            if normalized[: len(key)] == key:
                rest = parts[len(key) :]
                if not rest:
                    return rule.target
                sep = rule.separator
                base = rule.target if rule.target.endswith(("/", "\\")) else rule.target + sep
                return base + sep.join(rest)
        return path


def parse_path_map(specs: Iterable[str]) -> PathMap:
    """Parse ``--path-map`` values (each ``SOURCE=TARGET``) into a :class:`PathMap`.

    Raises:
        ConfigError: a rule is malformed, or one source has two different targets.
    """
    return PathMap(parse_path_mapping(s.strip()) for s in specs if s.strip())


def parse_path_map_setting(text: str) -> PathMap:
    """Parse the ``path_map`` setting (environment or ``.env``): rules separated by newlines or ``;``
    (not ``:``, which Windows targets such as ``Z:\\3d`` contain)."""
    return parse_path_map(p for line in text.splitlines() for p in line.split(";"))
