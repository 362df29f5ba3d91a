"""A FAISS index over every paper vector in the store, for "papers most similar to this query/topic".

Vectors are normalised, so inner product = cosine. A corpus below APPROX_THRESHOLD vectors gets an exact flat
index (a day, a few months); above it an inverted-file index (IVF: ~sqrt(n) lists, trained on a sample of the
corpus), whose search visits only the lists nearest the query. The index and its id map are persisted under
a directory (the store's index_dir: faiss/ beside the database) as <embedder-slug>.index / .ids.json and
brought up to date with the store on `sync`: new papers are added; a changed or removed vector rebuilds it.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from ..errors import InputError, MissingDependency
from ..io import atomic_write
from .embed import QUERY_PREFIX, Embedder, slug

if TYPE_CHECKING:
    from ..store import Store

APPROX_THRESHOLD = 100_000


def _faiss():
    try:
        import faiss
    except ImportError:
        raise MissingDependency("faiss-cpu", "", "the similarity index") from None
    return faiss


@dataclass
class Hit:
    id: str
    score: float


def build(vectors: np.ndarray, *, approximate: bool | None = None):
    """A FAISS index holding `vectors` (rows normalised, float32), exact below APPROX_THRESHOLD rows."""
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, dim = vectors.shape
    if approximate is None:
        approximate = n >= APPROX_THRESHOLD
    if not approximate:
        index = faiss.IndexFlatIP(dim)
    else:
        # about sqrt(n) lists, trained on 40 vectors a list (faiss's floor for stable centroids); a search
        # visits 1/16 of the lists, which keeps recall of the true nearest neighbours high
        nlist = int(min(65536, max(16, math.sqrt(n))))
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        n_train = min(n, 40 * nlist)
        sample = vectors[np.sort(rng.choice(n, size=n_train, replace=False))] if n > n_train else vectors
        index.train(sample)
        index.nprobe = max(8, nlist // 16)
    for i in range(0, n, 100_000):
        index.add(vectors[i:i + 100_000])
    return index


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows) arrays of shape (len(queries), k); rows of -1 mean fewer than k vectors."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    k = max(1, min(k, index.ntotal)) if index.ntotal else 1
    return index.search(q, k)


def _iter_store(store: "Store", embedder: str, batch: int = 20_000) -> Iterator[list[tuple[str, str, bytes, int]]]:
    # Read-only scan of the store's embeddings table, paper vectors only (queries share the table).
    cur = store.conn.execute("SELECT paper_id, text_hash, vector, dim FROM embeddings WHERE embedder=? "
                             "AND paper_id NOT LIKE ? ORDER BY paper_id", (embedder, QUERY_PREFIX + "%"))
    while True:
        rows = cur.fetchmany(batch)
        if not rows:
            return
        yield rows


class CorpusIndex:
    """The persisted index of one embedder's paper vectors."""

    def __init__(self, embedder: str, directory: str | Path):
        self.embedder = embedder
        self.dir = Path(directory)
        stem = slug(embedder)
        self.index_path = self.dir / f"{stem}.index"
        self.ids_path = self.dir / f"{stem}.ids.json"
        self.index = None
        self.ids: list[str] = []
        self.hashes: list[str] = []

    def __len__(self) -> int:
        return len(self.ids)

    # ------------------------------------------------------------------ persistence
    def load(self) -> bool:
        if not (self.index_path.exists() and self.ids_path.exists()):
            return False
        faiss = _faiss()
        try:
            meta = json.loads(self.ids_path.read_text(encoding="utf-8"))
            index = faiss.read_index(str(self.index_path))
        except (OSError, ValueError, RuntimeError):
            return False            # unreadable: the caller rebuilds it from the store
        if meta.get("embedder") != self.embedder or index.ntotal != len(meta.get("ids", [])):
            return False
        self.index, self.ids, self.hashes = index, meta["ids"], meta["hashes"]
        return True

    def save(self) -> None:
        faiss = _faiss()
        atomic_write(self.index_path, faiss.serialize_index(self.index).tobytes())
        atomic_write(self.ids_path, json.dumps({"embedder": self.embedder, "ids": self.ids, "hashes": self.hashes}))

    # ------------------------------------------------------------------ keeping up with the store
    def sync(self, store: "Store", *, save: bool = True) -> "CorpusIndex":
        """Bring the index up to the store's vectors: add new papers, rebuild if any vector changed."""
        if self.index is None:
            self.load()
        known = dict(zip(self.ids, self.hashes))
        new_ids, new_hashes, new_vecs = [], [], []
        seen = 0
        rebuild = False
        for rows in _iter_store(store, self.embedder):
            for pid, th, blob, dim in rows:
                seen += 1
                old = known.get(pid)
                if old is None:
                    new_ids.append(pid)
                    new_hashes.append(th)
                    new_vecs.append(np.frombuffer(blob, dtype=np.float32, count=dim))
                elif old != th:
                    rebuild = True
        if seen != len(known) + len(new_ids):
            rebuild = True               # vectors were removed from the store
        crossing = (self.index is not None and len(self.ids) < APPROX_THRESHOLD <= seen)
        if rebuild or crossing or self.index is None:
            return self._rebuild(store, save=save)
        if new_ids:
            self.index.add(np.ascontiguousarray(np.stack(new_vecs), dtype=np.float32))
            self.ids += new_ids
            self.hashes += new_hashes
            if save:
                self.save()
        return self

    def _rebuild(self, store: "Store", *, save: bool) -> "CorpusIndex":
        ids, hashes, vecs = [], [], []
        for rows in _iter_store(store, self.embedder):
            for pid, th, blob, dim in rows:
                ids.append(pid)
                hashes.append(th)
                vecs.append(np.frombuffer(blob, dtype=np.float32, count=dim))
        if not vecs:
            self.index, self.ids, self.hashes = None, [], []
            return self
        self.index = build(np.stack(vecs))
        self.ids, self.hashes = ids, hashes
        if save:
            self.save()
        return self

    # ------------------------------------------------------------------ queries
    def search(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """For each query vector, the k most similar papers, best first."""
        if self.index is None or not self.ids:
            return [[] for _ in range(len(np.atleast_2d(queries)))]
        if np.atleast_2d(queries).shape[1] != self.index.d:
            raise InputError(f"query vectors have {np.atleast_2d(queries).shape[1]} dimensions, the index "
                             f"{self.index.d}", where=str(self.index_path))
        scores, rows = search(self.index, queries, k)
        return [[Hit(self.ids[r], float(s)) for s, r in zip(srow, rrow) if r >= 0]
                for srow, rrow in zip(scores, rows)]


def similar_papers(texts: Sequence[str], store: "Store", *, embedder: str | Embedder = "minilm", k: int = 10,
                   index_dir: str | Path | None = None) -> list[list[Hit]]:
    """The k stored papers most similar to each text (a topic description, a query, a title)."""
    emb = embedder if isinstance(embedder, Embedder) else Embedder(embedder)
    idx = CorpusIndex(emb.key, index_dir or store.index_dir).sync(store)
    if not idx.ids:
        return [[] for _ in texts]
    return idx.search(emb.embed_queries(texts, store), k)
