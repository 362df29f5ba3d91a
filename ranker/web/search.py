"""Search for the pages: words (the store's full-text index), meaning (the query embedded like the papers,
the nearest papers from the FAISS corpus index) or, by default, both fused; and similar papers from the
same index."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from ..advice import prepare_advice
from ..errors import RankerError
from ..io import arxiv_id

if TYPE_CHECKING:
    from ..index import OpenIndexes
    from ..prefilter.embed import Embedder
    from ..store import Store

MODES = ("auto", "words", "meaning")


class SemanticSearch:
    """Search by meaning: the query is embedded like the papers (the prefilter's embedder, same model and token
    cut, so its vectors are the stored ones) and looked up in the FAISS corpus index (ranker.index), brought up
    to the store first, so a search never reads the store's vectors into memory. The model loads on the first
    query."""

    def __init__(self, embedder: "Embedder", indexes: "OpenIndexes | None" = None):
        self.embedder = embedder
        self.indexes = indexes          # the server's open indexes (None: opened for each search)

    @property
    def key(self) -> str:
        return self.embedder.key

    def available(self, store: "Store") -> bool:
        return store.count_embeddings(self.key) > 0

    def search(self, store: "Store", query: str, k: int = 50) -> list[tuple[str, float]]:
        """[(paper id, cosine), ...], best first. A RankerError when the model cannot be loaded or the index
        cannot be brought up to date here (a read-only folder): search() then falls back to words."""
        from ..index import index_for
        from ..index.corpus import IndexNotWritten
        query = " ".join(query.split())
        if not query:
            return []
        q = np.asarray(self.embedder.encode([query]), dtype=np.float32)
        if not np.isfinite(q).all():       # a broken model: its hits would be any papers at all
            raise RankerError(f"the embedder {self.key} gave numbers that are not finite (NaN or infinity) for the "
                              "query")
        try:
            with index_for(store, self.key, self.indexes) as idx:
                if not len(idx) or q.shape[1] != idx.manifest.dim:
                    return []
                hits = idx.search(q, k)[0]
        except IndexNotWritten as e:                 # serve --read-only: the index is not written beside it
            raise RankerError(f"{e.message}; `ranker index rebuild` writes it") from None
        except (OSError, RuntimeError) as e:         # RuntimeError: what faiss raises
            raise RankerError(f"the corpus index cannot be used here ({e})") from None
        return [(h.id, float(h.score)) for h in hits]


# Reciprocal rank fusion: a paper's place in each list counts 1 / (FUSE_K + place); the usual constant, which
# lets a paper high on one list and absent from the other still come near the top.
FUSE_K = 60


def fuse(*rankings: Sequence[str]) -> list[str]:
    """One ranking of ids from several (reciprocal rank fusion), best first; ties keep the first list's order."""
    score: dict[str, float] = {}
    for ranking in rankings:
        for place, pid in enumerate(ranking, start=1):
            score[pid] = score.get(pid, 0.0) + 1.0 / (FUSE_K + place)
    return sorted(score, key=lambda pid: -score[pid])


def search(store: "Store", query: str, mode: str = "auto", semantic: SemanticSearch | None = None,
           limit: int = 50) -> tuple[str, list[str], str]:
    """(the mode used: words / meaning / both / id, paper ids best first, a note). auto: when the store holds
    vectors of the embedder, the meaning ranking fused with the papers holding every word of the query (a
    paper that names the query's very words is not lost behind a small embedder's near misses), else by
    words; by words too when the embedder cannot be loaded here (the note says why). A query that is an arXiv
    id (with its version, arXiv:, its abs or pdf link) is its paper, in any mode: no title or abstract holds it."""
    mode = mode if mode in MODES else "auto"
    note = ""
    pid = arxiv_id(query)
    if pid is not None:
        return ("id", [pid], "") if store.get_paper(pid) is not None else ("id", [], f"no paper {pid} in the store")
    if mode != "words" and semantic is not None and semantic.available(store):
        try:
            meaning = [i for i, _ in semantic.search(store, query, limit)]
        except RankerError as e:              # e.g. vectors copied from a machine that has the model
            note = f"search by meaning is unavailable ({said_with_advice(e)}); by words instead"
        else:
            words = store.search_papers(query, limit) if mode == "auto" else []
            if not words:
                return "meaning", meaning, ""
            return "both", fuse(meaning, words)[:limit], ""
    return "words", store.search_papers(query, limit), note


