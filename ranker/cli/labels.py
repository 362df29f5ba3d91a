"""`ranker labels`: your thumbs up/down, to and from a JSONL file (id, label, time)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import DbOpt, echo, info

labels_app = typer.Typer(help="Your labels (thumbs up/down from `ranker serve`): export, import, list.",
                         no_args_is_help=True)


@labels_app.command("export")
def export(file: Annotated[Path, typer.Argument(help="JSONL file to write.")], db: DbOpt = None) -> None:
    """Write every label to FILE, one JSON line each: {"id", "label" (1 up, -1 down), "time", "day"}.

    Example: ranker labels export ~/ranker-labels.jsonl
    """
    from .. import config as cfgmod
    from ..labels import export_labels
    from ..store import Store
    with Store(cfgmod.db_path(db)) as store:
        n = export_labels(store, file)
    info(f"labels: {n} written -> {file}")


@labels_app.command("import")
def import_(file: Annotated[Path, typer.Argument(help="JSONL file from `ranker labels export`.")],
            db: DbOpt = None) -> None:
    """Merge the labels of FILE into the store. Idempotent; where both sides labelled a paper, the later wins.

    Example: ranker labels import ~/ranker-labels.jsonl
    """
    from .. import config as cfgmod
    from ..labels import import_labels
    from ..store import Store
    with Store(cfgmod.db_path(db)) as store:
        c = import_labels(store, file)
    info(f"labels: {c['added']} added, {c['changed']} changed, {c['unchanged']} unchanged from {file}")


@labels_app.command("list")
def list_(db: DbOpt = None) -> None:
    """Print the labels, newest first: id, up/down, day, title.

    Example: ranker labels list
    """
    from .. import config as cfgmod
    from ..store import Store
    with Store(cfgmod.db_path(db)) as store:
        labels = store.get_labels()
        papers = store.get_papers(labels)
    for pid, lb in labels.items():
        title = papers[pid].title if pid in papers else ""
        echo(f"{pid}\t{'up' if lb.label > 0 else 'down'}\t{lb.day or ''}\t{title}")


def register(app: typer.Typer) -> None:
    app.add_typer(labels_app, name="labels")
