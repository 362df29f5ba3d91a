"""`ranker import`: load a backfill folder's shards into the database (papers, embeddings, scores)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..io import counted
from .common import (ConfigOpt, DbOpt, OfflineOpt, Progress, QuietOpt, VerboseOpt, alert, as_given, given_path,
                     index_said, info, load_settings, nothing_to_do, warn)


def import_(folder: Annotated[Path, typer.Argument(help="A folder `ranker backfill` wrote.", parser=given_path)],
            config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None,
            verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Load a backfill into the database: its papers (with their days), their vectors and every score row.

    Idempotent: importing the same folder again changes nothing. Afterwards the other commands see the backfilled
    papers: `ranker prefilter` reuses their vectors (same embedder) and `ranker score` their scores (same model
    and prompt). A folder without shards yet is nothing to do.

    \b
    Example:
      ranker import bf/
    """
    s = load_settings(config, verbose=verbose, quiet=quiet, db=db, offline=offline)
    from ..backfill import import_backfill
    from ..backfill.manifest import load_folder
    from ..store import Store

    load_folder(folder)             # a folder that is no backfill is said before a database is made for it
    # importing into a new home (another machine, a database of its own) is a use: the database is made, and
    # said (under -q too), so that a mistyped --db / RANKER_DB is seen at once, not when the next command finds
    # nothing there
    new = not s.db_path.exists() and not s.db_path.is_symlink()
    try:
        with Store(s.db_path) as store, Progress() as bar:
            res = import_backfill(folder, store, progress=bar, warn=index_said)
    except BaseException:
        # an import that fails (a damaged shard, a full disk, Ctrl-C) after making the database leaves it: said
        # before the error's line, so a mistyped --db is seen now; not removed, as what the shards before the
        # failure stored is kept there (a rerun of the import completes it)
        if new and (s.db_path.exists() or s.db_path.is_symlink()):
            alert(f"{as_given(str(s.db_path))}: a new database (there was none); the import made it and then "
                  "stopped: it stays, with what was imported before the failure")
        raise
    if new:
        alert(f"{as_given(str(s.db_path))}: a new database (there was none); the import made it")
    if not res.shards:
        nothing_to_do(f"{as_given(str(folder))} holds no shards (`ranker backfill` writes them)")
        return
    keys = ", ".join(f"{m} / {h}" for m, h in res.keys) or "none"
    info(f"imported {folder}: {counted(res.shards, 'shard')}; {counted(res.papers, 'new paper')}, "
         f"{counted(res.embeddings, 'vector')}, {counted(res.scores_new, 'score')} written "
         f"({res.scores_unchanged:,} already stored"
         + (f", {res.scores_newer_kept:,} kept as the store's own later score" if res.scores_newer_kept else "")
         + f"), {counted(res.failures, 'failure')}"
         + (f" ({res.failures_unchanged:,} already stored)" if res.failures_unchanged else "") + "; "
         f"models / prompts: {keys}")
    if res.not_finite:
        warn(f"not stored: {counted(len(res.not_finite), 'vector')} holding numbers that are not finite (NaN or "
             f"infinity), of {', '.join(res.not_finite[:5])}" + (", ..." if len(res.not_finite) > 5 else "")
             + "; those papers are stored without one (the next command that embeds them makes it)")
    if res.index is not None:
        from ..index.kinds import label
        info(f"corpus index: {counted(res.index.count, 'vector')}, {label(res.index.kind)}")


def register(app: typer.Typer) -> None:
    app.command("import", short_help="Load a backfill's papers, vectors and scores.")(import_)
