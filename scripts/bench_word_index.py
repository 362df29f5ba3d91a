#!/usr/bin/env python
"""The web's first word search, which builds the store's word-search index (papers_fts): on a fresh store of
synthetic papers of arXiv length, the time the build takes, and how long it keeps another process's writes
waiting, built in chunks (as the library does) and, for comparison, in one transaction; and the first search
after the upgrade to an index of folded text (m007), which refolds an index an older ranker built.

    .venv/bin/python scripts/bench_word_index.py [--papers 200000] [--db /tmp/word-bench/ranker.sqlite3]

The papers (title 8-12 words, abstract 150-190 words, 5 authors, 1,000 a day) are stored through
Store.add_papers; their words are drawn Zipf-like from a vocabulary of 64,000 made-up words after 48 common
English ones, and every 20th abstract names someone whose name folding changes (Łukasz, Strauß, Ørsted, Aurélie:
more than arXiv's, 9 of the 1,445 papers of the tests' days). The build is the first search of the web's word search (ranker.web.search.search, mode words,
which asks Store.search_papers), timed in this process while two other processes open the same database:
  - a prober tries to take the write lock (BEGIN IMMEDIATE, no busy wait, then ROLLBACK) every 5 ms; the
    longest run of refusals, from the last try that got the lock to the next one, is the longest time one
    transaction held it (a bound a poll or two above the truth);
  - a writer stores a thumb (Store.set_label, as a click on the pages does) every 0.3 s, its busy timeout an
    hour; the longest set_label call is how long such a writer waited at most.
"One transaction" is the same build with ranker.store.FTS_BUILD_CHUNK (the module's chunk size, which the
tests set too) above the number of papers, on a copy of the store made before the first build. The refold is
the first search on the store built in chunks once it is marked as m007 marks an index an older ranker built
(it puts in again each paper whose text folding changes, whatever the index holds: the same work).
The store (and its copy) is written under a temporary folder, removed at the end, or at --db, which must not
exist yet (the copy beside it is removed at the end).
"""
from __future__ import annotations

import multiprocessing as mp
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))      # script_cli
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)

import ranker.store as store_module  # noqa: E402
from ranker.records import Paper  # noqa: E402
from ranker.store import Store  # noqa: E402

COMMON = ("the we of and a to in for is that on with this by an are as from our be which can it at these model "
          "show results method using data based learning two its paper both not more than such also or has new "
          "have into approach".split())
SYLLABLES = ("lin gra dif spa tok emb net mod opt ker sam vec pro con tra hyp qua mat sta obs reg cla sel par "
             "gen ada res dec enc att cal dis mul tem sem lat cor ent inf rob mon").split()
ENDINGS = ("ear ation ity ing ed ic al ous ive ize er ist ure ence ment ness ian ous ant ary ory ile ine ate "
           "ics ism ular ional etic ative ency ished ible ory ent ile oid ent ium ular ator").split()
FOLDED_NAMES = ("Łukasz Kaiser", "Johann Strauß", "Hans Christian Ørsted", "Aurélie Névéol")
FOLDED_EVERY = 20                   # every 20th abstract names one of them
WRITE_EVERY = 0.3                   # seconds between the writer's thumbs
PROBE_EVERY = 0.005                 # seconds between the prober's tries


def vocabulary() -> list[str]:
    made = [a + b + c for a in SYLLABLES for b in SYLLABLES for c in ENDINGS]
    rnd = np.random.default_rng(1)
    return list(COMMON) + [made[i] for i in rnd.permutation(len(made))]


def papers(n: int, batch: int = 10_000):
    """Batches of n synthetic papers, deterministic: paper i announced on day i // 1000 of a 25-day month."""
    words = vocabulary()
    p = 1.0 / np.arange(1, len(words) + 1) ** 1.05
    p /= p.sum()
    rng = np.random.default_rng(0)
    surnames = [w.capitalize() for w in words[len(COMMON):len(COMMON) + 5000]]
    for start in range(0, n, batch):
        m = min(batch, n - start)
        lens = rng.integers(8, 13, m), rng.integers(150, 191, m)
        drawn = rng.choice(len(words), size=int(lens[0].sum() + lens[1].sum()), p=p).tolist()
        names = rng.integers(0, len(surnames), (m, 5)).tolist()
        out, at = [], 0
        for j in range(m):
            i = start + j
            month, k = divmod(i, 25_000)
            yymm = f"{24 + month // 12}{month % 12 + 1:02d}"
            t, a = int(lens[0][j]), int(lens[1][j])
            title = " ".join(words[w] for w in drawn[at:at + t]).capitalize()
            abstract = " ".join(words[w] for w in drawn[at + t:at + t + a]).capitalize() + "."
            if i % FOLDED_EVERY == 0:
                abstract += f" After {FOLDED_NAMES[i // FOLDED_EVERY % len(FOLDED_NAMES)]}."
            at += t + a
            out.append(Paper(id=f"{yymm}.{k + 1:05d}", title=title, abstract=abstract,
                             authors=[f"{chr(65 + x % 26)}. {surnames[x]}" for x in names[j]],
                             categories=["cs.LG"], primary_category="cs.LG",
                             date=f"20{yymm[:2]}-{yymm[2:]}-{k // 1000 + 1:02d}"))
        yield out


