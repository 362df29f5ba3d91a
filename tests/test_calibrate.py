"""Calibration without a model: history readers (three digest formats), fitting, the file and its errors."""
from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from ranker.errors import InputError
from ranker.compare import read_scores
from ranker.prefilter.calibrate import VERSION, Calibration, HistoryData, Options, fit, fit_data, fit_inputs
from ranker.prefilter.history import load_day, load_history
from ranker.prefilter.walkforward import table, walk_forward
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
    shutil.copytree(DAYS / "2025-05-13", hist / "2025-05-13")
    warnings = []
    days = load_history(hist, warn=warnings.append)
    # a listing that lacks some of the day's picks is not the day GPT judged: the day is skipped, not half used
    assert [d.date for d in days] == ["2025-05-13"] and len(warnings) == 2
    assert "2025-05-15: day skipped: 5 of 17 GPT picks (from gpt_scores.jsonl) are not in listing.jsonl" in warnings[0]
    assert "2025-05-16: day skipped: 17 of 17 GPT picks" in warnings[1]


def test_history_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_history(tmp_path / "nope")
    with pytest.raises(InputError, match="no day folders"):
        load_history(tmp_path)
    d = tmp_path / "2025-01-01"
    d.mkdir()
    (d / "listing.jsonl").write_text(json.dumps({"id": "2501.00001", "title": "t", "abstract": "a"}) + "\n")
    with pytest.raises(InputError, match=r"no usable day in the history \(1 skipped"):
        load_history(tmp_path)


# --------------------------------------------------------------------------- fitting and the file
def _toy(n_days=3, n=120, dim=16, seed=0):
    """Days of random unit vectors where picks lean towards one direction and use one word; one prolific author
    writes a third of the picks."""
    rng = np.random.default_rng(seed)
    X, y, g, papers = [], [], [], []
    for d in range(n_days):
        lab = rng.random(n) < 0.15
        v = rng.normal(size=(n, dim))
        v[lab, 0] += 2.5
        X.append(v / np.linalg.norm(v, axis=1, keepdims=True))
        y.append(lab)
        g += [f"2025-01-{d + 1:02d}"] * n
        papers += [Paper(id=f"{d}.{i}", title=("sparse theorem " if lab[i] and rng.random() < .7 else "robot ")
                         + f"paper {i}", abstract="we study things", categories=["cs.LG"],
                         authors=(["Ada Lovélace"] if lab[i] and rng.random() < .33 else [])
                         + [f"Author {d}-{i}"]) for i in range(n)]
    X, y = np.concatenate(X).astype(np.float32), np.concatenate(y)
    zs = X[:, 0] + 0.5 * rng.normal(size=len(y))
    return X, y, zs, np.array(g), papers


def test_a_day_of_two_labels_beside_the_others_is_learnt_from_not_a_crash():
    """Labels alone: 40 given one day, then one up and one down on each of two later days. The out-of-day fold
    that learnt from those two small days alone found no word in two of their titles and ended `ranker calibrate`
    (with or without the walk-forward figures) as "unexpected failure: After pruning, no terms remain"."""
    X, y, zs, g, papers = _toy(n_days=1, n=40)
    y[:10], y[10:] = True, False
    for d, words in (("2025-01-02", ("Quantum walks", "Spin chains", "Protein folding", "Enzymes bind")),
                     ("2025-01-03", ("Galaxy surveys", "Dark halos", "Coral reefs", "Ocean heat"))):
        X = np.vstack([X, X[:2]])
        y = np.concatenate([y, [True, False]])
        zs = np.concatenate([zs, zs[:2]])
        g = np.concatenate([g, [d, d]])
        papers += [Paper(id=f"{d}.{k}", title=t, abstract=a, categories=["cs.LG"], authors=[f"A {d} {k}"])
                   for k, (t, a) in enumerate((words[:2], words[2:]))]
    cal = fit(X, y, zs, g, papers, embedder="minilm")
    assert cal.trained_on["days"] == ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert np.isfinite(cal.score(X, zs, papers)).all()


