"""What the corpus index is for: similar papers, earlier related papers (novelty context), re-uploads, and the
similarity of new papers to past picks.

Dates are the store's: a paper's day is the first day the store saw it announced (papers.first_seen). "Earlier"
is strictly before a paper's own day, so a paper never sees itself, its own day, or anything later.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ..errors import InputError
from ..io import Warn, parse_arxiv_id
from ..prefilter.embed import QUERY_PREFIX
from ..records import Paper, Ranked
from ..sources.filters import check_day
from .corpus import CorpusIndex, Hit

if TYPE_CHECKING:
    from ..prefilter.embed import Embedder
    from ..store import Store

# Cosine at or above which a paper counts as a re-upload of an earlier one (the same paper under a new id).
# Measured with MiniLM on the 50 shared days (scripts/eval_reuploads.py): the nearest earlier paper of 14,513
# papers never reached 0.99 (highest 0.983: a companion paper sharing most of its abstract, a follow-up), while
# planted re-uploads of 200 real papers sit at 1.0 (same text) or above 0.995 (a sentence added).
REUPLOAD_COSINE = 0.99
# Below that, an earlier paper at least this close whose abstract is nearly word for word the paper's own also
# counts: a few typos fixed, a new title over an old abstract (the only abstract copy on the shared days sat at
# cosine 0.862). "Nearly": difflib's ratio over the abstracts' words >= SAME_TEXT_RATIO; the follow-up at
# 0.983 shares 0.79 of its words.
SAME_ABSTRACT_COSINE = 0.8
SAME_TEXT_RATIO = 0.9
MIN_ABSTRACT = 200               # characters: shorter abstracts (or none) are too generic to call a copy

@dataclass
class Neighbour:
    id: str
    cosine: float
    date: str = ""
    title: str = ""


@dataclass
class Reupload:
    """This paper repeats `id`, announced earlier on `date`: its vector is (nearly) the same, or (same_abstract)
    its abstract is that paper's, word for word."""
    id: str
    date: str
    cosine: float
    same_abstract: bool = False

    def to_dict(self) -> dict:
        d = {"id": self.id, "date": self.date, "cosine": round(self.cosine, 4)}
        if self.same_abstract:
            d["same_abstract"] = True
        return d


@dataclass
class SimilarResult:
    query: str
    paper: Paper | None          # the query paper, when the query was an id
    neighbours: list[Neighbour]
    corpus: int                  # vectors searched
    # the version an id asked for (2504.11459v3), when it is not the stored paper's, or the store does not know
    # which it holds (paper.version None; its vector is that text's): `ranker similar` answered an older
    # version's neighbours as if they were the one asked for's
    other_version: int | None = None


def _embedder(embedder: "str | Embedder") -> "Embedder":
    from ..prefilter.embed import Embedder
    return embedder if isinstance(embedder, Embedder) else Embedder(embedder)


def open_index(store: "Store", embedder: str, warn: Warn | None = None) -> CorpusIndex:
    """The corpus index of `embedder`, brought up to the store."""
    idx = CorpusIndex(store, embedder, warn=warn)
    idx.sync()
    return idx


class OpenIndexes:
    """Corpus indexes held open by a long-lived process (the web server), so a request does not read an index
    from disk again: each use brings the index up to the store it is given (a cheap check when nothing
    changed) and it is read again only when that changed it. One use at a time (a store's connection belongs
    to the thread that opened it, and a request's store is only lent for the block)."""

    def __init__(self):
        self._open: dict[tuple[str, str], CorpusIndex] = {}
        self._lock = threading.Lock()

    @contextmanager
    def use(self, store: "Store", embedder: str) -> Iterator[CorpusIndex]:
        with self._lock:
            key = (str(store.path), embedder)
            idx = self._open.get(key)
            if idx is None:
                idx = self._open[key] = CorpusIndex(store, embedder)
            idx.store = store
            try:
                idx.sync()
                yield idx
            finally:
                idx.store = None


