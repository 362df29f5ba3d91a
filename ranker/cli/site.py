"""`ranker site`: the store's pages as a static website."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import ConfigOpt, DbOpt, echo, info, load_settings


def site(out: Annotated[Path, typer.Option("--out", help="Folder for the site (created; unchanged pages are not "
                                           "rewritten).")],
         config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Render the archive, every day, month and paper to static HTML, with search done in the page.

    Ready for GitHub Pages or any file server, and readable from disk. No feedback buttons.

    Example: ranker site --out site/
    """
    s = load_settings(config, db=db)
    from ..store import Store
    from ..web.site import build_site
    with Store(s.db_path) as store:
        res = build_site(store, out)
    info(res.summary())
    echo(str(res.out / "index.html"))


def register(app: typer.Typer) -> None:
    app.command("site")(site)
