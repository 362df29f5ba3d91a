"""`ranker site`: the store's pages as a static website."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (as_given, ConfigOpt, DbOpt, EmbedderOpt, MaxTokensOpt, OfflineOpt, QuietOpt, VerboseOpt, check_out,
                     db_there, given_path, info, load_settings, nothing_to_do, wrote)


def site(out: Annotated[Path, typer.Option("--out", help="Folder for the site (created; unchanged pages are not "
                                           "rewritten, pages it no longer has are removed; a folder holding an "
                                           "index.html, search.html, static/, days/, months/ or papers/ that is "
                                           "not a ranker site is refused).",
                                           parser=given_path)],
         embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None, config: ConfigOpt = None, db: DbOpt = None,
         offline: OfflineOpt = None, verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Render the archive, every day, month and paper to static HTML, with search done in the page.

    Ready for GitHub Pages or any file server, and readable from disk. No feedback buttons. A database that
    holds no day yet is nothing to do (no site is written). A paper's similar papers come from the vectors of
    the prefilter's embedder (--embedder, --max-tokens), or another's where it has none of the paper.

    \b
    Example:
      ranker site --out site/
    """
    s = load_settings(config, verbose=verbose, quiet=quiet, embedder=embedder, max_tokens=max_tokens, db=db,
                      offline=offline)
    check_out(out, folder=True)      # a file there, or a folder that cannot be written: said as run says it
    from ..prefilter.embed import Embedder
    from ..store import Store
    from ..web.render import environment
    from .index import panel_embedder_note
    from ..web.site import build_site
    environment()                    # a missing web extra is said first, whatever the store holds
    with Store(db_there(s), create=False) as store:    # a mistyped --db is an error, not an empty database
        if not store.days():
            nothing_to_do(f"{as_given(str(s.db_path))} holds no days yet (`ranker run` stores them); wrote no site")
            return
        # the paper pages' similar papers from the configured embedder first (they came from the alphabetically
        # first, an old embedder's, whose index never holds the papers stored since a switch)
        key = Embedder.from_settings(s).key
        res = build_site(store, out, embedder=key,
                         waiting=lambda: info(f"site: waiting for another build into {out} to end"))
        fewer = panel_embedder_note(store, key)
    if fewer:
        info(f"note: {fewer}")
    for note in res.notes:
        info(f"note: {note}")
    info(res.summary())
    wrote(res.out / "index.html")


def register(app: typer.Typer) -> None:
    app.command("site", short_help="Render the archive to static HTML.")(site)
