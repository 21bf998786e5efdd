"""The volume probe runs once per volume, not at every start: its answer is kept in the state database with the
volume's identity, and asked again when another volume stands at the root.

Real folders in tmp_path, real SQLite files; "another volume at the same path" is a real exFAT volume
mounted over the folder (``ci_volume.py``; skipped where it cannot be mounted). Whether the probe wrote into
the root is read off the root folder's mtime (creating and removing the probe file moves it) and off the
time the database says the volume was probed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from ci_volume import cannot_mount_reason, exfat_volume

from sidecar_thumbs.files.pathcanon import SENSITIVE, VolumeRules, Volumes, probe_rules
from sidecar_thumbs.files.volume_identity import volume_identity
from sidecar_thumbs.render.thumbnail import ThumbnailOptions
from sidecar_thumbs.store.state import StateDB
from sidecar_thumbs.work.executors.local import InlineExecutor
from sidecar_thumbs.work.scan import scan

REPO = Path(__file__).resolve().parents[1]
OLD_NS = 1_000_000_000 * 10**9  # 2001: a folder mtime no probe leaves behind
CASE_INSENSITIVE = VolumeRules(case_insensitive=True)


def age(folder: Path) -> None:
    os.utime(folder, ns=(OLD_NS, OLD_NS))


def written_into(folder: Path) -> bool:
    """Whether an entry was created or removed in ``folder`` since :func:`age`."""
    return folder.stat().st_mtime_ns != OLD_NS


def probed(db: StateDB, root: Path) -> list[tuple[str, float]]:
    return db._read("SELECT identity, probed_at FROM st_volumes WHERE root = ?", (str(root),))


def detect(db_path: Path, root: Path) -> tuple[VolumeRules, bool, list[tuple[str, float]]]:
    """A start: open the database, detect the root's volume. Returns (rules, wrote a probe, the cached row)."""
    age(root)
    with StateDB(db_path) as db:
        vols = Volumes.detect([str(root)], cache=db)
        return vols.rules_for(str(root / "x.stl")), written_into(root), probed(db, root)


def test_a_restart_does_not_write_the_probe_into_the_root_again(tmp_path: Path) -> None:
    lib, db_path = tmp_path / "lib", tmp_path / "state.sqlite3"
    lib.mkdir()
    rules, wrote, first = detect(db_path, lib)
    assert (rules, wrote, len(first)) == (SENSITIVE, True, 1)  # the first start asks the volume
    rules, wrote, again = detect(db_path, lib)
    assert (rules, wrote, again) == (SENSITIVE, False, first)  # the next one knows it
    assert os.listdir(lib) == []


def test_a_scan_probes_once_and_the_next_scan_not_at_all(tmp_path: Path) -> None:
    lib, db_path = tmp_path / "lib", tmp_path / "state.sqlite3"
    lib.mkdir()
    shutil.copy(REPO / "examples" / "models" / "gear.stl", lib / "gear.stl")

    def run() -> None:
        with StateDB(db_path) as db:
            scan([str(lib)], db=db, make_executor=InlineExecutor, options=ThumbnailOptions(), durable=False)
        age(lib)  # after the first render's sidecar: only a probe moves it from here on

    run()
    with StateDB(db_path) as db:
        (first,) = probed(db, lib)
    run()
    assert not written_into(lib)
    with StateDB(db_path) as db:
        assert probed(db, lib) == [first]


def test_another_folder_at_the_root_is_probed_again(tmp_path: Path) -> None:
    lib, db_path = tmp_path / "lib", tmp_path / "state.sqlite3"
    lib.mkdir()
    _, _, ((before, _),) = detect(db_path, lib)
    lib.rename(tmp_path / "away")
    lib.mkdir()  # a folder put where the volume was: another inode
    rules, wrote, ((after, _),) = detect(db_path, lib)
    assert (rules, wrote) == (SENSITIVE, True) and after != before


def test_without_a_cache_every_probe_writes(tmp_path: Path) -> None:
    age(tmp_path)
    assert probe_rules(str(tmp_path)) == SENSITIVE and written_into(tmp_path)
    age(tmp_path)
    assert probe_rules(str(tmp_path)) == SENSITIVE and written_into(tmp_path)


def test_a_root_that_cannot_be_stated_is_not_cached(tmp_path: Path) -> None:
    with StateDB(tmp_path / "state.sqlite3") as db:
        assert probe_rules(str(tmp_path / "not-mounted"), cache=db) is None
        assert db._read("SELECT count(*) FROM st_volumes") == [(0,)]


def test_the_identity_names_the_volume(tmp_path: Path) -> None:
    ident = volume_identity(str(tmp_path))
    st = tmp_path.stat()
    assert ident is not None and (ident.device, ident.inode) == (st.st_dev, st.st_ino)
    assert str(tmp_path).startswith(ident.mount_point) and os.path.ismount(ident.mount_point)
    if os.path.exists("/proc/self/mountinfo"):
        assert ident.fs_type and ident.source  # read from mountinfo, no round trip
    assert volume_identity(str(tmp_path / "absent")) is None
    assert ident.as_text() == volume_identity(str(tmp_path)).as_text()  # type: ignore[union-attr]


def test_another_volume_mounted_at_the_same_path_is_probed_again(tmp_path: Path) -> None:
    """An empty folder (ext4) → an exFAT volume mounted on it → a restart → unmounted (the folder again).

    The root is the mount point itself, as ``/Volumes/3D-Files`` is. exFAT's root folder has no timestamps,
    so while mounted the probe is seen in the database only (it keeps a row only after writing a probe).
    """
    reason = cannot_mount_reason()
    if reason:
        pytest.skip(f"no case-insensitive test volume: {reason}")
    root, db_path = tmp_path / "3D-Files", tmp_path / "state.sqlite3"
    root.mkdir()
    rules, wrote, unmounted = detect(db_path, root)
    assert (rules, wrote) == (SENSITIVE, True)
    (tmp_path / "img").mkdir()
    try:
        with exfat_volume(tmp_path / "img", at=root):
            with StateDB(db_path) as db:
                assert Volumes.detect([str(root)], cache=db).rules_for(str(root)) == CASE_INSENSITIVE
                mounted = probed(db, root)
            assert mounted != unmounted  # another identity: probed, and kept
            with StateDB(db_path) as db:  # a restart while mounted: not asked again
                assert Volumes.detect([str(root)], cache=db).rules_for(str(root)) == CASE_INSENSITIVE
                assert probed(db, root) == mounted
    except RuntimeError as exc:
        pytest.skip(str(exc))
    rules, wrote, again = detect(db_path, root)  # the ext4 folder under the mount point again
    assert (rules, wrote) == (SENSITIVE, True)
    (ext4_then, t_then), (ext4_now, t_now) = unmounted[0], again[0]
    assert ext4_now == ext4_then and t_now > t_then  # the same folder as first, asked again after exFAT's row
