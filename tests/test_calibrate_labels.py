"""`ranker calibrate` learns from the user's own labels in the store, beside the GPT history (issue #15): a
label overrides GPT's pick and weighs more, labelled papers outside the history count too, labels alone work
once there are enough. Vectors are stored beforehand (conftest.store_vectors): no model is loaded."""
from __future__ import annotations

import json
import shutil
from datetime import datetime, timezone

import numpy as np

from ranker.prefilter.calibrate import Calibration, history_data
from ranker.prefilter.history import load_day
from ranker.prompts import load_prompts
from ranker.sources import read_papers
from ranker.store import Store

from conftest import DAYS, ranker, store_vectors

HIST = ("2025-04-30", "2025-05-13", "2025-05-15")
OUTSIDE = "2025-06-23"            # a day whose papers are labelled but which is not in the history


def at(day: str) -> float:
    """A label's time on `day` (noon UTC): clicked on that day's page the same day, it counts from that day."""
    return datetime.fromisoformat(day).replace(hour=12, tzinfo=timezone.utc).timestamp()


def _setup(tmp_path):
    hist = tmp_path / "hist"
    for d in HIST:
        shutil.copytree(DAYS / d, hist / d)
    db = tmp_path / "r.sqlite3"
    outside = list(read_papers(DAYS / OUTSIDE / "listing.jsonl"))
    with Store(db) as s:
        store_vectors(s, [p for d in HIST for p in read_papers(DAYS / d / "listing.jsonl")] + outside)
        s.add_papers(outside)
    return hist, db, outside


def _ranks(cal_path, db, day) -> dict[str, float]:
    """Each paper of `day` (a HistoryDay) -> its place in the day under the calibration, as a top fraction."""
    cal = Calibration.load(cal_path)
    with Store(db) as s:
        data = history_data([day], load_prompts(), store=s)
    score = cal.score(data.X, data.zs, data.papers)
    return dict(zip([p.id for p in data.papers], (np.argsort(np.argsort(-score)) + 1) / len(score)))


def mentions(p, word: str) -> bool:
    return word in f"{p.title} {p.abstract}".lower()


def test_labels_change_what_calibrate_learns(tmp_path):
    hist, db, outside = _setup(tmp_path)
    plain = tmp_path / "plain.json"
    r = ranker("calibrate", "--history", hist, "--out", plain, "--no-eval", "--db", db)
    assert r.returncode == 0, r.stderr
    assert "labels:" not in r.stderr and json.loads(plain.read_text())["trained_on"]["labels"] == 0

    # a user whose taste differs from GPT's: robotics papers up (GPT picked 1 of 35 of them), GPT's picks
    # about theory down; a few robotics papers of a day outside the history up too
    days = [load_day(DAYS / d) for d in HIST]
    up = [p.id for d in days for p in d.papers if mentions(p, "robot")]
    down = [p.id for d in days for p in d.papers if p.id in d.picks and mentions(p, "theor") and p.id not in up]
    day = load_day(DAYS / OUTSIDE)
    robots = [p.id for p in day.papers if mentions(p, "robot")]
    with Store(db) as s:
        for pid in down:
            s.set_label(pid, -1, "2025-05-15", created_at=at("2025-05-15"))
        for pid in up + robots[:5]:
            s.set_label(pid, 1, OUTSIDE, created_at=at(OUTSIDE))
        s.set_label("2599.99999", 1, OUTSIDE, created_at=at(OUTSIDE))    # a paper the store does not hold
    assert (len(up), len(down)) == (35, 22)
    labelled = tmp_path / "labelled.json"
    r = ranker("calibrate", "--history", hist, "--out", labelled, "--no-eval", "--db", db)
    assert r.returncode == 0, r.stderr
    # the ups and downs are those used: the label on the paper the store does not hold is only "left out" (it was
    # counted among the ups too: "62 of yours used (41 up, 22 down")
    assert ("labels: 62 of yours used (40 up, 22 down; 57 on history papers, overriding GPT's pick; 5 on other "
            "papers); 1 left out: papers not in the database") in r.stderr, r.stderr
    assert "; 62 labels;" in r.stderr.splitlines()[-1]
    d = json.loads(labelled.read_text())
    assert d["trained_on"]["labels"] == 62 and d["trained_on"]["picks"] == 78 - 22 + 35 - 1 + 5
    assert d["trained_on"]["days"] == [*HIST, f"{OUTSIDE}+labels"]

    # on the day outside the history, the papers of the user's taste the labels did not name moved: the other
    # robotics papers up (all of them), GPT's theory picks down
    a, b = _ranks(plain, db, day), _ranks(labelled, db, day)
    rest = robots[5:]
    theory = [p.id for p in day.papers if p.id in day.picks and mentions(p, "theor")]
    assert len(rest) == 13 and len(theory) == 12
    assert all(b[p] < a[p] for p in rest) and np.mean([b[p] for p in rest]) < np.mean([a[p] for p in rest]) - 0.3
    assert np.mean([b[p] > a[p] for p in theory]) >= 0.75
    assert np.mean([b[p] for p in theory]) > np.mean([a[p] for p in theory]) + 0.1

    # --no-labels: GPT's picks only, the same model as before any label
    again = tmp_path / "again.json"
    r = ranker("calibrate", "--history", hist, "--out", again, "--no-eval", "--no-labels", "--db", db)
    assert r.returncode == 0 and "labels:" not in r.stderr
    assert json.loads(again.read_text())["stack_coef"] == json.loads(plain.read_text())["stack_coef"]


