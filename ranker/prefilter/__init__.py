"""The embedding prefilter: rank a day's papers so the ones GPT-4o would pick sit on top, keep the top part.

Library entry point:
  rank_papers(papers, prompts, *, embedder="minilm", keep=None, top=None, recall=None, min_keep=20,
              calibration=None, store=None, progress=None, rules=None) -> PrefilterResult
      every paper as a Ranked record, best first, `kept` and `rule` set by the keep policy and the user's rules
      (pins, exclusions); plus the keep decision (rule, threshold, expected recall), what was embedded or
      reused from the store, and timings
  score_vectors(paper_vecs, query_vecs, queries, papers, calibration) / keep_day(score, papers, ..., rules)
      the same ranking and keep decision on vectors already made, one day at a time (the backfill's per-day
      stage)
The keep policy (recall.decide_keep): `top` papers, else the top `keep` fraction, else the smallest top part
expected to hold a share `recall` of GPT's picks; by default recall 0.95 with a calibration, the fraction
recall.DEFAULT_KEEP without one; never fewer than min(n, min_keep). It applies to the papers no exclusion
matches; a pinned author's paper is kept besides.
Submodules: embed (sentence embeddings + store cache), rank (zero-shot score), recall (keep policy), calibrate +
features (learning from GPT digest history), history (reading that history), walkforward and metrics (AUC,
recall@k, keep95), rules (author pins and exclusions).
The corpus index (FAISS) is ranker.index: steps.prefilter_day adds the day's papers to it and marks re-uploads
of earlier papers.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..io import Progress, counted
from ..records import Paper, Ranked

if TYPE_CHECKING:
    from ..prompts import PromptSet
    from ..store import Store
    from .calibrate import Calibration
    from .embed import Embedder
    from .rules import DayRules

__all__ = ["rank_papers", "score_vectors", "keep_day", "PrefilterResult"]


@dataclass
class PrefilterResult:
    """What ranking a day's papers gives (rank_papers, steps.prefilter_day): every paper as a Ranked record,
    best first, with its score and whether the keep rule (`keep`: the rule and its threshold) or the user's
    rules passed it on (`kept_papers`), and what the ranking cost (texts embedded, the model loaded, seconds)."""
    ranked: list[Ranked]
    embedder: str
    calibrated: bool = False
    embedded: int = 0            # texts that went through the model this run (papers and queries)
    model_loaded: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    keep: dict = field(default_factory=dict)     # recall.KeepDecision.to_dict(): rule, threshold, expected recall
    vectors: np.ndarray | None = field(default=None, repr=False)   # the papers' vectors, in the input's order
    # the papers' days the calibration was fit on: its ranking there is in-sample, not a forecast
    fit_on: list[str] = field(default_factory=list)
    # the calibration was fit under other topics than the prompt's: its zero-shot input and recall thresholds
    # were measured against those
    other_topics: bool = False
    # which fit of the calibration file ranked the day (Calibration.fit_record): one file name, rewritten by each
    # `ranker calibrate`, says nothing of that on its own
    calibration_fit: dict | None = None

    @property
    def kept(self) -> int:
        return sum(r.kept for r in self.ranked)

    @property
    def kept_papers(self) -> list[Paper]:
        """The papers the keep policy passes on, best first."""
        return [r.paper for r in self.ranked if r.kept]

    @property
    def reuploads(self) -> int:
        """Papers marked as re-uploads of an earlier paper (steps.prefilter_day marks them)."""
        return sum(1 for r in self.ranked if r.reupload_of)

    @property
    def excluded(self) -> int:
        """Papers an exclusion rule kept from the LLM."""
        return sum(r.rule.startswith("exclude:") for r in self.ranked)

    @property
    def pinned(self) -> int:
        """Papers kept because a pinned author wrote them (whatever their score)."""
        return sum(r.rule == "pin" for r in self.ranked)

    @property
    def reused(self) -> int:
        """Paper vectors that came from the store (not embedded this run)."""
        return max(0, len(self.ranked) - self.embedded)

    def caveats(self) -> list[str]:
        """What the figures of a calibrated ranking do not mean here, in words (none for most days)."""
        out = []
        if self.fit_on:
            out.append(f"the calibration was fit on this day ({', '.join(self.fit_on)}): its ranking here is "
                       "in-sample, not a forecast")
        if self.other_topics:
            from .calibrate import OTHER_TOPICS
            out.append(OTHER_TOPICS)
        return out

    def summary(self) -> str:
        n = len(self.ranked)
        how = "calibrated" if self.calibrated else "zero-shot"
        cached = "all vectors from the store" if not self.embedded else f"{counted(self.embedded, 'text')} embedded"
        rule = self.keep.get("rule", "")
        if rule in ("recall", "recall-prior"):
            src = "calibration" if rule == "recall" else "zero-shot prior"
            why = f"by recall {self.keep['target_recall']:g} ({src})"
        else:
            why = {"keep": "fixed fraction", "top": "top K"}.get(rule, rule)
            if rule in ("keep", "top") and self.keep.get("expected_recall") is not None:
                why += f", expected recall {self.keep['expected_recall']:.2f}"
        rules = "".join(f", {n:,} {what}" for n, what in ((self.excluded, "excluded by a rule"),
                                                          (self.pinned, "by pinned authors")) if n)
        n_re = self.reuploads
        reup = f"; {counted(n_re, 're-upload')} of earlier papers" if n_re else ""
        seen = "".join(f"; {note}" for note in self.caveats())
        return (f"prefilter: kept {self.kept:,} of {counted(n, 'paper')} ({why}; {how}, embedder {self.embedder}; "
                f"{cached}{rules}"
                f"{reup}; "
                f"{self.seconds:.1f}s){seen}")


def score_vectors(paper_vecs: np.ndarray, query_vecs: np.ndarray, queries, papers: Sequence[Paper],
                  calibration: "Calibration | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """(prefilter score, best topic index) of each paper of ONE day, from its vectors: the zero-shot score
    centred on these papers, or the calibration's probability when one is given. rank_papers and the
    backfill's per-day stage both rank through here."""
    from .rank import zero_shot_papers
    zs, topic_idx = zero_shot_papers(paper_vecs, query_vecs, queries, papers)
    score = calibration.score(paper_vecs, zs, papers) if calibration is not None else zs.astype(np.float64)
    return np.asarray(score, dtype=np.float64), topic_idx


