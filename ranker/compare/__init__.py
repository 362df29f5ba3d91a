"""`ranker compare`: how a local model's judgements line up with GPT's, in numbers (metrics.json) and
pictures (report.html).

    from ranker.compare import run_compare
    metrics = run_compare("days/*/gpt_scores.jsonl", "out/scores.jsonl", "out/compare",
                          papers="days/*/listing.jsonl")

Judgements are read by compare.readers (the one reader of GPT digests); listings and prefilter output by
ranker.sources, here gathered over several files.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError, keyed
from ..io import Warn, ignore_warning, json_loads, output_dir, read_bytes, read_regular, write_together
from ..sources import ReadReport, read_papers, read_ranked
from .metrics import compute_metrics
from ..records import MIN_NOVELTY, MIN_RELEVANCE
from .readers import (DayRows, Judgements, PrefilterRow, ScoreRow, date_from_path, file_kind, given_as,
                      read_score_files, read_scores, score_files, shown_as)
from .report import render_html, summary_markdown

__all__ = ["run_compare", "compute_metrics", "read_scores", "read_score_files", "read_listing_files",
           "read_prefilter_files", "summary_markdown", "render_html", "DayRows", "Judgements", "ScoreRow",
           "PrefilterRow"]

MAX_WARNINGS_KEPT = 200



def run_compare(gpt_paths, local_paths, out_dir: str | Path, papers=None, prefilter=None,
                min_relevance: float = MIN_RELEVANCE, min_novelty: float = MIN_NOVELTY, *,
                warn: Callable[[str], None] | None = None, stdin_name: str | None = None) -> dict[str, Any]:
    """Compare GPT's judgements with a local model's; write out_dir/metrics.json and out_dir/report.html.

    gpt_paths / local_paths / papers / prefilter: a file, a directory (searched recursively), a glob, or a
    list of those. Returns the metrics (the content of metrics.json). Input problems that only lose a
    paper (a malformed block or line) are skipped, counted and passed to `warn` (and kept in metrics.json).
    When a side holds no judgement at all (empty files, digests that picked nothing) there is nothing to
    compare: nothing is written and the result is {"nothing_to_do": why, ...} (the counts, files, warnings).
    stdin_name: what the warnings, errors and nothing-to-do line call the /dev/stdin read for '-' (the CLI's
    `stdin`); given, the *_files lists record that file as '-', the value given (readers.given_as); without it
    (the library's default) they record /dev/stdin.
    """
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)

    def given(files: list[Path]) -> list[str]:
        return [given_as(f, stdin_name) for f in files]

    if min_relevance is None or min_novelty is None:
        raise InputError("needs a number", key="min_relevance" if min_relevance is None else "min_novelty")
    gpt, gpt_files = read_score_files(gpt_paths, key="gpt", warn=_warn, stdin_name=stdin_name)
    local, local_files = read_score_files(local_paths, key="local", warn=_warn, stdin_name=stdin_name)
    paper_map = paper_files = None
    if papers:
        paper_map, paper_files = read_listing_files(papers, warn=_warn, stdin_name=stdin_name)
    pf_map = pf_files = None
    if prefilter:
        pf_map, pf_files = read_prefilter_files(prefilter, warn=_warn, stdin_name=stdin_name)

    if not gpt or not local:
        return {"nothing_to_do": _nothing_to_compare(gpt_files if not gpt else [], local_files if not local else [],
                                                     stdin_name),
                "n_gpt": len(gpt), "n_local": len(local), "gpt_files": given(gpt_files),
                "local_files": given(local_files), "n_warnings": len(warnings),
                "warnings": warnings[:MAX_WARNINGS_KEPT]}
    metrics = compute_metrics(gpt, local, papers=paper_map, prefilter=pf_map,
                              min_relevance=min_relevance, min_novelty=min_novelty,
                              gpt_empty_days=gpt.empty_days, local_empty_days=local.empty_days)
    metrics["gpt_files"] = given(gpt_files)
    metrics["local_files"] = given(local_files)
    # only the days in the figures: a folder of months, its model switched long before GPT's week, is no pool
    compared = {d for d, i in local.by_day if i in gpt} | {d for d, _ in gpt.by_day} | set(gpt.empty_days)
    scorers = local_scorers(local_files, compared)
    if len(scorers) > 1:
        metrics["local_scorers"] = scorers
    if paper_files is not None:
        metrics["papers_files"] = given(paper_files)
    if pf_files is not None:
        metrics["prefilter_files"] = given(pf_files)
    metrics["n_warnings"] = len(warnings)
    metrics["warnings"] = warnings[:MAX_WARNINGS_KEPT]

    out = output_dir(out_dir)
    # the two files as one set, rendered first: a failure (report.html a folder, a full disk) leaves the earlier
    # pair whole, never a new metrics.json beside the report of another run
    text, page = json.dumps(metrics, indent=2, allow_nan=False) + "\n", render_html(metrics, gpt, local)
    write_together({out / "metrics.json": [text], out / "report.html": [page]})
    return metrics


_RUN_FILE = re.compile(r"^(\d{4}-\d{2}-\d{2})-(?:output\.md|output\.json|scores\.jsonl)$")


def local_scorers(files: list[Path], days_compared: set[str] | None = None) -> list[dict[str, Any]]:
    """Who scored the days of `ranker run` folders among `files`: each day's manifest (<day>-run.json beside its
    digest) names the model and the prompt hash. One entry per (model, prompt hash) with its days, in the order
    of their first day. A folder lived in for weeks holds days of every model and topics the user had then, and a
    comparison over it pools them: the summary says so when there are several. A day whose manifest is missing,
    unreadable or not finished (a failed rerun's, beside the earlier run's files) is left out: it does not say
    who wrote the files. `days_compared`: only these days count (those whose papers the figures hold), if given."""
    days: dict[tuple[str, str], set[str]] = {}
    read: set[Path] = set()                      # a day's digest, JSON and scores share one manifest: read once
    for f in files:
        m = _RUN_FILE.match(f.name)
        if not m or (days_compared is not None and m.group(1) not in days_compared):
            continue
        if (manifest := f.parent / f"{m.group(1)}-run.json") in read:
            continue
        read.add(manifest)
        try:
            run = json_loads(read_regular(manifest).decode("utf-8"))   # a FIFO there: never waited for
            if run.get("status") not in ("ok", "partial"):
                continue
            key = (str(run["model"]), str((run.get("prompts") or {}).get("hash") or ""))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue
        days.setdefault(key, set()).add(m.group(1))
    return [{"model": model, "prompt_hash": h, "days": sorted(d)}
            for (model, h), d in sorted(days.items(), key=lambda kv: min(kv[1]))]


def _nothing_to_compare(gpt_files: list[Path], local_files: list[Path], stdin_name: str | None = None) -> str:
    """Why there is nothing to compare: the side(s) holding no judgement, with their files."""
    def files(fs: list[Path]) -> str:
        return shown_as(fs[0], stdin_name) if len(fs) == 1 else f"{len(fs)} files"
    sides = [f"the {side} side ({files(fs)})" for side, fs in (("GPT", gpt_files), ("local", local_files)) if fs]
    return (f"{' and '.join(sides)} hold{'s' if len(sides) == 1 else ''} no judgement: "
            "nothing to compare; wrote no metrics.json or report.html")


def read_listing_files(specs, *, warn: Warn = ignore_warning,
                       stdin_name: str | None = None) -> tuple[DayRows, list[Path]]:
    """Papers JSONL (the listing.jsonl layout, or prefilter output): the days' universe, by id (a paper listed on
    several days: its first listing, and each day's in `by_day`). Files, directories or globs; a paper without
    a day takes the one its file name gives. A file of judgements (gpt_scores.jsonl, a digest) named here is an
    InputError: read as a listing it would shrink the universe to one side's picks."""
    files = score_files(specs, kinds={"papers", "prefilter"}, key="papers")
    out: DayRows = DayRows()
    for f in files:
        shown = shown_as(f, stdin_name)
        data = _read_once(f)
        if _is_judgements(f, data):
            raise InputError("holds judgements (RELEVANCE, NOVELTY), not a paper listing (every paper of the "
                             "day); pass it as {key:gpt} or {key:local}", where=shown, key="papers")
        n = 0
        try:
            for p in read_papers(data, report=ReadReport(on_warning=warn), name=shown):
                p.date = p.date or date_from_path(f)
                out.add(p.id, p)
                n += 1
        except InputError as e:         # "x.csv: unrecognised format" named no flag
            raise keyed(e, "papers")
        if n == 0:
            warn(f"{shown}: no papers in this listing")
    return out, files


