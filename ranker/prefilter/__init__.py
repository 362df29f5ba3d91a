"""The embedding prefilter: rank a day's papers so the ones GPT-4o would pick sit on top, keep the top part.

Library entry point:
  rank_papers(papers, prompts, *, embedder="minilm", keep=0.4, top=None, min_keep=20, calibration=None,
              store=None, progress=None) -> PrefilterResult
      every paper as a Ranked record, best first, `kept` set by the keep policy; plus what was embedded or
      reused from the store, and timings
  score_vectors(paper_vecs, query_vecs, queries, papers, calibration) / keep_mask(score, k)
      the same ranking on vectors already made, one day at a time (the backfill's per-day stage)
Submodules: embed (sentence embeddings + store cache), rank (zero-shot score, keep policy), index (FAISS),
calibrate (learning from GPT digest history), history (reading that history), metrics (AUC, recall@k).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from ..io import Progress
from ..records import Paper, Ranked

if TYPE_CHECKING:
    from ..prompts import PromptSet
    from ..store import Store
    from .calibrate import Calibration
    from .embed import Embedder
    from .rules import DayRules

__all__ = ["rank_papers", "score_vectors", "keep_mask", "PrefilterResult"]


@dataclass
class PrefilterResult:
    ranked: list[Ranked]
    embedder: str
    calibrated: bool = False
    embedded: int = 0            # texts that went through the model this run (papers and queries)
    model_loaded: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def kept(self) -> int:
        return sum(r.kept for r in self.ranked)

    @property
    def kept_papers(self) -> list[Paper]:
        """The papers the keep policy passes on, best first."""
        return [r.paper for r in self.ranked if r.kept]

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

    def summary(self) -> str:
        n = len(self.ranked)
        how = "calibrated" if self.calibrated else "zero-shot"
        cached = "all vectors from the store" if not self.embedded else f"{self.embedded} texts embedded"
        rules = "".join(f", {n} {what}" for n, what in ((self.excluded, "excluded by a rule"),
                                                          (self.pinned, "by pinned authors")) if n)
        return (f"prefilter: kept {self.kept} of {n} papers ({how}, embedder {self.embedder}; {cached}{rules}; "
                f"{self.seconds:.1f}s)")


def score_vectors(paper_vecs: np.ndarray, query_vecs: np.ndarray, queries, papers: Sequence[Paper],
                  calibration: "Calibration | None" = None) -> tuple[np.ndarray, np.ndarray]:
    """(prefilter score, best topic index) of each paper of ONE day, from its vectors: the zero-shot score
    centred on these papers, or the calibration's probability when one is given. rank_papers and the
    backfill's per-day stage both rank through here."""
    from .rank import zero_shot
    zs, topic_idx = zero_shot(paper_vecs, query_vecs, queries)
    score = calibration.score(paper_vecs, zs, papers) if calibration is not None else zs.astype(np.float64)
    return np.asarray(score, dtype=np.float64), topic_idx


def keep_mask(score: np.ndarray, k: int) -> np.ndarray:
    """True for the k best scores (ties: the earlier paper first, as rank_papers orders them)."""
    order = np.argsort(-np.asarray(score), kind="stable")
    mask = np.zeros(len(order), dtype=bool)
    mask[order[:k]] = True
    return mask


def rank_papers(papers: Sequence[Paper], prompts: "PromptSet | None" = None, *,
                embedder: "str | Embedder" = "minilm", keep: float | None = 0.4, top: int | None = None,
                min_keep: int = 20, calibration: "Calibration | str | Path | None" = None,
                store: "Store | None" = None, progress: Progress | None = None,
                rules: "DayRules | None" = None) -> PrefilterResult:
    """Every paper, sorted by descending prefilter_score; `kept` marks the top `top` papers, or the top
    `keep` fraction (never fewer than min(len(papers), min_keep)), of the papers no exclusion rule matches.
    `rules` (prefilter.rules): an excluded paper is never kept (its `rule` says which rule); a pinned
    author's paper is always kept (rule "pin"), besides the top part."""
    from ..prompts import load_prompts
    from .calibrate import Calibration
    from .embed import Embedder
    from .rank import build_queries, n_keep

    t0 = time.perf_counter()
    prompts = prompts if prompts is not None else load_prompts()
    qs = build_queries(prompts)
    k = n_keep(len(papers), keep=keep, top=top, min_keep=min_keep)     # validates keep/top before any work
    excluded = {p.id: r.text for p in papers if rules and rules.exclusions and (r := rules.exclusions.match(p))}
    pinned = {p.id for p in papers if rules and rules.pins and rules.pins.match(p)}
    if excluded:
        k = n_keep(len(papers) - len(excluded), keep=keep, top=top, min_keep=min_keep)
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
    order = np.argsort(-score, kind="stable")
    ranked, j = [], 0
    for i in order:
        p = papers[i]
        r = Ranked(paper=p, prefilter_score=float(score[i]), kept=False, topic=qs.topic_names[int(topic_idx[i])])
        if p.id in excluded:
            r.rule = f"exclude:{excluded[p.id]}"
        else:
            r.kept = j < k or p.id in pinned
            r.rule = "pin" if p.id in pinned else ""
            j += 1
        ranked.append(r)
    timings["score"] = time.perf_counter() - t
    return PrefilterResult(ranked, emb.key, calibrated=cal is not None, embedded=emb.texts_encoded - before,
                           model_loaded=emb.loaded, seconds=time.perf_counter() - t0, timings=timings)
