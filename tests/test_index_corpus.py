"""The corpus index on real SQLite and real FAISS with small synthetic vectors (no model): incremental syncs
against rebuilds, every reason to rebuild, the approximate kind, the files on disk, kill -9 during an update."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest

from ranker.errors import InputError
from ranker.index import CorpusIndex, corpus, files, kinds
from ranker.store import Store

from conftest import REPO, open_files

EMB = "toy"


def unit(m):
    m = np.asarray(m, dtype=np.float32)
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


def put(store, vecs, start, stop, prefix="2501", tag="h"):
    store.put_embeddings(((f"{prefix}.{i:05d}", f"{tag}{i}", vecs[i]) for i in range(start, stop)), EMB)


@pytest.fixture
def vecs():
    return unit(np.random.default_rng(7).normal(size=(3000, 24)))


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "r.sqlite3")
    yield s
    s.close()


def test_two_databases_in_one_folder_keep_an_index_each(tmp_path, vecs):
    """ranker.sqlite3's index is faiss/, any other database's faiss-<its file name>/: an eval's database beside
    the daily one neither rebuilds the daily index nor answers from it."""
    with Store(tmp_path / "ranker.sqlite3") as a, Store(tmp_path / "eval.sqlite3") as b:
        assert (a.index_dir, b.index_dir) == (tmp_path / "faiss", tmp_path / "faiss-eval.sqlite3")
        put(a, vecs, 0, 30)
        put(b, vecs, 30, 50, prefix="2502")
        for _ in range(2):
            ra, rb = CorpusIndex(a, EMB).sync(), CorpusIndex(b, EMB).sync()
            assert (ra.count, rb.count) == (30, 20)
        assert ra.rebuilt is None and rb.rebuilt is None          # the second round: each its own, up to date
        ids_a, _ = ids_and_hits(CorpusIndex(a, EMB), vecs[:1])
        assert len(ids_a) == 30 and all(i.startswith("2501.") for i in ids_a)


def ids_and_hits(idx, queries, k=5):
    idx.load()
    return sorted(idx.ids()), [[(h.id, round(h.score, 5)) for h in hs] for hs in idx.search(queries, k)]


def test_the_index_lives_beside_the_database_and_follows_it(store, vecs):
    put(store, vecs, 0, 40)
    store.put_embeddings([("~query:abc", "q", vecs[2999])], EMB)          # topic vectors are not papers
    notes = []
    idx = CorpusIndex(store, EMB, warn=notes.append)
    res = idx.sync()
    assert idx.dir == store.path.parent / "faiss-r.sqlite3" / EMB and (idx.dir / "manifest.json").exists()
    assert res.count == 40 and res.rebuilt == files.NO_INDEX and len(idx) == 40
    assert notes == ["index built from the store (there was no index yet): 40 vectors, exact"]
    hits = idx.search(vecs[[3]], k=3)[0]
    assert hits[0].id == "2501.00003" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert "~query:abc" not in idx.ids()

    put(store, vecs, 40, 55)
    again = CorpusIndex(store, EMB, warn=notes.append)
    res = again.sync()
    assert (res.count, res.added, res.rebuilt) == (55, 15, None) and len(notes) == 1      # silent
    assert again.search(vecs[[50]], k=1)[0][0].id == "2501.00050"
    assert CorpusIndex(store, EMB).sync().added == 0                                     # nothing new: no-op
    with pytest.raises(InputError, match="dimensions"):
        again.search(np.ones((1, 8), np.float32))


def test_incremental_syncs_equal_a_rebuild(store, vecs):
    queries = unit(vecs[:20] + 0.3 * np.random.default_rng(1).normal(size=(20, 24)))
    for start in range(0, 400, 23):                      # 18 syncs: more segments than MAX_SEGMENTS, merged
        put(store, vecs, start, min(start + 23, 400))
        CorpusIndex(store, EMB).sync()
    store.put_embeddings([("2501.00007", "h7", vecs[7])], EMB)      # the same vector stored again: no change
    inc = CorpusIndex(store, EMB)
    assert inc.sync().rebuilt is None and len(inc) == 400
    assert len(inc.manifest.segments) <= corpus.MAX_SEGMENTS
    got = ids_and_hits(inc, queries)
    inc.rebuild("test")
    want = ids_and_hits(CorpusIndex(store, EMB), queries)
    assert got == want and len(got[0]) == 400


def test_the_approximate_kind_takes_over_and_adds_incrementally(store, vecs, monkeypatch):
    monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 1000)
    monkeypatch.setattr(corpus, "TAIL_MIN", 300)
    monkeypatch.setattr(kinds, "NPROBE", 10_000)        # every list probed: the IVF answers exactly, comparable
    queries = unit(vecs[:30] + 0.3 * np.random.default_rng(2).normal(size=(30, 24)))
    notes = []
    put(store, vecs, 0, 900)
    assert CorpusIndex(store, EMB).sync().kind == "flat"
    put(store, vecs, 900, 1100)
    idx = CorpusIndex(store, EMB, warn=notes.append)
    assert idx.sync().kind == "ivf" and "switching to the approximate IVF index" in notes[-1]
    trained = idx.manifest.base
    assert trained.count == 1100 and trained.trained_on == 1100 and not idx.manifest.segments
    merged = False
    for start in range(1100, 2000, 100):                 # days added to the tail, merged into the trained lists
        put(store, vecs, start, start + 100)
        res = CorpusIndex(store, EMB, warn=notes.append).sync()
        assert res.rebuilt is None and res.added == 100
        merged |= res.merged
    inc = CorpusIndex(store, EMB)
    inc.sync()
    assert merged and inc.manifest.base.trained_on == 1100 and inc.manifest.base.count > 1100
    assert inc.manifest.base.nlist == trained.nlist          # the same trained lists: added to, not retrained
    got = ids_and_hits(inc, queries)
    inc.rebuild("test")
    assert ids_and_hits(CorpusIndex(store, EMB), queries) == got

    assert files.read_manifest(inc.dir).base.trained_on == 2000
    put(store, unit(np.random.default_rng(5).normal(size=(6001, 24))), 0, 6001, prefix="2502")   # > 4 x 2000
    assert "retraining" in (CorpusIndex(store, EMB).sync().rebuilt or "")


def test_many_small_syncs_merge_the_segments_not_the_approximate_index(store, vecs, monkeypatch):
    """More than MAX_SEGMENTS small syncs (a few weeks of days) over an IVF index: the segments are merged into
    one, and the IVF file is left as it is until they pass TAIL_MIN / TAIL_SHARE. (They were added to the IVF
    lists instead, which reads the whole IVF file into memory and writes it anew: 1.5 GB at 1M vectors, every
    17 syncs.)"""
    monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 1000)
    monkeypatch.setattr(kinds, "NPROBE", 10_000)        # every list probed: the IVF answers exactly, comparable
    queries = unit(vecs[:30] + 0.3 * np.random.default_rng(3).normal(size=(30, 24)))
    put(store, vecs, 0, 1200)
    idx = CorpusIndex(store, EMB)
    assert idx.sync().kind == "ivf"
    base = idx.manifest.base
    merged = 0
    for start in range(1200, 1200 + 20 * 10, 10):        # 20 syncs of 10 vectors: far below TAIL_MIN
        put(store, vecs, start, start + 10)
        res = CorpusIndex(store, EMB).sync()
        assert res.rebuilt is None and res.added == 10
        merged += res.merged
    inc = CorpusIndex(store, EMB)
    inc.sync()
    assert merged == 1 and len(inc) == 1400
    assert inc.manifest.base == base                    # the same IVF file, untouched
    assert inc.manifest.tail_count == 200 and len(inc.manifest.segments) <= corpus.MAX_SEGMENTS
    got = ids_and_hits(inc, queries)
    inc.rebuild("test")
    want = ids_and_hits(CorpusIndex(store, EMB), queries)
    # the same papers; the recent ones' cosines from a matrix product, not FAISS: equal to float precision
    assert got[0] == want[0] and [[i for i, _ in hs] for hs in got[1]] == [[i for i, _ in hs] for hs in want[1]]
    assert np.allclose([[c for _, c in hs] for hs in got[1]], [[c for _, c in hs] for hs in want[1]], atol=1e-4)


@pytest.mark.parametrize("damage, reason", [
    ("delete manifest", "there was no index yet"),
    ("garbage manifest", "not valid JSON"),
    ("other embedder", "built for the embedder 'mpnet'"),
    ("truncate segment", "holds"),
    ("flip segment byte", "checksum"),
    ("delete segment", "missing"),
])
def test_a_damaged_index_is_rebuilt_with_a_reason(store, vecs, damage, reason):
    put(store, vecs, 0, 50)
    idx = CorpusIndex(store, EMB)
    idx.sync()
    seg = idx.dir / idx.manifest.segments[0].vectors.name
    man = idx.dir / "manifest.json"
    if damage == "delete manifest":
        man.unlink()
    elif damage == "garbage manifest":
        man.write_text("{not json")
    elif damage == "other embedder":
        man.write_text(man.read_text().replace('"embedder": "toy"', '"embedder": "mpnet"'))
    elif damage == "truncate segment":
        seg.write_bytes(seg.read_bytes()[:-10])
    elif damage == "flip segment byte":
        b = bytearray(seg.read_bytes())
        b[17] ^= 0xFF
        seg.write_bytes(bytes(b))
    elif damage == "delete segment":
        seg.unlink()
    notes = []
    again = CorpusIndex(store, EMB, warn=notes.append)
    again.sync()
    hits = again.search(vecs[[4]], k=1)[0]            # a damaged data file is found when loading
    assert len(notes) == 1 and reason in notes[0] and notes[0].startswith("index "), notes
    assert len(again) == 50 and hits[0].id == "2501.00004"
    assert CorpusIndex(store, EMB).status().problem is None


@pytest.mark.parametrize("damage, reason", [("garbage", "unreadable"), ("truncate", "holds"),
                                            ("delete", "missing")])
def test_a_damaged_approximate_index_is_rebuilt_with_a_reason(store, vecs, monkeypatch, damage, reason):
    monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 500)
    put(store, vecs, 0, 600)
    idx = CorpusIndex(store, EMB)
    assert idx.sync().kind == "ivf"
    base = idx.dir / idx.manifest.base.index.name
    if damage == "garbage":
        base.write_bytes(b"\0" * base.stat().st_size)
    elif damage == "truncate":
        base.write_bytes(base.read_bytes()[:1000])
    else:
        base.unlink()
    notes = []
    again = CorpusIndex(store, EMB, warn=notes.append)
    assert again.sync().rebuilt is None                      # the cheap checks read no data file ...
    assert again.search(vecs[[9]], k=1)[0][0].id == "2501.00009"   # ... loading finds it and rebuilds
    assert len(notes) == 1 and reason in notes[0], notes
    assert CorpusIndex(store, EMB).status().problem is None


@pytest.mark.parametrize("damage, reason", [("garbage", "checksum"), ("flip", "checksum")])
def test_a_damaged_approximate_index_is_rebuilt_when_new_vectors_are_merged_into_it(store, vecs, monkeypatch,
                                                                                    damage, reason):
    """A merge rewrites the IVF file: one that fails its checksum is rebuilt from the store, not carried into
    the new file (nor an error at every later sync)."""
    monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 500)
    monkeypatch.setattr(corpus, "TAIL_MIN", 100)
    put(store, vecs, 0, 600)
    idx = CorpusIndex(store, EMB)
    idx.sync()
    base = idx.dir / idx.manifest.base.index.name
    b = bytearray(base.read_bytes())
    if damage == "garbage":
        b = bytearray(len(b))
    else:                                            # the same size, a few vectors' bytes changed
        for j in range(len(b) // 2, len(b) // 2 + 400):
            b[j] ^= 0x55
    base.write_bytes(bytes(b))
    put(store, vecs, 600, 800)                       # more than TAIL_MIN: merged into the IVF lists
    notes = []
    res = CorpusIndex(store, EMB, warn=notes.append).sync()
    assert res.rebuilt and reason in res.rebuilt and len(notes) == 1, (res, notes)
    assert res.count == 800 and CorpusIndex(store, EMB).status().problem is None
    fresh = CorpusIndex(store, EMB)
    hits = fresh.search(vecs[:800], k=1)
    assert [h[0].id for h in hits] == [f"2501.{i:05d}" for i in range(800)]


FULL_CHILD = """
import resource, signal, sys
from ranker.index import CorpusIndex, kinds
from ranker.store import Store
kinds.APPROX_THRESHOLD = 500
with Store(sys.argv[1]) as s:
    # no file may grow past the limit: the write that would fails (EFBIG), as on a disk with that much room
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
    try:
        CorpusIndex(s, "toy").rebuild("test")
    except OSError as e:
        print("OSError", e.errno)