def similar_embedders(store: "Store", embedder: str | None = None, known: list[str] | None = None
                      ) -> "Iterator[str]":
    """The embedders whose corpus indexes give a paper its similar papers, in the order tried: `embedder` (the
    configured one, settings.prefilter: embedder and max_tokens, which new papers are embedded with) first, then
    the others, most paper vectors first. They were tried alphabetically: after a switch of embedder, a paper
    stored before it had its panel from the old one, which never holds a newer paper. The others are listed and
    counted only when asked for (a paper page the configured one answers reads no count). `known`, when given,
    gets every embedder holding paper vectors once they are listed (past the first), for the caller to reuse."""
    from ..prefilter.embed import QUERY_PREFIX
    if embedder:
        yield embedder
    listed = store.paper_embedders(QUERY_PREFIX)
    if known is not None:
        known.extend(listed)
    others = [e for e in listed if e != embedder]
    yield from sorted(others, key=lambda e: -store.paper_vector_stats(e, QUERY_PREFIX)[0])


INDEX_UNUSABLE = "the corpus index cannot be used"        # a paper page's note where it lists no similar papers


class Neighbours(list):
    """A paper's similar papers, [(paper id, cosine), ...] best first, and where they come from, for its page to
    say: `embedder`, whose vectors gave them, and `asked`, the embedder asked first (the configured one; None:
    none was, or it holds no paper vector: every panel is another's then, and nothing is said). Each page reads
    them as it is answered: a note printed once at a server's start went stale when vectors of the configured
    embedder were stored while it ran."""

    def __init__(self, items=(), embedder: str | None = None, asked: str | None = None,
                 shown: Callable[[str], str] = str):
        super().__init__(items)
        self.embedder, self.asked, self.shown = embedder, asked, shown

    def keep(self, items, shown: Callable[[str], str] | None = None) -> "Neighbours":
        """Others of the same source (a selection of these); `shown`: how the note names an embedder (the
        static site: as render.public_name, no folder of the building machine)."""
        return Neighbours(items, self.embedder, self.asked, shown or self.shown)

    def note(self) -> str:
        """Why the panel is another embedder's than the configured one's; '' where it is that one's."""
        if not self or not self.asked or self.embedder in (None, self.asked):
            return ""
        return (f"from the vectors of the embedder {self.shown(self.embedder)}: this paper has none of "
                f"{self.shown(self.asked)}, the prefilter's embedder")


# the settings an error here may name, as a page words them: a page has no flag to name, and the setting's own
# key read "prefilter.embedder: model preset ..." though serve was given --embedder
PLAIN_KEYS = {"prefilter.embedder": "the embedder"}


def _plain(key: str) -> str:
    return PLAIN_KEYS.get(key, key)


def said_with_advice(e: BaseException) -> str:
    """An error as a page shows it, the settings it names in words (PLAIN_KEYS), with the command that prepares
    the preset a ModelError found unprepared (the pages are an edge, as the CLI is: ranker.advice words it for
    both)."""
    said = e.render(_plain, _plain) if isinstance(e, RankerError) else str(e)
    return said + prepare_advice(e)


def corpus_similar(store: "Store", paper_id: str, k: int, indexes: "OpenIndexes | None" = None,
                   embedder: str | None = None) -> Neighbours:
    """Papers near `paper_id` from the FAISS corpus index (ranker.index), under the first embedder of
    similar_embedders(store, embedder) that holds the paper's vector: [(paper id, cosine), ...], best first, as
    Neighbours (which embedder's they are). Nothing (and no model loaded) when the store has no vector of the
    paper; the index is brought up to the store first (built the first time). A RankerError saying why when the
    index cannot be used here (a store on read-only media: it cannot be built beside it), for the paper's page to
    say why it has no similar papers."""
    failed: list[str] = []
    got = corpus_similar_many(store, [paper_id], k, indexes=indexes, failed=failed, embedder=embedder).get(paper_id)
    if got is None and failed:
        raise RankerError(f"{INDEX_UNUSABLE} ({failed[0]})")
    return got if got is not None else Neighbours(asked=embedder)