def test_walk_forward_leaves_out_labels_given_after_the_test_day():
    """`ranker calibrate`'s printed figures: a day is ranked as the user lived it, so labels given on or after
    it (here: the first day's papers all labelled the wrong way round) do not reach its fit; given before, they
    do (the same labels change the figures)."""
    from ranker.prefilter.calibrate import walk_forward_report
    X, y, zs, g, papers = _toy(n_days=5)
    data = HistoryData(X, y, zs, g, papers, "toy")
    test = ["2025-01-04", "2025-01-05"]
    wrong = {p.id: not bool(v) for p, v, day in zip(papers, y, g) if day <= "2025-01-02"}

    def figures(dates):
        rep = walk_forward_report(data, test, labels=wrong, label_dates=dates)
        return [rep.learned[d]["auc"] for d in rep.days]
    plain = [walk_forward_report(data, test).learned[d]["auc"] for d in test]
    assert figures({pid: "2026-12-04" for pid in wrong}) == plain           # given after both: never used
    early = figures({pid: "2025-01-03" for pid in wrong})
    assert early[0] < plain[0] and early[1] < plain[1]                      # known before both: learned from
    on_first = figures({pid: "2025-01-04" for pid in wrong})               # given on the first test day
    assert on_first[0] == plain[0] and on_first[1] == early[1]
    assert figures(None) == early                                           # no dates: known before every day


def test_fit_save_load_and_score(tmp_path):
    X, y, zs, g, papers = _toy()
    cal = fit(X, y, zs, g, papers, embedder="toy", options=Options(meta=True, c_title=10.0))
    assert cal.dim == 16 and "theorem" in cal.text_models["words"]["vocab"]
    assert "theorem" in cal.text_models["title"]["vocab"] and "study" not in cal.text_models["title"]["vocab"]
    assert cal.inputs[:4] == ["embedding", "words", "title", "zero_shot"] and "authors_pick_max" in cal.inputs
    assert cal.trained_on["days"] == ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert cal.counts["picks"]["ada lovelace"] > 0          # names matched after folding accents and case
    p = cal.score(X, zs, papers)
    assert p.shape == (len(y),) and ((p > 0) & (p < 1)).all()
    assert p[y].mean() > p[~y].mean() + 0.2
    f = tmp_path / "cal.json"
    cal.save(f)
    assert json.loads(f.read_text())["version"] == VERSION
    back = Calibration.load(f)
    np.testing.assert_allclose(back.score(X, zs, papers), p)
    # thresholds for keep-by-recall: a higher recall needs a lower score
    t = back.recall_thresholds
    assert t["0.50"] >= t["0.90"] >= t["0.95"] >= t["1.00"] and back.recall_source == "out-of-day"
    assert back.recall_fractions["0.50"] <= back.recall_fractions["0.95"] <= 1.0


def test_walk_forward_ranks_each_day_with_a_fit_on_earlier_days_only():
    X, y, zs, g, papers = _toy(n_days=5)
    data = HistoryData(X, y, zs, g, papers, "toy")
    seen = []

    def fit_fn(tr, day):
        seen.append(tr.days)
        assert day not in tr.days and max(tr.days) < day
        cal = fit_data(tr)
        return lambda d: cal.score(d.X, d.zs, d.papers)
    rep = walk_forward(data, fit_fn, ["2025-01-04", "2025-01-05"])
    assert seen == [["2025-01-01", "2025-01-02", "2025-01-03"],
                    ["2025-01-01", "2025-01-02", "2025-01-03", "2025-01-04"]]
    assert rep.days == ["2025-01-04", "2025-01-05"] and rep.mean()["auc"] > 0.8
    assert set(rep.mean()) == {"auc", "recall@25", "recall@40", "keep95"}
    lines = table(rep)
    assert lines[0].startswith("walk-forward on 2 days (2025-01-04..2025-01-05)")
    assert lines[1].split() == ["AUC", "R@25", "R@40", "keep95"]
    assert lines[2].split()[0] == "zero-shot" and lines[3].split()[0] == "calibrated"
    assert len(lines[3].split()) == 5


