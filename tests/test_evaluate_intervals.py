"""`ranker eval`'s uncertainty (ranker.evaluate.intervals): the 95% interval of each overall figure from a
bootstrap over days, and the paired comparison of two evals over the days they share (`--against`). On the
shared days with vectors put in the store beforehand and the fake backend (no model), as test_evaluate.py."""
from __future__ import annotations

import copy
import json
import shutil

import numpy as np
import pytest

from conftest import DAYS, ranker, store_vectors
from webtools import browser, needs_browser, watched_page
from ranker.errors import InputError
from ranker.evaluate import evaluate_history, summary_markdown
from ranker.evaluate import intervals as iv
from ranker.evaluate.figures import KEEPING, RANKING
from ranker.evaluate.report import comparison_caveat, comparison_markdown
from ranker.sources import read_papers
from ranker.store import Store
import test_evaluate
from test_evaluate import FIVE, THREE, gpt_picked_nothing, make_history


settings, store = test_evaluate.settings, test_evaluate.store      # the fixtures of the evals there


@pytest.fixture
def five(tmp_path, settings, store):
    """An eval of the five days, with the fake model: eval.json's content."""
    evaluate_history(make_history(tmp_path / "hist", FIVE), tmp_path / "five", settings, store=store, llm=True)
    return json.loads((tmp_path / "five" / "eval.json").read_text())


def width(row):
    return row["high"] - row["low"]


# ------------------------------------------------------------------ the bootstrap
def test_an_interval_is_the_same_each_time_holds_the_mean_and_narrows_with_more_days():
    rng = np.random.default_rng(7)
    many = list(rng.normal(0.85, 0.05, size=60))
    few = many[:12]
    a, b = iv.mean_interval(few), iv.mean_interval(few)
    assert a == b and a["days"] == 12                                 # a fixed seed: the same numbers
    assert a["low"] < np.mean(few) < a["high"]
    wide = iv.mean_interval(many)
    assert wide["low"] < np.mean(many) < wide["high"] and wide["days"] == 60
    assert width(wide) < 0.7 * width(a)                               # ~ 1/sqrt(n)
    # another seed moves the bounds by the bootstrap's own noise, far below the 2 decimals printed
    other = iv.mean_interval(many, seed=1)
    assert other != wide and abs(other["low"] - wide["low"]) < 0.002 and abs(other["high"] - wide["high"]) < 0.002
    # and a normal mean's interval is about +-1.96 standard errors
    se = np.std(many, ddof=1) / np.sqrt(len(many))
    assert width(wide) == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_too_few_days_give_no_interval_and_an_undefined_day_is_left_out():
    vals = [0.8, 0.9, 0.85, 0.7]
    assert iv.mean_interval(vals) == {"low": None, "high": None, "days": 4}
    assert iv.mean_interval(vals + [None, None]) == {"low": None, "high": None, "days": 4}
    got = iv.mean_interval(vals + [None, 0.95])
    assert got["days"] == iv.MIN_DAYS == 5 and got["low"] is not None
    assert got["low"] < np.mean(vals + [0.95]) < got["high"]          # the mean of the days that define it
    assert iv.mean_interval([0.5] * 8) == {"low": 0.5, "high": 0.5, "days": 8}


def _sparse_days(n=6, picked=2):
    """n scored days of which only the first `picked` have GPT picks (and pairs scored): the digest's recall
    and within-1 rest on those alone, its precision and F1 (the digest picked one paper a day) on every day."""
    out = []
    for i in range(n):
        on = i < picked
        out.append({"date": f"2025-05-{i + 1:02d}",
                    "prefilter": {"papers": 100, "picks": 5 if on else 0, "auc": 0.8 if on else None,
                                  "kept_fraction": 0.4},
                    "llm": {"digest": {"tp": (3 if i == 0 else 1) if on else 0, "fp": 1,
                                       "fn": (1 if i == 0 else 3) if on else 0}},
                    "pairs": ([{"gpt": [8, 7], "local": [8, 7] if i == 0 else [3, 3]}] * 4) if on else []})
    return out


def test_a_pooled_figure_stands_on_the_days_that_put_something_in_its_denominator():
    """A day with no GPT pick adds nothing to the digest's recall (nor, with no pair scored, to within-1): an
    interval from 2 such days was printed as resting on all 6."""
    r = iv.day_intervals(_sparse_days())
    assert r["prefilter"]["auc"] == {"low": None, "high": None, "days": 2}
    d = r["llm"]["digest"]
    assert d["recall"] == {"low": None, "high": None, "days": 2}
    assert r["llm"]["relevance"]["within1"] == r["llm"]["novelty"]["within1"] == {"low": None, "high": None,
                                                                                   "days": 2}
    assert d["precision"]["days"] == d["f1"]["days"] == 6 and d["precision"]["low"] is not None
    # paired, a day counts where both evals put something in the figure's denominator
    this, that = _sparse_days(), _sparse_days()
    for x in that[2:]:
        x["pairs"] = [{"gpt": [8, 7], "local": [8, 7]}]                # scored there, not in this eval
    c = iv.paired_comparison({"settings": {}, "days": this}, {"settings": {}, "days": that}, against="x")
    assert c["days"] == 6 and c["llm"]["digest"]["recall"]["days"] == 2
    assert c["llm"]["relevance"]["within1"] == {**c["llm"]["relevance"]["within1"], "low": None, "high": None,
                                                "days": 2}
    assert c["llm"]["digest"]["precision"]["days"] == 6 and c["llm"]["digest"]["precision"]["low"] is not None
    # and with picks on enough days, an interval again
    assert iv.day_intervals(_sparse_days(picked=5))["llm"]["digest"]["recall"]["days"] == 5


