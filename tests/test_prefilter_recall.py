"""The keep policy: by recall (calibrated thresholds or the zero-shot prior), fixed fraction, top K; keep95."""
from __future__ import annotations

import math

import numpy as np
import pytest

from ranker.errors import InputError
from ranker.prefilter.calibrate import Calibration, recall_fractions, recall_thresholds
from ranker.prefilter.metrics import day_metrics, keep95, keep_for, recall_at
from ranker.prefilter.recall import (DEFAULT_KEEP, ZERO_SHOT_FRACTIONS, calibrated_threshold, decide_keep,
                                     keep_for_recall, zero_shot_fraction, zero_shot_recall)


def test_keep95_is_the_rank_of_the_pick_that_completes_95_percent():
    scores = np.arange(100, 0, -1, dtype=float)          # paper i is ranked i+1
    y = np.zeros(100, bool)
    y[[0, 1, 2, 9, 19, 29, 39, 49, 59, 89]] = True      # 10 picks; the 10th (= 95% rounded up) at rank 90
    assert keep95(scores, y) == 0.90
    assert keep_for(scores, y, 0.8) == 0.50 and keep_for(scores, y, 0.1) == 0.01
    y2 = np.zeros(100, bool)
    y2[:20] = True
    assert keep95(scores, y2) == 0.19                   # ceil(0.95 * 20) = 19 picks, at ranks 1..19
    assert math.isnan(keep95(scores, np.zeros(100, bool)))
    # consistent with recall_at: keeping keep95 of the day holds at least 95% of the picks
    rng = np.random.default_rng(1)
    for _ in range(20):
        s, lab = rng.normal(size=300), rng.random(300) < 0.1
        if lab.any():
            k = keep95(s, lab)
            assert recall_at(s, lab, k) >= 0.95 and recall_at(s, lab, k - 1 / 300) < 0.95
    assert set(day_metrics(scores, y)) == {"auc", "recall@25", "recall@40", "keep95"}


def _cal_from(scores, y, groups):
    cal = Calibration(embedder="toy", dim=1)
    cal.recall_thresholds = recall_thresholds(scores, y)
    cal.recall_fractions = recall_fractions(scores, y, groups)
    return cal


def test_keep_by_recall_from_held_back_scores_holds_the_recall_on_new_days():
    """Thresholds learned from held-back days of a synthetic score keep ~R of the picks of new days."""
    rng = np.random.default_rng(0)
    cal = _cal_from(*_synthetic_days(rng, 40))
    s, y, g = _synthetic_days(rng, 30)
    for R in (0.3, 0.8, 0.9, 0.95):
        got, frac = [], []
        for d in range(30):
            m = g == d
            k, rule, thr, expected = keep_for_recall(s[m], R, cal)
            assert rule == "recall" and expected == R and (s[m] >= thr).sum() == k
            kept = np.argsort(-s[m], kind="stable")[:k]
            got.append(y[m][kept].sum() / max(1, y[m].sum()))
            frac.append(k / m.sum())
        assert abs(np.mean(got) - R) < 0.03, (R, np.mean(got))
    # a higher target keeps more, below one half too
    assert keep_for_recall(s, 0.95, cal)[0] > keep_for_recall(s, 0.8, cal)[0]
    assert keep_for_recall(s, 0.5, cal)[0] > keep_for_recall(s, 0.3, cal)[0] > keep_for_recall(s, 0.1, cal)[0]


