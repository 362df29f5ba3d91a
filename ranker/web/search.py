"""Search for the pages: words (the store's full-text index) or meaning (the query embedded like the papers,
stored vectors ranked by cosine), and similar papers from the corpus index when there is one."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import numpy as np

from ..errors import RankerError

if TYPE_CHECKING:
    from ..prefilter.embed import Embedder
    from ..store import Store

MODES = ("auto", "words", "meaning")


class SemanticSearch:
    """Ranks the store's paper vectors of one embedder by cosine to the embedded query. The model loads on the
    first query; the vectors are read once and read again when the store holds more of them."""

    def __init__(self, embedder: "Embedder"):
        """embedder: the one the prefilter uses (same model and token cut), so its stored vectors are found."""
        self.embedder = embedder
        self._lock = threading.Lock()
        self._cache: tuple[int, list[str], np.ndarray] | None = None

    @property
    def key(self) -> str:
        return self.embedder.key

    def available(self, store: "Store") -> bool:
        return store.count_embeddings(self.key) > 0

    def _vectors(self, store: "Store") -> tuple[list[str], np.ndarray]:
        n = store.count_embeddings(self.key)
        with self._lock:
            if self._cache is None or self._cache[0] != n:
                ids, m = store.paper_vectors(self.key)
                self._cache = (n, ids, m)
            return self._cache[1], self._cache[2]

    def search(self, store: "Store", query: str, k: int = 50) -> list[tuple[str, float]]:
        ids, m = self._vectors(store)
        if not ids or not query.strip():
            return []
        q = self.embedder.encode([" ".join(query.split())])[0]
        if q.shape[0] != m.shape[1]:
            return []
        sims = m @ q
        top = np.argsort(-sims, kind="stable")[:k]
        return [(ids[i], float(sims[i])) for i in top]


def search(store: "Store", query: str, mode: str = "auto", semantic: SemanticSearch | None = None,
           limit: int = 50) -> tuple[str, list[str], str]:
    """(the mode used, paper ids best first, a note). auto: by meaning when the store holds vectors of the
    embedder, else by words; by words too when the embedder cannot be loaded here (the note says why)."""
    mode = mode if mode in MODES else "auto"
    note = ""
    if mode != "words" and semantic is not None and semantic.available(store):
        try:
            return "meaning", [i for i, _ in semantic.search(store, query, limit)], ""
        except RankerError as e:              # e.g. vectors copied from a machine that has the model
            note = f"search by meaning is unavailable ({e}); by words instead"
    return "words", store.search_papers(query, limit), note


def corpus_similar(store: "Store", paper_id: str, k: int) -> list[tuple[str, float]]:
    """Papers near `paper_id` from the FAISS corpus index (ranker.index), or nothing when that module or its index
    is not there. Expected: ranker.index.similar(store, paper_id, k=k) -> [(paper id, similarity), ...]."""
    try:
        from ..index import similar as index_similar      # the corpus index, when this ranker has one
    except ImportError:
        return []
    try:
        found = index_similar(store, paper_id, k=k)
    except (RankerError, FileNotFoundError, KeyError):    # no index built yet, or the paper is not in it
        return []
    return [(str(i), float(s)) for i, s in found]