def prober(db: str, ready, stop, out) -> None:
    """Longest stretch the write lock was held by someone else (see the module's docstring)."""
    c = sqlite3.connect(db, isolation_level=None, timeout=0)
    longest, last_free, busy = 0.0, time.perf_counter(), False
    ready.set()
    while not stop.is_set():
        t = time.perf_counter()
        try:
            c.execute("BEGIN IMMEDIATE")
            c.execute("ROLLBACK")
        except sqlite3.OperationalError:
            busy = True
        else:
            if busy:
                longest = max(longest, t - last_free)
            last_free, busy = t, False
        stop.wait(PROBE_EVERY)
    c.close()
    out.put(("held", longest))


def writer(db: str, paper_id: str, ready, stop, out) -> None:
    """A thumb every WRITE_EVERY seconds; the time each one took (waiting for the lock, then writing)."""
    took, label = [], 1
    with Store(db, busy_timeout=3600) as s:
        ready.set()
        while not stop.is_set():
            t = time.perf_counter()
            s.set_label(paper_id, label)
            took.append(time.perf_counter() - t)
            label = -label
            stop.wait(WRITE_EVERY)
    out.put(("waits", took))


def first_search(db: Path, paper_id: str, query: str) -> dict:
    """Time the first word search on `db` with the prober and the writer beside it."""
    from ranker.web.search import search
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    ready = [ctx.Event(), ctx.Event()]
    procs = [ctx.Process(target=prober, args=(str(db), ready[0], stop, out)),
             ctx.Process(target=writer, args=(str(db), paper_id, ready[1], stop, out))]
    for p in procs:
        p.start()
    try:
        for e in ready:
            if not e.wait(120):
                raise SystemExit("the prober or the writer did not start")
        time.sleep(2 * WRITE_EVERY)                  # both under way before the build
        with Store(db) as s:
            t = time.perf_counter()
            mode, hits, _ = search(s, query, "words")
            took = time.perf_counter() - t
            indexed = s.conn.execute("SELECT COUNT(*) FROM papers_fts").fetchone()[0]
        stop.set()
        got = dict(out.get(timeout=120) for _ in procs)
    finally:
        stop.set()
        for p in procs:
            p.join(60)
            if p.is_alive():
                p.kill()
                p.join()
    assert mode == "words" and hits, (mode, hits)
    return {"seconds": took, "indexed": indexed, "held": got["held"], "waits": got["waits"]}


def report(name: str, r: dict, done: str = "built") -> None:
    w = r["waits"]
    print(f"{name}: {done} in {r['seconds']:.1f} s; the write lock held {r['held']:.2f} s at most by one "
          f"transaction; a writer every {WRITE_EVERY} s waited {max(w):.2f} s at most (median "
          f"{statistics.median(w):.3f} s, {len(w)} writes)")


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--papers", type=int, default=200_000)
    ap.add_argument("--db", type=Path, help="the store to make (must not exist); default: a temporary folder")
    ap.add_argument("--skip-one-transaction", action="store_true", help="time the chunked build alone")
    a = ap.parse_args()
    if a.papers < 1:
        ap.error("--papers must be at least 1")
    if a.db is not None and a.db.exists():
        ap.error(f"--db {a.db} exists: the benchmark makes a fresh store")
    with tempfile.TemporaryDirectory(prefix="word-bench-") as tmp:
        db = a.db or Path(tmp) / "ranker.sqlite3"
        db.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        with Store(db) as s:
            for batch in papers(a.papers):
                s.add_papers(batch)
            some = s.conn.execute("SELECT id FROM papers ORDER BY rowid LIMIT 1").fetchone()[0]
        print(f"store: {a.papers:,} synthetic papers of arXiv length (titles 8-12 words, abstracts 150-190, "
              f"5 authors) added in {time.perf_counter() - t:.1f} s; {db.stat().st_size / 1e6:.0f} MB")
        query = vocabulary()[len(COMMON) + 200]       # a word of middling frequency
        copy = db.with_name(db.stem + "-one-transaction" + db.suffix)
        if not a.skip_one_transaction:
            src, dst = sqlite3.connect(db), sqlite3.connect(copy)
            src.backup(dst)
            src.close()
            dst.close()
        try:
            chunk = store_module.FTS_BUILD_CHUNK
            r = first_search(db, some, query)
            assert r["indexed"] == a.papers, r["indexed"]
            print(f"first word search (ranker.web.search.search, words) builds the index of {r['indexed']:,} "
                  f"papers:")
            n = a.papers // chunk + 1
            report(f"  in chunks of {chunk:,} papers ({n} transaction{'s' * (n > 1)}, "
                   f"{store_module.FTS_BUILD_PAUSE} s apart)", r)
            with Store(db) as s:                     # as m007 marks an index an older ranker built
                with s.transaction() as c:
                    store_module.m007_word_index_folded(c)
            r = first_search(db, some, query)
            assert r["indexed"] == a.papers, r["indexed"]
            report(f"  its refolding by the first search after the upgrade (m007; "
                   f"{len(range(0, a.papers, FOLDED_EVERY)):,} papers put in again)", r, "refolded")
            if a.skip_one_transaction:
                return
            store_module.FTS_BUILD_CHUNK = a.papers + 1
            try:
                r = first_search(copy, some, query)
            finally:
                store_module.FTS_BUILD_CHUNK = chunk
            assert r["indexed"] == a.papers, r["indexed"]
            report("  in one transaction (FTS_BUILD_CHUNK above the papers)", r)
        finally:
            for f in (copy, copy.with_name(copy.name + "-wal"), copy.with_name(copy.name + "-shm")):
                f.unlink(missing_ok=True)


if __name__ == "__main__":
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main))   # a RankerError: one line, status 1
