"""How well a day's ranking puts GPT's picks on top: AUC and recall of the picks in the top 25% / 40%."""
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


def day_metrics(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    out = {"auc": auc(scores, labels)}
    for f in FRACTIONS:
        out[f"recall@{int(round(f * 100))}"] = recall_at(scores, labels, f)
    return out


def format_row(name: str, m: dict[str, float]) -> str:
    return (f"{name:<14} AUC {m.get('auc', float('nan')):.3f}  recall@25 {m.get('recall@25', float('nan')):.3f}"
            f"  recall@40 {m.get('recall@40', float('nan')):.3f}")