def test_labels_alone_train_once_there_are_enough(tmp_path):
    _, db, outside = _setup(tmp_path)
    day = load_day(DAYS / OUTSIDE)
    liked = [p.id for p in outside if p.id in day.picks]
    disliked = [p.id for p in outside if p.id not in day.picks]
    out = tmp_path / "c.json"
    with Store(db) as s:
        for pid in liked[:10]:
            s.set_label(pid, 1, OUTSIDE, created_at=at(OUTSIDE))
        for pid in disliked[:4]:
            s.set_label(pid, -1, OUTSIDE, created_at=at(OUTSIDE))
    r = ranker("calibrate", "--out", out, "--db", db)
    assert r.returncode == 1 and not out.exists()
    assert r.stderr.strip().splitlines()[-1] == (
        "error: --history: no GPT history given, and too few labels to learn from alone: 6 more needed "
        "(10 thumbs up and 10 thumbs down)")
    with Store(db) as s:
        for pid in disliked[4:30]:
            s.set_label(pid, -1, OUTSIDE, created_at=at(OUTSIDE))
    r = ranker("calibrate", "--out", out, "--db", db)
    assert r.returncode == 0, r.stderr
    assert "labels: 40 of yours used (10 up, 30 down; 0 on history papers" in r.stderr
    # the figures are skipped as a labels-only user can mend it: not by "3 days with GPT picks" (labels count)
    assert ("note: walk-forward figures need at least labels given on 3 days, each with a thumb up, ranking each "
            "by a fit on the days before it; skipped") in r.stderr, r.stderr
    d = json.loads(out.read_text())
    assert d["trained_on"]["labels"] == 40 and d["trained_on"]["picks"] == 10
    r = ranker("calibrate", "--out", out, "--db", db, "--no-labels")
    assert r.returncode == 1 and "error: --history: nothing to learn from" in r.stderr
    # and that is what it takes: thumbs given on two more days (one up each), and the figures are there
    with Store(db) as s:
        for k, given in enumerate(("2025-06-24", "2025-06-25")):
            s.set_label(liked[10 + k], 1, given, created_at=at(given))
            s.set_label(disliked[30 + k], -1, given, created_at=at(given))
    r = ranker("calibrate", "--out", out, "--db", db)
    assert r.returncode == 0 and "walk-forward figures need" not in r.stderr, r.stderr
    assert "AUC" in r.stdout and json.loads(out.read_text())["walk_forward"], r.stdout


