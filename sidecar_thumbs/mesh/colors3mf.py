"""Colours of a 3MF: the materials extension's property groups, resolved per triangle.

Property resources (``basematerials``, ``colorgroup``, ``texture2dgroup``, ``multiproperties``) are
children of ``<resources>`` that the fast scanner cuts out of the structural parse; their contents
are read here from the byte ranges it reported, only for parts that carry colour. A triangle's
colour comes from its own ``pid``/``p1``/``p2``/``p3``, else from its object's ``pid``/``pindex``,
else from the object that refers to it as a component. A colour group gives each corner its own
colour (blended across the triangle), a texture its colour at the triangle's UV centroid, a
multiproperties group its first layer. Anything unreadable simply leaves triangles uncoloured: colour
never fails a model that loads.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

from sidecar_thumbs import numba_cache
from sidecar_thumbs.mesh.slicerproject import parse_hex_color

__all__ = ["PartColors", "PropertyGroup", "read_part_colors"]

_START_TAG = re.compile(rb"<(?:[^\s/<>:!?]+:)?([A-Za-z0-9_]+)((?:[^<>\"']|\"[^\"]*\"|'[^']*')*)>\s*\Z")
_ATTR = re.compile(rb"""([^\s=]+)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_TEXTURE2D = re.compile(rb"""<(?:[^\s/<>:!?]+:)?texture2d\s((?:[^<>"']|"[^"]*"|'[^']*')*)/?>""")
_COMMENTS = re.compile(rb"<!--.*?-->", re.S)
PROPERTY_RESOURCES = frozenset({b"basematerials", b"colorgroup", b"texture2dgroup", b"multiproperties"})
MAX_TEXTURE_SIDE = 8192
MAX_TEXTURE_BYTES = 64 * 1024 * 1024
TEXTURE_DECODE_SIDE = 512


def _attrs(text: bytes) -> dict[bytes, bytes]:
    return {name.rpartition(b":")[2]: a or b for name, a, b in _ATTR.findall(text)}


@dataclass
class PropertyGroup:
    """One property resource: ``colors`` uint8 (K, 3) for colour-like groups; ``uv`` float32 (K, 2) and
    ``texid`` for a texture group; ``layers`` (pids) and ``indices`` int (K, L) for multiproperties."""

    kind: str
    colors: np.ndarray | None = None
    uv: np.ndarray | None = None
    texid: int | None = None
    layers: list[int] = field(default_factory=list)
    indices: np.ndarray | None = None


@dataclass
class PartColors:
    """Everything of one model part needed to colour its triangles."""

    groups: dict[int, PropertyGroup]
    textures: dict[int, str]  # texture2d id → part path of the image


def read_part_colors(data: bytes, cuts: np.ndarray, head_end: int | None = None) -> PartColors:
    """Property groups of a part from the scanner's cut ranges (resource contents), plus the
    ``<color>``/``<material>`` resources of 3MF 0.93 files found before ``head_end`` (the first mesh)."""
    head = len(data) if head_end is None else head_end
    # Only 3MF 0.93 files have <material> resources: look before copying the head.
    groups: dict[int, PropertyGroup] = _read_093_materials(data[:head]) if _has_093_material(data, cuts, head) else {}
    textures: dict[int, str] = {}
    for start, end in cuts.tolist():
        lt = data.rfind(b"<", 0, start)
        m = _START_TAG.match(data, lt, start) if lt >= 0 else None
        if not m or m.group(1) not in PROPERTY_RESOURCES:
            continue
        attrs = _attrs(m.group(2))
        try:
            gid = int(attrs.get(b"id", b""))
        except ValueError:
            continue
        group = _read_group(m.group(1).decode(), attrs, data, start, end)
        if group is not None:
            groups[gid] = group
    if any(g.kind == "texture2dgroup" for g in groups.values()):
        for m in _TEXTURE2D.finditer(data):
            attrs = _attrs(m.group(1))
            try:
                textures[int(attrs.get(b"id", b""))] = attrs.get(b"path", b"").decode("utf-8", "replace")
            except ValueError:
                continue
    return PartColors(groups, textures)


