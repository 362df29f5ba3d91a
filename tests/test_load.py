"""A 30,000-paper arXiv metadata snapshot through `ranker fetch --from`, `ranker prefilter` and
`ranker fetch --from --embed` (the corpus index of a whole snapshot), each a real
subprocess whose peak RSS is read from os.wait4: memory stays bounded at that size.

The embedder is the real MiniLM, but embedding 30,000 texts takes ~15 min on 2 CPU cores (that whole run is
scripts/bench_load.py's job: 916 s, 1,070 MB peak). Here the store first gets vectors for all but 300 of
the papers, so the model embeds 300 texts (a full chunk of ranker.prefilter.embed.CHUNK, 256, and part of a
second: the memory of embedding is that of one chunk, whatever the count) while reading, ranking, the corpus
index (exact: a plain matrix below 100,000 vectors, FAISS IVF above) and writing handle all 30,000.
"""
import json
import os
import re
import subprocess
import sys
import time
from contextlib import closing

import numpy as np
import pytest

from conftest import RANKER, REPO

N = 30_000
EMBED_FOR_REAL = 300            # more than one embedding chunk (CHUNK = 256), asserted below
REDO = 200                  # vectors fetch --embed makes again for real


# The command runs under a small launcher that reports its child's peak RSS: measured straight from this
# process, a child's high-water mark would start at the size of the pytest process it was forked from.
LAUNCHER = ("import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
            "sys.stderr.write('\\nmaxrss_kb=%d\\n' % resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
            "sys.exit(rc)")


def run_measured(cmd, env, timeout=900):
    """Run cmd; return (seconds, peak RSS in MB, stderr). Fails the test on a non-zero exit."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(cmd[-6:])} ran past {timeout} s")
    err = p.stderr.decode(errors="replace")
    assert p.returncode == 0, err[-800:]
    rss_kb = int(re.findall(r"maxrss_kb=(\d+)", err)[-1])
    return time.perf_counter() - t0, rss_kb / 1024, err


@pytest.mark.slow
def test_a_30000_paper_snapshot_fetches_and_prefilters_in_bounded_memory(tmp_path):
    from ranker.prefilter.embed import CHUNK, embedder_key, paper_text, text_hash
    assert CHUNK < EMBED_FOR_REAL < 2 * CHUNK           # the embedding runs chunk after chunk, as at any size
    from ranker.sources import read_papers
    from ranker.store import Store

    home = tmp_path / "home"
    env = dict(os.environ, RANKER_HOME=str(home), RANKER_OFFLINE="1")
    env.pop("RANKER_DB", None)
    snap, papers, ranked = tmp_path / "snapshot.json", tmp_path / "papers.jsonl", tmp_path / "ranked.jsonl"
    subprocess.run([sys.executable, str(REPO / "scripts" / "make_snapshot.py"), "--n", str(N), "--out", str(snap)],
                   check=True, env=env, stdout=subprocess.DEVNULL)

    secs, rss, _ = run_measured([*RANKER, "fetch", "--from", str(snap), "--out", str(papers)], env)
    rows = [json.loads(line) for line in papers.open()]
    assert len(rows) == N and len({r["id"] for r in rows}) == N
    assert rss < 200, f"fetch --from peaked at {rss:.0f} MB for {N} papers (streaming should keep it ~50 MB)"

    # vectors for all but EMBED_FOR_REAL papers, stored the way the prefilter stores its own
    day = list(read_papers(papers))
    rng = np.random.default_rng(0)
    store = Store(home / "ranker.sqlite3")
    try:
        pre = day[EMBED_FOR_REAL:]
        vecs = rng.normal(size=(len(pre), 384)).astype(np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store.put_embeddings(((p.id, text_hash(paper_text(p)), v) for p, v in zip(pre, vecs)),
                             embedder_key("minilm"))
    finally:
        store.close()

    cmd = [*RANKER, "prefilter", "--papers", str(papers), "--out", str(ranked), "--embedder", "minilm"]
    secs, cold_rss, err = run_measured(cmd, env)
    out = [json.loads(line) for line in ranked.open()]
    assert sorted(r["id"] for r in out) == sorted(r["id"] for r in rows)        # every paper, once
    scores = [r["prefilter_score"] for r in out]
    assert scores == sorted(scores, reverse=True)
    embedded = re.search(r"(\d[\d,]*) texts embedded", err)          # thousands grouped, as every count
    assert embedded and EMBED_FOR_REAL <= int(embedded.group(1).replace(",", "")) <= EMBED_FOR_REAL + 100, err[-400:]
    assert cold_rss < 1500, f"prefilter peaked at {cold_rss:.0f} MB with {N} papers"

    secs, warm_rss, err = run_measured(cmd, env)          # every vector cached: no model, no torch
    assert "all vectors from the store" in err, err[-400:]
    assert warm_rss < 500, f"a fully cached prefilter peaked at {warm_rss:.0f} MB with {N} papers"
    print(f"\n{N} papers: prefilter with {EMBED_FOR_REAL} embedded {cold_rss:.0f} MB peak; "
          f"all cached {warm_rss:.0f} MB in {secs:.1f} s")

    # `fetch --from SNAPSHOT --embed`, the corpus of a whole snapshot: read back from --out a chunk at a time,
    # only what the store lacks is embedded (REDO papers, for real), then the index is built from the store
    import shutil
    import sqlite3
    redo = [p.id for p in day[-REDO:]]
    with closing(sqlite3.connect(home / "ranker.sqlite3")) as c, c:
        c.executemany("DELETE FROM embeddings WHERE paper_id = ?", [(i,) for i in redo])
    shutil.rmtree(home / "faiss")
    cmd = [*RANKER, "fetch", "--from", str(snap), "--embed", "--out", str(tmp_path / "corpus.jsonl")]
    secs, embed_rss, err = run_measured(cmd, env)
    assert f"embedded {REDO} of {N:,} papers ({N - REDO:,} already stored); index (minilm): {N:,} vectors, exact" \
        in err, err[-600:]
    assert "index built from the store (there was no index yet)" in err
    assert embed_rss < 1500, f"fetch --embed peaked at {embed_rss:.0f} MB with {N} papers"
    with Store(home / "ranker.sqlite3") as store:
        from ranker.index import CorpusIndex
        st = CorpusIndex(store, embedder_key("minilm")).status()
        assert st.vectors == st.store_vectors == N and st.problem is None
    print(f"{N} papers: fetch --embed with {REDO} embedded {embed_rss:.0f} MB peak in {secs:.1f} s")
