"""scripts/wf_common.py: the walk-forward fits' cache (eval_keep.py, eval_labels.py, eval_walkforward.py
--recall-study) is read back only by a run whose fit would be the same."""
from __future__ import annotations

import sys

import numpy as np

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import wf_common  # noqa: E402


def _data(embedder="minilm", topics="t1", days=("2025-01-01", "2025-01-02", "2025-01-03")):
    from ranker.prefilter.calibrate import HistoryData
    from ranker.records import Paper
    n = 4 * len(days)
    groups = np.repeat(np.asarray(days), 4)
    papers = [Paper(id=f"2501.{i:05d}", title="t", abstract="a", date=str(groups[i])) for i in range(n)]
    return HistoryData(np.zeros((n, 3), np.float32), np.arange(n) % 4 == 0, np.zeros(n), groups, papers,
                       embedder, topics)


def test_shipped_path_tells_apart_what_the_fit_depends_on(tmp_path):
    day = "2025-01-03"

    def path(d):
        return wf_common.shipped_path(tmp_path, day, d.subset(d.groups < day))
    base = path(_data())
    assert base == path(_data())
    assert base != path(_data(embedder="mpnet"))                    # eval_keep.py --embedder mpnet
    assert base != path(_data(topics="t2"))                         # eval_walkforward.py --prompts
    assert base != path(_data(days=("2025-01-02", "2025-01-03")))   # --every: fewer days before it
    assert wf_common.shipped_path(None, day, _data()) is None


def test_a_cached_fit_is_not_read_for_another_embedder(tmp_path, monkeypatch):
    calls = []

    class Fit:
        recall_thresholds = {"0.95": 0.0}

        def __init__(self, embedder):
            self.embedder = embedder

        def score(self, X, zs, papers):
            return np.full(len(papers), 1.0 if self.embedder == "minilm" else 2.0)

    def fit_data(tr):
        calls.append(tr.embedder)
        return Fit(tr.embedder)
    monkeypatch.setattr("ranker.prefilter.calibrate.fit_data", fit_data)
    day = "2025-01-03"
    a = wf_common.shipped_walk_forward(_data(), [day], tmp_path)
    b = wf_common.shipped_walk_forward(_data(embedder="mpnet"), [day], tmp_path)
    again = wf_common.shipped_walk_forward(_data(), [day], tmp_path)
    assert calls == ["minilm", "mpnet"]
    assert a[day][0][0] == 1.0 and b[day][0][0] == 2.0 and again[day][0][0] == 1.0


def test_the_shared_cache_is_found_from_a_worktree_one_level_deeper(tmp_path, monkeypatch):
    """A checkout at work/main finds work/cache, and so does a worktree at work/wt/NAME; before, the worktree's
    scripts fell back to the user's own store in $RANKER_HOME."""
    import importlib.util
    import shutil
    monkeypatch.setattr(sys, "path", list(sys.path))
    cache = tmp_path / "cache" / "history-embeddings.sqlite3"
    cache.parent.mkdir()
    cache.touch()
    for checkout in (tmp_path / "main", tmp_path / "wt" / "name"):
        (checkout / "scripts").mkdir(parents=True)
        shutil.copy(REPO / "scripts" / "wf_common.py", checkout / "scripts")
        spec = importlib.util.spec_from_file_location(f"wf_{checkout.name}", checkout / "scripts" / "wf_common.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        assert mod.SHARED_CACHE == cache, checkout