def _has_093_material(data: bytes, cuts: np.ndarray, head: int) -> bool:
    """Whether ``data[:head]`` has a ``<material`` tag outside the cut ranges. A 0.93 material is a child
    of ``<resources>``, never inside a property group's contents; and a vertex colour group before the
    first mesh is megabytes that a plain search would read (0.5 ms for 1.3 MB)."""
    pos = 0
    for start, end in sorted(cuts.tolist()):
        if start >= head:
            break
        if data.find(b"<material", pos, start) >= 0:
            return True
        pos = max(pos, end)
    return data.find(b"<material", pos, head) >= 0


_COLOR_093 = re.compile(rb"""<color\s((?:[^<>"']|"[^"]*"|'[^']*')*)/?>""")
_MATERIAL_093 = re.compile(rb"""<material\s((?:[^<>"']|"[^"]*"|'[^']*')*)/?>""")


def _read_093_materials(head: bytes) -> dict[int, PropertyGroup]:
    """3MF 0.93 (lib3mf still writes it): ``<color id value>`` and ``<material id colorid>`` resources,
    referred to by ``materialid``; each material becomes a one-colour group."""
    if b"<material" not in head:
        return {}
    colors: dict[bytes, tuple[int, int, int] | None] = {}
    for m in _COLOR_093.finditer(head):
        a = _attrs(m.group(1))
        colors[a.get(b"id", b"")] = parse_hex_color(a.get(b"value", b"").decode("ascii", "replace"))
    groups: dict[int, PropertyGroup] = {}
    for m in _MATERIAL_093.finditer(head):
        a = _attrs(m.group(1))
        colour = colors.get(a.get(b"colorid", b""))
        try:
            mid = int(a.get(b"id", b""))
        except ValueError:
            continue
        if colour is not None:
            groups[mid] = PropertyGroup("basematerials", colors=_rgb_array([colour]))
    return groups


_U_VALUE = re.compile(rb"""\su\s*=\s*["']([^"']*)["']""")
_V_VALUE = re.compile(rb"""\sv\s*=\s*["']([^"']*)["']""")
_PINDICES = re.compile(rb"""\bpindices\s*=\s*["']([^"']*)["']""")


def _read_group(kind: str, attrs: dict[bytes, bytes], data: bytes, start: int, end: int) -> PropertyGroup | None:
    """The group whose contents are ``data[start:end]``, comments left out."""
    if kind in ("basematerials", "colorgroup"):
        return PropertyGroup(kind, colors=group_colors(data, start, end))
    body = data[start:end]
    if b"<!--" in body:
        body = _COMMENTS.sub(b"", body)
    # One findall per attribute over the whole group: groups hold up to one entry per vertex (100k+),
    # where a per-element attribute parse costs seconds.
    if kind == "texture2dgroup":
        us, vs = _U_VALUE.findall(body), _V_VALUE.findall(body)
        try:
            texid = int(attrs.get(b"texid", b""))
            uv = np.array([us, vs], dtype=np.float64).T if len(us) == len(vs) else None
        except ValueError:
            return None
        if uv is None:
            return None
        return PropertyGroup(kind, uv=uv.astype(np.float32).reshape(-1, 2), texid=texid)
    if kind == "multiproperties":
        try:
            layers = [int(x) for x in attrs.get(b"pids", b"").split()]
            rows = [[int(x) for x in v.split()] for v in _PINDICES.findall(body)]
        except ValueError:
            return None
        width = len(layers)
        table = np.full((len(rows), max(width, 1)), -1, np.int64)
        for i, row in enumerate(rows):
            table[i, : min(width, len(row))] = row[:width]
        return PropertyGroup(kind, layers=layers, indices=table)
    return None


# A colour value (group 1), and its digits when it is #RRGGBB[AA] (group 2, else empty). One expression
# for both, so both come from the same matches: a second expression for the digits alone found other
# matches where a value holds ``color="…`` (found by the random-group test of the numba pass).
COLOR_VALUE = re.compile(
    rb"""\b(?:displaycolor|color)\s*=\s*["']((?:#([0-9A-Fa-f]{6})(?:[0-9A-Fa-f]{2})?(?=["']))?[^"']*)["']"""
)


def _load_kernel() -> ModuleType | None:
    return numba_cache.import_kernel("sidecar_thumbs.mesh.colorscan_numba")