def test_labels_alone_from_a_database_that_is_not_there_is_one_line_naming_it(tmp_path):
    """Calibrating from labels alone (no --history) reads only the database: a mistyped --db made a new empty
    one there (and its folder), then blamed --history for "too few labels: 20 more needed". Now the line names
    the option and the path, and nothing is made. With --history a new database is still made (the history's
    papers and vectors join it)."""
    typo = tmp_path / "typo" / "rnaker.sqlite3"
    out = tmp_path / "c.json"
    r = ranker("calibrate", "--out", out, "--db", typo)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"error: --db {typo}: no database there (a typo?); `ranker run` makes one"], r.stderr
    assert not typo.parent.exists() and not out.exists()
    r = ranker("calibrate", "--out", out, "--db", typo, "--no-labels")
    assert r.returncode == 1 and "error: --history: nothing to learn from" in r.stderr, r.stderr
    assert not typo.parent.exists()


def test_walk_forward_leaves_out_labels_without_a_day_given_after_the_test_day(tmp_path):
    """Labels imported from a file without days, on papers outside the history, joined the fit as a day named
    after the papers' own date: labels given in August on papers of April reached the printed walk-forward fit of
    a July day, which README promises to rank "with only the labels given before it" (for a label without its
    digest day, before the day of its time). Given after every history day, they now leave the figures as
    --no-labels prints them."""
    hist = tmp_path / "hist"
    for d in ("2025-05-13", "2025-05-15", "2025-06-23", "2025-07-02"):
        shutil.copytree(DAYS / d, hist / d)
    db = tmp_path / "r.sqlite3"
    april = load_day(DAYS / "2025-04-30")
    with Store(db) as s:
        store_vectors(s, [p for d in [*hist.iterdir(), DAYS / "2025-04-30"]
                          for p in read_papers(d / "listing.jsonl")])
        s.add_papers(april.papers)
    august = "2025-08-01T09:00:00Z"
    (tmp_path / "labels.jsonl").write_text("".join(     # GPT's verdicts on April's papers, the wrong way round
        json.dumps({"id": p.id, "label": -1 if p.id in april.picks else 1, "time": august}) + "\n"
        for p in april.papers))
    r = ranker("labels", "import", tmp_path / "labels.jsonl", "--db", db)
    assert r.returncode == 0, r.stderr

    def figures(*flags):
        r = ranker("calibrate", "--history", hist, "--out", tmp_path / "c.json", "--db", db, *flags)
        assert r.returncode == 0, r.stderr
        return [line for line in r.stdout.splitlines() if line.startswith(("walk-forward", "zero-shot", "calibrated"))]
    plain = figures("--no-labels")
    assert len(plain) == 3 and "(2025-07-02)" in plain[0]
    assert figures() == plain
    assert json.loads((tmp_path / "c.json").read_text())["trained_on"]["days"][-1] == "2025-08-01+labels"


def test_labels_on_papers_not_in_the_database_do_not_make_up_for_a_short_history(tmp_path):
    """A history too short to learn from is accepted beside enough labels of yours; labels on papers the database
    does not hold (imported on a new machine before its papers) counted among them, though the fit leaves them
    out: a calibration was fit on one day of 17 picks and no label at all. They no longer count."""
    hist = tmp_path / "hist"
    shutil.copytree(DAYS / "2025-05-15", hist / "2025-05-15")
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        store_vectors(s, list(read_papers(hist / "2025-05-15" / "listing.jsonl")))
        for i in range(20):
            s.set_label(f"2599.{i:05d}", 1 if i < 10 else -1, "2025-08-01", created_at=at("2025-08-01"))
    out = tmp_path / "c.json"
    r = ranker("calibrate", "--history", hist, "--out", out, "--db", db, "--no-eval")
    assert r.returncode == 1 and not out.exists(), r.stderr
    assert "labels: 0 of yours used (0 up, 0 down; 0 on history papers, overriding GPT's pick; 0 on other " \
           "papers); 20 left out: papers not in the database" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: --history {hist}: too short to learn from: 1 day with 17 GPT picks; a calibration needs at "
        "least 3 days and 30 picks (2 more days and 13 more GPT picks needed, or 20 more labels of yours); no "
        "calibration written")


