"""Replaying history days end to end, walk-forward, as a user who switches from a GPT digest would have lived
them: each day ranked by the prefilter (zero-shot, or with a calibration fit only on the days before it),
the kept papers scored by the LLM and the digest picked, through the same steps `ranker run` uses
(ranker.steps), so the scores land in the store and a second eval of the same model scores nothing."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..backends import Backend
from ..compare.readers import ScoreRow, read_scores
from ..errors import InputError, Interrupted, checkpoint, mentions
from ..io import Progress, Warn, counted, ignore_warning, output_dir, write_together
from ..prefilter.history import History, HistoryDay, read_history, topics_note
from ..prompts import PromptSet, load_prompts
from ..records import MIN_NOVELTY, MIN_RELEVANCE
from ..settings import Settings
from ..store import Store
from . import figures, intervals

COMPARISON = "comparison.json"          # beside eval.json: this eval against another (`against`)

@dataclass
class DayEval:
    """One replayed day: what the prefilter kept and how well, and with a model what it scored and picked."""
    date: str
    prefilter: dict                      # figures.prefilter_figures
    curve: list                          # figures.recall_curve
    zero_shot: dict | None = None        # the zero-shot score's ranking figures, beside a calibration's
    calibration: dict | None = None      # the file the day was ranked with and its fit (Calibration.fit_record)
    llm: dict | None = None              # figures.llm_figures + scored / failed / model
    pairs: list = field(default_factory=list)    # GPT's picks the LLM scored (figures.pick_pairs)
    digest: list = field(default_factory=list)   # the ids the digest picked, best first
    seconds: dict = field(default_factory=dict)


@dataclass
class EvalResult:
    history: str
    settings: dict                       # what was evaluated: embedder, keep rule, calibration mode, model
    days: list[DayEval] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)    # {"day", "problem"} for each day left out
    overall: dict = field(default_factory=dict)          # figures.overall, and its "intervals" (intervals.py)
    notes: list[str] = field(default_factory=list)
    files: dict = field(default_factory=dict)            # eval.json, report.html (and comparison.json)
    comparison: dict | None = None                       # comparison.json's content, with an eval to compare
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)          # seconds per stage over all days (see timings())

    def to_dict(self) -> dict:
        return {"history": self.history, "settings": self.settings, "overall": self.overall,
                "days": [asdict(d) for d in self.days], "skipped": self.skipped, "n_skipped": len(self.skipped),
                "notes": self.notes, "seconds": round(self.seconds, 1), "timings": self.timings}


# --------------------------------------------------------------------------- which days
def check_choice(*, calibrate: bool, train_once: bool, days: int | None) -> None:
    """choose_days()'s own arguments, checked before any history is read."""
    if days is not None and days < 1:
        raise InputError("needs at least 1 day", key="days")
    if train_once and not calibrate:
        raise InputError("trains the calibration once, so it needs one: add {key:calibrate}", key="train_once")


def choose_days(picks: Mapping[str, int], *, calibrate: bool, train_once: bool, days: int | None) -> list[str]:
    """The days to evaluate, oldest first, from the history's days (date -> GPT's picks that day): the last
    `days` (all by default); with a calibration only days after enough history to learn from (calibrate.MIN_DAYS
    days with picks and MIN_PICKS picks before them: a day GPT picked nothing on is evaluated but not counted
    among those days), and with `train_once` the last third by default (the part before it trains the one
    calibration)."""
    from ..prefilter.calibrate import MIN_DAYS, MIN_PICKS
    dates = sorted(picks)
    check_choice(calibrate=calibrate, train_once=train_once, days=days)
    if not calibrate:
        return dates[-days:] if days else dates
    before = np.cumsum([0] + [picks[d] for d in dates])[:-1]          # picks on the days before each day
    picked = np.cumsum([0] + [picks[d] > 0 for d in dates])[:-1]     # days with picks before each day
    ok = [d for i, d in enumerate(dates) if picked[i] >= MIN_DAYS and before[i] >= MIN_PICKS]
    if not ok:
        # a day added after the last one would be evaluated with every day of the history before it
        n_with = sum(1 for d in dates if picks[d])
        n_days, n_picks = max(MIN_DAYS + 1 - n_with, 1), MIN_PICKS - sum(picks.values())
        need = [f"{counted(n_days, 'more day', 'more days')}"] \
            + ([counted(n_picks, "more GPT pick", "more GPT picks")] if n_picks > 0 else [])
        none = len(dates) - n_with
        raise InputError(f"the history has {counted(len(dates), 'usable day')}"
                         f"{f' ({none} with no GPT pick)' if none else ''}; a walk-forward "
                         f"calibration learns from at least {MIN_DAYS} days and {MIN_PICKS} GPT picks before the "
                         f"first day it evaluates: add {' and '.join(need)}, or evaluate zero-shot (without the "
                         "calibration)", key="calibrate")
    n = days if days else (max(1, round(len(dates) / 3)) if train_once else len(ok))
    return ok[-min(n, len(ok)):]


