"""`ranker prefilter`: rank a day's papers by closeness to the prompt's topics; mark the top part kept."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (CalibrationOpt, ConfigOpt, DbOpt, EmbedderOpt, MaxTokensOpt, PapersOpt, Progress,
                     PromptsOpt, info, load_settings, warn)


def prefilter(papers: PapersOpt,
              out: Annotated[Path, typer.Option("--out", help="Where to write the ranked papers (JSONL; '-' for "
                                                "stdout).")],
              prompts: PromptsOpt = None,
              keep: Annotated[Optional[float], typer.Option(
                  "--keep", help="Fraction of the papers to keep, in (0, 1] (default 0.4; never fewer than 20 "
                  "papers, or all of them when there are fewer).", show_default=False)] = None,
              top: Annotated[Optional[int], typer.Option(
                  "--top", help="Keep exactly the K best papers instead of a fraction.", show_default=False)] = None,
              calibration: CalibrationOpt = None,
              embedder: EmbedderOpt = None,
              max_tokens: MaxTokensOpt = None,
              config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Rank papers by how close they are to your topics (paper_topics.txt) and mark the best ones kept.

    Writes EVERY paper, best first, one JSON line each: id, prefilter_score, kept, topic and the paper's fields.

    The file feeds `ranker score --only-kept` directly. Vectors are cached in the database: a rerun embeds nothing.

    Example: ranker prefilter --papers 2025-06-23.jsonl --out ranked.jsonl --keep 0.4
    """
    from ..errors import InputError
    from ..io import atomic_write
    from ..sources import ReadReport, ranked_lines, read_papers
    from ..steps import prefilter_day
    from ..store import Store

    if keep is not None and top is not None:
        raise InputError("give --keep or --top, not both", key="top")
    s = load_settings(config, embedder=embedder, max_tokens=max_tokens, keep=keep, top=top, calibration=calibration,
                      prompts=prompts, db=db)
    report = ReadReport()
    rows = list(read_papers(papers, report=report))
    for note in report.notes():
        warn(note)
    if not rows:
        raise InputError("no papers to rank (the file is empty)", where=str(papers))
    with Store(s.db_path) as store, Progress() as bar:
        result = prefilter_day(rows, s, store=store, progress=bar, warn=info)
    if str(out) == "-":
        sys.stdout.writelines(ranked_lines(result.ranked))
        sys.stdout.flush()
    else:
        atomic_write(out, ranked_lines(result.ranked))
    info(result.summary() + f" -> {out}")


def register(app: typer.Typer) -> None:
    app.command("prefilter")(prefilter)
