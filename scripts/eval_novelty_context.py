#!/usr/bin/env python
"""Does showing a paper's nearest EARLIER papers (--novelty-context K) bring the local model's NOVELTY closer to
GPT-4o's? Scores GPT's picks of the later shared days twice with the same engine, K=0 and K=5, and prints the
agreement of NOVELTY with GPT's NOVELTY (Spearman, within-1, mean) for each, plus the expected (probability-
weighted) NOVELTY's Spearman, which ties less than the integers.

    .venv/bin/python scripts/eval_novelty_context.py [--model qwen2.5-coder-0.5b] [--n 40] [--k 5]
        [--vectors-db ../cache/history-embeddings.sqlite3]

The corpus is every paper of the 50 shared days (their days and titles in a temporary store; vectors copied
from --vectors-db when it holds them, embedded otherwise), so a paper of a late day has weeks of earlier papers
to be compared with. GPT's picks only span NOVELTY 7..10, so agreement on them is a hard, narrow test.
"""
from __future__ import annotations

import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "scripts"))
from wf_common import DATA, LLM_FLAGS, SHARED_CACHE, check_llm  # noqa: E402  (found from a worktree too)
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)


def main() -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--n", type=int, default=40, help="GPT picks to score (from the later half of the days)")
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--days", type=Path, default=DATA / "days")
    ap.add_argument("--vectors-db", default=str(SHARED_CACHE))
    ap.add_argument("--comment-chars", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    check_llm(ap, args.backend, args.model)   # before any work, as `ranker score` does

    from ranker.backends import get_backend
    from ranker.compare.metrics import agreement
    from ranker.index import CorpusIndex, novelty_context
    from ranker.prefilter.embed import Embedder
    from ranker.prompts import build_messages, load_prompts
    from ranker.records import Paper
    from ranker.scoring import ScoreOptions, score_papers
    from ranker.store import Store

    days = sorted(d for d in args.days.iterdir() if (d / "listing.jsonl").exists())
    papers, gpt = [], {}
    for d in days:
        papers += [Paper.from_dict(json.loads(line)) for line in (d / "listing.jsonl").open()]
        for line in (d / "gpt_scores.jsonl").open():
            g = json.loads(line)
            gpt[g.get("ARXIVID") or g.get("id")] = (g["RELEVANCE"], g["NOVELTY"])
    later = {d.name for d in days[len(days) // 2:]}
    pool = [p for p in papers if p.date in later and p.id in gpt]
    sample = random.Random(args.seed).sample(pool, min(args.n, len(pool)))

    tmp = Path(tempfile.mkdtemp(prefix="eval-novelty-"))
    try:
        db = tmp / "ranker.sqlite3"
        if Path(args.vectors_db).exists():
            shutil.copy(args.vectors_db, db)
            for extra in ("-wal", "-shm"):
                if Path(args.vectors_db + extra).exists():
                    shutil.copy(args.vectors_db + extra, str(db) + extra)
        with Store(db) as store:
            store.add_papers(papers)
            emb = Embedder("minilm")
            emb.embed_papers(papers, store)                    # whatever the copy lacks
            res = CorpusIndex(store, emb.key).sync()
            print(f"corpus: {res.count:,} papers of {len(days)} days ({days[0].name}..{days[-1].name}), "
                  f"{emb.texts_encoded} embedded now; scoring {len(sample)} GPT picks of days {min(later)}.."
                  f"{max(later)} with {args.model} via {args.backend}, K=0 and K={args.k}")
            related = novelty_context(sample, store, embedder=emb, k=args.k)
            ex = sample[0]
            text = build_messages(load_prompts(), [ex], related=related)[1]["content"]
            start = text.index("Earlier related papers")
            print("example context (" + ex.id + ", " + ex.date + "):\n  "
                  + text[start:text.index("</paper>", start)].strip().replace("\n", "\n  "))
            ps = load_prompts()
            scores = {}
            with get_backend(args.backend, args.model) as be:
                for k in (0, args.k):
                    opts = ScoreOptions(score_mode="expected", comment_chars=args.comment_chars, novelty_context=k)
                    t = time.perf_counter()
                    run = score_papers(sample, be, ps, store, options=opts, related=related if k else None)
                    scores[k] = run.scores
                    print(f"K={k}: {len(run.scores)} scored, {len(run.failures)} failed in "
                          f"{time.perf_counter() - t:.0f} s; {run.usage.prompt_tokens:,} prompt tokens")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nNOVELTY vs GPT-4o's on {len(sample)} of GPT's picks (GPT's NOVELTY spans 7..10 here):")
    print(f"{'K':>3} {'n':>4} {'Spearman':>9} {'within-1':>9} {'exact':>6} {'mean local':>11} {'mean GPT':>9} "
          f"{'Spearman E[N]':>14} {'distinct N':>11}")
    for k, sc in scores.items():
        ids = [p.id for p in sample if p.id in sc]
        g = [gpt[i][1] for i in ids]
        a = agreement(g, [sc[i].novelty for i in ids])
        has_e = [i for i in ids if sc[i].expected_novelty is not None]     # GPT's and the local E[N], paired
        e = agreement([gpt[i][1] for i in has_e], [sc[i].expected_novelty for i in has_e])
        fmt = lambda x: "n/a" if x is None else f"{x:.3f}"   # noqa: E731
        print(f"{k:>3} {a['n']:>4} {fmt(a['spearman']):>9} {fmt(a['within1']):>9} {fmt(a['exact']):>6} "
              f"{fmt(a['mean_local']):>11} {fmt(a['mean_gpt']):>9} {fmt(e['spearman']):>14} "
              f"{len({sc[i].novelty for i in ids}):>11}")
    both = [p.id for p in sample if p.id in scores[0] and p.id in scores[args.k]]
    moved = sum(scores[0][i].novelty != scores[args.k][i].novelty for i in both)
    print(f"NOVELTY changed for {moved} of {len(both)} papers when the context was added")
    return 0


if __name__ == "__main__":
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main, flags=LLM_FLAGS))   # a RankerError: one line, status 1
