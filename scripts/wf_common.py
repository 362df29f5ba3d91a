"""Shared by scripts/eval_keep.py and scripts/eval_labels.py: the 50 shared days as HistoryData (vectors from a
store), and the shipped calibration's walk-forward scores on the last days, cached on disk."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# the 50 days' MiniLM vectors, kept beside the checkout between measurements (read; a missing day is added); a
# worktree one level deeper finds it one level further up, as DATA below: else the scripts' --db fell back to
# the user's own store in $RANKER_HOME and embedded the 50 days into it
SHARED_CACHE = next((p for p in (REPO.parent / "cache" / "history-embeddings.sqlite3",
                                 REPO.parents[1] / "cache" / "history-embeddings.sqlite3") if p.exists()),
                    REPO.parent / "cache" / "history-embeddings.sqlite3")
DATA = next((p for p in (REPO.parent / "shared" / "data", REPO.parents[1] / "shared" / "data") if p.exists()),
            REPO.parent / "shared" / "data")


def load_data(data_dir: Path, db: Path | None, embedder: str = "minilm"):
    """(HistoryData of every usable day, seconds): vectors from the store `db` (a day missing there is embedded
    and stored)."""
    from ranker.prefilter.calibrate import history_data
    from ranker.prefilter.embed import Embedder
    from ranker.prefilter.history import read_history
    from ranker.prompts import load_prompts
    from ranker.settings import resolve
    from ranker.store import Store
    t = time.perf_counter()
    days = read_history(data_dir / "days", warn=lambda m: print(m, file=sys.stderr)).days
    with Store(resolve(flags={"db": db} if db else {}).db_path) as store:
        data = history_data(days, load_prompts(), embedder=Embedder(embedder), store=store)
    return data, time.perf_counter() - t


def shipped_path(cache: Path | None, day: str, train) -> Path | None:
    """Where the scores of `day` by the shipped fit on `train` (HistoryData) are kept in `cache`, or None. The
    name carries what those scores depend on besides the day: the training rows and picks (fewer days with
    --every), the embedder (--embedder mpnet) and the topics the zero-shot score was measured under
    (--prompts); a file named by the day alone was read back for any of them."""
    if not cache:
        return None
    return Path(cache) / (f"wf-shipped--{day}--{len(train.y)}-{int(train.y.sum())}-{train.embedder}-"
                          f"{train.topics or 'notopics'}.npz")


def shipped_walk_forward(data, test_days, cache: Path | None) -> dict:
    """day -> (scores of the shipped calibration fit on the days before it, GPT's picks, that fit's recall
    thresholds, fit seconds); kept in `cache` under shipped_path's names (the format eval_walkforward.py's
    --recall-study reads too)."""
    from ranker.prefilter.calibrate import fit_data
    out = {}
    for d in test_days:
        tr, te = data.subset(data.groups < d), data.subset(data.groups == d)
        path = shipped_path(cache, d, tr)
        if path is not None and path.exists():
            z = np.load(path)
            out[d] = (z["scores"], z["labels"].astype(bool), json.loads(str(z["thresholds"])),
                      float(z["seconds"]) if "seconds" in z else float("nan"))
            continue
        t = time.perf_counter()
        c = fit_data(tr)
        secs = time.perf_counter() - t
        out[d] = (c.score(te.X, te.zs, te.papers), te.y, c.recall_thresholds, secs)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".part.npz")
            np.savez(tmp, scores=out[d][0], labels=te.y, thresholds=json.dumps(c.recall_thresholds), seconds=secs)
            tmp.replace(path)
        print(f"  fit for {d}: {secs:.1f}s", file=sys.stderr, flush=True)
    return out


def fmt(m: dict) -> str:
    return f"AUC {m['auc']:.3f}  R@25 {m['recall@25']:.3f}  R@40 {m['recall@40']:.3f}  keep95 {m['keep95']:.3f}"