def test_the_walk_forward_table_of_one_day_says_one_day():
    """A short history walks forward on one day: "1 day (2025-01-05)", not "1 days (2025-01-05..2025-01-05)"."""
    from ranker.prefilter.walkforward import Report
    m = {"auc": 0.9, "recall@25": 0.8, "recall@40": 0.9, "keep95": 0.5}
    lines = table(Report(days=["2025-01-05"], learned={"2025-01-05": m}, zero_shot={"2025-01-05": m}))
    assert lines[0] == "walk-forward on 1 day (2025-01-05), each ranked by a fit on the days before it:"


def test_a_user_label_overrides_gpts_pick_and_weighs_more():
    X, y, zs, g, papers = _toy()
    plain = fit_inputs(X, y, zs, g, papers)
    first_pick = papers[int(np.flatnonzero(y)[0])].id
    first_other = papers[int(np.flatnonzero(~y)[0])].id
    labelled = fit_inputs(X, y, zs, g, papers, labels={first_pick: False, first_other: True, "none.1": True})
    i, j = int(np.flatnonzero(y)[0]), int(np.flatnonzero(~y)[0])
    assert plain.y[i] and not labelled.y[i] and not plain.y[j] and labelled.y[j]
    assert labelled.w[i] == labelled.w[j] == 3.0 and plain.w[i] == 1.0
    assert (labelled.y != plain.y).sum() == 2
    assert labelled.y.sum() == plain.y.sum()
    # and the fitted model moves: the relabelled paper scores higher than before
    a = fit(X, y, zs, g, papers, embedder="toy")
    b = fit(X, y, zs, g, papers, embedder="toy", labels={first_other: True})
    assert b.score(X[j:j + 1], zs[j:j + 1], [papers[j]])[0] > a.score(X[j:j + 1], zs[j:j + 1], [papers[j]])[0]
    assert b.trained_on["labels"] == 1


def test_a_label_on_a_paper_of_two_history_days_counts_once():
    """A paper announced on two days (a cross-list) is a row of each; its one label was counted twice: `ranker
    calibrate` said "3 of yours used", then "4 labels" in the line naming the calibration it wrote."""
    X, y, zs, g, papers = _toy()
    again = int(np.flatnonzero(g == "2025-01-02")[0])
    papers[again] = papers[0]                   # the first day's first paper, announced again on the second day
    cal = fit(X, y, zs, g, papers, embedder="toy", labels={papers[0].id: True, papers[1].id: False})
    assert cal.trained_on["labels"] == 2


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


def test_an_old_calibration_file_asks_to_calibrate_again(tmp_path):
    old = {"format": "ranker-calibration", "version": 1, "embedder": "minilm", "dim": 2, "emb_coef": [0.1, 0.2],
           "emb_intercept": 0.0, "stack": [1, 0, 0, 0]}
    f = tmp_path / "old.json"
    f.write_text(json.dumps(old))
    with pytest.raises(InputError, match=r"version 1 is not supported .*; calibrate again") as e:
        Calibration.load(f)
    assert e.value.where == str(f)
    r = ranker("prefilter", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", tmp_path / "o.jsonl",
               "--calibration", f, "--db", tmp_path / "r.sqlite3")
    err = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(err) == 1 and err[0].endswith("calibrate again"), r.stderr


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