"""


@pytest.mark.parametrize("short_by", [10, 100, 5000])
def test_a_full_disk_while_the_approximate_index_is_written_keeps_the_old_one(store, vecs, monkeypatch,
                                                                              tmp_path, short_by):
    """The IVF file meets a full disk when only its last bytes are left to write (what FAISS keeps buffered
    until it closes the file) or earlier: the update fails with the disk's error, and the old index stays,
    whole and named by the manifest (not a short file recorded under its own short size and CRC)."""
    import errno
    monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 500)
    put(store, vecs, 0, 700)
    idx = CorpusIndex(store, EMB)
    assert idx.sync().kind == "ivf"
    before = idx.manifest.base
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", FULL_CHILD, str(store.path), str(before.index.size - short_by)],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and r.stdout.split() == ["OSError", str(errno.EFBIG)], (r.stdout, r.stderr)
    assert r.stderr == ""                                   # nothing of FAISS's own on the terminal
    assert files.read_manifest(idx.dir).base == before
    assert sorted(p.name for p in idx.dir.iterdir()) == sorted([before.index.name, before.ids.name,
                                                                "manifest.json", ".lock"])
    assert CorpusIndex(store, EMB).status().problem is None
    notes = []
    fresh = CorpusIndex(store, EMB, warn=notes.append)
    assert [h[0].id for h in fresh.search(vecs[:700], k=1)] == [f"2501.{i:05d}" for i in range(700)]
    assert notes == []                                      # read as it was: nothing to rebuild


def test_an_index_that_disagrees_with_the_store_is_rebuilt_with_a_reason(tmp_path, vecs):
    db = tmp_path / "r.sqlite3"
    with Store(db) as store:
        put(store, vecs, 0, 60)
        CorpusIndex(store, EMB).sync()

        store.put_embeddings([("2501.00010", "edited", vecs[2000])], EMB)          # a revised paper's text
        idx = CorpusIndex(store, EMB)
        assert idx.sync().rebuilt is None                     # stored again: its new vector replaces the old one
        assert idx.search(vecs[[2000]], k=1)[0][0].id == "2501.00010"
        probe = idx.manifest.probes[0][0]                     # a vector changed in place (no new row): not ours
        with closing(sqlite3.connect(db)) as c, c:
            c.execute("UPDATE embeddings SET text_hash='forged' WHERE paper_id=?", (probe,))
        assert f"the stored vector of {probe} changed" in CorpusIndex(store, EMB).sync().rebuilt

    with closing(sqlite3.connect(db)) as c, c:                                     # rows removed
        c.execute("DELETE FROM embeddings WHERE paper_id IN ('2501.00020', '2501.00021')")
    with Store(db) as store:
        st = CorpusIndex(store, EMB).status()
        assert st.problem and st.vectors == 60 and st.store_vectors == 58
        res = CorpusIndex(store, EMB).sync()
        assert res.rebuilt and res.count == 58

    other = tmp_path / "other.sqlite3"                                  # another database, as many rows
    with Store(other) as o:
        put(o, vecs, 100, 158, prefix="2502")
    os.replace(other, db)
    for extra in ("-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    with Store(db) as store:
        res = CorpusIndex(store, EMB).sync()
        assert res.rebuilt and res.count == 58, res
        assert CorpusIndex(store, EMB).ids()[0].startswith("2502.")


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_a_revised_paper_replaces_its_vector_without_a_rebuild(store, vecs, monkeypatch, kind):
    """A paper back as v2 with a new abstract is embedded again: its row is stored anew. Every sync that saw one
    rebuilt the whole index from the store ("its text was edited"): at 300,000 vectors a day of 1,000 new papers
    and one revised took 37 s instead of 0.04 s (the approximate index retrained). Now its old row is dropped
    and the new one added: searches never see the old vector, nor the paper twice, through merges too, and
    the index equals a rebuild."""
    if kind == "ivf":
        monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 500)
        monkeypatch.setattr(kinds, "NPROBE", 10_000)      # every list probed: comparable with a rebuild
    monkeypatch.setattr(corpus, "TAIL_MIN", 150)
    monkeypatch.setattr(corpus, "MAX_SEGMENTS", 2)
    put(store, vecs, 0, 600)
    assert CorpusIndex(store, EMB).sync().kind == kind
    revised = {"2501.00003": 2900, "2501.00599": 2901}        # one in the first rows, the last row (the anchor)
    notes = []
    for day in range(4):
        put(store, vecs, 600 + 50 * day, 650 + 50 * day)
        if day < 2:                                          # v2, then v3 of the same papers
            store.put_embeddings(((pid, f"v{day + 2}", vecs[row - 100 * day]) for pid, row in revised.items()), EMB)
        res = CorpusIndex(store, EMB, warn=notes.append).sync()
        assert res.rebuilt is None and res.count == 650 + 50 * day, (day, res)
        idx = CorpusIndex(store, EMB)
        idx.load()
        ids = idx.ids()
        assert len(ids) == len(set(ids)) == res.count
        new = vecs[[row - 100 * min(day, 1) for row in revised.values()]]
        old = vecs[[3, 599]]
        for pid, hits in zip(revised, idx.search(new, k=1)):
            assert hits[0].id == pid and hits[0].score > 0.999
        for hits in idx.search(old, k=3):
            assert not any(h.score > 0.999 for h in hits)    # the old vectors are gone
        assert not [h for hs in idx.within(old, 0.999) for h in hs]
        assert CorpusIndex(store, EMB).status().problem is None
    # merging the segments wrote the old rows out; the approximate base keeps its two until it is rebuilt
    assert not notes and idx.manifest.dropped == ([] if kind == "flat" else [3, 599])
    queries = unit(vecs[:20] + 0.3 * np.random.default_rng(3).normal(size=(20, 24)))
    got = ids_and_hits(CorpusIndex(store, EMB), queries)
    CorpusIndex(store, EMB).rebuild("test")
    assert ids_and_hits(CorpusIndex(store, EMB), queries) == got
    monkeypatch.setattr(corpus, "DROPPED_MIN", 2)          # many revised at once: rebuilt without the old rows
    monkeypatch.setattr(corpus, "DROPPED_SHARE", 0.0)
    store.put_embeddings(((f"2501.{i:05d}", "v9", vecs[i + 2000]) for i in range(10, 13)), EMB)
    res = CorpusIndex(store, EMB).sync()
    assert "3 vectors of revised papers were replaced" in res.rebuilt and res.count == 800
    manifest = json.loads((CorpusIndex(store, EMB).dir / files.MANIFEST).read_text())
    assert "dropped" not in manifest           # none: written as before, so an older ranker still reads it


def test_a_database_made_again_with_the_same_papers_in_another_order_is_rebuilt(tmp_path, vecs):
    """The database deleted and made again from a larger snapshot that holds the indexed papers too (same
    ids, same text, so the same hashes) but in another order: the row the index saw last is another paper's
    now. The sync took the rows above the old highest rowid as new, so the index held some papers twice and
    missed others, and every later sync found the counts agreeing and kept it so."""
    db = tmp_path / "r.sqlite3"
    with Store(db) as store:
        put(store, vecs, 0, 60)
        CorpusIndex(store, EMB).sync()
    for extra in ("", "-wal", "-shm"):
        Path(str(db) + extra).unlink(missing_ok=True)
    order = list(range(100, 160)) + list(range(0, 60))                 # 60 other papers first, then the old 60
    with Store(db) as store:
        store.put_embeddings(((f"2501.{i:05d}", f"h{i}", vecs[i]) for i in order), EMB)
        res = CorpusIndex(store, EMB).sync()
        assert res.rebuilt and "renumbered or replaced" in res.rebuilt, res
        idx = CorpusIndex(store, EMB)
        assert idx.sync().rebuilt is None and sorted(idx.ids()) == sorted(f"2501.{i:05d}" for i in order)
        assert idx.search(vecs[[130]], k=1)[0][0].id == "2501.00130"
        assert CorpusIndex(store, EMB).status().problem is None


def test_status_reports_counts_and_the_full_check_finds_a_forged_digest(store, vecs):
    put(store, vecs, 0, 30)
    idx = CorpusIndex(store, EMB)
    assert not idx.status().exists
    idx.sync()
    put(store, vecs, 30, 35)
    st = CorpusIndex(store, EMB).status()
    assert (st.exists, st.kind, st.vectors, st.store_vectors, st.behind, st.problem) == (True, "flat", 30, 35, 5,
                                                                                          None)
    assert st.size_bytes > 30 * 24 * 4 and st.updated >= st.built > 0
    CorpusIndex(store, EMB).sync()
    man = idx.dir / "manifest.json"
    m = json.loads(man.read_text())
    m["digest"] = (m["digest"] + 1) % (1 << 64)
    man.write_text(json.dumps(m))
    assert CorpusIndex(store, EMB).status(verify=False).problem is None      # the cheap checks cannot see it
    assert "digest" in CorpusIndex(store, EMB).status().problem


def test_status_while_a_writer_replaces_the_files_sees_a_whole_index(store, vecs, monkeypatch):
    """`ranker index status` while the daily run syncs: the writer (here in a thread, with its own connection
    and lock) merges the segments the status has just read the manifest of, removing their files; status
    reads under the readers' lock, so the writer waits and no whole index is called damaged."""
    import threading
    monkeypatch.setattr(corpus, "MAX_SEGMENTS", 1)          # the writer's next sync merges the segments
    put(store, vecs, 0, 50)
    CorpusIndex(store, EMB).sync()
    put(store, vecs, 50, 60)
    done = []

    def writer():
        with Store(store.path) as s:
            done.append(CorpusIndex(s, EMB).sync())

    real = files.folder_size

    def meanwhile(directory):                              # status has read the manifest: a writer comes
        t = threading.Thread(target=writer)
        t.start()
        t.join(timeout=1.0)
        threads.append(t)
        return real(directory)
    threads = []
    monkeypatch.setattr(files, "folder_size", meanwhile)
    st = CorpusIndex(store, EMB).status()
    monkeypatch.setattr(files, "folder_size", real)
    threads[0].join(timeout=30)
    assert st.problem is None and (st.vectors, st.behind) == (50, 10), st
    assert done and done[0].merged and done[0].count == 60
    assert CorpusIndex(store, EMB).status().problem is None


