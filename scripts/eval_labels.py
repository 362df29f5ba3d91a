#!/usr/bin/env python
"""What a few dozen labels of the user's own buy (issue #15): a simulated user labels the top 20 papers of each of
10 days with GPT-4o's verdict (picked = thumbs up, else down), walk-forward on the last --test-days (15).

The 10 labelled days are the 10 days just before the test days; the top 20 of a day is what the user saw first
without a calibration (the zero-shot ranking). Three learners, each test day ranked by a fit on days before it:
  history only       the shipped calibration on every earlier GPT day (as `ranker calibrate --no-labels`)
  history + labels   the same, the 200 labelled papers weighing 3x (labels.LABEL_WEIGHT) a GPT row
  labels only        the shipped calibration fit on the 200 labelled papers alone (no GPT history)
Printed: the mean over the test days of AUC, R@25, R@40 and keep95 (measured against GPT's picks), and zero-shot's.

    PYTHONPATH=$PWD flock /tmp/ranker-heavy.lock .venv/bin/python scripts/eval_labels.py \\
        [--db STORE] [--cache DIR] [--label-days 10] [--top 20]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wf_common import DATA, SHARED_CACHE, fmt_ci, load_data, shipped_walk_forward  # noqa: E402
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)


def main() -> int:
    from ranker.prefilter.calibrate import fit_data
    from ranker.prefilter.metrics import day_metrics

    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--db", type=Path, default=SHARED_CACHE if SHARED_CACHE.exists() else None,
                    help="the store holding the days' vectors (default ../cache/history-embeddings.sqlite3 "
                    "beside the checkout when it exists, else $RANKER_HOME's)")
    ap.add_argument("--cache", type=Path, default=None, help="the history-only fits' scores (shared with "
                    "eval_keep.py)")
    ap.add_argument("--test-days", type=int, default=15)
    ap.add_argument("--label-days", type=int, default=10)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    t0 = time.perf_counter()
    data, secs = load_data(args.data, args.db)
    days = data.days
    test = days[-args.test_days:]
    lab_days = days[-args.test_days - args.label_days:-args.test_days]
    labels: dict[str, bool] = {}
    for d in lab_days:
        idx = np.flatnonzero(data.groups == d)
        for i in idx[np.argsort(-data.zs[idx], kind="stable")[:args.top]]:
            labels[data.papers[i].id] = bool(data.y[i])
    n_up = sum(labels.values())
    print(f"{len(days)} days, {len(data.y)} papers, {int(data.y.sum())} picks (loaded in {secs:.1f}s); test days "
          f"{test[0]}..{test[-1]} ({len(test)}); labels: top {args.top} of {lab_days[0]}..{lab_days[-1]} "
          f"({len(lab_days)} days) by zero-shot: {len(labels)} labels, {n_up} up, {len(labels) - n_up} down")

    rows = {"zero-shot": {d: day_metrics(data.zs[data.groups == d], data.y[data.groups == d]) for d in test}}
    fits = {}
    wf = shipped_walk_forward(data, test, args.cache)
    rows["history only"] = {d: day_metrics(wf[d][0], wf[d][1]) for d in test}
    fits["history only"] = [wf[d][3] for d in test]

    rows["history + labels"], fits["history + labels"] = {}, []
    for d in test:
        tr, te = data.subset(data.groups < d), data.subset(data.groups == d)
        t = time.perf_counter()
        cal = fit_data(tr, labels=labels)
        fits["history + labels"].append(time.perf_counter() - t)
        rows["history + labels"][d] = day_metrics(cal.score(te.X, te.zs, te.papers), te.y)
        print(f"  history + labels, {d}: {fits['history + labels'][-1]:.1f}s", file=sys.stderr, flush=True)

    # labels only: every labelled day comes before every test day, so one fit serves them all
    mask = np.array([p.id in labels for p in data.papers])
    t = time.perf_counter()
    cal = fit_data(data.subset(mask), labels=labels)
    fits["labels only"] = [time.perf_counter() - t]
    rows["labels only"] = {}
    for d in test:
        te = data.subset(data.groups == d)
        rows["labels only"][d] = day_metrics(cal.score(te.X, te.zs, te.papers), te.y)

    print()
    print(f"walk-forward, last {len(test)} days, mean over days (recall of GPT-4o's picks) and its 95% interval "
          "(bootstrap over days; none under 5 days):")
    for name, per in rows.items():
        f = fits.get(name)
        took = f"  (one fit {np.nanmean(f):.1f}s)" if f else ""
        print(f"  {name:<17} {fmt_ci(list(per.values()))}{took}")      # each mean with its 95% interval
    print(f"total {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main, flags={"db": "--db"}))   # a RankerError: one line, status 1