# --------------------------------------------------------------------------- author and category features
def test_author_names_match_across_spellings_and_counts_skip_the_rows_own_day():
    from ranker.prefilter.features import FEATURES, author_key, counts_of, features, out_of_day_features
    assert author_key("José  Pérez-López") == author_key("jose perez lopez") == "jose perez lopez"
    p = lambda i, authors, cats=("cs.LG",): Paper(id=i, title="t", abstract="a", authors=list(authors),
                                                  categories=list(cats))
    papers = [p("1", ["Ada Lovelace", "B"]), p("2", ["C"]), p("3", ["ADA LOVELACE"]), p("4", ["D"], ("cs.RO",))]
    y = np.array([True, False, False, False])
    g = np.array(["d1", "d1", "d2", "d2"])
    col = {f: i for i, f in enumerate(FEATURES)}
    f = out_of_day_features(papers, y, g)
    # paper 3 (day 2) sees Ada's pick of day 1; paper 1 (day 1) sees Ada's paper of day 2, not its own pick
    assert f[2, col["authors_any_pick"]] == 1 and f[2, col["authors_any_seen"]] == 1
    assert f[0, col["authors_any_pick"]] == 0 and f[0, col["authors_any_seen"]] == 1
    assert f[1, col["authors_any_seen"]] == 0
    # ranking a new day with every history day: a cs.RO paper's category rate is below a cs.LG paper's
    new = features([p("5", ["ada lovelace"]), p("6", ["E"], ("cs.RO",))], counts_of(papers, y, g))
    assert new[0, col["authors_pick_max"]] > 0 and new[1, col["authors_seen_max"]] == 0
    assert new[1, col["primary_rate"]] < new[0, col["primary_rate"]]


def test_author_counts_merge_a_name_written_with_and_without_letters_nfkd_leaves_whole():
    """"Łukasz Kaiser" was counted as "ukasz kaiser", another author than "Lukasz Kaiser" (arXiv listings write
    both), "Strauß" as "strau" beside "Strauss": each spelling's papers and picks counted for half a person."""
    from ranker.prefilter.features import FEATURES, author_key, counts_of, features
    assert author_key("Łukasz Kaiser") == author_key("LUKASZ KAISER") == "lukasz kaiser"
    assert author_key("Johann Strauß") == author_key("Johann Strauss") == "johann strauss"
    assert author_key("Søren Jørgensen") == "soren jorgensen" and author_key("Þóra Ærø-Đurić") == "thora aero duric"
    p = lambda i, a: Paper(id=i, title="t", abstract="a", authors=[a], categories=["cs.LG"])
    history = [p("1", "Łukasz Kaiser"), p("2", "Lukasz Kaiser"), p("3", "Johann Strauß"), p("4", "Johann Strauss"),
               p("5", "Other One")]
    c = counts_of(history, [True, False, False, True, False], ["d1", "d2", "d1", "d2", "d2"])
    assert (c.papers["lukasz kaiser"], c.picks["lukasz kaiser"]) == (2, 1)
    assert (c.papers["johann strauss"], c.picks["johann strauss"]) == (2, 1)
    f = features([p("6", "Lukasz Kaiser"), p("7", "Łukasz Kaiser"), p("8", "Johann Strauß")], c)
    np.testing.assert_array_equal(f[0], f[1])
    np.testing.assert_array_equal(f[0], f[2])
    assert f[0, FEATURES.index("authors_seen_max")] == math.log1p(50 / 2 * 2)