def test_without_a_calibration_the_recall_rule_is_the_zero_shot_prior():
    s = np.linspace(1, 0, 200)
    k, rule, thr, expected = keep_for_recall(s, 0.95)
    assert rule == "recall-prior" and k == round(ZERO_SHOT_FRACTIONS[0.95] * 200) and thr == s[k - 1]
    assert zero_shot_fraction(0.95) == ZERO_SHOT_FRACTIONS[0.95]
    assert zero_shot_fraction(0.5) <= zero_shot_fraction(0.9) <= zero_shot_fraction(0.99) <= 1.0
    # below the measured table a smaller target keeps less (the line to 0), not the table's first fraction
    assert 0 < zero_shot_fraction(0.1) < zero_shot_fraction(0.3) < zero_shot_fraction(0.5)
    assert keep_for_recall(s, 0.2)[0] < keep_for_recall(s, 0.5)[0]
    assert keep_for_recall(s, 1.0)[0] == 200
    assert 0 < zero_shot_recall(DEFAULT_KEEP) < 1


def test_a_calibration_without_targets_below_one_half_keeps_and_expects_its_lowest():
    """A calibration file made before the targets ran from 0.01 holds thresholds from recall 0.50 up: asked for
    less, it keeps what 0.50 needs, and the manifest said it expected the recall asked for."""
    rng = np.random.default_rng(3)
    s, y = rng.normal(size=400), rng.random(400) < 0.2
    cal = _cal_from(s, y, np.zeros(400))
    old = Calibration(embedder="toy", dim=1)
    old.recall_thresholds = {r: t for r, t in cal.recall_thresholds.items() if float(r) >= 0.5}
    k, rule, thr, expected = keep_for_recall(s, 0.3, old)
    assert (k, thr) == keep_for_recall(s, 0.5, old)[::2] and expected == 0.5
    assert keep_for_recall(s, 0.3, cal)[3] == 0.3 and keep_for_recall(s, 0.3, cal)[0] < k
    d = decide_keep(s, recall=0.3, calibration=old)
    assert (d.target, d.expected_recall) == (0.3, 0.5)


def _synthetic_days(rng, n_days):
    """Days of 150-600 papers, ~9% of them picks, scored by a noisy probability that ranks the picks higher."""
    s, y, g = [], [], []
    for d in range(n_days):
        n = rng.integers(150, 600)
        lab = rng.random(n) < 0.09
        s.append(1 / (1 + np.exp(-(rng.normal(size=n) + 2.2 * lab - 2.5))))
        y.append(lab)
        g += [d] * n
    return np.concatenate(s), np.concatenate(y), np.array(g)


def _held(s, y, g, fraction, within=False):
    """The mean over the days with picks of the share of each day's picks in its top `fraction`: the papers keep
    keeps (the count rounded up), or `within` the fraction (ranked no lower than fraction x papers)."""
    got = []
    for d in np.unique(g):
        m = g == d
        if y[m].any():
            k = math.floor(fraction * m.sum() + 1e-9) if within else math.ceil(fraction * m.sum() - 1e-9)
            got.append(y[m][np.argsort(-s[m], kind="stable")[:k]].sum() / y[m].sum())
    return float(np.mean(got))


def test_a_fixed_fraction_or_count_states_the_recall_the_calibration_measured_for_it():
    """--keep F and --top N with a calibration expect the recall its out-of-day record (recall_fractions) holds
    for that top fraction of a day (N / the day's papers for --top): the highest target whose fraction F covers.
    On the calibration's own days the papers within the top F held at least that and less than the next target
    (keep's count, rounded up, at least that); on new days about that. Without a calibration --top expects the zero-shot table's recall, as --keep does; a calibration with no
    record expects nothing."""
    rng = np.random.default_rng(5)
    S, Y, G = _synthetic_days(rng, 40)
    cal = _cal_from(S, Y, G)
    s, y, g = _synthetic_days(rng, 30)
    for F in (0.05, 0.1, 0.2, 0.3, 0.5):
        d = decide_keep(s[g == 0], keep=F, calibration=cal)
        R = d.expected_recall
        assert d.rule == "keep" and R == max(float(r) for r, f in cal.recall_fractions.items() if f <= F)
        assert R <= _held(S, Y, G, F, within=True) < R + 0.01 and _held(S, Y, G, F) >= R
        assert abs(_held(s, y, g, F) - R) < 0.04, (F, R, _held(s, y, g, F))
    day = s[g == 0]
    d = decide_keep(day, top=60, calibration=cal)
    assert (d.rule, d.n_keep) == ("top", 60)
    assert 0 < d.expected_recall == decide_keep(day, keep=60 / len(day), calibration=cal).expected_recall
    assert d.to_dict()["expected_recall"] == d.expected_recall
    # without a calibration: the zero-shot table, N / the day's papers
    d = decide_keep(np.linspace(1, 0, 200), top=80)
    assert d.expected_recall == round(zero_shot_recall(0.4), 3) == 0.85
    assert decide_keep(np.linspace(1, 0, 200), top=500).expected_recall == 1.0
    assert decide_keep(np.zeros(0), top=5).expected_recall is None
    # a calibration fit on one day holds no record: nothing to expect (the zero-shot table measured another score)
    bare = Calibration(embedder="toy", dim=1)
    assert decide_keep(day, keep=0.3, calibration=bare).expected_recall is None
    assert decide_keep(day, top=60, calibration=bare).expected_recall is None


