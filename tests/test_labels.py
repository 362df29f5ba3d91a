"""The user's labels: JSONL export/import (library and CLI) and the training rows calibration learns from."""
from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from ranker.errors import InputError
from ranker.labels import (LABEL_WEIGHT, export_labels, import_labels, labels_needed,
                           read_labels, store_training_rows, training_labels, training_rows)
from ranker.prefilter.history import load_day
from ranker.records import Label, Paper
from ranker.store import Store

from conftest import DAYS, RANKER, ranker


def test_export_then_import_on_a_new_machine(tmp_path):
    with Store(tmp_path / "a.sqlite3") as s:
        s.set_label("2505.09572", 1, "2025-05-15", created_at=1747300000.0)
        s.set_label("2505.07363", -1, "2025-05-15", created_at=1747300100.0)
        s.set_label("hep-th/9901001", 1, None, created_at=1747300200.0)
        assert export_labels(s, tmp_path / "labels.jsonl") == 3
    rows = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert rows[0] == {"id": "2505.09572", "label": 1, "time": "2025-05-15T09:06:40Z", "day": "2025-05-15"}
    assert [r["label"] for r in rows] == [1, -1, 1] and "day" not in rows[2]
    with Store(tmp_path / "b.sqlite3") as s:
        assert import_labels(s, tmp_path / "labels.jsonl") == {"added": 3, "changed": 0, "taken back": 0, "unchanged": 0}
        assert import_labels(s, tmp_path / "labels.jsonl") == {"added": 0, "changed": 0, "taken back": 0, "unchanged": 3}
        got = s.get_labels()
        assert got["2505.09572"].created_at == 1747300000.0 and got["2505.09572"].day == "2025-05-15"
        assert got["2505.07363"].label == -1


def test_import_counts_papers_by_what_it_did_to_them_not_lines(tmp_path):
    """Two exports put together give a paper several lines: each line was counted, a thumb the same file then took
    back as '1 added, 1 changed, 1 taken back' for a paper that ends as it began, unlabelled. The counts are of
    papers, by their label before and after the import."""
    f = tmp_path / "both.jsonl"
    f.write_text('{"id": "2505.09572", "label": 1, "time": "2025-05-15T09:00:00Z"}\n'
                 '{"id": "2505.09572", "label": -1, "time": "2025-05-15T10:00:00Z"}\n'
                 '{"id": "2505.09572", "label": 0, "time": "2025-05-15T11:00:00Z"}\n'
                 '\n'
                 '{"id": "2505.07363", "label": 1, "time": "2025-05-15T09:00:00Z"}\n'
                 '{"id": "2505.07363", "label": -1, "time": "2025-05-15T12:00:00Z"}\n'
                 '{"id": "2505.09573", "label": 1, "time": "2025-05-15T09:00:00Z"}\n'
                 '{"id": "2505.09573", "label": 1, "time": "2025-05-15T09:30:00Z"}\n'
                 '{"id": "2505.09574", "label": -1, "time": "2025-05-15T09:00:00Z"}\n'
                 '{"id": "2505.09574", "label": 0, "time": "2025-05-15T13:00:00Z"}\n')
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        s.set_label("2505.09574", 1, "2025-05-15", created_at=1747200000.0)      # held here, taken back there
        s.set_label("2505.07363", 1, "2025-05-15", created_at=1747200000.0)      # changed there
    r = ranker("labels", "import", f, "--db", db)
    assert r.returncode == 0, r.stderr
    assert r.stderr == f"labels: 1 added, 1 changed, 1 taken back, 1 unchanged from {f}\n"
    with Store(db) as s:
        assert {k: v.label for k, v in s.get_labels().items()} == {"2505.07363": -1, "2505.09573": 1}
        assert import_labels(s, f) == {"added": 0, "changed": 0, "taken back": 0, "unchanged": 4}


def test_a_verdict_without_a_day_keeps_the_day_the_earlier_one_was_given_on(tmp_path):
    """A later thumb imported from a file without days (or clicked where no digest day is known) changes the
    verdict, not the digest day it was first given on: the labels page links that day's page (calibration counts
    the new verdict from its own time, ranker.labels.given_on)."""
    with Store(tmp_path / "a.sqlite3") as s:
        s.set_label("2505.09572", 1, "2025-05-15", created_at=1747300000.0)
        s.set_label("2505.07363", 1, "2025-05-15", created_at=1747300000.0)
        (tmp_path / "later.jsonl").write_text('{"id": "2505.09572", "label": -1, "time": "2025-06-01T00:00:00Z"}\n')
        assert import_labels(s, tmp_path / "later.jsonl")["changed"] == 1
        s.set_label("2505.07363", -1, None, created_at=1748700000.0)
        got = s.get_labels()
        assert [(got[i].label, got[i].day) for i in ("2505.09572", "2505.07363")] == [(-1, "2025-05-15")] * 2
        s.set_label("2505.07363", 1, "2025-06-02", created_at=1748800000.0)      # a day given wins
        assert s.get_labels()["2505.07363"].day == "2025-06-02"


