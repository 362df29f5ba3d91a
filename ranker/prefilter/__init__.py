"""The embedding prefilter: rank a day's papers so the ones GPT-4o would pick sit on top, keep the top part.

Library entry point:
  rank_papers(papers, prompts, *, embedder="minilm", keep=0.4, top=None, min_keep=20, calibration=None,
              store=None, progress=None) -> PrefilterResult
      every paper as a Ranked record, best first, `kept` set by the keep policy; plus what was embedded or
      reused from the store, and timings
Submodules: embed (sentence embeddings + store cache), rank (zero-shot score, keep policy), calibrate (learning
from GPT digest history), history (reading that history), metrics (AUC, recall@k). The corpus index (FAISS)
is ranker.index: steps.prefilter_day adds the day's papers to it and marks re-uploads of earlier papers.
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

__all__ = ["rank_papers", "PrefilterResult"]


@dataclass
class PrefilterResult:
    ranked: list[Ranked]
    embedder: str
    calibrated: bool = False
    embedded: int = 0            # texts that went through the model this run (papers and queries)
    model_loaded: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    vectors: np.ndarray | None = field(default=None, repr=False)   # the papers' vectors, in the input's order

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
    def reused(self) -> int:
        """Paper vectors that came from the store (not embedded this run)."""
        return max(0, len(self.ranked) - self.embedded)

    def summary(self) -> str:
        n = len(self.ranked)
        how = "calibrated" if self.calibrated else "zero-shot"
        cached = "all vectors from the store" if not self.embedded else f"{self.embedded} texts embedded"
        n_re = self.reuploads
        reup = f"; {n_re} re-upload{'s' if n_re != 1 else ''} of earlier papers" if n_re else ""
        return (f"prefilter: kept {self.kept} of {n} papers ({how}, embedder {self.embedder}; {cached}{reup}; "
                f"{self.seconds:.1f}s)")


def rank_papers(papers: Sequence[Paper], prompts: "PromptSet | None" = None, *,
                embedder: "str | Embedder" = "minilm", keep: float | None = 0.4, top: int | None = None,
                min_keep: int = 20, calibration: "Calibration | str | Path | None" = None,
                store: "Store | None" = None, progress: Progress | None = None) -> PrefilterResult:
    """Every paper, sorted by descending prefilter_score; `kept` marks the top `top` papers, or the top
    `keep` fraction (never fewer than min(len(papers), min_keep))."""
    from ..prompts import load_prompts
    from .calibrate import Calibration
    from .embed import Embedder
    from .rank import build_queries, n_keep, zero_shot

    t0 = time.perf_counter()
    prompts = prompts if prompts is not None else load_prompts()
    qs = build_queries(prompts)
    k = n_keep(len(papers), keep=keep, top=top, min_keep=min_keep)     # validates keep/top before any work
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
    qv = emb.embed_queries(qs.texts, store)
    pv = emb.embed_papers(papers, store, progress=progress)
    timings["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    zs, topic_idx = zero_shot(pv, qv, qs)
    score = cal.score(pv, zs, papers) if cal is not None else zs.astype(np.float64)
    order = np.argsort(-score, kind="stable")
    ranked = [Ranked(paper=papers[i], prefilter_score=float(score[i]), kept=j < k,
                     topic=qs.topic_names[int(topic_idx[i])]) for j, i in enumerate(order)]
    timings["score"] = time.perf_counter() - t
    return PrefilterResult(ranked, emb.key, calibrated=cal is not None, embedded=emb.texts_encoded - before,
                           model_loaded=emb.loaded, seconds=time.perf_counter() - t0, timings=timings,
                           vectors=pv)
