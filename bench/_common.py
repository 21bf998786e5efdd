"""Shared bench helpers: a deterministic synthetic model library and RSS sampling.

The library mimics a real collection of 3D-printing models: nested folders (3-4 levels, ~20 files
each, names with spaces, brackets and non-ASCII letters), mostly binary STL, some ASCII STL and 3MF
(a few 3MF with the slicer's ``Metadata/thumbnail.png``), sizes from a few dozen triangles to half a
million. Generation is quick because meshes are built once per (shape, size level) and each file is
a cheap random rigid transform + scale of a cached mesh, so every file's content differs.
"""

from __future__ import annotations

import concurrent.futures as cf
import io
import math
import multiprocessing
import os
import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import meshgen as mg
import numpy as np

__all__ = ["BUCKETS", "FileSpec", "Library", "RssSampler", "generate_library", "plan_library"]

# (share, lowest, highest triangles): the mix of model sizes.
BUCKETS: tuple[tuple[float, int, int], ...] = (
    (0.60, 12, 5_000),
    (0.30, 5_000, 50_000),
    (0.08, 50_000, 200_000),
    (0.02, 200_000, 500_000),
)
SHARE_ASCII = 0.03
SHARE_3MF = 0.10
SHARE_3MF_WITH_PICTURE = 0.15  # of the 3MF files: slicers embed their own preview
ASCII_MAX_TRIANGLES = 50_000  # nobody exports a 500k-triangle model as ASCII text
FILES_PER_FOLDER = 20
# Size levels meshes are cached at: ~9 % apart on a log scale, so counts look continuous.
LEVELS = np.unique(np.geomspace(12, 500_000, 120).round().astype(int))
MTIME_BASE_NS = 1_600_000_000 * 10**9

_CATEGORIES = (
    "Tools & Jigs", "Miniatures [28mm]", "Printer Parts", "Cosplay (WIP)", "Home & Garden", "Toys",
    "Ersatzteile für Geräte", "Électronique", "模型 收藏", "Terrain — Dungeon", "Functional", "Art & Décor",
)  # fmt: skip
_DESIGNERS = ("Ana Núñez", "bob_the_maker", "Jörg [remix]", "Zoë (old)", "studio ΔX", "tiny robots")
_PROJECTS = ("Bracket set", "Gear box", "Dragon #2", "Vase (spiral)", "Cable clip", "Ørsted coil")
_WORDS = ("part", "body", "Lid", "base [v2]", "arm (left)", "arm (right)", "Träger", "knob", "mount", "模型")


@dataclass(frozen=True)
class FileSpec:
    """One file of the synthetic library, before it is written."""

    rel: str  # path below the library root
    kind: str  # "stl" (binary), "ascii" or "3mf"
    shape: str  # "rock", "knot", "gear" or "bracket"
    level: int  # the cached mesh's requested triangle count
    seed: int
    picture: bool = False  # 3MF only: embed a slicer thumbnail


@dataclass(frozen=True)
class Library:
    """A generated library: where it is and what is in it."""

    root: Path
    files: tuple[str, ...]  # absolute paths, in plan order
    kinds: tuple[str, ...]
    sizes: tuple[int, ...]
    triangles: tuple[int, ...]
    folders: int
    seconds: float


def _shape_for(level: int, rng: np.random.Generator) -> str:
    if level < 60:
        return "bracket" if rng.random() < 0.5 else "rock"
    if level < 2_000:
        return "rock"  # the knot and gear generators have a floor of a few hundred triangles
    return str(rng.choice(["rock", "knot", "gear"], p=[0.5, 0.3, 0.2]))


def _folders(n: int) -> list[str]:
    """``n`` leaf folders, 3 or 4 levels deep, spread over categories, designers and projects."""
    out = []
    for i in range(n):
        cat = _CATEGORIES[i % len(_CATEGORIES)]
        designer = f"{_DESIGNERS[(i // len(_CATEGORIES)) % len(_DESIGNERS)]} {i // 72 % 9}"
        project = f"{_PROJECTS[i % len(_PROJECTS)]} {i:04d}"
        parts = [cat, designer, project]
        if i % 3 == 0:
            parts.append("Supported [pre-cut]" if i % 2 else "STLs — parts")
        out.append("/".join(parts))
    return out


