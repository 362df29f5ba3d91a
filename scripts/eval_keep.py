#!/usr/bin/env python
"""Keep by recall, checked walk-forward: does `--recall R` hold R of GPT's picks, and how much of a day does it keep?

With a calibration: each of the last --test-days (15) shared days is ranked by the shipped calibration fit on the
days before it, and kept by the shipped rule (prefilter.recall.decide_keep: every paper scoring at least the
fit's threshold for R, never fewer than 20 papers). Printed per R: the mean over days of the achieved recall of
the kept set, its distance to R, the mean kept fraction, and the worst day. Without a calibration: the default
fixed fraction (recall.DEFAULT_KEEP) and the zero-shot prior for R, on all days and on the last ones. Also the
walk-forward figures of those fits beside zero-shot's, as `ranker calibrate` prints them, each mean with its 95%
interval from a bootstrap over the days and the paired difference, as `ranker eval` gives them.

    PYTHONPATH=$PWD flock /tmp/ranker-heavy.lock .venv/bin/python scripts/eval_keep.py \\
        [--db STORE] [--cache DIR] [--test-days 15] [--embedder mpnet]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from wf_common import DATA, SHARED_CACHE, fmt_ci, fmt_diff, load_data, shipped_walk_forward  # noqa: E402
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)


def kept_recall(s, y, k):
    kept = np.argsort(-s, kind="stable")[:k]
    return y[kept].sum() / y.sum(), k / len(s)


def main() -> int:
    from ranker.prefilter.metrics import day_metrics
    from ranker.prefilter.recall import DEFAULT_KEEP, decide_keep

    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--db", type=Path, default=SHARED_CACHE if SHARED_CACHE.exists() else None,
                    help="the store holding the days' vectors (default ../cache/history-embeddings.sqlite3 "
                    "beside the checkout when it exists, else $RANKER_HOME's)")
    ap.add_argument("--cache", type=Path, default=None, help="keep the walk-forward fits' scores here")
    ap.add_argument("--test-days", type=int, default=15)
    ap.add_argument("--embedder", default="minilm", help="minilm (the default) or mpnet (the slower tier)")
    args = ap.parse_args()
    t0 = time.perf_counter()
    data, secs = load_data(args.data, args.db, args.embedder)
    days = data.days
    test = days[-args.test_days:]
    print(f"{len(days)} days {days[0]}..{days[-1]}, {len(data.y)} papers, {int(data.y.sum())} picks "
          f"(loaded in {secs:.1f}s); embedder {data.embedder}; walk-forward on {test[0]}..{test[-1]} ({len(test)} days)")
    wf = shipped_walk_forward(data, test, args.cache)
    learned = [day_metrics(wf[d][0], wf[d][1]) for d in test]
    zs = {d: (data.zs[data.groups == d], data.y[data.groups == d]) for d in days}
    same = [day_metrics(*zs[d]) for d in test]
    # the means with their 95% intervals from a bootstrap over the days, as `ranker eval` prints them
    print(f"walk-forward, shipped calibration: {fmt_ci(learned)}")
    print(f"zero-shot, same days:              {fmt_ci(same)}")
    print(f"{f'zero-shot, all {len(days)} days:':<35} {fmt_ci([day_metrics(*zs[d]) for d in days])}")
    print(f"walk-forward minus zero-shot, same days (paired): {fmt_diff(learned, same)}")
    fit_s = [wf[d][3] for d in test if not np.isnan(wf[d][3])]
    if fit_s:
        print(f"one walk-forward fit: {np.mean(fit_s):.1f}s on average")
    print()
    print("with a calibration: --recall R, each day kept by the rule of the fit that ranked it (min_keep 20)")
    print(f"{'R':>5} {'achieved recall':>16} {'|mean - R|':>11} {'kept fraction':>14} {'worst day recall':>17} "
          f"{'most kept':>10}")
    for R in (0.80, 0.90, 0.95):
        rec, frac = [], []
        for d in test:
            s, y, thr, _ = wf[d]
            k = decide_keep(s, recall=R, calibration=SimpleNamespace(recall_thresholds=thr), min_keep=20).n_keep
            r, f = kept_recall(s, y, k)
            rec.append(r)
            frac.append(f)
        print(f"{R:5.2f} {np.mean(rec):16.3f} {abs(np.mean(rec) - R):11.3f} {np.mean(frac):14.3f} "
              f"{np.min(rec):17.3f} {np.max(frac):10.3f}")
    print()
    print("without a calibration (zero-shot score):")
    for label, rule in ((f"default: fixed fraction {DEFAULT_KEEP}", {}), ("--recall 0.95 (zero-shot prior)",
                                                                         {"recall": 0.95}),
                        ("--recall 0.90 (zero-shot prior)", {"recall": 0.90})):
        for span, ds in ((f"all {len(days)} days", days), (f"last {len(test)} days", test)):
            rf = [kept_recall(zs[d][0], zs[d][1], decide_keep(zs[d][0], min_keep=20, **rule).n_keep) for d in ds]
            print(f"  {label:<34} {span:<13} mean recall {np.mean([r for r, _ in rf]):.3f}  kept fraction "
                  f"{np.mean([f for _, f in rf]):.3f}  worst day {np.min([r for r, _ in rf]):.3f}")
    print(f"total {time.perf_counter() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    from ranker.cli.app import script_main
    # a RankerError: one line naming the script's flag, status 1
    raise SystemExit(script_main(main, flags={"prefilter.embedder": "--embedder", "db": "--db"}))
