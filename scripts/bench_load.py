"""Load benchmark: a 30,000-paper arXiv metadata snapshot through `ranker fetch --from` and `ranker prefilter`.

Each stage runs as its own process, so its peak RSS is its own (os.wait4). Prints papers/s and peak RSS
per stage; memory should stay bounded (streaming reads, batched embedding), not grow with the file.

    python scripts/bench_load.py [--n 30000] [--embedder minilm]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(1, str(REPO / "scripts"))
import bench_year  # noqa: E402  (its timed(): wall seconds and the kernel's peak RSS of a command)
import make_snapshot  # noqa: E402
from script_cli import Parser, one_line  # noqa: E402  (a usage error, a path given that cannot be written: one line, status 1)
BIN = Path(sys.executable).parent


def stage(name: str, cmd: list[str], env: dict, n: int) -> dict:
    # bench_year.timed: its stderr read from a file once it has ended (a pipe read only then stalled a command
    # that wrote more than the pipe holds, and the benchmark with it)
    secs, rss_mb, rc, _, err = bench_year.timed(cmd, env)
    err = err.strip()
    if rc != 0:
        sys.exit(f"{name} failed: {err[-800:]}")
    print(f"{name:<28} {n:>7} papers  {secs:8.1f} s  {n / secs:8.0f} papers/s  peak RSS {rss_mb:7.0f} MB")
    return {"seconds": secs, "rss_mb": rss_mb, "stderr": err}


def main() -> None:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=30000)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--workdir", help="keep the files here (default: a temporary folder)")
    args = ap.parse_args()
    if args.workdir and Path(args.workdir).exists() and not Path(args.workdir).is_dir():
        ap.error(f"--workdir {args.workdir}: not a folder")     # not mkdir's "file exists"
    work = Path(args.workdir or tempfile.mkdtemp(prefix="ranker-load-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, RANKER_HOME=str(work / "home"), RANKER_OFFLINE="1")
    snap, papers, ranked = work / "snapshot.json", work / "papers.jsonl", work / "ranked.jsonl"
    make_snapshot.snapshot(["--n", str(args.n), "--out", str(snap)], env)     # its line says why (--n -1)
    print(f"snapshot: {args.n} papers, {snap.stat().st_size / 1e6:.0f} MB ({work})")
    base = stage("ranker --help (baseline)", [str(BIN / "ranker"), "--help"], env, 1)
    stage("fetch --from snapshot", [str(BIN / "ranker"), "fetch", "--from", str(snap), "--category",
                                    "cs.LG,cs.AI", "--out", str(papers)], env, args.n)
    n = sum(1 for _ in papers.open())
    cold = stage("prefilter (cold)", [str(BIN / "ranker"), "prefilter", "--papers", str(papers), "--out",
                                      str(ranked), "--embedder", args.embedder], env, n)
    warm = stage("prefilter (warm, cached)", [str(BIN / "ranker"), "prefilter", "--papers", str(papers), "--out",
                                              str(ranked), "--embedder", args.embedder], env, n)
    print(f"cold/warm prefilter time ratio: {cold['seconds'] / warm['seconds']:.1f}x; "
          f"baseline RSS {base['rss_mb']:.0f} MB")


if __name__ == "__main__":
    sys.exit(one_line(main))