@contextmanager
def index_for(store: "Store", embedder: str, indexes: OpenIndexes | None = None) -> Iterator[CorpusIndex]:
    """The corpus index of `embedder` brought up to the store: held open in `indexes` when given, else opened
    for the block."""
    if indexes is None:
        yield open_index(store, embedder)
    else:
        with indexes.use(store, embedder) as idx:
            yield idx


class _Dates:
    """first_seen of ids, fetched from the store as needed."""

    def __init__(self, store: "Store"):
        self.store = store
        self.known: dict[str, str] = {}

    def fetch(self, ids) -> None:
        missing = [i for i in ids if i not in self.known]
        if missing:
            got = self.store.first_seen(missing)
            for i in missing:
                self.known[i] = got.get(i, "")

    def __getitem__(self, pid: str) -> str:
        return self.known.get(pid, "")


MAX_POOL = 4096       # candidates looked at per query, at most: past that a filter is better served otherwise


def filtered_search(index: CorpusIndex, queries: np.ndarray, k: int, accept: Callable[[int, Hit], bool], *,
                    min_score: float | None = None, dates: _Dates | None = None,
                    max_pool: int = MAX_POOL) -> list[list[Hit]]:
    """For each query, the k best hits that `accept(query number, hit)` lets through. The candidate pool grows
    (x4) until k pass, the pool covers the whole index (or max_pool), or (min_score) the pool's worst hit falls
    below it."""
    q = np.atleast_2d(queries)
    out: list[list[Hit]] = [[] for _ in range(len(q))]
    todo = list(range(len(q)))
    pool = k * 4 + 16
    n = min(len(index), max(max_pool, pool))
    while todo and n:
        pool = min(pool, n)
        hits = index.search(q[todo], pool)
        if dates is not None:
            dates.fetch({h.id for hs in hits for h in hs})
        again = []
        for qi, hs in zip(todo, hits):
            ok = [h for h in hs if accept(qi, h)]
            if min_score is not None:
                ok = [h for h in ok if h.score >= min_score]
            out[qi] = ok[:k]
            exhausted = pool >= n or len(hs) < pool or (min_score is not None and hs and hs[-1].score < min_score)
            if len(ok) < k and not exhausted:
                again.append(qi)
        todo = again
        if pool >= n:
            break
        pool *= 4
    return out


# --------------------------------------------------------------------------- similar
def check_query(query: str, *, k: int = 10, since: str | None = None) -> str:
    """similar()'s arguments checked (InputError naming the one at fault); the query with its spaces folded."""
    if k < 1:
        raise InputError("must be at least 1", key="k")
    query = " ".join(query.split())
    if not query:
        raise InputError("the query is empty: give an arXiv id or some text")
    if since is not None:
        check_day(since, key="since")
    return query


def similar(store: "Store", query: str, *, embedder: "str | Embedder" = "minilm", k: int = 10,
            since: str | None = None, warn: Warn | None = None) -> SimilarResult:
    """The k stored papers nearest to `query`: an arXiv id the store knows (the paper itself left out) or any
    text (a title, a topic, a question). `since` (YYYY-MM-DD) keeps papers first announced on or after it.
    An id's vector comes from the store, so no model is loaded; text is embedded (the query is cached)."""
    query = check_query(query, k=k, since=since)
    key = embedder.key if not isinstance(embedder, str) else _embedder(embedder).key
    parsed = parse_arxiv_id(query)
    pid, asked = parsed if parsed else (None, None)
    paper = None
    cache = None if store.read_only else store        # a read-only database: embedded, not stored
    if pid is not None:
        paper = store.get_paper(pid)
        vec = store.get_vectors([pid], key).get(pid)
        if vec is None:        # none stored, or one that is not finite (a damaged row: embedded again)
            if paper is None:
                raise InputError("unknown paper: the store has neither its vector nor its text", where=pid)
            vec = _embedder(embedder).embed_papers([paper], cache)[0]
        exclude = {pid}
    else:
        vec = _embedder(embedder).embed_queries([query], cache)[0]
        exclude = set()
    idx = open_index(store, key, warn)          # after the query is known good: an error stays one line
    dates = _Dates(store)

    def accept(_: int, h: Hit) -> bool:
        return h.id not in exclude and (since is None or dates[h.id] >= since)

    hits = filtered_search(idx, vec, k, accept, dates=dates if since else None)[0] if len(idx) else []
    if since is not None and len(hits) < k and len(idx):
        # the filtered search looks at MAX_POOL candidates at most (and the approximate index only at its probed
        # lists): papers since a recent day may lie past them, so those papers are searched exactly instead
        hits = _nearest_seen(store, key, vec, k, [exclude], since=since)[0]
    papers = store.get_papers(h.id for h in hits)
    out = [Neighbour(h.id, h.score, papers[h.id].date if h.id in papers else "",
                     papers[h.id].title if h.id in papers else "") for h in hits]
    other = asked if paper is not None and asked and asked != paper.version else None
    return SimilarResult(query=pid or query, paper=paper, neighbours=out, corpus=len(idx), other_version=other)


