"""The progress line's rate and ETA (cli/progress.py), with a clock the test moves."""

from __future__ import annotations

import io

import pytest

from sidecar_thumbs.cli import progress as progress_mod
from sidecar_thumbs.cli.progress import COMPILING, Progress


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress_mod.time, "monotonic", c)
    return c


def test_rate_and_eta_over_the_whole_run(clock: Clock) -> None:
    p = Progress(10, stream=io.StringIO(), mode="lines")
    assert p.line().endswith("starting")
    clock.now += 2.0
    p.update(True)
    clock.now += 2.0
    p.update(False)
    assert p.rate() == pytest.approx(0.5)
    assert p.eta_s() == pytest.approx(16.0)
    assert "✓ 1 ✗ 1" in p.line() and "ETA" in p.line()


def test_a_compiling_run_measures_the_rate_from_its_first_file(clock: Clock) -> None:
    """A minute of compiling before the first file must not promise a ten-minute ETA for the rest."""
    p = Progress(101, stream=io.StringIO(), mode="lines", compiling=True)
    assert COMPILING in p.line()
    clock.now += 60.0  # both workers compile
    p.update(True)
    assert p.eta_s() is None
    assert p.line().endswith("measuring the rate")
    for _ in range(10):
        clock.now += 0.1
        p.update(True)
    assert p.rate() == pytest.approx(10.0)
    assert p.eta_s() == pytest.approx(9.0)  # 90 left at 10 a second; over the whole run it would say ~550 s


def test_the_last_line_says_done(clock: Clock) -> None:
    stream = io.StringIO()
    p = Progress(2, stream=stream, mode="lines", log_every=3600)
    clock.now += 1.0
    p.update(True)
    clock.now += 1.0
    p.update(True)
    assert stream.getvalue().splitlines()[-1].endswith("done")
    one = Progress(1, stream=io.StringIO(), mode="lines", compiling=True)
    clock.now += 30.0
    one.update(True)
    assert one.line().endswith("done")
