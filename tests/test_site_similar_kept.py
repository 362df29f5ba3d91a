"""`ranker site`'s similar papers kept from one build to the next (ranker.index.allpairs): a new day searches its
papers against the corpus and the corpus against its papers, not every paper against every paper (the square of
the corpus: 38.5 s of a year's rebuild), and every page comes out byte for byte as a build from scratch writes it,
ties between equal scores included; a revised paper, another embedder or a damaged file searches all again."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

import webstore
from ranker.index import kinds as K
from ranker.index.allpairs import cache_path
from ranker.index.corpus import CorpusIndex
from ranker.prefilter.embed import embedder_key, paper_text, text_hash
from ranker.store import Store
from ranker.web.site import STATE, build_site
from webstore import EMBEDDER, fill_store

from conftest import python

DAYS = ("2025-04-30", "2025-05-13", "2025-05-15", "2025-06-23", "2025-07-02")


@pytest.fixture
def tied(monkeypatch):
    """Every 4th paper stored with the vector of a paper stored before it (one of an earlier day, when there is
    one): equal scores, whose order a kept list merged with new papers must keep as a search from scratch does."""
    seen: list[np.ndarray] = []
    seed = webstore.seed_vectors

    def seed_tied(store, papers):
        seed(store, papers)
        key = embedder_key(EMBEDDER)
        got = store.get_vectors([p.id for p in papers], key)
        twins = []
        for i, p in enumerate(papers):
            if i % 4 == 3 and seen:
                twins.append((p.id, text_hash(paper_text(p)), seen[(i * 7) % len(seen)]))
        seen.extend(got[p.id] for p in papers if p.id in got)
        store.put_embeddings(twins, key)
    monkeypatch.setattr(webstore, "seed_vectors", seed_tied)


def _files(root) -> dict[str, bytes]:
    """The site's files (not the build's state: its files' stat, which differs from one build to another)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != STATE}


def _scratch(s: Store, out, embedder: str | None = None) -> dict[str, bytes]:
    """A site built from nothing: no folder, no kept lists."""
    for f in s.index_dir.glob("*-similar.npz"):
        f.unlink()
    build_site(s, out, embedder=embedder)
    return _files(out)


def _every_pair(vectors, queries) -> np.ndarray:
    """Every (query, vector) score as exact_topk keeps it (kinds.pair_scores), a matrix of them."""
    r, c = np.divmod(np.arange(len(queries) * len(vectors)), len(vectors))
    return K.pair_scores(vectors, queries, r, c).reshape(len(queries), len(vectors))


def _scored(monkeypatch) -> list[int]:
    """(query, vector) scores computed by the exact searches, added up as they run."""
    n = [0]
    scores, flat = getattr(K, "exact_scores", None), K.flat_topk

    def exact_scores(vectors, queries):
        n[0] += len(vectors) * len(np.atleast_2d(queries))
        return scores(vectors, queries)

    def flat_topk(vectors, queries, k):
        n[0] += len(vectors) * len(np.atleast_2d(queries))
        return flat(vectors, queries, k)
    monkeypatch.setattr(K, "exact_scores", exact_scores, raising=False)
    monkeypatch.setattr(K, "flat_topk", flat_topk)
    return n