# --------------------------------------------------------------------------- GPT's scores of a day
def gpt_rows(history: Path, day: HistoryDay) -> dict[str, ScoreRow]:
    """GPT's judgements of the day's picks (RELEVANCE, NOVELTY), from the file its picks came from, through
    the one reader of GPT digests; none when the picks are only flags in the listing. What the file holds amiss
    was said when the history was read, and is not said again."""
    f = (day.folder or history / day.date) / day.source        # a day in a month's folder is read from there
    if not f.is_file() or f.name == "listing.jsonl":
        return {}
    return {i: r for i, r in read_scores(f, warn=ignore_warning, notice=ignore_warning).items() if i in day.picks}


# --------------------------------------------------------------------------- the replay
def read_eval_history(history: str | Path, out_dir: str | Path, *, calibrate: bool = False, train_once: bool = False,
                      days: int | None = None, warn: Warn = ignore_warning,
                      min_relevance: float = MIN_RELEVANCE, min_novelty: float = MIN_NOVELTY) -> History:
    """The history evaluate_history() would replay, read (read_history, leaving out out_dir; GPT's picks at
    the cut-offs min_relevance / min_novelty, the settings' [digest] ones, as the local digest picks) and
    checked to have days to evaluate (choose_days): an InputError otherwise, with nothing opened or written, so
    a caller can say it before it opens (makes, for a new file) the store and pass the result on as `read`."""
    check_choice(calibrate=calibrate, train_once=train_once, days=days)
    out = Path(out_dir).expanduser()
    if out.exists():
        output_dir(out)                     # a file where the folder goes is said before any work
    read = read_history(Path(history).expanduser(), warn, leave_out=out, min_relevance=min_relevance,
                        min_novelty=min_novelty)
    choose_days({d.date: len(d.picks) for d in read.days}, calibrate=calibrate, train_once=train_once, days=days)
    return read


def replayed_days(read: History, *, calibrate: bool, train_once: bool, days: int | None
                  ) -> tuple[list[str], list[str]]:
    """(the days evaluate_history evaluates, the days it uses), oldest first: with `calibrate` the days before
    the last evaluated one fit the calibrations too. Every day used is embedded once, by one model, into the
    store (ranking a day later loads none)."""
    dates = choose_days({d.date: len(d.picks) for d in read.days}, calibrate=calibrate, train_once=train_once,
                        days=days)
    used = sorted({d.date for d in read.days if d.date <= dates[-1]}) if calibrate else dates
    return dates, used


