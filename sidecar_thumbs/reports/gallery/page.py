"""The gallery page: one static HTML file, its data as one JSON blob, drawn in the browser.

The page needs no server and fetches nothing: CSS and JS are inline, images are relative URLs from
the page's folder to the sidecars (or data: URIs with ``embed``). The grid is virtualised in JS, so
34,000 models cost one JSON parse and a few dozen ``<img>`` elements at a time, not 34,000 of them.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import time
import urllib.parse
from importlib import resources
from pathlib import Path

from sidecar_thumbs import __version__
from sidecar_thumbs.files.atomic import atomic_write
from sidecar_thumbs.files.safeio import read_regular
from sidecar_thumbs.files.sidecar import MAX_SIDECAR_BYTES
from sidecar_thumbs.reports.gallery.entries import Gallery

__all__ = ["gallery_data", "relative_url", "render_gallery_html", "write_gallery"]

_PLACEHOLDER = re.compile(r"\{\{([A-Z_]+)\}\}")
# In JSON every "<", ">" and "&" can be a \u escape: then no "</script>" or "<!--" can appear in
# the blob, whatever a file name holds, and the script element cannot be closed from inside.
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def _quote_segment(segment: str) -> str:
    # From the file system's bytes, so names that are not valid UTF-8 still point at their file.
    return urllib.parse.quote_from_bytes(os.fsencode(segment), safe="")


def relative_url(target: str | os.PathLike[str], base_dir: str | os.PathLike[str]) -> str:
    """URL of ``target`` relative to the folder ``base_dir``, every path segment percent-encoded.

    Spaces, ``#``, ``?``, ``%``, brackets, ``:`` and non-ASCII names are all escaped, so the URL means
    the file and nothing else. Falls back to an absolute ``file:`` URI when no relative path exists
    (another drive on Windows).
    """
    try:
        rel = os.path.relpath(os.fspath(target), os.fspath(base_dir))
    except ValueError:
        return Path(os.path.abspath(target)).as_uri()
    return "/".join(_quote_segment(s) if s not in (".", "..") else s for s in rel.split(os.sep))


def _display(text: str) -> str:
    """Undecodable bytes (surrogate escapes) shown as U+FFFD: they cannot be written as UTF-8."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _data_uri(path: str) -> str | None:
    try:
        data = read_regular(path, follow=False, max_bytes=MAX_SIDECAR_BYTES)  # never a FIFO or device
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def gallery_data(gallery: Gallery, out_dir: str | os.PathLike[str], *, embed: bool = False) -> dict[str, object]:
    """The page's data: folders once (label, URL prefix), entries as compact arrays.

    Each entry is ``[name, folder index, size, triangles, status, source, detail, image]`` where
    ``image`` is relative to the folder's URL prefix, a ``data:`` URI with ``embed``, or null.
    """
    folders: list[list[str]] = []
    folder_index: dict[tuple[str, str], int] = {}
    entries: list[list[object]] = []
    for e in gallery.entries:
        model_dir = os.path.dirname(e.path)
        key = (e.folder, model_dir)
        index = folder_index.get(key)
        if index is None:
            prefix = relative_url(model_dir, out_dir)
            prefix = "" if prefix == "." else prefix + "/"
            index = folder_index[key] = len(folders)
            folders.append([_display(e.folder), prefix])
        image: str | None = None
        if e.sidecar is not None:
            image = _data_uri(e.sidecar) if embed else _quote_segment(os.path.basename(e.sidecar))
        detail = _display(e.detail) if e.detail is not None else None
        entries.append([_display(e.name), index, e.size, e.triangles, e.status.value, e.source, detail, image])
    return {
        "roots": [_display(r) for r in gallery.roots],
        "fromDatabase": gallery.from_database,
        "generated": time.strftime("%Y-%m-%d %H:%M"),
        "version": __version__,
        "folders": folders,
        "entries": entries,
    }


def _template() -> str:
    return resources.files("sidecar_thumbs").joinpath("templates/gallery.html").read_text(encoding="utf-8")


def render_gallery_html(
    gallery: Gallery, out_dir: str | os.PathLike[str], *, embed: bool = False, title: str | None = None
) -> str:
    """The complete page for ``gallery``, with image URLs relative to ``out_dir``.

    Args:
        gallery: What to show.
        out_dir: The folder the page will be saved in.
        embed: Put the images into the page as data: URIs (a page that can be moved or mailed).
        title: Page title; defaults to the roots' names.
    """
    data = gallery_data(gallery, out_dir, embed=embed)
    if title is None:
        names = [os.path.basename(r.rstrip(os.sep)) or r for r in gallery.roots]
        title = "Models: " + ", ".join(_display(n) for n in names)
    blob = json.dumps(data, ensure_ascii=False, separators=(",", ":")).translate(_JSON_ESCAPES)
    values = {"TITLE": html.escape(title), "DATA": blob}
    # One pass: text substituted in cannot itself be taken for a placeholder.
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], _template())


def write_gallery(
    gallery: Gallery,
    output: str | os.PathLike[str],
    *,
    embed: bool = False,
    title: str | None = None,
    durable: bool = True,
) -> Path:
    """Write the page to ``output`` atomically (image URLs relative to its folder); returns its path.

    Raises:
        OSError: The page could not be written (the old file, if any, is left as it was).
    """
    out = Path(os.path.abspath(output))
    page = render_gallery_html(gallery, out.parent, embed=embed, title=title)
    atomic_write(out, page.encode("utf-8"), durable=durable)
    return out
