"""`ranker compare`: how a local model's judgements line up with GPT's, in numbers (metrics.json) and
pictures (report.html).

    from ranker.compare import run_compare
    metrics = run_compare("days/*/gpt_scores.jsonl", "out/scores.jsonl", "out/compare",
                          papers="days/*/listing.jsonl")
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..errors import InputError
from ..io import atomic_write
from .metrics import compute_metrics
from .readers import (PrefilterRow, ScoreRow, read_papers, read_prefilter, read_score_files,
                      read_scores)
from .report import render_html, summary_markdown

__all__ = ["run_compare", "compute_metrics", "read_scores", "read_score_files", "read_papers",
           "read_prefilter", "summary_markdown", "render_html", "ScoreRow", "PrefilterRow"]

MAX_WARNINGS_KEPT = 200



def run_compare(gpt_paths, local_paths, out_dir: str | Path, papers=None, prefilter=None,
                min_relevance: float = 8, min_novelty: float = 7, *,
                warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Compare GPT's judgements with a local model's; write out_dir/metrics.json and out_dir/report.html.

    gpt_paths / local_paths / papers / prefilter: a file, a directory (searched recursively), a glob, or a
    list of those. Returns the metrics (the content of metrics.json). Input problems that only lose a
    paper (a malformed block or line) are skipped, counted and passed to `warn` (default: logging).
    """
    warnings: list[str] = []

    def _warn(msg: str) -> None:
        warnings.append(msg)
        if warn is not None:
            warn(msg)
        else:
            import logging
            logging.getLogger("ranker.compare").warning(msg)

    if min_relevance is None or min_novelty is None:
        raise InputError("needs a number", key="min_relevance" if min_relevance is None else "min_novelty")
    gpt, gpt_files = read_score_files(gpt_paths, key="gpt", warn=_warn)
    local, local_files = read_score_files(local_paths, key="local", warn=_warn)
    paper_map = paper_files = None
    if papers:
        paper_map, paper_files = read_papers(papers, warn=_warn)
    pf_map = pf_files = None
    if prefilter:
        pf_map, pf_files = read_prefilter(prefilter, warn=_warn)

    metrics = compute_metrics(gpt, local, papers=paper_map, prefilter=pf_map,
                              min_relevance=min_relevance, min_novelty=min_novelty)
    metrics["gpt_files"] = [str(f) for f in gpt_files]
    metrics["local_files"] = [str(f) for f in local_files]
    if paper_files is not None:
        metrics["papers_files"] = [str(f) for f in paper_files]
    if pf_files is not None:
        metrics["prefilter_files"] = [str(f) for f in pf_files]
    metrics["n_warnings"] = len(warnings)
    metrics["warnings"] = warnings[:MAX_WARNINGS_KEPT]

    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output directory: {e.strerror or e}", where=str(out), key="out") \
            from None
    if not out.is_dir():
        raise InputError("not a directory", where=str(out), key="out")
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    atomic_write(out / "report.html", render_html(metrics, gpt, local))
    return metrics
