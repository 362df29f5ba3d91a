"""How much of a day to keep: by a target recall of GPT's picks, by a fixed fraction, or a fixed count.

keep_for_recall(scores, R, calibration) keeps the smallest top part of the day that is expected to hold a
share R of the picks:
  - with a calibration, from the calibration's own out-of-day scores on its history: the score that a share R
    of the held-back picks reached (Calibration.recall_thresholds); every paper scoring at least that is kept;
  - without one, from how the zero-shot score ranked GPT-4o's picks on the 50 shared days (2025-04-17 ..
    2025-07-18, the default topics): the top fraction of a day that held a share R of the picks there
    (ZERO_SHOT_FRACTIONS). It is a prior measured on one user's topics, so it is rounded up (conservative).
decide_keep() applies the precedence the CLI and config use: --top, then --keep, then --recall, then the default
(recall 0.95 with a calibration; the fixed fraction DEFAULT_KEEP without one).
A fixed fraction or count states the recall it is expected to hold too (expected_recall), from the same sources
the other way round: the calibration's own out-of-day record (Calibration.recall_fractions), or the zero-shot
table; none with a calibration that holds no record (one fit on a single day or on labels alone).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError

if TYPE_CHECKING:
    from ..settings import Effective, Settings
    from .calibrate import Calibration

DEFAULT_RECALL = 0.95            # the default target when a calibration is given

# recall target -> top fraction of the day the zero-shot score needs for it, measured on the 50 shared days
# (scripts/eval_walkforward.py prints the table): the fraction at which the mean over days of the recall of
# GPT's picks reached the target, rounded up to 0.05.
# Below 0.50 the line to (0, 0) stands in for measurements: the recall curve rises fastest at the top of the
# ranking, so the line asks for more of the day than the curve does (the safe side).
ZERO_SHOT_FRACTIONS = {0.00: 0.00, 0.50: 0.15, 0.60: 0.20, 0.70: 0.25, 0.75: 0.30, 0.80: 0.35, 0.85: 0.40,
                       0.90: 0.45, 0.95: 0.55, 0.99: 0.80, 1.00: 1.00}
# Without a calibration the default keeps this fixed fraction: it held 0.872 of GPT-4o's picks on the 50 shared
# days (0.873 on the last 15); the summary and the run manifest state the table's rounded-down 0.85
# (zero_shot_recall) as its expected recall.
DEFAULT_KEEP = 0.4


@dataclass
class KeepDecision:
    n_keep: int              # papers kept, the min_keep floor included
    rule: str                # "top", "keep", "recall" (calibrated) or "recall-prior" (zero-shot table)
    n_by_rule: int           # papers the rule itself kept (the rest of n_keep is the min_keep floor)
    threshold: float | None = None       # the lowest score kept by the rule
    expected_recall: float | None = None  # the share of GPT's picks the rule expects to keep
    target: float | None = None          # the requested recall, for "recall" rules

    def to_dict(self) -> dict:
        return {"rule": self.rule, "kept": self.n_keep, "kept_by_rule": self.n_by_rule,
                "threshold": self.threshold, "expected_recall": self.expected_recall, "target_recall": self.target}


def _check_recall(recall: float) -> None:
    if not (0 < recall <= 1):
        raise InputError(f"must be a fraction in (0, 1], got {recall}", key="prefilter.recall")


def _interp(table: dict[float, float], r: float) -> float:
    """Piecewise-linear in the target between the table's points; the first point below its range."""
    pts = sorted(table.items())
    if r <= pts[0][0]:
        return pts[0][1]
    for (r0, v0), (r1, v1) in zip(pts, pts[1:]):
        if r <= r1:
            return v0 + (v1 - v0) * (r - r0) / (r1 - r0)
    return pts[-1][1]


def zero_shot_fraction(recall: float) -> float:
    """The top fraction of a day that the zero-shot score needs to hold `recall` of the picks (the prior)."""
    _check_recall(recall)
    return _interp(ZERO_SHOT_FRACTIONS, recall)


def zero_shot_recall(fraction: float) -> float:
    """The inverse: the share of the picks a fixed top fraction held under the zero-shot score."""
    inv = {f: r for r, f in ZERO_SHOT_FRACTIONS.items()}
    inv.setdefault(0.0, 0.0)
    return _interp(inv, fraction)


def calibrated_recall(cal: "Calibration", fraction: float) -> float | None:
    """The share of the picks the calibration expects its top `fraction` of a day to hold, from its
    recall_fractions (per recall target R, the top fraction of their day within which a share R of the held-back
    picks ranked, on average over the history's days): the highest target whose fraction `fraction` covers, a
    floor to the targets' step (0.01). Below the lowest target's fraction the line from (0, 0) to it stands in,
    as in ZERO_SHOT_FRACTIONS (the recall curve rises fastest at the top of the ranking, so the line expects less
    than the curve holds). None when the calibration holds no fractions."""
    pts = [(float(f), float(r)) for r, f in (cal.recall_fractions or {}).items()]
    if not pts:
        return None
    covered = [r for f, r in pts if f <= fraction + 1e-9]
    if covered:
        return max(covered)
    lowest = min(f for f, _ in pts)
    return round(max(r for f, r in pts if f == lowest) * fraction / lowest, 3)