def evaluate_history(history: str | Path, out_dir: str | Path, settings: Settings, *, store: Store,
                     calibrate: bool = False, train_once: bool = False, days: int | None = None,
                     llm: bool = False, backend: Backend | None = None, prompts: PromptSet | None = None,
                     progress: Progress | None = None, warn: Warn | None = None,
                     read: History | None = None, against: str | Path | None = None,
                     other: Mapping | None = None) -> EvalResult:
    """Replay the history's days (the last `days`, see choose_days) and measure each against GPT's picks;
    write out_dir/eval.json and out_dir/report.html.

    calibrate   rank each day with a calibration fit on GPT's picks of the days before it (nothing later: not
                the user's labels either), written to out_dir/calibrations/<day>.json; train_once: one fit,
                on the days before the first evaluated day, for all of them
    llm         score every kept paper with the model settings.scoring names (or `backend`, which implies
                llm) through steps.score_day and pick the digest through steps.render_digest
    GPT's picks are its judgements at the settings' [digest] cut-offs, the local digest's (a user whose GPT
    digest kept RELEVANCE >= 7 sets min_relevance = 7 for both).
    A day the history reader (prefilter.history.read_history) cannot use (no GPT digest, picks missing from
    its listing, a bad line, a digest in an unknown format) is skipped, counted in the result and passed to
    `warn` as one line. A day whose digest picked nothing is evaluated: what the prefilter kept of it, and with a
    model every paper its digest picks as a false positive; the figures measured against the picks are None for
    it and left out of their means (figures.overall counts such days). Without `calibrate` every day is ranked zero-shot, whatever calibration the settings
    name (it may have been fit on these very days). The history's papers join the store (their days and
    titles, beside the vectors the replay embeds) and the corpus index, as `ranker calibrate` records them;
    past days' rankings are not stored (the store's own days stay as `ranker run` left them); the scores are,
    as `ranker run` stores them. `read`: the history as read_eval_history() returned it for these arguments
    (read there before the store was opened), so it is not read again.
    against     an earlier eval's eval.json (or its folder; `other`: its content as intervals.read_eval read it,
                read here when not given, before any day is replayed): this eval compared with it day by day
                over the days both replayed (intervals.paired_comparison), written to out_dir/comparison.json
                with which two evals it compares (intervals.eval_identity) and drawn in report.html. Without
                it, a comparison.json an earlier eval left there is removed with the same write: it compared
                another eval. One that cannot be compared after the replay is raised once this eval is written
                (without a comparison)."""
    from ..prefilter.calibrate import fit_data
    from ..steps import day_rules, prefilter_day

    t0 = time.perf_counter()
    llm = llm or backend is not None
    warn = warn or ignore_warning
    history = Path(history).expanduser()
    out = Path(out_dir).expanduser()
    if against is not None and other is None:
        other = intervals.read_eval(against)
    if read is None:
        read = read_eval_history(history, out, calibrate=calibrate, train_once=train_once, days=days, warn=warn,
                                 min_relevance=settings.digest.min_relevance,
                                 min_novelty=settings.digest.min_novelty)
    prompts = prompts if prompts is not None else load_prompts(settings.scoring.prompts)
    # the user's exclusions, read once for every day (each day read them again), and one matching nearly every
    # paper said once, as by prefilter and run: it was applied without a word, each day's recall near nothing
    rules = day_rules(settings, prompts, warn)
    by_date = {d.date: d for d in read.days}
    dates, used = replayed_days(read, calibrate=calibrate, train_once=train_once, days=days)
    out = output_dir(out)                   # made once there is something to evaluate: a history that cannot
                                            # be used leaves no empty folder behind
    res = EvalResult(history=str(history), settings=_described(settings, calibrate, train_once, llm, backend,
                                                               prompts),
                     skipped=read.skipped)
    if days and len(dates) < days:
        res.notes.append(f"{days} days asked for, {len(dates)} evaluated"
                         + (" (a calibration needs enough earlier days to learn from)" if calibrate else ""))

    # GPT's picks of days it made under other topics than the prompt's are no measure of these topics
    changed = topics_note([by_date[d] for d in used], prompts.topics_text,
                          where=str(Path(prompts.source) / "paper_topics.txt"))
    if changed:
        res.notes.append(mentions(changed))
    t = time.perf_counter()
    data = _embed_days([by_date[d] for d in used], settings, store, prompts, calibrate=calibrate,
                       progress=progress, warn=warn)
    embedding = time.perf_counter() - t

    zero_shot = settings.model_copy(update={"prefilter": settings.prefilter.model_copy(
        update={"calibration": None})})
    cal_dir = out / "calibrations"
    cal_file, cal_info = None, None
    kept: dict[str, list] = {}              # each day's kept papers, best first, for the scoring pass
    for i, date in enumerate(dates):
        checkpoint()                        # Ctrl-C stops between days, even where a library swallowed it
        day = by_date[date]
        ev_s = zero_shot                    # a calibration in the settings would have seen these days
        sec: dict[str, float] = {}
        if calibrate and (cal_file is None or not train_once):
            t = time.perf_counter()
            train = data.subset(data.groups < date)
            cal = fit_data(train)
            cal_dir.mkdir(exist_ok=True)
            cal_file = cal_dir / f"{date}.json"
            cal.save(cal_file, own_name=True)
            # the shape of a run manifest's calibration_fit, beside the file
            cal_info = {"file": str(cal_file), **cal.fit_record()}
            sec["calibrate"] = round(time.perf_counter() - t, 2)
        if calibrate:
            ev_s = settings.model_copy(update={"prefilter": settings.prefilter.model_copy(
                update={"calibration": str(cal_file)})})
        t = time.perf_counter()
        pre = prefilter_day(day.papers, ev_s, store=store, prompts=prompts, rules=rules, record=False)
        sec["prefilter"] = round(time.perf_counter() - t, 2)
        ev = DayEval(date=date, prefilter=figures.prefilter_figures(pre.ranked, day.picks, pre.keep),
                     curve=figures.recall_curve(pre.ranked, day.picks), calibration=cal_info, seconds=sec)
        if calibrate:
            mask = data.groups == date
            ev.zero_shot = figures.ranking_figures(data.zs[mask], data.y[mask])
        kept[date] = pre.kept_papers
        res.days.append(ev)
        if progress:
            progress("ranking days", i + 1, len(dates))

    if llm:
        _score_days(res.days, kept, by_date, history, settings, store, backend, prompts, progress, warn)
    records = [asdict(d) for d in res.days]
    res.overall = {**figures.overall(records), "intervals": intervals.day_intervals(records)}
    res.seconds = time.perf_counter() - t0
    res.timings = timings(res.seconds, embedding, res.days)
    _write_eval(res, out, other, against)
    return res