def test_a_comparisons_days_column_groups_its_count():
    """The comparison's "days" column (report.html's table, and the printed one it repeats) said 1234 where the
    line above it says "1,234 shared days": both group thousands with ranker.io.grouped."""
    from ranker.evaluate.report import comparison_html
    c = iv.paired_comparison({"settings": {}, "days": _sparse_days()}, {"settings": {}, "days": _sparse_days()},
                             against="x")
    c["prefilter"]["auc"]["days"] = 1234
    assert "<td>1,234</td>" in comparison_html(c) and "<td>1234</td>" not in comparison_html(c)
    assert "| 1,234 |" in comparison_markdown(c)


def test_a_paired_pooled_figure_pools_both_evals_over_the_days_it_counts():
    """The other eval scored pairs on days 3-6 too, where this one scored none: within-1 stands on days 1-2, where
    the two are the same (4 of 8 within one point), yet the other's was pooled over every day (0.667) and the
    difference (-0.167) came from days the "days" column left out."""
    this, that = _sparse_days(), _sparse_days()
    for x in that[2:]:
        x["pairs"] = [{"gpt": [8, 7], "local": [8, 7]}]
    c = iv.paired_comparison({"settings": {}, "days": this}, {"settings": {}, "days": that}, against="x")
    for w in ("relevance", "novelty"):
        r = c["llm"][w]["within1"]
        assert r["this"] == r["other"] == 0.5 and r["difference"] == 0 and r["days"] == 2, (w, r)
    assert "| relevance within 1 | 0.500 | 0.500 | +0.000 | – | 2 |" in comparison_markdown(c)
    # both the other way round, and the digest's figures (defined on the same days in both) as before
    back = iv.paired_comparison({"settings": {}, "days": that}, {"settings": {}, "days": this}, against="x")
    assert back["llm"]["novelty"]["within1"]["this"] == back["llm"]["novelty"]["within1"]["other"] == 0.5
    assert c["llm"]["digest"]["recall"] == {**c["llm"]["digest"]["recall"], "this": 0.5, "other": 0.5,
                                            "difference": 0, "days": 2}


# ------------------------------------------------------------------ in an eval
def test_eval_json_the_summary_and_the_report_carry_the_intervals(tmp_path, five):
    o, ivs = five["overall"], five["overall"]["intervals"]
    assert ivs["resamples"] == iv.RESAMPLES and ivs["seed"] == iv.SEED and ivs["min_days"] == 5
    for k in RANKING + KEEPING:
        r = ivs["prefilter"][k]
        assert r["days"] == 5 and r["low"] <= o["prefilter"][k] <= r["high"], k
    for k in ("precision", "recall", "f1"):
        r = ivs["llm"]["digest"][k]
        assert r["days"] == 5 and r["low"] <= o["llm"]["digest"][k] <= r["high"], k
    # within 1 stands on the days a GPT pick was scored: 4 of them here (none on the first), too few
    scored = sum(bool(d.get("pairs")) for d in five["days"])
    assert scored == 4
    for w in ("relevance", "novelty"):
        assert ivs["llm"][w]["within1"] == {"low": None, "high": None, "days": scored}, w
    # the pooled figures the bootstrap resamples are the eval's own: a comparison with itself reads them back
    same = iv.paired_comparison(five, five, against="x")
    assert same["llm"]["digest"]["f1"]["this"] == o["llm"]["digest"]["f1"]
    assert same["llm"]["relevance"]["within1"]["this"] == o["llm"]["relevance"]["within1"]
    assert same["prefilter"]["auc"]["this"] == o["prefilter"]["auc"]

    md = summary_markdown(five)
    r = ivs["prefilter"]
    assert (f"| 95% interval | [{r['auc']['low']:.2f}, {r['auc']['high']:.2f}] | "
            f"[{r['recall@25']['low']:.2f}, {r['recall@25']['high']:.2f}] |") in md, md
    assert "95% intervals: percentile bootstrap over days (the 5 days resampled 100,000 times" in md
    assert "with fewer than 15 days they are too narrow" in md
    d = ivs["llm"]["digest"]
    assert f"95% intervals over days: precision [{d['precision']['low']:.2f}, {d['precision']['high']:.2f}]" in md
    html = (tmp_path / "five" / "report.html").read_text()
    assert html.count("<td class=\"t\">95% interval</td>") == 2 and "resampled 100,000 times" in html


