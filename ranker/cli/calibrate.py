"""`ranker calibrate`: learn from your history of GPT digests which papers GPT picks."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..io import counted
from ..records import MIN_NOVELTY, MIN_RELEVANCE
from .common import (ConfigOpt, DbOpt, DefaultPromptsOpt, EmbedderOpt, MaxTokensOpt, OfflineOpt, Progress, PromptsOpt,
                     QuietOpt, VerboseOpt, check_embedder, check_out, check_served, db_there, echo, given_path,
                     index_said, info, load_settings, name_mention, out_path, out_shown, warn)


def calibrate(out: Annotated[Path, typer.Option("--out", help="Where to write the calibration (JSON; '-' for stdout, "
                                                "the walk-forward table then going to stderr).",
                                                parser=given_path)],
              history: Annotated[Optional[Path], typer.Option(
                  "--history", help="Folder of past days: <date>/listing.jsonl plus GPT's picks "
                  "(<date>/gpt_scores.jsonl, or the digest's .json or .md). Without it: your labels alone.",
                  show_default=False, parser=given_path)] = None,
              prompts: PromptsOpt = None, default_prompts: DefaultPromptsOpt = None, embedder: EmbedderOpt = None,
              max_tokens: MaxTokensOpt = None,
              labels: Annotated[bool, typer.Option("--labels/--no-labels", help="Learn from your own thumbs up/down "
                                                   "in the database too (`ranker serve`, `ranker labels import`)."
                                                   )] = True,
              evaluate: Annotated[bool, typer.Option("--eval/--no-eval", help="Print walk-forward figures: the "
                                                     "last third of the days (at most the last 20), each ranked by a "
                                                     "fit on the days before it, beside zero-shot's (one fit per "
                                                     "such day more)."
                                                     )] = True,
              min_relevance: Annotated[Optional[int], typer.Option(
                  "--min-relevance", show_default=False, help="A judgement of GPT's is a pick at RELEVANCE >= this "
                  f"(default: [digest] min_relevance of ranker.toml, {MIN_RELEVANCE}): your digest's own "
                  "cut-off.")] = None,
              min_novelty: Annotated[Optional[int], typer.Option(
                  "--min-novelty", show_default=False, help="A judgement of GPT's is a pick at NOVELTY >= this "
                  f"(default: [digest] min_novelty of ranker.toml, {MIN_NOVELTY}).")] = None,
              config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None,
              verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Learn from days GPT-4o already judged, and from your own labels; print what it buys on days it did not see.

    Logistic regressions on embeddings and on words, stacked with the zero-shot topic score and what the history
    says about the authors and categories. A label of yours overrides GPT's pick for that paper and weighs 3
    times as much; labelled papers outside the history count too, so labels alone work once there are 10 of
    each kind. Prints AUC, recall in the top 25% / 40% and keep95 (the smallest top fraction of a day holding
    95% of GPT's picks), walk-forward, beside zero-shot's.

    Use the file with `ranker prefilter --calibration FILE` (and the same --embedder); it keeps by recall 0.95.

    \b
    Example:
      ranker calibrate --history ~/gpt-digests --out ~/.ranker/calibration.json
    """
    import time

    from ..errors import InputError, mentions
    from ..labels import MIN_LABELS_EACH, TrainingLabels, labels_needed, training_labels
    from ..prefilter.calibrate import calibrate as fit_history, check_enough
    from ..prefilter.history import history_folder, read_history, topics_note
    from ..prefilter.walkforward import table
    from ..prompts import load_prompts
    from ..store import Store

    s = load_settings(config, verbose=verbose, quiet=quiet, embedder=embedder, max_tokens=max_tokens, prompts=prompts,
                      default_prompts=default_prompts, db=db, offline=offline, min_relevance=min_relevance,
                      min_novelty=min_novelty)
    check_out(out)                              # before minutes of embedding and fitting, not after
    # what is wrong with the files and flags (a database that cannot be one, a history not there, nothing to learn
    # from), then with the embedder, said before the history is read (its lines said first): the model last, as
    # run and eval check it (an embedder not prepared, said first, hid a mistyped --db from one with both)
    from ..store import check_db_path
    check_db_path(s.db_path)
    if history is not None:
        history_folder(history)         # not there, or a file: said as eval says it
    elif not labels:
        raise InputError("nothing to learn from: no GPT history given, and labels left out", key="history")
    else:
        db_there(s)         # labels alone are read from the database: a mistyped --db is not an empty one
    emb = check_embedder(s, loadable=True)
    ps = load_prompts(s.scoring.prompts)
    days = []
    if history is not None:
        # GPT's picks at the user's own cut-offs: a digest that kept RELEVANCE >= 7 lists those papers as picks
        hist = read_history(history, warn=warn, min_relevance=s.digest.min_relevance,
                            min_novelty=s.digest.min_novelty)
        days = hist.days
        n_papers = sum(len(d.papers) for d in days)
        n_picks = sum(len(d.picks) for d in days)
        skipped = f"; {counted(len(hist.skipped), 'day')} skipped" if hist.skipped else ""
        none = sum(1 for d in days if not d.picks)     # GPT picked nothing: their papers are learnt as not picked
        none_said = f" ({none} with none)" if none else ""
        info(f"history: {counted(len(days), 'day')}, {counted(n_papers, 'paper')}, {counted(n_picks, 'GPT pick')}"
             f"{none_said}{skipped}")
        changed = topics_note(days, ps.topics_text, where=str(Path(ps.source) / "paper_topics.txt"))
        if changed:
            warn(mentions(changed, name_mention))
    t0 = time.perf_counter()
    with Store(s.db_path) as store, Progress() as bar:
        lab = training_labels(store, days) if labels else TrainingLabels({}, {}, [], 0, 0, 0)
        if lab.labels:
            # the labels the fit can use (lab.usable): not those on papers the store does not hold (left out)
            up = sum(lab.usable.values())
            info(f"labels: {lab.used} of yours used ({up} up, {lab.used - up} down; {lab.on_history} on "
                 f"history papers, overriding GPT's pick; {lab.outside} on other papers)"
                 + (f"; {lab.unknown} left out: papers not in the database" if lab.unknown else ""))
        if history is None:
            short = labels_needed(lab.usable)
            if short:
                raise InputError(f"no GPT history given, and too few labels to learn from alone: {short} more "
                                 f"needed ({MIN_LABELS_EACH} thumbs up and {MIN_LABELS_EACH} thumbs down)",
                                 key="history")
        else:
            # only labels the fit can use make up for a short history
            check_enough(days, labels_short=labels_needed(lab.usable) if lab.labels else None, where=str(history))
        # the papers the fit embeds, labelled ones outside the history too (lab.days): an embedder not prepared is
        # said here, naming --embedder, not at the first of them the store holds no vector of (nothing written yet)
        whose = " and ".join(w for w, there in (("the history", days), ("your labels", lab.days)) if there)
        check_served(s, emb, [p for d in days + lab.days for p in d.papers], whose or "the history")
        cal, report = fit_history(sorted(days + lab.days, key=lambda d: d.date), ps, embedder=emb, store=store,
                                  evaluate=evaluate, labels=lab.labels or None, label_dates=lab.dates,
                                  eval_on=[d.date for d in days] or None, progress=bar)
        from ..index import update_index
        update_index(store, emb.key, (p for d in days for p in d.papers), warn=index_said)
    if evaluate and (report is None or not report.days):
        # the days they rank: GPT's days when a history is given (labels then only train), else the days labels
        # were given on, a day counting once a thumb up was given on it (prefilter.calibrate.calibrate's eval_on)
        need = ("3 days with GPT picks" if history is not None else
                "labels given on 3 days, each with a thumb up")
        info(f"note: walk-forward figures need at least {need}, ranking each by a fit on the days before it; "
             "skipped")
    if report is not None and report.days:
        for line in table(report):
            (info if str(out) == "-" else echo)(line)     # `--out - > cal.json`: the JSON alone on stdout
        if report.mean("learned")["keep95"] > report.mean("zero_shot")["keep95"]:
            info(zero_shot_note(report.days, [d.date for d in days + lab.days]))
    cal.save(out_path(out))                     # '-': stdout, not a file named '-'
    t95 = cal.recall_thresholds.get("0.95")
    secs = cal.trained_on.get("seconds", {})
    took = f"{time.perf_counter() - t0:.0f}s: " + ", ".join(f"{k.replace('_', '-')} {v:.0f}s" for k, v in secs.items())
    used = f"; {cal.trained_on.get('labels', 0)} labels" if lab.labels else ""
    info(f"calibration written to {out_shown(out)} (embedder {cal.embedder}, {cal.dim}-d{used}; {took}"
         + (f"; keeps by recall 0.95 at score >= {t95:.3f})" if t95 is not None else ")"))


