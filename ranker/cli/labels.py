"""`ranker labels`: your thumbs up/down, to and from a JSONL file (id, label, time)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import (ConfigOpt, DbOpt, OfflineOpt, QuietOpt, VerboseOpt, as_given, check_out, db_there, echo,
                     given_path, in_shown, info, load_settings, nothing_to_do, out_path, out_shown, wrote_empty)

if TYPE_CHECKING:
    from ..store import Store

labels_app = typer.Typer(help="""Your labels (thumbs up/down from `ranker serve`): export, import, list.

\b
Examples:
  ranker labels export ~/ranker-labels.jsonl
  ranker labels import ~/ranker-labels.jsonl     (on another machine: merged, the later label wins)
  ranker labels list
""", no_args_is_help=True, rich_markup_mode=None)


@labels_app.command("export", short_help="Write every label to FILE, one JSON line each.")
def export(file: Annotated[Path, typer.Argument(help="JSONL file to write ('-' for stdout).", parser=given_path)],
           config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False,
           quiet: QuietOpt = False) -> None:
    """Write every label to FILE, one JSON line each: {"id", "label" (1 up, -1 down), "time", "day"}.

    \b
    Example:
      ranker labels export ~/ranker-labels.jsonl
    """
    from ..labels import export_labels, holds_something
    check_out(file)             # before the database is opened: /dev/fd/N is never its descriptor
    with _store(config, db, offline, verbose, quiet) as store:
        out = out_path(file)                            # '-': stdout, as every command's --out (not a file named -)
        n = export_labels(store, out)
    if not n:                                           # what a file held stays (see export_labels)
        if holds_something(out):                        # (`export - >> kept.jsonl`: stdout holds something)
            done = f"left {out_shown(file)} as it was"
        else:
            done = wrote_empty(file)
        nothing_to_do(f"no labels in {as_given(str(store.path))} ({done})")
        return
    info(f"labels: {n} written -> {out_shown(file)}")


@labels_app.command("import")
def import_(file: Annotated[Path, typer.Argument(help="JSONL file from `ranker labels export` ('-' for stdin).",
                                                 parser=given_path)],
            config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None,
            verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Merge the labels of FILE into the store. Idempotent; where both sides labelled a paper, the later wins.

    A database named with --db (or RANKER_DB, ranker.toml's db) must exist; the home's own is made on a first
    import.

    \b
    Example:
      ranker labels import ~/ranker-labels.jsonl
    """
    from ..io import stdin_named
    from ..labels import import_labels
    with _store(config, db, offline, verbose, quiet, writes=True) as store:
        c = import_labels(store, Path(stdin_named(file)), in_shown(file))    # '-': stdin, not a file
    if not sum(c.values()):
        nothing_to_do(f"no labels in {in_shown(file)}")
        return
    info(f"labels: {c['added']} added, {c['changed']} changed, {c['taken back']} taken back, "
         f"{c['unchanged']} unchanged from {in_shown(file)}")


@labels_app.command("list")
def list_(config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False,
          quiet: QuietOpt = False) -> None:
    """Print the labels, newest first: id, up/down, day, title.

    \b
    Example:
      ranker labels list
    """
    with _store(config, db, offline, verbose, quiet) as store:
        labels = store.get_labels()
        papers = store.get_papers(labels)
    if not labels:
        nothing_to_do(f"no labels in {as_given(str(store.path))} yet (the thumbs of `ranker serve` give them)")
        return
    for pid, lb in labels.items():
        # a label imported from another machine, on a paper this store never had: said as the labels page says it
        title = papers[pid].title if pid in papers else "(not in this store)"
        echo(f"{pid}\t{'up' if lb.liked else 'down'}\t{lb.day or ''}\t{title}")


def _store(config: Path | None, db: Path | None, offline: bool | None, verbose: bool, quiet: bool, *,
           writes: bool = False) -> "Store":
    """The store the settings name (ranker.toml, RANKER_HOME / RANKER_DB, --db). A missing one named otherwise
    than the home's own is an error naming where it was named (db_there), for every labels command: import would
    make a new database holding the labels and no papers, where nothing else looks, and export said "nothing to
    do" with status 0 for a mistyped --db, as if the labels were none. The home's own, missing (a fresh
    machine), is made by import; export and list open it as an empty store, leaving no database behind."""
    from ..store import Store
    s = load_settings(config, verbose=verbose, quiet=quiet, db=db, offline=offline)
    path = db_there(s)
    return Store(path) if writes else Store(path, create=False)


def register(app: typer.Typer) -> None:
    app.add_typer(labels_app, name="labels", short_help="Your thumbs up/down labels: export, import, list.")