def test_writers_leave_no_stray_files(store, vecs):
    put(store, vecs, 0, 10)
    idx = CorpusIndex(store, EMB)
    idx.sync()
    (idx.dir / "seg-left-by-a-killed-writer.f32").write_bytes(b"x" * 100)
    put(store, vecs, 10, 20)
    CorpusIndex(store, EMB).sync()
    names = sorted(p.name for p in idx.dir.iterdir())
    m = files.read_manifest(idx.dir)
    assert names == sorted({f.name for f in m.files()} | {"manifest.json", ".lock"})


def test_a_segment_whose_second_file_cannot_be_made_leaves_its_first_neither_open_nor_behind(store, vecs):
    """The index's file system runs out of inodes between a new segment's two files: the update fails with the
    disk's error, and the vectors file made first was left open (for as long as the caller held the error) and
    on disk (until the next writer)."""
    import errno
    d = store.index_dir
    d.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,nr_inodes=64", "tmpfs", str(d)],
                                           capture_output=True).returncode:
        pytest.skip("a file system out of inodes needs a tmpfs mount (root)")
    try:
        put(store, vecs, 0, 10)
        idx = CorpusIndex(store, EMB)
        idx.sync()
        before = sorted(p.name for p in idx.dir.iterdir())
        filler = []
        try:
            while True:                                   # every inode taken, then one given back
                filler.append(d / f"filler-{len(filler)}")
                filler[-1].touch()
        except OSError as full:
            assert full.errno == errno.ENOSPC
        filler[-2].unlink()
        put(store, vecs, 10, 20)
        with pytest.raises(OSError) as e:
            CorpusIndex(store, EMB).sync()
        assert e.value.errno == errno.ENOSPC
        assert open_files(idx.dir) == [], e.value
        assert sorted(p.name for p in idx.dir.iterdir()) == before
    finally:
        subprocess.run(["umount", "-l", str(d)], check=True)


