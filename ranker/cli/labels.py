"""`ranker labels`: your thumbs up/down, to and from a JSONL file (id, label, time)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .common import ConfigOpt, DbOpt, echo, info, load_settings

if TYPE_CHECKING:
    from ..store import Store

labels_app = typer.Typer(help="Your labels (thumbs up/down from `ranker serve`): export, import, list.",
                         no_args_is_help=True)


@labels_app.command("export")
def export(file: Annotated[Path, typer.Argument(help="JSONL file to write.")], config: ConfigOpt = None,
           db: DbOpt = None) -> None:
    """Write every label to FILE, one JSON line each: {"id", "label" (1 up, -1 down), "time", "day"}.

    Example: ranker labels export ~/ranker-labels.jsonl
    """
    from ..labels import export_labels
    with _store(config, db) as store:
        n = export_labels(store, file)
    info(f"labels: {n} written -> {file}")


@labels_app.command("import")
def import_(file: Annotated[Path, typer.Argument(help="JSONL file from `ranker labels export`.")],
            config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Merge the labels of FILE into the store. Idempotent; where both sides labelled a paper, the later wins.

    Example: ranker labels import ~/ranker-labels.jsonl
    """
    from ..labels import import_labels
    with _store(config, db) as store:
        c = import_labels(store, file)
    info(f"labels: {c['added']} added, {c['changed']} changed, {c['unchanged']} unchanged from {file}")


@labels_app.command("list")
def list_(config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Print the labels, newest first: id, up/down, day, title.

    Example: ranker labels list
    """
    with _store(config, db) as store:
        labels = store.get_labels()
        papers = store.get_papers(labels)
    for pid, lb in labels.items():
        title = papers[pid].title if pid in papers else ""
        echo(f"{pid}\t{'up' if lb.liked else 'down'}\t{lb.day or ''}\t{title}")


def _store(config: Path | None, db: Path | None) -> "Store":
    """The store the settings name (ranker.toml, RANKER_HOME / RANKER_DB, --db)."""
    from ..store import Store
    return Store(load_settings(config, db=db).db_path)


def register(app: typer.Typer) -> None:
    app.add_typer(labels_app, name="labels")