@pytest.mark.parametrize("line, message", [
    ('{"id": "2505.00001", "label": 1, "time": "2025-05-15T09:00:00Z"}\n{"id": "2505.00002", "label": 3, "time": 1}',
     "'label' must be 1"),
    ('{"id": "2505.00001", "label": 1, "time": "2025-05-15T09:00:00Z"}\n{broken', "not valid JSON"),
    ('{"id": "2505.00001", "label": 1, "time": "2025-05-15T09:00:00Z"}\n'     # a day the web page could not undo
     '{"id": "2505.00002", "label": 1, "time": "2025-05-15T09:00:00Z", "day": "July 2nd"}',
     "'day' must be a day YYYY-MM-DD"),
    ('{"id": "2505.00001", "label": 1, "time": "2025-05-15T09:00:00Z"}\n{"label": 1, "time": 1}', "missing 'id'"),
    ('{"id": "2505.00001", "label": 1, "time": "2025-05-15T09:00:00Z"}\n{"id": "2505.00002", "label": -1, "time": "yesterday"}',
     "not an ISO 8601 time"),
    ('{"id": "2505.00001", "label": 1, "time": "2025-05-15T09:00:00Z"}\n["2", 1]', "expected a JSON object"),
    # two verdicts on one paper at one time: neither is the later, and the import kept whichever came first
    ('{"id": "2505.00001", "label": 1, "time": "2025-05-15T09:00:00Z"}\n'
     '{"id": "arXiv:2505.00001v2", "label": "down", "time": "2025-05-15T11:00:00+02:00"}',
     "2505.00001 is thumbs down here and thumbs up on line 1, at the same time: which one"),
])
def test_a_bad_row_names_file_and_line_and_stores_nothing(tmp_path, line, message):
    f = tmp_path / "labels.jsonl"
    f.write_text(line + "\n")
    with pytest.raises(InputError, match=message) as e:
        read_labels(f)
    assert str(e.value).startswith(f"{f}:2: ")
    with Store(tmp_path / "r.sqlite3") as s:
        with pytest.raises(InputError):
            import_labels(s, f)
        assert s.get_labels() == {}