def test_walk_forward_counts_a_label_from_when_it_was_clicked_not_from_the_day_of_its_page(tmp_path):
    """A label's day is the digest day of the page it was clicked on: a thumb given in December on a search
    result, a paper's page or an old day's page carries that old day (so does an imported line with an old "day"
    and a later "time"). The printed walk-forward fits took the labels by that day, so a July day was ranked with
    labels given in December: figures the user never lived, and better than theirs. A label now counts from the
    later of its day and the day of its time: clicked in December, it leaves the figures as --no-labels prints
    them, while the calibration written still learns from it; clicked on its day's page that day, it counts from
    that day."""
    hist = tmp_path / "hist"
    for d in ("2025-05-13", "2025-05-15", "2025-06-23", "2025-07-02"):
        shutil.copytree(DAYS / d, hist / d)
    april, may = load_day(DAYS / "2025-04-30"), load_day(hist / "2025-05-13")

    def figures(db, *flags):
        out = db.with_suffix(".json")
        r = ranker("calibrate", "--history", hist, "--out", out, "--db", db, *flags)
        assert r.returncode == 0, r.stderr
        lines = [line for line in r.stdout.splitlines() if line.startswith(("walk-forward", "zero-shot", "calibrated"))]
        return lines, json.loads(out.read_text())["trained_on"]

    def labelled(name, when):
        """A store whose user gave GPT's verdicts the wrong way round on the papers of 2025-05-13 (a history day,
        in `ranker serve`) and of 2025-04-30 (outside the history, imported), each on its day's page, at `when`."""
        db = tmp_path / f"{name}.sqlite3"
        with Store(db) as s:
            store_vectors(s, [p for d in [*hist.iterdir(), DAYS / "2025-04-30"]
                              for p in read_papers(d / "listing.jsonl")])
            s.add_papers(april.papers)
            for p in may.papers:
                s.set_label(p.id, -1 if p.id in may.picks else 1, may.date, created_at=at(when or may.date))
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(
            {"id": p.id, "label": -1 if p.id in april.picks else 1, "day": april.date,
             "time": f"{when or april.date}T09:00:00Z"}) + "\n" for p in april.papers))
        r = ranker("labels", "import", tmp_path / f"{name}.jsonl", "--db", db)
        assert r.returncode == 0, r.stderr
        return db
    n = len(may.papers) + len(april.papers)

    late = labelled("late", "2025-12-01")             # clicked in December, on the pages of April and May
    plain, _ = figures(late, "--no-labels")
    assert len(plain) == 3 and "(2025-07-02)" in plain[0]
    got, trained = figures(late)
    assert got == plain
    assert trained["labels"] == n and trained["days"][-1] == "2025-12-01+labels"

    on_time, trained = figures(labelled("on-time", None))     # clicked on each day's page that day
    assert on_time != plain
    assert trained["labels"] == n and "2025-04-30+labels" in trained["days"]


def test_calibrate_out_dash_writes_the_calibration_alone_to_stdout(tmp_path):
    """`ranker calibrate --history h --out - > cal.json`: '-' is stdout, as for every other --out; it wrote a file
    named '-' in the working folder, stdout holding the walk-forward table instead."""
    hist, db, _ = _setup(tmp_path)
    r = ranker("calibrate", "--history", hist, "--out", "-", "--db", db, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert not (tmp_path / "-").exists()
    (tmp_path / "cal.json").write_text(r.stdout)
    cal = Calibration.load(tmp_path / "cal.json")           # the JSON alone, a calibration file as written
    assert cal.embedder == "minilm" and cal.dim == 384
