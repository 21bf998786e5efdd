"""The numba colour-group pass against its twin (the regular expression): the same colours, value for value."""

from __future__ import annotations

import numpy as np
import pytest

from sidecar_thumbs.mesh.colors3mf import hex_colors

numba = pytest.importorskip("numba")

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


@pytest.mark.parametrize("body", BODIES)
def test_numba_pass_matches_the_expression(body: bytes) -> None:
    got = hex_colors(body, use_numba=True)
    want = hex_colors(body, use_numba=False)
    assert got.dtype == want.dtype == np.uint8
    assert got.shape == want.shape
    assert np.array_equal(got, want)


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