def keep_day(score: np.ndarray, papers: Sequence[Paper], *, keep: float | None = None, top: int | None = None,
             recall: float | None = None, min_keep: int = 20, calibration: "Calibration | None" = None,
             rules: "DayRules | None" = None):
    """The keep policy over ONE day's scores and the user's rules: (the papers' indices best first (ties: the
    earlier paper first), kept per paper, the rule that decided each per paper, the KeepDecision). An excluded
    paper is never kept and the keep rule counts only the others; a pinned author's paper is kept besides
    (`rules`: the user's DayRules). rank_papers and the backfill's per-day stage both keep through here."""
    from .recall import decide_keep
    excluded = {p.id: r.text for p in papers if rules and rules.exclusions and (r := rules.exclusions.match(p))}
    pinned = {p.id for p in papers if rules and rules.pins and rules.pins.match(p)}
    score = np.asarray(score, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    candidates = [i for i in order if papers[i].id not in excluded]
    dec = decide_keep(score[candidates], keep=keep, top=top, recall=recall, min_keep=min_keep,
                      calibration=calibration)
    kept = np.zeros(len(papers), dtype=bool)
    why = [""] * len(papers)
    j = 0
    for i in order:
        p = papers[i]
        if p.id in excluded:
            why[i] = f"exclude:{excluded[p.id]}"
            continue
        kept[i] = j < dec.n_keep or p.id in pinned
        why[i] = "pin" if p.id in pinned else dec.rule if j < dec.n_by_rule or j >= dec.n_keep else "min_keep"
        j += 1
    return order, kept, why, dec


def rank_papers(papers: Sequence[Paper], prompts: "PromptSet | None" = None, *,
                embedder: "str | Embedder" = "minilm", keep: float | None = None, top: int | None = None,
                recall: float | None = None, min_keep: int = 20,
                calibration: "Calibration | str | Path | None" = None,
                store: "Store | None" = None, progress: Progress | None = None,
                rules: "DayRules | None" = None) -> PrefilterResult:
    """Every paper, sorted by descending prefilter_score; `kept` marks the papers the keep policy passes on
    (see the module's docstring) among those no exclusion rule matches, and `rule` names what decided each:
    the keep rule, "pin" (a pinned author's paper, always kept) or "exclude:<rule>" (never kept)."""
    from ..prompts import load_prompts
    from .calibrate import Calibration
    from .embed import Embedder
    from .rank import build_queries
    from .recall import decide_keep

    t0 = time.perf_counter()
    prompts = prompts if prompts is not None else load_prompts()
    qs = build_queries(prompts)
    decide_keep(np.zeros(1), keep=keep, top=top, recall=recall, min_keep=min_keep)   # validates before any work
    emb = embedder if isinstance(embedder, Embedder) else Embedder(embedder)
    cal = None
    if calibration is not None:
        cal = calibration if isinstance(calibration, Calibration) else Calibration.load(calibration)
        cal.check_embedder(emb.key)
    before = emb.texts_encoded
    timings: dict[str, float] = {}
    if not papers:
        return PrefilterResult([], emb.key, calibrated=cal is not None, seconds=time.perf_counter() - t0)

    t = time.perf_counter()
    qv = emb.embed_queries(qs.texts, store, progress=progress)
    pv = emb.embed_papers(papers, store, progress=progress)
    timings["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    score, topic_idx = score_vectors(pv, qv, qs, papers, cal)
    order, kept, why, dec = keep_day(score, papers, keep=keep, top=top, recall=recall, min_keep=min_keep,
                                     calibration=cal, rules=rules)
    ranked = [Ranked(paper=papers[i], prefilter_score=float(score[i]), kept=bool(kept[i]),
                     topic=qs.topic_names[int(topic_idx[i])], rule=why[i]) for i in order]
    timings["score"] = time.perf_counter() - t
    trained = set(cal.trained_on.get("days") or []) if cal is not None else set()
    return PrefilterResult(ranked, emb.key, calibrated=cal is not None, embedded=emb.texts_encoded - before,
                           model_loaded=emb.loaded, seconds=time.perf_counter() - t0, timings=timings,
                           keep=dec.to_dict(), vectors=pv, fit_on=sorted({p.date for p in papers} & trained),
                           other_topics=cal is not None and cal.other_topics(qs.digest()),
                           calibration_fit=cal.fit_record() if cal is not None else None)
