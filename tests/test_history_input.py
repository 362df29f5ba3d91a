"""The one history reader (prefilter.history.read_history) on bad input: each bad day is skipped with one line
naming it and its problem, counted, and the other days are used; a history too short to learn from says how
much more is needed and writes no calibration. Small temp copies of the shared days in tests/data."""
from __future__ import annotations

import json
import shutil

import pytest

from ranker.errors import InputError
from ranker.prefilter.calibrate import MIN_DAYS, MIN_PICKS, check_enough
from ranker.prefilter.history import read_history
from ranker.sources import read_papers
from ranker.store import Store

from conftest import DAYS, python, ranker, store_vectors

GOOD = ("2025-04-30", "2025-05-13", "2025-05-15")


def copy_day(src: str, dest):
    shutil.copytree(DAYS / src, dest)
    return dest


def picks_of(day: str) -> list[str]:
    return [json.loads(ln)["id"] for ln in (DAYS / day / "gpt_scores.jsonl").read_text().splitlines()]


@pytest.fixture
def bad_history(tmp_path):
    """Three good days and one of each kind of bad day (named by the problem they hold)."""
    h = tmp_path / "hist"
    for d in GOOD:
        copy_day(d, h / d)
    # no gpt_scores.jsonl (nor any other digest)
    (h / "2025-06-01").mkdir(parents=True)
    rows = [json.loads(ln) for ln in (DAYS / "2025-06-23" / "listing.jsonl").read_text().splitlines()]
    (h / "2025-06-01" / "listing.jsonl").write_text("".join(
        json.dumps({k: v for k, v in r.items() if k != "gpt_selected"}) + "\n" for r in rows))
    # three of GPT's picks missing from the listing
    d = copy_day("2025-06-23", h / "2025-06-02")
    gone = set(picks_of("2025-06-23")[:3])
    lines = (d / "listing.jsonl").read_text().splitlines()
    (d / "listing.jsonl").write_text("".join(ln + "\n" for ln in lines if json.loads(ln)["id"] not in gone))
    # a truncated last line in gpt_scores.jsonl (a download cut short)
    d = copy_day("2025-07-02", h / "2025-06-03")
    text = (d / "gpt_scores.jsonl").read_text()
    (d / "gpt_scores.jsonl").write_text(text[:len(text) - len(text.splitlines()[-1]) // 2 - 1])
    # a truncated line in listing.jsonl
    d = copy_day("2025-07-02", h / "2025-06-04")
    lines = (d / "listing.jsonl").read_text().splitlines()
    (d / "listing.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:80])
    # a digest in an unknown format (no gpt_scores.jsonl; a .json that is not a digest)
    d = h / "2025-06-05"
    d.mkdir()
    shutil.copy(DAYS / "2025-07-02" / "listing.jsonl", d / "listing.jsonl")
    (d / "output.json").write_text(json.dumps({"papers": ["2507.00001", "2507.00002"], "version": 3}))
    # a folder with no listing at all
    (h / "2025-06-06").mkdir()
    (h / "2025-06-06" / "gpt_scores.jsonl").write_text((DAYS / "2025-07-02" / "gpt_scores.jsonl").read_text())
    return h


def test_each_bad_day_is_skipped_with_one_line_and_counted(bad_history):
    lines = []
    hist = read_history(bad_history, warn=lines.append)
    assert [d.date for d in hist.days] == list(GOOD)
    problems = {s["day"]: s["problem"] for s in hist.skipped}
    assert list(problems) == ["2025-06-01", "2025-06-02", "2025-06-03", "2025-06-04", "2025-06-05", "2025-06-06"]
    assert "no GPT picks" in problems["2025-06-01"] and "gpt_scores.jsonl" in problems["2025-06-01"]
    assert problems["2025-06-02"].startswith("3 of 47 GPT picks (from gpt_scores.jsonl) are not in listing.jsonl")
    assert "gpt_scores.jsonl:" in problems["2025-06-03"] and "not valid JSON" in problems["2025-06-03"]
    assert "listing.jsonl:" in problems["2025-06-04"]
    assert "not a JSON digest" in problems["2025-06-05"] and "output.json" in problems["2025-06-05"]
    assert "missing listing.jsonl" in problems["2025-06-06"]
    # one line a skipped day, naming the day's folder and the problem; nothing else said
    assert len(lines) == 6 and all("\n" not in ln for ln in lines)
    for (day, problem), line in zip(problems.items(), lines):
        assert line == f"{bad_history / day}: day skipped: {problem}"


def test_calibrate_uses_the_good_days_and_counts_the_skipped(bad_history, tmp_path):
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:                      # vectors stored beforehand: no model is loaded
        store_vectors(s, [p for d in GOOD for p in read_papers(DAYS / d / "listing.jsonl")])
    r = ranker("calibrate", "--history", bad_history, "--out", tmp_path / "c.json", "--no-eval", "--db", db)
    assert r.returncode == 0, r.stderr
    assert "history: 3 days, 821 papers, 78 GPT picks; 6 days skipped" in r.stderr, r.stderr
    assert sum("day skipped:" in ln for ln in r.stderr.splitlines()) == 6
    assert json.loads((tmp_path / "c.json").read_text())["trained_on"]["days"] == list(GOOD)


def test_no_usable_day_is_one_error(tmp_path):
    (tmp_path / "2025-01-01").mkdir()
    (tmp_path / "2025-01-01" / "listing.jsonl").write_text(json.dumps({"id": "2501.00001", "title": "t",
                                                                        "abstract": "a"}) + "\n")
    seen = []
    with pytest.raises(InputError, match=r"no usable day in the history \(1 skipped"):
        read_history(tmp_path, warn=seen.append)
    assert len(seen) == 1 and "2025-01-01: day skipped: no GPT picks" in seen[0]


def test_a_history_too_short_says_how_much_more_and_writes_nothing(tmp_path):
    h = tmp_path / "hist"
    for d in ("2025-05-13", "2025-05-15"):
        copy_day(d, h / d)
    days = read_history(h).days
    with pytest.raises(InputError) as e:
        check_enough(days, where=str(h))
    assert e.value.message == (f"too short to learn from: 2 days with 53 GPT picks; a calibration needs at least "
                               f"{MIN_DAYS} days and {MIN_PICKS} picks (1 more day needed); no calibration written")
    with pytest.raises(InputError, match=r"\(2 more days and 13 more GPT picks needed, or 5 more labels of yours\)"):
        check_enough([days[1]], labels_short=5)
    check_enough([days[1]], labels_short=0)               # enough labels: a short GPT history is no obstacle
    check_enough(read_history(DAYS).days)
    out = tmp_path / "c.json"
    r = ranker("calibrate", "--history", h, "--out", out, "--db", tmp_path / "r.sqlite3")
    assert r.returncode == 1 and not out.exists()
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: --history {h}: too short to learn from: 2 days with 53 GPT picks; a calibration needs at least "
        "3 days and 30 picks (1 more day needed); no calibration written")


def test_harmless_listing_notes_keep_the_day_and_odd_folders_and_misplaced_files_are_named(tmp_path):
    h = tmp_path / "hist"
    # an empty abstract and a duplicated line: every paper is still there, so the day is used
    d = copy_day("2025-04-30", h / "2025-04-30")
    lines = (d / "listing.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["abstract"] = ""
    (d / "listing.jsonl").write_text("\n".join([json.dumps(first), *lines[1:], lines[5]]) + "\n")
    copy_day("2025-05-13", h / "2025-05-13")
    # a folder whose name is not a YYYY-MM-DD day: it would sort after 2025-05-13 and break walk-forward
    copy_day("2025-05-15", h / "2025-5-9")
    # a paper listing saved as the picks: named, without advice meant for another command
    d = copy_day("2025-05-15", h / "2025-05-15")
    shutil.copy(d / "listing.jsonl", d / "gpt_scores.jsonl")
    # a stray .json beside the digest's .json: the digest is found
    d = copy_day("2025-06-23", h / "2025-06-23")
    picks = picks_of("2025-06-23")
    (d / "gpt_scores.jsonl").unlink()
    (d / "a-settings.json").write_text(json.dumps({"theme": "dark"}))
    (d / "output.json").write_text(json.dumps({p: {"ARXIVID": p, "RELEVANCE": 9, "NOVELTY": 8} for p in picks}))
    said = []
    hist = read_history(h, warn=said.append)
    assert [x.date for x in hist.days] == ["2025-04-30", "2025-05-13", "2025-06-23"]
    assert hist.days[2].source == "output.json" and hist.days[2].picks == set(picks)
    problems = {s["day"]: s["problem"] for s in hist.skipped}
    assert problems["2025-5-9"] == "the folder's name is not a day as YYYY-MM-DD"
    assert problems["2025-05-15"].startswith("gpt_scores.jsonl: this is a paper listing, not judgements")
    assert "{key:" not in problems["2025-05-15"] and "pass it as" not in problems["2025-05-15"]
    notes = [ln for ln in said if "day skipped" not in ln]
    assert len(notes) == 2 and any("without an abstract" in n for n in notes) \
        and any("1 duplicate id dropped" in n for n in notes), said
    assert all(str(h / "2025-04-30" / "listing.jsonl") in n for n in notes)


def test_bad_flags_are_refused_before_the_history_is_read(bad_history, tmp_path):
    """One line and nothing else: not the six skipped days' lines first, nor minutes of fitting before an
    --out that cannot be written."""
    r = ranker("eval", "--history", bad_history, "--out", tmp_path / "ev", "--days", "0", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.splitlines() == ["error: --days: needs at least 1 day"], r.stderr
    for out, why in ((tmp_path, "is a directory; give a file name"),
                     (tmp_path / "f.txt" / "c.json", f"cannot write: {tmp_path / 'f.txt'} is not a folder")):
        (tmp_path / "f.txt").write_text("")
        r = ranker("calibrate", "--history", bad_history, "--out", out, cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.splitlines() == [f"error: --out {out}: {why}"], r.stderr


def test_a_markdown_digest_beside_notes_is_found(tmp_path):
    """Notes or a README beside the day's Markdown digest are passed over (the reader refuses Markdown that is
    no digest), the digest gives the picks."""
    from conftest import SEED_DIGEST
    d = copy_day("2025-06-23", tmp_path / "h" / "2025-06-23")
    (d / "gpt_scores.jsonl").unlink()
    (d / "README.md").write_text("# My digests\n\nSaved by hand.\n")
    shutil.copy(SEED_DIGEST, d / "digest.md")
    said = []
    hist = read_history(tmp_path / "h", warn=said.append)
    assert said == [] and hist.days[0].source == "digest.md" and hist.days[0].picks == set(picks_of("2025-06-23"))


def test_a_fifo_beside_a_days_digest_is_passed_over_not_read_for_good(tmp_path):
    """The day's digest is looked for among its folder's *.json, *.md and *.txt: a FIFO among them (a.json,
    a.md) was read, and the read waited for a writer forever (calibrate hung). Files only; the digest beside it
    gives the picks. In a process of its own, with a timeout: the test cannot hang."""
    import os
    from conftest import SEED_DIGEST
    d = copy_day("2025-06-23", tmp_path / "h" / "2025-06-23")
    (d / "gpt_scores.jsonl").unlink()
    os.mkfifo(d / "a.json")
    os.mkfifo(d / "a.md")
    shutil.copy(SEED_DIGEST, d / "digest.md")
    code = ("import sys; from ranker.prefilter.history import read_history; said = []; "
            "day = read_history(sys.argv[1], warn=said.append).days[0]; print(said, day.source, sorted(day.picks))")
    done = python(code, tmp_path / "h")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"[] digest.md {sorted(picks_of('2025-06-23'))}\n"


def test_a_fifo_named_as_a_days_gpt_scores_or_listing_is_not_read_for_good(tmp_path):
    """gpt_scores.jsonl and listing.jsonl were taken when they existed: a FIFO with either name was read, and
    the read waited for a writer forever (timeout: exit 124). A FIFO gpt_scores.jsonl is no scores file: the
    digest beside it gives the picks; a FIFO listing.jsonl skips its day as not a file, the other days are read.
    In a process of its own, with a timeout: the test cannot hang."""
    import os
    from conftest import SEED_DIGEST
    d = copy_day("2025-06-23", tmp_path / "h" / "2025-06-23")
    (d / "gpt_scores.jsonl").unlink()
    os.mkfifo(d / "gpt_scores.jsonl")
    shutil.copy(SEED_DIGEST, d / "digest.md")
    other = copy_day("2025-07-02", tmp_path / "h" / "2025-07-02")
    (other / "listing.jsonl").unlink()
    os.mkfifo(other / "listing.jsonl")
    code = ("import sys; from ranker.prefilter.history import read_history; said = []; "
            "h = read_history(sys.argv[1], warn=said.append); "
            "print(said, [(d.source, sorted(d.picks)) for d in h.days], h.skipped)")
    done = python(code, tmp_path / "h")
    assert done.returncode == 0, done.stderr
    why = "not a file: listing.jsonl (every paper announced that day)"
    assert done.stdout == (f"['{other}: day skipped: {why}'] [('digest.md', {sorted(picks_of('2025-06-23'))})] "
                           f"[{{'day': '2025-07-02', 'problem': '{why}'}}]\n")


def test_gpt_picks_are_the_judgements_compare_counts_as_picks(tmp_path):
    """A digest lists more than picks: author matches (scored or not) and, in a user's own history, rows under
    the cut-offs. Eval and calibrate learn from exactly the papers compare counts as GPT's picks."""
    from ranker.compare import run_compare
    from ranker.digest import Selected, TokenCost, render_json, render_markdown
    from ranker.prompts import load_prompts
    from ranker.records import Paper, Score

    rows = [json.loads(ln) for ln in (DAYS / "2025-06-23" / "gpt_scores.jsonl").read_text().splitlines()]
    listing = [json.loads(ln) for ln in (DAYS / "2025-06-23" / "listing.jsonl").read_text().splitlines()]
    others = [d for d in listing if d["id"] not in {r["id"] for r in rows}][:3]
    lowered = {rows[0]["id"]: (7, 9), rows[1]["id"]: (9, 6)}            # under RELEVANCE 8 / NOVELTY 7
    sel = [Selected(Paper.from_dict(others[0]), None, author_match=["A. Pinned"]),
           Selected(Paper.from_dict(others[1]), Score(others[1]["id"], 3, 2, "low"), author_match=["B. Pinned"]),
           Selected(Paper.from_dict(others[2]), Score(others[2]["id"], 9, 9, "high"), author_match=["C. Pinned"])]
    sel += [Selected(Paper.from_dict(r), Score(r["id"], *lowered.get(r["id"], (r["RELEVANCE"], r["NOVELTY"])),
                                               r["COMMENT"])) for r in rows]
    want = {r["id"] for r in rows} - set(lowered)
    h = tmp_path / "h"
    for name, text in (("digest.md", render_markdown("2025-06-23", sel, usage=TokenCost("gpt-4o"),
                                                      total_papers=len(listing), scanned_papers=len(sel),
                                                      prompts=load_prompts(), author_matches=3)),
                       ("output.json", json.dumps(render_json(sel))),
                       ("gpt_scores.jsonl", "".join(json.dumps({"id": s.paper.id, "RELEVANCE": s.score.relevance,
                                                                "NOVELTY": s.score.novelty,
                                                                "COMMENT": s.comment}) + "\n"
                                                    for s in sel if s.score))):
        d = h / name.replace(".", "-") / "2025-06-23"
        d.mkdir(parents=True)
        shutil.copy(DAYS / "2025-06-23" / "listing.jsonl", d / "listing.jsonl")
        (d / name).write_text(text)
        said = []
        day = read_history(d.parent, warn=said.append).days[0]
        assert said == [] and day.source == name and day.picks == want, name
        m = run_compare(d / name, d / name, tmp_path / "cmp", papers=d / "listing.jsonl")
        assert m["selection"]["listing"]["gpt_picks"] == len(want) == 45, name


def test_a_paper_listed_without_scores_is_no_pick_and_keeps_the_day(tmp_path):
    """A digest block (or JSONL line) with neither score is no judgement: said once as a notice, and the day is
    used with the other picks; only damage (a line that is not JSON, an unknown format) skips a day."""
    from conftest import SEED_DIGEST
    text = SEED_DIGEST.read_text()
    cut = text.index("## 1. [")
    extra = ("## 1. [cAST: Enhancing Code Retrieval-Augmented Generation](https://arxiv.org/abs/2506.15655)\n\n"
             "**ArXiv ID:** 2506.15655\n\n**Authors:** X\n\n**Abstract:** y\n\n**Comment:** listed, not scored\n\n"
             "---\n\n")
    h = tmp_path / "h"
    d = copy_day("2025-06-23", h / "2025-06-23")
    (d / "gpt_scores.jsonl").unlink()
    (d / "digest.md").write_text(text[:cut] + extra + text[cut:])
    line = text[:cut].count("\n") + 1
    d2 = copy_day("2025-07-02", h / "2025-07-02")
    with (d2 / "gpt_scores.jsonl").open("a") as f:
        f.write(json.dumps({"id": "2507.00001", "COMMENT": "no scores"}) + "\n")
    n2 = len(picks_of("2025-07-02")) + 1
    said = []
    hist = read_history(h, warn=said.append)
    assert hist.skipped == [] and [x.date for x in hist.days] == ["2025-06-23", "2025-07-02"]
    assert hist.days[0].picks == set(picks_of("2025-06-23")) and hist.days[1].picks == set(picks_of("2025-07-02"))
    assert said == [f"{d / 'digest.md'}:{line}: skipped paper block 2506.15655: Relevance and Novelty missing or "
                    "not a number",
                    f"{d2 / 'gpt_scores.jsonl'}:{n2}: skipped 2507.00001: RELEVANCE and NOVELTY missing or not a "
                    "number"], said


def test_a_copied_or_linked_day_and_a_day_entry_that_is_no_folder_are_skipped_and_named(tmp_path):
    """A day folder that holds another day's papers (a copy, a symlink) would count that day twice and, walk-
    forward, be ranked by a fit that learned its very papers and picks; an entry named as a day that is no folder
    (a dangling link) would vanish unsaid. Each is skipped with one line; papers a later day lists again (real
    listings hold a few) are no copy."""
    h = tmp_path / "hist"
    for d in GOOD:
        copy_day(d, h / d)
    (h / "2025-05-16").symlink_to(h / "2025-05-15")               # the same day under a later date
    copy_day("2025-04-30", h / "2025-06-30")                        # a copy under another date
    (h / "2025-07-01").symlink_to(tmp_path / "gone")               # a link to a folder that is not there
    # a later day listing two papers of an earlier one again: used
    d = copy_day("2025-07-02", h / "2025-07-02")
    again = (DAYS / "2025-05-13" / "listing.jsonl").read_text().splitlines()[:2]
    (d / "listing.jsonl").write_text((d / "listing.jsonl").read_text() + "".join(x + "\n" for x in again))
    said = []
    hist = read_history(h, warn=said.append)
    assert [x.date for x in hist.days] == [*GOOD, "2025-07-02"]
    problems = {s["day"]: s["problem"] for s in hist.skipped}
    assert set(problems) == {"2025-05-16", "2025-06-30", "2025-07-01"}
    assert "2025-05-15" in problems["2025-05-16"] and "copy" in problems["2025-05-16"]
    assert "2025-04-30" in problems["2025-06-30"]
    assert "not a folder" in problems["2025-07-01"]
    assert sorted(ln.split(": day skipped")[0] for ln in said if "day skipped" in ln) == \
        [str(h / d) for d in sorted(problems)]


def test_a_listing_cut_short_or_empty_is_named_not_the_picks_it_lost(tmp_path):
    """A listing whose line holding a pick is cut short (a download that stopped), or that is empty, leaves GPT's
    picks "missing" from it: the day's one line names the cause to mend (the bad line, the empty file), not the
    picks, which the user would look for in vain."""
    h = tmp_path / "hist"
    copy_day(GOOD[0], h / GOOD[0])
    # the last line of the listing is a pick, cut short
    d = copy_day("2025-07-02", h / "2025-07-02")
    lines = (d / "listing.jsonl").read_text().splitlines()
    pick = next(i for i, ln in enumerate(lines) if json.loads(ln)["id"] in set(picks_of("2025-07-02")))
    lines.append(lines.pop(pick))
    (d / "listing.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:80])
    # an empty listing beside the day's picks
    d = copy_day("2025-05-13", h / "2025-05-13")
    (d / "listing.jsonl").write_text("")
    said = []
    problems = {s["day"]: s["problem"] for s in read_history(h, warn=said.append).skipped}
    assert problems["2025-07-02"].startswith("1 record skipped (unreadable or without id/title); first at "
                                             f"{h / '2025-07-02' / 'listing.jsonl'}:{len(lines)}"), problems
    assert problems["2025-05-13"] == "listing.jsonl has no papers"
    assert len(said) == 2 and not any("not in listing.jsonl" in x for x in said)


def gpt_picked_nothing(d):
    """A day whose digest is there and kept no paper: an empty gpt_scores.jsonl, and the listing's flags to match."""
    (d / "gpt_scores.jsonl").write_text("")
    rows = [json.loads(ln) for ln in (d / "listing.jsonl").read_text().splitlines()]
    (d / "listing.jsonl").write_text("".join(json.dumps({**r, "gpt_selected": False}) + "\n" for r in rows))
    return d


def test_a_day_gpt_picked_nothing_is_a_day_of_negatives_not_a_skipped_one(tmp_path):
    """A day on which GPT's digest kept nothing (its gpt_scores.jsonl empty, its JSON digest with no paper) is a
    real day: used, with no picks, each of its papers a paper GPT did not pick, and nothing said. A day with no
    digest at all is still skipped and named; the checks of a history too short count days with picks."""
    from ranker.digest import render_json
    h = tmp_path / "hist"
    for d in GOOD[1:]:
        copy_day(d, h / d)
    gpt_picked_nothing(copy_day("2025-06-23", h / "2025-06-23"))
    d = gpt_picked_nothing(copy_day("2025-07-02", h / "2025-07-02"))
    (d / "gpt_scores.jsonl").unlink()
    (d / "output.json").write_text(json.dumps(render_json([])))          # the JSON digest of a day with no pick
    (h / "2025-07-03").mkdir()                                             # no digest at all: not a day to count
    (h / "2025-07-03" / "listing.jsonl").write_text("".join(
        json.dumps({k: v for k, v in json.loads(ln).items() if k != "gpt_selected"}) + "\n"
        for ln in (DAYS / "2025-07-02" / "listing.jsonl").read_text().splitlines()))
    said = []
    hist = read_history(h, warn=said.append)
    assert [x.date for x in hist.days] == ["2025-05-13", "2025-05-15", "2025-06-23", "2025-07-02"]
    assert [s["day"] for s in hist.skipped] == ["2025-07-03"]
    assert "no GPT picks for this day" in hist.skipped[0]["problem"] and len(said) == 1, said
    none = hist.days[2:]
    assert [x.source for x in none] == ["gpt_scores.jsonl", "output.json"]
    assert all(x.picks == set() and x.papers and not any(x.labels) for x in none)
    assert [len(x.papers) for x in none] == [len(list(read_papers(DAYS / x.date / "listing.jsonl"))) for x in none]

    # two days with 53 picks, and two with none: one more day with picks is needed, said so
    with pytest.raises(InputError) as e:
        check_enough(hist.days, where=str(h))
    assert e.value.message == ("too short to learn from: 2 days with 53 GPT picks (and 2 with none); a calibration "
                               f"needs at least {MIN_DAYS} days and {MIN_PICKS} picks (1 more day needed); no "
                               "calibration written")
    check_enough(read_history(DAYS).days[:1] + hist.days)      # a third day with picks (25): enough


def test_calibrate_learns_from_a_day_gpt_picked_nothing_and_ranks_days_with_picks(tmp_path):
    """`ranker calibrate` on three days with picks and two GPT picked nothing on: the two are learnt from (their
    papers as negatives) and said in the history's line; the walk-forward figures rank the last of the days
    with picks (a day with none has no figure to give), with no NaN."""
    h = tmp_path / "hist"
    for d in GOOD:
        copy_day(d, h / d)
    for d in ("2025-06-23", "2025-07-02"):
        gpt_picked_nothing(copy_day(d, h / d))
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:                      # vectors stored beforehand: no model is loaded
        store_vectors(s, [p for d in (*GOOD, "2025-06-23", "2025-07-02")
                          for p in read_papers(DAYS / d / "listing.jsonl")])
    r = ranker("calibrate", "--history", h, "--out", tmp_path / "c.json", "--db", db)
    assert r.returncode == 0, r.stderr
    papers = {d: len(list(read_papers(DAYS / d / "listing.jsonl"))) for d in (*GOOD, "2025-06-23", "2025-07-02")}
    assert f"history: 5 days, {sum(papers.values()):,} papers, 78 GPT picks (2 with none)" in r.stderr, r.stderr
    assert "day skipped" not in r.stderr and "nan" not in r.stdout.lower()
    assert "walk-forward on 1 day (2025-05-15), each ranked by a fit on the days before it:" in r.stdout, r.stdout
    trained = json.loads((tmp_path / "c.json").read_text())
    assert trained["trained_on"]["days"] == sorted(papers) and trained["trained_on"]["picks"] == 78
    assert trained["trained_on"]["papers"] == sum(papers.values())
    assert list(trained["walk_forward"]["per_day"]) == ["2025-05-15"]


def test_a_file_given_as_the_history_is_no_folder_not_a_missing_one(tmp_path):
    """`--history day.jsonl` (a file that is there) was "history directory not found"."""
    f = tmp_path / "listing.jsonl"
    shutil.copy(DAYS / "2025-05-15" / "listing.jsonl", f)
    with pytest.raises(InputError) as e:
        read_history(f)
    assert str(e.value) == f"{f}: not a folder (a history is a folder of <date>/ day folders)"
    for cmd in ("eval", "calibrate"):
        r = ranker(cmd, "--history", f, "--out", tmp_path / "out", "--db", tmp_path / "db.sqlite3")
        assert r.returncode == 1 and r.stderr == f"error: --history {e.value}\n", r.stderr
        assert not (tmp_path / "out").exists() and not (tmp_path / "db.sqlite3").exists()


def at_relevance_7(day_dir, every: int = 2) -> int:
    """GPT's picks of a digest that kept RELEVANCE >= 7 (a user's own cut-off): every other row of the day's
    gpt_scores.jsonl lowered to RELEVANCE 7. Returns how many rows were lowered."""
    f = day_dir / "gpt_scores.jsonl"
    rows = [json.loads(ln) for ln in f.read_text().splitlines()]
    for r in rows[::every]:
        r["RELEVANCE"] = 7
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows[::every])


def test_calibrate_reads_gpt_picks_at_the_users_own_cut_offs(tmp_path):
    """A user whose GPT digest kept RELEVANCE >= 7 says so ([digest] min_relevance = 7, or --min-relevance 7):
    the digest's RELEVANCE 7 papers are GPT's picks to learn from. The history reader applied the fixed 8 / 7
    whatever the user's cut-offs, so a third of that user's picks were learnt as papers GPT did not pick."""
    h = tmp_path / "hist"
    lowered = sum(at_relevance_7(copy_day(d, h / d)) for d in GOOD)
    assert lowered > 10
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:                      # vectors stored beforehand: no model is loaded
        store_vectors(s, [p for d in GOOD for p in read_papers(DAYS / d / "listing.jsonl")])
    cfg = tmp_path / "ranker.toml"
    cfg.write_text("[digest]\nmin_relevance = 7\n")
    for args in (("--min-relevance", "7"), ("--config", cfg)):
        r = ranker("calibrate", "--history", h, "--out", tmp_path / "c.json", "--no-eval", "--db", db, *args)
        assert r.returncode == 0, r.stderr
        assert "history: 3 days, 821 papers, 78 GPT picks" in r.stderr, r.stderr
        assert json.loads((tmp_path / "c.json").read_text())["trained_on"]["picks"] == 78
    r = ranker("calibrate", "--history", h, "--out", tmp_path / "c.json", "--no-eval", "--db", db)
    assert r.returncode == 0, r.stderr
    assert f"history: 3 days, 821 papers, {78 - lowered} GPT picks" in r.stderr, r.stderr     # the default, 8


def md_history(root, prompts_by_day: dict):
    """Days whose GPT picks come only as the seed's Markdown digest, each rendered under the prompt set given
    for it (the digest shows its prompt, topics last, as the seed's does)."""
    from ranker.digest import Selected, TokenCost, render_markdown
    from ranker.records import Paper, Score
    for day, ps in prompts_by_day.items():
        d = copy_day(day, root / day)
        rows = [json.loads(ln) for ln in (d / "gpt_scores.jsonl").read_text().splitlines()]
        (d / "gpt_scores.jsonl").unlink()
        sel = [Selected(Paper.from_dict(r), Score(r["id"], r["RELEVANCE"], r["NOVELTY"], r["COMMENT"])) for r in rows]
        (d / f"{day}-output.md").write_text(render_markdown(day, sel, usage=TokenCost("gpt-4o"), total_papers=300,
                                                            scanned_papers=len(sel), prompts=ps))
    return root


def other_topics(tmp_path):
    """The bundled prompt set with one topic more: the topics a user had before editing them."""
    from ranker.prompts import DEFAULT_DIR, load_prompts
    d = tmp_path / "old-prompts"
    shutil.copytree(DEFAULT_DIR, d)
    t = d / "paper_topics.txt"
    t.write_text(t.read_text().replace("**Keywords:**", "7. Reinforcement Learning\n   - Relevant: Policy "
                                       "optimisation, exploration, offline RL.\n\n**Keywords:**"))
    return d, load_prompts(d)


def test_the_seed_digest_shows_the_topics_it_was_picked_under():
    from conftest import SEED_DIGEST
    from ranker.compare.readers import digest_topics
    from ranker.prompts import load_prompts
    assert digest_topics(SEED_DIGEST.read_text()) == " ".join(load_prompts().topics_text.split())
    assert digest_topics("# Personalized Daily ArXiv Papers 2025-06-23\n\nTotal relevant papers: 0\n") is None


def test_calibrate_says_which_days_gpt_picked_under_other_topics(tmp_path):
    """A user who edited their topics mid-history: the days before the edit were picked for the old topics, as
    their digests' prompt shows. Calibrate learnt those picks as the new topics' without a word; it says now
    which days were picked under other topics than the prompt set's (and, given the old set, the others)."""
    from ranker.prompts import load_prompts
    old_dir, old = other_topics(tmp_path)
    h = md_history(tmp_path / "hist", {GOOD[0]: old, GOOD[1]: load_prompts(), GOOD[2]: load_prompts()})
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:                      # vectors stored beforehand: no model is loaded
        store_vectors(s, [p for d in GOOD for p in read_papers(DAYS / d / "listing.jsonl")])
        store_vectors(s, [], prompts=old)
    for args, days in (((), f"1 day of the history ({GOOD[0]})"),
                       (("--prompts", old_dir), f"2 days of the history ({GOOD[1]}..{GOOD[2]})")):
        r = ranker("calibrate", "--history", h, "--out", tmp_path / "c.json", "--no-eval", "--db", db, *args)
        assert r.returncode == 0, r.stderr
        assert "history: 3 days, 821 papers, 78 GPT picks" in r.stderr, r.stderr
        said = [ln for ln in r.stderr.splitlines() if "under other topics" in ln]
        assert len(said) == 1 and said[0].startswith(f"warning: GPT picked {days} under other topics than "), r.stderr
        assert said[0].endswith("(pass your topics with --prompts, or leave those days out)"), r.stderr
    same = md_history(tmp_path / "same", {d: load_prompts() for d in GOOD})    # the prompt's topics throughout
    r = ranker("calibrate", "--history", same, "--out", tmp_path / "c.json", "--no-eval", "--db", db)
    assert r.returncode == 0 and "under other topics" not in r.stderr, r.stderr


def test_days_kept_in_month_folders_are_read_in_day_order(tmp_path):
    """A history kept as 2025-05/2025-05-13/ (or 2025/05/...): every day was "skipped: the folder's name is not a
    day" and the history had no usable day. The days in such folders are read, in day order across them; a day
    found twice (in two month folders) is read once, the other said; a folder of neither is still said."""
    h = tmp_path / "hist"
    copy_day(GOOD[0], h / "2025-04" / GOOD[0])
    copy_day(GOOD[1], h / "2025" / "05" / GOOD[1])
    copy_day(GOOD[2], h / "2025-05" / GOOD[2])
    copy_day(GOOD[2], h / "2025-06" / GOOD[2])                      # the same day again, misfiled
    copy_day("2025-06-23", h / "2025-06" / "2025-06-23")
    (h / "2025-06" / "notes").mkdir()
    (h / "2025-06" / "notes" / "todo.txt").write_text("switch?\n")
    (h / "2025-05" / "up").symlink_to(h)                             # a link back up: not read twice
    said = []
    hist = read_history(h, warn=said.append)
    assert [(d.date, d.folder) for d in hist.days] == [
        (GOOD[0], h / "2025-04" / GOOD[0]), (GOOD[1], h / "2025" / "05" / GOOD[1]),
        (GOOD[2], h / "2025-05" / GOOD[2]), ("2025-06-23", h / "2025-06" / "2025-06-23")]
    assert [len(d.picks) for d in hist.days] == [len(picks_of(d)) for d in (*GOOD, "2025-06-23")]
    assert hist.skipped == [{"day": GOOD[2], "problem": f"this day was read from {h / '2025-05' / GOOD[2]} already"},
                            {"day": "notes", "problem": "the folder's name is not a day as YYYY-MM-DD"}]
    assert said == [f"{h / '2025-06' / GOOD[2]}: day skipped: this day was read from {h / '2025-05' / GOOD[2]} "
                    "already", f"{h / '2025-06' / 'notes'}: day skipped: the folder's name is not a day as YYYY-MM-DD"]
