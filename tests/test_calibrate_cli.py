"""`ranker calibrate` on real shared days with MiniLM, then `ranker prefilter --calibration`."""
from __future__ import annotations

import json
import shutil

import pytest

from conftest import DAYS, ranker

pytestmark = pytest.mark.slow


def test_calibrate_five_days_then_prefilter_with_it_by_recall(tmp_path, embed_cache_db):
    hist = tmp_path / "history"
    for day in ("2025-04-30", "2025-05-13", "2025-05-15", "2025-06-23", "2025-07-02"):
        shutil.copytree(DAYS / day, hist / day)
    cal = tmp_path / "cal.json"
    r = ranker("calibrate", "--history", hist, "--out", cal, "--db", embed_cache_db)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    # walk-forward on the last third of the days (2 of 5), each fit on the days before it, beside zero-shot
    assert out[0].startswith("walk-forward on 2 days (2025-06-23..2025-07-02)"), r.stdout
    assert out[1].split() == ["AUC", "R@25", "R@40", "keep95"]
    zs, calib = out[2].split(), out[3].split()
    assert zs[0] == "zero-shot" and calib[0] == "calibrated" and len(zs) == len(calib) == 5
    assert all(0 < float(v) <= 1 for v in zs[1:] + calib[1:])
    assert "history: 5 days, 1,445 papers, 146 GPT picks" in r.stderr
    assert "keeps by recall 0.95 at score >=" in r.stderr.splitlines()[-1]
    d = json.loads(cal.read_text())
    assert d["embedder"] == "minilm" and d["dim"] == 384 and d["version"] == 2
    assert d["walk_forward"]["days"] == ["2025-06-23", "2025-07-02"]
    assert d["trained_on"]["picks"] == 146 and "0.95" in d["recall_thresholds"]

    ranked = tmp_path / "ranked.jsonl"
    r = ranker("prefilter", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", ranked,
               "--calibration", cal, "--db", embed_cache_db)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in ranked.read_text().splitlines()]
    assert len(rows) == 192 and all(0 < x["prefilter_score"] < 1 for x in rows)
    assert [x["prefilter_score"] for x in rows] == sorted((x["prefilter_score"] for x in rows), reverse=True)
    last = r.stderr.splitlines()[-1]
    assert "(by recall 0.95 (calibration); calibrated, embedder minilm" in last, last
    # the default with a calibration keeps by recall 0.95: every kept row says so, at the stored threshold
    thr = d["recall_thresholds"]["0.95"]
    kept = [x for x in rows if x["kept"]]
    assert kept and {x["rule"] for x in kept} <= {"recall", "min_keep"}
    # the rule's own rows (some: else the threshold check below checks nothing) are the day's top ones, the
    # min_keep floor only past them
    by_rule = [x["kept"] and x["rule"] == "recall" for x in rows]
    assert 0 < sum(by_rule) and by_rule == [True] * sum(by_rule) + [False] * (len(rows) - sum(by_rule))
    assert all(x["prefilter_score"] >= thr - 1e-6 for x in kept if x["rule"] == "recall")
    assert all(x["prefilter_score"] < thr + 1e-6 for x in rows if not x["kept"])
    # a day it was fit on: GPT's picks are (nearly) all kept
    picks = {json.loads(line)["id"] for line in (DAYS / "2025-05-15" / "gpt_scores.jsonl").read_text().splitlines()}
    assert len(picks & {x["id"] for x in kept}) >= 15

    r = ranker("prefilter", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", ranked,
               "--calibration", cal, "--db", embed_cache_db, "--recall", "0.6")
    assert r.returncode == 0, r.stderr
    fewer = [json.loads(line) for line in ranked.read_text().splitlines()]
    assert sum(x["kept"] for x in fewer) < len(kept)
    r = ranker("prefilter", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", ranked,
               "--calibration", cal, "--db", embed_cache_db, "--recall", "0.6", "--keep", "0.3")
    assert r.returncode == 1 and "--keep and --recall" in r.stderr


@pytest.mark.parametrize("command", ["prefilter", "run", "backfill"])
def test_a_calibration_from_stdin_is_refused_in_one_line_saying_why(tmp_path, command):
    """`--calibration -` said "-: calibration file not found"; the run's manifest names the calibration's file
    and a rerun reads it again, which stdin cannot give."""
    import subprocess
    from conftest import RANKER
    listing = DAYS / "2025-05-15" / "listing.jsonl"
    args = {"prefilter": ["--papers", listing, "--out", tmp_path / "r.jsonl"],
            "run": ["--papers", listing, "--out", tmp_path / "o"],
            "backfill": ["--from", listing, "--out", tmp_path / "o", "--embed"]}[command]
    r = subprocess.run([*RANKER, command, *map(str, args), "--calibration", "-"], input=b'{"version": 1}',
                       capture_output=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.decode() == ("error: --calibration: '-' (stdin) cannot be the calibration: the run's manifest "
                                 "names its file, and a rerun reads it again; give the file `ranker calibrate` "
                                 "wrote\n")
    assert not (tmp_path / "o").exists() and not (tmp_path / "r.jsonl").exists()