def test_a_rebuild_with_kept_similar_papers_writes_what_a_build_from_scratch_writes(tmp_path, tied, monkeypatch):
    db, out = tmp_path / "ranker.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o", days=DAYS[:3], n=60, hostile=False)
    with Store(db) as s:
        build_site(s, out)
    assert any(tmp_path.glob("faiss/*-similar.npz"))                   # the lists kept beside the index
    fill_store(db, tmp_path / "o", days=DAYS[3:4], n=60, hostile=False)
    n = _scored(monkeypatch)
    with Store(db) as s:
        res = build_site(s, out)
        assert n[0] == 60 * 240 + 180 * 60                             # the kept lists were used
        assert any(w.startswith("papers/2505.") for w in res.written)   # old pages' panels name new papers
        assert _files(out) == _scratch(s, tmp_path / "scratch1")

    # a revised paper (its vector stored again with new text: the index drops its old row, shifting the rows after
    # it, and appends the new one): the rows are mapped past the dropped one, and searched again are only the
    # revised paper and the papers whose lists held its old vector, against every row; the others' lists against
    # the one new row (every paper against every paper, 240 x 240, before)
    with Store(db) as s:
        key = embedder_key(EMBEDDER)
        pid = sorted(s.day_paper_ids(DAYS[1]))[5]
        vecs, rows = CorpusIndex(s, key).exact_rows()
        assert len(rows) == 240 and rows.index(pid) < 200              # rows after it shift
        near = K.exact_topk(vecs, vecs, 2 * 8 + 1)[1]                  # the site's lists (k + 1: the paper itself)
        again = {rows[j] for j in range(240) if rows.index(pid) in near[j]} | {pid}
        vec = s.get_vectors([pid], key)[pid]
        s.put_embeddings([(pid, "revised-" + hashlib.sha1(pid.encode()).hexdigest()[:8], -vec)], key)
        n[0] = 0
        build_site(s, out)
        assert 1 < len(again) < 40 and n[0] == len(again) * 240 + (240 - len(again)) * 1
        assert _files(out) == _scratch(s, tmp_path / "scratch2")
        # a second revision, of a paper in the first rows, over these lists: mapped past both dropped rows
        pid = rows[2]
        vec = s.get_vectors([pid], key)[pid]
        s.put_embeddings([(pid, "revised-again", vec[::-1].copy())], key)
        n[0] = 0
        build_site(s, out)
        assert n[0] < 40 * 240
        assert _files(out) == _scratch(s, tmp_path / "scratch2b")

    # another day on kept lists, then a damaged file of kept lists
    fill_store(db, tmp_path / "o", days=DAYS[4:5], n=60, hostile=False)
    with Store(db) as s:
        build_site(s, out)
        assert _files(out) == _scratch(s, tmp_path / "scratch3")
        build_site(s, out)
        for f in tmp_path.glob("faiss/*-similar.npz"):
            f.write_bytes(f.read_bytes()[:100])
        build_site(s, out)
        assert _files(out) == _scratch(s, tmp_path / "scratch4")


def test_a_switched_embedder_does_not_use_the_other_embedders_lists(tmp_path):
    db, out = tmp_path / "ranker.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o", days=DAYS[:2], n=40, hostile=False)
    with Store(db) as s:
        build_site(s, out)
        key = embedder_key(EMBEDDER)
        # the same papers under another embedder: other vectors (a rotation), same ids and row order
        rows = [(pid, th, v) for pid, th, v in _vectors_of(s, key)]
        rng = np.random.default_rng(3)
        rot = np.linalg.qr(rng.normal(size=(16, 16)))[0].astype(np.float32)
        s.put_embeddings([(pid, th, (v @ rot).astype(np.float32)) for pid, th, v in rows], "other-vectors")
        # the first embedder's kept lists, put where the other's would be: refused (built for another embedder)
        idx = CorpusIndex(s, "other-vectors")
        idx.sync()
        cache_path(idx).write_bytes(cache_path(CorpusIndex(s, key)).read_bytes())
        build_site(s, out, embedder="other-vectors")
        assert _files(out) == _scratch(s, tmp_path / "scratch", embedder="other-vectors")


def _vectors_of(s: Store, key: str):
    ids = sorted({i for d in s.days() for i in s.day_paper_ids(d)})
    hashes = s.embedding_hashes(ids, key)
    vecs = s.get_vectors(ids, key)
    return [(i, hashes[i], vecs[i]) for i in ids if i in vecs]


