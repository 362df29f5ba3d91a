"""`ranker eval` (ranker.evaluate) on shared days with the fake backend and vectors put in the store beforehand
(no model): the prefilter figures it reports equal an independent computation from the prefilter step's own
output, the LLM and digest figures equal what the fake backend's known scores give, calibrations are fit only
on earlier days, bad days are skipped and counted, and a rerun of the same model scores nothing."""
from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from conftest import DAYS, store_vectors
from ranker.backends.fake import FakeBackend, fake_scores
from ranker.errors import InputError
from ranker.evaluate import choose_days, evaluate_history, summary_markdown
from ranker.evaluate.figures import RANKING
from ranker.prefilter.calibrate import Calibration
from ranker.settings import resolve
from ranker.sources import read_papers
from ranker.steps import prefilter_day
from ranker.store import Store

THREE = ("2025-04-30", "2025-05-13", "2025-05-15")
FIVE = THREE + ("2025-06-23", "2025-07-02")
FLAGS = {"backend": "fake", "model": "tiny", "top": 40, "min_relevance": 6, "min_novelty": 6}


def make_history(root, days=THREE):
    for d in days:
        shutil.copytree(DAYS / d, root / d)
    return root


@pytest.fixture
def settings(tmp_path):
    return resolve(flags={**FLAGS, "db": tmp_path / "db.sqlite3"}, env={"RANKER_HOME": str(tmp_path / "home")})


@pytest.fixture
def store(settings):
    with Store(settings.db_path) as s:
        for d in FIVE:
            store_vectors(s, list(read_papers(DAYS / d / "listing.jsonl")))
        yield s


def gpt_of(day):
    return {json.loads(x)["id"]: json.loads(x) for x in (DAYS / day / "gpt_scores.jsonl").read_text().splitlines()}


# ------------------------------------------------------------------ an independent computation
def auc(scores, labels):
    return roc_auc_score(labels, scores)


def top_share(ordered_labels, fraction):
    k = math.ceil(fraction * len(ordered_labels) - 1e-9)
    return sum(ordered_labels[:k]) / sum(ordered_labels)


def keep95(ordered_labels):
    need, seen = math.ceil(0.95 * sum(ordered_labels) - 1e-9), 0
    for rank, picked in enumerate(ordered_labels, start=1):
        seen += picked
        if seen >= need:
            return rank / len(ordered_labels)


def expected_prefilter(ranked, picks):
    labels = [r.paper.id in picks for r in ranked]        # ranked is best first
    kept = [r.kept for r in ranked]
    return {"papers": len(ranked), "picks": sum(labels), "auc": auc([r.prefilter_score for r in ranked], labels),
            "recall@25": top_share(labels, 0.25), "recall@40": top_share(labels, 0.40), "keep95": keep95(labels),
            "kept": sum(kept), "kept_fraction": sum(kept) / len(kept),
            "kept_recall": sum(k and y for k, y in zip(kept, labels)) / sum(labels)}


def close(got: dict, want: dict):
    for k, v in want.items():
        assert got[k] == pytest.approx(v, abs=1e-6), k


# ------------------------------------------------------------------ tests
def test_three_days_zero_shot_with_the_fake_backend(tmp_path, settings, store):
    hist = make_history(tmp_path / "hist")
    seen = []
    res = evaluate_history(hist, tmp_path / "out", settings, store=store, llm=True,
                           progress=lambda stage, done, total: seen.append((stage, done, total)))
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    html = (tmp_path / "out" / "report.html").read_text()
    assert data == json.loads(json.dumps(res.to_dict()))
    assert [d["date"] for d in data["days"]] == list(THREE) and data["n_skipped"] == 0
    assert ("ranking days", 3, 3) in seen and ("scoring days", 3, 3) in seen
    assert [x for x in seen if x[0].startswith("loading")] == [("loading the fake backend (fake:tiny)", 0, None),
                                                              ("loading the fake backend (fake:tiny)", 1, 1)]
    assert all(store.get_rankings(d) == [] for d in THREE)     # past days' rankings are not stored by an eval

    pooled = {"tp": 0, "fp": 0, "fn": 0}
    pairs_rel = []
    for day in data["days"]:
        d = day["date"]
        papers = list(read_papers(DAYS / d / "listing.jsonl"))
        gpt = gpt_of(d)
        picks = set(gpt)
        # the prefilter step itself, run by the test: its ranking decides every prefilter figure
        ranked = prefilter_day(papers, settings, store=store).ranked
        want = expected_prefilter(ranked, picks)
        close(day["prefilter"], want)
        assert day["prefilter"]["kept"] == 40 and day["prefilter"]["rule"] == "top"
        curve = day["curve"]
        assert len(curve) == 101 and curve[0] == 0 and curve[-1] == 1
        assert curve[40] == pytest.approx(top_share([r.paper.id in picks for r in ranked], 0.40), abs=1e-6)

        # the LLM's figures from the fake backend's known answers, computed here
        kept = [r.paper.id for r in ranked if r.kept]
        local = {i: fake_scores(i) for i in kept}
        on_picks = sorted(i for i in picks if i in local)
        assert [p["id"] for p in day["pairs"]] == on_picks
        g = [gpt[i]["RELEVANCE"] for i in on_picks]
        l_ = [local[i][0] for i in on_picks]
        rel = day["llm"]["relevance"]
        assert rel["n"] == len(on_picks)
        if len(set(g)) > 1 and len(set(l_)) > 1:
            assert rel["spearman"] == pytest.approx(spearmanr(g, l_).statistic, abs=1e-6)
        if on_picks:
            assert rel["within1"] == pytest.approx(np.mean(np.abs(np.array(g) - np.array(l_)) <= 1), abs=1e-6)
        else:                             # none of GPT's picks was kept: nothing to agree on, no figure
            assert rel["within1"] is None and rel["spearman"] is None
        digest = {i for i, (r, n) in local.items() if r >= 6 and n >= 6}
        assert set(day["digest"]) == digest
        tp, fp, fn = len(digest & picks), len(digest - picks), len(picks - digest)
        sel = day["llm"]["digest"]
        assert (sel["tp"], sel["fp"], sel["fn"]) == (tp, fp, fn)
        assert sel["precision"] == pytest.approx(tp / (tp + fp), abs=1e-6) if tp + fp else sel["precision"] is None
        assert sel["recall"] == pytest.approx(tp / len(picks), abs=1e-6)
        pooled = {k: pooled[k] + v for k, v in {"tp": tp, "fp": fp, "fn": fn}.items()}
        pairs_rel += list(zip(g, l_))

    o = data["overall"]
    for k in ("auc", "recall@25", "recall@40", "keep95", "kept_fraction", "kept_recall"):
        assert o["prefilter"][k] == pytest.approx(np.mean([d["prefilter"][k] for d in data["days"]]), abs=1e-6)
    assert o["llm"]["scored"] == 120 and o["llm"]["failed"] == 0
    assert o["llm"]["relevance"]["n"] == len(pairs_rel)
    dg = o["llm"]["digest"]
    assert (dg["tp"], dg["fp"], dg["fn"]) == (pooled["tp"], pooled["fp"], pooled["fn"])
    assert dg["f1"] == pytest.approx(2 * pooled["tp"] / (2 * pooled["tp"] + pooled["fp"] + pooled["fn"]), abs=1e-6)

    assert html.startswith("<!DOCTYPE html>") and html.count("data:image/png;base64,") == 3
    assert "2025-05-13" in html and "fake" in html and "<script" not in html
    md = summary_markdown(data)
    assert "| zero-shot |" in md and "Digest vs GPT's picks" in md


