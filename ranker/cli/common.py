"""Options shared by several commands, declared once."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

DbOpt = Annotated[Optional[Path], typer.Option("--db", help="SQLite database (default: $RANKER_HOME/ranker.sqlite3).",
                                               show_default=False)]
PromptsOpt = Annotated[Optional[Path], typer.Option("--prompts", help="Prompt directory in the seed layout "
                                                    "(default: the bundled prompt set).", show_default=False)]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="A ranker.toml with defaults; flags override it.",
                                                   show_default=False)]
PapersOpt = Annotated[Path, typer.Option("--papers", help="Papers JSONL (from `ranker fetch` or `ranker prefilter`).")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Open no network connection except to loopback "
                                          "(same as RANKER_OFFLINE=1).")]
EmbedderOpt = Annotated[Optional[str], typer.Option("--embedder", help="Embedding model: a preset name (minilm, "
                                                    "mpnet), a local folder or a Hugging Face id.",
                                                    show_default=False)]


def echo(msg: str = "") -> None:
    """stdout: results a user asked for."""
    typer.echo(msg)


def info(msg: str) -> None:
    """stderr: progress and notes, so stdout stays clean for pipes."""
    typer.echo(msg, err=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


def apply_offline(offline: bool) -> None:
    if offline:
        from ..netguard import enable_offline
        enable_offline()