def test_a_fixed_fraction_below_the_lowest_target_of_an_old_calibration_expects_the_line_to_zero():
    """A calibration file from when the targets began at 0.50 holds no fraction below that target's: a smaller
    fraction expects the line from (0, 0) to it (less than the curve holds), never the lowest target itself."""
    rng = np.random.default_rng(7)
    cal = _cal_from(*_synthetic_days(rng, 20))
    old = Calibration(embedder="toy", dim=1)
    old.recall_fractions = {r: f for r, f in cal.recall_fractions.items() if float(r) >= 0.5}
    f50 = old.recall_fractions["0.50"]
    s = np.linspace(1, 0, 300)
    assert decide_keep(s, keep=f50, calibration=old).expected_recall == 0.5
    low = decide_keep(s, keep=f50 / 2, calibration=old).expected_recall
    assert low == round(0.25, 3) and low <= decide_keep(s, keep=f50 / 2, calibration=cal).expected_recall


def test_the_summary_states_the_expected_recall_of_a_fixed_count():
    from ranker.prefilter import PrefilterResult
    keep = decide_keep(np.linspace(1, 0, 200), top=80).to_dict()
    assert "(top K, expected recall 0.85; zero-shot" in PrefilterResult([], "minilm", keep=keep).summary()


@pytest.mark.parametrize("embedded, said", [(1, "; 1 text embedded;"), (1048, "; 1,048 texts embedded;"),
                                             (0, "; all vectors from the store;")])
def test_the_summary_counts_the_texts_embedded_in_words(embedded, said):
    # one text re-embedded (a corrected abstract) was "1 texts embedded"
    from ranker.prefilter import PrefilterResult
    keep = decide_keep(np.linspace(1, 0, 200), top=80).to_dict()
    assert said in PrefilterResult([], "minilm", keep=keep, embedded=embedded).summary()


def test_decide_keep_precedence_floor_and_errors():
    s = np.linspace(1, 0, 100)
    cal = _cal_from(np.r_[np.linspace(1, 0, 100)], np.r_[np.ones(50, bool), np.zeros(50, bool)], np.zeros(100))
    d = decide_keep(s, top=7, keep=0.5, recall=0.9, calibration=cal)
    assert (d.rule, d.n_keep) == ("top", 7)
    d = decide_keep(s, keep=0.5, recall=0.9, calibration=cal)
    assert (d.rule, d.n_keep) == ("keep", 50)
    d = decide_keep(s, calibration=cal)                           # default with a calibration: recall 0.95
    assert d.rule == "recall" and d.target == 0.95 and d.threshold == cal.recall_thresholds["0.95"]
    d = decide_keep(s)                                            # default without: the fixed fraction
    assert d.rule == "keep" and d.n_keep == math.ceil(DEFAULT_KEEP * 100) and d.expected_recall is not None
    d = decide_keep(s, keep=0.05, min_keep=20)                    # the floor
    assert d.n_by_rule == 5 and d.n_keep == 20
    assert decide_keep(s[:10], keep=0.05, min_keep=20).n_keep == 10
    assert set(d.to_dict()) == {"rule", "kept", "kept_by_rule", "threshold", "expected_recall", "target_recall"}
    for kw, key in (({"recall": 0}, "prefilter.recall"), ({"recall": 1.5}, "prefilter.recall"),
                    ({"keep": 0}, "prefilter.keep"), ({"top": 0}, "prefilter.top")):
        with pytest.raises(InputError) as e:
            decide_keep(s, **kw)
        assert e.value.key == key