def test_an_old_calibration_files_author_counts_find_both_spellings(tmp_path):
    """A calibration file written before letters NFKD leaves whole were spelled in ASCII counted "Łukasz Kaiser"
    under "ukasz kaiser" (and says no counts.author_keys): read now, a paper by "Łukasz Kaiser" finds those papers
    and the ones of "Lukasz Kaiser", as a fit on the same history counts them, without calibrating again
    (re-folding the file's keys could not do it: the letter is gone from them). A paper by "Lukasz Kaiser" finds
    his papers under that spelling only, as it did with that file before."""
    import dataclasses
    X, y, zs, g, papers = _toy()
    papers = [dataclasses.replace(p, authors=[("Łukasz Kaiser" if i % 2 else "Lukasz Kaiser")
                                              if a == "Ada Lovélace" else a for a in p.authors])
              for i, p in enumerate(papers)]
    by = {s: [i for i, p in enumerate(papers) if s in p.authors] for s in ("Łukasz Kaiser", "Lukasz Kaiser")}
    assert all(by.values())
    cal = fit(X, y, zs, g, papers, embedder="toy")
    assert cal.counts["papers"]["lukasz kaiser"] == len(by["Łukasz Kaiser"]) + len(by["Lukasz Kaiser"])
    f = tmp_path / "cal.json"
    cal.save(f)
    d = json.loads(f.read_text())
    counts = d["counts"]
    assert counts.pop("author_keys") == 2
    for spelling, old_key in (("Łukasz Kaiser", "ukasz kaiser"), ("Lukasz Kaiser", "lukasz kaiser")):
        counts["papers"][old_key] = len(by[spelling])
        counts["picks"][old_key] = int(y[by[spelling]].sum())
    f.write_text(json.dumps(d))
    old = Calibration.load(f)
    assert old.counts["papers"]["lukasz kaiser"] == len(by["Lukasz Kaiser"])
    same = np.setdiff1d(np.arange(len(papers)), by["Lukasz Kaiser"])
    np.testing.assert_allclose(old.score(X, zs, papers)[same], cal.score(X, zs, papers)[same])


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


def test_a_one_day_fit_has_no_recall_thresholds_and_keeps_by_the_prior():
    """One day has no held-back picks: its thresholds would all be the placeholder score, keeping the same
    papers for every recall. Keeping by recall falls back to the zero-shot prior instead."""
    from ranker.prefilter.recall import decide_keep, zero_shot_fraction
    X, y, zs, g, papers = _toy(n_days=1)
    cal = fit(X, y, zs, g, papers, embedder="toy")
    assert cal.recall_thresholds == {} and cal.recall_fractions == {} and cal.recall_source == "none"
    s = cal.score(X, zs, papers)
    kept = [decide_keep(s, recall=r, calibration=cal, min_keep=0) for r in (0.8, 0.95)]
    assert [k.rule for k in kept] == ["recall-prior", "recall-prior"]
    assert [k.n_keep for k in kept] == [math.ceil(zero_shot_fraction(r) * len(s) - 1e-9) for r in (0.8, 0.95)]
    X, y, zs, g, papers = _toy(n_days=2)
    assert fit(X, y, zs, g, papers, embedder="toy").recall_thresholds         # two days: thresholds again


def test_labels_outside_the_history_do_not_count_as_days_for_keeping_by_recall(monkeypatch):
    """A user's few labels on papers outside the history form a pseudo-day of those papers; its 'recall' (one
    liked paper: all or nothing) must not move the thresholds that keep a whole day."""
    import ranker.prefilter.calibrate as C
    X, y, zs, g, papers = _toy(n_days=3)
    lab = np.zeros(3, dtype=bool)
    lab[0] = True
    Xl = np.vstack([X, X[:3]])
    g2 = np.concatenate([g, ["2025-01-02+labels"] * 3])
    papers2 = papers + [Paper(id=f"L.{i}", title="robot paper", abstract="we study", categories=["cs.LG"])
                        for i in range(3)]
    seen = []
    real = C.recall_thresholds
    monkeypatch.setattr(C, "recall_thresholds", lambda s, yy, gg=None: (seen.append(set(gg)), real(s, yy, gg))[1])
    cal = fit(Xl, np.concatenate([y, lab]), np.concatenate([zs, zs[:3]]), g2, papers2, embedder="toy")
    assert seen and all(not any(str(d).endswith("+labels") for d in days) for days in seen)
    assert set.union(*seen) == set(g.tolist())
    assert cal.recall_source == "out-of-day" and cal.recall_fractions["0.95"] < 1.0


def _nan_in(d, key):
    d[key][0] = float("nan")