def test_a_second_eval_of_the_same_model_scores_nothing(tmp_path, settings, store):
    hist = make_history(tmp_path / "hist")
    first = evaluate_history(hist, tmp_path / "a", settings, store=store, llm=True, days=2)
    be = FakeBackend("tiny")
    again = evaluate_history(hist, tmp_path / "b", settings, store=store, days=2, backend=be)
    assert [d.date for d in again.days] == list(THREE[1:])
    assert be.calls == [] and all(d.llm["reused"] == d.llm["scored"] == 40 for d in again.days)
    assert again.overall == first.overall
    seen = []
    third = evaluate_history(hist, tmp_path / "c", settings, store=store, llm=True, days=2,
                             progress=lambda *a: seen.append(a))
    assert not [x for x in seen if x[0].startswith("loading")]      # every kept paper stored: no model opened
    assert third.overall == first.overall


def test_a_full_disk_while_the_report_is_written_leaves_the_earlier_eval_whole(tmp_path, settings, store,
                                                                             monkeypatch):
    """eval.json and report.html are one set: a disk that filled while the report was written left this eval's
    eval.json (other days, other figures) beside the earlier eval's report.html."""
    from conftest import disk_full_writing
    hist = make_history(tmp_path / "hist")
    out = tmp_path / "out"
    evaluate_history(hist, out, settings, store=store, days=1)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert set(before) == {"eval.json", "report.html"}
    failed = disk_full_writing(monkeypatch, "report.html")
    with pytest.raises(InputError) as e:
        evaluate_history(hist, out, settings, store=store, days=2)
    assert failed and str(e.value).startswith(f"{out / 'report.html'}: cannot write: No space left on device")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before      # no temporary file left either


@pytest.mark.timeout(60)                        # about 5 s; the wait for a reader lasted for good
def test_a_fifo_in_the_place_of_a_days_calibration_is_replaced_not_written_into(tmp_path, settings, store):
    """calibrations/DAY.json is a name eval makes in its folder (saved with own_name): a FIFO in its place was
    written into, and the eval waited for a reader for good. Replaced by the new file."""
    import os
    import stat
    hist = make_history(tmp_path / "hist", FIVE)
    cals = tmp_path / "out" / "calibrations"
    cals.mkdir(parents=True)
    for d in FIVE:
        os.mkfifo(cals / f"{d}.json")
    (day,) = evaluate_history(hist, tmp_path / "out", settings, store=store, calibrate=True, days=1).days
    assert stat.S_ISREG(os.lstat(cals / f"{day.date}.json").st_mode)
    assert Calibration.load(cals / f"{day.date}.json").trained_on["days"] == [d for d in FIVE if d < day.date]


def test_calibrations_are_fit_only_on_earlier_days(tmp_path, settings, store):
    hist = make_history(tmp_path / "hist", FIVE)
    assert choose_days({d: len(gpt_of(d)) for d in FIVE}, calibrate=True, train_once=False, days=None) == list(FIVE[3:])
    res = evaluate_history(hist, tmp_path / "out", settings, store=store, calibrate=True)
    assert [d.date for d in res.days] == list(FIVE[3:]) and res.overall["zero_shot"]["auc"] is not None
    for day in res.days:
        cal_file = tmp_path / "out" / "calibrations" / f"{day.date}.json"
        cal = Calibration.load(cal_file)
        assert cal.trained_on["days"] == [d for d in FIVE if d < day.date]
        assert day.calibration["file"] == str(cal_file) and day.calibration["last_day"] < day.date
        # the shape of a run manifest's calibration_fit (its keys were "first" and "last", and no "created")
        assert day.calibration == {"file": str(cal_file), "created": cal.trained_on["created"],
                                   "days": len(cal.trained_on["days"]), "first_day": FIVE[0],
                                   "last_day": cal.trained_on["days"][-1], "papers": cal.trained_on["papers"],
                                   "picks": cal.trained_on["picks"], "labels": 0}
        papers = list(read_papers(DAYS / day.date / "listing.jsonl"))
        s = settings.model_copy(update={"prefilter": settings.prefilter.model_copy(
            update={"calibration": str(cal_file)})})
        close(day.prefilter, expected_prefilter(prefilter_day(papers, s, store=store).ranked, set(gpt_of(day.date))))

    once = evaluate_history(hist, tmp_path / "once", settings, store=store, calibrate=True, train_once=True, days=2)
    assert sorted(p.name for p in (tmp_path / "once" / "calibrations").iterdir()) == ["2025-06-23.json"]
    assert all(d.calibration["last_day"] == "2025-05-15" for d in once.days)

    # a calibration named in the settings (ranker.toml) was fit on 2025-06-23: an eval without --calibrate
    # ranks zero-shot, as it says, and never with it
    seen = settings.model_copy(update={"prefilter": settings.prefilter.model_copy(
        update={"calibration": str(tmp_path / "out" / "calibrations" / "2025-07-02.json")})})
    zs = evaluate_history(hist, tmp_path / "zs", seen, store=store, days=2)
    assert zs.settings["calibration"] == "zero-shot" and [d.date for d in zs.days] == list(FIVE[3:])
    for day in zs.days:
        papers = list(read_papers(DAYS / day.date / "listing.jsonl"))
        picks = set(gpt_of(day.date))
        close(day.prefilter, expected_prefilter(prefilter_day(papers, settings, store=store).ranked, picks))
        assert day.prefilter["auc"] != pytest.approx(
            expected_prefilter(prefilter_day(papers, seen, store=store).ranked, picks)["auc"], abs=1e-3)


def test_where_the_time_went_is_in_eval_json_and_the_report(tmp_path, settings, store):
    hist = make_history(tmp_path / "hist", FIVE)
    res = evaluate_history(hist, tmp_path / "out", settings, store=store, calibrate=True)
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    t = data["timings"]
    assert t["fits"] == 2 and t["calibrate"] > 0 and t["embedding"] >= 0
    assert t["calibrate"] == pytest.approx(sum(d["seconds"]["calibrate"] for d in data["days"]), abs=0.11)
    assert t["prefilter"] == pytest.approx(sum(d["seconds"]["prefilter"] for d in data["days"]), abs=0.11)
    assert t["total"] == data["seconds"] >= t["embedding"] + t["calibrate"] + t["prefilter"] - 0.2
    html = (tmp_path / "out" / "report.html").read_text()
    assert f"took {t['total']:.0f} s (embedding the days" in html and "2 calibration fits" in html
    assert res.timings == t


