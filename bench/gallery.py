"""Gallery page with 34,000 entries in headless Chromium: page size, load, filter and scroll times.

Entries are synthetic (340 folders of 100 models; every 7th failed, every 13th missing, every 17th
stale) and point at a few real sidecars rendered from the corpus, so images really load.

    python bench/gallery.py [--entries 34000] [--chromium /usr/bin/chromium]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from sidecar_thumbs.files.sidecar import write_sidecar
from sidecar_thumbs.render.thumbnail import make_thumbnail
from sidecar_thumbs.reports.gallery.entries import EntryStatus, Gallery, GalleryEntry
from sidecar_thumbs.reports.gallery.page import write_gallery

CORPUS = Path(os.environ.get("SIDECAR_THUMBS_CORPUS", Path(__file__).resolve().parents[2] / "shared" / "corpus"))
MODELS = ["stl-binary/prusaslicer__bunny.stl", "stl-binary/lib3mf__Helix.stl", "stl-binary/voron2__Filament_Card.stl"]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


DETAILS = {
    EntryStatus.FAILED: "binary STL truncated: header says 5000 triangles, file holds 120",
    EntryStatus.MISSING: "no thumbnail yet",
    EntryStatus.STALE: "the model changed",
}


def _entries(folder: Path, n: int) -> list[GalleryEntry]:
    sidecars = []
    for rel in MODELS:
        model = folder / Path(rel).name
        shutil.copyfile(CORPUS / rel, model)
        sidecars.append(str(write_sidecar(model, make_thumbnail(model).png, durable=False)))
    out = []
    for i in range(n):
        status = EntryStatus.OK
        if i % 7 == 0:
            status = EntryStatus.FAILED
        elif i % 13 == 0:
            status = EntryStatus.MISSING
        elif i % 17 == 0:
            status = EntryStatus.STALE
        shown = status in (EntryStatus.OK, EntryStatus.STALE)
        detail = DETAILS.get(status)
        out.append(
            GalleryEntry(
                path=str(folder / f"part {i:05d}.stl"),
                folder=f"library/project {i // 100:03d}/parts",
                name=f"part {i:05d} #{i % 10}.stl",
                size=1000 + 37 * i,
                status=status,
                detail=detail,
                source="embedded" if i % 11 == 0 else "rendered",
                triangles=100 + i,
                sidecar=sidecars[i % len(sidecars)] if shown else None,
            )
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=34_000)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--screenshot", type=Path, default=None)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        entries = _entries(base, args.entries)
        t0 = time.perf_counter()
        page_path = write_gallery(Gallery((str(base),), tuple(entries), (), True), base / "gallery.html")
        write_s = time.perf_counter() - t0
        print(f"entries {args.entries}: page {page_path.stat().st_size / 1e6:.1f} MB written in {write_s:.2f} s")
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                str(base / "profile"), executable_path=args.chromium, args=FLAGS, headless=True,
                viewport={"width": 1280, "height": 900},
            )  # fmt: skip
            page = ctx.new_page()
            t0 = time.perf_counter()
            page.goto(page_path.as_uri())
            page.wait_for_function("window.galleryReady === true")
            page.wait_for_function("[...document.images].every(i => i.complete)")
            load_s = time.perf_counter() - t0
            nav = page.evaluate(
                "(() => { const n = performance.getEntriesByType('navigation')[0];"
                " return {dcl: n.domContentLoadedEventEnd, load: n.loadEventEnd}; })()"
            )
            cards = page.locator(".card").count()
            imgs = page.locator("img").count()
            print(f"load to first screen with images: {load_s * 1e3:.0f} ms (DOMContentLoaded {nav['dcl']:.0f} ms, "
                  f"load {nav['load']:.0f} ms); {cards} cards, {imgs} <img> in the DOM")  # fmt: skip
            # Scroll through: 40 jumps across the whole height, each drawn in the next frame.
            ms = page.evaluate(
                """async () => {
                  const v = document.getElementById('viewport'); const t = [];
                  for (let k = 1; k <= 40; k++) {
                    const t0 = performance.now(); v.scrollTop = v.scrollHeight * k / 40;
                    await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                    t.push(performance.now() - t0);
                  }
                  return t; }"""
            )
            print(f"scroll jump to next painted frame: median {sorted(ms)[len(ms) // 2]:.1f} ms, max {max(ms):.1f} ms")
            for label, action in [
                ("text filter 'project 123'", lambda: page.fill("#q", "project 123")),
                ("clear text filter", lambda: page.fill("#q", "")),
                ("status failed", lambda: page.click("#status button[data-status=failed]")),
                ("status all", lambda: page.click("#status button[data-status=all]")),
                ("collapse all", lambda: page.click("#collapse")),
                ("expand all", lambda: page.click("#expand")),
            ]:
                t0 = time.perf_counter()
                action()
                page.evaluate("() => new Promise(r => setTimeout(() => requestAnimationFrame(() => r()), 90))")
                dt = (time.perf_counter() - t0) * 1e3
                print(f"{label}: {dt:.0f} ms (wall, incl. a 90 ms settle wait), {page.locator('.card').count()} cards")
            if args.screenshot:
                page.fill("#q", "project 12")
                page.wait_for_timeout(300)
                page.screenshot(path=str(args.screenshot))
            ctx.close()


if __name__ == "__main__":
    main()
