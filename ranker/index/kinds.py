"""The two kinds of corpus index, and when each is used.

Vectors are L2-normalised float32, so inner product = cosine.

- "flat" (exact): below APPROX_THRESHOLD vectors. The vectors are a plain array; a query block is one matrix
  product against it (faster here than a flat FAISS index, and no FAISS needed for a small corpus).
- "ivf" (FAISS IVF-Flat, approximate): from APPROX_THRESHOLD vectors on. k-means cuts the space into nlist cells
  (nlist = 4 * sqrt(n) when trained); a vector is stored, uncompressed, in the list of its nearest centroid, and
  a query scans only the NPROBE lists nearest to it. New vectors are added to the trained lists, no retraining;
  the file is memory-mapped, so opening it costs nothing and a query reads only the lists it probes.

Why IVF-Flat and not HNSW (scripts/bench_index.py, 1M 384-d vectors drawn from a mixture fit to real MiniLM
vectors, 200 fresh queries, k=10, 2 CPU cores): both reach recall@10 >= 0.95 far inside the 20 ms target (IVF
nlist 4000 / nprobe 32: recall 0.986, p95 1.41 ms; HNSW M=32 / efSearch 64: recall 0.984, p95 0.53 ms). But
each command is a new process that opens the index: the IVF opens and answers a first query in under 5 ms
mapped, the HNSW graph takes 0.88 s to open even mapped. The IVF also builds 5x faster (26 s against 136 s),
adds a 1,000-paper day in 0.011 s against 0.219 s, and is 250 MB smaller.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..errors import MissingDependency

APPROX_THRESHOLD = 100_000       # from this many vectors on, the approximate kind
NPROBE = 32                      # lists a query scans (recall@10 0.99 at 100k and at 1M in the benchmark)
LISTS_PER_SQRT = 4               # nlist = 4 * sqrt(n)
TRAIN_PER_LIST = 40              # training vectors per list (faiss warns below 39)
RETRAIN_GROWTH = 4               # retrain the IVF once the corpus is this many times what it was trained on
KINDS = ("flat", "ivf")


def faiss():
    try:
        import faiss as _faiss
    except ImportError:
        raise MissingDependency("faiss-cpu", "", "the corpus index") from None
    return _faiss


def label(kind: str) -> str:
    """How a kind is named to the user."""
    return "exact" if kind == "flat" else "approximate (IVF)"


def kind_for(n: int) -> str:
    return "ivf" if n >= APPROX_THRESHOLD else "flat"


def nlist_for(n: int) -> int:
    return int(min(65536, max(16, LISTS_PER_SQRT * math.sqrt(max(n, 1)))))


def f32(vectors: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.atleast_2d(vectors), dtype=np.float32)


def new_flat(dim: int):
    return faiss().IndexFlatIP(dim)


def finite_rows(vectors: np.ndarray) -> np.ndarray:
    """Which rows hold finite numbers only. A stored vector that does not (a NaN or an infinity: a model that
    broke, a store made by hand or by an older ranker) is no paper's neighbour and has none: every search leaves
    it out, and leaves out what a query that is not finite would find."""
    return np.isfinite(vectors).all(axis=1) if vectors.ndim == 2 else np.isfinite(vectors).all(keepdims=True)


def for_faiss(vectors: np.ndarray) -> np.ndarray:
    """float32 rows for a FAISS index, a row that is not finite made all NaN: FAISS files such a row in no list,
    so it is never found (an infinity scored +inf against some queries and topped their lists), and a NaN query
    finds nothing."""
    v = f32(vectors)
    bad = ~finite_rows(v)
    if bad.any():
        v = v.copy()
        v[bad] = np.nan
    return v


def train_ivf(sample: np.ndarray, nlist: int, nprobe: int | None = None):
    """An empty IVF-Flat index trained on `sample` (about TRAIN_PER_LIST * nlist rows)."""
    fa = faiss()
    sample = f32(sample)
    dim = sample.shape[1]
    nlist = max(1, min(nlist, len(sample)))
    sample = sample[finite_rows(sample)]     # FAISS's k-means refuses a sample holding a NaN or an infinity
    quantizer = fa.IndexFlatIP(dim)
    index = fa.IndexIVFFlat(quantizer, dim, nlist, fa.METRIC_INNER_PRODUCT)
    index.cp.seed = 1234                 # the same sample gives the same centroids
    index.cp.min_points_per_centroid = max(1, min(39, len(sample) // nlist))   # no warning on small tests
    index.train(sample)
    index.nprobe = min(nprobe or NPROBE, nlist)
    return index


def build(vectors: np.ndarray, kind: str | None = None, *, nprobe: int | None = None):
    """An index of `kind` (default: by size) holding `vectors`; the IVF is trained on a spread-out sample."""
    vectors = f32(vectors)
    n, dim = vectors.shape
    kind = kind or kind_for(n)
    if kind == "flat":
        index = new_flat(dim)
    elif kind == "ivf":
        nlist = nlist_for(n)
        n_train = min(n, TRAIN_PER_LIST * nlist)
        step = max(1, n // n_train)
        index = train_ivf(vectors[::step][:n_train], nlist, nprobe)
    else:
        raise ValueError(f"unknown index kind {kind!r}")
    for i in range(0, n, 100_000):
        index.add(for_faiss(vectors[i:i + 100_000]))
    return index


def write_index(index, write: Callable[[bytes], object]) -> None:
    """Serialise a FAISS index through `write`, called with its bytes a piece at a time; an exception `write`
    raises (a full disk) stops it and comes out as itself."""
    fa = faiss()
    fa.write_index(index, fa.PyCallbackIOWriter(write))


def search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, rows), each (len(queries), k); a row of -1 means fewer than k vectors were found (a score that is
    not finite is none found)."""
    q = for_faiss(queries)
    if index.ntotal == 0:
        return (np.full((len(q), k), -np.inf, dtype=np.float32), np.full((len(q), k), -1, dtype=np.int64))
    scores, rows = index.search(q, max(1, k))
    rows[~np.isfinite(scores)] = -1          # an index built before infinities were made NaN (for_faiss)
    return scores, rows


