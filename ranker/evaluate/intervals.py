"""How far an eval's figures can be trusted: a 95% interval for each overall figure from a bootstrap over days,
and the paired comparison of two evals over the days they share. Pure (numpy only): eval.json's content in,
JSON-ready dicts out (an undefined value is None, never NaN).

The day is the unit resampled: papers of one day share its topics and its GPT, so a bootstrap over papers
would pretend to far more independent evidence than the days hold. A mean-over-days figure (AUC, R@25, ...)
is the mean of the resampled days' values; a pooled figure (the digest's precision / recall / F1, within-1)
is recomputed from the resampled days' pooled counts. The interval is the 2.5th and 97.5th percentiles of
RESAMPLES resamples drawn with a fixed SEED, so the same eval gives the same interval. Another seed moves a
bound by about 2.7 standard errors / sqrt(RESAMPLES) (a standard deviation of 0.0002 for the shared history's
widest, keep95 over 50 days): the bounds are printed to 2 decimals, which that noise does not reach (the
third would be noise). 0.1 s for 50 days, ~4 s for 1,000.

With fewer than MIN_DAYS days (where the figure is defined: for a pooled one, the days that put something in
its denominator) no interval is given: the bootstrap of so few values takes only a handful of distinct means
and its percentiles claim a certainty the days cannot give. With few days above that (under FEW_DAYS) a
percentile interval is still too narrow: about 1.96 sqrt((n-1)/n) / t(n-1) of Student's t interval's width,
0.63 at 5 days, 0.88 at 15, 0.97 at 50; the summaries say so.

A paired comparison takes the days both evals replayed (the same date, the same papers and GPT picks) and
resamples them together, so the day-to-day variation both share (an easy day is easy for both) cancels: the
interval of the difference is far narrower than the two intervals side by side suggest.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import counted, day_span, json_loads, read_text
from ..records import MIN_NOVELTY, MIN_RELEVANCE
from .figures import KEEPING, RANKING, clean

LEVEL = 0.95
RESAMPLES = 100_000
SEED = 20250717
MIN_DAYS = 5
FEW_DAYS = 15
METHOD = "percentile bootstrap over days"
_BLOCK = 2_000                     # resamples drawn at once: memory stays BLOCK x days, whatever the history
DIGEST = ("precision", "recall", "f1")


def settings_record() -> dict:
    """What eval.json records about how its intervals were made."""
    return {"level": LEVEL, "method": METHOD, "resamples": RESAMPLES, "seed": SEED, "min_days": MIN_DAYS,
            "few_days": FEW_DAYS}


# --------------------------------------------------------------------------- the bootstrap
def bootstrap(n: int, stat: Callable[[np.ndarray], np.ndarray], *, resamples: int = RESAMPLES,
              seed: int = SEED) -> np.ndarray:
    """stat over `resamples` resamples of n days drawn with replacement: stat takes an (m, n) block of counts
    (how many times each day was drawn into each of m resamples) and returns its (m, k) values, k figures at
    once; (resamples, k) in all. The same n, resamples and seed draw the same resamples."""
    rng = np.random.default_rng(seed)
    out = []
    for start in range(0, resamples, _BLOCK):
        m = min(_BLOCK, resamples - start)
        idx = rng.integers(0, n, size=(m, n)) + n * np.arange(m)[:, None]
        counts = np.bincount(idx.ravel(), minlength=m * n).reshape(m, n).astype(np.float64)
        out.append(np.asarray(stat(counts), dtype=np.float64).reshape(m, -1))
    return np.concatenate(out)


def ratios(counts: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Each figure's sum(num) / sum(den) over the days weighted by `counts` ((m, n) resamples; num and den
    (n, k), a column a figure): (m, k), NaN where the denominator is 0. A pooled figure (tp over tp + fp) is
    one; so is a mean over days, with num the day's value (0 where undefined) and den 1 where it is defined."""
    d = counts @ den
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d > 0, (counts @ num) / np.where(d > 0, d, 1), np.nan)


