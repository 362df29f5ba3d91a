"""`ranker score`: papers -> scores.jsonl through a local LLM."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (BackendOpt, ConfigOpt, DbOpt, ModelOpt, NoveltyContextOpt, OfflineOpt, PapersOpt, Progress,
                     PromptsOpt, ScoreModeOpt, LayoutOpt, apply_offline, config_with_overrides, info)


def score(papers: PapersOpt,
          out: Annotated[Path, typer.Option("--out", help="Where to write the JSONL scores.")],
          backend: BackendOpt = None, model: ModelOpt = None, prompts: PromptsOpt = None,
          only_kept: Annotated[bool, typer.Option("--only-kept", help="Score only rows the prefilter kept.")] = False,
          score_mode: ScoreModeOpt = None, prompt_layout: LayoutOpt = None,
          papers_per_request: Annotated[Optional[int], typer.Option(
              "--papers-per-request", help="Papers in one request (1 = one paper per request, the default; "
              "more reproduces the seed's multi-paper batches).", show_default=False)] = None,
          novelty_context: NoveltyContextOpt = None,
          config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = False) -> None:
    """Score papers with a local LLM; writes one {ARXIVID, COMMENT, RELEVANCE, NOVELTY} line per paper.

    Example: ranker score --papers ranked.jsonl --only-kept --backend vllm --model smollm2-135m --out scores.jsonl
    """
    apply_offline(offline)
    from .. import config as cfgmod
    from ..backends import get_backend
    from ..errors import InputError
    from ..prompts import load_prompts
    from ..scoring import ScoreOptions, score_papers
    from ..sources import read_papers
    from ..store import Store

    cfg = config_with_overrides(config, backend=backend, model=model, prompts=prompts, score_mode=score_mode,
                                prompt_layout=prompt_layout, papers_per_request=papers_per_request,
                                novelty_context=novelty_context)
    rows = list(read_papers(papers))
    if only_kept:
        if rows and not any("kept" in p.extra for p in rows):
            raise InputError("--only-kept needs the output of `ranker prefilter` (rows with a 'kept' field)",
                             where=str(papers))
        rows = [p for p in rows if p.extra.get("kept")]
    sc = cfg.scoring
    ps = load_prompts(sc.prompts)
    opts = ScoreOptions.from_config(sc)
    with Store(cfgmod.db_path(db)) as store:
        store.add_papers(rows)
        related = None
        if opts.novelty_context:
            from ..index import novelty_context as earlier
            related = earlier(rows, store, embedder=cfg.prefilter.embedder, k=opts.novelty_context, warn=info)
        run_id = store.start_run("score", {"papers": str(papers), "n": len(rows), "backend": sc.backend,
                                           "model": sc.model})
        status = "failed"
        try:
            with get_backend(sc.backend, sc.model, **({"engine_args": sc.engine_args} if sc.engine_args else {})) \
                    as be, Progress() as bar:
                run = score_papers(rows, be, ps, store, out, options=opts, run_id=run_id,
                                   progress=lambda d, n: bar("scoring", d, n), related=related)
            status = "ok" if not run.failures else "partial"
        finally:
            store.finish_run(run_id, status, {})
    info(f"{len(run.scores)} of {len(rows)} papers scored -> {out} ({run.reused} reused from the store, "
         f"{run.scored} new, {run.retried} retried, {len(run.failures)} failed; "
         f"{run.usage.prompt_tokens} prompt + {run.usage.completion_tokens} completion tokens)")
    for f in run.failures[:10]:
        info(f"failed: {f.arxiv_id}: {f.reason}")


def register(app: typer.Typer) -> None:
    app.command("score")(score)