class Panels(Mapping):
    """corpus_similar_many's answer: paper id -> its Neighbours. Those of an exact index's lists of every paper
    (allpairs.nearest_all) are made when a paper's is asked for: made at once, a year's site held every paper's
    (id, cosine) pairs and their Hits together (1.2 million of each at 73,000 papers, about 300 MB)."""

    def __init__(self):
        self.made: dict[str, Neighbours] = {}
        self.lazy: list[tuple[Mapping, int, str, str | None]] = []   # (nearest_all's lists, k, embedder, asked)

    def __getitem__(self, pid: str) -> Neighbours:
        got = self.made.get(pid)
        if got is not None:
            return got
        for every, k, key, asked in self.lazy:
            if pid in every:
                return Neighbours([(h.id, h.score) for h in every[pid] if h.id != pid][:k], key, asked)
        raise KeyError(pid)

    def __contains__(self, pid) -> bool:
        return pid in self.made or any(pid in every for every, *_ in self.lazy)

    def __iter__(self) -> Iterator[str]:
        # an embedder's papers are left out of the next one's (corpus_similar_many): no paper comes twice
        yield from self.made
        for every, *_ in self.lazy:
            yield from every

    def __len__(self) -> int:
        return len(self.made) + sum(len(every) for every, *_ in self.lazy)


def corpus_similar_many(store: "Store", paper_ids: "Sequence[str]", k: int, batch: int = 1024,
                        indexes: "OpenIndexes | None" = None, failed: list[str] | None = None,
                        embedder: str | None = None, keep: bool = False,
                        counts: dict | None = None) -> "Panels":
    """corpus_similar for many papers at once (the static site's paper pages): each embedder's index is opened
    once and searched with the papers' stored vectors in batches (k + 1 nearest: the paper itself left out); a
    paper's panel comes from the first embedder of similar_embedders(store, embedder) holding its vector.
    paper id -> its Neighbours ([(id, cosine), ...] and that embedder); a paper without a stored vector is
    absent. `failed` gets why an index could not be used (a read-only folder beside the database), when one
    could not. `keep`: an exact index keeps the lists beside it, and the next call searches only what is new
    (index.allpairs; the same lists, in the same order); `counts["compared"]` then adds up the (paper, vector)
    scores computed."""
    from ..index import index_for
    from ..index.allpairs import nearest_all
    out = Panels()
    left = list(dict.fromkeys(paper_ids))
    asked, checked, known = embedder, False, []
    for key in similar_embedders(store, embedder, known):
        have = store.embedding_hashes(left, key) if left else {}      # which have a vector (none read yet)
        if not have:
            continue
        if key != embedder and asked and not checked:
            # the configured embedder holds no paper vector at all: every panel is another's, as before, and no
            # page says so (nor do serve and site: panel_embedder_note). `known`: listed already to get here
            checked, asked = True, asked if asked in known else None
        try:
            with index_for(store, key, indexes) as idx:
                ids = [i for i in left if i in have]
                every = nearest_all(idx, ids, k + 1, counts=counts) if keep else None
                if every is not None:
                    out.lazy.append((every, k, key, asked))
                for start in range(0, len(ids) if every is None else 0, batch):
                    # a batch's vectors at a time: a site of a whole backfill's papers holds 1.5 KB a paper else
                    vecs = store.get_vectors(ids[start:start + batch], key)
                    chunk = [i for i in ids[start:start + batch] if i in vecs]
                    if not chunk:
                        continue
                    for pid, hits in zip(chunk, idx.search(np.stack([vecs[i] for i in chunk]), k + 1)):
                        out.made[pid] = Neighbours([(h.id, float(h.score)) for h in hits if h.id != pid][:k],
                                                   key, asked)
        except (RankerError, OSError, RuntimeError) as e:     # an index that cannot be written here: no panels
            if failed is not None:
                failed.append(str(e))
            return out
        left = [i for i in left if i not in have]
        if not left:                    # every panel found: the other embedders are not listed (nor counted)
            break
    return out