def as_terms(values: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """Per-day values as a mean's terms (see ratios): the value and 1 where defined, 0 and 0 where None."""
    num = np.array([0.0 if v is None else float(v) for v in values], dtype=np.float64)
    return num, np.array([v is not None for v in values], dtype=np.float64)


def _zero(v: float | None) -> float | None:
    return None if v is None else v + 0.0          # -0.0 (a rounded tiny negative) reads as 0


def _intervals(resampled: np.ndarray, days: Sequence[int]) -> list[dict]:
    """Per column of `resampled`, {"low", "high", "days"}: the central LEVEL of its values (None, None with
    fewer than MIN_DAYS days defining the figure, or when no resample defines it)."""
    out = []
    for j, n in enumerate(days):
        v = resampled[:, j]
        v = v[np.isfinite(v)]
        row = {"low": None, "high": None, "days": int(n)}
        if n >= MIN_DAYS and len(v):
            lo, hi = np.quantile(v, [(1 - LEVEL) / 2, (1 + LEVEL) / 2])
            row.update(low=_zero(clean(lo)), high=_zero(clean(hi)))
        out.append(row)
    return out


def ratio_intervals(terms: Mapping[str, tuple[np.ndarray, np.ndarray, int]], **kw) -> dict[str, dict]:
    """name -> (num, den, days defining it) per figure, all over the same days: name -> its interval. One set
    of resamples serves every figure."""
    if not terms:
        return {}
    names = list(terms)
    num = np.stack([terms[k][0] for k in names], axis=1)
    den = np.stack([terms[k][1] for k in names], axis=1)
    days = [terms[k][2] for k in names]
    resampled = bootstrap(len(num), lambda c: ratios(c, num, den), **kw) if max(days) >= MIN_DAYS else \
        np.full((1, len(names)), np.nan)
    return dict(zip(names, _intervals(resampled, days)))


def mean_interval(values: Sequence[float | None], **kw) -> dict:
    """The interval of the mean of these per-day values (a None day is left out, as the mean leaves it: every
    day is resampled, and each resample's mean is over its days that define the figure, as the eval's own)."""
    num, den = as_terms(values)
    return ratio_intervals({"mean": (num, den, int(den.sum()))}, **kw)["mean"]


def _counts(days: Sequence[Mapping]) -> dict[str, np.ndarray]:
    """Per day: the digest's tp / fp / fn, and the GPT picks scored with RELEVANCE and NOVELTY within one
    point of GPT's (and how many were scored)."""
    dg = [d["llm"]["digest"] for d in days]
    out = {k: np.array([x[k] for x in dg], dtype=np.float64) for k in ("tp", "fp", "fn")}
    for i, what in enumerate(("relevance", "novelty")):
        out[what] = np.array([sum(abs(p["gpt"][i] - p["local"][i]) <= 1 for p in d.get("pairs") or [])
                              for d in days], dtype=np.float64)
    out["pairs"] = np.array([len(d.get("pairs") or []) for d in days], dtype=np.float64)
    return out


def _pooled(days: Sequence[Mapping]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The LLM's pooled figures over these days as (numerator, denominator) per day."""
    c = _counts(days)
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    return {"precision": (tp, tp + fp), "recall": (tp, tp + fn), "f1": (2 * tp, 2 * tp + fp + fn),
            "within1 relevance": (c["relevance"], c["pairs"]), "within1 novelty": (c["novelty"], c["pairs"])}


def _llm_shape(flat: Mapping[str, dict]) -> dict:
    return {"digest": {k: flat[k] for k in DIGEST}, "relevance": {"within1": flat["within1 relevance"]},
            "novelty": {"within1": flat["within1 novelty"]}}


def day_intervals(days: Sequence[Mapping], **kw) -> dict:
    """The intervals of figures.overall()'s figures over these days (eval.json's per-day records):
    {"prefilter": {figure: {"low", "high", "days"}}, "zero_shot": ... (with a calibration), "llm": {"digest":
    {precision, recall, f1}, "relevance": {"within1"}, "novelty": {"within1"}} (with a model)}, and how they
    were made (settings_record); with a calibration "minus_zero_shot" too: per ranking figure the calibrated
    ranking's mean difference from zero-shot's on the same days, as mean_difference gives it. Spearman and the
    other agreement figures get none (a rank correlation per resample is not worth its time here)."""
    terms = {}
    blocks = [("prefilter", RANKING + KEEPING)]
    if days and all(d.get("zero_shot") for d in days):
        blocks.append(("zero_shot", RANKING))
    for block, keys in blocks:
        for k in keys:
            num, den = as_terms([d[block].get(k) for d in days])
            terms[(block, k)] = (num, den, int(den.sum()))
    scored = [d.get("llm") is not None for d in days]
    if any(scored):
        mask = np.array(scored, dtype=np.float64)
        padded = [d if d.get("llm") else {"llm": {"digest": {"tp": 0, "fp": 0, "fn": 0}}} for d in days]
        for k, (num, den) in _pooled(padded).items():
            # a day that puts nothing in a figure's denominator (no GPT pick for recall, none scored for
            # within-1) adds nothing to it: not a day it stands on
            terms[("llm", k)] = (num * mask, den * mask, int((den * mask > 0).sum()))
    got = ratio_intervals(terms, **kw)
    out: dict = {**settings_record()}
    for (block, k), row in got.items():
        out.setdefault(block, {})[k] = row
    if "llm" in out:
        out["llm"] = _llm_shape(out["llm"])
    if "zero_shot" in out:
        # what the calibration bought on these very days: its ranking against zero-shot's, day by day
        out["minus_zero_shot"] = {k: mean_difference([d["prefilter"].get(k) for d in days],
                                                     [d["zero_shot"].get(k) for d in days], **kw) for k in RANKING}
    return out


# --------------------------------------------------------------------------- two evals, paired
def eval_path(against: str | Path) -> Path:
    """The eval.json `against` names: itself, or the one in the folder it names (an eval's output folder)."""
    path = Path(against).expanduser()
    return path / "eval.json" if path.is_dir() else path


def content_sha256(data: Mapping) -> str:
    """What tells one eval from another whatever its file's layout: the sha256 of its content (eval.json as
    read) written as canonical JSON, keys sorted, no spaces, UTF-8 (json.dumps(data, sort_keys=True,
    separators=(",", ":"), ensure_ascii=False))."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def eval_identity(data: Mapping, path: str | Path) -> dict:
    """Enough to tell which eval this is (eval.json's content, read from `path`): the file, its content's hash
    (content_sha256), the history replayed, its days and their span (its settings stand beside it). The file
    is named from the root, not from the folder the command ran in: the record is read from anywhere later."""
    dates = [d["date"] for d in data["days"]]
    return {"eval": os.path.abspath(Path(path).expanduser()), "content_sha256": content_sha256(data),
            "history": data.get("history"), "days": len(dates), "span": day_span(dates)}


def read_eval(against: str | Path) -> dict:
    """An eval.json (or the folder holding one) as written by evaluate_history, checked to be one: an
    InputError naming it (and the parameter `against`) when it is missing, not JSON or not an eval's."""
    path = eval_path(against)
    try:
        text = read_text(path, "eval.json")
    except InputError as e:
        e.key = "against"
        raise
    try:
        data = json_loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg}, line {e.lineno}); a damaged eval.json? run the eval again",
                         where=str(path), key="against") from None
    days = data.get("days") if isinstance(data, dict) else None
    if not (isinstance(data.get("settings") if isinstance(data, dict) else None, dict) and isinstance(days, list)
            and all(isinstance(d, dict) and isinstance(d.get("date"), str) and isinstance(d.get("prefilter"), dict)
                    and all(_count(d["prefilter"].get(k)) for k in ("papers", "picks")) for d in days)):
        raise InputError("not the eval.json of an eval (no settings and per-day figures in it)", where=str(path),
                         key="against")
    if not days:
        raise InputError("an eval of no day: nothing to compare with", where=str(path), key="against")
    problem = _damage(data)
    if problem:
        raise InputError(f"{problem}; a damaged eval.json? run the eval again", where=str(path), key="against")
    return data


