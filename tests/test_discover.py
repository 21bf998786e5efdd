"""Discovery: which names are models, and a safe walk over real folders in tmp_path."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar_thumbs.files import discover
from sidecar_thumbs.files.discover import (
    IGNORED_DIRS,
    FoundFile,
    WalkProblem,
    find_model_files,
    is_ignored_dir,
    is_ignored_name,
    is_model_name,
    iter_model_files,
)

needs_symlinks = pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")


def touch(path: Path, data: bytes = b"solid x\nendsolid x\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def paths(found: list[FoundFile]) -> list[str]:
    return [f.path for f in found]


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["Gear v2.stl", "a.STL", "b.3mf", "c.3MF", "d.Stl", "with.dots.in.name.stl", ".hidden.stl"]
)
def test_model_names_any_case(name: str) -> None:
    assert is_model_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "._Gear v2.stl",  # AppleDouble
        ".DS_Store",
        ".Gear v2.stl.thumbnail.png",  # our sidecar
        ".Gear v2.stl.thumbnail.png.k3j9x2.tmp",  # our temp file while writing
        "~$part.3mf",
        ".~lock.part.3mf#",
    ],
)
def test_ignored_names(name: str) -> None:
    assert is_ignored_name(name)
    assert not is_model_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "Gear.stl.thumbnail.png",
        "x.stl",
        "x.stl.bak",
        "x.obj",
        "x.step",
        "stl",
        "x.stl.tmp",
        "x.thumbnail.png.stl",
    ],
)
def test_not_ignored_names(name: str) -> None:
    assert not is_ignored_name(name)


@pytest.mark.parametrize(
    "name", ["x.stl.bak", "x.mtl", "x.png", "x.txt", "x.xml", "stl", "x.stl.part", "x.3mf.tmp", "x.obj.zip.part", ""]
)
def test_not_model_names(name: str) -> None:
    assert not is_model_name(name)


@pytest.mark.parametrize("name", [*sorted(IGNORED_DIRS), "__macosx", ".trashes", ".Trash-1000"])
def test_ignored_dirs(name: str) -> None:
    assert is_ignored_dir(name)


@pytest.mark.parametrize("name", ["models", "MACOSX", ".git", "Trash", "eaDir"])
def test_ordinary_dirs_walked(name: str) -> None:
    assert not is_ignored_dir(name)


# --- the walk ----------------------------------------------------------------------------------


def test_walk_finds_models_and_skips_everything_in_the_skip_list(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    wanted = [
        touch(root / "Gear v2.stl"),
        touch(root / "UPPER.STL"),
        touch(root / "mixed.3Mf"),
        touch(root / "sub" / "deeper" / "part.3mf"),
    ]
    touch(root / "._Gear v2.stl")
    touch(root / ".DS_Store")
    touch(root / ".Gear v2.stl.thumbnail.png")
    touch(root / ".Gear v2.stl.thumbnail.png.a8f3.tmp")
    touch(root / "~$mixed.3Mf")
    touch(root / "readme.txt")
    touch(root / "part.stl.bak")
    for ignored in [*sorted(IGNORED_DIRS), ".Trash-501", "__macosx"]:
        touch(root / ignored / "copy.stl")
        touch(root / "sub" / ignored / "nested" / "copy.3mf")
    found = list(iter_model_files([root]))
    assert sorted(paths(found)) == sorted(str(p) for p in wanted)


def test_found_files_carry_stat_values(tmp_path: Path) -> None:
    model = touch(tmp_path / "m.stl", b"x" * 1234)
    os.utime(model, ns=(1_700_000_000_000_000_001, 1_700_000_000_000_000_001))
    [found] = iter_model_files([tmp_path])
    st = os.stat(model)
    assert found == FoundFile(str(model), 1234, 1_700_000_000_000_000_001, st.st_ctime_ns)


def test_walk_notes_which_models_have_a_sidecar_name_beside_them(tmp_path: Path) -> None:
    touch(tmp_path / "with.stl")
    touch(tmp_path / ".with.stl.thumbnail.png")
    touch(tmp_path / "without.stl")
    found = {Path(f.path).name: f.has_sidecar for f in iter_model_files([tmp_path])}
    assert found == {"with.stl": True, "without.stl": False}


def test_any_entry_named_like_a_sidecar_counts_as_listed_and_a_folder_so_named_is_still_walked(tmp_path: Path) -> None:
    # The planner's test for "the sidecar is there" is lexists: a folder or a link of that name is there too.
    touch(tmp_path / "a.stl")
    touch(tmp_path / ".a.stl.thumbnail.png" / "inside.stl")
    touch(tmp_path / "b.stl")
    os.symlink(tmp_path / "nowhere", tmp_path / ".b.stl.thumbnail.png")
    found = {f.path: f.has_sidecar for f in iter_model_files([tmp_path])}
    assert found == {
        str(tmp_path / "a.stl"): True,
        str(tmp_path / "b.stl"): True,
        str(tmp_path / ".a.stl.thumbnail.png" / "inside.stl"): False,
    }


def test_walk_rows_are_the_found_files_as_tuples(tmp_path: Path) -> None:
    touch(tmp_path / "b" / "2.stl")
    touch(tmp_path / "a.stl")
    touch(tmp_path / ".a.stl.thumbnail.png")
    touch(tmp_path / "._a.stl")
    rows = list(discover.iter_walk_rows([tmp_path]))
    files = list(iter_model_files([tmp_path]))
    assert [FoundFile(*r) for r in rows] == files
    assert [r[4] for r in rows] == [f.has_sidecar for f in files] == [True, False]


def test_paths_are_absolute_and_normalised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    touch(tmp_path / "lib" / "a" / "m.stl")
    (tmp_path / "other").mkdir()
    monkeypatch.chdir(tmp_path / "other")
    [found] = iter_model_files(["../lib/./a/"])
    assert found.path == str(tmp_path / "lib" / "a" / "m.stl")
    assert os.path.isabs(found.path)


def test_walk_order_is_deterministic(tmp_path: Path) -> None:
    for name in ["b/2.stl", "a/1.stl", "c.stl", "a/z/3.stl"]:
        touch(tmp_path / name)
    assert paths(list(iter_model_files([tmp_path]))) == [
        str(tmp_path / n) for n in ["c.stl", "a/1.stl", "a/z/3.stl", "b/2.stl"]
    ]


def test_missing_root_is_one_problem_and_other_roots_still_walked(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "m.stl")
    files, problems = find_model_files([tmp_path / "nope", tmp_path / "real"])
    assert paths(files) == [str(tmp_path / "real" / "m.stl")]
    assert problems == [WalkProblem(str(tmp_path / "nope"), "root does not exist")]


def test_file_roots(tmp_path: Path) -> None:
    model = touch(tmp_path / "single.3mf")
    other = touch(tmp_path / "notes.txt")
    files, problems = find_model_files([model, other])
    assert paths(files) == [str(model)]
    assert problems == [WalkProblem(str(other), "root is not a folder")]


def test_nested_and_duplicate_roots_yield_each_file_once(tmp_path: Path) -> None:
    touch(tmp_path / "lib" / "top.stl")
    touch(tmp_path / "lib" / "sub" / "inner.stl")
    for roots in (
        [tmp_path / "lib", tmp_path / "lib" / "sub", tmp_path / "lib"],
        [tmp_path / "lib" / "sub", tmp_path / "lib"],
        [tmp_path / "lib" / "sub" / "..", str(tmp_path / "lib") + "/"],
    ):
        found = paths(list(iter_model_files(roots)))
        assert sorted(found) == [
            str(tmp_path / "lib" / "sub" / "inner.stl"),
            str(tmp_path / "lib" / "top.stl"),
        ]


@pytest.mark.integration  # 4 s: a tree 2,000 folders deep
def test_deep_tree_does_not_hit_recursion_limit(tmp_path: Path) -> None:
    depth = 1100  # above Python's default recursion limit of 1000
    # Built with a loop of os.mkdir: pathlib and os.makedirs themselves recurse on paths this deep.
    deep = str(tmp_path)
    for _ in range(depth):
        deep = os.path.join(deep, "d")
        os.mkdir(deep)
    bottom = os.path.join(deep, "bottom.stl")
    with open(bottom, "wb") as f:
        f.write(b"x")
    try:
        [found] = iter_model_files([tmp_path])
        assert found.path == bottom
    finally:
        # pytest's own tmp cleanup (shutil.rmtree) recurses and would fail on this tree.
        os.remove(bottom)
        while deep != str(tmp_path):
            os.rmdir(deep)
            deep = os.path.dirname(deep)


def test_awkward_names_work(tmp_path: Path) -> None:
    names = [
        "new\nline.stl",
        'it\'s "quoted".stl',
        "🦖 dino.3mf",
        "tab\there.stl",
        " leading space.stl",
        "ü.stl",
    ]
    for name in names:
        touch(tmp_path / "f" / name)
    found = list(iter_model_files([tmp_path]))
    assert sorted(os.path.basename(p) for p in paths(found)) == sorted(names)
    for f in found:
        assert os.path.getsize(f.path) == f.size


def test_invalid_utf8_names_work(tmp_path: Path) -> None:
    if os.uname().sysname == "Darwin":
        pytest.skip("APFS/HFS+ refuse names that are not valid UTF-8")
    bad_dir = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(bad_dir)
    with open(bad_dir + b"/\xff\xfe model.stl", "wb") as f:
        f.write(b"abc")
    [found] = iter_model_files([tmp_path])
    # Surrogate-escaped str that round-trips to the exact bytes on disk.
    assert os.fsencode(found.path) == bad_dir + b"/\xff\xfe model.stl"
    assert found.size == 3
    assert os.path.exists(found.path)


def test_fifo_named_like_a_model_is_skipped(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe.stl")
    touch(tmp_path / "real.stl")
    assert paths(list(iter_model_files([tmp_path]))) == [str(tmp_path / "real.stl")]


# --- symlinks ----------------------------------------------------------------------------------


@needs_symlinks
def test_symlinks_out_of_the_root_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside / "secret.stl")
    touch(outside / "dir" / "deep.stl")
    root = tmp_path / "lib"
    touch(root / "own.stl")
    (root / "link-to-file.stl").symlink_to(outside / "secret.stl")
    (root / "link-to-dir").symlink_to(outside / "dir")
    (root / "link-to-parent").symlink_to(tmp_path)
    (root / "abs-link-to-fs-root").symlink_to("/")
    files, problems = find_model_files([root])
    assert paths(files) == [str(root / "own.stl")]
    assert problems == []


@needs_symlinks
def test_symlink_inside_the_root_is_followed_once(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    touch(root / "parts" / "gear.stl")
    # A link sorting before the real folder still loses to it: real paths win.
    (root / "aaa-link-to-parts").symlink_to(root / "parts")
    (root / "relative-link").symlink_to("parts")
    (root / "latest.stl").symlink_to(root / "parts" / "gear.stl")
    files, problems = find_model_files([root])
    assert paths(files) == [str(root / "parts" / "gear.stl")]
    assert problems == []


@needs_symlinks
def test_symlink_to_a_file_with_a_non_model_name_is_yielded(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    blob = touch(root / "blobs" / "3fa9c0", b"z" * 77)
    (root / "bracket.stl").symlink_to("blobs/3fa9c0")
    [found] = iter_model_files([root])
    assert found.path == str(root / "bracket.stl")  # the link's own path, not its target
    assert found.size == 77 == blob.stat().st_size


@needs_symlinks
def test_symlink_into_a_skipped_folder_is_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    touch(root / "__MACOSX" / "stuff" / "copy.stl")
    (root / "shortcut").symlink_to(root / "__MACOSX" / "stuff")
    assert list(iter_model_files([root])) == []


@needs_symlinks
def test_root_given_as_a_symlink(tmp_path: Path) -> None:
    touch(tmp_path / "real" / "m.stl")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    [found] = iter_model_files([tmp_path / "alias"])
    assert found.path == str(tmp_path / "alias" / "m.stl")  # not resolved


@needs_symlinks
def test_symlink_cycles_are_safe(tmp_path: Path) -> None:
    root = tmp_path / "lib"
    touch(root / "a" / "m.stl")
    (root / "a" / "back-to-root").symlink_to(root)
    (root / "a" / "up").symlink_to("..")
    (root / "self").symlink_to(".")
    (root / "x").symlink_to("y")
    (root / "y").symlink_to("x")  # a two-link loop that never reaches a folder
    files, problems = find_model_files([root])
    assert paths(files) == [str(root / "a" / "m.stl")]
    # The x<->y loop is not a model-named link; following it fails with ELOOP, which is reported.
    assert [p.path for p in problems] == [str(root / "x"), str(root / "y")]
    assert all(p.reason.startswith("cannot follow symlink") for p in problems)


@needs_symlinks
def test_broken_and_looping_model_links_are_reported(tmp_path: Path) -> None:
    (tmp_path / "dangling.stl").symlink_to(tmp_path / "gone.stl")
    (tmp_path / "loop.stl").symlink_to("loop.stl")
    (tmp_path / "dangling-dir").symlink_to(tmp_path / "gone")  # not model-named: silent
    files, problems = find_model_files([tmp_path])
    assert files == []
    by_path = {p.path: p.reason for p in problems}
    assert by_path[str(tmp_path / "dangling.stl")] == "broken symlink: its target does not exist"
    assert by_path[str(tmp_path / "loop.stl")].startswith("cannot follow symlink")
    assert str(tmp_path / "dangling-dir") not in by_path


# --- problems mid-walk -------------------------------------------------------------------------


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads folders whatever their mode; see the simulated test")
def test_unreadable_folder_is_reported_not_fatal(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "ok.stl")
    locked = tmp_path / "b"
    touch(locked / "hidden.stl")
    locked.chmod(0)
    try:
        files, problems = find_model_files([tmp_path])
    finally:
        locked.chmod(0o755)
    assert paths(files) == [str(tmp_path / "a" / "ok.stl")]
    assert problems == [WalkProblem(str(locked), "permission denied: cannot list folder")]


def test_permission_error_listing_a_folder_is_reported_simulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Tests run as root here, where chmod 000 does not stop reads, so the PermissionError is
    # injected where the folder is opened for listing (os.open of it, or os.scandir of its path where
    # folders cannot be listed through a descriptor); everything else is a real walk.
    touch(tmp_path / "a" / "ok.stl")
    locked = tmp_path / "b"
    touch(locked / "hidden.stl")
    real_scandir, real_open = os.scandir, os.open

    def scandir(path: object) -> object:
        if path == str(locked):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)  # type: ignore[call-overload]

    def open_(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if path == str(locked):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(discover.os, "scandir", scandir)
    monkeypatch.setattr(discover.os, "open", open_)
    files, problems = find_model_files([tmp_path])
    assert paths(files) == [str(tmp_path / "a" / "ok.stl")]
    assert problems == [WalkProblem(str(locked), "permission denied: cannot list folder")]


def test_folder_vanishing_mid_walk_is_reported(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "1.stl")
    touch(tmp_path / "b" / "2.stl")
    touch(tmp_path / "c" / "3.stl")
    problems: list[WalkProblem] = []
    walk = iter_model_files([tmp_path], on_problem=problems.append)
    first = next(walk)
    assert first.path == str(tmp_path / "a" / "1.stl")
    shutil.rmtree(tmp_path / "b")  # a user deletes a folder the walk has not reached yet
    rest = list(walk)
    assert paths(rest) == [str(tmp_path / "c" / "3.stl")]
    assert problems == [WalkProblem(str(tmp_path / "b"), "vanished during the walk: cannot list folder")]


def test_file_vanishing_between_listing_and_stat_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Real DirEntry objects from a real listing; the file is deleted right after the listing,
    # so the walk's own stat of it fails exactly as it would in a race with a user.
    touch(tmp_path / "keep.stl")
    doomed = touch(tmp_path / "doomed.stl")
    real_scandir = os.scandir

    class ListThenDelete:
        def __init__(self, path: str) -> None:
            self._it = real_scandir(path)

        def __enter__(self) -> ListThenDelete:
            return self

        def __exit__(self, *exc: object) -> None:
            self._it.close()

        def __iter__(self) -> Iterator[os.DirEntry[str]]:
            yield from self._it
            doomed.unlink(missing_ok=True)

    monkeypatch.setattr(discover.os, "scandir", ListThenDelete)
    files, problems = find_model_files([tmp_path])
    assert paths(files) == [str(tmp_path / "keep.stl")]
    assert problems == [WalkProblem(str(doomed), "vanished during the walk: cannot stat file")]


def test_walk_over_the_corpus_finds_its_models(corpus: Path) -> None:
    files, problems = find_model_files([corpus])
    assert problems == []
    expected = sorted(str(p) for p in corpus.rglob("*") if p.is_file() and is_model_name(p.name))
    assert sorted(paths(files)) == expected
    assert len(files) > 0


def test_walk_without_folder_descriptors_finds_the_same(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Where os.scandir cannot take a descriptor, folders are listed by path: same rows, same order.
    for rel in ("a/1.stl", "a/.1.stl.thumbnail.png", "a/b/2.3mf", "c/3.obj", "c/skip.txt"):
        touch(tmp_path / rel)
    with_fd = list(discover.iter_walk_rows([tmp_path]))
    monkeypatch.setattr(discover, "_SCANDIR_FD", False)
    assert list(discover.iter_walk_rows([tmp_path])) == with_fd
    assert [r[0] for r in with_fd] == [str(tmp_path / p) for p in ("a/1.stl", "a/b/2.3mf", "c/3.obj")]
    assert [r[4] for r in with_fd] == [True, False, False]
