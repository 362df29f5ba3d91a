"""`ranker prefilter`: rank a day's papers by closeness to the prompt's topics; mark the top part kept."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (ConfigOpt, DbOpt, EmbedderOpt, MaxTokensOpt, PapersOpt, Progress, PromptsOpt,
                     config_with_overrides, info)


def prefilter(papers: PapersOpt,
              out: Annotated[Path, typer.Option("--out", help="Where to write the ranked papers (JSONL; '-' for "
                                                "stdout).")],
              prompts: PromptsOpt = None,
              keep: Annotated[Optional[float], typer.Option(
                  "--keep", help="Fraction of the papers to keep, in (0, 1] (default 0.4; never fewer than 20 "
                  "papers, or all of them when there are fewer).", show_default=False)] = None,
              top: Annotated[Optional[int], typer.Option(
                  "--top", help="Keep exactly the K best papers instead of a fraction.", show_default=False)] = None,
              calibration: Annotated[Optional[Path], typer.Option(
                  "--calibration", help="A calibration file from `ranker calibrate` (learned from your GPT "
                  "digest history).", show_default=False)] = None,
              embedder: EmbedderOpt = None,
              max_tokens: MaxTokensOpt = None,
              config: ConfigOpt = None, db: DbOpt = None) -> None:
    """Rank papers by how close they are to your topics (paper_topics.txt) and mark the best ones kept.

    Writes EVERY paper, best first, one JSON line each: id, prefilter_score, kept, topic and the paper's fields.

    The file feeds `ranker score --only-kept` directly. Vectors are cached in the database: a rerun embeds nothing.

    Example: ranker prefilter --papers 2025-06-23.jsonl --out ranked.jsonl --keep 0.4
    """
    from .. import config as cfgmod
    from ..errors import InputError
    from ..prefilter import run_prefilter
    from ..prefilter.embed import Embedder
    from ..prompts import load_prompts
    from ..sources import ReadReport, read_papers
    from ..store import Store

    if keep is not None and top is not None:
        raise InputError("give --keep or --top, not both", where="--top")
    cfg = config_with_overrides(config, embedder=embedder, keep=keep, top=top,
                                calibration=str(calibration) if calibration else None, prompts=prompts)
    pf = cfg.prefilter
    ps = load_prompts(cfg.scoring.prompts)
    report = ReadReport()
    rows = list(read_papers(papers, report=report))
    for note in report.notes():
        info(note)
    if not rows:
        raise InputError("no papers to rank (the file is empty)", where=str(papers))
    with Store(cfgmod.db_path(db)) as store, Progress() as bar:
        emb = Embedder(pf.embedder, max_tokens=max_tokens)
        result = run_prefilter(rows, ps, embedder=emb, keep=None if pf.top else pf.keep, top=pf.top,
                               min_keep=pf.min_keep, calibration=pf.calibration, store=store,
                               progress=lambda d, n: bar("embedding", d, n), warn=info)
    _write_ranked(result.ranked, out)
    info(result.summary() + f" -> {out}")


def _write_ranked(ranked, out: Path) -> None:
    """One JSON line per row (Ranked.to_dict order: id, prefilter_score, kept, topic, paper fields), written to a
    temporary file beside `out` and renamed, so an interrupted run leaves the old file whole."""
    import json
    import os
    import sys
    from ..errors import InputError
    def lines():            # one row at a time: a 30,000-paper day never sits in memory as one string
        for r in ranked:
            yield json.dumps(r.to_dict(), ensure_ascii=False) + "\n"
    if str(out) == "-":
        sys.stdout.writelines(lines())
        sys.stdout.flush()
        return
    out = Path(out)
    if out.is_dir():
        raise InputError("is a directory; give a file name", where="--out")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".part")
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(lines())
        os.replace(tmp, out)
    except OSError as e:
        raise InputError(f"cannot write: {e.strerror}", where=str(out)) from None


def register(app: typer.Typer) -> None:
    app.command("prefilter")(prefilter)