def test_a_zero_shot_eval_holds_no_matrix_of_every_papers_vector(tmp_path, settings, store, monkeypatch):
    """A zero-shot eval embeds the days into the store and ranks each on its own: the calibration's matrix of every
    paper's vector of the history (history_data: 112 MB a year in, 224 MB while joined, held to the end of the
    eval, of its 604 MB peak) was built and never read. Each day is still embedded (by its vectors' presence: the
    days' papers join the store)."""
    import ranker.prefilter.calibrate as calibrate

    def whole_history(*a, **k):
        raise AssertionError("a zero-shot eval built the matrix of every paper's vector")
    monkeypatch.setattr(calibrate, "history_data", whole_history)
    hist = make_history(tmp_path / "hist")
    seen = []
    res = evaluate_history(hist, tmp_path / "out", settings, store=store,
                           progress=lambda what, i, n: seen.append((what, i, n)))
    assert [d.date for d in res.days] == list(THREE)
    assert [x for x in seen if x[0] == "embedding days"] == [("embedding days", i, 3) for i in (1, 2, 3)]
    ids = [p.id for d in THREE for p in read_papers(DAYS / d / "listing.jsonl")]
    assert len(store.get_papers(ids)) == len(set(ids))


def test_the_replayed_papers_join_the_store_and_the_index_with_their_days(tmp_path, settings, store):
    from ranker.index import CorpusIndex, earlier_neighbours
    hist = make_history(tmp_path / "hist")
    warned = []
    evaluate_history(hist, tmp_path / "out", settings, store=store, warn=warned.append)
    # the index's first build in a new home is nothing to warn of (an eval is often a user's first command)
    assert warned == []
    ids = [p.id for d in THREE for p in read_papers(DAYS / d / "listing.jsonl")]
    got = store.get_papers(ids)
    assert len(got) == len(set(ids)) and all(got[i].date for i in ids)
    st = CorpusIndex(store, "minilm").status()
    assert st.problem is None and st.vectors == st.store_vectors > 0
    last = list(read_papers(DAYS / THREE[-1] / "listing.jsonl"))[:5]
    near = earlier_neighbours(last, store, k=3)         # the novelty context of a replayed day: earlier days only
    assert all(len(ns) == 3 and all(n.date and n.date < THREE[-1] for n in ns) for ns in near.values())


def test_which_days(tmp_path):
    days = {f"2025-05-{i:02d}": 12 for i in range(1, 13)}
    dates = sorted(days)
    assert choose_days(days, calibrate=False, train_once=False, days=None) == dates
    assert choose_days(days, calibrate=False, train_once=False, days=2) == dates[-2:]
    assert choose_days(days, calibrate=True, train_once=False, days=None) == dates[3:]    # 3 days, 36 picks before
    assert choose_days(days, calibrate=True, train_once=True, days=None) == dates[-4:]
    assert choose_days(days, calibrate=True, train_once=False, days=50) == dates[3:]
    few = {d: (5 if d < "2025-05-06" else 12) for d in dates}                  # 25 picks in 5 days, 37 in 6
    assert choose_days(few, calibrate=True, train_once=False, days=None) == dates[6:]
    with pytest.raises(InputError, match="at least 3 days and 30 GPT picks .* add 1 more day, or evaluate") as e:
        choose_days({d: 12 for d in dates[:3]}, calibrate=True, train_once=False, days=None)
    assert e.value.key == "calibrate"
    with pytest.raises(InputError, match="add 1 more day and 15 more GPT picks"):
        choose_days({d: 5 for d in dates[:3]}, calibrate=True, train_once=False, days=None)
    with pytest.raises(InputError) as e:
        choose_days(days, calibrate=False, train_once=False, days=0)
    assert e.value.key == "days"
    with pytest.raises(InputError, match="needs one: add calibrate") as e:
        choose_days(days, calibrate=False, train_once=True, days=None)
    assert e.value.key == "train_once"


def _truncate_last_line(path):
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])


def test_bad_days_are_skipped_and_counted(tmp_path, settings, store):
    hist = make_history(tmp_path / "hist", FIVE)
    (hist / "2025-04-29").mkdir()                 # no listing at all
    (hist / "2025-04-29" / "notes.txt").write_text("nothing here\n")
    # no gpt_scores.jsonl, and no gpt_selected flags in the listing either
    bare = hist / "2025-04-30"
    (bare / "gpt_scores.jsonl").unlink()
    rows = [json.loads(x) for x in (bare / "listing.jsonl").read_text().splitlines()]
    (bare / "listing.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != "gpt_selected"}) + "\n"
                                                for r in rows))
    # picks missing from the listing
    gone = set(list(gpt_of("2025-05-13"))[:2])
    lst = hist / "2025-05-13" / "listing.jsonl"
    lst.write_text("".join(x + "\n" for x in lst.read_text().splitlines() if json.loads(x)["id"] not in gone))
    # a truncated line
    _truncate_last_line(hist / "2025-05-15" / "gpt_scores.jsonl")
    # a digest in a format no reader knows
    (hist / "2025-06-23" / "gpt_scores.jsonl").unlink()
    (hist / "2025-06-23" / "digest.json").write_text('{"format": "something else", "papers": 3}\n')

    warned = []
    res = evaluate_history(hist, tmp_path / "out", settings, store=store, warn=warned.append)
    assert [d.date for d in res.days] == ["2025-07-02"]
    skipped = {x["day"]: x["problem"] for x in res.skipped}
    assert set(skipped) >= {"2025-04-30", "2025-05-13", "2025-05-15", "2025-06-23"}
    assert "no GPT picks" in skipped["2025-04-30"]
    assert "not in listing.jsonl" in skipped["2025-05-13"]
    assert "not valid JSON" in skipped["2025-05-15"]
    assert "not a JSON digest" in skipped["2025-06-23"]
    for day in skipped:
        assert sum(day in w for w in warned) == 1           # one line per skipped day, naming it
    assert all("\n" not in w for w in warned)
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert data["n_skipped"] == len(skipped) and data["overall"]["days"] == 1
    assert "2025-05-15" in (tmp_path / "out" / "report.html").read_text()


def test_one_day_is_said_as_one_day(tmp_path, settings, store):
    """One day evaluated and one skipped: "1 day (2025-05-15)" and "1 day skipped", in the terminal summary and
    the report, not "1 days (2025-05-15..2025-05-15)" or "1 day(s)"."""
    hist = make_history(tmp_path / "hist", THREE[1:])
    (hist / THREE[1] / "gpt_scores.jsonl").write_text("{\"id\": \"2505.0\n")         # a line cut short
    res = evaluate_history(hist, tmp_path / "out", settings, store=store)
    md = summary_markdown(res.to_dict())
    assert md.startswith(f"## ranker eval: 1 day ({THREE[2]}), "), md
    assert f"\n1 day skipped: {THREE[1]} (" in md, md
    html = (tmp_path / "out" / "report.html").read_text()
    assert f"<title>ranker eval: {THREE[2]}</title>" in html and f"1 day ({THREE[2]})" in html
    assert "1 day skipped: " in html and "day(s)" not in html and "1 days" not in html