def group_colors(data: bytes, start: int, end: int, use_numba: bool | None = None) -> np.ndarray:
    """:func:`hex_colors` of the group whose contents are ``data[start:end]``, comments left out; the
    numba pass reads the group in place (a vertex-coloured part's group is megabytes)."""
    kernel = numba_cache.chosen_kernel(_load_kernel(), use_numba)
    if kernel is not None:
        rgb, bad, status = kernel.scan_colors(np.frombuffer(data, np.uint8), start, end, True)
        if status == kernel.DONE:
            return _decode_rest(rgb, bad, data)
    body = data[start:end]  # no numba, or (rare) comments or many odd spellings inside the group
    if b"<!--" in body:
        body = _COMMENTS.sub(b"", body)
    return hex_colors(body, use_numba=kernel is not None)


def hex_colors(body: bytes, use_numba: bool | None = None) -> np.ndarray:
    """The ``color``/``displaycolor`` values of a group → uint8 (K, 3). Groups hold up to one colour
    per vertex: the numba pass decodes every ``#RRGGBB[AA]`` value, and only other spellings are
    decoded one by one (the expression below is its twin when numba is missing)."""
    kernel = numba_cache.chosen_kernel(_load_kernel(), use_numba)
    if kernel is not None:
        rgb, bad, status = kernel.scan_colors(np.frombuffer(body, np.uint8), 0, len(body), False)
        if status == kernel.DONE:
            return _decode_rest(rgb, bad, body)
    # No numba, or more values than the pass keeps aside are spelled otherwise than #RRGGBB[AA].
    found = COLOR_VALUE.findall(body)
    if all(digits for _, digits in found):  # all #RRGGBB[AA]: one fromhex
        hexes = b"".join(digits for _, digits in found)
        return np.frombuffer(bytes.fromhex(hexes.decode("ascii")), np.uint8).reshape(-1, 3)
    return _rgb_array([parse_hex_color(v.decode("ascii", "replace")) for v, _ in found])


def _decode_rest(rgb: np.ndarray, bad: np.ndarray, data: bytes) -> np.ndarray:
    """The numba pass's colours with the values it left (not ``#RRGGBB[AA]``) decoded one by one."""
    for k, start, end in bad.tolist():
        colour = parse_hex_color(data[start:end].decode("ascii", "replace"))
        rgb[k] = colour if colour is not None else (128, 128, 128)
    return rgb


def _rgb_array(cols: list[tuple[int, int, int] | None]) -> np.ndarray:
    """(K, 3) uint8; an unreadable colour becomes mid grey rather than shifting the indices after it."""
    return np.array([c if c is not None else (128, 128, 128) for c in cols], np.uint8).reshape(-1, 3)


