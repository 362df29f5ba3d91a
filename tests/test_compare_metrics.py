"""Metrics of `ranker compare`, checked against independent computations."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ranker.compare import compute_metrics, read_scores, run_compare
from ranker.compare.readers import PrefilterRow, ScoreRow

from conftest import DAYS, SEED_DIGEST as SEED



# ------------------------------------------------------------------------------------------ helpers

def render_seed_digest(day: str, rows: list[dict]) -> str:
    """A Markdown digest in the seed's layout from gpt_scores.jsonl rows, through the product's renderer."""
    from ranker.digest import Selected, TokenCost, render_markdown
    from ranker.prompts import load_prompts
    from ranker.records import Paper, Score
    sel = [Selected(Paper(id=d["id"], title=d["title"], abstract=d["abstract"], authors=d["authors"]),
                    Score(d["id"], d["RELEVANCE"], d["NOVELTY"], d["COMMENT"])) for d in rows]
    return render_markdown(day, sel, usage=TokenCost("gpt-4o"), total_papers=len(rows),
                           scanned_papers=len(rows), prompts=load_prompts())


def avg_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank, by argsort (independent of scipy)."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=float)
    ranks[order] = np.arange(1, len(x) + 1)
    for v in np.unique(x):
        tie = x == v
        ranks[tie] = ranks[tie].mean()
    return ranks


def spearman_by_hand(a, b) -> float:
    ra, rb = avg_ranks(np.asarray(a, float)), avg_ranks(np.asarray(b, float))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / math.sqrt((ra ** 2).sum() * (rb ** 2).sum()))


def synthetic_local(ids: list[str], seed: int) -> dict[str, tuple[int, int]]:
    rng = np.random.default_rng(seed)
    return {i: (int(rng.integers(1, 11)), int(rng.integers(1, 11))) for i in ids}


def write_local_jsonl(path: Path, scores: dict[str, tuple[int, int]]) -> None:
    with path.open("w") as f:
        for i, (r, n) in scores.items():
            f.write(json.dumps({"ARXIVID": i, "COMMENT": f"local view of {i}", "RELEVANCE": r, "NOVELTY": n}) + "\n")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ------------------------------------------------------------------------------------------ tests

def _check_against_hand(metrics: dict, gpt: dict, local: dict[str, tuple[int, int]]) -> None:
    ids = sorted(gpt)
    for k, what in ((0, "relevance"), (1, "novelty")):
        g = [getattr(gpt[i], what) for i in ids]
        l_ = [local[i][k] for i in ids]
        m = metrics[what]
        assert m["spearman"] == pytest.approx(spearman_by_hand(g, l_), abs=1e-6)
        assert m["mae"] == pytest.approx(np.mean(np.abs(np.subtract(g, l_))), abs=1e-6)
        assert m["exact"] == pytest.approx(np.mean(np.equal(g, l_)), abs=1e-6)
        assert m["within1"] == pytest.approx(np.mean(np.abs(np.subtract(g, l_)) <= 1), abs=1e-6)
        assert -1 <= m["kendall"] <= 1


def test_seed_markdown_digest_vs_synthetic_local(tmp_path):
    gpt = read_scores(SEED)
    local = synthetic_local(list(gpt), seed=7)
    write_local_jsonl(tmp_path / "local.jsonl", local)
    m = run_compare(SEED, tmp_path / "local.jsonl", tmp_path / "out")
    assert m["n_common"] == len(gpt) == 47
    assert m["n_gpt"] == m["n_local"] == 47
    _check_against_hand(m, gpt, local)
    on_disk = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert on_disk["relevance"] == m["relevance"] and on_disk["n_common"] == 47
    # every GPT paper is a pick; the local picks are those with R >= 8 and N >= 7
    local_picks = {i for i, (r, n) in local.items() if r >= 8 and n >= 7}
    sel = m["selection"]["common"]
    assert (sel["gpt_picks"], sel["local_picks"], sel["tp"]) == (47, len(local_picks), len(local_picks))
    assert sel["precision"] == (1.0 if local_picks else None)
    assert sel["recall"] == pytest.approx(len(local_picks) / 47, abs=1e-6)


def test_markdown_digest_of_another_day(tmp_path):
    day = "2025-05-13"
    src = _jsonl(DAYS / day / "gpt_scores.jsonl")
    md = tmp_path / "digest.md"
    md.write_text(render_seed_digest(day, src))
    gpt = read_scores(md)
    assert list(gpt) == [d["id"] for d in src]
    local = synthetic_local(list(gpt), seed=3)
    local_path = tmp_path / "local.jsonl"
    write_local_jsonl(local_path, {f"{i}v2": v for i, v in local.items()})   # versions must not matter
    m = run_compare(md, local_path, tmp_path / "out")
    assert m["n_common"] == len(src) == 36
    _check_against_hand(m, gpt, local)
    assert m["n_warnings"] == 0


def test_several_days_with_listing_and_per_day_breakdown(tmp_path):
    listing = {d["id"]: d for f in sorted(DAYS.glob("*/listing.jsonl")) for d in _jsonl(f)}
    gpt_rows = {d["id"]: d for f in sorted(DAYS.glob("*/gpt_scores.jsonl")) for d in _jsonl(f)}
    rng = np.random.default_rng(11)
    # the local model scored half of the listing, including some of GPT's picks
    scored = [i for i in sorted(listing) if rng.random() < 0.5]
    local = {i: (int(rng.integers(1, 11)), int(rng.integers(1, 11))) for i in scored}
    write_local_jsonl(tmp_path / "local.jsonl", local)
    m = run_compare(str(DAYS / "*" / "gpt_scores.jsonl"), tmp_path / "local.jsonl", tmp_path / "out",
                    papers=DAYS, min_relevance=8, min_novelty=7)
    common = sorted(set(gpt_rows) & set(local))
    assert m["n_common"] == len(common)
    assert m["n_papers"] == len(listing) == 1445

    # whole-listing selection by hand
    gpt_pick = {i for i, d in gpt_rows.items() if d["RELEVANCE"] >= 8 and d["NOVELTY"] >= 7}
    loc_pick = {i for i, (r, n) in local.items() if r >= 8 and n >= 7}
    tp, fp, fn = len(gpt_pick & loc_pick), len(loc_pick - gpt_pick), len(gpt_pick - loc_pick)
    sel = m["selection"]["listing"]
    assert (sel["n"], sel["tp"], sel["fp"], sel["fn"]) == (1445, tp, fp, fn)
    assert sel["precision"] == pytest.approx(tp / (tp + fp), abs=1e-6)
    assert sel["recall"] == pytest.approx(tp / (tp + fn), abs=1e-6)
    assert sel["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-6)

    # per day: one entry per day, with the day's own numbers
    assert sorted(m["days"]) == sorted(p.name for p in DAYS.iterdir())
    for day, dm in m["days"].items():
        ids = [i for i in common if listing[i]["date"] == day]
        assert dm["n_common"] == len(ids)
        assert dm["selection"]["listing"]["n"] == sum(1 for d in listing.values() if d["date"] == day)
        g = [gpt_rows[i]["RELEVANCE"] for i in ids]
        l_ = [local[i][0] for i in ids]
        assert dm["relevance"]["spearman"] == pytest.approx(spearman_by_hand(g, l_), abs=1e-6)


def test_thresholds_change_the_picks():
    gpt = {"1": ScoreRow("1", 9, 9), "2": ScoreRow("2", 8, 7), "3": ScoreRow("3", 6, 6)}
    local = {"1": ScoreRow("1", 9, 9), "2": ScoreRow("2", 7, 7), "3": ScoreRow("3", 6, 6)}
    default = compute_metrics(gpt, local)["selection"]["common"]
    assert (default["tp"], default["fn"], default["fp"]) == (1, 1, 0)
    loose = compute_metrics(gpt, local, min_relevance=6, min_novelty=6)["selection"]["common"]
    assert (loose["tp"], loose["fn"], loose["fp"], loose["f1"]) == (3, 0, 0, 1.0)


def test_undefined_values_are_null():
    one = compute_metrics({"1": ScoreRow("1", 9, 9)}, {"1": ScoreRow("1", 5, 5)})
    assert one["relevance"]["spearman"] is None and one["relevance"]["kendall"] is None
    assert one["relevance"]["mae"] == 4 and one["relevance"]["exact"] == 0
    constant = compute_metrics({i: ScoreRow(i, 8, 7) for i in "abc"},
                               {"a": ScoreRow("a", 3, 3), "b": ScoreRow("b", 5, 4), "c": ScoreRow("c", 9, 9)})
    assert constant["relevance"]["spearman"] is None        # GPT's side is constant
    assert constant["relevance"]["mae"] == pytest.approx((5 + 3 + 1) / 3, abs=1e-6)
    # no local picks: precision undefined, recall 0
    sel = constant["selection"]["common"]
    assert sel["local_picks"] == 1 and sel["precision"] == 1.0
    nopick = compute_metrics({"a": ScoreRow("a", 9, 9)}, {"a": ScoreRow("a", 1, 1)})["selection"]["common"]
    assert nopick["precision"] is None and nopick["recall"] == 0.0 and nopick["f1"] == 0.0


def test_prefilter_recall_and_auc_by_hand():
    # one day, 10 papers, scores 10..1 for ids p0..p9; GPT picked p1 (rank 2) and p6 (rank 7)
    rows = {f"p{k}": PrefilterRow(f"p{k}", float(10 - k), kept=k < 3, date="2025-01-01") for k in range(10)}
    gpt = {"p1": ScoreRow("p1", 9, 8), "p6": ScoreRow("p6", 8, 7), "p3": ScoreRow("p3", 5, 5)}
    m = compute_metrics(gpt, {}, prefilter=rows)
    pf = m["prefilter"]
    assert pf["gpt_picks"] == 2
    # keep 10% -> 1 paper (p0): 0/2; 25% -> 3 papers: 1/2; 40% -> 4: 1/2; 60% -> 6: 1/2; 70% -> 7: 2/2
    assert pf["recall_at"] == {"10%": 0.0, "25%": 0.5, "40%": 0.5, "60%": 0.5}
    curve = dict(zip(pf["curve"]["fraction"], pf["curve"]["recall"]))
    # each day keeps ceil(f * n): 60% keeps 6 (p6 is 7th), 61% keeps 7
    assert curve[0.6] == 0.5 and curve[0.61] == 1.0 and curve[0.0] == 0.0 and curve[1.0] == 1.0
    # AUC: positives at ranks 2 and 7 of 10; pairs (pos > neg): p1 beats 7 of 8 negatives, p6 beats 3 of 8
    assert pf["roc_auc"] == pytest.approx((7 + 3) / 16, abs=1e-6)
    assert pf["kept_fraction"] == pytest.approx(0.3) and pf["recall_at_kept"] == 0.5


def test_prefilter_keeps_a_share_of_each_day():
    rows = {}
    for day, base in (("2025-01-01", 0.0), ("2025-01-02", 100.0)):     # day 2's scores are all higher
        for k in range(10):
            pid = f"{day}-{k}"
            rows[pid] = PrefilterRow(pid, base + 10 - k, kept=False, date=day)
    # GPT judged both days (a pick on day 1, a paper it passed over on day 2): a prefilter day GPT never judged
    # is left out, and with day 2 gone the share of each day was never tried (pf["n"] was 10)
    gpt = {"2025-01-01-0": ScoreRow("2025-01-01-0", 9, 9), "2025-01-02-9": ScoreRow("2025-01-02-9", 2, 2)}
    pf = compute_metrics(gpt, {}, prefilter=rows)["prefilter"]
    assert (pf["n"], pf["gpt_picks"]) == (20, 1)
    assert pf["recall_at"]["10%"] == 1.0      # day 1's best paper is kept although day 2 outscores it


def test_prefilter_ties_are_ranked_by_id_whatever_the_file_s_order():
    """Two papers of one day with the same score: the lower id ranks first, as documented, so the recall at a
    share does not depend on the order the prefilter file lists them in."""
    for order in (("b", "a"), ("a", "b")):
        rows = {i: PrefilterRow(i, 1.0, kept=False, date="2025-01-01") for i in order}
        rows.update({f"z{k}": PrefilterRow(f"z{k}", 0.0, kept=False, date="2025-01-01") for k in range(8)})
        pf = compute_metrics({"b": ScoreRow("b", 9, 9)}, {}, prefilter=rows)["prefilter"]
        assert pf["recall_at"]["10%"] == 0.0, order     # 10% of 10 keeps one paper: "a", not the pick "b"
        assert pf["recall_at"]["25%"] == 1.0, order


def test_the_confusion_tables_put_gpt_on_the_rows_and_count_every_common_paper():
    """confusion_relevance[g - 1][l - 1] counts the papers GPT scored g and the local model l; a score out of
    1..10 (a GPT file's 0) is counted at the nearest end, not dropped from the table."""
    gpt = {"a": ScoreRow("a", 9, 9), "b": ScoreRow("b", 0, 5), "c": ScoreRow("c", 3, 3)}
    local = {"a": ScoreRow("a", 3, 3), "b": ScoreRow("b", 5, 12), "c": ScoreRow("c", 3, 3)}
    m = compute_metrics(gpt, local)
    rel, nov = np.array(m["confusion_relevance"]), np.array(m["confusion_novelty"])
    assert rel.sum() == nov.sum() == 3
    assert rel[8][2] == 1 and rel[2][8] == 0          # GPT 9 (row), local 3 (column)
    assert rel[0][4] == 1 and nov[4][9] == 1          # 0 counted as 1, 12 as 10
    assert rel[2][2] == 1


def test_the_misses_and_extra_picks_are_the_two_sides_differences():
    """metrics.json's gpt_picks_missed and local_picks_extra (the report's lists under the selection table): the
    papers one side picked and the other did not; a paper both picked is in neither."""
    gpt = {"a": ScoreRow("a", 9, 9), "b": ScoreRow("b", 9, 9), "c": ScoreRow("c", 3, 3)}
    local = {"a": ScoreRow("a", 2, 2), "b": ScoreRow("b", 9, 8), "c": ScoreRow("c", 9, 9)}
    m = compute_metrics(gpt, local)
    assert (m["gpt_picks_missed"], m["local_picks_extra"]) == (["a"], ["c"])


def test_an_author_match_in_gpt_s_digest_is_no_pick_whatever_its_scores():
    """The seed digest lists a pinned author's paper as "Author match" with the scores GPT gave it: it is in the
    digest for its authors, not picked, so a local model that does not pick it misses nothing."""
    gpt = {"a": ScoreRow("a", 10, 10, author_match=True), "b": ScoreRow("b", 9, 9)}
    local = {"a": ScoreRow("a", 2, 2), "b": ScoreRow("b", 9, 9)}
    m = compute_metrics(gpt, local)
    sel = m["selection"]["common"]
    assert (sel["gpt_picks"], sel["tp"], sel["fn"]) == (1, 1, 0) and m["gpt_picks_missed"] == []


def test_no_overlap_gives_n_common_zero_and_a_message(tmp_path):
    local = tmp_path / "local.jsonl"
    local.write_text('{"ARXIVID": "2401.00001", "COMMENT": "", "RELEVANCE": 9, "NOVELTY": 9}\n'
                     '{"ARXIVID": "2401.00002", "COMMENT": "", "RELEVANCE": 3, "NOVELTY": 2}\n')
    m = run_compare(SEED, local, tmp_path / "out")
    assert m["n_common"] == 0 and m["n_gpt"] == 47 and m["n_local"] == 2
    assert "no paper is in both" in m["message"]
    assert m["relevance"]["spearman"] is None and m["relevance"]["mae"] is None
    assert m["selection"]["common"]["n"] == 0
    assert (tmp_path / "out" / "report.html").exists()


def test_a_side_without_any_judgement_is_nothing_to_do_and_writes_nothing(tmp_path):
    md = tmp_path / "digest.md"
    md.write_text("# Personalized Daily ArXiv Papers 2025-06-23\n\nTotal relevant papers: 0\n")
    w: list[str] = []
    m = run_compare(md, DAYS / "2025-06-23" / "gpt_scores.jsonl", tmp_path / "out", warn=w.append)
    assert m["nothing_to_do"] == (f"the GPT side ({md}) holds no judgement: nothing to compare; wrote no "
                                  "metrics.json or report.html")
    assert (m["n_gpt"], m["n_local"], w) == (0, 47, []) and not (tmp_path / "out").exists()
    (tmp_path / "a.jsonl").write_text("")
    (tmp_path / "b.jsonl").write_text("\n")
    m = run_compare(md, [tmp_path / "a.jsonl", tmp_path / "b.jsonl"], tmp_path / "out")
    assert m["nothing_to_do"].startswith(f"the GPT side ({md}) and the local side (2 files) hold no judgement")


def test_cli_an_empty_gpt_file_is_one_nothing_to_do_line(tmp_path):
    from conftest import ranker
    empty = tmp_path / "gpt_scores.jsonl"
    empty.write_text("")
    res = ranker("compare", "--gpt", empty, "--local", DAYS / "2025-06-23" / "gpt_scores.jsonl",
                 "--out", tmp_path / "out")
    assert res.returncode == 0 and res.stdout == "", (res.stdout, res.stderr)
    assert res.stderr.splitlines() == [f"nothing to do: the GPT side ({empty}) holds no judgement: nothing to "
                                       "compare; wrote no metrics.json or report.html"]
    assert not (tmp_path / "out").exists()


def test_listing_days_one_side_never_judged_are_left_out(tmp_path):
    """GPT's digest covers one day, the listing five: the other four days must not count as misses."""
    local = {d["id"]: (d["RELEVANCE"], d["NOVELTY"]) for f in sorted(DAYS.glob("*/gpt_scores.jsonl"))
             for d in _jsonl(f)}
    write_local_jsonl(tmp_path / "local.jsonl", local)
    m = run_compare(SEED, tmp_path / "local.jsonl", tmp_path / "out", papers=DAYS)
    assert m["papers_days_skipped"] == ["2025-04-30", "2025-05-13", "2025-05-15", "2025-07-02"]
    assert m["n_papers"] == len(_jsonl(DAYS / "2025-06-23" / "listing.jsonl"))
    sel = m["selection"]["listing"]
    assert (sel["tp"], sel["fp"], sel["fn"], sel["f1"]) == (47, 0, 0, 1.0)
    assert m["days"]["2025-05-13"]["n_common"] == 0 and "listing" not in m["days"]["2025-05-13"]["selection"]


def test_a_gpt_digest_of_another_day_leaves_the_listing_out_not_the_local_picks_as_false_ones(tmp_path):
    """GPT's digest of 2025-05-15 given against a local run and the listing of 2025-06-23: the two sides judged no
    day in common, yet the whole listing was measured, every local pick there a false pick (precision 0.000,
    F1 0.000) on a day GPT never judged. With no day in common no listing day counts, as with some in common
    the others do not."""
    local = {d["id"]: (d["RELEVANCE"], d["NOVELTY"]) for d in _jsonl(DAYS / "2025-06-23" / "gpt_scores.jsonl")}
    write_local_jsonl(tmp_path / "local.jsonl", local)
    m = run_compare(DAYS / "2025-05-15" / "gpt_scores.jsonl", tmp_path / "local.jsonl", tmp_path / "out",
                    papers=DAYS / "2025-06-23" / "listing.jsonl")
    assert m["papers_days_skipped"] == ["2025-06-23"] and m["n_papers"] == 0
    sel = m["selection"]["listing"]
    assert (sel["n"], sel["local_picks"], sel["fp"], sel["precision"]) == (0, 0, 0, None)
    assert m["local_picks_extra"] == [] and m["message"].startswith("no paper is in both files")
    # undated on both sides (files without a day in their names, a listing without dates): nothing is left out
    for name, f in (("gpt.jsonl", DAYS / "2025-05-15" / "gpt_scores.jsonl"),
                    ("listing.jsonl", DAYS / "2025-06-23" / "listing.jsonl")):
        (tmp_path / name).write_text("".join(json.dumps({k: v for k, v in d.items() if k != "date"}) + "\n"
                                             for d in _jsonl(f)))
    m = run_compare(tmp_path / "gpt.jsonl", tmp_path / "local.jsonl", tmp_path / "out2",
                    papers=tmp_path / "listing.jsonl")
    assert "papers_days_skipped" not in m and m["n_papers"] == len(_listing_ids("2025-06-23"))


def _listing_ids(day: str) -> list[str]:
    return [d["id"] for d in _jsonl(DAYS / day / "listing.jsonl")]


def test_a_day_one_side_judged_and_picked_nothing_is_kept_in_the_listing(tmp_path):
    """GPT's file for a day is empty (GPT picked nothing), or the local digest is {}: the day is judged, not
    dropped; the other side's picks there are false positives (or misses), as an independent count says."""
    gpt_dir = tmp_path / "gpt"
    (gpt_dir / "2025-06-23").mkdir(parents=True)
    (gpt_dir / "2025-07-02").mkdir()
    (gpt_dir / "2025-06-23" / "gpt_scores.jsonl").write_text((DAYS / "2025-06-23" / "gpt_scores.jsonl").read_text())
    (gpt_dir / "2025-07-02" / "gpt_scores.jsonl").write_text("")
    gpt_picks = {d["id"] for d in _jsonl(DAYS / "2025-06-23" / "gpt_scores.jsonl")}
    ids = _listing_ids("2025-06-23") + _listing_ids("2025-07-02")
    local = synthetic_local(ids, seed=7)
    write_local_jsonl(tmp_path / "local.jsonl", local)
    papers = [DAYS / "2025-06-23" / "listing.jsonl", DAYS / "2025-07-02" / "listing.jsonl"]
    w: list[str] = []
    m = run_compare(gpt_dir, tmp_path / "local.jsonl", tmp_path / "out", papers=papers, warn=w.append)
    assert w == [] and "papers_days_skipped" not in m and m["gpt_days_without_rows"] == ["2025-07-02"]
    assert m["n_papers"] == len(ids)
    local_picks = {i for i, (r, n) in local.items() if r >= 8 and n >= 7}
    on_0702 = local_picks & set(_listing_ids("2025-07-02"))
    assert on_0702
    sel = m["selection"]["listing"]
    assert (sel["n"], sel["tp"], sel["fp"], sel["fn"]) == (len(ids), len(local_picks & gpt_picks),
                                                           len(local_picks - gpt_picks), len(gpt_picks - local_picks))
    day = m["days"]["2025-07-02"]["selection"]["listing"]
    assert (day["n"], day["fp"], day["tp"], day["gpt_picks"]) == (len(_listing_ids("2025-07-02")), len(on_0702), 0, 0)

    # the other way round: the local model's `ranker run` JSON digest for 2025-07-02 is {} (it picked nothing)
    (tmp_path / "loc").mkdir()
    both = {d["id"]: d for day_ in ("2025-06-23", "2025-07-02") for d in _jsonl(DAYS / day_ / "gpt_scores.jsonl")}
    write_local_jsonl(tmp_path / "loc" / "2025-06-23.jsonl",
                      {i: (d["RELEVANCE"], d["NOVELTY"]) for i, d in both.items() if i in gpt_picks})
    (tmp_path / "loc" / "2025-07-02-output.json").write_text("{}")
    gpt_both = tmp_path / "gpt_both"
    gpt_both.mkdir()
    for day_ in ("2025-06-23", "2025-07-02"):
        (gpt_both / f"{day_}.jsonl").write_text((DAYS / day_ / "gpt_scores.jsonl").read_text())
    m = run_compare(gpt_both, tmp_path / "loc", tmp_path / "out2", papers=papers)
    assert "papers_days_skipped" not in m and m["local_days_without_rows"] == ["2025-07-02"]
    sel = m["selection"]["listing"]
    n_0702 = len(_jsonl(DAYS / "2025-07-02" / "gpt_scores.jsonl"))
    assert (sel["n"], sel["tp"], sel["fp"], sel["fn"]) == (len(ids), 47, 0, n_0702)
    from ranker.compare import summary_markdown
    assert "Note: days the local files cover with no paper (nothing picked): 2025-07-02" in summary_markdown(m)
    report = (tmp_path / "out2" / "report.html").read_text()
    assert "Days the local files cover with no paper (nothing picked): 2025-07-02</p>" in report


def test_a_paper_listed_on_two_days_counts_on_each_in_the_per_day_table(tmp_path):
    """arXiv lists a paper again now and then (15 of the shared history's 14,691 papers are on two days; GPT
    picked 2504.15777 on 2025-06-13, its second day, not on 2025-04-23). Compare gave such a paper its first
    listing day only: that day's table counted GPT's pick of the second day, the second day lost the paper from
    its listing, GPT's pick and the local judgement. Each day counts it with that day's rows; the overall figures
    count it once."""
    a, b = "2025-06-23", "2025-07-02"
    again = next(d for d in _jsonl(DAYS / a / "listing.jsonl")
                 if d["id"] not in {g["id"] for g in _jsonl(DAYS / a / "gpt_scores.jsonl")})
    listing = {a: _jsonl(DAYS / a / "listing.jsonl"), b: _jsonl(DAYS / b / "listing.jsonl") + [{**again, "date": b}]}
    gpt = {a: _jsonl(DAYS / a / "gpt_scores.jsonl"),
           b: _jsonl(DAYS / b / "gpt_scores.jsonl") + [{"id": again["id"], "date": b, "title": again["title"],
                                                        "RELEVANCE": 9, "NOVELTY": 8, "COMMENT": "picked again"}]}
    rng = np.random.default_rng(5)
    days = tmp_path / "days"
    prefilter: dict[str, list[dict]] = {}
    for d in (a, b):
        (days / d).mkdir(parents=True)
        (days / d / "listing.jsonl").write_text("".join(json.dumps(x) + "\n" for x in listing[d]))
        (days / d / "gpt_scores.jsonl").write_text("".join(json.dumps(x) + "\n" for x in gpt[d]))
        # the prefilter ranks each day: the paper listed twice has a row (and a place) on each
        scores = rng.random(len(listing[d]))
        cut = np.quantile(scores, 0.75)
        prefilter[d] = [{"id": x["id"], "title": x["title"], "abstract": x["abstract"], "date": d,
                         "prefilter_score": float(s), "kept": bool(s >= cut)} for x, s in zip(listing[d], scores)]
        (days / d / "ranked.jsonl").write_text("".join(json.dumps(x) + "\n" for x in prefilter[d]))
    # the local model judged every paper once, without a day (`ranker score` of the listings)
    ids = sorted({x["id"] for d in (a, b) for x in listing[d]})
    local = synthetic_local(ids, seed=5)
    local[again["id"]] = (9, 9)
    write_local_jsonl(tmp_path / "local.jsonl", local)

    w: list[str] = []
    m = run_compare(str(days / "*" / "gpt_scores.jsonl"), tmp_path / "local.jsonl", tmp_path / "out",
                    papers=str(days / "*" / "listing.jsonl"), prefilter=str(days / "*" / "ranked.jsonl"),
                    warn=w.append)
    assert w == []

    def picks(rows) -> set[str]:
        return {x["id"] for x in rows if x["RELEVANCE"] >= 8 and x["NOVELTY"] >= 7}
    local_picks = {i for i, (r, n) in local.items() if r >= 8 and n >= 7}
    # overall: each paper once
    gpt_picks = picks(gpt[a]) | picks(gpt[b])
    assert m["n_papers"] == len(ids) == len(listing[a]) + len(listing[b]) - 1
    assert m["n_gpt"] == len(gpt[a]) + len(gpt[b])
    sel = m["selection"]["listing"]
    assert (sel["n"], sel["tp"], sel["fp"], sel["fn"]) == (len(ids), len(gpt_picks & local_picks),
                                                           len(local_picks - gpt_picks), len(gpt_picks - local_picks))
    assert m["prefilter"]["n"] == len(ids) and m["prefilter"]["gpt_picks"] == len(gpt_picks)
    # per day: the day's listing, GPT's judgements of that day, the local ones of the papers listed that day
    for d in (a, b):
        dm = m["days"][d]
        listed = {x["id"] for x in listing[d]}
        g, l_ = picks(gpt[d]), local_picks & listed
        assert again["id"] in listed and (again["id"] in g) == (d == b)
        assert (dm["n_gpt"], dm["n_local"], dm["n_common"]) == (len(gpt[d]), len(listed), len(gpt[d]))
        day_sel = dm["selection"]["listing"]
        assert (day_sel["n"], day_sel["gpt_picks"], day_sel["tp"], day_sel["fp"], day_sel["fn"]) == (
            len(listed), len(g), len(g & l_), len(l_ - g), len(g - l_)), d
        pf = dm["prefilter"]
        kept = {x["id"] for x in prefilter[d] if x["kept"]}
        assert (pf["n"], pf["gpt_picks"]) == (len(listed), len(g))
        assert pf["recall_at_kept"] == pytest.approx(len(g & kept) / len(g), abs=1e-6)
        assert pf["kept_fraction"] == pytest.approx(len(kept) / len(listed), abs=1e-6)
    assert "a paper listed on several days counts on each" in (tmp_path / "out" / "report.html").read_text()


def test_the_bias_is_how_much_higher_the_local_model_scores_than_gpt():
    """bias = mean(local - GPT): a model that scores every paper 2 above GPT has bias +2, not -2."""
    from ranker.compare.metrics import agreement
    a = agreement([5, 6, 7], [7, 8, 9])
    assert (a["bias"], a["mae"], a["within1"], a["mean_gpt"], a["mean_local"]) == (2.0, 2.0, 0.0, 6.0, 8.0)


def test_the_summary_s_heading_groups_its_counts():
    """A month of days compared: the heading read "## ranker compare: 1200 papers both judged (GPT 1200, local
    1500)", where every other command's summary groups its thousands."""
    from ranker.compare import summary_markdown
    gpt = {f"2507.{i:05d}": ScoreRow(f"2507.{i:05d}", 1 + i % 10, 1 + i % 9) for i in range(1200)}
    local = {f"2507.{i:05d}": ScoreRow(f"2507.{i:05d}", 1 + i % 7, 1 + i % 8) for i in range(300, 1800)}
    md = summary_markdown(compute_metrics(gpt, local))
    assert md.startswith("## ranker compare: 900 papers both judged (GPT 1,200, local 1,500)\n"), md


def test_the_summary_s_tables_and_notes_group_their_counts_as_its_heading_does():
    """Once the heading grouped its counts, the lines below it did not: "## ranker compare: 1,500 papers both judged
    (GPT 2,000, ...)" over "| common | 1500 | ..." and "500 of GPT's 2000 judgements are not in the listing",
    the same count in two styles in one summary."""
    import re
    from ranker.compare import summary_markdown
    gpt = {f"2507.{i:05d}": ScoreRow(f"2507.{i:05d}", 1 + i % 10, 1 + i % 9) for i in range(2000)}
    local = {f"2507.{i:05d}": ScoreRow(f"2507.{i:05d}", 1 + i % 7, 1 + i % 8) for i in range(500, 2500)}
    m = compute_metrics(gpt, local)
    m.update(gpt_not_in_papers=1200, n_warnings=3000)
    md = summary_markdown(m)
    assert md.startswith("## ranker compare: 1,500 papers both judged (GPT 2,000, local 2,000)\n"), md
    assert "\n| common | 1,500 | " in md, md
    assert "1,200 of GPT's 2,000 judgements are not in the listing" in md, md
    assert "\n3,000 input warnings " in md, md
    assert not re.search(r"\b\d{4,}\b", md), md