def test_the_summary_groups_the_digest_s_counts_as_its_heading_does(tmp_path, settings, store):
    """An eval of the 50 shared days with a model: its heading said "1,368 GPT picks" and its digest line "1203
    picked, 1368 by GPT, 602 both", the same count in two styles; the scorer's failures and the pairs too."""
    hist = make_history(tmp_path / "hist", THREE[2:])
    data = json.loads(json.dumps(evaluate_history(hist, tmp_path / "out", settings, store=store, llm=True).to_dict()))
    o = data["overall"]
    o["picks"] = 1368
    o["llm"]["digest"].update(local_picks=1203, gpt_picks=1368, tp=602)
    o["llm"]["failed"], o["llm"]["relevance"]["n"] = 1500, 1100
    md = summary_markdown(data)
    assert ", 1,368 GPT picks" in md, md
    assert "Digest vs GPT's picks: 1,203 picked, 1,368 by GPT, 602 both: " in md, md
    assert ", 1,500 failed; on GPT's picks it scored (n=1,100):" in md, md


def test_an_output_folder_inside_the_history_is_not_a_skipped_day(tmp_path, settings, store):
    """`--out ~/gpt/eval` beside the day folders: the eval's own folder is neither read nor said as a bad day,
    on the first run (made before the history is read) or on the next; a real odd folder still is."""
    hist = make_history(tmp_path / "hist")
    (hist / "notes").mkdir()
    for _ in range(2):
        warned = []
        res = evaluate_history(hist, hist / "eval", settings, store=store, warn=warned.append)
        assert [x["day"] for x in res.skipped] == ["notes"]
        assert [w for w in warned if "skipped" in w] == [f"{hist / 'notes'}: day skipped: the folder's name is "
                                                         "not a day as YYYY-MM-DD"]
        assert [d.date for d in res.days] == list(THREE)
    assert (hist / "eval" / "eval.json").exists()


def test_a_history_with_no_usable_day_is_one_error(tmp_path, settings, store):
    """...and leaves no empty --out folder behind (the folder used to be made before the history was read)."""
    with pytest.raises(InputError, match="history directory not found"):
        evaluate_history(tmp_path / "nope", tmp_path / "out", settings, store=store)
    assert not (tmp_path / "out").exists()
    (tmp_path / "empty" / "2025-01-01").mkdir(parents=True)
    with pytest.raises(InputError, match="no usable day"):
        evaluate_history(tmp_path / "empty", tmp_path / "out", settings, store=store)
    assert not (tmp_path / "out").exists()
    with pytest.raises(InputError, match="usable days"):            # too few days to calibrate on
        evaluate_history(make_history(tmp_path / "hist"), tmp_path / "out", settings, store=store, calibrate=True)
    assert not (tmp_path / "out").exists()
    (tmp_path / "file").write_text("")                               # a file where the folder goes: said first
    with pytest.raises(InputError, match="output directory"):
        evaluate_history(tmp_path / "nope", tmp_path / "file", settings, store=store)


# ------------------------------------------------------------------ the command
def test_the_command_with_the_fake_backend(tmp_path):
    from conftest import ranker
    db = tmp_path / "db.sqlite3"
    with Store(db) as s:
        for d in THREE:
            store_vectors(s, list(read_papers(DAYS / d / "listing.jsonl")))
    hist = make_history(tmp_path / "hist")
    (hist / "2025-05-14").mkdir()                                   # a day with a listing but no picks
    (hist / "2025-05-14" / "listing.jsonl").write_text(
        json.dumps({"id": "2505.00001", "title": "T", "abstract": "A", "date": "2025-05-14"}) + "\n")
    p = ranker("eval", "--history", hist, "--out", tmp_path / "out", "--backend", "fake", "--model", "tiny",
               "--top", "40", "--min-relevance", "6", "--min-novelty", "6", "--db", db, "--days", "5")
    assert p.returncode == 0, p.stderr
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert [d["date"] for d in data["days"]] == list(THREE) and data["n_skipped"] == 1
    assert (tmp_path / "out" / "report.html").read_text().startswith("<!DOCTYPE html>")
    o = data["overall"]
    assert p.stdout.startswith("## ranker eval: 3 days (2025-04-30..2025-05-15)")
    assert f"| zero-shot | {o['prefilter']['auc']:.3f} | {o['prefilter']['recall@25']:.3f} |" in p.stdout
    assert f"F1 {o['llm']['digest']['f1']:.3f}" in p.stdout
    assert "Note: 5 days asked for, 3 evaluated" in p.stdout and data["notes"] == ["5 days asked for, 3 evaluated"]
    skipped = [x for x in p.stderr.splitlines() if "2025-05-14" in x]
    assert len(skipped) == 1 and "day skipped" in skipped[0], p.stderr
    assert "Traceback" not in p.stderr


def test_the_command_words_errors_as_one_line(tmp_path):
    from conftest import ranker
    hist = make_history(tmp_path / "hist")
    p = ranker("eval", "--history", hist, "--out", tmp_path / "out", "--calibrate")
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("error: --calibrate: the history has 3 usable days") and "add 1 more day" in p.stderr
    p = ranker("eval", "--history", hist, "--out", tmp_path / "out", "--train-once")
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith("error: --train-once:") and "add --calibrate" in p.stderr
    p = ranker("eval", "--history", tmp_path / "nope", "--out", tmp_path / "out")
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "history directory not found" in p.stderr
    p = ranker("eval", "--history", hist, "--out", tmp_path / "out", "--keep", "0.3", "--top", "5")
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "--keep" in p.stderr and "--top" in p.stderr


def test_a_history_with_no_day_to_evaluate_makes_no_database(tmp_path):
    """`eval` opened (made) the --db database before the history was read: a history whose every day was
    skipped, or too short for --calibrate, left a new database file behind. The history is read first now;
    a database already there is left as it was."""
    from conftest import ranker
    bad = tmp_path / "bad"
    for d in ("2025-05-13", "2025-05-14"):                          # listings without GPT's picks
        (bad / d).mkdir(parents=True)
        (bad / d / "listing.jsonl").write_text(
            json.dumps({"id": "2505.00001", "title": "T", "abstract": "A", "date": d}) + "\n")
    hist, db = make_history(tmp_path / "hist"), tmp_path / "new" / "db.sqlite3"
    for args, line in (((bad,), f"error: --history {bad}: no usable day in the history (2 skipped;"),
                       ((hist, "--calibrate"), "error: --calibrate: the history has 3 usable days")):
        p = ranker("eval", "--history", *args, "--out", tmp_path / "out", "--db", db)
        errors = [x for x in p.stderr.splitlines() if x.startswith("error:")]
        assert p.returncode == 1 and len(errors) == 1 and errors[0].startswith(line), p.stderr
        assert "Traceback" not in p.stderr
        assert not (tmp_path / "new").exists() and not (tmp_path / "out").exists()
    db.parent.mkdir()
    with Store(db) as s:
        s.conn.execute("CREATE TABLE mine (x)")
    before = db.read_bytes()
    p = ranker("eval", "--history", bad, "--out", tmp_path / "out", "--db", db)
    assert p.returncode == 1 and db.read_bytes() == before


