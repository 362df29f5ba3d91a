"""The backfill's three steps as plain functions on batches of rows (pyarrow Tables), and the small callable
classes a Ray actor (or the local engine) builds ONCE and then calls batch after batch.

    embed_table(t, embedder)         per batch: text hash + vector of every row
    prefilter_day(t, plan)           per day: the day's prefilter score, kept, topic (one day's rows at once:
                                     the zero-shot score centres each query on the day's median)
    unranked(t)                      no prefilter: every row kept
    score_table(t, backend, ...)     per batch: the kept rows scored by the backend, the others passed on as
                                     not_kept; one SCORES row per input row

They call the library's own building blocks: Embedder.encode and text_hash, prefilter.score_vectors /
keep_day (recall.decide_keep, the user's exclusions and author pins), scoring.score_batch (requests,
validation, one retry) and backends.make_backend.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import BackendError
from ..settings import Settings
from . import shards


# --------------------------------------------------------------------------- embedding
def embed_table(t: pa.Table, embedder) -> pa.Table:
    """Fill text_hash and vector (the embedder's normalised vectors of title + abstract)."""
    from ..prefilter.embed import paper_text, text_hash
    if t.num_rows == 0:
        return t
    papers = shards.table_papers(t)
    texts = [paper_text(p) for p in papers]
    vecs = embedder.check_finite(embedder.encode(texts), [f"paper {p.id}" for p in papers])
    t = t.set_column(t.schema.get_field_index("text_hash"), "text_hash",
                     pa.array([text_hash(x) for x in texts], pa.string()))
    return t.set_column(t.schema.get_field_index("vector"), "vector", shards.vector_column(vecs))


class EmbedStage:
    """One embedder per worker, its model loaded on the first batch."""

    def __init__(self, settings: Settings, device: str | None = None, threads: int | None = None):
        from ..prefilter.embed import Embedder
        self.embedder = Embedder.from_settings(settings, device=device, threads=threads)

    def __call__(self, t: pa.Table) -> pa.Table:
        return embed_table(t, self.embedder)


# --------------------------------------------------------------------------- the per-day prefilter
@dataclass
class PrefilterPlan:
    """Everything the per-day step needs, small enough to ship to every worker."""
    queries: Any                      # prefilter.rank.QuerySet
    query_vectors: np.ndarray
    calibration: Any = None           # prefilter.calibrate.Calibration or None
    keep: float | None = None
    top: int | None = None
    min_keep: int = 20
    recall: float | None = None
    rules: Any = None                 # prefilter.rules.DayRules: the user's exclusions and author pins, or None

    @classmethod
    def build(cls, prompts, embedder, *, keep: float | None = None, top: int | None = None, min_keep: int = 20,
              recall: float | None = None, calibration=None, store=None, rules=None) -> "PrefilterPlan":
        """Query vectors from `embedder` (an Embedder; cached in `store` when given); `calibration` a loaded
        Calibration (prefilter.calibrate), checked against the embedder, or None. The keep rule is the daily
        prefilter's (prefilter.recall.decide_keep: top, keep, recall, or the default), and so are `rules`
        (prefilter.rules.DayRules, as steps.day_rules reads them): an excluded paper is never kept, a pinned
        author's always."""
        from ..prefilter.rank import build_queries
        from ..prefilter.recall import decide_keep
        decide_keep(np.zeros(1), keep=keep, top=top, recall=recall, min_keep=min_keep)  # validates before any work
        if calibration is not None:
            calibration.check_embedder(embedder.key)
        qs = build_queries(prompts)
        qv = embedder.embed_queries(qs.texts, store)
        return cls(qs, np.asarray(qv, dtype=np.float32), calibration, keep, top, min_keep, recall, rules)


def prefilter_day(t: pa.Table, plan: PrefilterPlan, done_ids: frozenset[str] | set[str] = frozenset()) -> pa.Table:
    """Rank one day's rows (all of them, whatever order they come in) and mark kept what `ranker prefilter`
    keeps of the day (the plan's keep rule and the user's exclusions and author pins). Rows whose id is in
    `done_ids` (written by an interrupted earlier run) are ranked with the day, then left out of the result."""
    from ..prefilter import keep_day, score_vectors
    if t.num_rows == 0:
        return t
    days = set(t.column("date").to_pylist())
    if len(days) != 1:
        raise ValueError(f"prefilter_day got rows of {len(days)} days")
    t = shards.dedupe(t, ["id"], [("id", "ascending")])       # one row a paper, in a fixed order
    papers = shards.table_papers(t)
    score, topic_idx = score_vectors(shards.vectors(t), plan.query_vectors, plan.queries, papers,
                                     plan.calibration)
    _, kept, _, _ = keep_day(score, papers, keep=plan.keep, top=plan.top, recall=plan.recall,
                             min_keep=plan.min_keep, calibration=plan.calibration, rules=plan.rules)
    names = plan.queries.topic_names
    for name, arr in (("prefilter_score", pa.array(score, pa.float64())), ("kept", pa.array(kept, pa.bool_())),
                      ("topic", pa.array([names[int(i)] for i in topic_idx], pa.string())),
                      ("day_papers", pa.array(np.full(t.num_rows, t.num_rows, dtype=np.int32)))):
        t = t.set_column(t.schema.get_field_index(name), name, arr)
    if done_ids:
        t = t.filter(pc.invert(pc.is_in(t.column("id"), value_set=pa.array(sorted(done_ids), pa.string()))))
    return shards.conform(t, shards.RANKED)


def unranked(t: pa.Table) -> pa.Table:
    """No prefilter: every row goes on to scoring."""
    t = t.set_column(t.schema.get_field_index("kept"), "kept", pa.array(np.ones(t.num_rows, bool)))
    return shards.conform(t, shards.RANKED)


# --------------------------------------------------------------------------- scoring
class ScoringInterrupted(KeyboardInterrupt):
    """Ctrl-C while score_table's batch was scored, with the SCORES rows settled by then (`rows`): the papers
    whose answers came back before it, and the rows not kept. The engine writes them, so a rerun does not ask
    for those answers again; a paper left without an answer has no row, and the rerun scores it."""

    def __init__(self, rows: pa.Table):
        super().__init__()
        self.rows = rows


def score_table(t: pa.Table, backend, prompts, options, prompt_hash: str) -> pa.Table:
    """One SCORES row per input row: kept rows go to the backend in one batch (scoring.score_batch: the same
    requests, validation and single retry as `ranker score`); the others are passed on as not_kept. Ctrl-C
    is ScoringInterrupted, with the rows settled before it."""
    from ..scoring import BatchInterrupted, score_batch
    n = t.num_rows
    papers = shards.table_papers(t)
    kept = [bool(k) if k is not None else True for k in t.column("kept").to_pylist()]
    stopped = None
    try:
        res = score_batch([p for p, k in zip(papers, kept) if k], backend, prompts, options) if any(kept) else None
    except BatchInterrupted as e:
        res, stopped = e.batch, e
    cols: dict[str, list] = {c: [None] * n for c in ("status", "RELEVANCE", "NOVELTY", "COMMENT",
                                                     "expected_relevance", "expected_novelty",
                                                     "prompt_tokens", "completion_tokens", "error",
                                                     "text_hash")}
    for i, (p, k) in enumerate(zip(papers, kept)):
        if not k:
            cols["status"][i] = "not_kept"
            continue
        s = res.scores.get(p.id)
        if s is not None:
            cols["status"][i] = "scored"
            cols["RELEVANCE"][i], cols["NOVELTY"][i], cols["COMMENT"][i] = s.relevance, s.novelty, s.comment
            cols["expected_relevance"][i], cols["expected_novelty"][i] = s.expected_relevance, s.expected_novelty
            cols["prompt_tokens"][i], cols["completion_tokens"][i] = s.prompt_tokens, s.completion_tokens
            cols["text_hash"][i] = p.scored_text
        else:
            f = res.failures.get(p.id)
            cols["status"][i] = "failed"
            cols["error"][i] = f.reason if f else "no answer for this paper"
    out = {"id": t.column("id"), "date": t.column("date"), "prefilter_score": t.column("prefilter_score"),
           "kept": pa.array(kept, pa.bool_()), "topic": t.column("topic"),
           "model": pa.array([backend.model_name] * n, pa.string()),
           "prompt_hash": pa.array([prompt_hash] * n, pa.string()),
           **{k: pa.array(v, shards.SCORES.field(k).type) for k, v in cols.items()},
           "written_at": pa.array([time.time()] * n, pa.float64())}
    rows = pa.Table.from_pydict({k: out[k] for k in shards.SCORES.names}, schema=shards.SCORES)
    if stopped is not None:
        # a paper the Ctrl-C left without an answer would be a failed row here: it gets none (a half-scored
        # batch is never written as done), nor does a failure the interrupted batch had already made final
        settled = pc.is_in(rows.column("status"), value_set=pa.array(shards.DONE_STATUSES, pa.string()))
        raise ScoringInterrupted(rows.filter(settled)) from stopped
    return rows


class ScoreStage:
    """One backend per worker, built once (a vLLM engine per GPU actor, or per tensor-parallel group)."""

    def __init__(self, settings: Settings, prompts, model_key: str | None = None):
        from ..backends import make_backend
        from ..scoring import ScoreOptions
        self.backend = make_backend(settings)
        if model_key is not None and self.backend.model_name != model_key:
            self.backend.close()          # nobody else can: the stage that holds it is never made
            raise BackendError(f"the {self.backend.name} backend serves '{self.backend.model_name}', not "
                               f"'{model_key}' as planned")
        self.prompts = prompts
        self.options = ScoreOptions.from_settings(settings.scoring)
        self.prompt_hash = self.options.prompt_hash(prompts)

    def __call__(self, t: pa.Table) -> pa.Table:
        return score_table(t, self.backend, self.prompts, self.options, self.prompt_hash)

    def close(self) -> None:
        self.backend.close()