def test_a_new_day_scores_its_papers_against_the_corpus_not_every_paper_against_every_paper(tmp_path,
                                                                                            monkeypatch):
    db, out = tmp_path / "ranker.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o", days=DAYS[:4], n=60, hostile=False)
    n = _scored(monkeypatch)
    with Store(db) as s:
        build_site(s, out)
        corpus = len(CorpusIndex(s, embedder_key(EMBEDDER)).ids())
    first = n[0]
    assert first == corpus * corpus                   # the first build: every paper against every paper
    fill_store(db, tmp_path / "o", days=DAYS[4:5], n=60, hostile=False)
    n[0] = 0
    with Store(db) as s:
        build_site(s, out)
        now = len(CorpusIndex(s, embedder_key(EMBEDDER)).ids())
    new = now - corpus
    assert new == 60
    # the new papers against all, the papers before against the new ones
    assert n[0] == new * now + corpus * new
    assert n[0] < 0.5 * now * now


def test_exact_topk_ranks_ties_by_row_and_merges_as_one_search():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 8)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    vecs = np.concatenate([base, base[::2], base[::3], base[:5]])        # many exact ties
    q = vecs[rng.choice(len(vecs), 30, replace=False)]
    k = 9
    s, r = K.exact_topk(vecs, q, k)
    full = _every_pair(vecs, q)
    for i in range(len(q)):
        want = sorted(range(len(vecs)), key=lambda j: (-full[i, j], j))[:k]
        assert list(r[i]) == want
    for cut in (0, 1, 7, 60, len(vecs) - 1, len(vecs)):
        a = K.exact_topk(vecs[:cut], q, k)
        b = K.exact_topk(vecs[cut:], q, k, first_row=cut)
        ms, mr = K.merge_topk(a, b, k)
        assert (mr == r).all() and (ms == s).all(), cut
    # the same pair scores the same in calls of any shape (a ragged block, one query, a few vectors)
    for rows in ([3], [0, 1, 2], list(range(17))):
        for cols in (slice(0, 1), slice(5, 9), slice(0, None)):
            assert (_every_pair(vecs[cols], q[rows]) == full[rows][:, cols]).all()
            got = K.exact_topk(vecs[cols], q[rows], k)[0]
            assert (got[:, :len(vecs[cols])] == np.sort(full[rows][:, cols], axis=1)[:, ::-1][:, :k]).all()


def test_lists_kept_under_another_blas_are_searched_again(tmp_path, monkeypatch):
    # a store copied to another machine (or numpy upgraded): its BLAS may sum a score in another order, and its
    # kept lists would not merge to what a search from scratch gives there
    from ranker.index import allpairs
    db, out = tmp_path / "ranker.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o", days=DAYS[:2], n=30, hostile=False)
    with Store(db) as s:
        build_site(s, out)
    fill_store(db, tmp_path / "o", days=DAYS[2:3], n=30, hostile=False)
    n = _scored(monkeypatch)
    monkeypatch.setattr(allpairs, "_kernel", lambda dim: "another machine's")
    with Store(db) as s:
        build_site(s, out)
    assert n[0] == 90 * 90


def test_lists_that_cannot_be_kept_still_give_every_page_its_similar_papers(tmp_path, monkeypatch):
    # a store on read-only media (or a full disk) with its index in place: the kept lists cannot be written, and
    # atomic_write says so as an InputError; the panels were computed and must not be lost with the file
    import errno
    import os

    import ranker.io
    db, out = tmp_path / "ranker.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o", days=DAYS[:2], n=30, hostile=False)
    with Store(db) as s:
        build_site(s, out)
        want = _files(out)
        for f in s.index_dir.glob("*-similar.npz"):
            f.unlink()
    real_open = os.open

    def read_only_open(path, flags, *a, **kw):
        if "-similar.npz" in str(path) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *a, **kw)
    monkeypatch.setattr(ranker.io.os, "open", read_only_open)
    with Store(db) as s:
        res = build_site(s, tmp_path / "site2")
        assert not any(s.index_dir.glob("*-similar.npz"))
    assert _files(tmp_path / "site2") == want, res


