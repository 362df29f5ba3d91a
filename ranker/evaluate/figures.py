"""The figures of an eval, one day at a time and over all days: how the prefilter's ranking, the LLM's scores
and the final digest line up with GPT's picks. Pure: records in, JSON-ready dicts out (an undefined value is
None, never NaN)."""
from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..compare.metrics import agreement, selection
from ..compare.readers import ScoreRow
from ..compare.report import fmt_score
from ..prefilter.metrics import day_metrics, recall_at
from ..records import Ranked, Score

CURVE_POINTS = 101                    # recall of the picks at 0%, 1%, .. 100% of the day kept
RANKING = ("auc", "recall@25", "recall@40", "keep95")
KEEPING = ("kept_fraction", "kept_recall")


def clean(v) -> float | None:
    if v is None:
        return None
    v = float(v)
    return round(v, 6) if math.isfinite(v) else None


def _arrays(ranked: Sequence[Ranked], picks: set[str]) -> tuple[np.ndarray, np.ndarray]:
    return (np.array([r.prefilter_score for r in ranked], dtype=np.float64),
            np.array([r.paper.id in picks for r in ranked], dtype=bool))


def ranking_figures(scores: np.ndarray, labels: np.ndarray) -> dict:
    """AUC, recall of the picks in the top 25% / 40%, keep95 of one day's scores."""
    return {k: clean(v) for k, v in day_metrics(scores, labels).items()}


def prefilter_figures(ranked: Sequence[Ranked], picks: set[str], keep: Mapping | None = None) -> dict:
    """One day's prefilter output against GPT's picks: the ranking figures, what the keep rule kept (its share
    of the day, and the share of the picks in it) and the rule that decided."""
    scores, labels = _arrays(ranked, picks)
    kept = np.array([r.kept for r in ranked], dtype=bool)
    out = {"papers": len(ranked), "picks": int(labels.sum()), **ranking_figures(scores, labels),
           "kept": int(kept.sum()), "kept_fraction": clean(kept.mean()) if len(kept) else None,
           "kept_recall": clean((kept & labels).sum() / labels.sum()) if labels.any() else None}
    keep = dict(keep or {})
    out["rule"] = keep.get("rule")
    if keep.get("expected_recall") is not None:
        out["expected_recall"] = clean(keep["expected_recall"])
    return out


def recall_curve(ranked: Sequence[Ranked], picks: set[str], points: int = CURVE_POINTS) -> list[float | None]:
    """The share of the picks in the day's top fraction f, for f = 0, 1/(points-1), .. 1."""
    scores, labels = _arrays(ranked, picks)
    return [clean(recall_at(scores, labels, f)) for f in np.linspace(0, 1, points)]


def pick_pairs(gpt: Mapping[str, ScoreRow], scores: Mapping[str, Score]) -> list[dict]:
    """GPT's picks the LLM scored: GPT's and the LLM's RELEVANCE and NOVELTY side by side."""
    return [{"id": i, "gpt": [g.relevance, g.novelty], "local": [scores[i].relevance, scores[i].novelty]}
            for i, g in sorted(gpt.items()) if i in scores]


SCORES = ("relevance", "novelty")      # a pair's "gpt" and "local" lists, in this order


def spearman_undefined(pairs: Sequence[Mapping], k: int) -> str | None:
    """Why the Spearman of score k (0: RELEVANCE, 1: NOVELTY) over these pairs is undefined, in words, or None
    when it is defined (agreement's own condition): fewer than two pairs, or one side's scores all the same (a
    rank correlation of a constant is undefined)."""
    n = len(pairs)
    mine, gpt = {p["local"][k] for p in pairs}, {p["gpt"][k] for p in pairs}
    name = SCORES[k].upper()
    if n < 2:
        # a pair needs GPT's score too: picks flagged in a listing have none, however many the model scored
        return f"it needs at least 2 of GPT's picks with a score from both GPT and the model, and has {n}"
    if len(mine) == 1:
        return f"the model gave all {n} the same {name}, {fmt_score(next(iter(mine)))}"
    if len(gpt) == 1:
        return f"GPT gave all {n} the same {name}, {fmt_score(next(iter(gpt)))}"
    return None


def _agreements(pairs: Sequence[Mapping]) -> dict:
    """agreement() of RELEVANCE and NOVELTY over these pairs, each with `spearman_undefined`: why its Spearman
    is null (None when it is not), so that eval.json says it as the summary and the report do."""
    out = {}
    for k, w in enumerate(SCORES):
        a = agreement([p["gpt"][k] for p in pairs], [p["local"][k] for p in pairs])
        a["spearman_undefined"] = spearman_undefined(pairs, k) if a["spearman"] is None else None
        out[w] = a
    return out


def llm_figures(pairs: Sequence[Mapping], day_ids: Iterable[str], picks: set[str], digest: set[str]) -> dict:
    """The LLM's agreement with GPT on GPT's picks it scored (Spearman, within-1, ... of RELEVANCE and NOVELTY,
    with why a Spearman is undefined), and the digest against GPT's picks over every paper of the day (a paper
    GPT did not pick, or the LLM never saw, counts as not picked by it)."""
    ids = list(day_ids)
    return {**_agreements(pairs), "digest": selection([i in picks for i in ids], [i in digest for i in ids])}


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return clean(np.mean(vals)) if vals else None


def overall(days: Sequence[Mapping]) -> dict:
    """The means over days of the ranking and keeping figures (a day where one is undefined is left out of
    that mean: on a day GPT picked nothing, every figure but the kept fraction; `no_pick_days` counts those);
    the LLM's agreement and the digest's precision / recall / F1 over every day's papers pooled (a paper the
    digest picks on a day GPT picked nothing is a false positive)."""
    out: dict = {"days": len(days), "papers": sum(d["prefilter"]["papers"] for d in days),
                 "picks": sum(d["prefilter"]["picks"] for d in days),
                 "no_pick_days": sum(1 for d in days if not d["prefilter"]["picks"])}
    out["prefilter"] = {k: _mean(d["prefilter"].get(k) for d in days) for k in RANKING + KEEPING}
    if days and all(d.get("zero_shot") for d in days):
        out["zero_shot"] = {k: _mean(d["zero_shot"].get(k) for d in days) for k in RANKING}
    scored = [d for d in days if d.get("llm")]
    if scored:
        pairs = [p for d in scored for p in d["pairs"]]
        tp, fp, fn, tn = (sum(d["llm"]["digest"][k] for d in scored) for k in ("tp", "fp", "fn", "tn"))
        digest = selection([True] * tp + [True] * fn + [False] * fp + [False] * tn,
                           [True] * tp + [False] * fn + [True] * fp + [False] * tn)
        out["llm"] = {"scored": sum(d["llm"]["scored"] for d in scored),
                      "failed": sum(d["llm"]["failed"] for d in scored),
                      **_agreements(pairs), "digest": digest}
    return out
