"""`ranker backfill`: rank (and score) a whole arXiv snapshot or folder of papers into Parquet shards."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..io import counted
from .common import (as_given, BackendOpt, BackendOptionOpt, CalibrationOpt, CategoryOpt, ConfigOpt, DbOpt,
                     DefaultAuthorsOpt, DefaultExcludeOpt, DefaultPromptsOpt, EmbedderOpt, KeepOpt, LayoutOpt,
                     MaxTokensOpt, ModelOpt, NoCalibrationOpt, OfflineOpt, PapersPerRequestOpt, Progress, PromptsOpt,
                     QuietOpt, RecallOpt, ScoreModeOpt, VerboseOpt, check_embedder, check_model, check_out, given_path,
                     info, load_settings, not_empty, nothing_to_do, one_keep_rule, progress_enabled, warn,
                     warn_categories, wrote)
from .term import TERM

EXAMPLES = """
\b
Examples:
  ranker backfill --from arxiv-metadata-oai-snapshot.json --out bf/ --since 2024-01-01 --until 2025-12-31 \\
    --category cs.LG,cs.AI --embed --score --backend vllm --model /data/Qwen2.5-7B-Instruct \\
    --engine ray --address auto
  ranker backfill --from days/ --out bf/ --embed      (rank only: every paper, its vector and prefilter score)
  ranker import bf/                                    (then the other commands see them)