def test_a_label_given_in_the_future_is_refused_naming_its_line_and_one_a_clock_ahead_is_not(tmp_path):
    """A label of time 2999-01-01 (a mistyped year, a machine whose clock ran decades ahead) was imported and
    then won every merge: a thumb given on any machine since, imported, lost to it, and each export carried it
    on. A time more than a day past this machine's clock is a bad line (one line naming file:line, exit 1,
    nothing stored); one an hour ahead (another machine's clock, a local time written as UTC) is read."""
    import time
    from datetime import datetime, timezone
    db = tmp_path / "r.sqlite3"
    Store(db).close()
    soon = datetime.fromtimestamp(time.time() + 3600, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    for future in ('"2999-01-01T00:00:00Z"', str(int(time.time()) + 2 * 86400)):
        f = tmp_path / "labels.jsonl"
        f.write_text(f'{{"id": "2505.00001", "label": 1, "time": "{soon}"}}\n'
                     f'{{"id": "2505.00002", "label": -1, "time": {future}}}\n')
        r = ranker("labels", "import", f, "--db", db)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1 and len(lines) == 1, r.stderr
        assert lines[0].startswith(f"error: {f}:2: 'time' ") and "later than this machine's clock" in lines[0], r.stderr
        with Store(db) as s:
            assert s.get_labels() == {}
    f.write_text(f'{{"id": "2505.00001", "label": 1, "time": "{soon}"}}\n')
    r = ranker("labels", "import", f, "--db", db)
    assert r.returncode == 0 and "1 added" in r.stderr, r.stderr


def test_a_far_future_label_an_older_ranker_stored_is_moved_to_the_upgrade_s_clock(tmp_path, monkeypatch):
    """Labels an older ranker stored before times were checked on input kept their far-future time: each won every
    merge with the verdicts given since, and each export of the store was refused whole by another machine
    (file:line). Migration m008 sets every label and event time more than CLOCK_SKEW past the clock to the
    upgrade's clock: the verdict stays, a later one wins over it, the export is read; nearer times are untouched."""
    import time
    from ranker.migrations import MIGRATIONS, m008_label_times_not_in_the_future as m008
    home = tmp_path / "home"
    db = home / "ranker.sqlite3"
    far, soon = 32503680000.0, time.time() + 3600            # 3000-01-01; an hour ahead (a clock a little fast)
    monkeypatch.setattr("ranker.store.MIGRATIONS", MIGRATIONS[:MIGRATIONS.index(m008)])
    with Store(db) as s:                                     # the home as the ranker before m008 left it
        s.set_label("2505.00001", 1, "2025-05-15", created_at=far)
        s.set_label("2505.00002", -1, "2025-05-15", created_at=1747300000.0)
        s.set_label("2505.00002", 0, "2025-05-15", created_at=far)       # taken back "in 3000"
        s.set_label("2505.00003", 1, None, created_at=soon)
        s.set_label("2505.00004", -1, None, created_at=1747300100.0)
        assert m008.__name__ not in s.migrations
    monkeypatch.undo()
    before = time.time()
    with Store(db) as s:
        after = time.time()
        assert s.migrations[-1] == m008.__name__
        got = s.get_labels()
        assert before <= got["2505.00001"].created_at <= after and got["2505.00001"].label == 1
        assert got["2505.00003"].created_at == soon and got["2505.00004"].created_at == 1747300100.0
        assert [e["created_at"] for e in s.label_events("2505.00002")][0] == 1747300000.0
        assert before <= s.label_events("2505.00002")[-1]["created_at"] <= after
        assert [(lb.paper_id, lb.label) for lb in s.taken_back()] == [("2505.00002", 0)]
    f = tmp_path / "labels.jsonl"
    r = ranker("labels", "export", f, "--db", db)
    assert r.returncode == 0 and "labels: 4 written" in r.stderr, r.stderr
    other = tmp_path / "other.sqlite3"
    Store(other).close()
    r = ranker("labels", "import", f, "--db", other)
    assert r.returncode == 0 and "3 added, 0 changed, 0 taken back, 1 unchanged" in r.stderr, r.stderr   # read
    later = tmp_path / "later.jsonl"                                       # a thumb down given since wins
    later.write_text(json.dumps({"id": "2505.00001", "label": -1, "time": int(after) + 60}) + "\n")
    with Store(db) as s:
        assert import_labels(s, later) == {"added": 0, "changed": 1, "taken back": 0, "unchanged": 0}
        assert s.get_labels()["2505.00001"].label == -1


def test_m008_under_a_clock_reset_behind_leaves_the_labels_given_before_the_last_run_as_they_are(tmp_path, monkeypatch):
    """A clock reset behind at the upgrade (1973, a board without its battery) would make every label 'in the
    future': m008 takes the newest run's start as the earliest 'now', so the verdicts given before it keep their
    times (they were moved to 1973 for good), and one given years after it still has its time moved back."""
    import time
    from ranker.migrations import MIGRATIONS, m008_label_times_not_in_the_future as m008
    db = tmp_path / "home" / "ranker.sqlite3"
    monkeypatch.setattr("ranker.store.MIGRATIONS", MIGRATIONS[:MIGRATIONS.index(m008)])
    with Store(db) as s:
        with s.recording("run", {}):
            pass
        last_run = s.conn.execute("SELECT started_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()[0]
        s.set_label("2505.00001", 1, "2025-05-15", created_at=last_run - 86400)
        s.set_label("2505.00002", -1, "2025-05-15", created_at=last_run - 60)
        s.set_label("2505.00003", 1, None, created_at=32503680000.0)             # 3000-01-01, mistyped
    monkeypatch.undo()
    monkeypatch.setattr(time, "time", lambda: 1e8)                               # the clock reads 1973
    with Store(db) as s:
        assert m008.__name__ in s.migrations
        got = {pid: lb.created_at for pid, lb in s.get_labels().items()}
    assert got == {"2505.00001": last_run - 86400, "2505.00002": last_run - 60, "2505.00003": last_run}


def test_m008_after_a_clock_that_ran_ahead_and_was_put_right_moves_the_labels_it_dated_back(tmp_path, monkeypatch):
    """A clock years ahead while runs and labels were recorded, put right before the last run: the runs of those
    days lie in the future too, so 'now' is the last run written, not the latest time (the labels kept winning)."""
    import time
    from ranker.migrations import MIGRATIONS, m008_label_times_not_in_the_future as m008
    db = tmp_path / "home" / "ranker.sqlite3"
    ahead = time.time() + 20 * 365 * 86400
    monkeypatch.setattr("ranker.store.MIGRATIONS", MIGRATIONS[:MIGRATIONS.index(m008)])
    with Store(db) as s:
        with monkeypatch.context() as m:
            m.setattr(time, "time", lambda: ahead)                           # the clock 20 years ahead
            with s.recording("run", {}):
                s.set_label("2505.00001", 1, "2025-05-15", created_at=ahead)
        with s.recording("run", {}):                                         # put right
            pass
    monkeypatch.undo()
    before = time.time()
    with Store(db) as s:
        assert m008.__name__ in s.migrations
        assert before <= s.get_labels()["2505.00001"].created_at <= time.time()


def test_the_same_verdict_twice_or_two_at_different_times_are_no_conflict(tmp_path):
    """Two exports joined into one file repeat their common labels; a paper's later verdict wins whatever the
    order of the lines."""
    f = tmp_path / "labels.jsonl"
    f.write_text('{"id": "2505.00001", "label": 1, "time": 5}\n{"id": "2505.00001", "label": 1, "time": 5}\n'
                 '{"id": "2505.00002", "label": 1, "time": 9}\n{"id": "2505.00002", "label": -1, "time": 5}\n')
    assert len(read_labels(f)) == 4
    with Store(tmp_path / "r.sqlite3") as s:
        import_labels(s, f)
        assert {pid: lb.label for pid, lb in s.get_labels().items()} == {"2505.00001": 1, "2505.00002": 1}


def test_a_verdict_given_again_is_no_change_and_keeps_its_time(tmp_path):
    """The same thumb clicked again, an undo of no label, or the same verdict imported later from another
    machine changes nothing: no event, and the label keeps the time it was given (which a later import compares
    against: a refreshed time would beat a verdict given elsewhere in between)."""
    f = tmp_path / "labels.jsonl"
    f.write_text('{"id": "2505.00001", "label": 1, "time": 300}\n')
    with Store(tmp_path / "r.sqlite3") as s:
        assert s.set_label("2505.00001", 1, "2025-05-15", created_at=100.0) == 1
        assert s.set_label("2505.00001", 1, "2025-05-15", created_at=200.0) == 1      # clicked again
        assert s.set_label("2505.00002", 0, created_at=200.0) == 0                     # undo of nothing
        assert import_labels(s, f)["unchanged"] == 1                                    # the same, later
        assert s.get_labels()["2505.00001"].created_at == 100.0
        assert [(e["paper_id"], e["label"]) for e in s.label_events()] == [("2505.00001", 1)]


def test_an_arxiv_id_is_read_without_its_version(tmp_path):
    f = tmp_path / "labels.jsonl"
    f.write_text('{"id": " 2505.09572v2 ", "label": "up", "time": 1}\n'
                 '{"id": "arXiv:hep-th/9901001v1", "label": -1, "time": 2}\n')
    assert [(lb.paper_id, lb.label) for lb in read_labels(f)] == [("2505.09572", 1), ("hep-th/9901001", -1)]


def test_labels_cli_export_import_and_errors(tmp_path):
    db_a, db_b = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    with Store(db_a) as s:
        s.set_label("2505.09572", 1, "2025-05-15", created_at=1747300000.0)
        s.set_label("2505.07363", -1, "2025-05-15", created_at=1747300100.0)
    f = tmp_path / "out" / "labels.jsonl"
    r = ranker("labels", "export", f, "--db", db_a)
    assert r.returncode == 0 and "labels: 2 written" in r.stderr, r.stderr
    Store(db_b).close()                 # the other machine's database (its first run made it)
    r = ranker("labels", "import", f, "--db", db_b)
    assert r.returncode == 0 and "2 added, 0 changed, 0 taken back, 0 unchanged" in r.stderr, r.stderr
    r = ranker("labels", "import", f, "--db", db_b)
    assert r.returncode == 0 and "0 added, 0 changed, 0 taken back, 2 unchanged" in r.stderr, r.stderr
    r = ranker("labels", "list", "--db", db_b)
    assert r.stdout.splitlines()[0].split("\t")[:3] == ["2505.07363", "down", "2025-05-15"]
    # papers the store lacks (labels from the other machine): said so, as the labels page does, not an empty title
    assert [line.split("\t")[3] for line in r.stdout.splitlines()] == ["(not in this store)"] * 2, r.stdout
    with Store(db_b) as s:
        s.add_papers([Paper(id="2505.09572", title="A title", abstract="A", date="2025-05-15")])
    r = ranker("labels", "list", "--db", db_b)
    assert [line.split("\t")[3] for line in r.stdout.splitlines()] == ["(not in this store)", "A title"], r.stdout
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "2505.00001", "label": "maybe", "time": 1}\n')
    r = ranker("labels", "import", bad, "--db", db_b)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"error: {bad}:1: 'label' must be"), r.stderr
    r = ranker("labels", "import", tmp_path / "missing.jsonl", "--db", db_b)
    assert r.returncode == 1 and "missing.jsonl: file not found" in r.stderr


