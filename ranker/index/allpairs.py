"""Every paper's nearest papers at once (the static site's "Similar papers"), from the exact kind of index.

Searched from scratch that is every paper against every paper: the square of the corpus (38.5 s of a year's site
build). The lists are kept in a file beside the index (Store.index_dir/<embedder>-similar.npz) with what they were
searched over: how many rows, and a digest of those rows' ids and vectors. The next build, finding those rows
unchanged at the head of the index, searches only what is new: the new papers against every row, and every
kept list against the new rows (merged in: exact_topk's one total order, the higher score then the lower row,
makes that the same top k as a search of every row). Anything else (another embedder, a revised paper's row
dropped, a rebuilt or another store's index, another k, a file missing or damaged) searches every paper again.
"""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import numpy as np

from ..errors import RankerError
from ..io import atomic_write
from . import kinds as K
from .corpus import CorpusIndex, Hit
from .kinds import exact_scores as _scores

FORMAT = 1


def cache_path(idx: CorpusIndex) -> Path:
    return idx.dir.parent / f"{idx.dir.name}-similar.npz"


def nearest_all(idx: CorpusIndex, ids, k: int, *, keep: bool = True,
                counts: dict | None = None) -> dict[str, list[Hit]] | None:
    """The k nearest rows of each paper of `ids` the index holds (itself among them), best first; None for
    the approximate kind (search it as any query). `keep`: read and write the kept lists. `counts["compared"]`
    adds up the (paper, row) scores computed."""
    got = idx.exact_rows()
    if got is None:
        return None
    vecs, row_ids = got
    n = len(row_ids)
    pos = {pid: r for r, pid in enumerate(row_ids)}
    queries = [i for i in dict.fromkeys(ids) if i in pos]
    hid, hvec = hashlib.sha1(), hashlib.sha1()
    old = _read(cache_path(idx), idx.embedder, k) if keep and len(pos) == n else None
    if old is not None:
        n_old = old["n"]
        if n_old <= n:
            hid.update("\n".join(row_ids[:n_old]).encode("utf-8"))
            hvec.update(memoryview(np.ascontiguousarray(vecs[:n_old])))     # no copy of the matrix to hash it
        if n_old > n or hid.hexdigest() + hvec.hexdigest() + _kernel(vecs.shape[1]) != old["digest"]:
            old, hid, hvec, n_old = None, hashlib.sha1(), hashlib.sha1(), 0
    else:
        n_old = 0
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    rows = np.full((len(queries), k), -1, dtype=np.int64)
    known = {q: j for j, q in enumerate(old["queries"])} if old is not None else {}
    kept = [j for j, q in enumerate(queries) if q in known]
    fresh = [j for j, q in enumerate(queries) if q not in known]
    compared = 0
    if kept:
        at = [known[queries[j]] for j in kept]
        a = (old["scores"][at], old["rows"][at])
        if n > n_old:
            b = K.exact_topk(vecs[n_old:], vecs[[pos[queries[j]] for j in kept]], k, first_row=n_old)
            a = K.merge_topk(a, b, k)
            compared += len(kept) * (n - n_old)
        scores[kept], rows[kept] = a
    if fresh:
        scores[fresh], rows[fresh] = K.exact_topk(vecs, vecs[[pos[queries[j]] for j in fresh]], k)
        compared += len(fresh) * n
    if counts is not None:
        counts["compared"] = counts.get("compared", 0) + compared
    if keep and len(pos) == n and not (old is not None and n == n_old and not fresh):
        # (nothing new: the file holds these lists already, and is not rewritten, 13 MB fsynced at 73k papers)
        if n > n_old:
            hid.update(("\n" if n_old else "").encode() + "\n".join(row_ids[n_old:]).encode("utf-8"))
            hvec.update(memoryview(np.ascontiguousarray(vecs[n_old:])))
        _write(cache_path(idx), idx.embedder, k, n, hid.hexdigest() + hvec.hexdigest() + _kernel(vecs.shape[1]),
               queries, scores, rows)
    # a score of -inf is a vector that is not finite (exact_scores): a damaged stored vector is no paper's
    # neighbour, and a paper whose own vector is damaged has none
    return {q: [Hit(row_ids[r], float(s)) for s, r in zip(scores[j], rows[j]) if r >= 0 and s > -np.inf]
            for j, q in enumerate(queries)}


def _kernel(dim: int) -> str:
    """A digest of exact_scores over fixed random vectors: lists kept by another machine's BLAS (a store copied
    over, numpy upgraded) may sum in another order, and are not merged with this one's scores."""
    rng = np.random.default_rng(20251206)
    v = rng.standard_normal((K.CHUNK, dim)).astype(np.float32)
    return hashlib.sha1(_scores(v, v[:K.BLOCK]).tobytes()).hexdigest()[:16]


def _read(path: Path, embedder: str, k: int) -> dict | None:
    """The kept lists, or None when there are none for this embedder and k (or the file is damaged)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            got = {name: z[name] for name in ("format", "embedder", "k", "n", "digest", "queries", "scores",
                                              "rows")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    try:
        if (int(got["format"]) != FORMAT or str(got["embedder"]) != embedder or int(got["k"]) != k
                or got["scores"].shape != (len(got["queries"]), k) or got["rows"].shape != got["scores"].shape
                or got["scores"].dtype != np.float32):
            return None
        n = int(got["n"])
        if len(got["rows"]) and (got["rows"].max() >= n or got["rows"].min() < -1):
            return None
    except (ValueError, TypeError):
        return None
    return {"n": n, "digest": str(got["digest"]), "queries": [str(q) for q in got["queries"]],
            "scores": got["scores"], "rows": got["rows"].astype(np.int64)}


def _write(path: Path, embedder: str, k: int, n: int, digest: str, queries, scores, rows) -> None:
    buf = io.BytesIO()
    np.savez(buf, format=np.int64(FORMAT), embedder=np.str_(embedder), k=np.int64(k), n=np.int64(n),
             digest=np.str_(digest), queries=np.array(queries, dtype=str), scores=scores,
             rows=rows.astype(np.int32))
    try:
        atomic_write(path, buf.getvalue())
    except (RankerError, OSError):   # read-only media, a full disk (atomic_write says so as an InputError): the
        pass                         # lists computed are kept for this build, and the next searches every paper again
