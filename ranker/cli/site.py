"""`ranker site`: the store's pages as a static website."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (ConfigOpt, DbOpt, OfflineOpt, VerboseOpt, check_out, echo, given_path, info, load_settings,
                     nothing_to_do)


def site(out: Annotated[Path, typer.Option("--out", help="Folder for the site (created; unchanged pages are not "
                                           "rewritten, pages it no longer has are removed; a folder holding an "
                                           "index.html, search.html, static/, days/, months/ or papers/ that is "
                                           "not a ranker site is refused).",
                                           parser=given_path)],
         config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False) -> None:
    """Render the archive, every day, month and paper to static HTML, with search done in the page.

    Ready for GitHub Pages or any file server, and readable from disk. No feedback buttons. A database that
    holds no day yet is nothing to do (no site is written).

    \b
    Example:
      ranker site --out site/
    """
    s = load_settings(config, verbose=verbose, db=db, offline=offline)
    check_out(out, folder=True)      # a file there, or a folder that cannot be written: said as run says it
    from ..store import Store
    from ..web.render import environment
    from ..web.site import build_site
    environment()                    # a missing web extra is said first, whatever the store holds
    with Store(s.db_path, create=False) as store:      # a mistyped --db makes no empty file
        if not store.days():
            nothing_to_do(f"{s.db_path} holds no days yet (`ranker run` stores them); wrote no site")
            return
        res = build_site(store, out, waiting=lambda: info(f"site: waiting for another build into {out} to end"))
    for note in res.notes:
        info(f"note: {note}")
    info(res.summary())
    echo(str(res.out / "index.html"))


def register(app: typer.Typer) -> None:
    app.command("site")(site)
