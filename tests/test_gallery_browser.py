"""The gallery page in a real headless Chromium (Debian's ``chromium``), driven with Playwright.

Checks what a person would: thumbnails load, a failed model shows its reason, missing and stale are
marked, and the filters narrow the grid. Saves a screenshot to ``tmp_path`` (and to
``$SIDECAR_THUMBS_SCREENSHOT_DIR`` when set). Skipped when Chromium or Playwright is not installed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gallery_lib import EMBEDDED, FAILED_REASON, FRESH, MISSING, OPTIONS, SCRIPT, STALE, Library, build_library

from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.reports.gallery.entries import EntryStatus, Gallery, GalleryEntry, collect_gallery
from sidecar_thumbs.reports.gallery.page import write_gallery
from sidecar_thumbs.store.state import StateDB

pytestmark = pytest.mark.integration  # drives a real headless Chromium

CHROMIUM = os.environ.get("SIDECAR_THUMBS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not os.path.isfile(CHROMIUM):
    pytest.skip(f"chromium not installed ({CHROMIUM})", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")

# As root in a container: no sandbox; and nothing that phones home while the test runs.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh --user-data-dir
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=CHROMIUM,
            args=FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Library:
    return build_library(corpus, tmp_path_factory.mktemp("gallery-browser"))


def _open(browser: Any, page_path: Path, height: int = 900) -> tuple[Any, list[str]]:
    page = browser.new_page()
    page.set_viewport_size({"width": 1280, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    page.on("console", lambda msg: errors.append(f"console: {msg.text}") if msg.type == "error" else None)
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(page_path.as_uri())
    page.wait_for_function("window.galleryReady === true")
    return page, errors


def _cards(page: Any) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        ".card",
        "cs => cs.map(c => ({status: c.dataset.status, name: c.querySelector('.name').textContent}))",
    )


def _wait_images(page: Any) -> list[dict[str, Any]]:
    page.wait_for_function("[...document.images].every(i => i.complete)")
    return page.eval_on_selector_all(
        "img", "is => is.map(i => ({src: i.getAttribute('src'), w: i.naturalWidth, h: i.naturalHeight}))"
    )


def _screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=False)
    extra = os.environ.get("SIDECAR_THUMBS_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(extra) / name)
    assert shot.stat().st_size > 10_000  # a real picture, not a blank page
    return shot


def _gallery(lib: Library) -> Gallery:
    db = StateDB(lib.db_path, readonly=True)
    try:
        return collect_gallery([str(lib.root)], db=db, expected_settings=OPTIONS.describe())
    finally:
        db.close()


@pytest.mark.parametrize("embed", [False, True], ids=["linked", "embedded"])
def test_grid_placeholders_and_filters(browser: Any, lib: Library, tmp_path: Path, embed: bool) -> None:
    # A page in a sibling folder: every image URL climbs out with ".." and back down.
    (tmp_path / "site").mkdir()
    out = write_gallery(_gallery(lib), tmp_path / "site" / "gallery.html", embed=embed, durable=False)
    page, errors = _open(browser, out, height=1700)  # tall enough for every card of the small library

    images = _wait_images(page)
    assert len(images) == len(FRESH) + 2  # fresh ones + the script-named one + the stale one
    assert all(i["w"] == OPTIONS.render.size and i["h"] == OPTIONS.render.size for i in images), images
    cards = _cards(page)
    assert {c["name"] for c in cards} >= {Path(r).name for r in (*FRESH, MISSING, STALE, SCRIPT)}
    assert "script>.stl" in {c["name"] for c in cards}  # shown as text

    failed = page.locator(".card[data-status=failed]")
    assert failed.count() == 1 and failed.locator(".ph-failed svg").count() == 1
    assert FAILED_REASON in failed.locator(".reason").inner_text()
    assert page.locator(".card[data-status=missing] .badge.b-missing").count() == 1
    assert page.locator(".card[data-status=stale] .badge.b-stale").count() == 1
    assert page.locator(".src-embedded").count() == 1
    _screenshot(page, tmp_path, f"gallery-{'embedded' if embed else 'linked'}.png")

    page.fill("#q", "WÜRFEL")  # case-insensitive, non-ASCII
    page.wait_for_function("document.querySelectorAll('.card').length === 1")
    assert [c["name"] for c in _cards(page)] == ["100% Würfel ☠.stl"]
    page.fill("#q", "library/3mf")  # folders match too
    page.wait_for_function("document.querySelectorAll('.card').length === 2")
    page.fill("#q", "")
    page.wait_for_function(f"document.querySelectorAll('.card').length === {len(cards)}")

    for status, expected in [("failed", 1), ("missing", 1), ("stale", 1), ("embedded", 1)]:
        page.click(f"#status button[data-status={status}]")
        got = _cards(page)
        assert len(got) == expected, (status, got)
        assert status == "embedded" or all(c["status"] == status for c in got)
    assert _cards(page)[0]["name"] == Path(EMBEDDED).name
    page.click("#status button[data-status=ok]")
    assert {c["status"] for c in _cards(page)} == {"ok"}
    page.click("#status button[data-status=all]")

    # Folders collapse and expand.
    before = len(_cards(page))
    page.click(".folder:has(.path:text-is('library/parts'))")
    assert len(_cards(page)) == before - 4  # wheel, Würfel, added later, changed
    page.click("#expand")
    assert len(_cards(page)) == before
    page.click("#collapse")
    assert _cards(page) == [] and page.locator(".folder").count() >= 4
    assert errors == []
    page.close()


def test_a_broken_image_link_becomes_a_placeholder(browser: Any, lib: Library, tmp_path: Path) -> None:
    gallery = _gallery(lib)
    out = write_gallery(gallery, tmp_path / "gallery.html", durable=False)
    moved = tmp_path / "moved.html"
    out.rename(moved)
    (tmp_path / "sub").mkdir()
    moved = moved.rename(tmp_path / "sub" / "gallery.html")  # links now point one folder too high
    page, _ = _open(browser, moved, height=1700)
    page.wait_for_function("document.querySelectorAll('.card img').length === 0")
    assert page.locator(".ph-missing .reason:text-is('thumbnail file not found')").count() == len(FRESH) + 2
    page.close()


def test_many_entries_make_few_elements(browser: Any, lib: Library, tmp_path: Path) -> None:
    """A big library: only about a screenful of cards exists at a time; scrolling brings the rest."""
    sidecar = str(sidecar_path_for(lib.root / "bunny.stl"))
    entries = tuple(
        GalleryEntry(
            f"{lib.root}/bunny.stl", f"library/folder {i // 100:03d}", f"model {i:05d}.stl", 1000 + i,
            EntryStatus.FAILED if i % 7 == 0 else EntryStatus.OK, "bad" if i % 7 == 0 else None, "rendered",
            292, None if i % 7 == 0 else sidecar,
        )
        for i in range(5000)
    )  # fmt: skip
    out = write_gallery(Gallery((str(lib.root),), entries, (), True), tmp_path / "big.html", durable=False)
    page, errors = _open(browser, out)
    first = _cards(page)
    assert 0 < len(first) < 200
    assert first[0]["name"] == "model 00000.stl"
    page.eval_on_selector("#viewport", "v => { v.scrollTop = v.scrollHeight; }")
    page.wait_for_function(
        "[...document.querySelectorAll('.card .name')].some(n => n.textContent === 'model 04999.stl')"
    )
    assert len(_cards(page)) < 200
    page.fill("#q", "model 0420")
    page.wait_for_function("document.querySelectorAll('.card').length === 10")
    assert errors == []
    page.close()
