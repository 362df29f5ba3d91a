"""Walk-forward evaluation: rank each test day with a model fit only on the days before it, as a user lives it.

`ranker calibrate` prints these figures beside zero-shot's, and scripts/eval_walkforward.py compares learners
with the same functions.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..io import counted, day_span
from .metrics import METRICS, day_metrics, mean_of


@dataclass
class Report:
    days: list[str]
    learned: dict[str, dict[str, float]] = field(default_factory=dict)     # day -> metrics of the learner
    zero_shot: dict[str, dict[str, float]] = field(default_factory=dict)   # day -> metrics of zero-shot
    fit_seconds: list[float] = field(default_factory=list)
    rank_seconds: list[float] = field(default_factory=list)
    scores: dict[str, np.ndarray] = field(default_factory=dict)            # day -> the learner's scores
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def mean(self, which: str = "learned") -> dict[str, float]:
        return mean_of(list(getattr(self, which).values()))

    def to_dict(self) -> dict:
        return {"days": self.days, "calibrated": self.mean("learned"), "zero_shot": self.mean("zero_shot"),
                "per_day": {d: {"calibrated": self.learned[d], "zero_shot": self.zero_shot.get(d, {})}
                            for d in self.learned},
                "fit_seconds": float(np.mean(self.fit_seconds)) if self.fit_seconds else 0.0,
                "rank_seconds": float(np.mean(self.rank_seconds)) if self.rank_seconds else 0.0}


def walk_forward(data, fit: Callable, test_days: Sequence[str], *, progress: Callable | None = None) -> Report:
    """fit(train HistoryData, test day) -> score(day HistoryData) -> scores. Each test day is scored by a fit on
    the days strictly before it (a day with no pick, or no earlier day with one, is left out); the fit is told
    the day, so that it can leave out what was only known later (the user's labels given after it)."""
    rep = Report(days=[])
    for i, d in enumerate(test_days):
        tr_mask = data.groups < d
        te = data.subset(data.groups == d)
        if not te.y.any() or not data.y[tr_mask].any() or data.y[tr_mask].all():
            continue
        tr = data.subset(tr_mask)
        t = time.perf_counter()
        score = fit(tr, d)
        rep.fit_seconds.append(time.perf_counter() - t)
        t = time.perf_counter()
        s = np.asarray(score(te), dtype=np.float64)
        rep.rank_seconds.append(time.perf_counter() - t)
        rep.days.append(d)
        rep.learned[d] = day_metrics(s, te.y)
        rep.zero_shot[d] = day_metrics(te.zs, te.y)
        rep.scores[d] = s
        rep.labels[d] = te.y
        if progress is not None:
            progress(i + 1, len(test_days))
    return rep


HEADER = f"{'':<14}{'AUC':>7}{'R@25':>7}{'R@40':>7}{'keep95':>8}"


def row(name: str, m: dict[str, float]) -> str:
    return f"{name:<14}" + "".join(f"{m.get(k, float('nan')):{7 if k != 'keep95' else 8}.3f}" for k in METRICS)


def table(rep: Report) -> list[str]:
    """The lines `ranker calibrate` prints: the walk-forward means of the learner and of zero-shot."""
    span = day_span(rep.days) or "-"
    fit_s = float(np.mean(rep.fit_seconds)) if rep.fit_seconds else 0.0
    n = len(rep.days)
    return [f"walk-forward on {counted(n, 'day')} ({span}), each ranked by a fit on the days before it:",
            HEADER, row("zero-shot", rep.mean("zero_shot")), row("calibrated", rep.mean("learned")),
            f"(one fit {fit_s:.1f}s; keep95 = the smallest top fraction of a day that holds 95% of GPT's picks)"]