def test_a_figure_on_few_days_is_said_too_narrow_whatever_the_others_stand_on(five):
    """20 days, GPT picking on 6: kept and the digest's precision stand on 20, AUC and recall on 6. The caveat
    was keyed to the 20 and left out."""
    narrow = "they are too narrow (a bootstrap over few days covers less than 95%)"
    ivs = iv.day_intervals(_sparse_days(20, picked=6))
    assert ivs["prefilter"]["kept_fraction"]["days"] == 20 and ivs["llm"]["digest"]["recall"]["days"] == 6
    assert ivs["llm"]["digest"]["recall"]["low"] is not None
    md = summary_markdown({**five, "overall": {**five["overall"], "intervals": ivs}})
    assert "(the 20 days resampled 100,000 times" in md
    assert f"; with fewer than 15 days (some figures here stand on 6) {narrow}" in md, md
    c = iv.paired_comparison(*({"settings": {}, "days": _sparse_days(20, picked=6)} for _ in range(2)), against="x")
    assert f"; with fewer than 15 days (some figures here stand on 6) {narrow}" in comparison_markdown(c)
    # every figure on 15 days or more: no caveat; all on fewer: said plainly
    ivs = iv.day_intervals(_sparse_days(20, picked=20))
    assert narrow not in summary_markdown({**five, "overall": {**five["overall"], "intervals": ivs}})
    ivs = iv.day_intervals(_sparse_days(8, picked=8))
    assert f"(the 8 days resampled 100,000 times, seed {iv.SEED}): where the figure could plausibly lie on other " \
           f"days like these; with fewer than 15 days {narrow}" in \
        summary_markdown({**five, "overall": {**five["overall"], "intervals": ivs}})


def test_a_figure_on_too_few_days_says_why_it_has_no_interval_beside_those_that_have_one(tmp_path, five):
    """Within-1 stands on the 4 days a GPT pick was scored, the others on 5: its "–" went without a word, the
    note speaking of too few days only when the figure on the most days had too few."""
    none = "; a figure on fewer than 5 days (here 4) has none."
    assert five["overall"]["intervals"]["llm"]["relevance"]["within1"]["days"] == 4
    assert none in summary_markdown(five)
    assert none[:-1] + "." in (tmp_path / "five" / "report.html").read_text()       # the report's note is the same
    c = iv.paired_comparison(five, five, against="x")
    assert none in comparison_markdown(c)
    # figures on 2 days beside others on 6, in the summary and the comparison; a figure on no day is not counted
    ivs = iv.day_intervals(_sparse_days())
    assert ivs["prefilter"]["recall@25"]["days"] == 0
    md = summary_markdown({**five, "overall": {**five["overall"], "intervals": ivs}})
    assert "; a figure on fewer than 5 days (here 2) has none." in md, md
    c = iv.paired_comparison(*({"settings": {}, "days": _sparse_days()} for _ in range(2)), against="x")
    assert "; a figure on fewer than 5 days (here 2) has none." in comparison_markdown(c)
    # every figure on 5 days or more: nothing to say
    ivs = iv.day_intervals(_sparse_days(picked=6))
    assert "has none" not in summary_markdown({**five, "overall": {**five["overall"], "intervals": ivs}})


def test_a_pooled_figure_is_recomputed_from_each_resamples_summed_counts():
    """The digest's precision / recall / F1 pool the days' counts: each resample sums its days' tp, fp and fn
    and divides, so one large day weighs as its papers do. Ten large days (0.9 each) and ten tiny days (0 each):
    pooled 0.89, mean of the days' ratios 0.45; the interval holds the first, far from the second."""
    days = [{"date": f"2025-05-{i + 1:02d}", "prefilter": {"papers": 100, "picks": 5},
             "llm": {"digest": {"tp": 90, "fp": 10, "fn": 10} if i % 2 else {"tp": 0, "fp": 1, "fn": 1}}}
            for i in range(20)]
    d = iv.day_intervals(days)["llm"]["digest"]
    pooled = {"precision": 900 / 1010, "recall": 900 / 1010, "f1": 1800 / 2020}
    for k, v in pooled.items():
        assert d[k]["days"] == 20 and d[k]["low"] < v < d[k]["high"], k
        assert d[k]["low"] > 0.85 and d[k]["high"] < 0.91, k          # far from 0.45, the mean of the ratios


def test_few_days_say_there_is_no_interval(tmp_path, settings, store):
    res = evaluate_history(make_history(tmp_path / "hist"), tmp_path / "out", settings, store=store)
    assert all(r["low"] is None and r["days"] == 3 for r in res.overall["intervals"]["prefilter"].values())
    md = summary_markdown(res.to_dict())
    assert "| 95% interval |" not in md
    assert "No 95% intervals: 3 days are too few for a bootstrap over days to mean anything (it needs at least 5)" \
        in md
    # an eval.json from before the intervals: summarised as before
    old = res.to_dict()
    old["overall"] = {k: v for k, v in old["overall"].items() if k != "intervals"}
    assert "interval" not in summary_markdown(old)


def test_one_day_is_too_few_in_words():
    # an eval of one day (`eval --days 2 --calibrate`: the first day has nothing earlier to learn from) said
    # "No 95% intervals: 1 day are too few ..."
    from ranker.evaluate.report import interval_note
    note = interval_note({"min_days": 5}, [{"days": 1, "low": None, "high": None}])
    assert note == ("No 95% intervals: 1 day is too few for a bootstrap over days to mean anything "
                    "(it needs at least 5)")


def test_a_day_gpt_picked_nothing_counts_in_kept_only(tmp_path, settings, store):
    hist = make_history(tmp_path / "hist", FIVE)
    gpt_picked_nothing(hist, THREE[1])
    res = evaluate_history(hist, tmp_path / "out", settings, store=store)
    p = res.overall["intervals"]["prefilter"]
    assert p["kept_fraction"]["days"] == 5 and p["kept_fraction"]["low"] is not None
    assert all(p[k] == {"low": None, "high": None, "days": 4} for k in RANKING + ("kept_recall",))