"""


def backfill(
    from_: Annotated[str, typer.Option("--from", help="An arXiv metadata snapshot (JSON lines, may be .gz), a "
                                       "papers JSONL file, or a folder of them (<day>/listing.jsonl or *.jsonl).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: ranked/ and scores/ Parquet shards and "
                                      "manifest.json. A rerun into it does only what is missing.", parser=given_path)],
    since: Annotated[Optional[str], typer.Option("--since", help="First day (YYYY-MM-DD) to include.",
                                                 show_default=False)] = None,
    until: Annotated[Optional[str], typer.Option("--until", help="Last day (YYYY-MM-DD) to include.",
                                                 show_default=False)] = None,
    category: CategoryOpt = None,
    all_categories: Annotated[bool, typer.Option("--all-categories", help="Keep papers of every category.")] = False,
    engine: Annotated[str, typer.Option("--engine", help="local (this process) or ray (Ray Data; needs "
                                        "the ray extra of ranker).")] = "local",
    address: Annotated[Optional[str], typer.Option(
        "--address", help="With --engine ray: an existing Ray cluster ('auto' on a node of it, or "
        "ray://HOST:10001). Without it a Ray instance is started on this machine for the run.",
        show_default=False)] = None,
    embed: Annotated[bool, typer.Option("--embed", help="Embed every paper and keep each day's best part "
                                        "(the prefilter); without it every paper is kept.")] = False,
    score: Annotated[bool, typer.Option("--score", help="Score the kept papers with the LLM backend.")] = False,
    backend: BackendOpt = None, model: ModelOpt = None, backend_option: BackendOptionOpt = None,
    prompts: PromptsOpt = None, default_prompts: DefaultPromptsOpt = None,
    default_authors: DefaultAuthorsOpt = None, default_exclude: DefaultExcludeOpt = None,
    embedder: EmbedderOpt = None, max_tokens: MaxTokensOpt = None,
    keep: KeepOpt = None,
    top: Annotated[Optional[int], typer.Option("--top", help="Keep the K best papers of each day instead.",
                                               show_default=False)] = None,
    recall: RecallOpt = None,
    calibration: CalibrationOpt = None, no_calibration: NoCalibrationOpt = None,
    score_mode: ScoreModeOpt = None, prompt_layout: LayoutOpt = None, papers_per_request: PapersPerRequestOpt = None,
    batch_size: Annotated[Optional[int], typer.Option(
        "--batch-size", help="Requests per engine call (default: scoring.batch_size of ranker.toml, 64; on a GPU "
        "256-1024 keeps vLLM busy).", show_default=False)] = None,
    config: ConfigOpt = None, db: DbOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Rank (and score) a whole snapshot: read -> embed -> prefilter per day -> score the kept -> Parquet shards.

    Writes OUT/ranked/date=DAY/*.parquet (every paper: fields, vector, prefilter score, kept),
    OUT/scores/date=DAY/*.parquet (one row a paper: id, date, prefilter score, kept, RELEVANCE, NOVELTY, COMMENT,
    model, prompt hash, status) and OUT/manifest.json. Exactly once: a rerun skips what is already written for the
    same model and prompt. `ranker import OUT` loads the result into the database. A source (or window) without
    papers is nothing to do. Ray's own messages go to the command's log file (-v: the terminal).
    """
    from ..errors import InputError
    not_empty(from_=from_, since=since, until=until, address=address)
    from ..io import stdin_or_descriptor
    fd = stdin_or_descriptor(from_)
    if fd is not None:            # '-' was "-: no such file or folder", /dev/stdin or <(zcat ..) "not a directory"
        raise InputError(f"a backfill does not read {'stdin' if fd == 0 else f'a stream (descriptor {fd})'}: its "
                         "source is read by path, by Ray's read tasks (on any node) and by a rerun, which resumes "
                         "by the files' paths, sizes and times; save it to a file (a .gz snapshot is read as it "
                         "is)", key="from_")
    one_keep_rule(keep=keep, top=top, recall=recall)
    if score and not embed:
        # read only by the prefilter, which runs with --embed alone: `--calibration bad.json` was never read and
        # the backfill kept every paper, status 0 (with neither, the library says to ask for one)
        # (the exclusions and author pins too: --default-exclude / --default-authors were taken, changing nothing)
        unused = [name for name, v in (("calibration", calibration), ("keep", keep), ("top", top),
                                        ("recall", recall), ("embedder", embedder), ("max_tokens", max_tokens),
                                        ("default_exclude", default_exclude), ("default_authors", default_authors))
                  if v is not None]
        if unused:
            raise InputError("only the prefilter reads it, and a backfill runs it with --embed alone (without it "
                             "every paper is kept); add --embed or leave it out", key=unused[0])
    if category and all_categories:
        raise InputError("give --category or --all-categories, not both", key="all_categories")
    s = load_settings(config, verbose=verbose, quiet=quiet, category=category, backend=backend, model=model,
                      backend_option=backend_option, prompts=prompts, default_prompts=default_prompts,
                      default_authors=default_authors, default_exclude=default_exclude, embedder=embedder,
                      max_tokens=max_tokens, keep=keep, top=top, recall=recall, calibration=calibration,
                      no_calibration=no_calibration, score_mode=score_mode, prompt_layout=prompt_layout,
                      papers_per_request=papers_per_request, batch_size=batch_size, db=db, offline=offline)
    if not all_categories:
        warn_categories(s)
    if embed:
        check_embedder(s)            # naming --embedder, before the database opens ('no such' named no flag)
    if score and (engine == "local" or address is None):
        # naming --model, before the database opens and --out is made (Ray's workers load it where they run: a
        # Ray Client driver need not hold the model's folder, but without --address Ray starts on this machine);
        # one whose scores OUT holds may be gone: a rerun with nothing left to score loads none
        from ..backfill.shards import has_scores
        check_model(s, scored=lambda key, prompt_hash: has_scores(out, key, prompt_hash))
    check_out(out, folder=True)      # before the database opens (run_backfill checks it too, for its callers)
    from ..backfill import BackfillSpec, run_backfill
    from ..store import Store

    spec = BackfillSpec(source=from_, out=out, since=since, until=until, all_categories=all_categories,
                        embed=embed, score=score)
    # Ray Data's own bars draw on the terminal's stderr, which is the log file unless -v
    ray_options = {"progress_bars": progress_enabled() and not TERM.to_log} if engine == "ray" else None
    with Store(s.db_path) as store, Progress() as bar:
        res = run_backfill(spec, s, engine=engine, address=address, store=store, ray_options=ray_options,
                           progress=bar, warn=warn)
    for line in skipped_examples(res):
        warn(line)
    if not res.summary.get("ranked", {}).get("papers"):
        window = " ".join(x for x in (f"from {since}" if since else "", f"until {until}" if until else "") if x)
        where = "" if all_categories else f" of {','.join(s.fetch.categories)}"
        skipped = skipped_count(res)
        nothing_to_do(f"no papers{where} in {from_}{' ' + window if window else ''} "
                      f"({skipped + '; ' if skipped else ''}its manifest: {res.manifest})")
        return
    info(summary_line(res))
    wrote(res.manifest)