class ColourResolver:
    """Resolves (group id, corner indices) to corner colours, with textures loaded on demand."""

    def __init__(self, parts_colors: PartColors, read_texture) -> None:  # type: ignore[no-untyped-def]
        self.pc = parts_colors
        self._read_texture = read_texture
        self._images: dict[int, np.ndarray | None] = {}

    def one_group(self, props: np.ndarray, default_gid: int, default_idx: int) -> tuple[np.ndarray, np.ndarray] | None:
        """:meth:`corner_colors` of a part's triangle properties (``props`` int32 (T, 4): pid p1 p2 p3)
        in the usual case, every triangle in one colour group, by one numba pass; None when some
        triangle needs the general path (another group, a texture, multiproperties, no numba)."""
        kernel = _load_kernel()
        if kernel is None or not len(props):
            return None
        gid = int(props[0, 0]) if props[0, 0] >= 0 else default_gid
        group = self.pc.groups.get(gid)
        if group is None or group.kind not in ("basematerials", "colorgroup") or group.colors is None:
            return None
        done, out, mask = kernel.one_group_colors(
            np.ascontiguousarray(props), default_gid, default_idx, gid, np.ascontiguousarray(group.colors)
        )
        if not done:
            return None
        return (out[:, 0] if out.shape[1] == 1 else out), mask

    def corner_colors(self, gid: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Colours for triangles whose property is (gid, idx[:, 3]).

        Args:
            gid: int (T,) group id per triangle (-1: none).
            idx: int (T, 3) index per corner (-1 where a corner has none).

        Returns:
            (colors, mask bool (T,)): uint8 (T, 3) when every triangle has one colour, (T, 3, 3) when
            some corners differ (vertex colours); mask marks triangles that got a colour.
        """
        t = len(gid)
        # A corner without its own index takes the triangle's first (p1) index, as the spec says.
        idx = np.where(idx < 0, idx[:, :1], idx)
        per_corner = bool((idx[:, 1:] != idx[:, :1]).any())
        out = np.zeros((t, 3, 3) if per_corner else (t, 3), np.uint8)
        mask = np.zeros(t, bool)
        groups: list[tuple[int, np.ndarray | None]]
        if len(gid) and int(gid.min()) == int(gid.max()):
            groups = [(int(gid[0]), None)]  # one group for all (the usual case): no selection copies
        else:
            groups = [(g, np.flatnonzero(gid == g)) for g in np.unique(gid[gid >= 0]).tolist()]
        for g, sel in groups:
            group = self.pc.groups.get(int(g))
            if group is None:
                continue
            sub = idx if sel is None else idx[sel]
            cols, ok = self._group_colors(group, sub if per_corner else sub[:, :1])
            cols = cols if per_corner else cols[:, 0]
            if sel is None and ok.all():
                out = np.ascontiguousarray(cols)  # every triangle coloured by the one group: no masked copies
                mask = ok
            elif sel is None:
                out[ok] = cols[ok]
                mask |= ok
            else:
                out[sel[ok]] = cols[ok]
                mask[sel[ok]] = True
        return out, mask

    def _group_colors(self, group: PropertyGroup, idx: np.ndarray, depth: int = 0) -> tuple[np.ndarray, np.ndarray]:
        n, k = idx.shape
        out = np.zeros((n, k, 3), np.uint8)
        if group.kind in ("basematerials", "colorgroup") and group.colors is not None and len(group.colors):
            inside: np.ndarray = np.asarray(((idx >= 0) & (idx < len(group.colors))).all(axis=1), bool)
            if inside.all():
                return np.take(group.colors, idx, axis=0), inside
            out[inside] = group.colors[idx[inside]]
            return out, inside
        if group.kind == "texture2dgroup" and group.uv is not None and group.texid is not None:
            image = self._texture(group.texid)
            ok = (idx >= 0).all(axis=1) & (idx < len(group.uv)).all(axis=1)
            if image is None or not ok.any():
                return out, np.zeros(n, bool)
            uv = group.uv[idx[ok]].mean(axis=1)  # the UV centroid (p1's UV alone when k == 1)
            h, w = image.shape[:2]
            u = np.nan_to_num(uv[:, 0], nan=0.0) % 1.0
            v = np.nan_to_num(uv[:, 1], nan=0.0) % 1.0
            px = np.clip((u * w).astype(np.int64), 0, w - 1)
            py = np.clip(((1.0 - v) * h).astype(np.int64), 0, h - 1)  # v runs bottom-up
            out[ok] = image[py, px][:, None, :]
            return out, np.asarray(ok, bool)
        if group.kind == "multiproperties" and group.indices is not None and group.layers and depth == 0:
            first = self.pc.groups.get(group.layers[0])
            ok = (idx >= 0).all(axis=1) & (idx < len(group.indices)).all(axis=1)
            if first is None or not ok.any():
                return out, np.zeros(n, bool)
            sub = np.full(idx.shape, -1, np.int64)
            sub[ok] = group.indices[idx[ok], 0]
            cols, ok2 = self._group_colors(first, sub, depth + 1)
            return cols, ok & ok2
        return out, np.zeros(n, bool)

    def _texture(self, texid: int) -> np.ndarray | None:
        if texid not in self._images:
            self._images[texid] = self._load_texture(texid)
        return self._images[texid]

    def _load_texture(self, texid: int) -> np.ndarray | None:
        path = self.pc.textures.get(texid)
        if not path:
            return None
        try:
            data = self._read_texture(path)
            if data is None or len(data) > MAX_TEXTURE_BYTES:
                return None
            from PIL import Image

            with Image.open(io.BytesIO(data)) as im:
                if im.width > MAX_TEXTURE_SIDE or im.height > MAX_TEXTURE_SIDE:
                    return None
                # A thumbnail samples one texel per triangle: a JPEG decoded at 1/2..1/8 scale is
                # plenty and several times cheaper.
                im.draft("RGB", (TEXTURE_DECODE_SIDE, TEXTURE_DECODE_SIDE))
                return np.asarray(im.convert("RGB"))
        except Exception:  # an unreadable texture leaves those triangles uncoloured
            return None
