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
              evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Print leave-one-day-out metrics "
                                                     "(fits the model once per day more).")] = True,
              config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None,
              verbose: VerboseOpt = False) -> None:
    """Learn from days GPT-4o already judged; print what it buys on each day it did not see.

    A light model: logistic regressions on embeddings and on words, stacked with the zero-shot topic score.

    Use the file with `ranker prefilter --calibration FILE` (and the same --embedder).

    \b
    Example:
      ranker calibrate --history ~/gpt-digests --out ~/.ranker/calibration.json
    """
    from ..prefilter.calibrate import calibrate as fit_history, mean_metrics
    from ..prefilter.embed import Embedder
    from ..prefilter.history import load_history
    from ..prefilter.metrics import format_row
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
    if evaluate and len(days) < 2:
        info("note: leave-one-day-out metrics need at least 2 days; skipped")
    with Store(s.db_path) as store, Progress() as bar:
        emb = Embedder(s.prefilter.embedder, max_tokens=s.prefilter.max_tokens, models_dir=s.models_dir)
        cal, loo = fit_history(days, ps, embedder=emb, store=store, evaluate=evaluate,
                               progress=bar)
        up, down = store.count_labels()
    if up or down:
        info(f"note: {up + down} labels of yours are stored ({up} up, {down} down); this calibration learns from "
             "GPT's picks only and does not use them yet")
    cal.loo = loo
    if loo:
        echo("leave-one-day-out (each day ranked by a model fit on the other days):")
        for day, m in loo.items():
            echo(f"  {day}  " + format_row("zero-shot", m["zero_shot"]) + "   |   "
                 + format_row("calibrated", m["calibrated"]))
        echo("  mean        " + format_row("zero-shot", mean_metrics(loo, "zero_shot")) + "   |   "
             + format_row("calibrated", mean_metrics(loo, "calibrated")))
    cal.save(out)
    w = cal.stack
    info(f"calibration written to {out} (embedder {cal.embedder}, {cal.dim}-d; weights: embedding {w[0]:.2f}, "
         f"words {w[1]:.2f}, zero-shot {w[2]:.2f})")


def register(app: typer.Typer) -> None:
    app.command("calibrate")(calibrate)
