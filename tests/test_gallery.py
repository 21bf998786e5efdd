"""gallery: entries collected from a real library (with and without the database), URLs, escaping.

The library is real corpus models scanned into a real SQLite file (see ``gallery_lib``); the page is
checked as text here and in a real browser in ``test_gallery_browser.py``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import urllib.parse
from pathlib import Path

import pytest
from click.testing import CliRunner
from gallery_lib import (
    EMBEDDED,
    FAILED,
    FAILED_REASON,
    FRESH,
    MISSING,
    OPTIONS,
    SCRIPT,
    STALE,
    TRIANGLES,
    Library,
    build_library,
)

from sidecar_thumbs.cli.gallery import gallery_command
from sidecar_thumbs.files.sidecar import read_sidecar, sidecar_path_for
from sidecar_thumbs.reports.gallery.entries import EntryStatus, Gallery, GalleryEntry, collect_gallery
from sidecar_thumbs.reports.gallery.page import gallery_data, relative_url, render_gallery_html, write_gallery
from sidecar_thumbs.store.state import StateDB


@pytest.fixture(scope="module")
def lib(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> Library:
    return build_library(corpus, tmp_path_factory.mktemp("gallery"))


def _by_rel(gallery: Gallery, lib: Library) -> dict[str, GalleryEntry]:
    return {os.path.relpath(e.path, lib.root): e for e in gallery.entries}


def _collect(lib: Library, *, with_db: bool, expected: str | None = OPTIONS.describe()) -> Gallery:
    if not with_db:
        return collect_gallery([str(lib.root)], expected_settings=expected)
    db = StateDB(lib.db_path, readonly=True)
    try:
        return collect_gallery([str(lib.root)], db=db, expected_settings=expected)
    finally:
        db.close()


def _data_of(page: str) -> dict[str, object]:
    m = re.search(r'<script type="application/json" id="gallery-data">(.*?)</script>', page, re.S)
    assert m is not None
    return json.loads(m.group(1))


# -- collecting ---------------------------------------------------------------------------------------


def test_with_database_every_state_and_fact(lib: Library) -> None:
    g = _collect(lib, with_db=True)
    entries = _by_rel(g, lib)
    assert g.from_database
    assert set(entries) == {*FRESH, SCRIPT, FAILED, MISSING, STALE}
    for rel in FRESH:
        e = entries[rel]
        assert e.status is EntryStatus.OK, (rel, e.detail)
        assert e.sidecar == str(sidecar_path_for(e.path)) and e.detail is None
        assert e.size == os.path.getsize(e.path)
    for rel, n in TRIANGLES.items():
        assert entries[rel].triangles == n and entries[rel].source == "rendered"
    assert entries[EMBEDDED].source == "embedded"
    failed = entries[FAILED]
    assert failed.status is EntryStatus.FAILED and FAILED_REASON in (failed.detail or "")
    assert failed.sidecar is None and failed.triangles is None
    assert entries[MISSING].status is EntryStatus.MISSING and entries[MISSING].sidecar is None
    stale = entries[STALE]
    assert stale.status is EntryStatus.STALE and "changed" in (stale.detail or "")
    assert stale.sidecar is not None  # the old picture is still worth showing, marked
    assert g.counts() == {"ok": len(FRESH) + 1, "failed": 1, "missing": 1, "stale": 1, "embedded": 1}


def test_files_alone_know_no_failures(lib: Library) -> None:
    entries = _by_rel(_collect(lib, with_db=False), lib)
    assert entries[FAILED].status is EntryStatus.MISSING and entries[FAILED].detail == "no thumbnail yet"
    assert entries[STALE].status is EntryStatus.STALE
    # Triangles and source come from the sidecar's own metadata.
    for rel, n in TRIANGLES.items():
        assert entries[rel].status is EntryStatus.OK and entries[rel].triangles == n
    assert entries[EMBEDDED].source == "embedded"


def test_other_settings_are_stale(lib: Library) -> None:
    entries = _by_rel(_collect(lib, with_db=False, expected="look=1 size=64 color=#ff0000 embedded=1"), lib)
    assert entries["bunny.stl"].status is EntryStatus.STALE
    assert "other settings" in (entries["bunny.stl"].detail or "")


def test_sorted_by_folder_then_name_with_labels(lib: Library) -> None:
    g = _collect(lib, with_db=False)
    keys = [(e.folder.casefold(), e.name.casefold()) for e in g.entries]
    assert keys == sorted(keys)
    entries = _by_rel(g, lib)
    assert entries["bunny.stl"].folder == "library"
    assert entries["parts/wheel [a] #2?.stl"].folder == "library/parts"


def test_touched_model_is_still_ok(tmp_path: Path, corpus: Path) -> None:
    lib = build_library(corpus, tmp_path)
    bunny = lib.root / "bunny.stl"
    st = bunny.stat()
    os.utime(bunny, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the gate moves, the content does not
    assert _by_rel(_collect(lib, with_db=False), lib)["bunny.stl"].status is EntryStatus.OK


def test_damaged_and_foreign_sidecars(tmp_path: Path, corpus: Path) -> None:
    lib = build_library(corpus, tmp_path)
    truncated = sidecar_path_for(lib.root / "bunny.stl")
    truncated.write_bytes(truncated.read_bytes()[:-30])
    foreign = sidecar_path_for(lib.root / "3mf/box.3mf")
    foreign.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    meta = read_sidecar(truncated, decode=False)  # what the gallery reads: the header chunks and the end
    assert meta is not None and meta.ours and not meta.readable
    assert read_sidecar(tmp_path / "nothing.png", decode=False) is None
    entries = _by_rel(_collect(lib, with_db=False), lib)
    assert entries["bunny.stl"].status is EntryStatus.MISSING and "damaged" in (entries["bunny.stl"].detail or "")
    assert entries["3mf/box.3mf"].status is EntryStatus.MISSING
    assert "not written by sidecar-thumbs" in (entries["3mf/box.3mf"].detail or "")


def test_sidecar_header_read_matches_pillow(lib: Library) -> None:
    from PIL import Image

    path = sidecar_path_for(lib.root / "bunny.stl")
    meta = read_sidecar(path, decode=False)
    with Image.open(path) as im:
        text = dict(im.text)
    assert meta is not None and meta.ours and meta.readable
    assert meta.content_hash == text["X-SidecarThumbs::Hash"] and meta.settings == text["X-SidecarThumbs::Settings"]
    assert meta.mtime_ns == int(text["X-SidecarThumbs::MTimeNs"]) and meta.triangles == 292


# -- URLs -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "encoded"),
    [
        ("a b.png", "a%20b.png"),
        ("#1?.png", "%231%3F.png"),
        ("100%.png", "100%25.png"),
        ("[a].png", "%5Ba%5D.png"),
        ("Würfel ☠.png", "W%C3%BCrfel%20%E2%98%A0.png"),
        ("c:d.png", "c%3Ad.png"),  # would otherwise read as a URL scheme
    ],
)
def test_relative_url_encodes_each_segment(tmp_path: Path, name: str, encoded: str) -> None:
    assert relative_url(tmp_path / "x y" / name, tmp_path) == "x%20y/" + encoded
    assert relative_url(tmp_path / name, tmp_path / "out") == "../" + encoded


def test_relative_url_of_undecodable_name(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.png")  # Latin-1 bytes, not UTF-8: a surrogate escape in Python
    assert relative_url(tmp_path / name, tmp_path) == "caf%E9.png"


def test_page_urls_resolve_to_the_sidecars(lib: Library, tmp_path: Path) -> None:
    out_dir = tmp_path / "elsewhere" / "pages"
    out_dir.mkdir(parents=True)
    data = gallery_data(_collect(lib, with_db=True), out_dir)
    folders, entries = data["folders"], data["entries"]
    assert isinstance(folders, list) and isinstance(entries, list)
    images = [(folders[e[1]][1] + e[7]) for e in entries if e[7] is not None]
    assert len(images) == len(FRESH) + 2  # fresh + script-named + stale
    for url in images:
        assert not re.search(r"[ #?\[\]<>]", url), url
        target = out_dir / urllib.parse.unquote(url)
        assert target.is_file() and target.name.endswith(".thumbnail.png"), url


def test_embed_puts_the_sidecar_bytes_in(lib: Library, tmp_path: Path) -> None:
    data = gallery_data(_collect(lib, with_db=True), tmp_path, embed=True)
    by_name = {e[0]: e for e in data["entries"]}  # type: ignore[union-attr]
    image = by_name["bunny.stl"][7]
    assert image.startswith("data:image/png;base64,")
    assert base64.b64decode(image.split(",", 1)[1]) == sidecar_path_for(lib.root / "bunny.stl").read_bytes()
    assert by_name[MISSING.split("/")[-1]][7] is None


# -- the page as text -------------------------------------------------------------------------------------


def _entry(name: str, folder: str = "lib", detail: str | None = None) -> GalleryEntry:
    status = EntryStatus.FAILED if detail else EntryStatus.OK
    return GalleryEntry(f"/lib/{name}", folder, name, 10, status, detail, None, None, None)


def test_html_in_names_and_reasons_cannot_inject(tmp_path: Path) -> None:
    evil = "<script>alert(1)</script>.stl"
    reason = "</script><img src=x onerror=alert(2)><!--"
    g = Gallery(("/lib/<b>root",), (_entry(evil), _entry("x.stl", "</script>", reason)), (), True)
    page = render_gallery_html(g, tmp_path)
    # Only the page's own two script elements are ever closed, and no markup comes from the data.
    assert page.count("</script>") == 2
    assert "<script>alert" not in page and "<img src=x" not in page and "<!--" not in page
    assert "<b>root" not in page and "<title>Models: &lt;b&gt;root</title>" in page
    data = _data_of(page)
    assert [e[0] for e in data["entries"]] == [evil, "x.stl"]  # type: ignore[index]
    assert data["entries"][1][6] == reason  # type: ignore[index]


def test_no_external_resources(lib: Library, tmp_path: Path) -> None:
    page = render_gallery_html(_collect(lib, with_db=True), tmp_path)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", page)
    assert "<img" not in page  # images are made by the script, a screenful at a time
    assert "{{" not in page


def test_write_gallery_and_command(lib: Library, tmp_path: Path) -> None:
    out = write_gallery(_collect(lib, with_db=False), tmp_path / "g.html", durable=False)
    assert out == tmp_path / "g.html" and out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    target = tmp_path / "cmd" / "gallery.html"
    target.parent.mkdir()
    env = {"DAM_DATABASE_PATH": str(tmp_path / "nowhere" / "db.sqlite3")}
    result = CliRunner().invoke(gallery_command, [str(lib.root), "-o", str(target), "--db", str(lib.db_path)], env=env)
    assert result.exit_code == 0, result.output
    assert "failed 1" in result.output and "with the database" in result.output
    entries = _data_of(target.read_text(encoding="utf-8"))["entries"]
    assert sum(e[4] == "failed" for e in entries) == 1  # type: ignore[union-attr]
    alone = CliRunner().invoke(gallery_command, [str(lib.root), "-o", str(target)], env=env)
    assert alone.exit_code == 0 and "from the files alone" in alone.output and "failed 0" in alone.output
    typo = CliRunner().invoke(gallery_command, [str(lib.root), "-o", str(target), "--db", str(tmp_path / "no.db")])
    assert typo.exit_code == 1
