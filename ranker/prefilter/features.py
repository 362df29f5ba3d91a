"""What a history says about a paper beyond its text: its authors and its categories.

GPT's picks come out of a pipeline that first dropped papers none of whose authors had an h-index of 20 or
more, so who wrote a paper carries signal that no embedding of its abstract sees. A user's history is a proxy
for that: an author who appears often in past listings, or who co-wrote past picks, is more likely to pass
the seed's author filter (and to write what GPT rewards). Categories carry a prior too (GPT almost never
picks a cs.RO or cs.CR primary paper under the default topics).

Everything here is counted from the days given to it, so a caller that ranks a day passes only earlier days
(walk-forward), and a fit on history passes every day but the one a row comes from (`out_of_day`).
Names are matched after normalisation (accents folded, the letters without one in ASCII as author pins fold
them, case and punctuation dropped).
"""
from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..records import Paper
from ..sources.normalize import unaccented

# Smoothing of a rate towards the history's base rate: an author (or category) with few papers counts as
# that many papers at the base rate; not tuned (a handful of papers is "little evidence" for any rate).
PRIOR_PAPERS = 5.0

_NON_ALPHA = re.compile(r"[^a-z ]+")
# How the author keys of Counts are made, saved with them: 1 (a calibration file without it) dropped the letters
# NFKD leaves whole ("Łukasz Kaiser" was "ukasz kaiser", another person than "Lukasz Kaiser"); 2 writes them in
# ASCII (author_key)
AUTHOR_KEYS = 2


def author_key(name: str) -> str:
    """An author's name as matched across days: accents folded and the letters without one in ASCII
    (sources.normalize.unaccented, as author pins fold names: "Łukasz" is "lukasz", "Strauß" "strauss"), lower
    case, letters and single spaces only."""
    s = unaccented(name or "").encode("ascii", "ignore").decode("ascii").lower()
    return " ".join(_NON_ALPHA.sub(" ", s).split())


def _author_key_1(name: str) -> str:
    """author_key as AUTHOR_KEYS 1 made it (the letters NFKD leaves whole dropped), for the counts of a
    calibration file written then."""
    s = unicodedata.normalize("NFKD", name or "").encode("ascii", "ignore").decode("ascii").lower()
    return " ".join(_NON_ALPHA.sub(" ", s).split())


def paper_authors(p: Paper) -> list[str]:
    return list(dict.fromkeys(k for k in (author_key(a) for a in (p.authors or [])) if k))


def _counted_as(p: Paper, counts: "Counts") -> list[tuple[str, ...]]:
    """The keys each of a paper's authors (paper_authors) is counted under in `counts`: its key, and in counts
    with keys of version 1 also the key its spelling had then, so "Łukasz Kaiser" finds the papers of both
    "Łukasz Kaiser" ("ukasz kaiser" then) and "Lukasz Kaiser" there, as a calibration fit now would count them."""
    if counts.author_keys >= AUTHOR_KEYS:
        return [(k,) for k in paper_authors(p)]
    keys: dict[str, set[str]] = {}
    for a in p.authors or []:
        if k := author_key(a):
            keys.setdefault(k, {k}).add(_author_key_1(a) or k)
    return [tuple(sorted(v)) for v in keys.values()]


def paper_categories(p: Paper) -> list[str]:
    cats = [c for c in (p.categories or []) if c]
    prim = p.primary
    return list(dict.fromkeys([prim] + cats)) if prim else cats


@dataclass
class Counts:
    """Papers and picks per author and per category, over some days."""
    papers: Counter = field(default_factory=Counter)
    picks: Counter = field(default_factory=Counter)
    cat_papers: Counter = field(default_factory=Counter)
    cat_picks: Counter = field(default_factory=Counter)
    prim_papers: Counter = field(default_factory=Counter)
    prim_picks: Counter = field(default_factory=Counter)
    n_papers: int = 0
    n_picks: int = 0
    n_days: int = 0
    author_keys: int = AUTHOR_KEYS               # how the author keys were made (AUTHOR_KEYS)

    def add(self, papers: Sequence[Paper], labels: Sequence[bool], sign: int = 1) -> None:
        for p, y in zip(papers, labels):
            y = int(bool(y))
            for a in paper_authors(p):
                self.papers[a] += sign
                self.picks[a] += sign * y
            cats = paper_categories(p)
            for c in cats:
                self.cat_papers[c] += sign
                self.cat_picks[c] += sign * y
            if cats:
                self.prim_papers[cats[0]] += sign
                self.prim_picks[cats[0]] += sign * y
            self.n_papers += sign
            self.n_picks += sign * y

    def copy(self) -> "Counts":
        return Counts(Counter(self.papers), Counter(self.picks), Counter(self.cat_papers), Counter(self.cat_picks),
                      Counter(self.prim_papers), Counter(self.prim_picks), self.n_papers, self.n_picks,
                      self.n_days, self.author_keys)

    # ------------------------------------------------------------------ file
    def to_dict(self) -> dict:
        """A compact form for the calibration file (authors with one paper and no pick are kept: a second
        paper makes them "seen twice")."""
        return {"papers": dict(self.papers), "picks": {k: v for k, v in self.picks.items() if v},
                "cat_papers": dict(self.cat_papers), "cat_picks": dict(self.cat_picks),
                "prim_papers": dict(self.prim_papers), "prim_picks": dict(self.prim_picks),
                "n_papers": self.n_papers, "n_picks": self.n_picks, "n_days": self.n_days,
                "author_keys": self.author_keys}

    @classmethod
    def from_dict(cls, d: dict) -> "Counts":
        """Counts as to_dict wrote them; a file without "author_keys" has keys of version 1."""
        return cls(Counter(d.get("papers", {})), Counter(d.get("picks", {})), Counter(d.get("cat_papers", {})),
                   Counter(d.get("cat_picks", {})), Counter(d.get("prim_papers", {})),
                   Counter(d.get("prim_picks", {})), int(d.get("n_papers", 0)), int(d.get("n_picks", 0)),
                   int(d.get("n_days", 0)), int(d.get("author_keys", 1)))


