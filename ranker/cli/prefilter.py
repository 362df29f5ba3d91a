"""`ranker prefilter`: rank a day's papers by closeness to the prompt's topics; mark the top part kept."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .common import (in_shown, CalibrationOpt, ConfigOpt, DbOpt, DefaultAuthorsOpt, DefaultExcludeOpt,
                     DefaultPromptsOpt, EmbedderOpt, KeepOpt, MaxTokensOpt, NoCalibrationOpt, OfflineOpt, PapersOpt,
                     Progress, PromptsOpt, QuietOpt, RecallOpt, TopOpt, VerboseOpt, check_embedder, check_out,
                     check_served, given_path, index_said, info, load_settings, nothing_to_do,
                     one_keep_rule, out_path, out_shown, warn, warn_read, wrote_empty)


def prefilter(papers: PapersOpt,
              out: Annotated[Path, typer.Option("--out", help="Where to write the ranked papers (JSONL; '-' for "
                                                "stdout).", parser=given_path)],
              prompts: PromptsOpt = None, default_prompts: DefaultPromptsOpt = None,
              default_authors: DefaultAuthorsOpt = None, default_exclude: DefaultExcludeOpt = None,
              keep: KeepOpt = None,
              top: TopOpt = None,
              recall: RecallOpt = None,
              calibration: CalibrationOpt = None, no_calibration: NoCalibrationOpt = None,
              embedder: EmbedderOpt = None,
              max_tokens: MaxTokensOpt = None,
              config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None,
              verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """Rank papers by how close they are to your topics (paper_topics.txt) and mark the best ones kept.

    Writes EVERY paper, best first, one JSON line each: id, prefilter_score, kept, topic, the rule that decided
    it (the keep rule: top, keep, recall, recall-prior, min_keep; pin: a pinned author's paper, kept;
    exclude:RULE: never sent to the LLM) and the paper's fields. The file feeds `ranker score --only-kept`
    directly. Vectors are cached in the database: a rerun embeds nothing.

    \b
    Example:
      ranker prefilter --papers 2025-06-23.jsonl --out ranked.jsonl --calibration calib.json --recall 0.95
    """
    from ..io import atomic_write
    from ..prompts import load_prompts
    from ..sources import ReadReport, ranked_lines, read_papers
    from ..steps import day_rules, prefilter_day
    from ..store import Store

    one_keep_rule(keep=keep, top=top, recall=recall)
    s = load_settings(config, verbose=verbose, quiet=quiet, embedder=embedder, max_tokens=max_tokens, keep=keep,
                      top=top, recall=recall, calibration=calibration, no_calibration=no_calibration, prompts=prompts,
                      default_prompts=default_prompts, default_authors=default_authors, default_exclude=default_exclude,
                      db=db, offline=offline)
    check_out(out)
    emb = check_embedder(s)     # before the papers are read and "loading <name> ..." said
    prompt_set = load_prompts(s.scoring.prompts)
    rules = day_rules(s, prompt_set, warn)      # a bad rule refused, one matching nearly every paper said, first
    report = ReadReport()
    rows = list(read_papers(papers, report=report, name=in_shown(papers)))
    warn_read(report)
    if not rows:
        if str(out) != "-":
            atomic_write(out_path(out), [], tidy=True)
        nothing_to_do(f"no papers in {in_shown(papers)} ({wrote_empty(out)})")
        return
    # an embedder not prepared, its vectors stored for only some of the papers: said now, naming the flag and how
    # many are stored, not as the model failed to load ("loading mpnet ..." said, no flag named)
    check_served(s, emb, rows, in_shown(papers))
    with Store(s.db_path) as store, Progress() as bar:
        result = prefilter_day(rows, s, store=store, prompts=prompt_set, rules=rules, progress=bar, warn=index_said)
    # `--out -` too through out_path, as fetch and score write it: UTF-8 JSON lines under any locale (through the
    # terminal's stream they were its encoding's: latin-1 bytes under PYTHONIOENCODING=latin-1, '?' under LC_ALL=C)
    atomic_write(out_path(out), ranked_lines(result.ranked), tidy=True)
    info(result.summary() + f" -> {out_shown(out)}")


def register(app: typer.Typer) -> None:
    app.command("prefilter", short_help="Rank papers by closeness to your topics; mark the best kept.")(prefilter)