# ------------------------------------------------------------------ two evals
def test_an_eval_against_itself_differs_by_nothing(five):
    c = iv.paired_comparison(five, five, against="x")
    assert c["days"] == 5 and c["only_this"] == c["only_other"] == 0
    rows = list(c["prefilter"].values()) + [c["llm"]["digest"][k] for k in ("precision", "recall", "f1")]
    assert all(r["difference"] == r["low"] == r["high"] == 0 and r["days"] == 5 for r in rows)
    # within 1 on the 4 days a GPT pick was scored: no interval
    assert all(c["llm"][w]["within1"] == {**c["llm"][w]["within1"], "difference": 0, "low": None, "high": None,
                                          "days": 4} for w in ("relevance", "novelty"))
    md = comparison_markdown(c)
    assert "| AUC | " in md and "| +0.000 | [+0.00, +0.00] | 5 |" in md and "-0.0" not in md


def test_a_known_shift_is_found_and_pairing_narrows_it(five):
    other = copy.deepcopy(five)
    for d in other["days"]:
        d["prefilter"]["auc"] -= 0.05                                # the same 0.05 worse on every day
    c = iv.paired_comparison(five, other, against="x")
    assert c["prefilter"]["auc"]["difference"] == pytest.approx(0.05, abs=1e-6)
    assert c["prefilter"]["auc"]["low"] == pytest.approx(0.05, abs=1e-6) == c["prefilter"]["auc"]["high"]
    assert c["prefilter"]["keep95"]["difference"] == 0

    # a shift of 0.03 with day-to-day noise: found within the interval, which is far narrower than the two
    # figures' own intervals side by side (the days' shared ups and downs cancel)
    rng = np.random.default_rng(3)
    days = [{"date": f"2025-05-{i:02d}", "prefilter": {"papers": 300, "picks": 20, "auc": float(a)}}
            for i, a in enumerate(rng.uniform(0.7, 0.95, size=30), start=1)]
    worse = copy.deepcopy(days)
    for d in worse:
        d["prefilter"]["auc"] -= 0.03 + float(rng.normal(0, 0.01))
    this, that = ({"settings": {}, "days": x} for x in (days, worse))
    c = iv.paired_comparison(this, that, against="x")["prefilter"]["auc"]
    assert c["low"] < 0.03 < c["high"] and c["low"] > 0 and c["days"] == 30
    assert width(c) < 0.3 * width(iv.mean_interval([d["prefilter"]["auc"] for d in days]))


def test_a_comparison_keeps_to_the_shared_days_where_both_define_a_figure(five):
    other = copy.deepcopy(five)
    other["days"] = other["days"][1:]                               # 4 days in common: no interval
    other["days"][0]["prefilter"]["auc"] = None                     # and one without an AUC there
    c = iv.paired_comparison(five, other, against="x")
    assert c["days"] == 4 and c["only_this"] == 1 and c["only_other"] == 0
    assert c["prefilter"]["auc"]["days"] == 3 and c["prefilter"]["keep95"]["days"] == 4
    assert c["prefilter"]["auc"]["this"] == pytest.approx(np.mean([d["prefilter"]["auc"] for d in five["days"][2:]]),
                                                          abs=1e-6)
    assert c["prefilter"]["auc"]["low"] is None and c["prefilter"]["auc"]["difference"] == 0
    assert "No 95% intervals: 4 days are too few" in comparison_markdown(c)
    # an eval.json that records no settings (made by hand, or very old) is compared, and said to lack them
    other["settings"] = {"min_relevance": 6, "min_novelty": 6}
    assert "- other: (its settings are not recorded)" in comparison_markdown(
        iv.paired_comparison(five, other, against="x"))


def test_evals_that_cannot_be_compared_are_refused(five):
    strict = copy.deepcopy(five)
    strict["settings"]["min_relevance"] = 9
    with pytest.raises(InputError, match=r"its GPT picks are those with RELEVANCE >= 9 and NOVELTY >= 6, this "
                                         r"eval's RELEVANCE >= 6 and NOVELTY >= 6: .* different picks") as e:
        iv.paired_comparison(five, strict, against="o/eval.json")
    assert e.value.key == "against" and e.value.where == "o/eval.json"
    moved = copy.deepcopy(five)
    for d in moved["days"]:
        d["date"] = d["date"].replace("2025", "2024")
    with pytest.raises(InputError, match=r"no day in common with this eval: it has 5 days \(2024-04-30..2024-07-02\), "
                                         r"this eval 5 days \(2025-04-30..2025-07-02\)"):
        iv.paired_comparison(five, moved, against="x")
    other = copy.deepcopy(five)
    other["days"][2]["prefilter"]["picks"] += 1
    n = other["days"][2]["prefilter"]["papers"]
    with pytest.raises(InputError, match=rf"{FIVE[2]} has {n} papers and .* there, {n} and .* in this eval: the two "
                                         "replayed different histories"):
        iv.paired_comparison(five, other, against="x")