def test_a_segment_whose_second_file_finds_no_descriptor_leaves_its_first_neither_open_nor_behind(tmp_path):
    """The same without root (the test above needs a tmpfs mount): the process has no descriptor left for the
    new segment's second file (RLIMIT_NOFILE, one descriptor free: the first file's)."""
    import errno
    import resource
    d = tmp_path / "index"
    d.mkdir()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    free = os.open(os.devnull, os.O_RDONLY)         # the lowest free descriptor, which the first file takes
    os.close(free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (free + 1, hard))
    try:
        with pytest.raises(OSError) as e:
            files.SegmentWriter(d, 24)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert e.value.errno == errno.EMFILE
    assert open_files(d) == [] and list(d.iterdir()) == []


# --------------------------------------------------------------------------- kill -9
CHILD = """
import sys, time
from ranker.index import CorpusIndex, corpus, kinds
from ranker.store import Store
kinds.APPROX_THRESHOLD = 10**9           # stay exact: the update is one long segment write
corpus.READ_BATCH = 2_000
with Store(sys.argv[1]) as s:
    idx = CorpusIndex(s, "toy")
    print("start", flush=True)
    t = time.perf_counter()
    idx.rebuild("test") if sys.argv[2] == "rebuild" else idx.sync()
print(time.perf_counter() - t, flush=True)
"""
N_OLD, N_NEW, DIM = 5_000, 80_000, 128


