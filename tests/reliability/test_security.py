"""Security: symlinks out of a root, sidecar paths, deletion only of our files, XML that never
resolves entities or fetches anything (issue #6, item 7)."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import pytest
from bombs import xml_3mf
from reliability_util import SMALL, binary_stl

from sidecar_thumbs.files.sidecar import sidecar_path_for
from sidecar_thumbs.reports.clean import clean
from sidecar_thumbs.reports.verify import plan_fixes, verify
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.jobs import RenderJob, render_job
from sidecar_thumbs.work.scan import scan

pytestmark = pytest.mark.integration  # reliability suite: real processes, faults, many files


def _run_scan(root: Path, db: StateDB) -> None:
    scan([str(root)], db=db, make_executor=InlineExecutor, options=SMALL, durable=False)


def test_symlink_out_of_the_root_is_never_written_through_or_deleted(tmp_path: Path) -> None:
    root, outside = tmp_path / "lib", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret = outside / "theirs.stl"
    secret.write_bytes(binary_stl(20))
    (root / "link.stl").symlink_to(secret)
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    with StateDB(tmp_path / "db.sqlite3") as db:
        _run_scan(root, db)
        report = verify([str(root)], db=db)
        plan_fixes(report, db)
    clean([str(root)], now=1e12)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before, "a file outside the root changed"
    assert (root / "link.stl").is_symlink() and (root / "linkdir").is_symlink()


def test_sidecar_path_never_leaves_the_model_folder() -> None:
    for name in ["a.stl", "../a.stl", "..", ".", "x/../../y.stl", "/abs/m.stl", "m\nx.stl", "..stl"]:
        model = Path("/lib/folder") / name
        sidecar = sidecar_path_for(model)
        assert sidecar.parent == model.parent, name
        assert sidecar.name.startswith(".") and "/" not in sidecar.name


def test_clean_and_verify_fix_never_delete_files_without_our_metadata(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    root.mkdir()
    foreign = {
        ".gone.stl.thumbnail.png": b"\x89PNG\r\n\x1a\n not ours",
        ".other.stl.thumbnail.png": b"plain text under a sidecar name",
        ".x.stl.thumbnail.png.deadbeef.tmp.keep": b"look-alike temp name",
    }
    for name, data in foreign.items():
        (root / name).write_bytes(data)
        os.utime(root / name, (1, 1))  # old: every age rule would allow removal
    (root / ".dir.stl.thumbnail.png").mkdir()
    with StateDB(tmp_path / "db.sqlite3") as db:
        report = verify([str(root)], db=db)
        plan_fixes(report, db)
    clean([str(root)], now=1e12)
    for name, data in foreign.items():
        assert (root / name).read_bytes() == data
    assert (root / ".dir.stl.thumbnail.png").is_dir()


class _Listener:
    """A local TCP listener that records whether anything connected (an XXE fetch would)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(5)
        self.sock.settimeout(0.2)
        self.hits = 0
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/x.dtd"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(2)
        self.sock.close()


CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"


@pytest.mark.parametrize("where", ["model", "rels"])
def test_3mf_xml_never_resolves_entities_or_fetches(tmp_path: Path, where: str) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    listener = _Listener()
    try:
        doctype = (
            f'<!DOCTYPE model [<!ENTITY file SYSTEM "file://{secret}"><!ENTITY web SYSTEM "{listener.url}">'
            f'<!ENTITY % remote SYSTEM "{listener.url}"> %remote;]>'
        )
        model = (
            f'<?xml version="1.0"?>{doctype}<model xmlns="{CORE}"><metadata name="Title">&file;&web;</metadata>'
            '<resources><object id="1"><mesh><vertices><vertex x="0" y="0" z="0"/><vertex x="1" y="0" z="0"/>'
            '<vertex x="0" y="1" z="0"/></vertices><triangles><triangle v1="0" v2="1" v3="2"/></triangles>'
            '</mesh></object></resources><build><item objectid="1"/></build></model>'
        ).encode()
        if where == "model":
            data = xml_3mf(model)
        else:
            from bombs import RELS, deflated, zip_archive

            rels = RELS.replace(b"?>", b"?>" + doctype.replace("model", "Relationships").encode(), 1)
            import zlib

            plain = model.replace(doctype.encode(), b"").replace(b"&file;&web;", b"")
            data = zip_archive(
                [
                    ("_rels/.rels", deflated(rels), len(rels), zlib.crc32(rels)),
                    ("3D/3dmodel.model", deflated(plain), len(plain), zlib.crc32(plain)),
                ]
            )
        path = tmp_path / "xxe.3mf"
        path.write_bytes(data)
        result = render_job(RenderJob(str(path), SMALL))
    finally:
        listener.close()
    assert not result.ok and result.error and "DTD/entities not allowed" in result.error, result.error
    assert listener.hits == 0, "the XML parser fetched a URL"
    assert "TOP-SECRET" not in (result.error or "")


@pytest.mark.parametrize(
    "bad", ['x"; DROP TABLE st_models; --', "a b", "", "1abc", "t;", "name`", "t\u0430ble", "a" * 65, 'x"y']
)
def test_config_values_used_in_sql_are_validated(bad: str) -> None:
    # The only configuration values that reach SQL are the asset manager's table and columns (#5).
    from sidecar_thumbs.dam.mapping import DamMapping
    from sidecar_thumbs.errors import ConfigError

    with pytest.raises(ConfigError):
        DamMapping(table=bad)
    with pytest.raises(ConfigError):
        DamMapping(table="models", flag_column=bad)
