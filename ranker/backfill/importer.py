"""`ranker import`: a backfill folder's shards into the store, so the rest of ranker sees the papers.

Ranked rows become papers (with the day they were listed on) and embeddings (under the backfill's embedder key
and text hash: the same cache `ranker prefilter` reads; a row of an older version than the store holds adds only
its day, neither its text nor its vector); score rows become scores and failures under their
(model, prompt hash). Every write is keyed, and a score already stored with the same values is left alone, so
importing twice leaves the database exactly as importing once. A stored score made after the backfill's (a later
run, a newer backfill) is kept; an imported score keeps the time the backfill made it. When the folder was
embedded, the corpus index of its embedder (ranker.index) is then brought up to the store's vectors,
incrementally.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..io import Progress, Warn
from ..records import Failure, Score
from ..store import Store
from . import manifest as mf
from . import shards

CHUNK_FILES = 16            # shards per store transaction


@dataclass
class ImportResult:
    papers: int = 0
    embeddings: int = 0
    scores_new: int = 0
    scores_unchanged: int = 0
    scores_newer_kept: int = 0                   # the store's score was made after the backfill's: kept
    failures: int = 0                            # failures written (new, or of another reason)
    failures_unchanged: int = 0                  # the same failure already stored (an import again)
    shards: int = 0
    not_finite: list = field(default_factory=list)   # papers whose shard vector holds NaN or infinity: not stored
    keys: list = field(default_factory=list)     # (model, prompt_hash) seen
    index: object = None                         # the corpus index's SyncResult (embedded folders), or None


def _same(a: Score, b: Score) -> bool:
    return (a.relevance, a.novelty, a.comment, a.expected_relevance, a.expected_novelty, a.prompt_tokens,
            a.completion_tokens) == (b.relevance, b.novelty, b.comment, b.expected_relevance, b.expected_novelty,
                                     b.prompt_tokens, b.completion_tokens)


def import_backfill(out: str | Path, store: Store, progress: Progress | None = None,
                    warn: Warn | None = None) -> ImportResult:
    """Every shard of the backfill folder `out` into `store` (see the module doc); one run in its runs table.
    An embedded folder's vectors then join the corpus index (a rebuild, or a failure to write the index, is
    one line to `warn`, never an error: the index is derived data)."""
    out = Path(out).expanduser()
    m = mf.load_folder(out)
    embedder = (m.get("pinned") or {}).get("embedder")
    res = ImportResult()
    with store.recording("import", {"folder": str(out)}) as rec:
        try:
            ranked = shards.shard_files(out / shards.RANKED_DIR)
            scored = shards.shard_files(out / shards.SCORES_DIR)
            total = len(ranked) + len(scored)
            for i in range(0, len(ranked), CHUNK_FILES):
                part = ranked[i:i + CHUNK_FILES]
                _import_ranked(part, store, embedder, res)
                res.shards += len(part)
                if progress:
                    progress("import", res.shards, total)
            for i in range(0, len(scored), CHUNK_FILES):
                part = scored[i:i + CHUNK_FILES]
                _import_scores(shards.best_scores(shards.read_table(part, shards.SCORES)), store, rec.id, res)
                res.shards += len(part)
                if progress:
                    progress("import", res.shards, total)
        finally:
            rec.summary = {k: v for k, v in res.__dict__.items() if k not in ("keys", "index")}
    if embedder and res.shards:
        from ..index import update_index
        res.index = update_index(store, embedder, warn=warn)
    return res


def _import_ranked(files: list[Path], store: Store, embedder: str | None, res: ImportResult) -> None:
    """Papers (with their days) and, when the folder was embedded, their vectors under the embedder's key."""
    cols = [f.name for f in shards.PAPER_FIELDS] + (["text_hash", "vector"] if embedder else [])
    t = shards.dedupe(shards.read_table(files, shards.RANKED, cols), ["id", "date"])
    res.papers += store.add_papers(shards.table_papers(t)).new
    if embedder:
        t = t.filter(t.column("vector").is_valid())
        t = t.filter(pa.array(_not_older(t, store), pa.bool_()))
        # a paper ranked on two days has one vector: the one of the text the store kept (add_papers above keeps
        # a later read's text, unversioned too), else the first; one stored already for the same text is not
        # written again (a rewrite moved every row above the corpus index's mark: each import of a resumed
        # backfill wrote the whole folder's vectors again, and the index read them all back)
        t = t.append_column("__other_text", pa.array(_other_text(t, store), pa.bool_()))
        t = shards.dedupe(t, ["id"], [("__other_text", "ascending")]).drop_columns(["__other_text"])
        have = store.embedding_hashes(t.column("id").to_pylist(), embedder) if t.num_rows else {}
        t = t.filter(pa.array([have.get(i) != h for i, h in zip(t.column("id").to_pylist(),
                                                                   t.column("text_hash").to_pylist())], pa.bool_()))
        if t.num_rows:
            vecs = shards.vectors(t)
            ok = np.isfinite(vecs).all(axis=1)
            ids = t.column("id").to_pylist()
            # a shard of a model that broke (written before embed_table refused its numbers): the paper is stored,
            # its vector is not (a NaN one was any paper's neighbour); the next embedding command embeds it
            res.not_finite += [i for i, good in zip(ids, ok) if not good]
            rows = [(i, h, v) for i, h, v, good in zip(ids, t.column("text_hash").to_pylist(), vecs, ok) if good]
            store.put_embeddings(rows, embedder)
            res.embeddings += len(rows)


