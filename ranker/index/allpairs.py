"""Every paper's nearest papers at once (the static site's "Similar papers"), from the exact kind of index.

Searched from scratch that is every paper against every paper: the square of the corpus (38.5 s of a year's site
build). The lists are kept in a file beside the index (Store.index_dir/<embedder>-similar.npz) with the rows they
were searched over: each row's id and a checksum of its vector. The next build, finding those rows at the head of
the index, searches only what is new: the new papers against every row, and every kept list against the new rows
(merged in: exact_topk's one total order, the higher score then the lower row, makes that the same top k as a
search of every row). A revised paper's old row, dropped by the index (its new vector appended), shifts the rows
after it: they are mapped past it, and only the lists that held it (and the revised paper's own) are searched
again. Anything else (another embedder, a rebuilt or another store's index in another order, another k, another
arithmetic of a pair's score (_kernel), a file missing, damaged or of another format) searches every paper again.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..errors import RankerError
from ..io import atomic_write, read_regular
from . import kinds as K
from .corpus import CorpusIndex, Hit

FORMAT = 3      # 2: each row's id and checksum, for rows dropped (revised papers) to be mapped past; 3: scores summed
                # pair by pair (kinds.pair_scores), not as the matrix product placed them


def cache_path(idx: CorpusIndex) -> Path:
    return idx.dir.parent / f"{idx.dir.name}-similar.npz"


def nearest_all(idx: CorpusIndex, ids, k: int, *, keep: bool = True,
                counts: dict | None = None) -> "NearestLists | None":
    """The k nearest rows of each paper of `ids` the index holds (itself among them), best first; None for
    the approximate kind (search it as any query). `keep`: read and write the kept lists. `counts["compared"]`
    adds up the (paper, row) scores computed, `counts["searched"]` the papers searched against every row."""
    got = idx.exact_rows()
    if got is None:
        return None
    vecs, row_ids = got
    n = len(row_ids)
    pos = {pid: r for r, pid in enumerate(row_ids)}
    queries = [i for i in dict.fromkeys(ids) if i in pos]
    keep = keep and len(pos) == n
    sums = _row_sums(vecs) if keep else None
    old = _read(cache_path(idx), idx.embedder, k) if keep else None
    # rows [0, m) are the kept lists' rows (new_of_old: an old row's number now, -1 for one dropped since); rows
    # [m, n) are new to them
    m, new_of_old = _carried(old, row_ids, sums, _kernel(vecs.shape[1])) if old is not None else (0, None)
    if new_of_old is None:
        old = None
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    known = {q: j for j, q in enumerate(old["queries"])} if old is not None else {}
    kept, at = [], []
    for j, q in enumerate(queries):
        # its vector is the one its list was searched with (its row carried), and no row of its list was dropped:
        # the top k of the rows left are those it holds
        if q in known and pos[q] < m:
            listed = old["rows"][known[q]]
            if (new_of_old[listed[listed >= 0]] >= 0).all():
                kept.append(j)
                at.append(known[q])
    fresh = sorted(set(range(len(queries))) - set(kept))
    compared = 0
    if kept:
        listed = old["rows"][at]
        a = (old["scores"][at], np.where(listed >= 0, new_of_old[np.maximum(listed, 0)], -1))
        if n > m:
            b = K.exact_topk(vecs[m:], vecs[[pos[queries[j]] for j in kept]], k, first_row=m)
            a = K.merge_topk(a, b, k)
            compared += len(kept) * (n - m)
        scores[kept], rows[kept] = a
    if fresh:
        scores[fresh], rows[fresh] = K.exact_topk(vecs, vecs[[pos[queries[j]] for j in fresh]], k)
        compared += len(fresh) * n
    if counts is not None:
        counts["compared"] = counts.get("compared", 0) + compared
        counts["searched"] = counts.get("searched", 0) + len(fresh)
    if keep and not (old is not None and m == n == len(new_of_old) and not fresh):
        # (nothing new: the file holds these lists already, and is not rewritten, 13 MB fsynced at 73k papers)
        _write(cache_path(idx), idx.embedder, k, row_ids, sums, _kernel(vecs.shape[1]), queries, scores, rows)
    return NearestLists(row_ids, queries, scores, rows)


class NearestLists(Mapping):
    """nearest_all's answer: paper id -> its k nearest rows as Hits, best first, each list made when it is asked
    for. Held as the search's arrays (12 bytes a neighbour): made at once, a year's site (73,000 papers, 17 each)
    held 1.2 million Hits, about 200 MB, beside the vectors."""

    def __init__(self, row_ids: list[str], queries: list[str], scores: np.ndarray, rows: np.ndarray):
        self._ids, self._scores, self._rows = row_ids, scores, rows
        self._at = {q: j for j, q in enumerate(queries)}

    def __getitem__(self, pid: str) -> list[Hit]:
        j = self._at[pid]
        # a score of -inf is a vector that is not finite (exact_scores): a damaged stored vector is no paper's
        # neighbour, and a paper whose own vector is damaged has none
        return [Hit(self._ids[r], float(s)) for s, r in zip(self._scores[j], self._rows[j]) if r >= 0 and s > -np.inf]

    def __contains__(self, pid) -> bool:
        return pid in self._at

    def __iter__(self) -> Iterator[str]:
        return iter(self._at)

    def __len__(self) -> int:
        return len(self._at)


def _row_sums(vecs: np.ndarray) -> np.ndarray:
    """A checksum of each row's numbers (hashed in place: no copy of the matrix)."""
    v = np.ascontiguousarray(vecs)
    return np.frombuffer(b"".join(hashlib.blake2b(memoryview(r), digest_size=8).digest() for r in v),
                         dtype=np.uint64) if len(v) else np.zeros(0, dtype=np.uint64)