def summary_line(res) -> str:
    r = res.run["phases"].get("rank", {})
    s = res.run["phases"].get("score")
    tot = res.summary.get("ranked", {})
    if "skipped" in r:
        line = "ranking: nothing new (this source and window are done)"
    else:
        # rows: a paper listed on two days is two (it said "45 papers written" beside "40 papers in 2 days")
        line = (f"ranking: {counted(r.get('rows_written', 0), 'row')} written"
                + (f" ({r['added_to_ranked_days']:,} added to days already ranked)"
                   if r.get("added_to_ranked_days") else "")
                + (f", {counted(r['days_already_complete'], 'day')} already complete"
                   if r.get("days_already_complete") else ""))
    days = tot.get("days", 0)
    line += f"; {counted(tot.get('papers', 0), 'paper')} in {counted(days, 'day')}"
    if tot.get("relisted"):      # why there are more rows than papers: "1,323 rows written; 1,322 papers" said not
        line += f" ({tot['relisted']:,} listed on more than one)"
    line += f", {tot.get('kept', 0):,} kept"
    skipped = skipped_count(res)
    if skipped:
        line += f"; {skipped}"
    if s is not None:
        # the rows the prefilter did not keep are settled without a request: not counted as to score
        nk = s.get("not_kept", 0)
        line += (f"; scoring: {s.get('to_do', 0) - nk:,} to score ("
                 + (f"{nk:,} not kept, " if nk else "") + f"{s.get('already_done', 0):,} already done)")
        key = f"{res.run['scoring']['model']}|{res.run['scoring']['prompt_hash']}"
        c = res.summary.get("scores", {}).get(key)
        if c:
            line += f", {c['scored']:,} scored, {c['failed']:,} failed in all"
    procs = res.run.get("processes") or []
    if procs and res.run.get("processes_of") == "driver" and res.run.get("address"):
        # joined a cluster: only this process was measured, not the workers that embedded and scored
        line += f"; the driver's peak RSS {max(p['peak_rss_mb'] for p in procs):.0f} MB (the cluster's not measured)"
    elif procs:
        line += f"; peak RSS {max(p['peak_rss_mb'] for p in procs):.0f} MB over {counted(len(procs), 'process', 'processes')}"
    return line + f"; {res.run['seconds']:.1f}s -> {as_given(str(res.out))}"


SHOWN_SKIPPED = 3          # skipped lines named on the terminal (the manifest names the first few, counts all)


def skipped_count(res) -> str:
    """How many lines of the source the read skipped, and why; "" when none."""
    from ..sources.report import SKIP_REASONS
    inp = res.run["phases"].get("rank", {}).get("input") or {}
    n = inp.get("skipped", 0)
    if not n:
        return ""
    why = sorted((inp.get("skipped_by_reason") or {}).items(), key=lambda kv: -kv[1])
    return (f"{counted(n, 'line')} of the source skipped ("
            + ", ".join(f"{c:,} {SKIP_REASONS.get(k, k)}" for k, c in why) + ")")


def skipped_examples(res) -> list[str]:
    """The first few lines the read skipped, as file:line and the reader's message."""
    inp = res.run["phases"].get("rank", {}).get("input") or {}
    first = (inp.get("skipped_first") or [])[:SHOWN_SKIPPED]
    more = inp.get("skipped", 0) - len(first)
    if first and more > 0:
        first[-1] += f" (and {more:,} more, counted in the manifest)"
    return first


def register(app: typer.Typer) -> None:
    import inspect
    app.command("backfill", short_help="Rank (and score) a whole snapshot into Parquet shards.",
                help=inspect.cleandoc(backfill.__doc__ or "") + "\n" + EXAMPLES)(backfill)