def test_a_day_with_nothing_to_keep_names_the_recall_rule_that_applies(tmp_path):
    """Every paper excluded (or an empty day): keeping by recall without a calibration is the zero-shot prior,
    and the result (what `ranker run`'s manifest records) says so, not the calibrated rule."""
    from conftest import DAYS, store_vectors
    from ranker.prefilter import rank_papers
    from ranker.prefilter.rules import DayRules, Exclusions
    from ranker.sources import read_papers
    from ranker.store import Store

    for d in (decide_keep(np.zeros(0), recall=0.9), decide_keep(np.zeros(0), recall=0.9, min_keep=0)):
        assert (d.rule, d.n_keep, d.threshold) == ("recall-prior", 0, None)
    cal = _cal_from(np.linspace(1, 0, 100), np.r_[np.ones(50, bool), np.zeros(50, bool)], np.zeros(100))
    d = decide_keep(np.zeros(0), recall=0.9, calibration=cal)
    assert (d.rule, d.n_keep, d.threshold) == ("recall", 0, calibrated_threshold(cal, 0.9))
    papers = list(read_papers(DAYS / "2025-05-15" / "listing.jsonl"))[:30]
    with Store(tmp_path / "db.sqlite3") as store:
        store_vectors(store, papers)
        res = rank_papers(papers, recall=0.9, store=store, rules=DayRules(exclusions=Exclusions.build(["re:(?s)^(?!.*xyzzy)"])))
    assert res.kept == 0 and res.excluded == 30 and res.keep["rule"] == "recall-prior"
    assert "by recall 0.9 (zero-shot prior)" in res.summary()


def test_the_zero_shot_prior_rounds_the_count_up():
    """A day whose prior fraction is not a whole number of papers keeps the next one too (fewer would fall short
    of the fraction the table says the recall needs)."""
    n = 199
    want = ZERO_SHOT_FRACTIONS[0.95] * n
    assert want != int(want)
    assert keep_for_recall(np.linspace(1, 0, n), 0.95)[0] == math.ceil(want)


def test_a_calibrated_threshold_keeps_the_papers_that_reach_it():
    """'Keep every paper scoring at least t': a paper scoring exactly the threshold is kept."""
    cal = Calibration(embedder="toy", dim=1)
    cal.recall_thresholds = {"0.50": 0.7, "0.90": 0.5}
    k, rule, thr, _ = keep_for_recall(np.array([0.9, 0.5, 0.5, 0.1]), 0.9, cal)
    assert (k, rule, thr) == (3, "recall", 0.5)


def test_a_fraction_exactly_at_a_targets_fraction_expects_that_target():
    cal = Calibration(embedder="toy", dim=1)
    cal.recall_fractions = {"0.50": 0.1, "0.90": 0.3}
    s = np.linspace(1, 0, 100)
    assert decide_keep(s, keep=0.3, calibration=cal).expected_recall == 0.9
    assert decide_keep(s, keep=0.29, calibration=cal).expected_recall == 0.5


def test_auc_counts_a_tie_between_a_pick_and_another_as_half():
    from ranker.prefilter.metrics import auc
    assert auc(np.array([1.0, 1.0]), np.array([True, False])) == 0.5
    assert auc(np.array([3.0, 2.0, 2.0, 1.0]), np.array([True, False, True, False])) == 0.875