def _child(db, mode):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    p = subprocess.Popen([sys.executable, "-c", CHILD, str(db), mode], stdout=subprocess.PIPE, env=env, text=True)
    assert p.stdout.readline().strip() == "start"
    return p


@pytest.fixture(scope="module")
def pending(tmp_path_factory):
    """A database whose index holds N_OLD vectors, with N_NEW more stored since."""
    d = tmp_path_factory.mktemp("kill9")
    rng = np.random.default_rng(3)
    with Store(d / "r.sqlite3") as store:
        store.put_embeddings(((f"2501.{i:05d}", f"h{i}", v) for i, v in
                              enumerate(unit(rng.normal(size=(N_OLD, DIM))))), EMB)
        CorpusIndex(store, EMB).sync()
        for c in range(0, N_NEW, 20_000):
            store.put_embeddings(((f"2502.{c + i:05d}", "n", v) for i, v in
                                  enumerate(unit(rng.normal(size=(20_000, DIM))))), EMB)
    return d


def test_kill_9_during_an_update_leaves_the_old_or_the_new_index(pending, tmp_path):
    import shutil
    shutil.copytree(pending, tmp_path / "timing")
    p = _child(tmp_path / "timing" / "r.sqlite3", "rebuild")      # how long an uninterrupted update takes
    span = float(p.stdout.read().strip())
    assert p.wait(timeout=300) == 0

    outcomes = []
    for i, frac in enumerate((0.2, 0.5, 0.8, 1.0, 1.1, 1.2, 1.3, 1.4, 1.6, 2.0)):
        trial = tmp_path / f"t{i}"
        shutil.copytree(pending, trial)
        mode = ("sync", "rebuild")[i % 2]
        p = _child(trial / "r.sqlite3", mode)
        time.sleep(span * frac)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        with Store(trial / "r.sqlite3") as store:
            m = files.read_manifest(store.index_dir / EMB)         # never a torn manifest
            st = CorpusIndex(store, EMB).status()                 # every file it names is whole (checksums)
            assert st.problem is None, (mode, frac, st.problem)
            assert m.count == st.vectors and st.vectors in (N_OLD, N_OLD + N_NEW)
            outcomes.append((mode, p.returncode == -signal.SIGKILL, st.vectors))
            res = CorpusIndex(store, EMB).sync()                  # the next command completes the update
            assert res.count == N_OLD + N_NEW and res.rebuilt is None
            assert CorpusIndex(store, EMB).search(np.eye(DIM, dtype=np.float32)[:1], 1)[0]
    # the kills did land inside updates: some left the old index, killed
    assert any(killed and n == N_OLD for _, killed, n in outcomes), outcomes