def test_labels_export_to_and_import_from_a_pipe(tmp_path):
    """`ranker labels export - | ssh other ranker labels import -`: '-' is stdout and stdin, as for every other
    command's --out and --papers. Export wrote a file named '-' in the working folder (stdout empty), import
    looked for one ('-: file not found')."""
    db_a, db_b = tmp_path / "a.sqlite3", tmp_path / "b.sqlite3"
    with Store(db_a) as s:
        s.set_label("2505.09572", 1, "2025-05-15", created_at=1747300000.0)
        s.set_label("2505.07363", -1, "2025-05-15", created_at=1747300100.0)
    Store(db_b).close()
    r = ranker("labels", "export", "-", "--db", db_a, cwd=tmp_path)
    assert r.returncode == 0 and not (tmp_path / "-").exists(), r.stderr
    assert [json.loads(x)["id"] for x in r.stdout.splitlines()] == ["2505.09572", "2505.07363"]
    env = {**os.environ, "RANKER_HOME": str(tmp_path / "home")}
    env.pop("RANKER_DEBUG", None)
    p = subprocess.run([*RANKER, "labels", "import", "-", "--db", str(db_b)], input=r.stdout, capture_output=True,
                       text=True, env=env, cwd=tmp_path, timeout=300)
    assert p.returncode == 0 and "2 added" in p.stderr, p.stderr
    with Store(db_b) as s:
        assert {pid: lb.label for pid, lb in s.get_labels().items()} == {"2505.09572": 1, "2505.07363": -1}