def _number(v) -> bool:
    """A finite number: not a bool, NaN or infinity (JSON reads 1e400 as one)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:                           # an integer too large for a float
        return False


def _count(v) -> bool:
    """A count as an eval writes one: a whole number >= 0 (true is not 1 here) that a float holds (the
    figures are computed in floats: 10**400 would fail there, after the whole replay)."""
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0 and _number(v)


def _damage(data: Mapping) -> str:
    """The first value a comparison reads that is not what an eval writes ("" when none is)."""
    for k in ("min_relevance", "min_novelty", "keep", "recall"):
        if data["settings"].get(k) is not None and not _number(data["settings"][k]):
            return f"settings.{k} is not a number"
    top = data["settings"].get("top")
    if top is not None and not (isinstance(top, int) and not isinstance(top, bool)):
        return "settings.top is not a whole number"
    seen = set()
    for d in data["days"]:
        if d["date"] in seen:
            return f"{d['date']} is there twice"
        seen.add(d["date"])
        for k in RANKING + KEEPING:
            if d["prefilter"].get(k) is not None and not _number(d["prefilter"][k]):
                return f"{d['date']}: prefilter.{k} is not a number"
        llm = d.get("llm")
        if llm:
            dg = llm.get("digest") if isinstance(llm, dict) else None
            if not isinstance(dg, dict) or not all(_count(dg.get(k)) for k in ("tp", "fp", "fn")):
                return f"{d['date']}: llm.digest has no tp, fp and fn counts"
            pairs = d.get("pairs") or []
            if not isinstance(pairs, list) or not all(
                    isinstance(p, dict) and all(isinstance(p.get(w), list) and len(p[w]) == 2
                                                and all(_number(x) for x in p[w]) for w in ("gpt", "local"))
                    for p in pairs):
                return f"{d['date']}: pairs are not GPT's and the model's scores"
    return ""


def cut_offs(settings: Mapping) -> tuple[float, float]:
    """The cut-offs an eval read GPT's picks at (an eval.json from before they were recorded read them at
    the fixed defaults)."""
    r, n = settings.get("min_relevance"), settings.get("min_novelty")
    return (MIN_RELEVANCE if r is None else r, MIN_NOVELTY if n is None else n)


def check_pairable(other: Mapping, *, against: str | Path, min_relevance: float, min_novelty: float,
                   days: Mapping[str, tuple[int, int]]) -> list[str]:
    """Whether an eval of these days (date -> its papers and GPT's picks, read at these cut-offs) can be
    compared with `other` (read_eval's, from `against`) day by day: the shared dates, oldest first, or an
    InputError naming `against` when its picks were read at other cut-offs (every figure would be measured
    against other picks), it shares no day, or a shared date holds other papers or picks there (two
    histories). Said before an eval runs, from the history it will replay, and again after."""
    theirs, ours = cut_offs(other["settings"]), (min_relevance, min_novelty)
    if tuple(theirs) != tuple(ours):
        raise InputError(f"its GPT picks are those with RELEVANCE >= {theirs[0]:g} and NOVELTY >= {theirs[1]:g}, "
                         f"this eval's RELEVANCE >= {ours[0]:g} and NOVELTY >= {ours[1]:g}: the two are measured "
                         "against different picks and cannot be compared (evaluate both at the same "
                         "{key:digest.min_relevance} and {key:digest.min_novelty})",
                         where=str(against), key="against")
    there = {d["date"]: (d["prefilter"]["papers"], d["prefilter"]["picks"]) for d in other["days"]}
    shared = sorted(set(there) & set(days))
    if not shared:
        raise InputError(f"no day in common with this eval: it has {counted(len(there), 'day')} "
                         f"({day_span(there)}), this eval {counted(len(days), 'day')} ({day_span(days)})",
                         where=str(against), key="against")
    differ = [d for d in shared if tuple(days[d]) != tuple(there[d])]
    if differ:
        d = differ[0]
        more = f" (and {counted(len(differ) - 1, 'other day')})" if len(differ) > 1 else ""
        raise InputError(f"{d} has {counted(there[d][0], 'paper')} and {counted(there[d][1], 'GPT pick')} there, "
                         f"{days[d][0]:,} and {days[d][1]:,} in this eval{more}: the two replayed different "
                         "histories and cannot be compared day by day", where=str(against), key="against")
    return shared


def paired_comparison(this: Mapping, other: Mapping, *, against: str | Path, **kw) -> dict:
    """This eval against `other` (both eval.json's content; `other` read from `against`) over the days both
    replayed: per figure this eval's and the other's mean over the shared days where both define it, the
    difference (this minus other) and its paired bootstrap interval ({"low", "high"}, None with fewer than
    MIN_DAYS such days), and how many days; the digest's pooled figures too when both scored with a model.
    An InputError (naming `against`) when the two cannot be compared (check_pairable)."""
    ours = {d["date"]: d for d in this["days"]}
    theirs = {d["date"]: d for d in other["days"]}
    s = this["settings"]
    shared = check_pairable(other, against=against, min_relevance=cut_offs(s)[0], min_novelty=cut_offs(s)[1],
                            days={d: (x["prefilter"]["papers"], x["prefilter"]["picks"]) for d, x in ours.items()})
    out: dict = {"against": str(against), "days": len(shared), "span": day_span(shared), "dates": list(shared),
                 "only_this": len(ours) - len(shared), "only_other": len(theirs) - len(shared),
                 "this": dict(s), "other": dict(other["settings"]), **settings_record()}
    terms = {}
    for k in RANKING + KEEPING:
        both = [(ours[d]["prefilter"].get(k), theirs[d]["prefilter"].get(k)) for d in shared]
        # a day GPT picked nothing on defines neither
        a = as_terms([x if y is not None else None for x, y in both])
        terms[("prefilter", k)] = (a, as_terms([y if x is not None else None for x, y in both]), int(a[1].sum()))
    if all(ours[d].get("llm") for d in shared) and all(theirs[d].get("llm") for d in shared):
        pa, pb = _pooled([ours[d] for d in shared]), _pooled([theirs[d] for d in shared])
        for k in pa:
            # the days that put something in both evals' denominators (as day_intervals counts them): both
            # sides are pooled over those alone, so the figures and their difference stand on the days counted
            both = ((pa[k][1] > 0) & (pb[k][1] > 0)).astype(np.float64)
            terms[("llm", k)] = (tuple(x * both for x in pa[k]), tuple(x * both for x in pb[k]), int(both.sum()))
    for (block, k), row in _paired(terms, **kw).items():
        out.setdefault(block, {})[k] = row
    if "llm" in out:
        out["llm"] = _llm_shape(out["llm"])
    return out


def mean_difference(this: Sequence[float | None], other: Sequence[float | None], **kw) -> dict:
    """Per-day values of two rankings of the same days, paired: {"this", "other", "difference", "low", "high",
    "days"} as paired_comparison gives each figure (a day either leaves undefined is left out of both)."""
    a = as_terms([x if y is not None else None for x, y in zip(this, other)])
    b = as_terms([y if x is not None else None for x, y in zip(this, other)])
    return _paired({"d": (a, b, int(a[1].sum()))}, **kw)["d"]


def _paired(terms: Mapping, **kw) -> dict:
    """name -> ((num, den) of this eval, (num, den) of the other, days defining it), all over the same days:
    name -> this eval's figure, the other's, the difference and its interval, the days of both resampled
    together."""
    names = list(terms)
    na, da, nb, db = (np.stack([terms[k][i][j] for k in names], axis=1) for i in (0, 1) for j in (0, 1))
    days = [terms[k][2] for k in names]
    whole = np.ones((1, len(na)))
    va, vb = ratios(whole, na, da)[0], ratios(whole, nb, db)[0]
    resampled = bootstrap(len(na), lambda c: ratios(c, na, da) - ratios(c, nb, db), **kw) \
        if max(days) >= MIN_DAYS else np.full((1, len(names)), np.nan)
    out = {}
    for j, (k, row) in enumerate(zip(names, _intervals(resampled, days))):
        diff = va[j] - vb[j]
        out[k] = {"this": clean(va[j]), "other": clean(vb[j]),
                  "difference": _zero(clean(diff)) if np.isfinite(diff) else None, **row}
    return out