def _embed_days(days: list[HistoryDay], settings: Settings, store: Store, prompts: PromptSet, *, calibrate: bool,
                progress: Progress | None, warn: Warn):
    """Every day the replay uses embedded once, by one model, into the store (ranking a day later loads none),
    and its papers joined to the store and the corpus index; with `calibrate`, the fit data of those days
    (prefilter.calibrate.history_data), else None."""
    from ..index import update_index
    from ..prefilter.calibrate import history_data
    from ..prefilter.embed import Embedder

    emb = Embedder.from_settings(settings)
    embedded = (lambda d, n: progress("embedding days", d, n)) if progress else None
    data = None
    if calibrate:
        data = history_data(days, prompts, embedder=emb, store=store, progress=embedded)
    else:
        # zero-shot, the days are only embedded into the store: a fit's matrix of every paper's vector is never
        # read (history_data's, built and held to the end, 112 MB a year in, 224 MB while it was joined)
        for i, d in enumerate(days):
            emb.embed_papers(d.papers, store)
            if embedded is not None:
                embedded(i + 1, len(days))
    # their vectors are in the store now: the papers join it too (days and titles, as `ranker calibrate`
    # records them), so the corpus index and the novelty context know each one's day. The first build of a
    # new home's index is nothing to warn of (the eval is often a switching user's first command).
    update_index(store, emb.key, (p for d in days for p in d.papers), warn=warn, say_first_build=False)
    return data


def _write_eval(res: EvalResult, out: Path, other: Mapping | None, against: str | Path | None) -> None:
    """eval.json and report.html (and comparison.json with `against`) written into `out` as one set, their paths
    in res.files; a comparison that cannot be made is raised once this eval is written (without one)."""
    from .report import render_html
    res.files = {"json": out / "eval.json", "html": out / "report.html"}
    data = res.to_dict()
    refused = None
    if against is not None:
        try:
            res.comparison = comparison_record(data, out / "eval.json", other, against)
        except InputError as e:
            refused = e                     # this eval is kept all the same, said after it is written
    files = {res.files["json"]: [json.dumps(data, indent=2, allow_nan=False) + "\n"],
             res.files["html"]: [render_html(data, res.comparison)]}
    if res.comparison:
        res.files["comparison"] = out / COMPARISON
        files[out / COMPARISON] = [json.dumps(res.comparison, indent=2, allow_nan=False) + "\n"]
    # as one set: a failure to write any (a full disk) leaves the earlier eval's files, never its report
    # beside this eval's figures; an earlier eval's comparison.json goes with them when this one has none
    write_together(files, remove=() if res.comparison else (out / COMPARISON,))
    if refused is not None:
        raise refused


def comparison_record(this: Mapping, this_path: Path, other: Mapping, against: str | Path) -> dict:
    """comparison.json's content: intervals.paired_comparison of this eval (eval.json's content, to be written
    at this_path) with `other` (read from `against`), the two evals' identities beside their settings
    ("eval" this one's, "against_eval" the other's, "replaced" when it was the eval.json this one replaces) and
    the caveat the printed comparison ends with."""
    from .report import comparison_caveat
    path = Path(os.path.abspath(intervals.eval_path(against)))   # read later from anywhere, as eval_identity's
    c = intervals.paired_comparison(this, other, against=path)
    theirs = intervals.eval_identity(other, path)
    theirs["replaced"] = _same_file(path, this_path)
    return {"eval": intervals.eval_identity(this, this_path), "against_eval": theirs, **c,
            "caveat": comparison_caveat(c)}


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return False


