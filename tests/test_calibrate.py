"""Calibration without a model: history readers (three digest formats), fitting, the file and its errors."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ranker.errors import InputError
from ranker.prefilter.calibrate import Calibration, fit, leave_one_day_out, mean_metrics
from ranker.compare import read_scores
from ranker.prefilter.history import load_day, load_history
from ranker.records import Paper

from conftest import DAYS, SEED_DIGEST, ranker



def gpt_ids(day: str) -> list[str]:
    return [json.loads(line)["id"] for line in (DAYS / day / "gpt_scores.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------- history
def test_history_in_the_shared_days_layout():
    warnings = []
    days = load_history(DAYS, warn=warnings.append)
    assert [d.date for d in days] == ["2025-04-30", "2025-05-13", "2025-05-15", "2025-06-23", "2025-07-02"]
    assert [len(d.picks) for d in days] == [25, 36, 17, 47, 21] and warnings == []
    d = days[2]
    assert len(d.papers) == 192 and d.source == "gpt_scores.jsonl"
    assert sum(d.labels) == 17 and d.picks == {p.id for p in d.papers if p.extra.get("gpt_selected")}


def test_digest_markdown_and_json_outputs_give_the_same_picks(tmp_path):
    md = list(read_scores(SEED_DIGEST))
    assert len(md) == 47 and set(md) == set(gpt_ids("2025-06-23"))
    # a day given as a listing plus the published Markdown digest (and a note that is not a digest)
    day = tmp_path / "hist" / "2025-06-23"
    day.mkdir(parents=True)
    shutil.copy(DAYS / "2025-06-23" / "listing.jsonl", day / "listing.jsonl")
    shutil.copy(SEED_DIGEST, day / "2025-06-23.md")
    (day / "a-notes.txt").write_text("read these first\n")
    warnings = []
    d = load_day(day, warn=warnings.append)
    assert d.source == "2025-06-23.md" and d.picks == set(md) and d.missing == [] and warnings == []
    # the digest's JSON output gives the same picks (and wins over the Markdown)
    out = {i: {"ARXIVID": i, "COMMENT": "c", "RELEVANCE": 9, "NOVELTY": 8, "SCORE": 17} for i in md}
    (day / "output.json").write_text(json.dumps(out))
    d = load_day(day)
    assert d.source == "output.json" and d.picks == set(md)


def test_picks_missing_from_the_listing_are_reported(tmp_path):
    hist = tmp_path / "hist"
    part = hist / "2025-05-15"
    part.mkdir(parents=True)
    lines = (DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()
    picks = set(gpt_ids("2025-05-15"))
    dropped = [ln for ln in lines if json.loads(ln)["id"] in picks][:5]
    (part / "listing.jsonl").write_text("\n".join(ln for ln in lines if ln not in dropped) + "\n")
    shutil.copy(DAYS / "2025-05-15" / "gpt_scores.jsonl", part / "gpt_scores.jsonl")
    none = hist / "2025-05-16"                         # a day none of whose picks is in its listing
    none.mkdir()
    (none / "listing.jsonl").write_text("\n".join(ln for ln in lines if json.loads(ln)["id"] not in picks))
    shutil.copy(DAYS / "2025-05-15" / "gpt_scores.jsonl", none / "gpt_scores.jsonl")
    warnings = []
    days = load_history(hist, warn=warnings.append)
    assert [d.date for d in days] == ["2025-05-15"] and len(days[0].picks) == 12
    assert any("5 of 17 GPT picks" in w and "2025-05-15" in w for w in warnings)
    assert any("2025-05-16" in w and "skipped" in w for w in warnings)


def test_history_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_history(tmp_path / "nope")
    with pytest.raises(InputError, match="no day folders"):
        load_history(tmp_path)
    d = tmp_path / "2025-01-01"
    d.mkdir()
    (d / "listing.jsonl").write_text(json.dumps({"id": "2501.00001", "title": "t", "abstract": "a"}) + "\n")
    with pytest.raises(InputError, match="no GPT picks"):
        load_history(tmp_path)


# --------------------------------------------------------------------------- fitting and the file
def _toy(n_days=3, n=120, dim=16, seed=0):
    """Days of random unit vectors where picks lean towards one direction and use one word."""
    rng = np.random.default_rng(seed)
    X, y, g, papers = [], [], [], []
    for d in range(n_days):
        lab = rng.random(n) < 0.15
        v = rng.normal(size=(n, dim))
        v[lab, 0] += 2.5
        X.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        y.append(lab)
        g += [f"2025-01-0{d + 1}"] * n
        papers += [Paper(id=f"{d}.{i}", title=("sparse theorem " if lab[i] and rng.random() < .7 else "robot ")
                         + f"paper {i}", abstract="we study things", categories=["cs.LG"]) for i in range(n)]
    X, y = np.concatenate(X).astype(np.float32), np.concatenate(y)
    zs = X[:, 0] + 0.5 * rng.normal(size=len(y))
    return X, y, zs, np.array(g), papers


def test_fit_save_load_and_score(tmp_path):
    X, y, zs, g, papers = _toy()
    cal = fit(X, y, zs, g, papers, embedder="toy")
    assert cal.dim == 16 and len(cal.stack) == 4 and "theorem" in cal.vocab
    assert cal.trained_on["days"] == ["2025-01-01", "2025-01-02", "2025-01-03"]
    p = cal.score(X, zs, papers)
    assert p.shape == (len(y),) and ((p > 0) & (p < 1)).all()
    assert p[y].mean() > p[~y].mean() + 0.2
    f = tmp_path / "cal.json"
    cal.save(f)
    back = Calibration.load(f)
    np.testing.assert_allclose(back.score(X, zs, papers), p)

    loo = leave_one_day_out(X, y, zs, g, papers, embedder="toy")
    assert set(loo) == set(g) and mean_metrics(loo, "calibrated")["auc"] > 0.8


def test_calibration_file_errors(tmp_path):
    X, y, zs, g, papers = _toy(n_days=2)
    cal = fit(X, y, zs, g, papers, embedder="mpnet")
    with pytest.raises(InputError, match="made with the embedder 'mpnet'"):
        cal.check_embedder("minilm")
    with pytest.raises(InputError, match="16-d"):
        cal.score(np.ones((2, 8), np.float32), np.zeros(2), papers[:2])
    with pytest.raises(InputError, match="not found"):
        Calibration.load(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text('{"hello": 1}')
    with pytest.raises(InputError, match="not a calibration file"):
        Calibration.load(tmp_path / "bad.json")
    with pytest.raises(InputError, match="both papers GPT picked"):
        fit(X, np.zeros(len(y), bool), zs, g, papers, embedder="x")


def test_prefilter_with_another_embedders_calibration_is_a_one_line_error(tmp_path):
    X, y, zs, g, papers = _toy(n_days=2)
    f = tmp_path / "cal.json"
    fit(X, y, zs, g, papers, embedder="mpnet").save(f)
    out = tmp_path / "o.jsonl"
    r = ranker("prefilter", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", out, "--calibration", f,
               "--db", tmp_path / "r.sqlite3")
    assert r.returncode == 1 and not out.exists()
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --calibration: this calibration was made with the "
                                               "embedder 'mpnet' (16-d), not 'minilm'"), r.stderr
    (tmp_path / "junk.json").write_text("not json")
    r = ranker("prefilter", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", out, "--calibration",
               tmp_path / "junk.json", "--db", tmp_path / "r.sqlite3")
    assert r.returncode == 1 and "not a calibration file" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_calibrate_cli_errors(tmp_path):
    r = ranker("calibrate", "--history", tmp_path / "none", "--out", tmp_path / "c.json")
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].endswith("history directory not found")


def test_a_history_listing_reports_the_rows_it_skips(tmp_path):
    """calibrate reads papers too: what a day's listing skipped is said, with the count and the first place."""
    from ranker.prefilter.history import load_day
    day = tmp_path / "2025-05-15"
    day.mkdir()
    rows = (DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()
    (day / "listing.jsonl").write_text("\n".join([rows[0], "{broken", rows[1], '{"no": "id"}', *rows[2:]]) + "\n")
    (day / "gpt_scores.jsonl").write_text((DAYS / "2025-05-15" / "gpt_scores.jsonl").read_text())
    heard: list[str] = []
    d = load_day(day, warn=heard.append)
    assert len(d.papers) == len(rows) and d.picks
    assert heard == [f"2 records skipped (unreadable or without id/title); first at {day / 'listing.jsonl'}:2"]