@pytest.mark.parametrize("prefilter, llm, problem", [
    ('"auc": 1e400', "", "prefilter.auc is not a number"),                    # JSON reads it as infinity
    ('"auc": Infinity', "", "prefilter.auc is not a number"),
    ('"keep95": ' + "9" * 400, "", "prefilter.keep95 is not a number"),        # no float holds it
    ("", '"tp": true, "fp": 0, "fn": 1', "llm.digest has no tp, fp and fn counts"),
    ("", '"tp": 1, "fp": -1, "fn": 1', "llm.digest has no tp, fp and fn counts"),
    # a whole number no float holds: accepted, it failed in the arithmetic after the whole replay
    ("", '"tp": ' + "9" * 400 + ', "fp": 0, "fn": 1', "llm.digest has no tp, fp and fn counts"),
])
def test_a_value_no_eval_writes_is_refused_when_read(tmp_path, prefilter, llm, problem):
    path = tmp_path / "eval.json"
    day = ('{"date": "2025-05-01", "prefilter": {"papers": 9, "picks": 2' + (", " + prefilter if prefilter else "")
           + "}" + (', "llm": {"digest": {' + llm + "}}" if llm else "") + "}")
    path.write_text('{"settings": {}, "days": [' + day + "]}")
    with pytest.raises(InputError, match=f"eval.json: 2025-05-01: {problem}; a damaged eval.json") as e:
        iv.read_eval(path)
    assert e.value.key == "against" and e.value.where == str(path)


@pytest.mark.parametrize("papers, picks", [("true", "1"), ("9", "false"), ("-1", "0")])
def test_a_day_without_whole_counts_is_not_an_evals(tmp_path, papers, picks):
    path = tmp_path / "eval.json"
    path.write_text(f'{{"settings": {{}}, "days": [{{"date": "2025-05-01", "prefilter": {{"papers": {papers}, '
                    f'"picks": {picks}}}}}]}}')
    with pytest.raises(InputError, match="not the eval.json of an eval"):
        iv.read_eval(path)


# ------------------------------------------------------------------ the comparison kept
def _top(settings, k):
    return settings.model_copy(update={"prefilter": settings.prefilter.model_copy(update={"top": k})})


def test_an_eval_against_another_keeps_the_comparison_beside_its_files(tmp_path, settings, store, five):
    """comparison.json: which eval was compared with which (each's file, content hash, history, days and
    settings), the days both define, per figure both means, the difference and its interval, and the caveat;
    report.html draws it, escaped. It was only printed: nothing kept it beside the eval."""
    hist, other, out = tmp_path / "hist", tmp_path / "a <b>&", tmp_path / "b"
    shutil.copytree(tmp_path / "five", other)                         # a name that is markup, shown as text
    res = evaluate_history(hist, out, _top(settings, 20), store=store, llm=True, against=other)
    c = json.loads((out / "comparison.json").read_text())
    this = json.loads((out / "eval.json").read_text())
    assert res.files["comparison"] == out / "comparison.json" and c == json.loads(json.dumps(res.comparison))
    assert c["eval"] == {"eval": str(out / "eval.json"), "content_sha256": iv.content_sha256(this),
                         "history": str(hist), "days": 5, "span": f"{FIVE[0]}..{FIVE[-1]}"}
    assert c["against_eval"] == {"eval": str(other / "eval.json"), "content_sha256": iv.content_sha256(five),
                                 "history": str(hist), "days": 5, "span": f"{FIVE[0]}..{FIVE[-1]}",
                                 "replaced": False}
    assert c["this"] == this["settings"] and c["other"] == five["settings"] and c["this"]["top"] == 20
    assert c["this"]["prompt_hash"] == c["other"]["prompt_hash"] and len(c["this"]["prompt_hash"]) == 16
    assert c["dates"] == list(FIVE) and c["days"] == 5 and c["only_this"] == c["only_other"] == 0
    # the figures are the paired comparison's of the two files as they are on disk
    want = json.loads(json.dumps(iv.paired_comparison(this, five, against=other / "eval.json")))
    assert {k: c[k] for k in want} == want
    assert c["prefilter"]["kept_fraction"]["difference"] < 0 and c["prefilter"]["kept_fraction"]["low"] < 0
    assert c["caveat"].startswith("95% intervals: paired percentile bootstrap over days (the 5 days resampled") \
        and "too narrow" in c["caveat"] and "has none" in c["caveat"] and c["caveat"] == comparison_caveat(c)
    html = (out / "report.html").read_text()
    assert "<h2>Against another eval</h2>" in html and "a &lt;b&gt;&amp;" in html and "a <b>" not in html
    kept = c["prefilter"]["kept_fraction"]
    assert (f"<td>{kept['this']:.3f}</td><td>{kept['other']:.3f}</td><td>{kept['difference']:+.3f}</td>"
            f"<td>[{kept['low']:+.2f}, {kept['high']:+.2f}]</td><td>5</td>") in html
    assert f"{c['caveat']}." in html.replace("&#x27;", "'")

    # a rerun without one leaves no comparison that reads as this eval's, and the report draws none
    res = evaluate_history(hist, out, settings, store=store, llm=True)
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "report.html"] and res.comparison is None
    assert "Against another eval" not in (out / "report.html").read_text() and "comparison" not in res.files


def test_an_eval_is_named_from_the_root_in_a_comparison(tmp_path, monkeypatch, five):
    """`--against run-zs` from the folder the eval ran in: comparison.json named the other eval 'run-zs/eval.json',
    which means nothing to whoever reads the file from another folder later."""
    monkeypatch.chdir(tmp_path)
    assert iv.eval_identity(five, iv.eval_path("five"))["eval"] == str(tmp_path / "five" / "eval.json")