def _other_text(t, store: Store) -> list[bool]:
    """For each row of a paper on several rows (days), whether its vector is of another text than the one the
    store holds for the paper; False for a paper's only row (nothing to choose: the store's texts are not read)."""
    from collections import Counter

    from ..prefilter.embed import paper_text, text_hash
    ids = t.column("id").to_pylist()
    several = {i for i, n in Counter(ids).items() if n > 1}
    held = {i: text_hash(paper_text(p)) for i, p in store.get_papers(several).items()}
    return [i in several and held.get(i) != h for i, h in zip(ids, t.column("text_hash").to_pylist())]


def _not_older(t, store: Store) -> list[bool]:
    """For each row, False when the store holds a newer version of its paper: the store kept that version's
    text (Store.add_papers), so the row's vector, of the older text, is not stored over that text's."""
    ids, versions = t.column("id").to_pylist(), t.column("version").to_pylist()
    stored = store.versions({i for i, v in zip(ids, versions) if v is not None})   # not the papers' texts
    return [not (v is not None and i in stored and v < stored[i]) for i, v in zip(ids, versions)]


def _import_scores(t, store: Store, run_id: int, res: ImportResult) -> None:
    rows = t.to_pylist()
    by_key: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        by_key.setdefault((r["model"], r["prompt_hash"]), []).append(r)
    for (model, phash), group in by_key.items():
        if (model, phash) not in res.keys:
            res.keys.append((model, phash))
        have = store.get_scores([r["id"] for r in group], model, phash)
        stored_at = store.score_times(have, model, phash)
        failed_ids = [r["id"] for r in group if r["status"] == "failed"]
        failed = {f.arxiv_id: f.reason for f in store.get_failures(model, phash, failed_ids)} if failed_ids else {}
        new, scored_at, texts = [], {}, {}
        same_later: list[Score] = []          # the stored score again, judged later (of newer text, maybe)
        for r in group:
            if r["status"] == "scored":
                s = Score(arxiv_id=r["id"], relevance=r["RELEVANCE"], novelty=r["NOVELTY"], comment=r["COMMENT"] or "",
                          expected_relevance=r["expected_relevance"], expected_novelty=r["expected_novelty"],
                          prompt_tokens=r["prompt_tokens"] or 0, completion_tokens=r["completion_tokens"] or 0)
                later = r["id"] not in have or stored_at[r["id"]] < (r["written_at"] or 0.0)
                if r["id"] in have and _same(have[r["id"]], s):
                    res.scores_unchanged += 1
                    if later and r["text_hash"]:
                        # the same verdict, given later: the text it judged is the one to remember, or a run
                        # over the newer text would score the paper again
                        same_later.append(s)
                        scored_at[r["id"]], texts[r["id"]] = r["written_at"], r["text_hash"]
                elif not later:
                    res.scores_newer_kept += 1
                else:
                    new.append(s)
                    if r["written_at"]:
                        scored_at[r["id"]] = r["written_at"]
                    if r["text_hash"]:
                        texts[r["id"]] = r["text_hash"]
            elif r["status"] == "failed" and r["id"] not in have:
                if failed.get(r["id"]) != (r["error"] or ""):
                    store.put_failure(Failure(r["id"], r["error"] or "", ""), model, phash, run_id)
                    res.failures += 1
                else:               # an import again: counted apart, as a score already stored is
                    res.failures_unchanged += 1
        res.scores_new += store.put_scores(new, model, phash, run_id, scored_at=scored_at, texts=texts)
        if same_later:
            store.put_scores(same_later, model, phash, run_id, scored_at=scored_at, texts=texts)
