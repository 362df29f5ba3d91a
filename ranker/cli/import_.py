"""`ranker import`: load a backfill folder's shards into the database (papers, embeddings, scores)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import DbOpt, Progress, info


def import_(folder: Annotated[Path, typer.Argument(help="A folder `ranker backfill` wrote.")],
            db: DbOpt = None) -> None:
    """Load a backfill into the database: its papers (with their days), their vectors and every score row.

    Idempotent: importing the same folder again changes nothing. Afterwards serve, similar, eval and digests see
    the backfilled papers.

    Example: ranker import bf/
    """
    from .. import config as cfgmod
    from ..backfill import import_backfill
    from ..store import Store

    with Store(cfgmod.db_path(db)) as store, Progress() as bar:
        res = import_backfill(folder, store, progress=bar)
    keys = ", ".join(f"{m} / {h}" for m, h in res.keys) or "none"
    info(f"imported {folder}: {res.shards} shards; {res.papers} new papers, {res.embeddings} vectors, "
         f"{res.scores_new} scores written ({res.scores_unchanged} already stored), {res.failures} failures; "
         f"models / prompts: {keys}")


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