def _nearest_seen(store: "Store", key: str, queries: np.ndarray, k: int, exclude: Sequence[set[str]], *,
                  since: str | None = None, before: str | None = None) -> list[list[Hit]]:
    """For each query, the k stored papers nearest to it among those first seen on or after `since` / before
    `before` (leaving out the query's ids in `exclude`), exact: a scan of their vectors from the store."""
    from .corpus import READ_BATCH, _vectors
    from .kinds import f32, flat_topk
    q = f32(queries)
    best: list[list[Hit]] = [[] for _ in range(len(q))]
    spare = max((len(e) for e in exclude), default=0)
    for rows in store.paper_vector_rows(key, QUERY_PREFIX, seen_since=since, seen_before=before, batch=READ_BATCH):
        scores, found = flat_topk(_vectors(rows, q.shape[1], key), q, min(k + spare, len(rows)))
        for j in range(len(q)):
            hs = [Hit(rows[r][1], float(sc)) for sc, r in zip(scores[j], found[j])
                  if r >= 0 and rows[r][1] not in exclude[j]]
            best[j] = sorted(best[j] + hs, key=lambda h: -h.score)[:k]
    return best


# --------------------------------------------------------------------------- earlier papers
def _days(papers: Sequence[Paper], store: "Store") -> list[str]:
    """Each paper's own day: the one it comes with, else the first day the store saw it."""
    known = store.first_seen([p.id for p in papers if not p.date])
    return [p.date or known.get(p.id, "") for p in papers]


def _paper_vectors(papers: Sequence[Paper], store: "Store", embedder: "str | Embedder", key: str) -> np.ndarray:
    have = store.get_vectors([p.id for p in papers], key)
    missing = [p for p in papers if p.id not in have]
    if missing:
        vecs = _embedder(embedder).embed_papers(missing, store)
        have.update({p.id: v for p, v in zip(missing, vecs)})
    return np.stack([have[p.id] for p in papers]) if papers else np.zeros((0, 1), np.float32)