def test_an_index_held_open_is_read_from_disk_once_until_the_store_changes(tmp_path, vecs, monkeypatch):
    """A server's requests each open the store anew; the index they share is synced every time but read from
    disk only when a sync changed it (100k vectors are 150 MB a page view otherwise)."""
    from ranker.index import OpenIndexes
    loads = []
    real = CorpusIndex._load
    monkeypatch.setattr(CorpusIndex, "_load", lambda self: (loads.append(1), real(self))[1])
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        put(s, vecs, 0, 100)
    held = OpenIndexes()
    for request in range(3):                         # three page views, each with its own Store
        with Store(db) as s, held.use(s, EMB) as idx:
            assert [h.id for h in idx.search(vecs[[7]], 1)[0]] == ["2501.00007"]
    assert len(loads) == 1
    with Store(db) as s:
        put(s, vecs, 100, 120)                       # a day was ranked meanwhile
    with Store(db) as s, held.use(s, EMB) as idx:
        assert len(idx) == 120 and [h.id for h in idx.search(vecs[[110]], 1)[0]] == ["2501.00110"]
    assert len(loads) == 2
    with Store(db) as s:                             # one opened for the block reads it itself
        idx = corpus.CorpusIndex(s, EMB)
        idx.sync()
        idx.search(vecs[[1]], 1)
        idx.sync()                                   # nothing changed: stays in memory
        idx.search(vecs[[1]], 1)
    assert len(loads) == 3