# The history lengths the README's "How much history" measured (scripts/eval_walkforward.py --window N): the
# calibration kept GPT's picks in a smaller share of the day than zero-shot at each, 10 days already (0.402 vs 0.520)
MEASURED_DAYS = (10, 40)


def zero_shot_note(test_days: list[str], history: list[str]) -> str:
    """Said when the walk-forward check found zero-shot ahead: how many days the fits behind its figures learnt
    from (each test day is ranked by a fit on the history's days before it), against the lengths measured. It said
    "a longer history (measured: 5 days or more) usually reverses that" of an 8-day history: 5 days was never
    measured, and the history was already longer."""
    dates = sorted(set(history))
    fits = [sum(1 for x in dates if x < t) for t in test_days]
    lo, hi = min(fits), max(fits)
    took = f"{lo} days" if lo == hi else f"{lo} to {hi} days"
    shortest, longest = MEASURED_DAYS
    said = ("note: on these days the zero-shot score kept GPT's picks in a smaller part of the day than the "
            f"calibration; the fits behind these figures learnt from {took} each (of the {counted(len(dates), 'day')} "
            "here, a day ranked by a fit on those before it)")
    if lo < shortest:
        return (f"{said}; on the histories measured ({shortest} to {longest} days) the calibration kept the smaller "
                f"part from {shortest} days on, so a longer history may reverse this")
    return (f"{said}, no shorter than the shortest history measured ({shortest} days; {shortest} to {longest} were "
            "measured), where the calibration kept the smaller part at every length: on these days zero-shot may "
            "simply suit your picks better")


def register(app: typer.Typer) -> None:
    app.command("calibrate", short_help="Learn from GPT-judged days and your labels; show the gain.")(calibrate)