def _score_days(days: list[DayEval], kept: dict[str, list], by_date: dict[str, HistoryDay], history: Path,
                settings: Settings, store: Store, backend: Backend | None, prompts: PromptSet,
                progress: Progress | None, warn: Warn) -> None:
    """Score each day's kept papers (scores already stored are reused; the model is loaded only when some
    paper still needs it, once for all days) and pick its digest."""
    from ..backends import make_backend
    from ..steps import loading_stage, render_digest, score_day

    be, own = backend, False
    try:
        for i, ev in enumerate(days):
            checkpoint()
            day = by_date[ev.date]
            t = time.perf_counter()
            if be is None and _needs_model(kept[ev.date], settings, store, prompts):
                if progress:
                    progress(loading_stage(settings), 0, None)
                be, own = make_backend(settings, warn=warn), True
                if progress:
                    progress(loading_stage(settings, be), 1, 1)
            try:
                run = score_day(kept[ev.date], settings, store=store, backend=be, prompts=prompts, warn=warn)
            except Interrupted as e:
                # the counts of the whole eval, not of this day alone: the days before it are stored too
                now = getattr(e, "run", None)
                e.scored = sum(d.llm["scored"] for d in days[:i]) + (len(now.scores) if now else e.scored or 0)
                e.reused = sum(d.llm["reused"] for d in days[:i]) + (now.reused if now else e.reused or 0)
                e.due = sum(len(kept[d.date]) for d in days)
                raise
            dig = render_digest(day.date, day.papers, run, settings, scanned=len(kept[ev.date]), prompts=prompts)
            ev.seconds["score"] = round(time.perf_counter() - t, 2)
            ev.digest = [s.paper.id for s in dig.selected if not getattr(s, "author_match", False)]
            ev.pairs = figures.pick_pairs(gpt_rows(history, day), run.scores)
            ev.llm = {"model": run.model, "scored": len(run.scores), "failed": len(run.failures),
                      "reused": run.reused,
                      **figures.llm_figures(ev.pairs, [p.id for p in day.papers], day.picks, set(ev.digest))}
            if progress:
                progress("scoring days", i + 1, len(days))
    finally:
        if own and be is not None:
            be.close()


# --------------------------------------------------------------------------- helpers
def timings(total: float, embedding: float, days: list[DayEval]) -> dict:
    """Where an eval's time went: embedding the days used (and indexing them), the calibration fits, ranking
    and scoring, each summed over the days, with the number of fits (a day's own seconds stay in its record)."""
    def summed(k: str) -> float:
        return round(sum(d.seconds.get(k, 0.0) for d in days), 1)
    return {"total": round(total, 1), "embedding": round(embedding, 1), "calibrate": summed("calibrate"),
            "fits": sum(1 for d in days if "calibrate" in d.seconds), "prefilter": summed("prefilter"),
            "score": summed("score")}


def _needs_model(papers: list, settings: Settings, store: Store, prompts: PromptSet) -> bool:
    """Whether some of these papers still lack a stored score of the model settings.scoring names."""
    from ..backends import backend_class
    from ..scoring import ScoreOptions, stored_run
    name = backend_class(settings.scoring.backend).store_name(settings.scoring.model, settings.models_dir)
    if name is None:
        return True
    return bool(stored_run(papers, name, prompts, store, options=ScoreOptions.from_settings(settings.scoring)).pending)


def _described(settings: Settings, calibrate: bool, train_once: bool, llm: bool, backend: Backend | None,
               prompts: PromptSet) -> dict:
    from ..scoring import ScoreOptions
    p = settings.prefilter
    out = {"embedder": p.embedder, "max_tokens": p.max_tokens, "keep": p.keep, "top": p.top, "recall": p.recall,
           "min_keep": p.min_keep,
           "calibration": ("walk-forward, trained once" if train_once else "walk-forward, retrained each day")
           if calibrate else "zero-shot",
           # GPT's picks are read at these cut-offs, and the local digest picks at them
           "min_relevance": settings.digest.min_relevance, "min_novelty": settings.digest.min_novelty,
           # the prompt's topics ranked the days and its texts scored them: its hash, as the scores are stored
           "prompt_hash": ScoreOptions.from_settings(settings.scoring).prompt_hash(prompts)}
    if llm:
        out.update(backend=backend.name if backend is not None else settings.scoring.backend,
                   model=backend.model_name if backend is not None else settings.scoring.model)
    return out