def test_a_paper_the_model_fails_on_is_counted_not_picked(tmp_path, settings, store):
    hist = make_history(tmp_path / "hist")
    papers = list(read_papers(DAYS / THREE[-1] / "listing.jsonl"))
    bad = prefilter_day(papers, settings, store=store, record=False).ranked[0].paper.id
    res = evaluate_history(hist, tmp_path / "out", settings, store=store, days=1,
                           backend=FakeBackend("tiny", garbage={bad}))
    (day,) = res.days
    assert day.llm["failed"] == 1 and day.llm["scored"] == 39 and res.overall["llm"]["failed"] == 1
    assert bad not in day.digest and bad not in [p["id"] for p in day.pairs]
    assert day.llm["digest"]["n"] == len(papers)


def gpt_picked_nothing(hist, day):
    """GPT's digest of `day` there and empty (it kept no paper), the listing's flags to match."""
    (hist / day / "gpt_scores.jsonl").write_text("")
    lst = hist / day / "listing.jsonl"
    lst.write_text("".join(json.dumps({**json.loads(x), "gpt_selected": False}) + "\n"
                           for x in lst.read_text().splitlines()))


def test_a_day_gpt_picked_nothing_is_evaluated_and_its_local_picks_are_false_positives(tmp_path, settings, store):
    """A day GPT's digest kept nothing from is not skipped: what the prefilter kept of it is reported and every
    paper the local digest picks on it is a false positive in the pooled precision; the figures measured against
    the picks are undefined for it (null, "–"), left out of their means, and the summary says on how many days."""
    four = THREE + ("2025-06-23",)
    none = "2025-05-13"
    hist = make_history(tmp_path / "hist", four)
    gpt_picked_nothing(hist, none)
    warned = []
    evaluate_history(hist, tmp_path / "out", settings, store=store, llm=True, warn=warned.append)
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert warned == [] and data["n_skipped"] == 0 and [d["date"] for d in data["days"]] == list(four)

    pooled = {"tp": 0, "fp": 0, "fn": 0}
    for day in data["days"]:
        d = day["date"]
        picks = set() if d == none else set(gpt_of(d))
        ranked = prefilter_day(list(read_papers(DAYS / d / "listing.jsonl")), settings, store=store).ranked
        p = day["prefilter"]
        if d == none:
            assert p["picks"] == 0 and p["kept"] == 40 and p["kept_fraction"] == pytest.approx(40 / len(ranked), abs=1e-6)
            assert all(p[k] is None for k in RANKING + ("kept_recall",)) and set(day["curve"]) == {None}
        else:
            close(p, expected_prefilter(ranked, picks))
        digest = {r.paper.id for r in ranked if r.kept and min(fake_scores(r.paper.id)) >= 6}
        assert set(day["digest"]) == digest
        tp, fp, fn = len(digest & picks), len(digest - picks), len(picks - digest)
        sel = day["llm"]["digest"]
        assert (sel["tp"], sel["fp"], sel["fn"], sel["gpt_picks"]) == (tp, fp, fn, len(picks))
        if d == none:
            fp_none = fp
            assert fp > 0 and sel["precision"] == 0 and sel["recall"] is None and day["pairs"] == []
        pooled = {k: pooled[k] + v for k, v in {"tp": tp, "fp": fp, "fn": fn}.items()}

    o = data["overall"]
    picked = [d for d in data["days"] if d["date"] != none]
    assert o["days"] == 4 and o["no_pick_days"] == 1 and o["picks"] == sum(len(gpt_of(d)) for d in four if d != none)
    for k in RANKING + ("kept_recall",):           # over the days with picks
        assert o["prefilter"][k] == pytest.approx(np.mean([d["prefilter"][k] for d in picked]), abs=1e-6), k
    assert o["prefilter"]["kept_fraction"] == pytest.approx(
        np.mean([d["prefilter"]["kept_fraction"] for d in data["days"]]), abs=1e-6)     # over every day
    dg = o["llm"]["digest"]
    assert (dg["tp"], dg["fp"], dg["fn"]) == (pooled["tp"], pooled["fp"], pooled["fn"])
    assert dg["precision"] == pytest.approx(pooled["tp"] / (pooled["tp"] + pooled["fp"]), abs=1e-6)
    assert dg["precision"] < pooled["tp"] / (pooled["tp"] + pooled["fp"] - fp_none)

    html = (tmp_path / "out" / "report.html").read_text()
    p = data["days"][1]["prefilter"]
    assert (f'<tr><td class="t">{none}</td><td>{p["papers"]}</td><td>0</td><td>–</td><td>–</td><td>–</td><td>–</td>'
            f'<td>40 ({p["kept_fraction"]:.2f})</td><td>–</td><td>top</td></tr>') in html
    assert "4 days (2025-04-30..2025-06-23)" in html and "(1 day with none)" in html
    assert ("1 day with no GPT pick counts in kept, and its digest&#x27;s picks as false positives, but not in AUC, "
            "R@25, R@40, keep95 and recall of kept: those are means over the 3 days with picks.") in html
    assert html.count("data:image/png;base64,") == 3
    md = summary_markdown(data)
    assert f"{o['picks']} GPT picks (1 day with none)" in md and "means over the 3 days with picks" in md


def test_a_day_gpt_picked_nothing_is_learnt_from_walk_forward_and_has_no_ranking_figure(tmp_path, settings, store):
    """With --calibrate a day with no pick is a test day like any (kept fraction) but has no AUC / keep95, its
    own or zero-shot's, and no NaN reaches the means; a later day's fit learns from its papers as negatives."""
    none = "2025-06-23"
    hist = make_history(tmp_path / "hist", FIVE)
    gpt_picked_nothing(hist, none)
    res = evaluate_history(hist, tmp_path / "out", settings, store=store, calibrate=True)
    assert [d.date for d in res.days] == [none, "2025-07-02"]
    day, last = res.days
    assert day.prefilter["picks"] == 0 and day.prefilter["kept_fraction"] > 0
    assert all(day.prefilter[k] is None and day.zero_shot[k] is None for k in RANKING)
    assert res.overall["no_pick_days"] == 1
    for k in RANKING:
        assert res.overall["prefilter"][k] == last.prefilter[k] and res.overall["zero_shot"][k] == last.zero_shot[k]
    cal = Calibration.load(tmp_path / "out" / "calibrations" / "2025-07-02.json")
    assert cal.trained_on["days"] == list(FIVE[:4]) and cal.trained_on["picks"] == 25 + 36 + 17
    assert cal.trained_on["papers"] == sum(len(list(read_papers(DAYS / d / "listing.jsonl"))) for d in FIVE[:4])
    assert last.calibration["days"] == 4
    data = json.loads((tmp_path / "out" / "eval.json").read_text())      # written without NaN (allow_nan=False)
    assert data["days"][0]["zero_shot"]["auc"] is None and data["overall"]["zero_shot"]["auc"] is not None