def plan_library(count: int, seed: int = 34_074) -> list[FileSpec]:
    """The deterministic file list of a library of ``count`` models."""
    rng = np.random.default_rng(seed)
    shares = np.array([b[0] for b in BUCKETS])
    bucket = rng.choice(len(BUCKETS), size=count, p=shares / shares.sum())
    lo = np.array([b[1] for b in BUCKETS])[bucket]
    hi = np.array([b[2] for b in BUCKETS])[bucket]
    target = np.exp(rng.uniform(np.log(lo), np.log(hi)))  # log-uniform inside each bucket
    # Nearest cached level that stays inside the bucket, so the mix is exact.
    idx = np.abs(np.log(LEVELS)[None, :] - np.log(target)[:, None]).argmin(axis=1)
    level = LEVELS[idx]
    level = np.clip(level, lo, hi - 1)
    u = rng.random(count)
    folders = _folders(math.ceil(count / FILES_PER_FOLDER))
    specs = []
    for i in range(count):
        lvl = int(level[i])
        kind = "3mf" if u[i] < SHARE_3MF else "ascii" if u[i] < SHARE_3MF + SHARE_ASCII else "stl"
        if kind == "ascii" and lvl > ASCII_MAX_TRIANGLES:
            kind = "stl"
        ext = {"stl": ".stl", "ascii": ".stl", "3mf": ".3mf"}[kind]
        if kind != "3mf" and i % 7 == 0:
            ext = ".STL"  # Windows exporters
        name = f"{_WORDS[i % len(_WORDS)]} {i:05d}{ext}"
        picture = kind == "3mf" and rng.random() < SHARE_3MF_WITH_PICTURE
        specs.append(FileSpec(f"{folders[i // FILES_PER_FOLDER]}/{name}", kind, _shape_for(lvl, rng), lvl, i, picture))
    return specs


def estimated_bytes(specs: Sequence[FileSpec]) -> int:
    """Roughly what the files take on disk (to refuse to fill the disk)."""
    per_triangle = {"stl": 50, "ascii": 260, "3mf": 18}
    return sum(84 + per_triangle[s.kind] * s.level for s in specs)


# ----------------------------------------------------------------- writing (in generator processes)

_MESHES: dict[tuple[str, int], tuple[mg.Indexed, np.ndarray, np.ndarray]] = {}
_XML: dict[tuple[str, int], bytes] = {}
_PICTURES: list[bytes] = []
CACHE_TRIANGLES = 3_000_000  # per generator process; files come in level order, so old levels go


def _base(shape: str, level: int) -> tuple[mg.Indexed, np.ndarray, np.ndarray]:
    """(indexed mesh, soup, unit normals) of a cached mesh; built on first use in this process."""
    key = (shape, level)
    if key not in _MESHES:
        if shape == "bracket":
            mesh: mg.Indexed = mg.indexed(mg.bracket())
        elif shape == "knot":
            mesh = mg.torus_knot_indexed(level)
        elif shape == "gear":
            mesh = mg.gear_indexed(level, teeth=12 + level % 29)
        else:
            mesh = mg.rock_indexed(level, seed=level)
        tri = mg.soup(*mesh)
        rec = np.frombuffer(mg.binary_stl_bytes(tri)[84:], mg.STL_RECORD)
        while _MESHES and sum(len(t) for _, t, _ in _MESHES.values()) + len(tri) > CACHE_TRIANGLES:
            old = next(iter(_MESHES))
            del _MESHES[old]
            _XML.pop(old, None)
        _MESHES[key] = (mesh, tri, rec["n"].copy())
    return _MESHES[key]


def _xml(shape: str, level: int) -> bytes:
    """The 3MF model part of a cached mesh: slow to format, so formatted once per mesh; files vary
    by their build item's transform instead."""
    mesh = _base(shape, level)[0]
    key = (shape, level)
    if key not in _XML:
        _XML[key] = mg.model_xml(mesh)
    return _XML[key]


def _picture(i: int) -> bytes:
    """One of a few slicer-like preview PNGs (a gradient plate with a blob)."""
    if not _PICTURES:
        from PIL import Image, ImageDraw

        for k in range(4):
            im = Image.new("RGB", (256, 256), (30 + 40 * k, 30, 60))
            ImageDraw.Draw(im).ellipse((40 + 10 * k, 60, 216 - 10 * k, 220), fill=(220, 140 - 30 * k, 40))
            buf = io.BytesIO()
            im.save(buf, "PNG")
            _PICTURES.append(buf.getvalue())
    return _PICTURES[i % len(_PICTURES)]