def test_labels_export_to_a_descriptor_not_given_leaves_the_database_alone(tmp_path):
    """`ranker labels export /dev/fd/3` with no descriptor 3 given (a script that forgot its `3>file`): 3 was the
    database's own descriptor, and the labels went over it (exit 0, then 'file is not a database'). Now one line
    naming the path, status 1, the database byte for byte as it was; a descriptor given is written through."""
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        s.set_label("2505.09572", 1, "2025-05-15", created_at=1747300000.0)
    before = db.read_bytes()
    env = {**os.environ, "RANKER_HOME": str(tmp_path / "home")}
    env.pop("RANKER_DEBUG", None)
    (tmp_path / "fd3").symlink_to("/dev/fd/3")
    # a name for it spelt another way ("//", a link to it) skipped the check and wrote over the database too
    for name in ("/dev/fd/3", "/proc/self/fd/3", "//dev/fd/3", str(tmp_path / "fd3")):
        p = subprocess.run([*RANKER, "labels", "export", name, "--db", str(db)], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=300)        # close_fds: 3 is not open in the child
        assert p.returncode == 1 and p.stderr.splitlines() == [
            f"error: {name}: descriptor 3 was not given to ranker (as a shell's `3>file` or `3<file` gives it); "
            "give a file name"], p.stderr
        assert db.read_bytes() == before
    r = ranker("labels", "import", "/dev/fd/3", "--db", db)
    assert r.returncode == 1 and "descriptor 3 was not given" in r.stderr and db.read_bytes() == before, r.stderr
    p = subprocess.run(["sh", "-c", 'exec "$@" 3>given.jsonl', "sh", *RANKER, "labels", "export", "/dev/fd/3",
                        "--db", str(db)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    assert [json.loads(x)["id"] for x in (tmp_path / "given.jsonl").read_text().splitlines()] == ["2505.09572"]


def test_labels_import_refuses_a_database_that_is_not_there_but_makes_the_homes_own(tmp_path):
    """An import into a mistyped --db made a new empty database there (and its folder) and stored the labels in
    it, where no paper, no serve and no calibrate of the real database would ever see them; it said "2 added" and
    exited 0. Now it is one line naming the option and the path, and nothing is made. The home's own database is
    still made by an import (a new machine: the labels wait there for their papers)."""
    f = tmp_path / "labels.jsonl"
    f.write_text('{"id": "2505.09572", "label": 1, "time": "2025-05-15T09:00:00Z"}\n'
                 '{"id": "2505.07363", "label": -1, "time": "2025-05-15T09:01:00Z"}\n')
    home = tmp_path / "home"
    typo = tmp_path / "typo" / "rnaker.sqlite3"
    r = ranker("labels", "import", f, "--db", typo, env={"RANKER_HOME": home})
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"error: --db {typo}: no database there (a typo?); `ranker run` makes one"], r.stderr
    assert not typo.parent.exists() and not (home / "ranker.sqlite3").exists()
    r = ranker("labels", "import", f, env={"RANKER_HOME": home, "RANKER_DB": typo})
    assert r.returncode == 1 and r.stderr.startswith(f"error: RANKER_DB {typo}: no database there"), r.stderr
    assert not typo.parent.exists()
    # the home's database: made on a first import, as on a new machine
    r = ranker("labels", "import", f, env={"RANKER_HOME": home})
    assert r.returncode == 0 and "2 added" in r.stderr, r.stderr
    with Store(home / "ranker.sqlite3") as s:
        assert sorted(s.get_labels()) == ["2505.07363", "2505.09572"]
    # and a database that is there is imported into, named however
    r = ranker("labels", "import", f, "--db", home / "ranker.sqlite3", env={"RANKER_HOME": tmp_path / "other"})
    assert r.returncode == 0 and "2 unchanged" in r.stderr, r.stderr


def _p(pid, day):
    return Paper(id=pid, title=f"T {pid}", abstract="A", date=day)


def test_training_rows_label_overrides_gpt_and_weighs_more():
    day = load_day(DAYS / "2025-05-15")
    picked = sorted(day.picks)[0]
    not_picked = next(p.id for p in day.papers if p.id not in day.picks)
    base = training_rows([day], {})
    assert len(base.papers) == len(day.papers) and base.y.sum() == len(day.picks)
    assert np.all(base.weights == 1.0) and set(base.groups) == {"2025-05-15"}

    rows = training_rows([day], {picked: False, not_picked: True, "2501.00001": True},
                         label_papers={"2501.00001": _p("2501.00001", "2025-01-02")})
    idx = {p.id: i for i, p in enumerate(rows.papers)}
    assert rows.y[idx[picked]] == False and rows.weights[idx[picked]] == LABEL_WEIGHT      # noqa: E712
    assert rows.y[idx[not_picked]] == True and rows.weights[idx[not_picked]] == LABEL_WEIGHT  # noqa: E712
    # a labelled paper outside the history joins as a row of its own day
    assert rows.y[idx["2501.00001"]] and rows.groups[idx["2501.00001"]] == "2025-01-02"
    assert len(rows.papers) == len(day.papers) + 1
    assert rows.y.sum() == len(day.picks) + 1
    others = [i for p, i in idx.items() if p not in (picked, not_picked, "2501.00001")]
    assert np.array_equal(rows.y[others], base.y[others]) and np.all(rows.weights[others] == 1.0)


def test_training_labels_name_the_labels_the_fit_can_use_once(tmp_path):
    """`calibrate` worked out which labels the fit can use a second way, from the days' papers, beside
    training_labels' count of them (the labels line's "N of yours used" from one, its ups and downs and the
    "too few labels" checks from the other). training_labels gives them, `used` their count: the CLI's one figure.
    A label on a history day's paper, on a paper the store holds and on one it lacks: the last is left out."""
    from ranker.prefilter.history import HistoryDay
    h = _p("2505.00001", "2025-05-15")
    day = HistoryDay(date="2025-05-15", papers=[h], picks=set())
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([_p("2505.00002", "2025-05-15")])
        s.set_label("2505.00001", 1, "2025-05-15")
        s.set_label("2505.00002", -1, "2025-05-15")
        s.set_label("2505.00003", 1, "2025-05-15")                  # a paper the store does not hold
        lab = training_labels(s, [day])
    assert lab.usable == {"2505.00001": True, "2505.00002": False}
    assert (lab.used, lab.on_history, lab.outside, lab.unknown) == (2, 1, 1, 1)
    assert len(lab.labels) == 3 and [p.id for d in lab.days for p in d.papers] == ["2505.00002"]


def test_labels_alone_make_a_training_set_and_say_how_many_are_missing(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([_p(f"2505.{i:05d}", "2025-05-15") for i in range(12)])
        for i in range(12):
            s.set_label(f"2505.{i:05d}", 1 if i < 9 else -1, "2025-05-15")
        labels = training_labels(s).labels
        assert sum(labels.values()) == 9
        assert labels_needed(labels) == 1 + 7                       # 10 of each kind
        rows = store_training_rows(s)                              # no GPT history at all
        assert len(rows.papers) == 12 and rows.y.sum() == 9 and np.all(rows.weights == LABEL_WEIGHT)
        assert set(rows.groups) == {"2025-05-15"}


def test_an_export_without_labels_leaves_a_labels_file_as_it_was(tmp_path):
    """`ranker labels export labels.jsonl` typed for `import` on the new machine (a fresh home, its database not
    made yet, opened as an empty store) replaced the file brought from the old machine, the only copy of the
    labels, by an empty one. An export without labels now leaves a file that holds something as it was; a new or
    empty file is still written."""
    db = tmp_path / "new.sqlite3"
    Store(db).close()
    home = tmp_path / "home"                    # its ranker.sqlite3 not there yet: a new machine
    fresh = home / "ranker.sqlite3"
    at_home = {"RANKER_HOME": home}
    f = tmp_path / "labels.jsonl"
    line = '{"id": "2505.09572", "label": 1, "time": "2025-05-15T09:12:03Z", "day": "2025-05-15"}\n'
    f.write_text(line)
    for where, args in ((db, ("--db", db)), (fresh, ())):
        r = ranker("labels", "export", f, *args, env=at_home)
        assert r.returncode == 0 and r.stderr.strip() == f"nothing to do: no labels in {where} (left {f} as it was)"
        assert f.read_text() == line
    assert not fresh.exists()                   # reading made no database
    r = ranker("labels", "import", f, "--db", db)
    assert r.returncode == 0 and "1 added" in r.stderr, r.stderr
    with Store(db) as s:
        assert export_labels(s, tmp_path / "fresh.jsonl") == 1
    (tmp_path / "empty.jsonl").write_text("")
    r = ranker("labels", "export", tmp_path / "empty.jsonl", env=at_home)
    assert r.returncode == 0 and "wrote an empty" in r.stderr and (tmp_path / "empty.jsonl").read_text() == ""
    # '-' is stdout: a file named '-' in the working folder is neither written nor what the note speaks of
    (tmp_path / "-").write_text(line)
    r = ranker("labels", "export", "-", cwd=tmp_path, env=at_home)
    assert r.returncode == 0 and r.stdout == "" and r.stderr.strip() == (
        f"nothing to do: no labels in {fresh} (wrote nothing to stdout)"), r.stderr
    assert (tmp_path / "-").read_text() == line
    # `export - >> kept.jsonl`: stdout holds something, left as it was; said of stdout, not of '-'
    kept = tmp_path / "kept.jsonl"
    kept.write_text(line)
    env = {**os.environ, "RANKER_HOME": str(home)}
    env.pop("RANKER_DEBUG", None)
    env.pop("RANKER_DB", None)
    with kept.open("a") as out:
        p = subprocess.run([*RANKER, "labels", "export", "-"], stdout=out,
                           stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path, timeout=300)
    assert p.returncode == 0 and p.stderr.strip() == (
        f"nothing to do: no labels in {fresh} (left stdout as it was)"), p.stderr
    assert kept.read_text() == line


def test_labels_export_and_list_refuse_a_database_that_is_not_there(tmp_path):
    """`ranker labels export out.jsonl --db <a mistyped path>` said "nothing to do: no labels in ..." and exited 0:
    a script backing the labels up took a typo for "no labels yet". A database named with --db (RANKER_DB) that is
    not there is one line naming the option, status 1, as `labels import`, `serve` and `calibrate` say it; the
    file is not written and no database is made."""
    typo = tmp_path / "typo" / "rnaker.sqlite3"
    out = tmp_path / "out.jsonl"
    out.write_text("kept\n")
    home = {"RANKER_HOME": tmp_path / "home"}
    for args in (("export", out), ("export", "-"), ("list",)):
        r = ranker("labels", *args, "--db", typo, env=home)
        assert r.returncode == 1 and r.stderr.splitlines() == [
            f"error: --db {typo}: no database there (a typo?); `ranker run` makes one"], (args, r.stderr)
        assert r.stdout == ""
    r = ranker("labels", "export", out, env={**home, "RANKER_DB": typo})
    assert r.returncode == 1 and r.stderr.startswith(f"error: RANKER_DB {typo}: no database there"), r.stderr
    assert out.read_text() == "kept\n" and not typo.parent.exists()
    assert not (tmp_path / "home" / "ranker.sqlite3").exists()


def test_a_later_undo_from_elsewhere_keeps_an_older_thumb_out_though_this_store_took_it_back_too(tmp_path):
    """A paper taken back here (at 200) and later on the other machine (at 400): importing that undo changed
    nothing and was not remembered, so a thumb given in between (at 300, an older export imported after it)
    brought the label back, though the later verdict was the undo. The later undo now counts; its time travels
    on in this store's exports."""
    def line(label, t):
        return json.dumps({"id": "2505.09572", "label": label, "time": t, "day": "2025-05-15"}) + "\n"
    (tmp_path / "undo.jsonl").write_text(line(0, "2025-05-15T09:06:40Z"))       # 400
    (tmp_path / "thumb.jsonl").write_text(line(1, "2025-05-15T09:05:00Z"))      # 300
    with Store(tmp_path / "a.sqlite3") as s:
        s.set_label("2505.09572", 1, "2025-05-15", created_at=1747300000.0 - 300)
        s.set_label("2505.09572", 0, "2025-05-15", created_at=1747300000.0 - 200)
        assert import_labels(s, tmp_path / "undo.jsonl")["unchanged"] == 1
        assert import_labels(s, tmp_path / "thumb.jsonl") == {"added": 0, "changed": 0, "taken back": 0,
                                                               "unchanged": 1}
        assert s.get_labels() == {}
        assert import_labels(s, tmp_path / "undo.jsonl")["unchanged"] == 1       # again: no second event
        assert [e["label"] for e in s.label_events()] == [1, 0, 0]
        export_labels(s, tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_text() == line(0, "2025-05-15T09:06:40Z")


@pytest.mark.parametrize("a, b, kept", [(1, -1, -1), (-1, 1, -1), (1, 0, 0), (0, -1, 0), (0, 1, 0)])
@pytest.mark.parametrize("a_first", [True, False])
def test_two_verdicts_given_at_the_same_second_end_the_same_on_both_machines(tmp_path, a, b, kept, a_first):
    """Two machines give a paper different verdicts within one second and swap their exports (whole seconds):
    each kept its own (its stored time's fraction beat the file's whole second), so they never agreed. At the
    same second a taking back wins, then a thumb down, then a thumb up: on both machines, whichever imports first,
    whichever fraction of the second each was given at."""
    pid, t = "2505.09572", 1747300000.0

    def give(store, label, at):
        if label == 0:                                   # a thumb given long before, taken back now
            store.set_label(pid, 1, "2025-05-15", created_at=t - 100)
        store.set_label(pid, label, "2025-05-15", created_at=at)

    sa, sb = Store(tmp_path / "a.sqlite3"), Store(tmp_path / "b.sqlite3")
    try:
        give(sa, a, t + (0.2 if a_first else 0.8))
        give(sb, b, t + (0.8 if a_first else 0.2))
        export_labels(sa, tmp_path / "a.jsonl")
        export_labels(sb, tmp_path / "b.jsonl")
        import_labels(sa, tmp_path / "b.jsonl")
        import_labels(sb, tmp_path / "a.jsonl")
        got = [s.get_labels().get(pid) for s in (sa, sb)]
        assert [lb.label if lb else 0 for lb in got] == [kept, kept]
        for s in (sa, sb):                               # and it stays so: each export imported again anywhere
            for f in ("a.jsonl", "b.jsonl"):
                import_labels(s, tmp_path / f)
            assert (s.get_labels().get(pid) or Label(pid, 0, None, 0)).label == kept
    finally:
        sa.close()
        sb.close()


@pytest.mark.parametrize("tz, given", [("America/Los_Angeles", "2025-05-15"), ("UTC", "2025-05-16"),
                                       ("Asia/Tokyo", "2025-05-16")])
def test_a_label_counts_from_the_day_of_its_time_on_this_machine_s_clock(monkeypatch, tz, given):
    """A thumb clicked at 18:00 in California on 2025-05-15's digest (01:00 UTC on the 16th) counted from the
    16th in UTC, so the walk-forward left it out of the 16th's fit though the user gave it before that digest."""
    import time
    from datetime import datetime, timezone
    from ranker.labels import given_on
    from ranker.records import Label
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        t = datetime(2025, 5, 16, 1, 0, tzinfo=timezone.utc).timestamp()
        assert given_on(Label(paper_id="2505.00001", label=1, day="2025-05-15", created_at=t)) == given
        # a page of an older day clicked that evening counts from the evening's day all the same
        assert given_on(Label(paper_id="2505.00001", label=1, day="2025-04-01", created_at=t)) == given
    finally:
        monkeypatch.undo()
        time.tzset()


def test_an_export_while_a_thumb_is_given_on_a_paper_taken_back_keeps_the_paper(tmp_path, monkeypatch):
    """`ranker labels export` while `ranker serve` stores a thumb: the labels and the undos were two reads, and a
    thumb given between them on a paper whose label had been taken back left that paper out of both (the export
    neither carried the undo nor the new thumb). Both are read as one state of the store: the undo is exported."""
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        s.set_label("2505.09572", 1, "2025-05-15", created_at=1747300000.0)
        s.set_label("2505.09572", 0, "2025-05-15", created_at=1747300100.0)      # taken back
        s.set_label("2505.07363", -1, "2025-05-15", created_at=1747300200.0)
        read = s.get_labels

        def labels_then_a_click(*args, **kwargs):
            got = read(*args, **kwargs)
            with Store(db) as serve:                  # another process's connection: the server's thumb
                serve.set_label("2505.09572", 1, "2025-05-15", created_at=1747300300.0)
            return got

        monkeypatch.setattr(s, "get_labels", labels_then_a_click)
        assert export_labels(s, tmp_path / "labels.jsonl") == 2
    rows = [json.loads(x) for x in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert [(r["id"], r["label"]) for r in rows] == [("2505.09572", 0), ("2505.07363", -1)]


def test_labels_alone_need_enough_of_each_kind():
    """Thirty thumbs down and no thumbs up are not enough: ten likes are still missing."""
    from ranker.labels import MIN_LABELS_EACH
    assert labels_needed({f"d{i}": False for i in range(3 * MIN_LABELS_EACH)}) == MIN_LABELS_EACH
    assert labels_needed({**{f"d{i}": False for i in range(MIN_LABELS_EACH)},
                          **{f"u{i}": True for i in range(MIN_LABELS_EACH - 2)}}) == 2


def test_a_labelled_paper_of_a_history_day_is_one_row():
    from ranker.prefilter.history import HistoryDay
    p = Paper(id="2506.00001", title="t", abstract="a", authors=[], date="2025-06-23")
    day = HistoryDay(date="2025-06-23", papers=[p], picks=set())
    rows = training_rows([day], {p.id: True}, label_papers={p.id: p})
    assert [q.id for q in rows.papers] == [p.id] and rows.y.tolist() == [True]
    assert rows.weights.tolist() == [LABEL_WEIGHT]


def test_a_label_posted_without_a_day_goes_under_the_latest_day_the_paper_is_listed_on(tmp_path):
    """A paper listed on two days (cross-listed again, a replacement announced later): the page's thumb sends the
    day of the page it was clicked on, and that day is stored; a POST without a day (a script of the user's,
    curl) takes the latest day the paper is listed on, the day the user most likely saw it, not the first
    (the walk-forward calibration counts a label from its day: the first would put it before it was seen)."""
    from dataclasses import replace
    from ranker.web.app import _store_label
    from ranker.sources import read_papers
    paper = next(iter(read_papers(DAYS / "2025-05-15" / "listing.jsonl")))
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([replace(paper, date="2025-05-15")])
        s.add_papers([replace(paper, date="2025-05-20")])
        s.add_papers([replace(paper, date="2025-05-16")])
        assert s.paper_days(paper.id) == ["2025-05-15", "2025-05-16", "2025-05-20"]
        assert _store_label(s, paper.id, 1, "", None) == ("2025-05-20", 1)
        assert s.get_labels()[paper.id].day == "2025-05-20"
        assert _store_label(s, paper.id, -1, "2025-05-15", None) == ("2025-05-15", -1)      # the page's own day
        assert s.get_labels()[paper.id].day == "2025-05-15"
