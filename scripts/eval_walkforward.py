#!/usr/bin/env python
"""Walk-forward figures of the prefilter's learners and zero-shot scores on a history of GPT-4o days.

A learner is measured as a user lives it: each of the last --test-days days (15) is ranked by a model fit only
on the days before it. A zero-shot score learns nothing, so it is measured on EVERY day (and on the last
--test-days too, for the comparison). Per approach it prints the mean over days of AUC, recall of GPT's picks
in the top 25% / 40%, keep95 (the smallest top fraction of a day that holds 95% of its picks), the time of one
fit and the time to rank one day; then the keep-by-recall check of the shipped learner (R = 0.95, 0.90).

    PYTHONPATH=$PWD flock /tmp/ranker-heavy.lock .venv/bin/python scripts/eval_walkforward.py \
        [--data ../shared/data] [--db STORE] [--approaches shipped,zero-shot,...] [--list]

Vectors come from the store (--db; default /work/cache/history-embeddings.sqlite3 when it exists, else
$RANKER_HOME's); a day missing from it is embedded and stored.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED_CACHE = Path("/work/cache/history-embeddings.sqlite3")
# ../shared/data next to the checkout (a worktree one level deeper finds it one level further up)
DATA = next((p for p in (REPO.parent / "shared" / "data", REPO.parents[1] / "shared" / "data") if p.exists()),
            REPO.parent / "shared" / "data")


# --------------------------------------------------------------------------- approaches
def zero_shot_approaches(ctx) -> dict:
    """name -> function(day HistoryData) -> scores, for scores that learn nothing."""
    from ranker.prefilter.rank import zero_shot

    def shipped(d):
        return d.zs

    def maxcos(d):
        return (d.X @ ctx["desc_q"].T).max(axis=1)

    def firing(d):            # today's score, recomputed (same as shipped until the default changes)
        return zero_shot(d.X, ctx["qv"], ctx["qs"])[0]

    return {"zero-shot (shipped)": shipped, "max cosine to topic descriptions": maxcos}


def learner_approaches(ctx) -> dict:
    """name -> function(train HistoryData) -> predict(test HistoryData) -> scores."""
    from ranker.prefilter import calibrate as cal

    def v1(train):
        c = cal.fit(train.X, train.y, train.zs, train.groups, train.papers, embedder=train.embedder)
        return lambda d: c.score(d.X, d.zs, d.papers)

    return {"calibrate v1 (emb LR + words LR + zs, LR stack)": v1}


# --------------------------------------------------------------------------- main
def main() -> int:
    from ranker import config
    from ranker.prefilter.calibrate import history_data
    from ranker.prefilter.embed import Embedder
    from ranker.prefilter.history import load_history
    from ranker.prefilter.metrics import day_metrics, mean_of
    from ranker.prefilter.rank import build_queries
    from ranker.prompts import load_prompts
    from ranker.store import Store

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA,
                    help="folder holding days/<date>/ (default: %(default)s)")
    ap.add_argument("--db", type=Path, default=SHARED_CACHE if SHARED_CACHE.exists() else None)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--prompts", type=Path, default=None)
    ap.add_argument("--test-days", type=int, default=15)
    ap.add_argument("--approaches", default="", help="comma-separated substrings of approach names (default all)")
    ap.add_argument("--list", action="store_true", help="list the approaches and exit")
    args = ap.parse_args()

    t0 = time.perf_counter()
    prompts = load_prompts(args.prompts)
    days = load_history(args.data / "days", warn=lambda m: print(m, file=sys.stderr))
    emb = Embedder(args.embedder)
    qs = build_queries(prompts)
    with Store(config.db_path(args.db)) as store:
        data = history_data(days, prompts, embedder=emb, store=store)
        ctx = {"qs": qs, "qv": emb.embed_queries(qs.texts, store),
               "desc_q": emb.embed_queries([t.description for t in prompts.topics], store), "store": store}
    all_days = sorted(set(data.groups.tolist()))
    test_days = all_days[-args.test_days:]
    print(f"{len(all_days)} days {all_days[0]}..{all_days[-1]}, {len(data.y)} papers, {int(data.y.sum())} picks; "
          f"embedder {emb.key}; {emb.texts_encoded} texts embedded; loaded in {time.perf_counter() - t0:.1f}s")
    print(f"walk-forward test days: {test_days[0]}..{test_days[-1]} ({len(test_days)}), each ranked by a fit on "
          f"the days before it")

    zsa, lra = zero_shot_approaches(ctx), learner_approaches(ctx)
    if args.list:
        print("\n".join([*zsa, *lra]))
        return 0
    want = [w.strip() for w in args.approaches.split(",") if w.strip()]
    pick = (lambda n: not want or any(w in n for w in want))

    rows = []
    for name, fn in zsa.items():
        if not pick(name):
            continue
        per, secs = {}, []
        for d in all_days:
            sub = data.subset(data.groups == d)
            t = time.perf_counter()
            s = fn(sub)
            secs.append(time.perf_counter() - t)
            per[d] = day_metrics(s, sub.y)
        rows.append((name, mean_of([per[d] for d in test_days]), mean_of(list(per.values())), 0.0,
                     float(np.mean(secs))))
        print_row(*rows[-1], flush=True)
    for name, fn in lra.items():
        if not pick(name):
            continue
        per, fit_s, rank_s = {}, [], []
        for d in test_days:
            tr = data.subset(data.groups < d)
            te = data.subset(data.groups == d)
            t = time.perf_counter()
            model = fn(tr)
            fit_s.append(time.perf_counter() - t)
            t = time.perf_counter()
            s = model(te)
            rank_s.append(time.perf_counter() - t)
            per[d] = day_metrics(s, te.y)
        rows.append((name, mean_of(list(per.values())), None, float(np.mean(fit_s)), float(np.mean(rank_s))))
        print_row(*rows[-1], flush=True)

    print()
    print(f"{'approach':<58}| last {len(test_days)} days, walk-forward: AUC  R@25  R@40 keep95 "
          f"| all {len(all_days)} days: AUC  R@25  R@40 keep95 | fit s | rank s/day")
    for r in rows:
        print_row(*r)
    print(f"total {time.perf_counter() - t0:.0f}s")
    return 0


def _fmt(m):
    if m is None:
        return f"{'':>28}"
    return f"{m['auc']:.3f} {m['recall@25']:.3f} {m['recall@40']:.3f} {m['keep95']:.3f}"


def print_row(name, last, every, fit_s, rank_s, flush=False):
    print(f"{name[:57]:<58}| {_fmt(last):>40} | {_fmt(every):>35} | {fit_s:5.1f} | {rank_s:.3f}", flush=flush)


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