@pytest.mark.parametrize("edit", [
    lambda d: d["recall_thresholds"].__setitem__("0.95", "abc"),
    lambda d: d["recall_thresholds"].__setitem__("high", 0.5),
    lambda d: d.__setitem__("recall_thresholds", [1, 2]),
    lambda d: d["recall_fractions"].__setitem__("0.95", None),
    lambda d: d.__setitem__("options", []),
    lambda d: d["options"].__setitem__("meta", "yes"),
    lambda d: d.__setitem__("counts", {"papers": [1, 2]}),
    lambda d: d.__setitem__("counts", {"x": 1}),
    lambda d: d["counts"].__setitem__("n_papers", "many"),
    lambda d: d["counts"].__setitem__("author_keys", "2"),
    lambda d: d["stack_coef"].__setitem__(0, "x"),
    lambda d: _nan_in(d, "stack_coef"),
    lambda d: d["input_scale"].__setitem__(0, 0),
    lambda d: _nan_in(d, "input_mean"),
    lambda d: d.__setitem__("stack_intercept", "x"),
    lambda d: d.__setitem__("zs_std", float("inf")),
    lambda d: d["text_models"]["words"].__setitem__("vocab", [1] * len(d["text_models"]["words"]["vocab"])),
    lambda d: d["text_models"]["words"].pop("ngrams"),
    lambda d: d["text_models"]["embedding"].__setitem__("intercept", float("nan")),
    lambda d: [d[k].append(v) for k, v in (("inputs", "bogus"), ("stack_coef", 1), ("input_mean", 0),
                                          ("input_scale", 1))],
    lambda d: d.__setitem__("trained_on", []),
    lambda d: d["trained_on"].__setitem__("days", 5),                   # ranking a day crashed on it
    lambda d: d["trained_on"].__setitem__("days", "2025-01-01"),        # read as the days "2", "0", "-" ...
    lambda d: d["trained_on"].__setitem__("days", [20250101]),
    lambda d: d["trained_on"].__setitem__("labels", "many"),            # the run's manifest crashed on it
    lambda d: d["trained_on"].__setitem__("labels", [3]),
])
def test_a_hand_edited_calibration_file_is_refused_naming_it(tmp_path, edit):
    """A calibration file edited by hand (a wrong type, NaN, a zero scale, an input the options do not make) is
    one InputError naming the file when it is loaded, not a crash or NaN scores when a day is ranked."""
    X, y, zs, g, papers = _toy(n_days=3)
    f = tmp_path / "cal.json"
    fit(X, y, zs, g, papers, embedder="toy").save(f)
    Calibration.load(f).score(X, zs, papers)
    d = json.loads(f.read_text())
    edit(d)
    f.write_text(json.dumps(d))
    with pytest.raises(InputError, match="malformed calibration file") as e:
        Calibration.load(f)
    assert e.value.where == str(f)


def test_a_calibration_fit_under_other_topics_says_so_where_it_ranks(tmp_path):
    """The zero-shot input and the recall thresholds of a calibration were measured against its topics: used
    with a prompt whose topics differ, the prefilter's summary (and a run's warnings) say so; under the same
    topics, or with a file from before topics were recorded, nothing is said."""
    from ranker.prefilter import rank_papers
    from ranker.prefilter.embed import Embedder
    from ranker.prefilter.rank import build_queries
    from ranker.prompts import DEFAULT_DIR, load_prompts

    class Toy(Embedder):                      # the toy history's 16 dimensions, from hashed words
        def __init__(self):
            super().__init__("toy")

        @property
        def dim(self) -> int:
            return 16

        def encode(self, texts):
            out = np.full((len(texts), 16), 0.01, np.float32)
            for i, t in enumerate(texts):
                for w in t.lower().split():
                    out[i, sum(w.encode()) % 16] += 1.0
            return out / np.linalg.norm(out, axis=1, keepdims=True)

    X, y, zs, g, papers = _toy(n_days=3)
    mine = load_prompts()
    other_dir = tmp_path / "prompts"
    shutil.copytree(DEFAULT_DIR, other_dir)
    (other_dir / "paper_topics.txt").write_text((other_dir / "paper_topics.txt").read_text()
                                                + "\n5. New results on protein folding with language models\n")
    other = load_prompts(other_dir)
    assert build_queries(other).digest() != build_queries(mine).digest()
    data = HistoryData(X, y, zs, g, papers, "toy", build_queries(mine).digest())
    cal = fit_data(data)
    assert cal.topics == build_queries(mine).digest() and fit_data(data.subset(g != g[0])).topics == cal.topics
    day = papers[:40]
    same = rank_papers(day, mine, embedder=Toy(), calibration=cal, top=10)
    moved = rank_papers(day, other, embedder=Toy(), calibration=cal, top=10)
    assert not same.other_topics and "other topics" not in same.summary()
    assert moved.other_topics and "fit under other topics than this prompt's" in moved.summary()
    f = tmp_path / "cal.json"
    cal.save(f)
    assert Calibration.load(f).topics == cal.topics
    d = json.loads(f.read_text())
    del d["topics"]                                            # a file written before topics were recorded
    f.write_text(json.dumps(d))
    assert not rank_papers(day, other, embedder=Toy(), calibration=f, top=10).other_topics


