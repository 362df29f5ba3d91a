"""Does the expected score separate GPT-4o's picks better than the greedy integers?

Scores a sample of the shared days (GPT's picks and other papers) with a local model in `expected` mode,
which returns both the greedy integers and the probability-weighted means from the same forward pass, then
prints the ROC AUC of "GPT picked it" for each ranking score.

    python scripts/eval_score_mode.py --model qwen2.5-coder-0.5b --per-day 24
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(Path(__file__).resolve().parent))      # script_cli
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)


def main() -> None:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--backend", default="vllm")
    ap.add_argument("--per-day", type=int, default=24, help="papers per day (a third of them GPT's picks)")
    ap.add_argument("--days", default=str(REPO / "tests/data/days"))
    ap.add_argument("--comment-chars", type=int, default=120)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the per-paper scores here")
    args = ap.parse_args()
    if args.per_day < 3:
        ap.error(f"--per-day {args.per_day}: a third of each day's papers are GPT's picks, so at least 3 (an AUC "
                 "needs picks and other papers)")
    from wf_common import check_llm
    check_llm(ap, args.backend, args.model)   # before any work, as `ranker score` does

    from sklearn.metrics import roc_auc_score

    from ranker.backends import get_backend
    from ranker.prompts import load_prompts
    from ranker.records import Paper
    from ranker.scoring import ScoreOptions, score_papers
    from ranker.store import Store

    rng = random.Random(args.seed)
    papers, label = [], {}
    for day in sorted(Path(args.days).iterdir()):
        rows = [json.loads(line) for line in (day / "listing.jsonl").open()]
        pos = [r for r in rows if r["gpt_selected"]]
        neg = [r for r in rows if not r["gpt_selected"]]
        k = args.per_day // 3
        for r in rng.sample(pos, min(k, len(pos))) + rng.sample(neg, args.per_day - min(k, len(pos))):
            papers.append(Paper.from_dict(r))
            label[r["id"]] = int(r["gpt_selected"])
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "db.sqlite3") as store, \
            get_backend(args.backend, args.model) as be:
        t0 = time.perf_counter()
        run = score_papers(papers, be, load_prompts(), store,
                           options=ScoreOptions(score_mode="expected", comment_chars=args.comment_chars))
        secs = time.perf_counter() - t0
    ids = [p.id for p in papers if p.id in run.scores]
    y = [label[i] for i in ids]
    s = [run.scores[i] for i in ids]
    rankings = {
        "greedy RELEVANCE": [x.relevance for x in s],
        "greedy RELEVANCE+NOVELTY": [x.relevance + x.novelty for x in s],
        "expected RELEVANCE": [x.expected_relevance for x in s],
        "expected RELEVANCE+NOVELTY": [x.expected_relevance + x.expected_novelty for x in s],
    }
    print(f"{args.model} via {args.backend}: {len(ids)} papers scored ({sum(y)} GPT picks, "
          f"{len(run.failures)} failures) in {secs:.0f} s ({len(ids) / secs:.2f} papers/s)")
    distinct = {k: len(set(v)) for k, v in rankings.items()}
    for name, v in rankings.items():
        print(f"  AUC {name:<28} {roc_auc_score(y, v):.3f}   ({distinct[name]} distinct values)")
    if args.json:
        Path(args.json).write_text(json.dumps(
            [{"id": i, "gpt": label[i], "R": x.relevance, "N": x.novelty, "ER": x.expected_relevance,
              "EN": x.expected_novelty} for i, x in zip(ids, s)], indent=1))


if __name__ == "__main__":
    from ranker.cli.app import script_main
    from wf_common import LLM_FLAGS
    raise SystemExit(script_main(main, flags=LLM_FLAGS))   # a RankerError: one line, status 1
