"""Render every corpus model into one labelled contact sheet, to look at the renderer's output.

Usage::

    python bench/contact_sheet.py [--out /tmp/contact_sheet.png] [--size 160] [--kernel auto]
        [--folders stl-binary stl-ascii 3mf]

Files that fail to load or have nothing to draw get a grey cell with the reason.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sidecar_thumbs.errors import ModelError  # noqa: E402
from sidecar_thumbs.render import RenderOptions, render_triangles  # noqa: E402

CORPUS = REPO.parent / "shared" / "corpus"
LABEL_LINES = 2
LINE_H = 11


def load(path: Path) -> np.ndarray:
    """Triangles via the project's loader; binary STL only when the loader is not there yet."""
    try:
        from sidecar_thumbs.mesh.load import load_mesh
    except ImportError:
        data = path.read_bytes()
        n = int(np.frombuffer(data, "<u4", 1, 80)[0])
        rec = np.frombuffer(data, np.uint8, 50 * n, 84).reshape(n, 50)[:, 12:48]
        return np.ascontiguousarray(rec).view("<f4").reshape(n, 3, 3)
    return load_mesh(path).triangles


def cell(path: Path, opts: RenderOptions) -> tuple[Image.Image, str]:
    try:
        tri = load(path)
        img = Image.fromarray(render_triangles(tri, opts))
        return img, f"{path.parent.name}/{path.name} ({len(tri):,})"
    except ModelError as exc:
        grey = Image.new("RGBA", (opts.size, opts.size), (200, 200, 200, 255))
        return grey, f"{path.parent.name}/{path.name}: {exc.message}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/contact_sheet.png")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--kernel", default="auto")
    ap.add_argument("--cols", type=int, default=10)
    ap.add_argument("--folders", nargs="+", default=["stl-binary", "stl-ascii", "3mf"])
    args = ap.parse_args()
    opts = RenderOptions(size=args.size, kernel=args.kernel)
    files = [p for sub in args.folders for p in sorted((CORPUS / sub).iterdir()) if p.is_file()]
    rows = -(-len(files) // args.cols)
    cw, ch = args.size, args.size + LABEL_LINES * LINE_H + 4
    # A mid-grey checker shows transparency and keeps both dark and light parts readable.
    sheet = Image.new("RGBA", (cw * args.cols, ch * rows), (255, 255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    chars = max(10, args.size // 6)
    for i, path in enumerate(files):
        img, label = cell(path, opts)
        x, y = (i % args.cols) * cw, (i // args.cols) * ch
        bg = Image.new("RGBA", img.size, (236, 236, 236, 255))
        sheet.alpha_composite(Image.alpha_composite(bg, img), (x, y))
        for j, line in enumerate(textwrap.wrap(label, chars)[:LABEL_LINES]):
            draw.text((x + 2, y + args.size + 2 + j * LINE_H), line, fill=(0, 0, 0, 255))
        print(label)
    sheet.convert("RGB").save(args.out)
    print(f"wrote {args.out} ({len(files)} models)")


if __name__ == "__main__":
    main()