def _rigid(seed: int) -> tuple[np.ndarray, float, np.ndarray]:
    """A random rotation, uniform scale and translation (so each file's bytes differ)."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    rot = np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )
    return rot, float(rng.uniform(0.5, 2.0)), rng.uniform(-50, 50, size=3)


def _file_bytes(spec: FileSpec) -> tuple[bytes, int]:
    _, tri, normals = _base(spec.shape, spec.level)
    rot, scale, shift = _rigid(spec.seed)
    if spec.kind == "3mf":
        xml = _xml(spec.shape, spec.level)
        m = np.vstack([rot.T * scale, shift])  # 3MF: row vectors, p' = p @ M
        transform = " ".join(f"{v:.6f}" for v in m.ravel())
        model = xml.replace(b'<item objectid="1"/>', f'<item objectid="1" transform="{transform}"/>'.encode())
        return _package(model, _picture(spec.seed) if spec.picture else None), len(tri)
    # einsum, not ``@``: numpy's float32 (N, 3) @ (3, 3) is ~10x slower than einsum here.
    m32 = (rot.T * scale).astype(np.float32)
    moved = np.einsum("nij,jk->nik", tri, m32) + shift.astype(np.float32)
    if spec.kind == "ascii":
        return mg.ascii_stl_text(moved, f"model {spec.seed}").encode("ascii"), len(tri)
    rec = np.zeros(len(tri), mg.STL_RECORD)
    rec["v"] = moved
    rec["n"] = np.einsum("nj,jk->nk", normals, rot.T.astype(np.float32))  # rotated unit normals stay unit
    header = f"synthetic {spec.seed} {spec.shape}".encode().ljust(80, b" ")
    return header + np.uint32(len(tri)).tobytes() + rec.tobytes(), len(tri)


def _package(model: bytes, picture: bytes | None) -> bytes:
    """A 3MF zip around an already formatted model part (same layout as ``meshgen.threemf_bytes``)."""
    rels = mg._REL_MODEL + (mg._REL_THUMB if picture is not None else "")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("[Content_Types].xml", mg._CONTENT_TYPES)
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}'
            "</Relationships>",
        )
        z.writestr("3D/3dmodel.model", model)
        if picture is not None:
            z.writestr("Metadata/thumbnail.png", picture, compress_type=zipfile.ZIP_STORED)
    return buf.getvalue()


def _write_chunk(root: str, specs: Sequence[FileSpec]) -> list[tuple[int, int]]:
    """Write some files (in a generator process); returns (size, triangles) per file."""
    out = []
    for spec in specs:
        data, triangles = _file_bytes(spec)
        path = os.path.join(root, spec.rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)
        mtime = MTIME_BASE_NS + spec.seed * 60 * 10**9  # deterministic, a minute apart
        os.utime(path, ns=(mtime, mtime))
        out.append((len(data), triangles))
    return out


def generate_library(
    root: Path,
    specs: Sequence[FileSpec],
    *,
    processes: int,
    on_progress: Callable[[int], None] | None = None,
) -> Library:
    """Write ``specs`` under ``root`` using ``processes`` generator processes."""
    import time

    t0 = time.monotonic()
    root.mkdir(parents=True, exist_ok=True)
    # Small chunks, handed out in order, balance the processes; ordering by level lets each process
    # reuse its cached meshes rather than build every level.
    order = sorted(range(len(specs)), key=lambda i: (specs[i].level, specs[i].shape, i))
    chunks = [order[k : k + 200] for k in range(0, len(order), 200)]
    sizes = [0] * len(specs)
    tris = [0] * len(specs)
    done = 0
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max(1, processes), mp_context=ctx) as pool:
        futures = {pool.submit(_write_chunk, str(root), [specs[i] for i in c]): c for c in chunks}
        for fut in cf.as_completed(futures):
            for i, (size, n) in zip(futures[fut], fut.result(), strict=True):
                sizes[i], tris[i] = size, n
            done += len(futures[fut])
            if on_progress is not None:
                on_progress(done)
    folders = len({os.path.dirname(s.rel) for s in specs})
    return Library(
        root=root,
        files=tuple(str(root / s.rel) for s in specs),
        kinds=tuple(s.kind for s in specs),
        sizes=tuple(sizes),
        triangles=tuple(tris),
        folders=folders,
        seconds=time.monotonic() - t0,
    )


# ----------------------------------------------------------------- memory


def _status_kb(pid: int | str, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _children() -> list[int]:
    pids: list[int] = []
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children", encoding="ascii") as fh:
                pids += [int(p) for p in fh.read().split()]
    except OSError:
        pass
    return pids


class RssSampler:
    """Peak resident memory of this process and of its child processes (the pool's workers) while
    a block runs. This process's peak is exact (``VmHWM`` is reset on entry where Linux allows);
    children are sampled every ``interval`` seconds (workers are recycled, so their ``VmHWM`` is
    read while they live)."""

    def __init__(self, interval: float = 0.25) -> None:
        self.interval = interval
        self.self_peak_kb = 0
        self.worker_peak_kb = 0  # the largest single worker
        self.workers_sum_peak_kb = 0  # all workers at once
        self.workers_seen = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._seen: set[int] = set()
        self._exact = False

    def __enter__(self) -> RssSampler:
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")  # reset VmHWM, so the peak is of this block only
            self._exact = True
        except OSError:
            pass
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        if self._exact:
            self.self_peak_kb = _status_kb("self", "VmHWM")

    def _sample(self) -> None:
        self.self_peak_kb = max(self.self_peak_kb, _status_kb("self", "VmRSS"))
        total = 0
        for pid in _children():
            self._seen.add(pid)
            self.worker_peak_kb = max(self.worker_peak_kb, _status_kb(pid, "VmHWM"))
            total += _status_kb(pid, "VmRSS")
        self.workers_sum_peak_kb = max(self.workers_sum_peak_kb, total)
        self.workers_seen = len(self._seen)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()
