"""`ranker run`: the daily job: fetch or read the day, prefilter, score, write the digest."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..io import counted
from ..records import MIN_NOVELTY, MIN_RELEVANCE
from .common import (AnnounceOpt, BackendOpt, BackendOptionOpt, CalibrationOpt, CategoryOpt, ConfigOpt, DbOpt,
                     DefaultAuthorsOpt, DefaultExcludeOpt, DefaultPromptsOpt, EmbedderOpt, KeepOpt, LayoutOpt,
                     MaxTokensOpt, ModelOpt, NoCalibrationOpt, NoveltyContextOpt, OfflineOpt, PapersPerRequestOpt,
                     Progress, PromptsOpt, QuietOpt, RecallOpt, ScoreModeOpt, TopOpt, VerboseOpt, check_prefilter,
                     check_model, check_out, check_served, given_path, in_shown, info, load_settings, not_empty,
                     nothing_kept, nothing_to_do, one_keep_rule, scores_stored, warn, warn_categories, warn_date,
                     warn_failures, warn_read, wrote)


def _help() -> str:
    from .. import REPO_DAY
    return f"""Run the whole day: fetch (or read) -> prefilter -> score -> digest (Markdown, JSON, scores, manifest).

Without --papers, today's announcements are fetched (arXiv RSS); --date DAY rebuilds a past day through the
arXiv API. A day without announcements (a weekend, a holiday) says so in one line and exits 0. Each day's
files go to OUT/<date>-*, and OUT/index.md (and index.json) list the days, newest first. stdout gets only the
digest's path; with -q nothing at all, and stderr only warnings and errors, so a cron line `ranker run -q
--out DIR` prints nothing on a good day (cron mails nothing) and mails a warning or a failure.

\b
Examples:
  ranker run --out ~/digests
  ranker run --out ~/digests --date 2025-05-15
  ranker run -q --out ~/digests                    (cron: silent unless something is wrong)
  ranker run --papers {REPO_DAY} --out digest/ --offline
"""


def run(out: Annotated[Path, typer.Option("--out", help="Folder for the digest files.", parser=given_path)],
        papers: Annotated[Optional[Path], typer.Option("--papers", help="The day's papers (JSONL, RSS/Atom XML or "
                                                       "a metadata snapshot; '-' for stdin). Without it, today's RSS "
                                                       "is fetched (or the --date day's announcements).",
                                                       show_default=False, parser=given_path)] = None,
        date: Annotated[Optional[str], typer.Option("--date", help="YYYY-MM-DD: rebuild that day's announcements "
                                                    "through the arXiv API (with --papers: label the papers with "
                                                    "this day).", show_default=False)] = None,
        category: CategoryOpt = None, announce: AnnounceOpt = None,
        keep: KeepOpt = None, top: TopOpt = None,
        backend: BackendOpt = None, model: ModelOpt = None, backend_option: BackendOptionOpt = None,
        embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None, prompts: PromptsOpt = None,
        default_prompts: DefaultPromptsOpt = None, default_authors: DefaultAuthorsOpt = None,
        default_exclude: DefaultExcludeOpt = None,
        score_mode: ScoreModeOpt = None, prompt_layout: LayoutOpt = None,
        papers_per_request: PapersPerRequestOpt = None, novelty_context: NoveltyContextOpt = None,
        calibration: CalibrationOpt = None, no_calibration: NoCalibrationOpt = None, recall: RecallOpt = None,
        min_relevance: Annotated[Optional[int], typer.Option(
            "--min-relevance", show_default=False, help="The digest picks papers with RELEVANCE >= this (default: "
            f"[digest] min_relevance of ranker.toml, {MIN_RELEVANCE}).")] = None,
        min_novelty: Annotated[Optional[int], typer.Option(
            "--min-novelty", show_default=False, help="The digest picks papers with NOVELTY >= this (default: "
            f"[digest] min_novelty of ranker.toml, {MIN_NOVELTY}).")] = None,
        config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False,
        quiet: QuietOpt = False) -> None:
    from ..errors import InputError
    from ..io import is_loopback_url
    from ..sources.filters import check_day

    not_empty(date=date)
    one_keep_rule(keep=keep, top=top, recall=recall)
    day_given = check_day(date, "date") if date else None
    s = load_settings(config, verbose=verbose, quiet=quiet, category=category, announce=announce, keep=keep, top=top,
                      recall=recall, backend=backend, model=model, backend_option=backend_option, embedder=embedder,
                      max_tokens=max_tokens, prompts=prompts, default_prompts=default_prompts,
                      default_authors=default_authors, default_exclude=default_exclude, score_mode=score_mode,
                      prompt_layout=prompt_layout, papers_per_request=papers_per_request,
                      novelty_context=novelty_context, calibration=calibration, no_calibration=no_calibration,
                      min_relevance=min_relevance, min_novelty=min_novelty, db=db, offline=offline)
    warn_categories(s)
    check_out(out, folder=True)
    if papers is None and day_given:
        from ..sources.days import FIRST, no_announcement_note
        weekend = no_announcement_note(day_given) if day_given >= FIRST.isoformat() else None
        if weekend:
            # a Saturday or Sunday is nothing to do whatever the model, the embedder or the network: said
            # before any of them is checked (a cron job on an unprepared preset failed at weekends)
            nothing_to_do(weekend)
            return
    if papers is None and s.offline:
        url = s.fetch.api_url if day_given else s.fetch.rss_url
        if not is_loopback_url(url):
            raise InputError("offline mode: the day's announcements are on arXiv's server; give the day's papers "
                             "with --papers FILE instead", key="offline")
    # one whose scores the store holds may be gone: a rerun of a scored day loads none (the late path says it
    # where some paper is not scored yet); a typo has none
    check_model(s, scored=scores_stored(s.db_path))
    emb = check_prefilter(s)
    from ..errors import during
    from ..steps import fetch_day, run_day
    from ..store import Store

    def served(read: list) -> None:
        # an embedder not prepared whose vectors the store holds for only some of the day's papers: said once the
        # day is read, before it is stored, the manifest written or "loading <embedder> ..." said (it failed
        # there, naming no flag, the folder's manifest left failed); a day of no papers is "nothing to do"
        if read:
            check_served(s, emb, read, "the day")

    with Store(s.db_path) as store, Progress() as bar:
        with during("fetch", scored=lambda: 0):
            if papers is None and day_given:
                day = fetch_day(None, s, store=store, announced=day_given, progress=bar, warn=warn, check=served)
            else:
                day = fetch_day(papers, s, store=store, date=day_given, progress=bar, warn=warn, single_day=True,
                                check=served, name=None if papers is None else in_shown(papers))
        warn_read(day.report)
        if papers is not None and day_given:     # labels the papers read (without --papers: the day fetched)
            warn_date(day_given, day.report)
        if not day.papers:       # a day of papers the filter all left out is said under -q too; a holiday is not
            (nothing_kept if day.report.seen else nothing_to_do)(day.empty_reason())
            return
        res = run_day(day, out, s, store=store, progress=bar, warn=warn)
    c = res.manifest["counts"]
    pins = f", {counted(c['author_matches'], 'author match', 'author matches')}" \
        if c.get("author_matches") else ""
    excluded = f", {c['excluded']:,} excluded" if c.get("excluded") else ""
    info(f"{res.day}: {counted(c['papers'], 'paper')}{excluded}, {c['kept']:,} kept by the prefilter, "
         f"{c['scored']:,} scored "
         f"({c['reused']:,} reused, {c['failed']:,} failed), {c['selected']:,} selected{pins}")
    warn_failures(res.run)
    wrote(res.files["markdown"])


def register(app: typer.Typer) -> None:
    app.command("run", short_help="Run the whole day: fetch, prefilter, score, digest.", help=_help())(run)