BLOCK = 256                      # queries compared with a flat array at once (256 x 100k floats = 100 MB)


def flat_topk(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner products against a plain array, in query blocks: (scores, rows), best first, rows of
    -1 (score -inf) past the array's end and for a score that is not finite (finite_rows). (One matrix product a
    block: faster here than a flat FAISS index.)"""
    q = f32(queries)
    n = len(vectors)
    k = max(1, k)
    scores = np.full((len(q), k), -np.inf, dtype=np.float32)
    rows = np.full((len(q), k), -1, dtype=np.int64)
    if n == 0:
        return scores, rows
    kk = min(k, n)
    for i in range(0, len(q), BLOCK):
        with np.errstate(invalid="ignore", over="ignore"):       # a stored vector that is not finite
            s = q[i:i + BLOCK] @ vectors.T
        np.copyto(s, -np.inf, where=~np.isfinite(s))       # NaN has no order; +inf would come first
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk] if kk < n else np.tile(np.arange(n), (len(s), 1))
        ts = np.take_along_axis(s, top, 1)
        order = np.argsort(-ts, axis=1, kind="stable")
        scores[i:i + len(s), :kk] = np.take_along_axis(ts, order, 1)
        rows[i:i + len(s), :kk] = np.take_along_axis(top, order, 1)
    rows[scores == -np.inf] = -1
    return scores, rows


def flat_range(vectors: np.ndarray, queries: np.ndarray, min_score: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each query, (scores, rows) of every vector with inner product >= min_score."""
    q = f32(queries)
    out = []
    for i in range(0, len(q), BLOCK):
        with np.errstate(invalid="ignore", over="ignore"):
            s = q[i:i + BLOCK] @ vectors.T if len(vectors) else np.zeros((len(q[i:i + BLOCK]), 0), np.float32)
        for r in s:
            hit = np.flatnonzero((r >= min_score) & np.isfinite(r))
            out.append((r[hit], hit))
    return out


