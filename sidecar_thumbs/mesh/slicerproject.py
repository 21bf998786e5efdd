"""Filament colours of a slicer project: which filament each object, part and painted triangle uses.

* PrusaSlicer: ``Metadata/Slic3r_PE_model.config`` gives an ``extruder`` per object (by 3MF object
  id) and per volume (a range of the object's triangles); ``Metadata/Slic3r_PE.config`` lists
  ``filament_colour`` (and ``extruder_colour``) per extruder.
* Bambu Studio / OrcaSlicer: ``Metadata/model_settings.config`` gives an ``extruder`` per object (the
  build item's object id) and per part (the component's object id);
  ``Metadata/project_settings.config`` (JSON) lists ``filament_colour``.

The filament colour wins over the extruder colour: it is what the print will look like.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from sidecar_thumbs.errors import SidecarError
from sidecar_thumbs.mesh.opc import Package, parse_xml

__all__ = ["SlicerProject", "parse_hex_color", "read_slicer_project"]

MAX_CONFIG_BYTES = 8 * 1024 * 1024
_HEX = re.compile(r"#?([0-9A-Fa-f]{6})(?:[0-9A-Fa-f]{2})?")
_INI_LINE = re.compile(r"^;?\s*(filament_colour|extruder_colour)\s*=\s*(.*)$", re.M)

RGB = tuple[int, int, int]


def parse_hex_color(text: str | None) -> RGB | None:
    """``#RRGGBB`` or ``#RRGGBBAA`` (alpha ignored) → (r, g, b); None when it is not a colour."""
    m = _HEX.fullmatch((text or "").strip().strip('"'))
    if not m:
        return None
    v = int(m.group(1), 16)
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


@dataclass
class SlicerProject:
    """Extruder assignments (1-based) and filament colours (index 0 = extruder 1)."""

    colors: list[RGB | None] = field(default_factory=list)
    object_extruder: dict[int, int] = field(default_factory=dict)  # build/top object id → extruder
    part_extruder: dict[int, int] = field(default_factory=dict)  # Bambu: component object id → extruder
    # PrusaSlicer: object id → [(first triangle, last triangle, extruder)]
    volume_extruder: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)

    def color_of(self, extruder: int) -> RGB | None:
        """The colour of a 1-based extruder (0 or unknown: None)."""
        if 1 <= extruder <= len(self.colors):
            return self.colors[extruder - 1]
        return None


def read_slicer_project(package: Package) -> SlicerProject | None:
    """The project's filament assignments, or None when the package holds no slicer project."""
    for model_cfg, settings_cfg, reader in (
        ("Metadata/model_settings.config", "Metadata/project_settings.config", _read_bambu),
        ("Metadata/Slic3r_PE_model.config", "Metadata/Slic3r_PE.config", _read_prusa),
    ):
        if package.find(model_cfg) is None and package.find(settings_cfg) is None:
            continue
        try:
            project = reader(package, model_cfg, settings_cfg)
        except (SidecarError, ValueError, KeyError, UnicodeDecodeError):
            return None  # a broken project file costs the colours, never the thumbnail
        return project if any(project.colors) else None
    return None


def _read(package: Package, name: str) -> bytes | None:
    info = package.find(name)
    if info is None:
        return None
    return package.read_member(info, min(MAX_CONFIG_BYTES, package.max_member_bytes))


def _int(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def _read_bambu(package: Package, model_cfg: str, settings_cfg: str) -> SlicerProject:
    project = SlicerProject()
    settings = _read(package, settings_cfg)
    if settings:
        values = json.loads(settings.decode("utf-8"))
        colours = values.get("filament_colour") if isinstance(values, dict) else None
        if isinstance(colours, list):
            project.colors = [parse_hex_color(str(c)) for c in colours]
    config = _read(package, model_cfg)
    if config:
        root = parse_xml(config, model_cfg)
        for obj in root.iter("object"):
            oid = _int(obj.get("id"))
            ext = _metadata_extruder(obj)
            if oid is not None and ext:
                project.object_extruder[oid] = ext
            for part in obj.iter("part"):
                pid, pext = _int(part.get("id")), _metadata_extruder(part)
                if pid is not None and pext:
                    project.part_extruder[pid] = pext
    return project


def _metadata_extruder(el) -> int | None:  # type: ignore[no-untyped-def]
    for md in el.findall("metadata"):
        if md.get("key") == "extruder":
            return _int(md.get("value"))
    return None


def _read_prusa(package: Package, model_cfg: str, settings_cfg: str) -> SlicerProject:
    project = SlicerProject()
    settings = _read(package, settings_cfg)
    if settings:
        found = {k: v for k, v in _INI_LINE.findall(settings.decode("utf-8", "replace"))}
        filament = [parse_hex_color(c) for c in found.get("filament_colour", "").split(";")]
        extruder = [parse_hex_color(c) for c in found.get("extruder_colour", "").split(";")]
        n = max(len(filament), len(extruder))
        filament += [None] * (n - len(filament))
        extruder += [None] * (n - len(extruder))
        project.colors = [f or e for f, e in zip(filament, extruder, strict=True)]
    config = _read(package, model_cfg)
    if config:
        root = parse_xml(config, model_cfg)
        for obj in root.iter("object"):
            oid = _int(obj.get("id"))
            if oid is None:
                continue
            for md in obj.findall("metadata"):
                if md.get("type") == "object" and md.get("key") == "extruder":
                    ext = _int(md.get("value"))
                    if ext:
                        project.object_extruder[oid] = ext
            for vol in obj.findall("volume"):
                first, last = _int(vol.get("firstid")), _int(vol.get("lastid"))
                for md in vol.findall("metadata"):
                    if md.get("type") == "volume" and md.get("key") == "extruder":
                        ext = _int(md.get("value"))
                        if ext and first is not None and last is not None and first <= last:
                            project.volume_extruder.setdefault(oid, []).append((first, last, ext))
    return project