@pytest.mark.parametrize("made, used, advice", [
    ("minilm", "minilm@256", "use {key:prefilter.max_tokens} 128 or calibrate again"),
    ("minilm", "mpnet@256", "use {key:prefilter.embedder} minilm {key:prefilter.max_tokens} 128 or calibrate again"),
    ("minilm@256", "minilm", "use {key:prefilter.max_tokens} 256 or calibrate again"),
    ("minilm@256", "mpnet@256", "use {key:prefilter.embedder} minilm or calibrate again"),
    ("minilm@128", "minilm", None),            # the default cut named: the same vectors, not refused
    ("minilm", "minilm@128", None),
])
def test_a_calibration_refused_for_its_token_cut_names_the_cut_not_the_embedder_in_use(made, used, advice):
    _check_made_used(made, used, advice)


def _check_made_used(made, used, advice):
    """A calibration of 'minilm' (the default 128 tokens) refused under max_tokens 256 said 'use --embedder
    minilm', the embedder already in use, and never the token cut that was at fault; one naming the default
    cut ('minilm@128') was refused under 'minilm' with the advice 'use  or calibrate again'."""
    X, y, zs, g, papers = _toy(n_days=2)
    cal = fit(X, y, zs, g, papers, embedder=made)
    if advice is None:
        cal.check_embedder(used)
        return
    with pytest.raises(InputError) as e:
        cal.check_embedder(used)
    assert e.value.message.endswith(advice), e.value.message


def test_a_calibration_of_a_folder_named_like_a_token_cut_is_that_folders(tmp_path):
    """A calibration made with the folder 'emb@128' (keyed by its path) was taken for one of the folder 'emb' at
    the default cut: ranking with 'emb' used it, another model's, without a word. The real folder wins."""
    emb, cut = tmp_path / "emb", tmp_path / "emb@128"
    cut.mkdir()
    _check_made_used(str(cut), str(emb), f"use {{key:prefilter.embedder}} {cut} or calibrate again")
    _check_made_used(str(emb), str(cut), f"use {{key:prefilter.embedder}} {emb} or calibrate again")
    _check_made_used(str(cut), str(cut), None)
    _check_made_used(str(cut), f"{cut}@256", "use {key:prefilter.max_tokens} 128 or calibrate again")