def test_a_comparison_refused_after_the_replay_keeps_the_eval_and_no_earlier_comparison(tmp_path, settings, store,
                                                                                       five):
    """An eval to compare with that no longer pairs once the days are replayed: this eval is written all the
    same, with no comparison (the one an earlier eval left is not taken for this one's), and the refusal said."""
    hist, out = tmp_path / "hist", tmp_path / "b"
    evaluate_history(hist, out, settings, store=store, against=tmp_path / "five")
    assert (out / "comparison.json").is_file()
    moved = copy.deepcopy(five)
    for d in moved["days"]:
        d["date"] = "2024" + d["date"][4:]
    with pytest.raises(InputError, match="no day in common") as e:
        evaluate_history(hist, out, _top(settings, 20), store=store, against=tmp_path / "moved", other=moved)
    assert e.value.key == "against"
    assert sorted(p.name for p in out.iterdir()) == ["eval.json", "report.html"]
    assert json.loads((out / "eval.json").read_text())["settings"]["top"] == 20


# ------------------------------------------------------------------ the command
def _db(tmp_path, days=FIVE):
    db = tmp_path / "db.sqlite3"
    with Store(db) as s:
        for d in days:
            store_vectors(s, list(read_papers(DAYS / d / "listing.jsonl")))
    return db


def test_the_command_compares_with_an_earlier_eval(tmp_path):
    db, hist = _db(tmp_path), make_history(tmp_path / "hist", FIVE)
    p = ranker("eval", "--history", hist, "--out", tmp_path / "a", "--db", db)
    assert p.returncode == 0, p.stderr
    data = json.loads((tmp_path / "a" / "eval.json").read_text())
    auc = data["overall"]["intervals"]["prefilter"]["auc"]
    assert f"| 95% interval | [{auc['low']:.2f}, {auc['high']:.2f}] |" in p.stdout
    # the same --out: the earlier eval there is read before this one replaces it
    p = ranker("eval", "--history", hist, "--out", tmp_path / "a", "--db", db, "--against", tmp_path / "a",
               "--top", "40")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert f"## this eval ({tmp_path / 'a' / 'eval.json'}) against {tmp_path / 'a' / 'eval.json'}: 5 shared days " \
           f"({FIVE[0]}..{FIVE[-1]})" in out, out
    assert "- this: prefilter minilm (zero-shot; top 40)" in out and "- other: prefilter minilm (zero-shot; keep 0.4" \
        in out
    assert f"| AUC | {data['overall']['prefilter']['auc']:.3f} | {data['overall']['prefilter']['auc']:.3f} | " \
           "+0.000 | [+0.00, +0.00] | 5 |" in out                    # the ranking is the keep rule's business
    kept = [x for x in out.splitlines() if x.startswith("| kept |")][0]
    assert float(kept.split("|")[4]) < 0                              # 40 papers keep less than 40% of a day
    assert "paired percentile bootstrap over days (the 5 days resampled" in out and p.stderr.count("error") == 0
    # what is printed is what comparison.json keeps, figure for figure, and the eval compared is said to be
    # the one this eval replaced (its path now holds this eval)
    c = json.loads((tmp_path / "a" / "comparison.json").read_text())
    assert c["against_eval"]["replaced"] is True and c["against_eval"]["content_sha256"] == iv.content_sha256(data)
    assert "- other: prefilter minilm (zero-shot; keep 0.4, the default) (the earlier eval in this folder, since " \
           "replaced by this one: its figures are kept here)" in out
    printed = {x.split("|")[1].strip(): [v.strip() for v in x.split("|")[2:7]] for x in out.splitlines()
               if x.startswith("| ") and x.count("|") == 7 and not x.startswith("| figure")}
    names = {"AUC": "auc", "R@25": "recall@25", "R@40": "recall@40", "keep95": "keep95", "kept": "kept_fraction",
             "recall of kept": "kept_recall"}
    assert set(printed) == set(names)
    for name, k in names.items():
        r = c["prefilter"][k]
        assert printed[name] == [f"{r['this']:.3f}", f"{r['other']:.3f}", f"{r['difference']:+.3f}",
                                 f"[{r['low']:+.2f}, {r['high']:+.2f}]", str(r["days"])], name
    assert f"\n{c['caveat']}.\n" in out and f"Wrote {tmp_path / 'a' / 'eval.json'}, " in p.stderr \
        and f"and {tmp_path / 'a' / 'comparison.json'};" in p.stderr


