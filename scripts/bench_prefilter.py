#!/usr/bin/env python
"""Prefilter speed: a 1,000-paper day cold (model load + embedding) and warm (every vector from the store),
the corpus index's search over 1k (exact) and 1M (FAISS IVF) synthetic vectors, and peak memory.

    .venv/bin/python scripts/bench_prefilter.py [--papers 1000] [--embedder minilm] [--faiss-n 1000000]

Everything is written under a temporary RANKER_HOME; nothing of the user's is touched. Targets (2 cores):
cold <= 60 s and warm <= 2 s for 1,000 papers.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(Path(__file__).resolve().parent))      # script_cli
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load_papers(n: int):
    from ranker.records import Paper
    days = REPO / "tests" / "data" / "days"
    out = []
    for d in sorted(days.iterdir()):
        for line in (d / "listing.jsonl").read_text(encoding="utf-8").splitlines():
            out.append(Paper.from_dict(json.loads(line)))
    if len(out) < n:
        raise SystemExit(f"only {len(out)} papers in {days}")
    return out[:n]


def bench_faiss(n: int, dim: int, queries: int = 100) -> dict:
    """Per-query search time (k=10) of the corpus index's kind for n vectors, as the product searches it:
    below kinds.APPROX_THRESHOLD the exact kind, a plain array and one matrix product (no FAISS, nothing to
    build); from it on FAISS IVF-Flat, built here (the corpus index's own figures, incremental adds included,
    are scripts/bench_index.py's)."""
    from ranker.index.kinds import build, flat_topk, kind_for, search
    rng = np.random.default_rng(0)
    # clustered unit vectors (papers crowd around topics), generated in chunks to bound memory
    centres = rng.normal(size=(max(8, n // 1000), dim)).astype(np.float32)
    chunks = []
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        v = centres[rng.integers(0, len(centres), m)] + 0.8 * rng.normal(size=(m, dim)).astype(np.float32)
        chunks.append(v / np.linalg.norm(v, axis=1, keepdims=True))
    vecs = np.concatenate(chunks)
    del chunks
    q = vecs[rng.choice(n, queries, replace=False)] + 0.05 * rng.normal(size=(queries, dim)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    if kind_for(n) == "flat":
        flat_topk(vecs, q[:1], 10)                         # warm caches
        t = time.perf_counter()
        for i in range(queries):
            flat_topk(vecs, q[i:i + 1], 10)
        one = (time.perf_counter() - t) / queries
        return {"n": n, "index": "exact (numpy)", "build_s": 0.0, "search_ms_per_query": one * 1000}
    t = time.perf_counter()
    index = build(vecs)
    built = time.perf_counter() - t
    search(index, q[:1], 10)                               # warm caches
    t = time.perf_counter()
    for i in range(queries):
        search(index, q[i:i + 1], 10)
    one = (time.perf_counter() - t) / queries
    res = {"n": n, "index": type(index).__name__, "build_s": built, "search_ms_per_query": one * 1000}
    # recall@10 of the approximate index against exact search
    exact = (q @ vecs.T).argsort(axis=1)[:, ::-1][:, :10] if n <= 200_000 else None
    if exact is None:
        sims = np.concatenate([q @ vecs[i:i + 200_000].T for i in range(0, n, 200_000)], axis=1)
        exact = np.argpartition(-sims, 10, axis=1)[:, :10]
        del sims
    _, got = search(index, q, 10)
    res["recall@10"] = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, got)]))
    del vecs, index
    return res


def main() -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--papers", type=int, default=1000)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--max-tokens", type=int, default=None, help="as `ranker prefilter --max-tokens`")
    ap.add_argument("--faiss-n", type=int, default=1_000_000, help="0: skip the large FAISS run")
    ap.add_argument("--calibration", type=Path, default=None,
                    help="also time the warm CLI run with this `ranker calibrate` file (keep by recall 0.95)")
    args = ap.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ranker-bench-"))
    os.environ["RANKER_HOME"] = str(home)
    from ranker.io import counted
    from ranker.prefilter import rank_papers
    from ranker.prefilter.embed import Embedder
    from ranker.prompts import load_prompts
    from ranker.store import Store

    papers = load_papers(args.papers)
    prompts = load_prompts()
    print(f"cpu cores: {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}; {len(papers)} papers, embedder "
          f"{args.embedder}, max tokens {args.max_tokens or 'default (128)'}")

    # cold: new store, the model loaded and every paper embedded
    t0, c0 = time.perf_counter(), cpu_s()
    emb = Embedder(args.embedder, max_tokens=args.max_tokens)
    with Store(home / "ranker.sqlite3") as store:
        cold = rank_papers(papers, prompts, embedder=emb, store=store)
    cold_s, cold_cpu = time.perf_counter() - t0, cpu_s() - c0
    embed_s = cold.timings.get("embed", 0.0) - emb.load_seconds
    print(f"cold:  {cold_s:6.1f} s for {len(papers)} papers (model load {emb.load_seconds:.1f} s, embedding "
          f"{embed_s:.1f} s = {len(papers) / max(embed_s, 1e-9):.1f} papers/s, {cold.embedded} texts); "
          f"kept {cold.kept}")
    print(f"       {cold_cpu:.1f} CPU-seconds (the machine is shared: on {os.cpu_count()} free cores the wall time "
          f"would be about {cold_cpu / (os.cpu_count() or 1):.0f} s); peak RSS {rss_mb():.0f} MB")

    # warm, in process: a new Embedder, the same store -> no model load
    t0 = time.perf_counter()
    with Store(home / "ranker.sqlite3") as store:
        warm = rank_papers(papers, prompts, embedder=Embedder(args.embedder, max_tokens=args.max_tokens),
                             store=store)
    warm_s = time.perf_counter() - t0
    print(f"warm:  {warm_s:6.2f} s in process ({counted(warm.embedded, 'text')} embedded, "
          f"model loaded: {warm.model_loaded})")

    # warm, as a user runs it: a fresh `ranker prefilter` process, interpreter start-up and imports included
    src = home / "day.jsonl"
    src.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in papers), encoding="utf-8")
    exe = Path(sys.executable).parent / "ranker"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-c", "from ranker.cli import main; main()"]
    t0 = time.perf_counter()
    r = subprocess.run([*cmd, "prefilter", "--papers", str(src), "--out", str(home / "out.jsonl"),
                        "--embedder", args.embedder,
                        *(["--max-tokens", str(args.max_tokens)] if args.max_tokens else [])],
                       capture_output=True, text=True)
    cli_s = time.perf_counter() - t0
    print(f"warm:  {cli_s:6.2f} s as a CLI process (rc {r.returncode}): {r.stderr.strip().splitlines()[-1]}")
    if args.calibration:
        t0 = time.perf_counter()
        r = subprocess.run([*cmd, "prefilter", "--papers", str(src), "--out", str(home / "out.jsonl"),
                            "--embedder", args.embedder, "--calibration", str(args.calibration),
                            *(["--max-tokens", str(args.max_tokens)] if args.max_tokens else [])],
                           capture_output=True, text=True)
        cal_s = time.perf_counter() - t0
        print(f"warm, calibrated: {cal_s:6.2f} s as a CLI process (rc {r.returncode}): "
              f"{(r.stderr.strip().splitlines() or [''])[-1]}")
        from ranker.prefilter.calibrate import Calibration
        t0 = time.perf_counter()
        cal = Calibration.load(args.calibration)
        load_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        with Store(home / "ranker.sqlite3") as store:
            res = rank_papers(papers, prompts, embedder=Embedder(args.embedder, max_tokens=args.max_tokens),
                              calibration=cal, store=store)
        print(f"warm, calibrated: {time.perf_counter() - t0:6.2f} s in process after loading the file "
              f"({load_s:.2f} s); scoring {res.timings.get('score', 0):.3f} s; {res.summary()}")

    dim = emb.dim
    for n in [1000] + ([args.faiss_n] if args.faiss_n else []):
        f = bench_faiss(n, dim)
        extra = f", recall@10 vs exact {f['recall@10']:.3f}" if "recall@10" in f else ""
        print(f"corpus index: {f['n']:>9,} vectors  {f['index']:<13} build {f['build_s']:6.1f} s  search "
              f"{f['search_ms_per_query']:.2f} ms/query (k=10){extra}")
    print(f"peak RSS {rss_mb():.0f} MB")
    return 0


if __name__ == "__main__":
    from ranker.cli.app import script_main
    # a RankerError: one line naming the script's flag, status 1
    raise SystemExit(script_main(main, flags={"prefilter.embedder": "--embedder",
                                              "prefilter.max_tokens": "--max-tokens",
                                              "prefilter.calibration": "--calibration"}))