def test_recall_at_a_fraction_counts_the_top_rounded_up():
    """recall@25 of a 10-paper day is over its top 3 (2.5 rounded up), as the keep rule keeps."""
    s = np.arange(10, 0, -1, dtype=float)
    y = np.zeros(10, bool)
    y[2] = True                                           # the pick ranks 3rd
    assert recall_at(s, y, 0.25) == 1.0 and recall_at(s, y, 0.2) == 0.0


def test_a_mean_over_days_leaves_out_a_day_where_the_figure_is_undefined():
    from ranker.prefilter.metrics import mean_of
    good = {"auc": 0.8, "recall@25": 0.5, "recall@40": 0.75, "keep95": 0.3}
    empty = {k: float("nan") for k in good}
    assert mean_of([good, empty]) == good
    assert all(math.isnan(v) for v in mean_of([empty]).values())


def _day(n):
    from ranker.records import Paper
    return [Paper(id=f"2506.{i:05d}", title=f"paper {i}", abstract="", authors=[]) for i in range(n)]


def test_tied_scores_rank_the_earlier_paper_first():
    """keep_day's promise (ties: the earlier paper first), on a day long enough for an unstable sort to reorder
    them."""
    from ranker.prefilter import keep_day
    score = np.array([1.0, 0.5] * 50)
    order, kept, _, _ = keep_day(score, _day(100), top=30)
    assert list(order) == list(range(0, 100, 2)) + list(range(1, 100, 2))
    assert np.flatnonzero(kept).tolist() == list(range(0, 60, 2))


def test_the_keep_rule_counts_only_the_papers_not_excluded_and_names_the_floor():
    """A quarter of a day with 10 of its 100 papers excluded is a quarter of the 90 others (23, rounded up), not
    of the 100; papers kept only to reach min_keep are marked so (the site's ranking table shows the rule)."""
    from ranker.prefilter import keep_day
    from ranker.prefilter.rules import DayRules, Exclusions
    papers = _day(100)
    for p in papers[:10]:
        p.title = "a diffusion model"
    rules = DayRules(exclusions=Exclusions.build(["diffusion model"]))
    score = np.linspace(1, 0, 100)
    _, kept, why, dec = keep_day(score, papers, keep=0.25, min_keep=0, rules=rules)
    assert dec.n_keep == 23 and kept.sum() == 23 and not kept[:10].any() and kept[10:33].all()
    assert set(why[:10]) == {"exclude:diffusion model"} and set(why[10:]) == {"keep"}
    _, kept, why, _ = keep_day(score, papers, keep=0.05, min_keep=20, rules=rules)
    assert kept.sum() == 20
    assert why[10:15] == ["keep"] * 5 and why[15:30] == ["min_keep"] * 15 and set(why[30:]) == {"keep"}


def test_recent_days_weigh_most():
    from ranker.prefilter.calibrate import day_weights
    assert day_weights(np.array(["2025-06-21", "2025-06-22", "2025-06-23"]), 1).tolist() == [0.25, 0.5, 1.0]


def test_recall_thresholds_are_the_scores_of_the_picks_that_reach_each_target():
    """Keeping every paper scoring at least a pick's score holds that pick: one day, picks at 0.9 and 0.7, so
    half the picks need 0.9 and all of them 0.7. A day without picks has no recall to hold and changes nothing."""
    s = np.array([0.9, 0.8, 0.7, 0.1])
    y = np.array([True, False, True, False])
    t = recall_thresholds(s, y, np.zeros(4))
    assert (t["0.50"], t["0.51"], t["1.00"]) == (0.9, 0.7, 0.7)
    s2, y2, g2 = np.r_[s, 0.95, 0.3], np.r_[y, False, False], np.r_[np.zeros(4), 1, 1]
    assert recall_thresholds(s2, y2, g2) == t