def test_a_rebuild_with_nothing_new_does_not_rewrite_the_kept_lists(tmp_path, monkeypatch):
    from ranker.index import allpairs
    db, out = tmp_path / "ranker.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o", days=DAYS[:2], n=30, hostile=False)
    with Store(db) as s:
        build_site(s, out)
    writes = []
    real = allpairs.atomic_write
    monkeypatch.setattr(allpairs, "atomic_write", lambda path, data, **k: writes.append(path) or real(path, data, **k))
    n = _scored(monkeypatch)
    with Store(db) as s:
        build_site(s, out)
    assert n[0] == 0 and writes == []                   # the kept lists used as they are, the file left alone
    fill_store(db, tmp_path / "o", days=DAYS[2:3], n=30, hostile=False)
    with Store(db) as s:
        build_site(s, out)
        assert len(writes) == 1 and _files(out) == _scratch(s, tmp_path / "scratch")


def test_a_damaged_vector_ranks_last_and_merges_as_one_search():
    # a NaN stored vector: its scores (and every score of it as a query) have no order; they rank last, as -inf,
    # so kept lists merged with new rows are still what a search of every row gives
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(50, 8)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs[17] = np.nan
    q = vecs[[0, 17, 33]]
    assert (K.exact_scores(vecs, q)[:, 17] == -np.inf).all() and (K.exact_scores(vecs, q)[1] == -np.inf).all()
    for k in (5, 49, 50, 60):
        s, r = K.exact_topk(vecs, q, k)
        assert 17 not in r[[0, 2], :49] and list(r[1, :min(k, 50)]) == list(range(min(k, 50)))
        for cut in (0, 1, 17, 18, 30, 49, 50):
            a = K.exact_topk(vecs[:cut], q, k)
            b = K.exact_topk(vecs[cut:], q, k, first_row=cut)
            ms, mr = K.merge_topk(a, b, k)
            assert (mr == r).all() and (ms == s).all(), (k, cut)


