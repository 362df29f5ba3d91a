"""Agreement between two sets of judgements (GPT's and a local model's), with scipy and scikit-learn.

Everything here is pure: rows in, a JSON-ready dict out. A value that is undefined (fewer than two
common papers, constant input, a single class) is None, never NaN.
"""
from __future__ import annotations

import math
import warnings
from collections import defaultdict
from typing import Any, Iterable, Mapping

import numpy as np

from ..records import MIN_NOVELTY, MIN_RELEVANCE, Paper
from .readers import PrefilterRow, ScoreRow

KEPT_FRACTIONS = (0.10, 0.25, 0.40, 0.60)
CURVE_POINTS = 101


def _clean(x: Any) -> float | None:
    if x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return round(v, 6) if math.isfinite(v) else None


def agreement(gpt: Iterable[float], local: Iterable[float]) -> dict[str, Any]:
    """Spearman, Kendall tau-b, MAE, exact and within-1 agreement of paired scores."""
    from scipy import stats
    from sklearn.metrics import mean_absolute_error

    g = np.asarray(list(gpt), dtype=float)
    l = np.asarray(list(local), dtype=float)
    n = int(len(g))
    out: dict[str, Any] = {"n": n, "spearman": None, "kendall": None, "mae": None, "exact": None,
                           "within1": None, "mean_gpt": None, "mean_local": None, "bias": None}
    if n == 0:
        return out
    diff = l - g
    out.update(mae=_clean(mean_absolute_error(g, l)), exact=_clean(np.mean(diff == 0)),
               within1=_clean(np.mean(np.abs(diff) <= 1)), mean_gpt=_clean(g.mean()),
               mean_local=_clean(l.mean()), bias=_clean(diff.mean()))
    if n >= 2 and np.ptp(g) > 0 and np.ptp(l) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out["spearman"] = _clean(stats.spearmanr(g, l).statistic)
            out["kendall"] = _clean(stats.kendalltau(g, l).statistic)
    return out


def selection(gpt_picked: Iterable[bool], local_picked: Iterable[bool]) -> dict[str, Any]:
    """Precision / recall / F1 of the local picks against GPT's picks."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(list(gpt_picked), dtype=bool)
    y_pred = np.asarray(list(local_picked), dtype=bool)
    n = int(len(y_true))
    out: dict[str, Any] = {"n": n, "gpt_picks": int(y_true.sum()), "local_picks": int(y_pred.sum()),
                           "tp": 0, "fp": 0, "fn": 0, "tn": 0,
                           "precision": None, "recall": None, "f1": None}
    if n == 0:
        return out
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[False, True]).ravel()
    out.update(tp=int(tp), fp=int(fp), fn=int(fn), tn=int(tn))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="binary", pos_label=True,
                                                     zero_division=np.nan)
    out.update(precision=_clean(p), recall=_clean(r), f1=_clean(f))
    return out


def confusion(gpt: Iterable[float], local: Iterable[float], lo: int = 1, hi: int = 10) -> list[list[int]]:
    """Counts, GPT's score on rows and the local score on columns, values lo..hi (rounded, clipped)."""
    from sklearn.metrics import confusion_matrix
    labels = list(range(lo, hi + 1))
    g = np.clip(np.rint(np.asarray(list(gpt), dtype=float)), lo, hi).astype(int)
    l = np.clip(np.rint(np.asarray(list(local), dtype=float)), lo, hi).astype(int)
    if len(g) == 0:
        return [[0] * len(labels) for _ in labels]
    return confusion_matrix(g, l, labels=labels).tolist()


# ------------------------------------------------------------------------------------ prefilter

def _day_ranks(rows: list[PrefilterRow]) -> dict[str, tuple[int, int]]:
    """Each paper's 1-based rank within its day and the day's size.

    Days are ranked separately (the prefilter keeps a share of each day); ties broken by id.
    """
    by_day: dict[str, list[PrefilterRow]] = defaultdict(list)
    for r in rows:
        by_day[r.date].append(r)
    out: dict[str, tuple[int, int]] = {}
    for day_rows in by_day.values():
        ordered = sorted(day_rows, key=lambda r: (-r.score, r.id))
        for rank, r in enumerate(ordered, start=1):
            out[r.id] = (rank, len(ordered))
    return out