def test_which_days_count_only_days_with_picks_as_history_to_learn_from():
    """A day GPT picked nothing on is evaluated, but a calibration needs MIN_DAYS days with picks before."""
    dates = [f"2025-05-{i:02d}" for i in range(1, 6)]
    picks = dict(zip(dates, (20, 0, 20, 20, 20)))
    assert choose_days(picks, calibrate=True, train_once=False, days=None) == dates[4:]
    assert choose_days(picks, calibrate=False, train_once=False, days=None) == dates
    with pytest.raises(InputError, match=r"the history has 4 usable days \(1 with no GPT pick\); .* add 1 more day, "):
        choose_days(dict(list(picks.items())[:4]), calibrate=True, train_once=False, days=None)


def test_bad_input_is_said_before_the_database_is_made(tmp_path):
    """`eval --history <missing>` made the --db database (and its folder) before it said the history was not
    there; so did --days 0, a file given for the history and an --out that is a file. Nothing is made now."""
    from conftest import ranker
    hist, f, db = make_history(tmp_path / "hist"), tmp_path / "f.txt", tmp_path / "new" / "db.sqlite3"
    f.write_text("")
    for args, line in (((tmp_path / "nope", tmp_path / "out"),
                        f"--history {tmp_path / 'nope'}: history directory not found"),
                       ((f, tmp_path / "out"),
                        f"--history {f}: not a folder (a history is a folder of <date>/ day folders)"),
                       ((hist, tmp_path / "out", "--days", "0"), "--days: needs at least 1 day"),
                       ((hist, f), f"--out {f}: not a directory")):
        p = ranker("eval", "--history", args[0], "--out", args[1], *args[2:], "--db", db)
        assert p.returncode == 1 and p.stderr == f"error: {line}\n", p.stderr
        assert not (tmp_path / "new").exists() and not (tmp_path / "out").exists()


def test_gpt_picks_are_read_at_the_cut_offs_the_local_digest_picks_at(tmp_path, settings, store):
    """A user whose GPT digest kept RELEVANCE >= 7 evaluates with --min-relevance 7: GPT's picks are the
    digest's RELEVANCE 7 papers too, as the local digest's are. Eval read GPT's picks at the fixed 8 / 7 and
    only the local digest at the user's cut-offs: the prefilter was measured against a third of the picks
    missing, and the local digest's RELEVANCE 7 picks counted as false positives."""
    hist = make_history(tmp_path / "hist")
    f = hist / THREE[-1] / "gpt_scores.jsonl"
    rows = [json.loads(x) for x in f.read_text().splitlines()]
    for r in rows[::2]:
        r["RELEVANCE"] = 7
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    papers = list(read_papers(DAYS / THREE[-1] / "listing.jsonl"))
    for rel, picks in ((7, {r["id"] for r in rows}), (8, {r["id"] for r in rows[1::2]})):
        s = settings.model_copy(update={"digest": settings.digest.model_copy(
            update={"min_relevance": rel, "min_novelty": 7})})
        res = evaluate_history(hist, tmp_path / f"out{rel}", s, store=store, days=1, llm=True)
        (day,) = res.days
        assert res.settings["min_relevance"] == rel and res.settings["min_novelty"] == 7
        ranked = prefilter_day(papers, s, store=store).ranked
        close(day.prefilter, expected_prefilter(ranked, picks))
        kept = {r.paper.id for r in ranked if r.kept}
        assert {p["id"] for p in day.pairs} == picks & kept          # GPT's picks the LLM scored, RELEVANCE 7 too
        digest = {i for i in kept if fake_scores(i)[0] >= rel and fake_scores(i)[1] >= 7}
        sel = day.llm["digest"]
        assert (sel["gpt_picks"], sel["tp"], sel["fp"]) == (len(picks), len(digest & picks), len(digest - picks))
        md = summary_markdown(res.to_dict())
        assert md.splitlines()[0].endswith(f", {len(picks)} GPT picks")
        said = "GPT's picks (and the digest's) at your cut-offs: RELEVANCE >= 7 and NOVELTY >= 7"
        assert (said in md.splitlines()) == (rel == 7)
        zs = summary_markdown({**res.to_dict(), "overall": {k: v for k, v in res.overall.items() if k != "llm"}})
        assert ("GPT's picks at your cut-offs: RELEVANCE >= 7 and NOVELTY >= 7" in zs.splitlines()) == (rel == 7)
        assert f"a pick (GPT's and the digest's) is RELEVANCE &ge; {rel} and NOVELTY &ge; 7" in \
            (tmp_path / f"out{rel}" / "report.html").read_text()


def test_days_gpt_picked_under_other_topics_are_said(tmp_path, settings, store):
    """Eval measured the prefilter, under the prompt's topics, against GPT's picks of days its digests show
    were made under other topics (the user edited them since), without a word; the note names those days."""
    from test_history_input import md_history, other_topics
    from ranker.prompts import load_prompts
    _, old = other_topics(tmp_path)
    hist = md_history(tmp_path / "hist", {THREE[0]: old, THREE[1]: old, THREE[2]: load_prompts()})
    res = evaluate_history(hist, tmp_path / "out", settings, store=store)
    assert [d.date for d in res.days] == list(THREE) and res.overall["picks"] == sum(len(gpt_of(d)) for d in THREE)
    (note,) = res.notes
    assert note.startswith(f"GPT picked 2 days of the history ({THREE[0]}..{THREE[1]}) under other topics than ")
    # the library names the setting, not a flag (eval.json and report.html are read outside the CLI too)
    assert note.endswith("(pass your topics with scoring.prompts, or leave those days out)"), note
    assert f"Note: {note}" in summary_markdown(res.to_dict())
    assert json.loads((tmp_path / "out" / "eval.json").read_text())["notes"] == [note]


def test_a_history_kept_in_month_folders_is_replayed_with_gpt_scores(tmp_path, settings, store):
    """Days in month folders (2025-05/2025-05-13/) are evaluated as days at the top are, GPT's scores of its
    picks read from the day's own folder for the agreement figures."""
    flat, nested = make_history(tmp_path / "flat"), tmp_path / "nested"
    for d in THREE:
        shutil.copytree(DAYS / d, nested / d[:7] / d)
    a = evaluate_history(flat, tmp_path / "a", settings, store=store, llm=True)
    b = evaluate_history(nested, tmp_path / "b", settings, store=store, llm=True)
    assert [d.date for d in b.days] == list(THREE) and b.skipped == []
    assert b.overall == a.overall and [d.pairs for d in b.days] == [d.pairs for d in a.days]
    assert b.overall["llm"]["relevance"]["n"] > 0