def earlier_neighbours(papers: Sequence[Paper], store: "Store", *, embedder: "str | Embedder" = "minilm",
                       k: int = 5, index: CorpusIndex | None = None,
                       warn: Warn | None = None) -> dict[str, list[Neighbour]]:
    """For each paper, its k nearest papers in the corpus announced strictly BEFORE its own day (never itself,
    never its own day, never later; a paper of unknown day gets none). Vectors come from the store (embedded
    and stored when missing)."""
    if k < 1 or not papers:
        return {p.id: [] for p in papers}
    key = embedder.key if not isinstance(embedder, str) else _embedder(embedder).key
    vecs = _paper_vectors(papers, store, embedder, key)
    idx = index if index is not None else open_index(store, key, warn)
    days = _days(papers, store)
    dates = _Dates(store)

    def accept(i: int, h: Hit) -> bool:
        d = dates[h.id]
        return h.id != papers[i].id and bool(d) and bool(days[i]) and d < days[i]

    todo = [i for i, d in enumerate(days) if d]
    hits = filtered_search(idx, vecs[todo], k, lambda j, h: accept(todo[j], h), dates=dates) if todo else []
    found = dict(zip(todo, hits))
    short: dict[str, list[int]] = {}
    for i in todo:
        if len(found[i]) < k:
            short.setdefault(days[i], []).append(i)
    for day, qs in short.items():
        # the filtered search looks at MAX_POOL candidates at most (and the approximate index only at its probed
        # lists): scoring an old day against a corpus of mostly later papers, the earlier ones may lie past
        # them, so those are searched exactly instead
        for i, hs in zip(qs, _nearest_seen(store, key, vecs[qs], k, [{papers[i].id} for i in qs], before=day)):
            found[i] = hs
            dates.fetch(h.id for h in hs)
    hits = list(found.values())
    meta = store.get_papers({h.id for hs in hits for h in hs})
    out: dict[str, list[Neighbour]] = {}
    for i, p in enumerate(papers):
        out[p.id] = [Neighbour(h.id, h.score, dates[h.id], meta[h.id].title if h.id in meta else "")
                     for h in found.get(i, [])]
    return out


def novelty_context(papers: Sequence[Paper], store: "Store", *, embedder: "str | Embedder" = "minilm", k: int = 5,
                    warn: Warn | None = None) -> dict[str, list[tuple[str, str]]]:
    """For the scoring prompt: each paper's k nearest earlier papers as (day, title), nearest first."""
    near = earlier_neighbours(papers, store, embedder=embedder, k=k, warn=warn)
    return {pid: [(n.date, n.title or n.id) for n in ns] for pid, ns in near.items()}


# --------------------------------------------------------------------------- re-uploads
def _words(text: str) -> list[str]:
    return text.lower().split()


def same_text(a: str, b: str) -> bool:
    """Two abstracts nearly word for word alike (and long enough for that to mean something)."""
    import difflib
    if min(len(a), len(b)) < MIN_ABSTRACT:
        return False
    m = difflib.SequenceMatcher(None, _words(a), _words(b), autojunk=False)
    return m.real_quick_ratio() >= SAME_TEXT_RATIO and m.quick_ratio() >= SAME_TEXT_RATIO \
        and m.ratio() >= SAME_TEXT_RATIO


def find_reuploads(papers: Sequence[Paper], vectors: np.ndarray, index: CorpusIndex, store: "Store", *,
                   threshold: float = REUPLOAD_COSINE) -> dict[str, Reupload]:
    """Papers that repeat an EARLIER paper under another id: their vector is at least `threshold` cosine to
    it (the same title and text, give or take an edit), or, among the nearest earlier papers (cosine >=
    SAME_ABSTRACT_COSINE), one has nearly the same abstract, word for word (typos fixed, a new title over an
    old abstract). Maps the paper's id to the earliest such paper's."""
    if not len(papers) or not len(index):
        return {}
    days = _days(papers, store)
    dates = _Dates(store)
    todo = [i for i, d in enumerate(days) if d]
    if not todo:
        return {}

    def accept(j: int, h: Hit) -> bool:
        i = todo[j]
        d = dates[h.id]
        return h.id != papers[i].id and bool(d) and d < days[i]

    floor = min(threshold, SAME_ABSTRACT_COSINE)
    vecs = np.asarray(vectors)
    hits = []
    for start in range(0, len(todo), 1024):          # a block at a time: the hits of a 30,000-paper batch stay small
        block = todo[start:start + 1024]
        found = index.within(vecs[block], floor)
        dates.fetch({h.id for hs in found for h in hs})
        hits += [[h for h in hs if accept(start + j, h)][:4] for j, hs in enumerate(found)]
    abstracts = {pid: p.abstract for pid, p in
                 store.get_papers({h.id for hs in hits for h in hs if h.score < threshold}).items()}
    out = {}
    for i, hs in zip(todo, hits):
        same = [h for h in hs if h.score >= threshold]
        copied = [] if same else [h for h in hs if same_text(papers[i].abstract, abstracts.get(h.id, ""))]
        pool = same or copied
        if pool:
            first = min(pool, key=lambda h: (dates[h.id], -h.score))
            out[papers[i].id] = Reupload(first.id, dates[first.id], first.score, same_abstract=not same)
    return out


