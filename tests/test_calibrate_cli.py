"""`ranker calibrate` on real shared days with MiniLM, then `ranker prefilter --calibration`."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import DAYS, ranker

pytestmark = pytest.mark.slow


def test_calibrate_two_days_then_prefilter_with_it(tmp_path, embed_cache_db):
    hist = tmp_path / "history"
    for day in ("2025-05-15", "2025-07-02"):
        shutil.copytree(DAYS / day, hist / day)
    cal = tmp_path / "cal.json"
    r = ranker("calibrate", "--history", hist, "--out", cal, "--db", embed_cache_db)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("leave-one-day-out")
    assert any(line.strip().startswith("2025-05-15") for line in out)
    assert any(line.strip().startswith("2025-07-02") for line in out)
    mean = [line for line in out if line.strip().startswith("mean")][0]
    assert "zero-shot" in mean and "calibrated" in mean and "recall@25" in mean
    assert "history: 2 days, 436 papers, 38 GPT picks" in r.stderr
    d = json.loads(cal.read_text())
    assert d["embedder"] == "minilm" and d["dim"] == 384 and len(d["emb_coef"]) == 384
    assert set(d["loo"]) == {"2025-05-15", "2025-07-02"}
    assert d["trained_on"]["picks"] == 38

    ranked = tmp_path / "ranked.jsonl"
    r = ranker("prefilter", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", ranked,
               "--calibration", cal, "--db", embed_cache_db)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in ranked.read_text().splitlines()]
    assert len(rows) == 192 and all(0 < x["prefilter_score"] < 1 for x in rows)
    assert [x["prefilter_score"] for x in rows] == sorted((x["prefilter_score"] for x in rows), reverse=True)
    assert "(calibrated, embedder minilm" in r.stderr.splitlines()[-1]
    # a day it was fit on: GPT's picks are (nearly) all kept
    kept = {x["id"] for x in rows if x["kept"]}
    picks = {json.loads(line)["id"] for line in (DAYS / "2025-05-15" / "gpt_scores.jsonl").read_text().splitlines()}
    assert len(picks & kept) >= 15