@pytest.mark.parametrize("n_days, ranked", [(30, 10), (57, 19), (250, 20)])
def test_the_walk_forward_check_of_a_years_history_fits_a_bounded_number_of_days(monkeypatch, n_days, ranked):
    """A user a year in (250 history days): the check ranked the last third of the days, each by a fit on every
    day before it, so `ranker calibrate` made 83 fits of up to 250 days each (19 of about 50 at 57 days: fits
    x papers grew with the square of the history, hours on a CPU). It ranks the last 20 days at most; a shorter
    history still its last third. Counted, not timed: the fits are stubbed."""
    import datetime as dt

    import ranker.prefilter.calibrate as cal_mod
    X, y, zs, _, papers = _toy(n_days=1, n=n_days * 4, dim=4)
    y[:] = False
    y[::4] = True                                      # one pick a day
    start = dt.date(2025, 1, 1)
    g = np.array([(start + dt.timedelta(days=i // 4)).isoformat() for i in range(len(y))])
    data = HistoryData(X, y, zs, g, papers, "toy")
    monkeypatch.setattr(cal_mod, "history_data", lambda *a, **kw: data)
    fits = []

    def fit_data(tr, **kw):
        fits.append(len(tr.days))
        return cal_mod.fit(tr.X[:8], np.arange(8) % 2 == 0, tr.zs[:8], tr.groups[:8], tr.papers[:8], embedder="toy")
    monkeypatch.setattr(cal_mod, "fit_data", fit_data)
    monkeypatch.setattr(cal_mod, "_scorer", lambda cal: lambda d: d.zs)
    _, report = cal_mod.calibrate([], None, embedder="toy")
    assert len(report.days) == ranked
    assert len(fits) == ranked + 1                     # the walk-forward fits, then the calibration's own
    assert report.days[-1] == g[-1]                    # the latest days, each fit on every day before it
    assert fits[:-1] == list(range(n_days - ranked, n_days)) and fits[-1] == n_days


def test_the_zero_shot_note_says_how_many_days_the_fits_learnt_from_against_those_measured():
    """An 8-day history whose walk-forward found zero-shot ahead was told "a longer history (measured: 5 days or
    more) usually reverses that": 5 days was never measured (the README's 10, 20, 30, 40) and it had 8."""
    from datetime import date, timedelta

    from ranker.cli.calibrate import MEASURED_DAYS, zero_shot_note
    assert MEASURED_DAYS == (10, 40)
    days = [str(date(2025, 5, 1) + timedelta(i)) for i in range(50)]
    note = zero_shot_note(days[5:8], days[:8])      # eval_days of 8: the last 3, fit on 5, 6 and 7 days
    assert "5 days or more" not in note and "usually" not in note
    assert "learnt from 5 to 7 days each (of the 8 days here" in note and "(10 to 40 days)" in note
    assert note.endswith("from 10 days on, so a longer history may reverse this")
    # a label day beside the GPT days counts: each fit learns from it too
    assert "learnt from 6 days each (of the 7 days here" in zero_shot_note(days[6:7], days[:6] + days[3:4] + days[6:7])
    note = zero_shot_note(days[-17:], days)          # 50 days: the fits learnt from 33 to 49, longer than measured
    assert "learnt from 33 to 49 days each" in note and "may reverse" not in note
    # 33 is below 40: "no fewer than the histories measured (10 to 40 days)" read as "at least 40"
    assert "no fewer than" not in note and "no shorter than the shortest history measured (10 days;" in note
    assert note.endswith("at every length: on these days zero-shot may simply suit your picks better")


@pytest.mark.parametrize("tz", ["Asia/Tokyo", "America/Los_Angeles", "Pacific/Kiritimati"])
def test_a_fit_records_when_it_was_made_with_its_utc_offset(monkeypatch, tz):
    """A calibration's `created` (a run manifest's calibration_fit, each day of eval.json) was the local time
    without a zone, `2026-12-08 08:00:00` in Tokyo, beside the same manifest's `started` with its offset
    (`2026-12-08T08:05:00+0900`): read in California, or beside UTC times, the fit seemed made hours apart from
    the run. It says its offset, and the instant it names is the clock's."""
    import time
    from datetime import datetime
    from zoneinfo import ZoneInfo

    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        X, y, zs, g, papers = _toy()
        before = time.time()
        created = datetime.fromisoformat(fit(X, y, zs, g, papers, embedder="toy").trained_on["created"])
    finally:
        monkeypatch.undo()
        time.tzset()
    assert created.utcoffset() == datetime.fromtimestamp(before, ZoneInfo(tz)).utcoffset()
    assert int(before) <= created.timestamp() <= time.time()
