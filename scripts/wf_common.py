"""Shared by the scripts: where the 50 shared days (DATA) and their vectors' cache (SHARED_CACHE) are, from a
checkout or a worktree; the LLM evals' check of --backend and --model (check_llm); for scripts/eval_keep.py and
scripts/eval_labels.py, the days as HistoryData (vectors from a store) and the shipped calibration's walk-forward
scores on the last days, cached on disk."""
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


# the LLM evals' flags by the config key each stands for: an error about that key names the flag
LLM_FLAGS = {"scoring.backend": "--backend", "scoring.model": "--model"}


def check_llm(ap, backend: str, model: str) -> None:
    """--backend and --model of an LLM eval looked up before any work, as `ranker score` does: an unknown backend,
    a preset not prepared, a missing folder end the script (ap.error: status 1) in one line naming the flag at
    fault (an unknown backend was said as --model's, under the config key scoring.backend)."""
    from ranker.backends import backend_class
    from ranker.advice import prepare_advice
    from ranker.errors import RankerError
    try:
        backend_class(backend).check_model(model)
    except RankerError as e:
        said = e.render(lambda k: LLM_FLAGS.get(k, k)) + prepare_advice(e)
        ap.error(said if e.key in LLM_FLAGS else f"--model {model}: {said}")


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


FIGURES = (("auc", "AUC"), ("recall@25", "R@25"), ("recall@40", "R@40"), ("keep95", "keep95"))


def _values(rows: list[dict], k: str) -> list[float | None]:
    """One figure of each day's day_metrics, None where undefined (NaN: a day without picks)."""
    return [None if r.get(k) is None or np.isnan(r[k]) else float(r[k]) for r in rows]


def _bounds(r: dict, signed: bool = False) -> str:
    f = "{:+.2f}" if signed else "{:.2f}"
    return "[–]" if r["low"] is None else f"[{f.format(r['low'])}, {f.format(r['high'])}]"


def fmt_ci(rows: list[dict]) -> str:
    """'AUC 0.926 [0.91, 0.94]  R@25 ...': the mean over these days' day_metrics of each figure with its 95%
    interval from a bootstrap over the days, as `ranker eval` gives it (ranker/evaluate/intervals.py; none
    with fewer than 5 days)."""
    from ranker.evaluate.intervals import mean_interval
    out = []
    for k, name in FIGURES:
        v = [x for x in _values(rows, k) if x is not None]
        out.append(f"{name} {np.mean(v) if v else float('nan'):.3f} {_bounds(mean_interval(v))}")
    return "  ".join(out)


def fmt_diff(rows: list[dict], base: list[dict]) -> str:
    """'AUC +0.083 [+0.07, +0.10]  ...': each figure's mean per-day difference rows - base (day_metrics of two
    rankings of the same days, in the same order) with its paired 95% interval, as `ranker eval --against`."""
    from ranker.evaluate.intervals import mean_difference
    out = []
    for k, name in FIGURES:
        r = mean_difference(_values(rows, k), _values(base, k))
        d = r["difference"]
        out.append(f"{name} {'nan' if d is None else f'{d:+.3f}'} {_bounds(r, signed=True)}")
    return "  ".join(out)
