"""How well a day's ranking puts GPT's picks on top: AUC, recall of the picks in the top 25% / 40%, and keep95
(the smallest top fraction of the day that holds 95% of the picks: what the LLM must read to lose few picks)."""
from __future__ import annotations

import math

import numpy as np

FRACTIONS = (0.25, 0.40)


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN when a class is absent."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    from scipy.stats import rankdata
    r = rankdata(s)
    return float((r[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def recall_at(scores: np.ndarray, labels: np.ndarray, fraction: float) -> float:
    """Share of the positives among the top ceil(fraction * n) by score (ties broken by input order)."""
    y = np.asarray(labels, dtype=bool)
    if not y.any():
        return float("nan")
    k = math.ceil(fraction * len(y) - 1e-9)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return float(y[order[:k]].sum() / y.sum())


def keep_for(scores: np.ndarray, labels: np.ndarray, recall: float = 0.95) -> float:
    """The smallest top fraction of the ranking that holds at least `recall` of the positives: the rank of the
    ceil(recall * positives)-th positive over the number of papers (ties broken by input order, as recall_at).
    NaN when there is no positive. keep_for(s, y, 0.95) is the "keep95" of a day."""
    y = np.asarray(labels, dtype=bool)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    if not 0 < recall <= 1:
        raise ValueError(f"recall must be in (0, 1], got {recall}")
    need = math.ceil(recall * n_pos - 1e-9)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    pos_ranks = np.flatnonzero(y[order]) + 1          # 1-based ranks of the positives, ascending
    return float(pos_ranks[need - 1] / len(y))


def keep95(scores: np.ndarray, labels: np.ndarray) -> float:
    """The smallest top fraction of the day that holds 95% of the picks."""
    return keep_for(scores, labels, 0.95)


METRICS = ("auc", "recall@25", "recall@40", "keep95")


def day_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    out = {"auc": auc(scores, labels)}
    for f in FRACTIONS:
        out[f"recall@{int(round(f * 100))}"] = recall_at(scores, labels, f)
    out["keep95"] = keep95(scores, labels)
    return out


def mean_of(rows: list[dict[str, float]]) -> dict[str, float]:
    """The mean of each metric over days (a NaN day is left out of that metric's mean)."""
    out: dict[str, float] = {}
    for k in METRICS:
        vals = [r[k] for r in rows if k in r and not math.isnan(r[k])]
        out[k] = float(np.mean(vals)) if vals else float("nan")
    return out
