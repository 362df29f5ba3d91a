"""kill -9 of real commands at the points a crash can fall between (tests/crashkit.py: before each COMMIT, each
rename or removal of a file, each file opened for writing), on a home that already holds an earlier day, its
label and an earlier run of the day: after each kill the database passes PRAGMA integrity_check, nothing the home
held before is lost, no file under its real name is half-written or of another run, and a rerun finishes the job
with the same bytes as a run never killed."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import crashkit
from conftest import DAYS, REPO

pytestmark = pytest.mark.slow

EARLIER = DAYS / "2025-05-13" / "listing.jsonl"
DAY = REPO / "ranker" / "data" / "2025-05-15" / "listing.jsonl"
DATA_FILES = ("prefilter.jsonl", "scores.jsonl", "output.md", "output.json")
FAKE = ("--backend", "fake", "--model", "tiny")


def _env(home: Path) -> dict:
    return {"RANKER_HOME": home, "RANKER_OFFLINE": "1"}


def _ok(args, home: Path, cwd=None) -> subprocess.CompletedProcess:
    p = subprocess.run(crashkit.command(*args), env=crashkit.environment(_env(home)), capture_output=True,
                       text=True, timeout=120, cwd=cwd)
    assert p.returncode == 0, p.stderr[-1500:]
    return p


def _prepare_home(home: Path) -> None:
    """Vectors for both days (the prefilter runs without a model), the earlier day run and labelled, and a
    first run of the day with another keep rule (its files and ranking differ from the run killed)."""
    from ranker.sources import read_papers
    from ranker.store import Store

    from conftest import store_vectors
    with Store(home / "ranker.sqlite3") as s:
        store_vectors(s, list(read_papers(EARLIER)) + list(read_papers(DAY)))
    _ok(["run", "--papers", EARLIER, *FAKE, "--out", home / "out"], home)
    first = json.loads(EARLIER.read_text().splitlines()[0])["id"]
    with Store(home / "ranker.sqlite3") as s:
        s.set_label(first, 1, "2025-05-13")
    _ok(["run", "--papers", DAY, *FAKE, "--top", "5", "--out", home / "out"], home)


def _day_state(db: Path, day: str) -> dict:
    """What the store holds of `day` (its ranking, digest record, papers) and every label: must survive."""
    q = {"rankings": "SELECT day, paper_id, prefilter_score, kept, topic, rule, embedder FROM rankings "
                     "WHERE day=? ORDER BY paper_id",
         "digest": "SELECT day, model, prompt_hash, min_relevance, min_novelty FROM day_digests WHERE day=?",
         "papers": "SELECT paper_id FROM paper_days WHERE day=? ORDER BY paper_id"}
    out = {k: crashkit.rows(db, sql, day) for k, sql in q.items()}
    out["labels"] = crashkit.rows(db, "SELECT * FROM labels ORDER BY paper_id")
    out["label_events"] = crashkit.rows(db, "SELECT * FROM label_events ORDER BY id")
    return out


@pytest.fixture(scope="module")
def run_case(tmp_path_factory):
    """(the prepared home, the points of the run that is killed, the folder a run never killed leaves, the
    store's state of the day after it)."""
    base = tmp_path_factory.mktemp("crash-run")
    template = base / "template"
    _prepare_home(template)
    ref = crashkit.fresh_copy(template, base / "reference")
    p, points = crashkit.trace(_run_args(ref), _env(ref), base / "trace.txt")
    assert p.returncode == 0, p.stderr
    return template, points, crashkit.files(ref / "out"), _day_state(ref / "ranker.sqlite3", "2025-05-15")


def _run_args(home: Path) -> list:
    return ["run", "--papers", DAY, *FAKE, "--out", home / "out"]


def _data_set(folder: dict[str, bytes], day: str) -> tuple:
    return tuple(folder.get(f"{day}-{name}") for name in DATA_FILES)


# Where the run is killed: (a kind of point, which of them): the store's writes, the manifest's first write, each
# data file as it is written and as the set takes its names, the set's journal, the folder's index, the very end.
RUN_POINTS = [("commit", 1), ("commit", 2), ("rename .2025-05-15-run.json", 1), ("commit", 3), ("commit", 6),
              ("open .2025-05-15-prefilter", 1), ("open .2025-05-15-run.json", 2), ("commit", 7),
              ("open ..ranker-set", 1), ("rename ..ranker-set", 1),
              ("rename .2025-05-15-prefilter", 1), ("rename .2025-05-15-scores", 1),
              ("rename .2025-05-15-output.md", 1), ("rename .2025-05-15-output.json", 1),
              ("rename .2025-05-15-run.json", 2), ("unlink .ranker-set", 1), ("rename .index.json", 1),
              ("rename .index.md", 1), ("end", 1)]
# Killed here the store holds the run's ranking and digest record while the folder still holds the earlier run's
# files: the journal is not in place yet, so nothing finishes the set (the rerun does). The window is the journal's
# write; it was the writing of all five files.
STORE_AHEAD = ("open ..ranker-set", "rename ..ranker-set")


@pytest.mark.parametrize("kind,nth", RUN_POINTS, ids=[f"{k}#{n}" for k, n in RUN_POINTS])
def test_run_killed_at_a_point(run_case, tmp_path, kind, nth):
    template, points, reference, ref_state = run_case
    at = [len(points)] if kind == "end" else crashkit.pick(points, kind)
    assert len(at) >= nth, f"no {kind} #{nth} among the run's points: {points}"
    n = at[nth - 1]
    home = crashkit.fresh_copy(template, tmp_path / "home")
    db = home / "ranker.sqlite3"
    before_files = crashkit.files(home / "out")
    before_earlier, before_day = _day_state(db, "2025-05-13"), _day_state(db, "2025-05-15")
    crashkit.kill_at(_run_args(home), _env(home), n)

    assert crashkit.integrity(db) == "ok"
    assert _day_state(db, "2025-05-13") == before_earlier                    # the earlier day, its label
    now = crashkit.files(home / "out")
    for name, data in before_files.items():
        if name.startswith("2025-05-13"):
            assert now[name] == data, name                                    # its files as they were
    for name in DATA_FILES:                                                   # each file whole: the old or the new
        name = f"2025-05-15-{name}"
        assert now.get(name) in (before_files.get(name), reference[name]), name
    for name in ("2025-05-15-run.json", "index.json"):
        json.loads(now[name])                                                 # whole, never torn

    # the next run into the folder (tomorrow's cron job; here the earlier day again) finishes a set the kill left
    # half-named: the day's data files are then the earlier run's set or the new run's, never a mix, beside a
    # manifest and a store that say the same
    _ok(["run", "--papers", EARLIER, *FAKE, "--out", home / "out"], home)
    now = crashkit.files(home / "out")
    assert not [x for x in now if x.startswith(".ranker-set")]
    new = _data_set(now, "2025-05-15") == _data_set(reference, "2025-05-15")
    assert new or _data_set(now, "2025-05-15") == _data_set(before_files, "2025-05-15"), \
        f"killed at {n} ({points[n - 1]}): the day's files are a mix of two runs"
    manifest = json.loads(now["2025-05-15-run.json"])
    assert (manifest["status"] == "ok") == new or manifest["keep"]["rule"] == "top", manifest["status"]
    if kind not in STORE_AHEAD:
        assert _day_state(db, "2025-05-15") == (ref_state if new else before_day)

    p = _ok(_run_args(home), home)
    after = crashkit.files(home / "out")
    assert _data_set(after, "2025-05-15") == _data_set(reference, "2025-05-15"), p.stderr
    assert json.loads(after["2025-05-15-run.json"])["status"] == "ok"
    assert json.loads(after["index.json"]) == json.loads(reference["index.json"])
    assert _day_state(db, "2025-05-15") == ref_state
    assert _day_state(db, "2025-05-13") == before_earlier
    assert crashkit.integrity(db) == "ok"
    assert not [x for x in after if ".ranker-set" in x or x.endswith((".tmp", ".old"))]


def test_a_run_killed_after_storing_the_day_before_its_files_is_finished_by_the_next_run(run_case, tmp_path):
    """Killed between recording the day in the store and the journal of its files (STORE_AHEAD): the store's
    ranking and digest record are the killed run's (its scores all stored: a whole digest), the folder still the
    earlier run's. The web view says the run was stopped, never that it runs; the folder's index says so too
    once a run writes it; the next run of the day ends ok with the store and the folder of one run."""
    from ranker.runindex import read_days
    from ranker.store import Store
    from ranker.web.views import day_page
    template, points, reference, ref_state = run_case
    home = crashkit.fresh_copy(template, tmp_path / "home")
    db, day = home / "ranker.sqlite3", "2025-05-15"
    crashkit.kill_at(_run_args(home), _env(home), crashkit.pick(points, STORE_AHEAD[0])[0])
    killed = json.loads((home / "out" / f"{day}-run.json").read_text())
    assert killed["status"] == "running" and _day_state(db, day) == ref_state     # the store ahead of the folder
    with Store(db) as s:
        page = day_page(s, day)
        assert page.digest.run_id == killed["run_id"]                         # the killed run's, whole
        assert {r.paper.id for r in page.picks} == set(json.loads(reference[f"{day}-output.json"]))
        assert page.last_run["id"] == killed["run_id"] and page.last_run["status"] == "interrupted"
        assert not page.last_run["earlier"]

        def ended(run_id, d):
            status = s.run_status(run_id, "run", day=d)
            return status if status != "running" else None
        assert {r["day"]: r["status"] for r in read_days(home / "out", ended)}[day] == "interrupted"

    _ok(_run_args(home), home)
    now = crashkit.files(home / "out")
    assert _data_set(now, day) == _data_set(reference, day)
    assert json.loads(now[f"{day}-run.json"])["status"] == "ok"
    assert {r["day"]: r["status"] for r in json.loads(now["index.json"])["days"]}[day] == "ok"
    assert _day_state(db, day) == ref_state
    with Store(db) as s:
        page = day_page(s, day)
        assert page.last_run is None and page.digest.run_id == json.loads(now[f"{day}-run.json"])["run_id"]
        assert {r.paper.id for r in page.picks} == set(json.loads(now[f"{day}-output.json"]))
    assert crashkit.rows(db, "SELECT count(*) FROM runs WHERE status='running'") == [(0,)]