def test_the_command_words_what_it_cannot_compare_as_one_line(tmp_path):
    db, hist = _db(tmp_path, THREE), make_history(tmp_path / "hist")
    bad = tmp_path / "bad.json"

    def refused(content, line, *flags):
        if content is None:
            bad.unlink(missing_ok=True)
        else:
            bad.write_text(content if isinstance(content, str) else json.dumps(content))
        p = ranker("eval", "--history", hist, "--out", tmp_path / "out", "--db", db, "--against", bad, *flags)
        assert p.returncode == 1 and p.stderr == f"error: --against {bad}: {line}\n", p.stderr
        assert not (tmp_path / "out").exists()                       # said before the eval ran
        return p

    # an earlier eval's files in --out stay as they were: no comparison.json, no report is touched
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    files = {"eval.json": '{"days": []}', "report.html": "<p>earlier</p>", "comparison.json": '{"eval": {}}'}
    for name, text in files.items():
        (earlier / name).write_text(text)
    bad.write_text('{"settings": {}, "days": [')
    p = ranker("eval", "--history", hist, "--out", earlier, "--db", db, "--against", bad)
    assert p.returncode == 1 and "not valid JSON" in p.stderr
    bad.write_text(json.dumps({"settings": {}, "days": [{"date": "2024-01-02", "prefilter": {"papers": 1,
                                                                                             "picks": 1}}]}))
    p = ranker("eval", "--history", hist, "--out", earlier, "--db", db, "--against", bad)
    assert p.returncode == 1 and "no day in common with this eval" in p.stderr
    assert {f.name: f.read_text() for f in earlier.iterdir()} == files

    refused(None, "eval.json not found")
    refused('{"settings": {}, "days": [', "not valid JSON (Expecting value, line 1); a damaged eval.json? run the "
                                          "eval again")
    refused({"model": "x", "runs": []}, "not the eval.json of an eval (no settings and per-day figures in it)")
    day = {"date": THREE[0], "prefilter": {"papers": 1, "picks": 1}}
    refused({"settings": {}, "days": []}, "an eval of no day: nothing to compare with")
    # a file of the right shape with a value no eval writes: said, not a crash in the arithmetic
    damaged = "; a damaged eval.json? run the eval again"
    refused({"settings": {}, "days": [{**day, "prefilter": {**day["prefilter"], "auc": "0.9"}}]},
            f"{THREE[0]}: prefilter.auc is not a number{damaged}")
    refused({"settings": {}, "days": [day, day]}, f"{THREE[0]} is there twice{damaged}")
    refused({"settings": {}, "days": [{**day, "llm": {"digest": {"tp": 1}}}]},
            f"{THREE[0]}: llm.digest has no tp, fp and fn counts{damaged}")
    refused({"settings": {"min_relevance": "8"}, "days": [day]}, f"settings.min_relevance is not a number{damaged}")
    # the keep rule the comparison names: a string there, in a file that pairs with this eval, crashed after the
    # whole replay ("unexpected failure: Unknown format code 'g'")
    from ranker.prefilter.history import read_history
    first = read_history(hist).days[0]                               # GPT's picks at the default cut-offs
    pairable = {"date": THREE[0], "prefilter": {"papers": len(first.papers), "picks": len(first.picks)}}
    refused({"settings": {"embedder": "minilm", "calibration": "zero-shot", "keep": "0.4"}, "days": [pairable]},
            f"settings.keep is not a number{damaged}")
    refused({"settings": {"recall": "0.95"}, "days": [day]}, f"settings.recall is not a number{damaged}")
    # a digest count no float holds, in a file that pairs with this eval (a model's, as this one): it failed in
    # the arithmetic after the whole replay ("unexpected failure: int too large to convert to float")
    scored = [{"date": d.date, "prefilter": {"papers": len(d.papers), "picks": len(d.picks)},
               "llm": {"digest": {"tp": int("9" * 400) if d.date == THREE[0] else 0, "fp": 0, "fn": 1}}}
              for d in read_history(hist).days]
    refused({"settings": {}, "days": scored}, f"{THREE[0]}: llm.digest has no tp, fp and fn counts{damaged}",
            "--backend", "fake", "--model", "tiny")
    refused({"settings": {"top": 2.5}, "days": [day]}, f"settings.top is not a whole number{damaged}")
    refused({"settings": {}, "days": [{**day, "date": "2024-01-02"}]},
            "no day in common with this eval: it has 1 day (2024-01-02), this eval 3 days "
            f"({THREE[0]}..{THREE[-1]})")
    refused({"settings": {}, "days": [day]},
            f"{THREE[0]} has 1 paper and 1 GPT pick there, {len(first.papers):,} and {len(first.picks)} in this "
            "eval: the two replayed different histories and cannot be compared day by day")
    p = ranker("eval", "--history", hist, "--out", tmp_path / "out", "--db", db, "--against", bad,
               "--min-relevance", "9")
    assert p.returncode == 1 and p.stderr == (
        f"error: --against {bad}: its GPT picks are those with RELEVANCE >= 8 and NOVELTY >= 7, this eval's "
        "RELEVANCE >= 9 and NOVELTY >= 7: the two are measured against different picks and cannot be compared "
        "(evaluate both at the same --min-relevance and --min-novelty)\n"), p.stderr


def test_a_mean_difference_of_two_rankings_of_the_same_days():
    """What the walk-forward scripts print beside their means: the paired difference of two per-day series."""
    rng = np.random.default_rng(5)
    a = list(rng.uniform(0.7, 0.95, size=20))
    b = [x - 0.02 + float(rng.normal(0, 0.005)) for x in a]
    c = iv.mean_difference(a + [None], b + [0.5])                    # a day one leaves undefined: left out
    assert c["days"] == 20 and c["difference"] == pytest.approx(np.mean(a) - np.mean(b), abs=1e-6)
    assert c["this"] == pytest.approx(np.mean(a), abs=1e-6) and c["low"] < c["difference"] < c["high"]
    assert 0.015 < c["low"] and c["high"] < 0.025
    assert iv.mean_difference(a, a) == {"this": pytest.approx(np.mean(a), abs=1e-6), "other": pytest.approx(
        np.mean(a), abs=1e-6), "difference": 0, "low": 0, "high": 0, "days": 20}


def test_a_figure_no_shared_day_defines_is_null_not_zero():
    """Two rankings neither of which defines a figure on a day they share (both None, or one side only): the
    figure and the difference are null, as eval.json writes an undefined value, not 0 (a ranking that found
    nothing)."""
    assert iv.mean_difference([None, None], [0.5, 0.6]) == {"this": None, "other": None, "difference": None,
                                                            "low": None, "high": None, "days": 0}


