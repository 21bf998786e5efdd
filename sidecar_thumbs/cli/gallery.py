"""``sidecar-thumbs gallery``: the click command, kept beside the gallery so ``cli.py`` only adds it.

``cli.py`` registers it with ``cli.add_command(gallery_command)``.
"""

from __future__ import annotations

from pathlib import Path

import click

from sidecar_thumbs.cli.common import global_options

__all__ = ["gallery_command"]


@click.command("gallery")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("gallery.html"),
    show_default=True,
    help="Where to write the page; its image links are relative to this file's folder.",
)
@click.option("--embed", is_flag=True, help="Put the images into the page itself (bigger, but movable).")
@global_options()
@click.pass_context
def gallery_command(ctx: click.Context, paths: tuple[Path, ...], output: Path, embed: bool) -> None:
    """Write an HTML contact sheet of the thumbnails under PATH, to look through in a browser.

    Shows every model with its thumbnail, size, triangles and source; failed ones with their reason,
    missing and stale ones marked. Filter by status and text; the page needs no server.

    Example: sidecar-thumbs gallery ~/Models -o ~/Models/gallery.html
    """
    from sidecar_thumbs.cli.common import (
        fail,
        fail_message,
        global_opts,
        open_db,
        roots_for,
        settings_for,
        thumbnail_options,
    )
    from sidecar_thumbs.cli.common import problem as say_problem
    from sidecar_thumbs.errors import SidecarError
    from sidecar_thumbs.reports.gallery.entries import collect_gallery
    from sidecar_thumbs.reports.gallery.page import write_gallery

    settings = settings_for(ctx)
    database = global_opts(ctx).database
    roots = roots_for(paths, settings)
    expected = thumbnail_options(settings).describe()
    # Read only: looking must never change what is looked at. A --db that is not there is a typo,
    # not a request to work without one.
    use_db = settings.database.exists() or database is not None
    db = open_db(settings, readonly=True) if use_db else None
    try:
        gallery = collect_gallery(roots, db=db, expected_settings=expected)
    except SidecarError as exc:
        fail(exc)
    finally:
        if db is not None:
            db.close()
    for problem in gallery.problems:
        say_problem(f"warning: {problem.path}: {problem.reason}", problem.path)
    try:
        out = write_gallery(gallery, output, embed=embed)
    except OSError as exc:
        fail_message(f"cannot write {output}: {exc.strerror or exc}")
    counts = ", ".join(f"{k} {n}" for k, n in gallery.counts().items())
    source = "with the database" if db is not None else "from the files alone"
    click.echo(f"wrote {out}: {len(gallery.entries)} models ({counts}), {source}")
