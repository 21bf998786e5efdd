"""What the model's own colours cost: the whole thumbnail (read from memory, load, render, PNG) per file.

Measures, in one run on one CPU, the same 100k-triangle rock as
* binary STL and a 3MF without colour (the uncoloured path);
* 3MFs with colour: one base material for the object, a colour per triangle (colour group), a colour per
  corner (vertex colours, blended), a Bambu Studio project with painted triangles — each as a ratio to
  the uncoloured 3MF ("at most 30 % more"), and to the same file with the model's colours turned off
  (what drawing the colours costs, apart from the larger file).

``--stages`` adds the CPU time of each colour stage a call (the colour group's scan, the part's colour
resources, the per-instance colours, the render's colour packing), functions wrapped by name where the
checkout has them. ``--baseline DIR`` times another checkout of the project (e.g. the commit before a
change) the same way, alternating between the two in ``--rounds`` fresh processes, and prints both.

Usage::

    python bench/colors.py [--reps 15] [--clock cpu] [--stages] [--baseline /path/to/other/checkout --rounds 3]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# Appended, not first: a --baseline child finds the other checkout's package through PYTHONPATH.
sys.path.append(str(REPO))

from bench import meshgen  # noqa: E402

N = 100_000
MAT = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"
PALETTE = ["#C0392B", "#27AE60", "#2980B9", "#F1C40F", "#8E44AD", "#1E1E1E"]


def _package(model: str, extra: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Target="/3D/3dmodel.model" Id="rel0" '
            'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>',
        )
        z.writestr("3D/3dmodel.model", model)
        for name, text in (extra or {}).items():
            z.writestr(name, text)
    return buf.getvalue()


def _model(
    V: np.ndarray, F: np.ndarray, resources: str = "", obj_attrs: str = "", tri_attrs: list[str] | None = None
) -> str:
    verts = "".join(f'<vertex x="{x:.5f}" y="{y:.5f}" z="{z:.5f}"/>\n' for x, y, z in V.tolist())
    extra = tri_attrs or [""] * len(F)
    tris = "".join(
        f'<triangle v1="{a}" v2="{b}" v3="{c}"{e}/>\n' for (a, b, c), e in zip(F.tolist(), extra, strict=True)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<model unit="millimeter" '
        f'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" xmlns:m="{MAT}">\n'
        f'<resources>{resources}<object id="1" type="model"{obj_attrs}><mesh><vertices>\n{verts}</vertices>'
        f'<triangles>\n{tris}</triangles></mesh></object></resources><build><item objectid="1"/></build></model>\n'
    )


def cases() -> list[tuple[str, str, bytes]]:
    V, F = meshgen.rock_indexed(N)
    V, F = np.asarray(V), np.asarray(F)
    rng = np.random.default_rng(7)
    group = '<m:colorgroup id="2">' + "".join(f'<m:color color="{c}"/>' for c in PALETTE) + "</m:colorgroup>"
    per_tri = [f' pid="2" p1="{k}"' for k in rng.integers(0, len(PALETTE), len(F)).tolist()]
    vgroup = (
        '<m:colorgroup id="3">'
        + "".join(
            f'<m:color color="#{r:02X}{g:02X}{b:02X}"/>' for r, g, b in rng.integers(0, 255, (len(V), 3)).tolist()
        )
        + "</m:colorgroup>"
    )
    per_corner = [f' pid="3" p1="{a}" p2="{b}" p3="{c}"' for a, b, c in F.tolist()]
    painted = [' paint_color="8"' if k % 7 == 0 else "" for k in range(len(F))]
    bambu = {
        "Metadata/model_settings.config": '<?xml version="1.0"?><config><object id="1">'
        '<metadata key="extruder" value="1"/></object></config>',
        "Metadata/project_settings.config": json.dumps({"filament_colour": ["#1E8451", "#B9A46A"]}),
    }
    base = '<m:basematerials id="4"><m:base name="PLA" displaycolor="#D35400"/></m:basematerials>'
    return [
        ("binary STL, no colour", "rock.stl", meshgen.binary_stl_bytes((V, F))),
        ("3MF, no colour", "rock.3mf", _package(_model(V, F))),
        ("3MF, object base material", "rock.3mf", _package(_model(V, F, base, ' pid="4" pindex="0"'))),
        ("3MF, colour per triangle", "rock.3mf", _package(_model(V, F, group, "", per_tri))),
        ("3MF, colour per corner", "rock.3mf", _package(_model(V, F, vgroup, "", per_corner))),
        ("3MF, Bambu project, painted", "rock.3mf", _package(_model(V, F, "", "", painted), bambu)),
    ]


# The colour stages, (module, function): wrapped where the checkout being timed has them.
STAGES = [
    ("sidecar_thumbs.mesh.colorscan_numba", "scan_colors"),
    ("sidecar_thumbs.mesh.modelpart", "read_part_colors"),
    ("sidecar_thumbs.mesh.colorscan_numba", "one_group_colors"),
    ("sidecar_thumbs.mesh.threemf_colors", "instance_colors"),
    ("sidecar_thumbs.render", "pack_colors"),
    ("sidecar_thumbs.render", "kernel_colors"),
    ("sidecar_thumbs.mesh.load", "load_mesh_bytes"),  # the thumbnail imports both when called
    ("sidecar_thumbs.render", "render_triangles"),
]


def _wrap_stages(tick, spent: dict[str, list[float]]) -> None:  # type: ignore[no-untyped-def]
    import functools
    import importlib

    for module, name in STAGES:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        fn = getattr(mod, name, None)
        if fn is None:
            continue

        def timed(*a, _fn=fn, _name=name, **k):  # type: ignore[no-untyped-def]
            t = tick()
            try:
                return _fn(*a, **k)
            finally:
                spent.setdefault(_name, []).append(tick() - t)

        setattr(mod, name, functools.wraps(fn)(timed))


def time_cases(reps: int, clock: str, stages: bool = False) -> dict[str, dict[str, float]]:
    """``{case: {"total": seconds, stage: seconds a call, ...}}``, medians of ``reps``."""
    from sidecar_thumbs.render.thumbnail import ThumbnailOptions, make_thumbnail_from_bytes

    tick = time.process_time if clock == "cpu" else time.perf_counter
    spent: dict[str, list[float]] = {}
    if stages:
        _wrap_stages(tick, spent)
    options = ThumbnailOptions(use_embedded=False)
    # The same bytes with the model's colours turned off (SIDECAR_THUMBS_MODEL_COLORS=false): what drawing
    # the colours costs, apart from the larger file a coloured model is.
    plain_options = ThumbnailOptions(use_embedded=False, model_colors=False)
    out: dict[str, dict[str, float]] = {}
    for label, name, data in cases():
        make_thumbnail_from_bytes(data, name, len(data), 0, options)  # warm
        make_thumbnail_from_bytes(data, name, len(data), 0, plain_options)
        spent.clear()
        times, off = [], []
        for _ in range(reps):
            t = tick()
            make_thumbnail_from_bytes(data, name, len(data), 0, options)
            times.append(tick() - t)
            if stages:
                continue  # the colour stages are timed with colours on only
            t = tick()
            make_thumbnail_from_bytes(data, name, len(data), 0, plain_options)
            off.append(tick() - t)
        out[label] = {"total": statistics.median(times)}
        if off:
            out[label]["colours_off"] = statistics.median(off)
        # Per call: a stage that runs twice a thumbnail (two groups) counts each call.
        out[label].update({k: statistics.median(v) for k, v in spent.items()})
    return out


def _child(checkout: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--reps", str(args.reps), "--clock", args.clock]
    cmd += ["--stages"] if args.stages else []
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd=checkout)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _median_of_rounds(rounds: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for label in rounds[0]:
        keys = set().union(*(r[label].keys() for r in rounds))
        out[label] = {k: statistics.median([r[label][k] for r in rounds if k in r[label]]) for k in keys}
    return out


def _table(title: str, mine: dict[str, dict[str, float]], base: dict[str, dict[str, float]] | None) -> None:
    plain = mine["3MF, no colour"]["total"]
    print(f"\n{title}\n")
    print("| file | ms | renders/s | vs 3MF without colour | same file, colours off | vs baseline |")
    print("|---|---|---|---|---|---|")
    for label, row in mine.items():
        t = row["total"]
        b = base[label]["total"] if base and label in base else None
        vs_base = f"{t / b:.2f}× ({b * 1e3:.1f} ms)" if b else ""
        o = row.get("colours_off")
        vs_off = f"{o * 1e3:.1f} ms: {t / o:.2f}×" if o else ""
        print(f"| {label} | {t * 1e3:.1f} | {1 / t:.0f} | {t / plain:.2f}× | {vs_off} | {vs_base} |")
    names = [name for _, name in STAGES if any(name in row for row in mine.values())]
    if names:
        print("\nStages, CPU ms a call (this checkout" + (" / baseline" if base else "") + "):\n")
        print("| file | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for label, row in mine.items():
            cells = []
            for name in names:
                here = f"{row[name] * 1e3:.2f}" if name in row else "–"
                there = base[label].get(name) if base and label in base else None
                cells.append(here + (f" / {there * 1e3:.2f}" if there is not None else ""))
            print(f"| {label} | " + " | ".join(cells) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    ap.add_argument("--stages", action="store_true", help="also time each colour stage")
    ap.add_argument("--baseline", help="another checkout of the project to time the same way, alternating")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds with --baseline")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    if args.child:  # run by --baseline with PYTHONPATH set to one checkout
        print(json.dumps(time_cases(args.reps, args.clock, args.stages)))
        return
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"# bench/colors.py — {N:,} triangles, {args.clock} clock, one CPU, median of {args.reps}, load {load}")
    if not args.baseline:
        _table("", time_cases(args.reps, args.clock, args.stages), None)
        return
    mine_rounds, base_rounds = [], []
    for _ in range(args.rounds):  # alternating, so a change in the machine's load hits both alike
        mine_rounds.append(_child(REPO, args))
        base_rounds.append(_child(Path(args.baseline).resolve(), args))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    title = f"Medians of {args.rounds} alternating rounds against {args.baseline} (load at the end {load})"
    _table(title, _median_of_rounds(mine_rounds), _median_of_rounds(base_rounds))


if __name__ == "__main__":
    main()