def _read_once(f: Path) -> Path | bytes:
    """`f`, or where it is no file but a pipe (stdin, a shell's `<(zcat listing.jsonl.gz)`) its bytes, read now:
    a pipe is read once, and the check that it holds no judgements left its reader nothing (no papers)."""
    return f if f.is_file() else read_bytes(f)


def _is_judgements(f: Path, data: Path | bytes) -> bool:
    text = data.decode("utf-8-sig", errors="replace") if isinstance(data, bytes) else None
    return file_kind(f, text) in ("json", "jsonl", "markdown")


def read_prefilter_files(specs, *, warn: Warn = ignore_warning,
                         stdin_name: str | None = None) -> tuple[DayRows, list[Path]]:
    """`ranker prefilter` output (read as Ranked records): each paper's score, verdict and day, by id (a paper
    ranked on several days: its first row, and each day's in `by_day`)."""
    files = score_files(specs, kinds={"prefilter"}, key="prefilter")
    out: DayRows = DayRows()
    for f in files:
        shown = shown_as(f, stdin_name)
        data = _read_once(f)
        if _is_judgements(f, data):      # read as papers, each of its lines would be a warning, then the error
            raise InputError("holds judgements (RELEVANCE, NOVELTY), not prefilter output; pass it as {key:gpt} "
                             "or {key:local}", where=shown, key="prefilter")
        try:
            rows = read_ranked(data, report=ReadReport(on_warning=warn), name=shown)
        except InputError as e:
            raise keyed(e, "prefilter")
        for r in rows:
            out.add(r.paper.id, PrefilterRow(id=r.paper.id, score=r.prefilter_score, kept=r.kept,
                                             date=r.paper.date or date_from_path(f)))
        if not rows:
            warn(f"{shown}: no rows in this prefilter output")
    return out, files