def test_what_a_digest_holds_amiss_is_said_once(tmp_path, settings, store):
    """A paper GPT's digest lists without scores (no pick) is said when the history is read; scoring the days
    read the digest again for GPT's scores and said it a second time."""
    hist = make_history(tmp_path / "hist")
    f = hist / THREE[-1] / "gpt_scores.jsonl"
    other = next(p.id for p in read_papers(DAYS / THREE[-1] / "listing.jsonl") if p.id not in gpt_of(THREE[-1]))
    f.write_text(f.read_text() + json.dumps({"id": other, "COMMENT": "no scores"}) + "\n")
    warned = []
    res = evaluate_history(hist, tmp_path / "out", settings, store=store, days=1, llm=True, warn=warned.append)
    assert res.days[0].pairs and len([w for w in warned if other in w]) == 1, warned


def test_an_undefined_spearman_says_why(tmp_path, settings, store, monkeypatch):
    """A small model that gives every paper the same NOVELTY has no rank correlation with GPT: the "–" in the
    summary and the report comes with the reason, not left for the user to guess."""
    import ranker.backends.fake as fake
    real = fake.fake_scores
    monkeypatch.setattr(fake, "fake_scores", lambda i: (real(i)[0], 10))
    hist = make_history(tmp_path / "hist")
    res = evaluate_history(hist, tmp_path / "out", settings, store=store, days=1, backend=FakeBackend("tiny"))
    data = res.to_dict()
    m = data["overall"]["llm"]
    n = m["novelty"]["n"]
    assert n >= 2 and m["novelty"]["spearman"] is None and m["relevance"]["spearman"] is not None
    said = f"Novelty Spearman undefined: the model gave all {n} the same NOVELTY, 10."
    assert said in summary_markdown(data).splitlines()
    html = (tmp_path / "out" / "report.html").read_text()
    assert said in html
    # under the table whose "–" it explains, before the digest's
    assert html.index("<th>spearman</th>") < html.index(said) < html.index("The final digest against GPT's picks")
    assert "Relevance Spearman" not in summary_markdown(data)


def test_eval_json_says_why_a_spearman_is_null_pooled_and_per_day(tmp_path, settings, store, monkeypatch):
    """eval.json's `spearman: null` comes with its reason (`spearman_undefined`), pooled and on each day, as the
    summary says it; and report.html says each day's own undefined Spearman under the per-day table (the
    pooled one's reason was all it had, the day's "–" was left unexplained)."""
    import ranker.backends.fake as fake
    real = fake.fake_scores
    monkeypatch.setattr(fake, "fake_scores", lambda i: (real(i)[0], 10))
    hist = make_history(tmp_path / "hist")
    evaluate_history(hist, tmp_path / "out", settings, store=store, days=2, backend=FakeBackend("tiny"))
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    m = data["overall"]["llm"]
    n = m["novelty"]["n"]
    assert m["novelty"]["spearman"] is None and n >= 2
    assert m["novelty"]["spearman_undefined"] == f"the model gave all {n} the same NOVELTY, 10"
    assert m["relevance"]["spearman"] is not None and m["relevance"]["spearman_undefined"] is None
    html = (tmp_path / "out" / "report.html").read_text().split("Per day: LLM and digest")[1]
    assert len(data["days"]) == 2
    for d in data["days"]:
        k = d["llm"]["novelty"]["n"]
        assert d["llm"]["novelty"]["spearman"] is None and k >= 2
        assert d["llm"]["novelty"]["spearman_undefined"] == f"the model gave all {k} the same NOVELTY, 10"
        said = f"{d['date']}: Novelty Spearman undefined: the model gave all {k} the same NOVELTY, 10."
        assert f'<p class="muted">{said}</p>' in html, html[:3000]


def test_a_days_undefined_spearman_is_said_though_the_pooled_one_is_defined():
    """One day whose model gave both of GPT's picks the same NOVELTY, and one with a single pick: the pooled
    Spearman is defined (no reason), each day's is not, and each says its own reason."""
    from ranker.evaluate.figures import llm_figures, overall
    from ranker.evaluate.report import day_spearman_gaps
    a = [{"id": "a1", "gpt": [8, 7], "local": [8, 9]}, {"id": "a2", "gpt": [9, 8], "local": [9, 9]}]
    b = [{"id": "b1", "gpt": [10, 9], "local": [6, 5]}]
    days = []
    for date, pairs in (("2025-05-13", a), ("2025-05-14", b)):
        ids = [p["id"] for p in pairs]
        days.append({"date": date, "prefilter": {"papers": 2, "picks": len(ids)}, "pairs": pairs,
                     "llm": {"scored": len(ids), "failed": 0, **llm_figures(pairs, ids, set(ids), set())}})
    o = overall(days)["llm"]
    assert o["novelty"]["spearman"] is not None and o["novelty"]["spearman_undefined"] is None
    assert days[0]["llm"]["novelty"]["spearman_undefined"] == "the model gave all 2 the same NOVELTY, 9"
    assert days[0]["llm"]["relevance"]["spearman_undefined"] is None
    need = "it needs at least 2 of GPT's picks with a score from both GPT and the model, and has 1"
    assert days[1]["llm"]["relevance"]["spearman_undefined"] == need
    assert day_spearman_gaps(days) == [
        "2025-05-13: Novelty Spearman undefined: the model gave all 2 the same NOVELTY, 9.",
        f"2025-05-14: Relevance Spearman undefined: {need}; novelty Spearman undefined: {need}."]


def test_the_report_says_the_reason_eval_json_carries_not_one_worked_out_again():
    """eval.json carries why a Spearman is null (`spearman_undefined`, pooled and per day); the report's words
    were worked out again from the days' pairs, a second source that could say otherwise (an eval.json read
    back by a later ranker whose rule changed, or one whose pairs are left out). The report reads the file's."""
    from ranker.evaluate.figures import llm_figures, overall
    from ranker.evaluate.report import day_spearman_gaps, spearman_gaps
    a = [{"id": "a1", "gpt": [8, 7], "local": [8, 9]}, {"id": "a2", "gpt": [9, 8], "local": [9, 9]}]
    days = [{"date": "2025-05-13", "prefilter": {"papers": 2, "picks": 2}, "pairs": a,
             "llm": {"scored": 2, "failed": 0, **llm_figures(a, ["a1", "a2"], {"a1", "a2"}, set())}}]
    o = json.loads(json.dumps(overall(days)["llm"]))            # as read back from eval.json
    assert o["novelty"]["spearman"] is None
    o["novelty"]["spearman_undefined"] = "the reason eval.json gives"
    days[0]["llm"]["novelty"]["spearman_undefined"] = "the day's reason eval.json gives"
    assert spearman_gaps(days, o) == "Novelty Spearman undefined: the reason eval.json gives."
    assert day_spearman_gaps(days) == ["2025-05-13: Novelty Spearman undefined: the day's reason eval.json gives."]
    # an eval.json from before the key: the reason is worked out from its pairs, as before
    del o["novelty"]["spearman_undefined"]
    assert spearman_gaps(days, o) == "Novelty Spearman undefined: the model gave all 2 the same NOVELTY, 9."


