"""`ranker eval`: replay your history of GPT digests through the local pipeline and see what switching costs."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..io import counted
from .common import (BackendOpt, BackendOptionOpt, ConfigOpt, DbOpt, DefaultAuthorsOpt, DefaultExcludeOpt,
                     DefaultPromptsOpt, EmbedderOpt, MaxTokensOpt, ModelOpt, OfflineOpt, Progress, PromptsOpt, QuietOpt,
                     RecallOpt, VerboseOpt, check_embedder, check_model, check_out, check_served, echo, given_path,
                     info, load_settings, one_keep_rule, scores_stored, warn)


def eval_(history: Annotated[Path, typer.Option("--history", help="Folder of past days: <date>/listing.jsonl plus "
                                                "GPT's picks (<date>/gpt_scores.jsonl, or the digest's .json or "
                                                ".md).", parser=given_path)],
          out: Annotated[Path, typer.Option("--out", help="Folder for eval.json, report.html and the calibrations.",
                                            parser=given_path)],
          calibrate: Annotated[bool, typer.Option("--calibrate", help="Rank each day with a calibration fit only on "
                                                  "the days before it (as `ranker calibrate` would have made it "
                                                  "that morning); without it, zero-shot.")] = False,
          train_once: Annotated[bool, typer.Option("--train-once", help="With --calibrate: one fit, on the days "
                                                   "before the first evaluated day, for all of them (faster).")
                                ] = False,
          days: Annotated[Optional[int], typer.Option("--days", help="Evaluate the last N days (default: every day "
                                                      "that can be: all zero-shot; with --calibrate each day after 3 "
                                                      "days with GPT picks and 30 picks, or with --train-once the "
                                                      "last third).",
                                                      show_default=False)] = None,
          backend: BackendOpt = None, model: ModelOpt = None, backend_option: BackendOptionOpt = None,
          keep: Annotated[Optional[float], typer.Option("--keep", help="Send this top fraction of each day to the "
                                                        "LLM, in (0, 1] (default: by recall 0.95 with --calibrate, "
                                                        "else 0.4).", show_default=False)] = None,
          top: Annotated[Optional[int], typer.Option("--top", help="Send exactly the K best papers of each day to "
                                                     "the LLM.", show_default=False)] = None,
          recall: RecallOpt = None, embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None,
          prompts: PromptsOpt = None, default_prompts: DefaultPromptsOpt = None,
          default_authors: DefaultAuthorsOpt = None, default_exclude: DefaultExcludeOpt = None,
          min_relevance: Annotated[Optional[int], typer.Option("--min-relevance", show_default=False,
                                                               help="A pick needs RELEVANCE >= this, GPT's and "
                                                               "the local digest's (default: [digest] "
                                                               "min_relevance of ranker.toml, 8).")] = None,
          min_novelty: Annotated[Optional[int], typer.Option("--min-novelty", show_default=False,
                                                             help="A pick needs NOVELTY >= this, GPT's and the "
                                                             "local digest's (default: [digest] min_novelty of "
                                                             "ranker.toml, 7).")] = None,
          against: Annotated[Optional[Path], typer.Option("--against", show_default=False, parser=given_path,
                                                          help="An earlier eval's eval.json (or its --out folder): "
                                                          "compare this eval with it, day by day over the days "
                                                          "both replayed, each figure's difference with its 95% "
                                                          "paired bootstrap interval.")] = None,
          config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None,
          verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Replay history days end to end, walk-forward, and measure each against GPT's picks.

    Per day and overall: the prefilter's AUC, recall in the top 25% / 40%, keep95 and what its keep rule kept
    (share of the day, share of GPT's picks); with --backend / --model, every kept paper scored by the LLM
    (stored as `ranker run` stores them: a second eval of the same model scores nothing), its agreement with
    GPT on GPT's picks and the final digest's precision, recall and F1; each overall figure with its 95%
    interval from a bootstrap over days (none with fewer than 5 days). Writes OUT/eval.json and a
    self-contained OUT/report.html and prints a Markdown summary. A day that cannot be read is skipped, said
    in one line and counted. With --against, the two evals' figures over the days both replayed, and each
    difference (this eval minus the other) with its paired interval, printed, drawn in the report and written
    to OUT/comparison.json (an eval without --against removes the one an earlier eval left in OUT).

    \b
    Examples:
      ranker eval --history ~/gpt-digests --out eval/
      ranker eval --history ~/gpt-digests --out eval/ --calibrate --days 10 --backend vllm --model /data/Qwen2.5-7B
      ranker eval --history ~/gpt-digests --out eval-cal/ --calibrate --against eval/
    """
    from ..evaluate import evaluate_history, summary_markdown
    from ..evaluate.intervals import check_pairable, eval_path, read_eval
    from ..evaluate.replay import check_choice, read_eval_history, replayed_days
    from ..evaluate.report import comparison_markdown, took
    from ..prefilter.history import history_folder
    from ..store import Store

    one_keep_rule(keep=keep, top=top, recall=recall)
    s = load_settings(config, verbose=verbose, quiet=quiet, backend=backend, model=model, backend_option=backend_option,
                      keep=keep, top=top, recall=recall, embedder=embedder, max_tokens=max_tokens, prompts=prompts,
                      default_prompts=default_prompts, default_authors=default_authors, default_exclude=default_exclude,
                      min_relevance=min_relevance, min_novelty=min_novelty, db=db, offline=offline)
    # what can be said without the database is said before it is opened (made, for a new --db): the history
    # too, read here, so one with no day to evaluate leaves no new database behind
    check_choice(calibrate=calibrate, train_once=train_once, days=days)
    history_folder(history)
    check_out(out, folder=True)
    # the eval to compare with is read now: one that cannot be is said before minutes of replay, and an earlier
    # eval in this --out (compared before this one replaces it) is read before it is overwritten
    other = read_eval(against) if against is not None else None
    # a --db that cannot be a database (a folder, /dev/null) is a file mistake, said before the model as calibrate
    # says it: an embedder not prepared, said first, hid it until the next try (and then after the whole history)
    from ..store import check_db_path
    check_db_path(s.db_path)
    # the embedder loadable too (or served from the store's vectors), the model checked after the files and flags:
    # one not prepared was said, naming no flag, once the whole history was read (the database and --out made)
    emb = check_embedder(s, loadable=True)
    llm = backend is not None or model is not None
    if llm:
        # the LLM too: `--model nosuch` was said after the whole history, naming no flag; one whose scores the
        # store holds may be gone (a second eval of it is free): the late path loads it only for what is missing
        check_model(s, scored=scores_stored(s.db_path))
    read = read_eval_history(history, out, calibrate=calibrate, train_once=train_once, days=days, warn=warn,
                             min_relevance=s.digest.min_relevance, min_novelty=s.digest.min_novelty)
    dates, used = replayed_days(read, calibrate=calibrate, train_once=train_once, days=days)
    by_date = {d.date: d for d in read.days}
    if other is not None:
        check_pairable(other, against=eval_path(against), min_relevance=s.digest.min_relevance,
                       min_novelty=s.digest.min_novelty,
                       days={d: (len(by_date[d].papers), len(by_date[d].picks)) for d in dates})
    # the days replayed are embedded first: an embedder not prepared, whose stored vectors leave some of their
    # papers out, is said now, before the database is opened and --out made
    check_served(s, emb, [p for d in used for p in by_date[d].papers], "the days to replay")
    with Store(s.db_path) as store, Progress() as bar:
        res = evaluate_history(history, out, s, store=store, calibrate=calibrate, train_once=train_once, days=days,
                               llm=llm, progress=bar, warn=warn, read=read,
                               against=against, other=other)
    failed = res.overall.get("llm", {}).get("failed", 0)
    if failed:
        warn(f"{counted(failed, 'kept paper')} could not be scored (counted as not picked); "
             "rerun to retry them")
    echo(summary_markdown(res.to_dict()))
    echo("")
    if res.comparison:
        echo(comparison_markdown(res.comparison, this=f"this eval ({res.files['json']})"))
        echo("")
    written = [str(f) for f in res.files.values()]
    info(f"Wrote {', '.join(written[:-1])} and {written[-1]}; {took(res.timings)}")


def register(app: typer.Typer) -> None:
    app.command("eval", short_help="Replay past days walk-forward and measure against GPT's picks.")(eval_)