def test_status_counts_the_recent_segments_rows_searched_and_the_dropped_apart(store, vecs, monkeypatch):
    """A revised paper's old row in a recent segment (dropped in the manifest, never searched) was counted among
    the segments' vectors `ranker index status` lists; they are the rows searched now, the dropped said apart."""
    monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 500)
    put(store, vecs, 0, 600)
    assert CorpusIndex(store, EMB).sync().kind == "ivf"
    put(store, vecs, 600, 650)
    CorpusIndex(store, EMB).sync()
    st = CorpusIndex(store, EMB).status()
    assert (st.vectors, st.segments, st.tail, st.dropped) == (650, 1, 50, 0)
    store.put_embeddings([("2501.00610", "v2", vecs[2000]), ("2501.00003", "v2", vecs[2001])], EMB)   # revised
    assert CorpusIndex(store, EMB).sync().rebuilt is None
    st = CorpusIndex(store, EMB).status()
    assert st.problem is None and st.vectors == 650 and st.dropped == 2
    assert st.tail == 50 + 2 - 1                  # the new rows in, the segment's old row of 2501.00610 out


def put_damaged(store, rows, embedder=EMB):
    """Store (id, text hash, vector) rows as an older ranker or a hand-made store did, finite or not
    (put_embeddings refuses a NaN or an infinity now)."""
    with store.transaction() as c:
        c.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?,?,?)",
                      ((pid, embedder, th, len(v), np.asarray(v, dtype=np.float32).tobytes()) for pid, th, v in rows))


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_a_stored_vector_that_is_not_finite_is_never_found_and_finds_nothing(store, vecs, monkeypatch, kind):
    """A NaN or an infinity in a stored vector (a store made by hand, or by a model that broke): the approximate
    index could not be trained at all (FAISS's k-means refuses them: every search failed), an infinity scored
    +inf and topped the lists it was found in, and a NaN query's hits were any papers. Now such a row is never a
    hit and a query of one finds nothing, in both kinds, built at once or added to day by day, and every other
    query finds what it finds without them."""
    if kind == "ivf":
        monkeypatch.setattr(kinds, "APPROX_THRESHOLD", 500)
        monkeypatch.setattr(kinds, "NPROBE", 10_000)      # every list probed: exact, comparable with numpy's
    monkeypatch.setattr(corpus, "TAIL_MIN", 100)
    nan, inf = vecs[900].copy(), vecs[901].copy()
    nan[:] = np.nan
    inf[np.argmax(vecs[:20].sum(axis=0))] = np.inf        # +inf against most of the queries below
    damaged = {"2501.00900": nan, "2501.00901": inf}
    good = list(range(0, 300)) + list(range(400, 700))
    put(store, vecs, 0, 300)
    put_damaged(store, [(pid, "d", v) for pid, v in damaged.items()])
    put(store, vecs, 400, 600)
    assert CorpusIndex(store, EMB).sync().kind == kind              # ivf: trained on a sample holding them
    put_damaged(store, [("2501.00902", "d", inf)])                   # one more, added to the trained lists
    damaged["2501.00902"] = inf
    for start in range(600, 700, 50):
        put(store, vecs, start, start + 50)
        CorpusIndex(store, EMB).sync()
    idx = CorpusIndex(store, EMB)
    idx.load()
    assert kind == "flat" or not idx.manifest.segments              # merged into the IVF's lists
    queries = unit(vecs[:20] + 0.3 * np.random.default_rng(2).normal(size=(20, 24)))
    expect = vecs[good] @ queries.T
    for j, hits in enumerate(idx.search(queries, 5)):
        best = np.argsort(-expect[:, j], kind="stable")[:5]
        assert [h.id for h in hits] == [f"2501.{good[b]:05d}" for b in best]
    assert idx.search(np.stack([nan, inf]), 5) == [[], []]
    assert idx.within(np.stack([nan, inf]), -1.0) == [[], []]
    assert not [h for hs in idx.within(queries, -1.0) for h in hs if h.id in damaged or not np.isfinite(h.score)]
    assert CorpusIndex(store, EMB).status().problem is None


_READ_EMPTY_IDS = """
import sys
from pathlib import Path
from ranker.index import files as F
ref = F.FileRef(name="seg-0.ids", size=0, crc=0)       # an empty segment's ids file: 0 bytes, as a FIFO's size
for read in (lambda: F.check_file(Path(sys.argv[1]), ref, crc=True), lambda: F.read_ids(Path(sys.argv[1]), ref, 0),
             lambda: F.read_id_column(Path(sys.argv[1]), ref, 0, crc=False)):
    try:
        read()
        print("read")
    except F.IndexFileError as e:
        print(e)
"""


def test_a_fifo_in_the_place_of_an_empty_segment_s_ids_file_is_damage_not_waited_on(tmp_path):
    """check_file compared sizes only: a FIFO (size 0) where the manifest names a 0-byte file (a segment whose
    rows were all dropped when merged) passed, and its read waited for a writer for good. Now it is a damaged
    index file, which the next sync rebuilds."""
    from conftest import python
    os.mkfifo(tmp_path / "seg-0.ids")
    done = python(_READ_EMPTY_IDS, tmp_path, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["seg-0.ids is a named pipe, not a file"] * 3