def expected_recall(fraction: float, calibration: "Calibration | None" = None) -> float | None:
    """The share of GPT's picks a day's top `fraction` is expected to hold: by the calibration's record with
    one (calibrated_recall), by the zero-shot table without (zero_shot_recall)."""
    if calibration is None:
        return round(zero_shot_recall(fraction), 3)
    return calibrated_recall(calibration, fraction)


def calibrated_threshold(cal: "Calibration", recall: float) -> float | None:
    """The score a share `recall` of the calibration's held-back picks reached (interpolated); None when the
    calibration holds no thresholds."""
    _check_recall(recall)
    t = {float(k): float(v) for k, v in (cal.recall_thresholds or {}).items()}
    if not t:
        return None
    return _interp(t, recall)


def keep_for_recall(scores: np.ndarray, recall: float, calibration: "Calibration | None" = None,
                    ) -> tuple[int, str, float | None, float]:
    """(n_keep, rule, threshold, expected_recall): the smallest top part of `scores` expected to hold a share
    `recall` of GPT's picks (see the module's docstring). No min_keep floor here (decide_keep adds it)."""
    _check_recall(recall)
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    thr = calibrated_threshold(calibration, recall) if calibration is not None else None
    if thr is not None:
        k = int((s >= thr).sum())
        # a calibration made when the targets began at 0.50 keeps below that what its lowest target needs, and
        # expects that one's recall
        lowest = min(float(r) for r in calibration.recall_thresholds)
        return k, "recall", thr, max(recall, lowest)
    k = min(n, math.ceil(zero_shot_fraction(recall) * n - 1e-9))
    cut = float(np.sort(s)[::-1][k - 1]) if k else None
    return k, "recall-prior", cut, recall


def effective_rule(*, top: int | None = None, keep: float | None = None, recall: float | None = None,
                   calibrated: bool = False) -> tuple[int | None, float | None, float | None]:
    """(top, keep, recall) as decide_keep applies them, the defaults filled in: `top` wins, then `keep`, then
    `recall`; with none of them recall DEFAULT_RECALL when calibrated, else the fraction DEFAULT_KEEP."""
    if top is not None:
        return top, None, None
    if keep is not None:
        return None, keep, None
    if recall is not None:
        return None, None, recall
    return (None, None, DEFAULT_RECALL) if calibrated else (None, DEFAULT_KEEP, None)


def with_applied_rule(s: "Settings", rows: list["Effective"]) -> list["Effective"]:
    """settings.effective's `rows` with the keep rule this module applies when none is set (effective_rule:
    recall DEFAULT_RECALL with a calibration, else the fraction DEFAULT_KEEP) in place of its "not set"."""
    from ..settings import KEEP_RULE_KEYS, Effective
    p = s.prefilter
    if (p.top, p.keep, p.recall) != (None, None, None):
        return rows
    calibrated = p.calibration is not None
    rule = dict(zip(("top", "keep", "recall"), effective_rule(calibrated=calibrated)))
    why = "no keep rule given, " + ("with a calibration" if calibrated else "no calibration")
    return [Effective(r.key, rule[r.key[len("prefilter."):]], None, applied=True, why=why)
            if r.key in KEEP_RULE_KEYS and rule[r.key[len("prefilter."):]] is not None else r for r in rows]


def decide_keep(scores: np.ndarray, *, top: int | None = None, keep: float | None = None,
                recall: float | None = None, min_keep: int = 20,
                calibration: "Calibration | None" = None) -> KeepDecision:
    """How many of the papers (scored `scores`) to keep, and by which rule: `top` exactly when given; else the
    top `keep` fraction; else by `recall`; else the default (recall DEFAULT_RECALL with a calibration, the
    fraction DEFAULT_KEEP without). Never fewer than min(n, min_keep), except with `top`."""
    s = np.asarray(scores, dtype=np.float64)
    n = len(s)
    if top is not None:
        if top < 1:
            raise InputError("must be at least 1", key="prefilter.top")
        k = min(n, int(top))
        return KeepDecision(k, "top", k, _cut(s, k), expected_recall(k / n, calibration) if n else None)
    if keep is not None and not (0 < keep <= 1):
        raise InputError(f"must be a fraction in (0, 1], got {keep}", key="prefilter.keep")
    if recall is not None:
        _check_recall(recall)
    _, keep, recall = effective_rule(keep=keep, recall=recall, calibrated=calibration is not None)
    if keep is not None:
        k = min(n, math.ceil(keep * n - 1e-9))
        dec = KeepDecision(k, "keep", k, _cut(s, k), expected_recall(keep, calibration))
    else:
        k, rule, thr, expected = keep_for_recall(s, recall, calibration)
        dec = KeepDecision(k, rule, k, thr if thr is not None else _cut(s, k), expected, target=recall)
    dec.n_keep = min(n, max(dec.n_by_rule, min(n, min_keep)))
    return dec


def _cut(s: np.ndarray, k: int) -> float | None:
    return float(np.sort(s)[::-1][k - 1]) if 0 < k <= len(s) else None