def test_exact_topk_scores_are_the_same_whatever_the_calls_shape_over_many_blocks_and_chunks():
    # more queries than a BLOCK and more vectors than a CHUNK, neither a multiple: every block, every chunk and
    # the last of each; a pair scores the same alone (one query, a few vectors) as in the whole. (The matrix
    # product itself does not, on every CPU: OpenBLAS on an AMD EPYC sums a pair by its place in the block.)
    rng = np.random.default_rng(5)
    v = rng.normal(size=(2 * K.CHUNK + 300, 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    q = v[rng.choice(len(v), K.BLOCK + 100, replace=False)]
    truth = q.astype(np.float64) @ v.T.astype(np.float64)
    assert np.allclose(K.exact_scores(v, q), truth, atol=1e-5)
    full = _every_pair(v, q)
    assert full.shape == (len(q), len(v)) and np.abs(full - truth).max() <= 2 ** -24   # rounded once
    for i in (0, K.BLOCK - 1, K.BLOCK, len(q) - 1):
        assert (_every_pair(v, q[i:i + 1]) == full[i:i + 1]).all(), i
        assert (K.exact_topk(v, q[i:i + 1], 11)[0] == -np.sort(-full[i:i + 1], axis=1)[:, :11]).all(), i
    for a, b in ((0, 7), (K.CHUNK - 3, K.CHUNK + 5), (2 * K.CHUNK + 1, len(v))):
        assert (_every_pair(v[a:b], q) == full[:, a:b]).all(), (a, b)
    k = 11
    s, r = K.exact_topk(v, q, k)
    want = np.lexsort((np.broadcast_to(np.arange(len(v)), full.shape), -full), axis=1)[:, :k]
    assert (r == want).all() and (s == np.take_along_axis(full, want, 1)).all()
    for cut in (K.CHUNK - 1, K.CHUNK + 17):
        ms, mr = K.merge_topk(K.exact_topk(v[:cut], q, k), K.exact_topk(v[cut:], q, k, first_row=cut), k)
        assert (mr == r).all() and (ms == s).all(), cut


def test_the_same_vectors_under_another_embedder_do_not_use_its_lists(tmp_path, monkeypatch):
    # the same vectors (same ids, rows and digest) stored under another embedder key: only the embedder named
    # in the kept file tells the lists apart, and a switched embedder searches every paper again
    db, out = tmp_path / "ranker.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o", days=DAYS[:2], n=40, hostile=False)
    with Store(db) as s:
        build_site(s, out)
        key = embedder_key(EMBEDDER)
        mine = CorpusIndex(s, key)
        order = {pid: r for r, pid in enumerate(mine.ids())}
        s.put_embeddings(sorted(_vectors_of(s, key), key=lambda row: order[row[0]]), "other-vectors")
        idx = CorpusIndex(s, "other-vectors")
        idx.sync()
        va, ia = mine.exact_rows()
        vb, ib = idx.exact_rows()
        assert ia == ib and (va == vb).all()                 # rows the digest cannot tell apart
        cache_path(idx).write_bytes(cache_path(CorpusIndex(s, key)).read_bytes())
        corpus = len(idx.ids())
        n = _scored(monkeypatch)
        build_site(s, out, embedder="other-vectors")
        assert n[0] == corpus * corpus
        n[0] = 0
        build_site(s, out, embedder="other-vectors")        # its own lists, kept by the build before: used
        assert n[0] == 0


def test_papers_whose_stored_vectors_are_not_finite_are_in_no_panel_and_have_none(tmp_path):
    # a NaN or an infinity in a stored vector (an older store, a hand-made one): the site's panels listed the
    # damaged papers at -inf (and an infinity first, at +inf), a damaged paper's own panel was any papers at all,
    # serve's and `ranker similar`'s too. Now the site is the site of a store without those vectors, kept lists
    # and all, serve's panels are the site's, and `ranker similar` of a damaged paper embeds it again
    import shutil

    from ranker.errors import ModelError
    from ranker.index import similar
    from ranker.web.search import corpus_similar
    db, out = tmp_path / "ranker.sqlite3", tmp_path / "site"
    fill_store(db, tmp_path / "o", days=DAYS[:2], n=40, hostile=False)
    key = embedder_key(EMBEDDER)
    with Store(db) as s:
        ids = sorted({i for d in s.days() for i in s.day_paper_ids(d)})
        damaged = {ids[3]: np.nan, ids[41]: np.inf}
        vecs = s.get_vectors(damaged, key)
        rows = []
        for pid, bad in damaged.items():
            v = vecs[pid].copy()
            v[np.argmax(v) if bad == np.inf else slice(None)] = bad     # +inf where it scores +inf most
            rows.append((pid, "damaged", key, len(v), v.astype(np.float32).tobytes()))
        with s.transaction() as c:           # as an older ranker stored them (put_embeddings refuses them now)
            c.executemany("INSERT OR REPLACE INTO embeddings (paper_id, text_hash, embedder, dim, vector) "
                          "VALUES (?,?,?,?,?)", rows)
    clean = tmp_path / "clean.sqlite3"
    shutil.copy(db, clean)
    with Store(clean) as s:
        with s.transaction() as c:
            c.executemany("DELETE FROM embeddings WHERE paper_id=? AND embedder=?", [(p, key) for p in damaged])
        build_site(s, tmp_path / "clean-site")
    with Store(db) as s:
        build_site(s, out)
        assert _files(out) == _files(tmp_path / "clean-site")
        for pid in ids:
            near = corpus_similar(s, pid, 2 * 8, embedder=key)
            assert not (pid in damaged and near) and not {i for i, _ in near} & set(damaged)
            assert all(np.isfinite(c) for _, c in near)
            if pid not in damaged:
                assert [n.id for n in similar(s, pid, embedder=key, k=5).neighbours] == [i for i, _ in near][:5]
        for pid in damaged:
            # a damaged vector is read as none, so the paper is embedded again (not handed back): this store's
            # embedder is vectors alone, with no model to load, so the attempt is what shows it
            with pytest.raises(ModelError, match=f"{EMBEDDER}: no such model folder"):
                similar(s, pid, embedder=key)
    fill_store(db, tmp_path / "o", days=DAYS[2:3], n=40, hostile=False)
    with Store(db) as s:
        build_site(s, out)                                             # on the kept lists
        assert _files(out) == _scratch(s, tmp_path / "scratch")


def test_exact_topk_picks_each_blocks_top_k_a_few_rows_at_a_time():
    """The all-pairs search of a site built from scratch: argpartition over a whole block of scores (BLOCK queries x
    every vector) made a full int64 array of it beside a negated copy, 12 bytes a score beside the block's 4 (the
    site's 643 MB peak at 73,000 papers); a few rows at a time, the same lists."""
    import tracemalloc
    from ranker.index import kinds as K
    rng = np.random.default_rng(11)
    n, dim = 20_000, 8
    v = rng.normal(size=(n, dim)).astype(np.float32)
    q = v[:K.BLOCK]
    tracemalloc.start()
    try:
        scores, rows = K.exact_topk(v, q, 5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    full = _every_pair(v, q)
    want = np.lexsort((np.broadcast_to(np.arange(n), full.shape), -full), axis=1)[:, :5]   # higher, then lower row
    assert (rows == want).all() and (scores == np.take_along_axis(full, want, 1)).all()
    block = K.BLOCK * n * 4                  # the block of scores itself (20 MB here; the peak was 4x it, now 1.3x)
    assert peak < 1.6 * block, f"{peak / 2**20:.1f} MB at the peak, the block {block / 2**20:.1f} MB"


def test_kept_lists_merge_as_one_search_under_a_blas_that_rounds_by_place(monkeypatch):
    # OpenBLAS on an AMD EPYC sums a dot product in an order that depends on the pair's place in the matrix
    # product: a query alone and in a block, or two equal vectors in one block, score a last bit apart, and the
    # site's kept lists merged with a new day's came out other than a search from scratch (pages differed).
    # Here a product that is a last bit off by place, on any machine: the lists must not notice.
    real = K.exact_scores

    def by_place(vectors, queries):
        s = real(vectors, queries)
        i, j = np.indices(s.shape)
        return np.nextafter(s, np.where((i + 2 * j) % 3 == 0, np.inf, -np.inf)).astype(np.float32)
    monkeypatch.setattr(K, "exact_scores", by_place)
    rng = np.random.default_rng(3)
    base = rng.normal(size=(60, 16)).astype(np.float32)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    vecs = np.concatenate([base, base[::3], base[1::4]])                 # equal vectors at other places
    q = vecs[rng.choice(len(vecs), 25, replace=False)]
    k = 7
    s, r = K.exact_topk(vecs, q, k)
    full = _every_pair(vecs, q)
    want = np.lexsort((np.broadcast_to(np.arange(len(vecs)), full.shape), -full), axis=1)[:, :k]
    assert (r == want).all() and (s == np.take_along_axis(full, want, 1)).all()
    for cut in (1, 45, 60, 80):
        ms, mr = K.merge_topk(K.exact_topk(vecs[:cut], q, k), K.exact_topk(vecs[cut:], q, k, first_row=cut), k)
        assert (mr == r).all() and (ms == s).all(), cut
    for i in (0, 13, 24):
        one = K.exact_topk(vecs, q[i:i + 1], k)
        assert (one[1] == r[i:i + 1]).all() and (one[0] == s[i:i + 1]).all(), i


def test_one_outsized_vector_widens_only_its_own_pairs_candidate_slack(monkeypatch):
    # The kept lists' candidates were every pair within 2 x the product's error bound of the k-th best score,
    # the bound taken with the widest stored vector's norm: one vector of norm 1e4 (made by hand, or a model that
    # broke) made nearly every pair of every block a candidate (37 s and 945 MB for a 256-query block of the
    # site). Each pair's slack is now its own vector's: the candidates stay a few per query, the lists as exact,
    # also under a product rounded by place (as OpenBLAS on an AMD EPYC does).
    real, pairs = K.exact_scores, K.pair_scores
    asked = [0]

    def by_place(vectors, queries):
        s = real(vectors, queries)
        i, j = np.indices(s.shape)
        return np.nextafter(s, np.where((i + 2 * j) % 3 == 0, np.inf, -np.inf)).astype(np.float32)

    def counted(vectors, queries, query_rows, vector_rows):
        asked[0] += len(query_rows)
        return pairs(vectors, queries, query_rows, vector_rows)
    rng = np.random.default_rng(5)
    n, dim, k = 3000, 384, 9
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    vecs[7] *= 1e4                                                   # the one outsized vector, among the queries
    q = vecs[:K.BLOCK]
    monkeypatch.setattr(K, "exact_scores", by_place)
    monkeypatch.setattr(K, "pair_scores", counted)
    s, r = K.exact_topk(vecs, q, k)
    monkeypatch.setattr(K, "pair_scores", pairs)
    full = _every_pair(vecs, q)
    want = np.lexsort((np.broadcast_to(np.arange(n), full.shape), -full), axis=1)[:, :k]
    assert (r == want).all() and (s == np.take_along_axis(full, want, 1)).all()
    # each query's k best scored for the floor, then its candidates: a few times k a query, not n (768,000 here)
    assert asked[0] < 4 * k * len(q), f"{asked[0]:,} pairs scored for {len(q)} queries (every pair: {n * len(q):,})"


def test_a_vector_of_subnormal_numbers_is_a_candidate_as_its_products_rounding_may_have_it(monkeypatch):
    # A float32 product below 2^-126 rounds to the subnormals' even steps (2^-149): an error no norm bounds. With
    # each pair's slack its own vector's norm x the query's, a vector of a few such steps (made by hand) had a
    # slack far under one step: a product that summed its score a step or two low (this machine's OpenBLAS did,
    # for 4 of 2000 such vectors: -1 step for +1) left it out of the candidates, and a zero vector was kept in
    # its place.
    real = K.exact_scores
    rng = np.random.default_rng(7)
    dim = 384
    q = rng.normal(size=(1, dim)).astype(np.float32)
    q /= np.linalg.norm(q)
    tiny = np.zeros((1, dim), np.float32)
    j = int(np.argmax(np.abs(q[0])))
    tiny[0, j] = np.sign(q[0, j]) * np.ceil(1 / abs(q[0, j])) * 2.0 ** -149       # a score of a step or so
    vecs = np.concatenate([-q, np.zeros((1, dim), np.float32), tiny])

    def steps_low(vectors, queries):                 # the tiny vector's score two subnormal steps low
        s = real(vectors, queries)
        small = (np.abs(vectors).max(axis=1) < 1e-38) & (np.abs(vectors).max(axis=1) > 0)
        return np.where(small[None, :], s - np.float32(2 * 2.0 ** -149), s).astype(np.float32)
    monkeypatch.setattr(K, "exact_scores", steps_low)
    full = _every_pair(vecs, q)
    assert full[0, 2] > 0 == full[0, 1] and K.exact_scores(vecs, q)[0, 2] < 0
    for k in (1, 2):
        s, r = K.exact_topk(vecs, q, k)
        want = np.lexsort((np.broadcast_to(np.arange(len(vecs)), full.shape), -full), axis=1)[:, :k]
        assert (r == want).all() and (s == np.take_along_axis(full, want, 1)).all(), (k, r, want)


def test_a_fifo_in_the_place_of_the_kept_lists_is_not_read_and_is_replaced(tmp_path):
    """The kept lists (<embedder>-similar.npz beside the index) are a name of the index's own: a FIFO there was
    opened by np.load and `ranker site` waited for a writer for good. Not read (no lists kept: all searched
    again), and the lists written take its name. In a process of its own, with a timeout."""
    import os
    path = tmp_path / "minilm-similar.npz"
    os.mkfifo(path)
    code = ("import sys, numpy as np; from pathlib import Path; from ranker.index.allpairs import _read, _write; "
            "p = Path(sys.argv[1]); print(_read(p, 'minilm', 1)); "
            "_write(p, 'minilm', 1, ['a'], np.zeros(1, np.uint64), 'k', ['a'], np.zeros((1, 1), np.float32), "
            "np.zeros((1, 1), np.int64)); print(sorted(_read(p, 'minilm', 1)))")
    done = python(code, path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "None\n['ids', 'kernel', 'queries', 'rows', 'scores', 'sums']\n"