def reupload_notes(ranked: Iterable[Ranked], store: "Store", model: str, prompt_hash: str) -> dict[str, dict]:
    """For the digest: paper id -> what its Ranked.reupload_of says (the earlier id, day, cosine), plus that
    earlier paper's stored RELEVANCE and NOVELTY when the store has them for the same model and prompt hash
    (comparable scores; none otherwise)."""
    notes = {r.paper.id: dict(r.reupload_of) for r in ranked if r.reupload_of}
    if not notes:
        return {}
    scores = store.get_scores({n["id"] for n in notes.values()}, model, prompt_hash)
    for n in notes.values():
        s = scores.get(n["id"])
        if s is not None:
            n.update(RELEVANCE=s.relevance, NOVELTY=s.novelty)
    return notes


# --------------------------------------------------------------------------- a signal for calibration
def pick_similarity(vectors: np.ndarray, past_pick_ids: Sequence[str], store: "Store", *, embedder: str,
                    k: int = 5, exclude: Sequence[str] | None = None) -> np.ndarray:
    """For each row of `vectors`, the mean cosine to its k nearest past picks (k=1: the nearest one's).

    past_pick_ids: papers picked on days before the ones scored (walk-forward: the caller passes only picks it
    may know); their vectors come from the store, under `embedder`. exclude: one id per row of `vectors` (the
    row's own paper), never counted as its own neighbour. Picks are few (tens a day, thousands over years), so
    the search is exact, one matrix product over their vectors alone: exact, and faster than a search of the
    whole corpus index filtered down to them. Rows get 0.0 when no pick has a stored vector."""
    from .kinds import f32, flat_topk
    q = f32(vectors)
    have = store.get_vectors(list(dict.fromkeys(past_pick_ids)), embedder)
    if not have or not len(q):
        return np.zeros(len(q), dtype=np.float64)
    ids = list(have)
    mat = np.stack([have[i] for i in ids])
    if mat.shape[1] != q.shape[1]:
        raise InputError(f"vectors have {q.shape[1]} dimensions, the stored picks {mat.shape[1]}", where=embedder)
    extra = 1 if exclude is not None else 0
    scores, rows = flat_topk(f32(mat), q, min(len(ids), k + extra))
    out = np.zeros(len(q), dtype=np.float64)
    for i in range(len(q)):
        own = exclude[i] if exclude is not None else None
        got = [float(s) for s, r in zip(scores[i], rows[i]) if r >= 0 and ids[r] != own][:k]
        out[i] = float(np.mean(got)) if got else 0.0
    return out


def past_pick_similarity(papers: Sequence[Paper], picks_by_day: Mapping[str, Sequence[str]], store: "Store", *,
                         embedder: str, k: int = 5) -> np.ndarray:
    """Walk-forward pick_similarity: for each paper, the mean cosine to its k nearest papers picked on days
    strictly BEFORE its own day (picks_by_day: day -> picked ids, e.g. GPT's picks of the history). A pick of
    the paper's own day or later never counts, so a feature built from it can be evaluated day by day without
    leaking the answer. Papers' vectors come from the store (under `embedder`; 0.0 for a paper without one,
    or without an earlier pick)."""
    out = np.zeros(len(papers), dtype=np.float64)
    have = store.get_vectors([p.id for p in papers], embedder)
    days = sorted(picks_by_day)
    by_day: dict[str, list[int]] = {}
    for i, p in enumerate(papers):
        if p.id in have and p.date:
            by_day.setdefault(p.date, []).append(i)
    for day, rows in by_day.items():
        past = [pid for d in days if d < day for pid in picks_by_day[d]]
        if past:
            got = pick_similarity(np.stack([have[papers[i].id] for i in rows]), past, store, embedder=embedder,
                                  k=k, exclude=[papers[i].id for i in rows])
            out[rows] = got
    return out
