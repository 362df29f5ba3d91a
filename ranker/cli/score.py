"""`ranker score`: papers -> scores.jsonl through a local LLM."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..io import counted
from .common import (in_shown, BackendOpt, BackendOptionOpt, ConfigOpt, DbOpt, DefaultPromptsOpt, EmbedderOpt,
                     LayoutOpt, MaxTokensOpt, ModelOpt, NoveltyContextOpt, OfflineOpt, PapersOpt, PapersPerRequestOpt,
                     Progress, PromptsOpt, QuietOpt, ScoreModeOpt, VerboseOpt, check_model, check_out, given_path, info,
                     load_settings, nothing_to_do, out_path, out_shown, scores_stored, warn, warn_failures, warn_read,
                     wrote_empty)


def score(papers: PapersOpt,
          out: Annotated[Path, typer.Option("--out", help="Where to write the JSONL scores ('-' for stdout).",
                                            parser=given_path)],
          backend: BackendOpt = None, model: ModelOpt = None, backend_option: BackendOptionOpt = None,
          prompts: PromptsOpt = None, default_prompts: DefaultPromptsOpt = None,
          only_kept: Annotated[bool, typer.Option("--only-kept", help="Score only rows the prefilter kept.")] = False,
          score_mode: ScoreModeOpt = None, prompt_layout: LayoutOpt = None,
          papers_per_request: PapersPerRequestOpt = None,
          novelty_context: NoveltyContextOpt = None, embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None,
          config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False,
          quiet: QuietOpt = False) -> None:
    """Score papers with a local LLM; writes one {ARXIVID, COMMENT, RELEVANCE, NOVELTY} line per paper.

    Papers already scored by the same model and prompt are reused from the database; when all are, no
    model is loaded. With --novelty-context K each prompt also lists the K nearest papers announced before the
    paper's day, found in the corpus index of the prefilter's embedder (--embedder, --max-tokens).

    \b
    Example:
      ranker score --papers ranked.jsonl --only-kept --backend vllm --model smollm2-135m --out scores.jsonl
    """
    s = load_settings(config, verbose=verbose, quiet=quiet, backend=backend, model=model, backend_option=backend_option,
                      prompts=prompts, default_prompts=default_prompts, score_mode=score_mode,
                      prompt_layout=prompt_layout, papers_per_request=papers_per_request,
                      novelty_context=novelty_context, embedder=embedder, max_tokens=max_tokens, db=db, offline=offline)
    check_out(out)
    check_model(s, scored=scores_stored(s.db_path))    # a rerun whose scores are stored loads no model
    from ..errors import during
    from ..io import atomic_write
    from ..sources import ReadReport, read_papers, read_ranked
    from ..steps import score_day
    from ..store import Store

    report = ReadReport()
    if only_kept:
        rows = [r.paper for r in read_ranked(papers, report=report, name=in_shown(papers)) if r.kept]
    else:
        rows = list(read_papers(papers, report=report, name=in_shown(papers)))
    warn_read(report)
    if not rows:
        atomic_write(out_path(out), [], tidy=True)
        nothing_to_do(f"no {'kept ' if only_kept else ''}papers in {in_shown(papers)} "
                      f"({wrote_empty(out)})")
        return
    with Store(s.db_path) as store:
        with Progress() as bar, store.recording("score", {"papers": str(papers), "n": len(rows),
                                                          "backend": s.scoring.backend,
                                                          "model": s.scoring.model}) as rec:
            run = score_day(rows, s, store=store, run_id=rec.id, progress=bar, warn=warn)
            rec.status = run.status
        # once the bar is gone: `--out -` on the terminal the bar is drawn on had its lines erased by the bar's
        # redraws and its last frame left among them
        with during("writing the scores", scored=lambda: len(run.scores), due=lambda: len(rows),
                    reused=lambda: run.reused):
            atomic_write(out_path(out), run.lines(), tidy=True)
    info(f"{len(run.scores):,} of {counted(len(rows), 'paper')} scored -> {out_shown(out)} ({run.reused:,} reused from the store, "
         f"{run.scored:,} new, {run.retried:,} retried, {len(run.failures):,} failed; "
         f"{run.usage.prompt_tokens:,} prompt + {run.usage.completion_tokens:,} completion tokens)")
    warn_failures(run)


def register(app: typer.Typer) -> None:
    app.command("score", short_help="Score papers with a local LLM.")(score)