def counts_of(papers: Sequence[Paper], labels: Sequence[bool], groups: Sequence[str]) -> Counts:
    c = Counts()
    c.add(papers, labels)
    c.n_days = len(set(groups))
    return c


def _logit_rate(k: float, n: float, base: float) -> float:
    r = (k + PRIOR_PAPERS * base) / (n + PRIOR_PAPERS)
    r = min(max(r, 1e-4), 1 - 1e-4)
    return math.log(r / (1 - r))


FEATURES = ("authors_seen_max", "authors_seen_sum", "authors_any_seen", "authors_pick_max", "authors_any_pick",
            "authors_rate_max", "n_authors", "primary_rate", "category_rate_max")


def features(papers: Sequence[Paper], counts: Counts) -> np.ndarray:
    """One row per paper, the columns FEATURES, from `counts` (days other than the papers' own).

    Author counts are per history day (a paper count divided by the days counted, x 50), so a fit on rows whose
    counts cover fewer days and a ranking with a longer history read them on one scale."""
    base = counts.n_picks / counts.n_papers if counts.n_papers else 0.1
    per_day = 50.0 / max(counts.n_days, 1)
    rows = np.zeros((len(papers), len(FEATURES)))
    for i, p in enumerate(papers):
        names = _counted_as(p, counts)
        seen = [sum(counts.papers.get(k, 0) for k in keys) for keys in names]
        picks = [sum(counts.picks.get(k, 0) for k in keys) for keys in names]
        rates = [_logit_rate(k, n, base) for k, n in zip(picks, seen)] or [_logit_rate(0, 0, base)]
        cats = paper_categories(p)
        prim = cats[0] if cats else ""
        cat_rates = [_logit_rate(counts.cat_picks.get(c, 0), counts.cat_papers.get(c, 0), base) for c in cats]
        rows[i] = (math.log1p(per_day * max(seen, default=0)), math.log1p(per_day * sum(seen)),
                   float(any(seen)), math.log1p(per_day * max(picks, default=0)), float(any(picks)),
                   max(rates), math.log1p(len(names)),
                   _logit_rate(counts.prim_picks.get(prim, 0), counts.prim_papers.get(prim, 0), base),
                   max(cat_rates, default=_logit_rate(0, 0, base)))
    return rows


def out_of_day_features(papers: Sequence[Paper], labels: Sequence[bool], groups: Sequence[str]) -> np.ndarray:
    """features() for every row of a history, each row's counts taken from all the OTHER days."""
    papers = list(papers)
    labels = np.asarray(labels, dtype=bool)
    groups = np.asarray([str(g) for g in groups])
    total = counts_of(papers, labels, groups)
    out = np.zeros((len(papers), len(FEATURES)))
    for d in sorted(set(groups.tolist())):
        idx = np.flatnonzero(groups == d)
        c = total.copy()
        c.add([papers[i] for i in idx], labels[idx], sign=-1)
        c.n_days = total.n_days - 1
        out[idx] = features([papers[i] for i in idx], c)
    return out


def prior_day_features(papers: Sequence[Paper], labels: Sequence[bool], groups: Sequence[str]) -> np.ndarray:
    """features() for every row of a history, each row's counts taken from the days BEFORE its own."""
    papers = list(papers)
    labels = np.asarray(labels, dtype=bool)
    groups = np.asarray([str(g) for g in groups])
    c = Counts()
    out = np.zeros((len(papers), len(FEATURES)))
    for d in sorted(set(groups.tolist())):
        idx = np.flatnonzero(groups == d)
        day = [papers[i] for i in idx]
        out[idx] = features(day, c)
        c.add(day, labels[idx])
        c.n_days += 1
    return out