def _recall_at(ranks: Mapping[str, tuple[int, int]], positives: set[str], frac: float) -> float | None:
    """Share of positives kept when each day keeps its top ceil(frac * n) papers."""
    if not positives:
        return None
    hit = sum(1 for pid in positives if ranks[pid][0] <= math.ceil(frac * ranks[pid][1] - 1e-9))
    return hit / len(positives)


def prefilter_metrics(rows: Mapping[str, PrefilterRow], gpt_picks: set[str],
                      fractions: Iterable[float] = KEPT_FRACTIONS) -> dict[str, Any]:
    """Recall of GPT's picks when keeping the top fraction of each day, and ROC AUC of prefilter_score."""
    from sklearn.metrics import roc_auc_score

    rlist = list(rows.values())
    positives = {p for p in gpt_picks if p in rows}
    out: dict[str, Any] = {"n": len(rlist), "gpt_picks": len(positives),
                           "gpt_picks_not_in_prefilter": len(gpt_picks - set(rows)),
                           "recall_at": {}, "roc_auc": None, "kept_fraction": None, "recall_at_kept": None,
                           "curve": {"fraction": [], "recall": []}}
    if not rlist:
        return out
    ranks = _day_ranks(rlist)
    for f in fractions:
        out["recall_at"][f"{round(f * 100):d}%"] = _clean(_recall_at(ranks, positives, f))
    grid = np.linspace(0, 1, CURVE_POINTS)
    out["curve"] = {"fraction": [round(float(f), 4) for f in grid],
                    "recall": [_clean(_recall_at(ranks, positives, float(f))) for f in grid]}
    y = np.array([r.id in positives for r in rlist])
    s = np.array([r.score for r in rlist])
    if 0 < y.sum() < len(y):
        out["roc_auc"] = _clean(roc_auc_score(y, s))
    kept = np.array([r.kept for r in rlist])
    out["kept_fraction"] = _clean(kept.mean())
    if positives:
        out["recall_at_kept"] = _clean(sum(1 for r in rlist if r.kept and r.id in positives) / len(positives))
    return out


# ------------------------------------------------------------------------------------ everything

def _block(gpt: Mapping[str, ScoreRow], local: Mapping[str, ScoreRow], ids: list[str],
           papers: Mapping[str, Paper] | None, prefilter: Mapping[str, PrefilterRow] | None,
           min_relevance: float, min_novelty: float) -> dict[str, Any]:
    """Metrics over the papers `ids` (common ids) plus, when given, the listing / prefilter universe."""
    out: dict[str, Any] = {
        "n_common": len(ids),
        "relevance": agreement([gpt[i].relevance for i in ids], [local[i].relevance for i in ids]),
        "novelty": agreement([gpt[i].novelty for i in ids], [local[i].novelty for i in ids]),
        "selection": {"common": selection([gpt[i].picked(min_relevance, min_novelty) for i in ids],
                                          [local[i].picked(min_relevance, min_novelty) for i in ids])},
    }
    if papers is not None:
        universe = sorted(papers)
        out["selection"]["listing"] = selection(
            [i in gpt and gpt[i].picked(min_relevance, min_novelty) for i in universe],
            [i in local and local[i].picked(min_relevance, min_novelty) for i in universe])
        out["selection"]["listing"]["local_scored"] = sum(1 for i in universe if i in local)
        out["selection"]["listing"]["gpt_scored"] = sum(1 for i in universe if i in gpt)
    if prefilter is not None:
        picks = {i for i, r in gpt.items() if r.picked(min_relevance, min_novelty)}
        out["prefilter"] = prefilter_metrics(prefilter, picks)
    return out