def test_ctrl_c_on_a_later_day_counts_the_scores_of_the_days_before(tmp_path, settings, store):
    """Ctrl-C while the second day is scored: the line says the first day's scores are kept too (they are, in
    the store), not the count of the interrupted day alone ("0 papers scored so far are kept")."""
    from ranker.errors import Interrupted
    hist = make_history(tmp_path / "hist")
    with pytest.raises(Interrupted) as e:
        evaluate_history(hist, tmp_path / "out", settings, store=store, days=2,
                         backend=FakeBackend("tiny", interrupt_after=1))     # one call a day: the 2nd day's
    assert (e.value.scored, e.value.due) == (40, 80)
    assert str(e.value) == "interrupted during scoring; 40 papers scored so far are kept; rerun to resume"
    assert store.conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 40
    assert not (tmp_path / "out" / "eval.json").exists()


def test_ctrl_c_says_which_scores_were_scored_now_and_which_reused(tmp_path, settings, store):
    """Ctrl-C of an eval whose earlier day's scores came from the store (an eval stopped before): the line
    says how many it scored itself and how many it reused, not all of them as "scored so far"."""
    from ranker.errors import Interrupted
    hist = make_history(tmp_path / "hist")
    with pytest.raises(Interrupted):                    # the first stopped eval stores 2025-05-13's scores
        evaluate_history(hist, tmp_path / "out", settings, store=store, days=2,
                         backend=FakeBackend("tiny", interrupt_after=1))
    with pytest.raises(Interrupted) as e:               # 2025-04-30 scored now, 2025-05-13 reused, then Ctrl-C
        evaluate_history(hist, tmp_path / "out", settings, store=store, days=3,
                         backend=FakeBackend("tiny", interrupt_after=1))
    assert (e.value.scored, e.value.reused, e.value.due) == (80, 40, 120)
    assert str(e.value) == ("interrupted during scoring; 40 papers scored now and 40 reused from the store are "
                            "kept; rerun to resume")
    assert store.conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 80


def test_a_rerun_says_its_scores_came_from_the_store(tmp_path, settings, store):
    """A second eval of the same model scores nothing: its summary and report say every score was reused from
    the store, not "80 papers scored" (eval.json's `reused` had the truth); the first says it scored them."""
    hist = make_history(tmp_path / "hist")
    first = evaluate_history(hist, tmp_path / "a", settings, store=store, days=2, backend=FakeBackend("tiny"))
    be = FakeBackend("tiny")
    again = evaluate_history(hist, tmp_path / "b", settings, store=store, days=2, backend=be)
    assert be.calls == []
    said = {"a": "scores of 80 kept papers (80 scored now, 0 reused from the store), 0 failed",
            "b": "scores of 80 kept papers (0 scored now, 80 reused from the store), 0 failed"}
    for res, out in ((first, "a"), (again, "b")):
        line = next(x for x in summary_markdown(res.to_dict()).splitlines() if x.startswith("LLM fake:tiny (fake): "))
        assert line.startswith(f"LLM fake:tiny (fake): {said[out]}; "), line
        html = (tmp_path / out / "report.html").read_text()
        assert said[out][:1].upper() + said[out][1:] + "." in html
    rows = (tmp_path / "b" / "report.html").read_text().split("Per day: LLM and digest")[1]
    assert "<th>scored now</th><th>reused</th>" in rows
    assert all(f'<td class="t">{d.date}</td><td>0</td><td>40</td>' in rows for d in again.days), rows[:600]


def test_an_undefined_spearman_says_only_what_is_so():
    """The reason under an undefined Spearman: no pair is not "0 of GPT's picks scored" (picks flagged in a
    listing carry no GPT score, however many the model scored), and a constant GPT score of 8.5 is not "8"."""
    from ranker.evaluate.report import spearman_gaps
    llm = {"relevance": {"spearman": None}, "novelty": {"spearman": None}}
    said = spearman_gaps([{"pairs": []}, {}], llm)
    assert "scored, it needs" not in said
    assert said.startswith("Relevance Spearman undefined: it needs at least 2 of GPT's picks with a score from "
                           "both GPT and the model, and has 0; novelty"), said
    pairs = [{"gpt": [r, 8.5], "local": [r, n]} for r, n in ((7, 6), (8, 9), (9, 9))]
    said = spearman_gaps([{"pairs": pairs}], {"relevance": {"spearman": 1.0}, "novelty": {"spearman": None}})
    assert said == "Novelty Spearman undefined: GPT gave all 3 the same NOVELTY, 8.5."


def test_an_exclusion_matching_nearly_every_paper_is_said_once_by_eval(tmp_path, settings, store):
    """`ranker prefilter`, `run` and `backfill` say an exclusion that matches nearly every paper of a real day (the
    stop word `the` as a phrase); eval applied it to each day without a word, the days' recall near nothing."""
    s = settings.model_copy(update={"prefilter": settings.prefilter.model_copy(
        update={"exclude": ["the", "reinforcement learning"]})})
    heard: list[str] = []
    res = evaluate_history(make_history(tmp_path / "hist", THREE[1:]), tmp_path / "out", s, store=store,
                           warn=heard.append)
    assert len(res.days) == 2
    said = [h for h in heard if "the exclusion" in h]
    assert said == [h for h in said if h.startswith("prefilter.exclude: the exclusion 'the' matches 190 of the 192 ")]
    assert len(said) == 1, heard


def test_the_report_groups_the_days_counts_as_the_summary_does(tmp_path, settings, store):
    """report.html's per-day table wrote a day's papers, picks and kept bare (12345) and its LLM line the failed
    count bare, where the summary and the report's other tables group thousands (12,345): one helper,
    ranker.io.grouped, writes them all."""
    from ranker.evaluate import render_html
    from ranker.io import grouped
    hist = make_history(tmp_path / "hist")
    evaluate_history(hist, tmp_path / "out", settings, store=store, llm=True)
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    for i, d in enumerate(data["days"]):                  # a year's backfill of days this size
        d["prefilter"].update(papers=12345 + i, picks=1234 + i, kept=2345 + i)
    data["overall"]["llm"]["failed"] = 1500
    html = render_html(data)
    table = html.split("Per day: prefilter")[1].split("</table>")[0]
    for i in range(len(data["days"])):
        assert f"<td>{grouped(12345 + i)}</td><td>{grouped(1234 + i)}</td>" in table
        assert f"<td>{grouped(2345 + i)} (" in table
    assert f", {grouped(1500)} failed." in html
    assert not re.findall(r"<td>\d{4,}\b", html) and " 1500 failed" not in html