def test_an_eval_whose_first_days_have_no_zero_shot_figures_gets_no_zero_shot_intervals():
    """A walk-forward calibration has no fit on its first days, which carry no zero-shot figures: the intervals
    leave zero-shot out (its days would not be the others') rather than fail on the days without it."""
    days = _sparse_days()
    for d in days[2:]:
        d["zero_shot"] = {"auc": 0.7}
    r = iv.day_intervals(days)
    assert "zero_shot" not in r and "minus_zero_shot" not in r and r["prefilter"]["auc"]["days"] == 2


def test_against_an_eval_s_folder_reads_the_eval_json_in_it(tmp_path):
    """--against takes the eval's output folder as well as its eval.json, as the help says."""
    data = {"settings": {}, "days": _sparse_days()}
    (tmp_path / "eval.json").write_text(json.dumps(data))
    assert iv.read_eval(tmp_path) == iv.read_eval(tmp_path / "eval.json") == data


def test_within_one_point_counts_a_difference_of_exactly_one():
    """within-1 is |local - GPT| <= 1: a model that scores every GPT pick one point lower is within one point on
    all of them (1.0), not on none."""
    days = _sparse_days(n=2, picked=2)
    for d in days:
        d["pairs"] = [{"gpt": [8, 7], "local": [7, 8]}] * 4
    c = iv.paired_comparison({"settings": {}, "days": days}, {"settings": {}, "days": copy.deepcopy(days)},
                             against="x")
    assert c["llm"]["relevance"]["within1"]["this"] == c["llm"]["novelty"]["within1"]["this"] == 1.0


def test_a_calibrated_eval_says_its_gain_over_zero_shot_day_by_day(five):
    """With --calibrate each day's zero-shot figures stand beside the calibrated ones: their paired difference
    is what the calibration bought, interval included (here zero-shot is 0.05 worse in AUC every day)."""
    cal = copy.deepcopy(five)
    for d in cal["days"]:
        d["zero_shot"] = {k: d["prefilter"][k] for k in RANKING}
        d["zero_shot"]["auc"] -= 0.05
    ivs = iv.day_intervals(cal["days"])
    gain = ivs["minus_zero_shot"]
    assert gain["auc"]["difference"] == pytest.approx(0.05, abs=1e-6) == gain["auc"]["low"] == gain["auc"]["high"]
    assert gain["keep95"] == {**gain["keep95"], "difference": 0, "low": 0, "high": 0, "days": 5}
    assert "minus_zero_shot" not in five["overall"]["intervals"]            # zero-shot alone: nothing to pair
    cal["overall"] = {**cal["overall"], "zero_shot": {k: 0.5 for k in RANKING}, "intervals": ivs}
    md = summary_markdown(cal)
    assert "The calibration's gain over zero-shot, day by day (paired): AUC +0.050 [+0.05, +0.05], R@25 +0.000 " \
           "[+0.00, +0.00]" in md, md


def test_evals_whose_picks_differ_in_novelty_alone_are_refused():
    other = {"settings": {"min_relevance": 8, "min_novelty": 6},
             "days": [{"date": "2025-06-23", "prefilter": {"papers": 10, "picks": 2}}]}
    with pytest.raises(InputError, match=r"RELEVANCE >= 8 and NOVELTY >= 6, this eval's RELEVANCE >= 8 and "
                                         r"NOVELTY >= 7"):
        iv.check_pairable(other, against="o", min_relevance=8, min_novelty=7, days={"2025-06-23": (10, 2)})
    assert iv.check_pairable(other, against="o", min_relevance=8, min_novelty=6,
                             days={"2025-06-23": (10, 2)}) == ["2025-06-23"]


@needs_browser
def test_the_reports_comparison_reads_in_a_browser(tmp_path, settings, store, five):
    """report.html with its comparison in headless Chromium: one h1 and no heading level skipped (the section is
    an h2 as the others), the comparison's table found by its column headers, its text at AA contrast."""
    from playwright.sync_api import expect
    from test_web_a11y import CONTRAST, OUTLINE
    evaluate_history(tmp_path / "hist", tmp_path / "b", _top(settings, 20), store=store, against=tmp_path / "five")
    with browser() as b:
        page, errors = watched_page(b)
        page.goto((tmp_path / "b" / "report.html").as_uri())
        assert page.evaluate(OUTLINE) == {"h1": 1, "first": 1, "skips": 0, "lang": "en"}
        expect(page.get_by_role("heading", name="Against another eval", level=2)).to_have_count(1)
        table = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="95% interval"))
        expect(table).to_have_count(1)
        expect(table.get_by_role("row")).to_have_count(7)                # the header and the 6 prefilter figures
        assert not page.evaluate(CONTRAST) and errors == []


def test_a_comparison_names_the_other_eval_from_the_root_everywhere(tmp_path, monkeypatch, settings, store, five):
    """`--against five` run from the folder above it: comparison.json's own "against" (and the report's and
    the printed heading) said 'five/eval.json' beside against_eval's absolute one, meaningless to a later reader
    in another folder."""
    monkeypatch.chdir(tmp_path)
    res = evaluate_history(tmp_path / "hist", tmp_path / "b", settings, store=store, llm=True, against="five")
    c = json.loads((tmp_path / "b" / "comparison.json").read_text())
    assert c["against"] == c["against_eval"]["eval"] == str(tmp_path / "five" / "eval.json")
    assert res.comparison["against"] == c["against"]
    assert f"<code>{tmp_path / 'five' / 'eval.json'}</code>" in (tmp_path / "b" / "report.html").read_text()