def _carried(old: dict, row_ids: list[str], sums: np.ndarray, kernel: str) -> tuple[int, np.ndarray | None]:
    """(m, new_of_old): the index's rows [0, m) are the kept lists' rows, in their order, the same ids and
    numbers, less some dropped since (a revised paper's old vector: the index leaves it out and appends its new
    one); new_of_old maps each kept row to its number now, -1 where dropped. (0, None) when the lists cannot be
    used: scored by another arithmetic (kernel), or rows renumbered in another order (a rebuilt index, another
    store's) so that none is carried."""
    if old["kernel"] != kernel:
        return 0, None
    old_ids, old_sums = old["ids"], old["sums"]
    new_of_old = np.full(len(old_ids), -1, dtype=np.int64)
    j, n = 0, len(row_ids)
    for r, pid in enumerate(old_ids):
        # a row of the index as it was kept, or one dropped since: the rows carried keep their order, and those
        # after them are new (appended); a row not found where it should be counts as dropped (lists holding it
        # are searched again), so anything else, rows moved about, is searched again too
        if j < n and row_ids[j] == pid and sums[j] == old_sums[r]:
            new_of_old[r] = j
            j += 1
    if j == 0 and len(old_ids):
        return 0, None
    return j, new_of_old


def _kernel(dim: int) -> str:
    """A digest of the kept scores' arithmetic (kinds.pair_scores) over fixed random vectors: lists kept by
    another machine or another numpy that sums a pair in another order are not merged with this one's scores."""
    rng = np.random.default_rng(20251206)
    v = rng.standard_normal((K.CHUNK, dim)).astype(np.float32)
    pairs = np.arange(K.CHUNK)
    return hashlib.sha1(K.pair_scores(v, v, pairs, pairs[::-1]).tobytes()).hexdigest()[:16]


def _read(path: Path, embedder: str, k: int) -> dict | None:
    """The kept lists, or None when there are none for this embedder and k (or the file is damaged, or of
    another format). Read only from a regular file: a FIFO in its place (np.load opened it) waited for a writer
    for good."""
    try:
        with np.load(io.BytesIO(read_regular(path)), allow_pickle=False) as z:
            got = {name: z[name] for name in ("format", "embedder", "k", "ids", "sums", "kernel", "queries",
                                              "scores", "rows")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    try:
        if (int(got["format"]) != FORMAT or str(got["embedder"]) != embedder or int(got["k"]) != k
                or got["scores"].shape != (len(got["queries"]), k) or got["rows"].shape != got["scores"].shape
                or got["scores"].dtype != np.float32 or got["sums"].dtype != np.uint64
                or got["ids"].dtype != np.uint8):
            return None
        text = got["ids"].tobytes().decode("utf-8")
        ids = text.split("\n") if text else []
        n = len(ids)
        if len(got["sums"]) != n or (len(got["rows"]) and (got["rows"].max() >= n or got["rows"].min() < -1)):
            return None
    except (ValueError, TypeError, UnicodeDecodeError):
        return None
    return {"ids": ids, "sums": got["sums"], "kernel": str(got["kernel"]),
            "queries": [str(q) for q in got["queries"]], "scores": got["scores"],
            "rows": got["rows"].astype(np.int64)}


def _write(path: Path, embedder: str, k: int, row_ids: list[str], sums: np.ndarray, kernel: str, queries, scores,
           rows) -> None:
    buf = io.BytesIO()
    np.savez(buf, format=np.int64(FORMAT), embedder=np.str_(embedder), k=np.int64(k),
             ids=np.frombuffer("\n".join(row_ids).encode("utf-8"), dtype=np.uint8), sums=sums,
             kernel=np.str_(kernel), queries=np.array(queries, dtype=str), scores=scores,
             rows=rows.astype(np.int32))
    try:
        atomic_write(path, buf.getvalue(), own_name=True)
    except (RankerError, OSError):   # read-only media, a full disk (atomic_write says so as an InputError): the
        pass                         # lists computed are kept for this build, and the next searches every paper again