def _dated(m: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """The rows of `m` that have a day, keyed by (day, id): a reader's `by_day` (readers.DayRows: a paper read on
    several days has a row for each), and for a plain mapping, or a row it kept no day of, the row's own date."""
    out = dict(getattr(m, "by_day", {}))
    have = {i for _, i in out}
    out.update({(r.date, i): r for i, r in m.items() if i not in have and r.date})
    return out


def rows_by_day(gpt: Mapping[str, ScoreRow], local: Mapping[str, ScoreRow], papers: Mapping[str, Paper] | None,
                prefilter: Mapping[str, PrefilterRow] | None) -> dict[str, dict[str, dict[str, Any]]]:
    """Where each row counts in the per-day figures: for "papers", "gpt", "local" and "prefilter", day -> {id: row}.

    A paper counts on each day it is listed (arXiv announces a paper again now and then), and a judgement or a
    prefilter row on its own day: a paper listed on two days is in both days' listings, and picked by GPT on the
    day GPT picked it. The listing decides the day of a row that contradicts it: a row dated a day its paper is
    not listed on counts on the paper's listing days, as a row without a day does (a judgement of the paper, on
    each day it was listed); a row without a day of a paper the listing does not hold counts on the days the
    other files give the paper."""
    sources = {"papers": papers or {}, "gpt": gpt, "local": local, "prefilter": prefilter or {}}
    dated = {k: _dated(m) for k, m in sources.items()}
    listed: dict[str, list[str]] = defaultdict(list)
    for d, i in sorted(dated["papers"]):
        listed[i].append(d)
    out: dict[str, dict[str, dict[str, Any]]] = {k: defaultdict(dict) for k in sources}
    for (d, i), r in dated["papers"].items():
        out["papers"][d][i] = r
    for k in ("gpt", "local", "prefilter"):
        elsewhere = []
        for (d, i), r in dated[k].items():
            if i in listed and d not in listed[i]:
                elsewhere.append((i, r))
            else:
                out[k][d][i] = r
        for i, r in elsewhere:                # after the rows of the day itself, which they do not replace
            for d in listed[i]:
                out[k][d].setdefault(i, r)
    known: dict[str, set[str]] = defaultdict(set)
    for k in ("gpt", "local", "prefilter"):
        for d, rows in out[k].items():
            for i in rows:
                known[i].add(d)
    for k, m in sources.items():
        have = {i for _, i in dated[k]}
        for i, r in m.items():
            if i not in have:
                for d in listed.get(i) or sorted(known.get(i, ())):
                    out[k][d].setdefault(i, r)
    return {k: dict(v) for k, v in out.items()}


def compute_metrics(gpt: Mapping[str, ScoreRow], local: Mapping[str, ScoreRow], *,
                    papers: Mapping[str, Paper] | None = None,
                    prefilter: Mapping[str, PrefilterRow] | None = None,
                    min_relevance: float = MIN_RELEVANCE, min_novelty: float = MIN_NOVELTY,
                    gpt_empty_days: Iterable[str] = (), local_empty_days: Iterable[str] = ()) -> dict[str, Any]:
    """All the numbers of metrics.json (without file lists and warnings, which run_compare adds).

    The listing (`papers`) and the prefilter rows are measured only on days the judgements cover: a listing
    day GPT (or the local model) never judged would otherwise turn the other side's picks into errors.
    Days come from the listing, the rows' own dates or the file names; without dates nothing is dropped.
    gpt_empty_days / local_empty_days: days a side judged and picked nothing (a file without a row, see
    readers.Judgements): they are covered, and the other side's picks there count against it.

    A paper listed (judged, ranked) on several days, as readers.DayRows hold it: the per-day figures count it on
    each of its days with that day's rows (see rows_by_day); the overall figures count it once, with its first
    judgement read on each side (the files in order: a folder of days, the earliest) and its listing and
    prefilter row of the first day the judgements cover.
    """
    common = sorted(set(gpt) & set(local))
    out: dict[str, Any] = {"n_gpt": len(gpt), "n_local": len(local), "n_common": len(common),
                           "thresholds": {"min_relevance": min_relevance, "min_novelty": min_novelty}}
    on_day = rows_by_day(gpt, local, papers, prefilter)
    gpt_days = set(on_day["gpt"]) | set(gpt_empty_days)
    local_days = set(on_day["local"]) | set(local_empty_days)
    for side, empty in (("gpt", gpt_empty_days), ("local", local_empty_days)):
        if empty:
            out[f"{side}_days_without_rows"] = sorted(set(empty) - set(on_day[side]))

    def only_days(m: Mapping[str, Any] | None, source: str, keep: set[str] | None,
                  key: str) -> Mapping[str, Any] | None:
        """m less the papers on none of the days `keep` (one without a day stays), each with its row of the first
        day kept; the days left out are said under `key`. keep None: no day is known, nothing is left out (an
        empty `keep`, the two sides judging no day in common, leaves out every day)."""
        if m is None or keep is None:
            return m
        dropped = sorted(d for d in on_day[source] if d not in keep)
        if dropped:
            out[key] = dropped
        first: dict[str, Any] = {}
        for d in sorted(on_day[source]):
            if d in keep:
                for i, r in on_day[source][d].items():
                    first.setdefault(i, r)
        placed = {i for rows in on_day[source].values() for i in rows}
        return {i: first.get(i, v) for i, v in m.items() if i in first or i not in placed}

    if papers is not None:
        papers = only_days(papers, "papers",
                           gpt_days & local_days if gpt_days and local_days else gpt_days or local_days or None,
                           "papers_days_skipped")
        out["n_papers"] = len(papers)
        out["gpt_not_in_papers"] = sum(1 for i in gpt if i not in papers)
        out["local_not_in_papers"] = sum(1 for i in local if i not in papers)
    if prefilter is not None:
        prefilter = only_days(prefilter, "prefilter", gpt_days or None, "prefilter_days_skipped")
    block = _block(gpt, local, common, papers, prefilter, min_relevance, min_novelty)
    block.pop("n_common")
    out.update(block)
    # the papers behind the selection table's misses and false picks: over the listing (its judged days) when
    # there is one, else over the papers both judged
    over = sorted(papers) if papers is not None else common
    g_pick = {i for i in over if i in gpt and gpt[i].picked(min_relevance, min_novelty)}
    l_pick = {i for i in over if i in local and local[i].picked(min_relevance, min_novelty)}
    out["gpt_picks_missed"] = sorted(g_pick - l_pick)
    out["local_picks_extra"] = sorted(l_pick - g_pick)
    out["confusion_relevance"] = confusion([gpt[i].relevance for i in common], [local[i].relevance for i in common])
    out["confusion_novelty"] = confusion([gpt[i].novelty for i in common], [local[i].novelty for i in common])

    # per-day breakdown when the judgements come from several days: each day with its own rows, keyed by (day, id)
    days = sorted(gpt_days | local_days)
    if len(days) > 1:
        out["days"] = {}
        for d in days:
            def sub(source: str, given: Mapping[str, Any] | None, ok: bool = True) -> dict | None:
                return None if given is None or not ok else dict(on_day[source].get(d, {}))
            g, l = sub("gpt", gpt), sub("local", local)
            ids = sorted(set(g) & set(l))
            blk = _block(g, l, ids, sub("papers", papers, d in gpt_days and d in local_days),
                         sub("prefilter", prefilter, d in gpt_days), min_relevance, min_novelty)
            blk = {"n_gpt": len(g), "n_local": len(l), **blk}
            if "prefilter" in blk:
                blk["prefilter"].pop("curve", None)
            out["days"][d] = blk
    if not common:
        if not gpt or not local:
            empty = [name for name, rows in (("GPT", gpt), ("local", local)) if not rows]
            out["message"] = f"no papers on the {' and '.join(empty)} side: nothing to compare"
        else:
            out["message"] = (f"no paper is in both files ({len(gpt)} GPT, {len(local)} local): "
                              "are they from the same day?")
    return out
