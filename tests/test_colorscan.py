"""The numba colour passes (mesh.colorscan_numba) against their twins: the same colours, value for value."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar_thumbs.mesh import colors3mf
from sidecar_thumbs.mesh.colors3mf import (
    ColourResolver,
    PartColors,
    PropertyGroup,
    group_colors,
    hex_colors,
    read_part_colors,
)
from sidecar_thumbs.mesh.paint import dominant_state, dominant_states

needs_numba = pytest.mark.skipif(colors3mf._load_kernel() is None, reason="the numba passes are not in use")

BODIES = [
    b'<m:color color="#C0392B"/><m:color color="#27AE60FF"/>',
    b"<color color='#abcdef'/>\n<color  color = \"#ABCDEF80\" />",
    b'<base name="PLA" displaycolor="#D35400"/><base displaycolor="#D3540"/>',
    b'<color color="C0392B"/><color color=" #112233 "/><color color="red"/><color color=""/>',
    b'<color xcolor="#111111" color="#222222"/><color mycolor="#333333"/><color color="#44444g"/>',
    b'<color color="#555555\'/><color color="#66666677"/><color color="#7777777"/>',
    b'<color_color="#888888"/><m:color m:color="#999999"/><color color="#AAAAAA"',
    b'colorcolor="#BBBBBB" displaycolor\t=\n\'#CCCCCC\' display color="#DDDDDD"',
    b"",
]


@needs_numba
@pytest.mark.parametrize("body", BODIES)
def test_numba_pass_matches_the_expression(body: bytes) -> None:
    got = hex_colors(body, use_numba=True)
    want = hex_colors(body, use_numba=False)
    assert got.dtype == want.dtype == np.uint8
    assert got.shape == want.shape
    assert np.array_equal(got, want)


@needs_numba
def test_many_random_colours_decode_exactly() -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (5000, 3))
    alpha = rng.integers(0, 2, 5000)
    body = b"".join(
        (f'<m:color color="#{r:02X}{g:02x}{b:02X}' + ("FF" if a else "") + '"/>\n').encode()
        for (r, g, b), a in zip(rgb.tolist(), alpha.tolist(), strict=True)
    )
    got = hex_colors(body, use_numba=True)
    assert np.array_equal(got, rgb.astype(np.uint8))
    assert np.array_equal(got, hex_colors(body, use_numba=False))


# Pieces of colour groups, well and badly formed: random runs of them exercise the general scan, the
# fast path (entries that repeat the bytes between values) and every way out of it.
_PIECES = [
    b'<m:color color="',
    b"<color color='",
    b'"/>',
    b"'/>",
    b"\n  ",
    b" ",
    b"=",
    b'"',
    b"'",
    b"#",
    b"color",
    b"displaycolor",
    b"display",
    b"<!--",
    b"-->",
    b"<",
    b"x",
    b"_",
    b"c",
    b"d",
    b"#12345",
    b"#ABCDEF",
    b"#abcdef12",
    b"#12345g",
    b"FF",
    b"0",
    b'color = "',
    b"\t",
    b":",
]


def _random_body(rng: np.random.Generator, comments: bool) -> bytes:
    pieces = [p for p in _PIECES if comments or p not in (b"<!--", b"-->")]
    template = [pieces[i] for i in rng.integers(0, len(pieces), int(rng.integers(1, 8)))]
    out = []
    for _ in range(int(rng.integers(1, 60))):
        if rng.random() < 0.15:  # a different entry now and then: the fast path must notice
            out.extend(pieces[i] for i in rng.integers(0, len(pieces), int(rng.integers(1, 6))))
        value = f"#{int(rng.integers(0, 1 << 32)):08X}"[: int(rng.choice([7, 9, 7, 5, 10]))]
        out.extend([*template, value.encode(), b'"' if rng.random() < 0.8 else b"'"])
    return b"".join(out)


@needs_numba
@pytest.mark.parametrize("seed", range(6))
def test_numba_pass_matches_the_expression_on_random_groups(seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(400):
        body = _random_body(rng, comments=False)
        assert np.array_equal(hex_colors(body, use_numba=True), hex_colors(body, use_numba=False)), body
        # In place in a larger part, comments allowed: only the range counts, as if it were cut out.
        comment_body = _random_body(rng, comments=True)
        data = b'color="#010203" x' + comment_body + b'"#040506" color="#070809"'
        s, e = 17, 17 + len(comment_body)
        got = group_colors(data, s, e, use_numba=True)
        assert np.array_equal(got, group_colors(data, s, e, use_numba=False)), comment_body


@needs_numba
def test_comments_in_a_group_are_left_out_as_the_expression_leaves_them_out() -> None:
    bodies = [
        b'<color color="#111111"/><!-- <color color="#222222"/> --><color color="#333333"/>',
        b'<color color="#111111"/><color color="<!--"/><color color="#333333"/>-->',
        b'<color color="#111111"/><color color="#222222"/><!-- never closed <color color="#333333"/>',
        b'<color col<!-- split -->or="#444444"/><color color="#555555"/>',
    ]
    for body in bodies:
        data = b"<g>" + body + b"</g>"
        got = group_colors(data, 3, 3 + len(body), use_numba=True)
        assert np.array_equal(got, group_colors(data, 3, 3 + len(body), use_numba=False)), body
    assert len(group_colors(b"<g>" + bodies[3] + b"</g>", 3, 3 + len(bodies[3]), use_numba=True)) == 2


def _general_path(resolver: ColourResolver, props: np.ndarray, default_gid: int, default_idx: int):  # type: ignore[no-untyped-def]
    # What threemf_colors._properties does when the one-group pass declines.
    gid = np.where(props[:, 0] >= 0, props[:, 0], default_gid).astype(np.int64)
    idx = props[:, 1:4].astype(np.int64)
    idx[idx[:, 0] < 0] = default_idx if default_idx >= 0 else 0
    return resolver.corner_colors(gid, idx)


@needs_numba
@pytest.mark.parametrize("seed", range(8))
def test_one_group_pass_matches_the_general_path(seed: int) -> None:
    rng = np.random.default_rng(seed)
    colors = rng.integers(0, 256, (20, 3)).astype(np.uint8)
    resolver = ColourResolver(PartColors({5: PropertyGroup("colorgroup", colors=colors)}, {}), lambda _: None)
    t = 300
    props = np.full((t, 4), -1, np.int32)
    props[:, 0] = np.where(rng.random(t) < 0.7, 5, -1)
    props[:, 1] = np.where(rng.random(t) < 0.9, rng.integers(0, 22, t), -1)  # 20, 21: out of range
    if seed % 2:  # vertex colours on some triangles, some corners without an index
        props[:, 2] = np.where(rng.random(t) < 0.5, rng.integers(0, 22, t), -1)
        props[:, 3] = np.where(rng.random(t) < 0.5, rng.integers(0, 22, t), -1)
    default_idx = [-1, 3, 21, 0][seed % 4]
    fast = resolver.one_group(props, 5, default_idx)
    assert fast is not None
    want = _general_path(resolver, props, 5, default_idx)
    assert fast[0].shape == want[0].shape
    assert np.array_equal(fast[1], want[1])
    assert np.array_equal(fast[0], want[0])
    # Another group on one triangle: the pass declines and the general path colours it.
    props[7, 0] = 6
    assert resolver.one_group(props, 5, default_idx) is None


def test_dominant_states_match_dominant_state_triangle_by_triangle() -> None:
    rng = np.random.default_rng(11)
    strings = ["8", "4", "0C", "4C3", "3F3F3F3F3F3F3F0C", "zz", ""]
    paint = {int(t): strings[int(rng.integers(0, len(strings)))] for t in rng.choice(10_000, 2000, replace=False)}
    triangles, states = dominant_states(paint)
    assert triangles.tolist() == list(paint)
    assert states.tolist() == [dominant_state(text) for text in paint.values()]
    assert [a.tolist() for a in dominant_states({})] == [[], []]


def test_093_materials_are_found_after_a_colour_group_and_not_inside_one() -> None:
    group = b'<m:color color="#111111"/><material id="8" colorid="9"/>'  # a stray tag inside the group
    head = b'<resources><m:colorgroup id="2">' + group + b'</m:colorgroup><color id="9" value="#FF0000"/>'
    data = head + b'<material id="3" colorid="9"/><object id="1"><mesh>'
    start = data.index(group)
    found = read_part_colors(data, np.array([[start, start + len(group)]], np.int64), len(data))
    assert {2, 3} <= set(found.groups)  # (the stray tag too, once 0.93 materials are read)
    colors = found.groups[3].colors
    assert colors is not None and colors.tolist() == [[255, 0, 0]]
    # Without the 0.93 material outside the group, the stray tag inside it is not read as one.
    data = head + b'<object id="1"><mesh>'
    found = read_part_colors(data, np.array([[start, start + len(group)]], np.int64), len(data))
    assert set(found.groups) == {2}


@needs_numba
def test_a_group_of_mostly_odd_spellings_decodes_as_the_expression_decodes_it() -> None:
    # More values than the numba pass keeps aside for one-by-one decoding: it stops, the expression reads.
    body = b"".join(b'<color color="%s"/>' % v for v in [b"red", b"#abc", b"#A1B2C3", b" #112233"] * 500)
    data = b"<g>" + body + b"</g>"
    got = group_colors(data, 3, 3 + len(body), use_numba=True)
    assert got.shape == (2000, 3) and got[2].tolist() == [0xA1, 0xB2, 0xC3]
    assert np.array_equal(got, group_colors(data, 3, 3 + len(body), use_numba=False))
    assert np.array_equal(hex_colors(body, use_numba=True), hex_colors(body, use_numba=False))
