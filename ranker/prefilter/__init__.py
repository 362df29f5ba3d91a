"""The embedding prefilter: rank a day's papers so the ones GPT-4o would pick sit on top, keep the top part.

Library entry point:
  rank_papers(papers, prompts, *, embedder="minilm", keep=None, top=None, recall=None, min_keep=20,
              calibration=None, store=None, progress=None) -> PrefilterResult
      every paper as a Ranked record, best first, `kept` and `rule` set by the keep policy; plus the keep
      decision (rule, threshold, expected recall), what was embedded or reused from the store, and timings
The keep policy (recall.decide_keep): `top` papers, else the top `keep` fraction, else the smallest top part
expected to hold a share `recall` of GPT's picks; by default recall 0.95 with a calibration, the fraction
recall.DEFAULT_KEEP without one; never fewer than min(n, min_keep).
Submodules: embed (sentence embeddings + store cache), rank (zero-shot score), recall (keep policy), index
(FAISS), calibrate + features (learning from GPT digest history), history (reading that history), walkforward
and metrics (AUC, recall@k, keep95).
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
    keep: dict = field(default_factory=dict)     # recall.KeepDecision.to_dict(): rule, threshold, expected recall

    @property
    def kept(self) -> int:
        return sum(r.kept for r in self.ranked)

    @property
    def kept_papers(self) -> list[Paper]:
        """The papers the keep policy passes on, best first."""
        return [r.paper for r in self.ranked if r.kept]

    @property
    def reused(self) -> int:
        """Paper vectors that came from the store (not embedded this run)."""
        return max(0, len(self.ranked) - self.embedded)

    def summary(self) -> str:
        n = len(self.ranked)
        how = "calibrated" if self.calibrated else "zero-shot"
        cached = "all vectors from the store" if not self.embedded else f"{self.embedded} texts embedded"
        rule = self.keep.get("rule", "")
        if rule in ("recall", "recall-prior"):
            src = "calibration" if rule == "recall" else "zero-shot prior"
            why = f"by recall {self.keep['target_recall']:g} ({src})"
        elif rule == "keep" and self.keep.get("expected_recall") is not None:
            why = f"fixed fraction, expected recall {self.keep['expected_recall']:.2f}"
        else:
            why = {"keep": "fixed fraction", "top": "top K"}.get(rule, rule)
        return (f"prefilter: kept {self.kept} of {n} papers ({why}; {how}, embedder {self.embedder}; {cached}; "
                f"{self.seconds:.1f}s)")


def rank_papers(papers: Sequence[Paper], prompts: "PromptSet | None" = None, *,
                embedder: "str | Embedder" = "minilm", keep: float | None = None, top: int | None = None,
                recall: float | None = None, min_keep: int = 20,
                calibration: "Calibration | str | Path | None" = None,
                store: "Store | None" = None, progress: Progress | None = None) -> PrefilterResult:
    """Every paper, sorted by descending prefilter_score; `kept` marks the papers the keep policy passes on
    (see the module's docstring) and `rule` names the rule that decided each."""
    from ..prompts import load_prompts
    from .calibrate import Calibration
    from .embed import Embedder
    from .rank import build_queries, zero_shot
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
    qv = emb.embed_queries(qs.texts, store)
    pv = emb.embed_papers(papers, store, progress=progress)
    timings["embed"] = time.perf_counter() - t
    t = time.perf_counter()
    zs, topic_idx = zero_shot(pv, qv, qs, [p.title for p in papers])
    score = cal.score(pv, zs, papers) if cal is not None else zs.astype(np.float64)
    order = np.argsort(-score, kind="stable")
    dec = decide_keep(score, keep=keep, top=top, recall=recall, min_keep=min_keep, calibration=cal)
    ranked = [Ranked(paper=papers[i], prefilter_score=float(score[i]), kept=j < dec.n_keep,
                     topic=qs.topic_names[int(topic_idx[i])],
                     rule=dec.rule if j < dec.n_by_rule or j >= dec.n_keep else "min_keep")
              for j, i in enumerate(order)]
    timings["score"] = time.perf_counter() - t
    return PrefilterResult(ranked, emb.key, calibrated=cal is not None, embedded=emb.texts_encoded - before,
                           model_loaded=emb.loaded, seconds=time.perf_counter() - t0, timings=timings,
                           keep=dec.to_dict())
