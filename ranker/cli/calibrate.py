"""`ranker calibrate`: learn from your history of GPT digests which papers GPT picks."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (ConfigOpt, DbOpt, EmbedderOpt, MaxTokensOpt, OfflineOpt, Progress, PromptsOpt, VerboseOpt,
                     echo, info, load_settings, warn)


def calibrate(history: Annotated[Path, typer.Option("--history", help="Folder of past days: <date>/listing.jsonl "
                                                    "plus GPT's picks (<date>/gpt_scores.jsonl, or the digest's "
                                                    ".json or .md).")],
              out: Annotated[Path, typer.Option("--out", help="Where to write the calibration (JSON).")],
              prompts: PromptsOpt = None, embedder: EmbedderOpt = None,
              max_tokens: MaxTokensOpt = None,
              evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Print walk-forward figures: the "
                                                     "last third of the days, each ranked by a fit on the days "
                                                     "before it, beside zero-shot's (one fit per such day more)."
                                                     )] = True,
              config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None,
              verbose: VerboseOpt = False) -> None:
    """Learn from days GPT-4o already judged; print what it buys on days it did not see.

    Logistic regressions on embeddings and on words, stacked with the zero-shot topic score and what the history
    says about the authors and categories. Prints AUC, recall in the top 25% / 40% and keep95 (the smallest top
    fraction of a day holding 95% of GPT's picks), walk-forward, beside zero-shot's.

    Use the file with `ranker prefilter --calibration FILE` (and the same --embedder); it keeps by recall 0.95.

    \b
    Example:
      ranker calibrate --history ~/gpt-digests --out ~/.ranker/calibration.json
    """
    import time

    from ..prefilter.calibrate import calibrate as fit_history
    from ..prefilter.embed import Embedder
    from ..prefilter.history import load_history
    from ..prefilter.walkforward import table
    from ..prompts import load_prompts
    from ..store import Store

    s = load_settings(config, verbose=verbose, embedder=embedder, max_tokens=max_tokens, prompts=prompts, db=db,
                      offline=offline)
    ps = load_prompts(s.scoring.prompts)
    days = load_history(history, warn=warn)
    if not days:
        from ..errors import InputError
        raise InputError("no usable day in the history (each needs papers and at least one GPT pick)",
                         where=str(history))
    n_papers = sum(len(d.papers) for d in days)
    n_picks = sum(len(d.picks) for d in days)
    info(f"history: {len(days)} days, {n_papers} papers, {n_picks} GPT picks")
    if evaluate and len(days) < 3:
        info("note: walk-forward figures need at least 3 days; skipped")
    t0 = time.perf_counter()
    with Store(s.db_path) as store, Progress() as bar:
        emb = Embedder(s.prefilter.embedder, max_tokens=s.prefilter.max_tokens, models_dir=s.models_dir)
        cal, report = fit_history(days, ps, embedder=emb, store=store, evaluate=evaluate, progress=bar)
        up, down = store.count_labels()
    if up or down:
        info(f"note: {up + down} labels of yours are stored ({up} up, {down} down); this calibration learns from "
             "GPT's picks only and does not use them yet")
    if report is not None and report.days:
        for line in table(report):
            echo(line)
        if report.mean("learned")["keep95"] > report.mean("zero_shot")["keep95"]:
            info("note: on these days the zero-shot score kept GPT's picks in a smaller part of the day than the "
                 "calibration; a longer history (measured: 5 days or more) usually reverses that")
    cal.save(out)
    t95 = cal.recall_thresholds.get("0.95")
    secs = cal.trained_on.get("seconds", {})
    took = f"{time.perf_counter() - t0:.0f}s: " + ", ".join(f"{k.replace('_', '-')} {v:.0f}s" for k, v in secs.items())
    info(f"calibration written to {out} (embedder {cal.embedder}, {cal.dim}-d; {took}"
         + (f"; keeps by recall 0.95 at score >= {t95:.3f})" if t95 is not None else ")"))


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