def ivf_range(index, queries: np.ndarray, min_score: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """The same through a FAISS index's range search (inner product above min_score, in the probed lists)."""
    q = f32(queries)
    lims, scores, rows = index.range_search(for_faiss(q), float(min_score))
    out = []
    for i in range(len(q)):
        s, r = scores[lims[i]:lims[i + 1]], rows[lims[i]:lims[i + 1]]
        ok = np.isfinite(s)
        out.append((s[ok], r[ok]))
    return out


CHUNK = 1024                     # vectors compared with a query block at once by exact_scores
TOP_ROWS = 16                    # rows of a block of scores whose top k exact_topk picks at once


def exact_scores(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """queries @ vectors.T (float32), BLOCK queries x CHUNK vectors at a time; a score that is not finite is
    -inf. exact_topk's first pass, which chooses candidates from it: BLAS sums a dot product in an order that
    depends on the matrices' shapes and, on some CPUs, on the pair's place in them, so a score here may differ
    in the last bit from the same pair's in another call (pair_scores does not)."""
    q = f32(queries)
    v = f32(vectors)
    out = np.empty((len(q), len(v)), dtype=np.float32)
    for i in range(0, len(q), BLOCK):
        for j in range(0, len(v), CHUNK):
            with np.errstate(invalid="ignore", over="ignore"):
                out[i:i + BLOCK, j:j + CHUNK] = q[i:i + BLOCK] @ v[j:j + CHUNK].T
    # a damaged stored vector (NaN): its scores rank last, below every real one, by row as -inf ties do; a NaN
    # has no order (argpartition takes any, merge_topk's sort puts it after the padding), so a kept list merged
    # with new rows would differ from a search from scratch
    np.copyto(out, -np.inf, where=~np.isfinite(out))
    return out


def exact_topk(vectors: np.ndarray, queries: np.ndarray, k: int, *, first_row: int = 0,
               ) -> tuple[np.ndarray, np.ndarray]:
    """flat_topk with every score from pair_scores and ties in row order: (scores, rows), best first, the
    higher score first and of equal scores the lower row, rows of -1 (score -inf) past the array's end; rows
    numbered from `first_row` (the rows of `vectors` in a larger array). One total order: the top k of a union
    is the top k of the parts' top k, so a kept list can be merged with new rows' (merge_topk).

    The matrix product (exact_scores) only chooses the candidates: every row within its own pair's error of a
    floor the k-th best score is at or above (_candidates). BLAS sums a dot product in an order that depends on the pair's place in the product on some CPUs
    (OpenBLAS's kernels on an AMD EPYC: a query scored alone and in a block, or two equal vectors in one
    block, differ in the last bit), so the scores kept are the candidates' own, each pair summed alone."""
    q = f32(queries)
    k = max(1, k)
    scores = np.full((len(q), k), -np.inf, dtype=np.float32)
    rows = np.full((len(q), k), -1, dtype=np.int64)
    n = len(vectors)
    if n == 0 or len(q) == 0:
        return scores, rows
    v = f32(vectors)
    kk = min(k, n)
    lengths = np.concatenate([_norms(v[j:j + CHUNK]) for j in range(0, n, CHUNK)])
    for i in range(0, len(q), BLOCK):
        qb = q[i:i + BLOCK]
        s = exact_scores(v, qb)
        if kk < n:
            r, c = _candidates(v, qb, s, kk, lengths)
        else:
            r, c = np.divmod(np.arange(len(s) * n), n)
        got = np.full(len(r), -np.inf, dtype=np.float32)
        real = np.isfinite(s[r, c])
        got[real] = pair_scores(v, qb, r[real], c[real])
        # per query: the higher score first, then the lower row
        order = np.lexsort((c, -got, r))
        r, c, got = r[order], c[order], got[order]
        place = np.arange(len(r)) - np.searchsorted(r, r)
        take = place < kk
        scores[i + r[take], place[take]] = got[take]
        rows[i + r[take], place[take]] = c[take] + first_row
    return scores, rows


def _candidates(v: np.ndarray, qb: np.ndarray, s: np.ndarray, kk: int, lengths: np.ndarray,
                ) -> tuple[np.ndarray, np.ndarray]:
    """(query rows, vector rows) of every pair that may be among each query's kk best by pair_scores, from the
    block's matrix product `s` (exact_scores of qb against v; `lengths` the vectors' _norms). The kk best of a
    row of s, scored by pair_scores, set a floor: their lowest pair score, which the kk-th best pair score of the
    row is at or above. A vector may reach the floor only if its product score is within its own pair's rounding
    (_product_error: this query's norm x its own) below it, so each vector's slack is its own: one outsized
    vector (a norm of 1e4, made by hand) widens the slack of its own pairs, not every pair's (a slack from the
    widest vector made nearly every pair of a block a candidate). Taken a few rows at a time (np.partition
    copies the rows it is given; an outsized vector's first pass keeps up to a few rows x all vectors)."""
    rows, cols = [], []
    widest = float(lengths.max(initial=0.0))
    for j in range(0, len(s), TOP_ROWS):
        part = s[j:j + TOP_ROWS]
        per_length = _product_error(qb.shape[1], _norms(qb[j:j + TOP_ROWS]), 1.0)
        # and what no norm bounds: a product or the kept score rounded to float32's subnormals (2^-149 apart, a
        # vector of a few of them made by hand: its own slack is far under one step)
        tiny = (qb.shape[1] + 1) * 2.0 ** -149
        # one pass over the rows (np.partition, a compare; argpartition and a second pass took a third longer):
        # the kk-th best product `edge`, and every pair within twice the widest vector's slack of it, which holds
        # each row's kk best products (and any tied with the kk-th) and every candidate: a pair score is at
        # least its product less its own slack, so the floor is at least edge less the widest slack
        edge = np.partition(part, part.shape[1] - kk, axis=1)[:, part.shape[1] - kk]
        r, c = np.nonzero(part >= (edge - 2 * (per_length * widest + tiny))[:, None])
        got = part[r, c]
        # the floor: the lowest pair score of those kk best (at least kk vectors, so each row's kk-th best pair
        # score is at or above it); then each pair against its own vector's slack, so an outsized vector (which
        # makes the first pass keep many) widens only its own pairs'
        best = got >= edge[r]
        floor = np.full(len(part), np.inf)
        np.minimum.at(floor, r[best], pair_scores(v, qb[j:j + TOP_ROWS], r[best], c[best]))
        keep = got >= floor[r] - per_length[r] * lengths[c] - tiny
        rows.append(r[keep] + j)
        cols.append(c[keep])
    return np.concatenate(rows), np.concatenate(cols)


PAIRS = 4096                     # query-vector pairs pair_scores sums at once (4096 x 384 float64 = 12.6 MB)


def _norms(vectors: np.ndarray) -> np.ndarray:
    """Each finite vector's length (in float64: no float32 overflow); 0 for one that is not finite (its scores
    are -inf, exact_scores, and choose nothing)."""
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.linalg.norm(vectors.astype(np.float64), axis=1)
    out[~np.isfinite(out)] = 0.0
    return out


def _product_error(dim: int, query_norms: np.ndarray, widest: float | np.ndarray) -> np.ndarray:
    """A bound on a float32 dot product's rounding error, however BLAS orders its sum, widened by one rounding
    for pair_scores' own (its float32 result): gamma(dim + 1) = (dim + 1)u / (1 - (dim + 1)u), u = 2^-24, x
    the norms' product (Cauchy-Schwarz over the sum of the products' magnitudes). dim x u alone is a little
    under gamma(dim), the textbook bound, and left out the kept score's rounding."""
    g = (dim + 1) * 2.0 ** -24
    return g / (1 - g) * query_norms * widest


def pair_scores(vectors: np.ndarray, queries: np.ndarray, query_rows: np.ndarray, vector_rows: np.ndarray,
                ) -> np.ndarray:
    """The inner product of each (queries[query_rows[j]], vectors[vector_rows[j]]), as float32: each pair's
    products in float64 (a product of two float32 is exact there), summed alone, in one order whatever else
    is asked, and rounded once; the same pair gives the same score in any call on any machine. Not finite:
    -inf."""
    out = np.empty(len(query_rows), dtype=np.float32)
    for j in range(0, len(query_rows), PAIRS):
        a = queries[query_rows[j:j + PAIRS]].astype(np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            a *= vectors[vector_rows[j:j + PAIRS]]
            out[j:j + PAIRS] = a.sum(axis=1)
    np.copyto(out, -np.inf, where=~np.isfinite(out))
    return out


def merge_topk(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], k: int,
               ) -> tuple[np.ndarray, np.ndarray]:
    """The top k of two exact_topk results for the same queries (rows of disjoint parts), in its order."""
    s = np.concatenate([a[0], b[0]], axis=1)
    r = np.concatenate([a[1], b[1]], axis=1)
    # best first: higher score, then lower row; the -1 rows of padding (score -inf) last
    key_rows = np.where(r < 0, np.iinfo(np.int64).max, r)
    order = np.lexsort((key_rows, -s), axis=1)[:, :k] if s.size else np.zeros((len(s), 0), dtype=np.int64)
    return np.take_along_axis(s, order, 1), np.take_along_axis(r, order, 1)
