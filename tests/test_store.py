import sqlite3

import numpy as np
import pytest

from ranker.errors import InputError
from ranker.records import Failure, Paper, Score
from ranker.store import MIGRATIONS, Store


def paper(pid, day="2025-05-15", **kw):
    return Paper(id=pid, title=f"T {pid}", abstract="A", authors=["X"], categories=["cs.LG"],
                 primary_category="cs.LG", date=day, **kw)


def test_migrations_run_once_and_record_version(tmp_path):
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        assert s.schema_version == len(MIGRATIONS)
    with Store(db) as s:       # reopening migrates nothing and keeps data
        assert s.schema_version == len(MIGRATIONS)
        assert s.integrity_check() == "ok"


def test_newer_schema_is_refused_with_one_line(tmp_path):
    db = tmp_path / "r.sqlite3"
    Store(db).close()
    c = sqlite3.connect(db)
    c.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    c.close()
    with pytest.raises(InputError, match="newer than this ranker"):
        Store(db)


def test_not_a_database_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError) as e:
        Store(bad)
    assert str(bad) in str(e.value)


def test_papers_first_seen_and_repeats(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        r1 = s.add_papers([paper("1"), paper("2")])
        assert (r1.new, r1.updated, r1.seen_before) == (2, 0, {})
        r2 = s.add_papers([paper("2", day="2025-05-16"), paper("3", day="2025-05-16")])
        assert r2.new == 1 and r2.seen_before == {"2": "2025-05-15"}
        assert s.get_paper("2").date == "2025-05-15"
        assert s.count_papers() == 3


def test_failed_transaction_keeps_what_was_stored(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([paper("1")])

        def bad():
            yield paper("2")
            raise RuntimeError("reader broke mid-file")
        with pytest.raises(RuntimeError):
            s.add_papers(bad())
        assert s.count_papers() == 1 and s.get_paper("2") is None


def test_scores_keyed_by_model_and_prompt(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        s.put_failure(Failure("1", "garbage"), "m", "h")
        s.put_score(Score("1", 8, 7, "ok", expected_relevance=7.6), "m", "h")
        assert s.get_failures("m", "h") == []          # a later success clears the failure
        assert s.get_scores(["1"], "m", "h")["1"].expected_relevance == pytest.approx(7.6)
        assert s.get_scores(["1"], "m", "other") == {}
        assert s.get_scores(["1"], "other", "h") == {}
        with pytest.raises(sqlite3.IntegrityError):     # the schema refuses out-of-range scores
            s.put_score(Score("2", 11, 7, "x"), "m", "h")


def test_embeddings_cache_checks_text_hash(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        v = np.arange(4, dtype=np.float32)
        s.put_embeddings([("1", "h1", v)], "minilm")
        assert np.array_equal(s.get_embeddings({"1": "h1"}, "minilm")["1"], v)
        assert s.get_embeddings({"1": "changed"}, "minilm") == {}
        assert s.get_embeddings({"1": "h1"}, "mpnet") == {}


# The statements ranker ran before named migrations (its MIGRATIONS[0] string, less comments and line breaks),
# split on ";" as it did, then PRAGMA user_version = 1; test_m001_builds_the_schema_version_1_had checks that
# they give the very tables m001_initial gives.
V1_SQL = """
CREATE TABLE papers (id TEXT PRIMARY KEY, version INTEGER, title TEXT NOT NULL, abstract TEXT NOT NULL,
    authors TEXT NOT NULL, categories TEXT NOT NULL, primary_category TEXT, comment TEXT, first_seen TEXT,
    last_seen TEXT);
CREATE TABLE paper_days (paper_id TEXT NOT NULL REFERENCES papers(id), day TEXT NOT NULL, announce_type TEXT,
    PRIMARY KEY (paper_id, day));
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, started_at REAL NOT NULL,
    finished_at REAL, status TEXT NOT NULL DEFAULT 'running', params TEXT, summary TEXT);
CREATE TABLE scores (paper_id TEXT NOT NULL, model TEXT NOT NULL, prompt_hash TEXT NOT NULL,
    relevance INTEGER NOT NULL CHECK (relevance BETWEEN 1 AND 10), novelty INTEGER NOT NULL CHECK (novelty BETWEEN
    1 AND 10), comment TEXT NOT NULL, expected_relevance REAL, expected_novelty REAL, prompt_tokens INTEGER
    DEFAULT 0, completion_tokens INTEGER DEFAULT 0, run_id INTEGER, created_at REAL NOT NULL,
    PRIMARY KEY (paper_id, model, prompt_hash));
CREATE TABLE failures (paper_id TEXT NOT NULL, model TEXT NOT NULL, prompt_hash TEXT NOT NULL, reason TEXT NOT
    NULL, raw TEXT, run_id INTEGER, created_at REAL NOT NULL, PRIMARY KEY (paper_id, model, prompt_hash));
CREATE TABLE embeddings (paper_id TEXT NOT NULL, embedder TEXT NOT NULL, text_hash TEXT NOT NULL, dim INTEGER
    NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (paper_id, embedder))
"""


def v1_database(path):
    c = sqlite3.connect(path)
    for stmt in V1_SQL.split(";"):
        c.execute(stmt)
    c.execute("INSERT INTO papers VALUES ('2501.00001', 1, 'T', 'A', '[]', '[\"cs.LG\"]', 'cs.LG', NULL, "
              "'2025-01-06', '2025-01-06')")
    c.execute("INSERT INTO scores VALUES ('2501.00001', 'm', 'h', 8, 7, 'ok', NULL, NULL, 0, 0, NULL, 0)")
    c.execute("PRAGMA user_version = 1")
    c.commit()
    c.close()


def test_migrations_are_named_and_recorded(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        assert s.migrations == [m.__name__ for m in MIGRATIONS] and s.migrations[0] == "m001_initial"
        assert s.schema_version == len(MIGRATIONS)


def test_a_version_1_database_upgrades_cleanly(tmp_path, monkeypatch):
    db = tmp_path / "old.sqlite3"
    v1_database(db)
    ran = []

    def m900_test_column(c):
        ran.append(1)
        c.execute("ALTER TABLE papers ADD COLUMN note TEXT")

    monkeypatch.setattr("ranker.store.MIGRATIONS", [*MIGRATIONS, m900_test_column])
    with Store(db) as s:                           # m001 is recognised as done, only the later ones run
        assert s.migrations == [*(m.__name__ for m in MIGRATIONS), "m900_test_column"] and ran == [1]
        assert s.schema_version == len(MIGRATIONS) + 1
        assert s.get_paper("2501.00001").title == "T"
        assert s.get_scores(["2501.00001"], "m", "h")["2501.00001"].relevance == 8
        assert s.integrity_check() == "ok"
    with Store(db) as s:                           # and nothing runs twice
        assert ran == [1] and s.conn.execute("SELECT note FROM papers").fetchone() == (None,)


def test_m001_builds_the_schema_version_1_had(tmp_path, monkeypatch):
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    v1_database(old)
    monkeypatch.setattr("ranker.store.MIGRATIONS", MIGRATIONS[:1])
    Store(new).close()

    def columns(db):
        c = sqlite3.connect(db)
        tables = [r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE "
                                          "'sqlite_%' AND name != '_migrations' ORDER BY name")]
        out = {t: c.execute(f"PRAGMA table_info({t})").fetchall() for t in tables}
        c.close()
        return out
    assert columns(old) == columns(new)


def test_a_database_with_unknown_migrations_is_refused(tmp_path):
    db = tmp_path / "r.sqlite3"
    Store(db).close()
    c = sqlite3.connect(db)
    c.execute("INSERT INTO _migrations VALUES ('m777_from_the_future', 0)")
    c.commit()
    c.close()
    with pytest.raises(InputError, match="m777_from_the_future"):
        Store(db)


# --------------------------------------------------------------------------- read-only, locked, full
@pytest.fixture
def read_only_home(tmp_path):
    """A folder holding a valid database with one paper, then made read-only: a tmpfs remounted read-only
    where mounting is permitted (root), else file and folder modes."""
    import os
    import subprocess
    home = tmp_path / "home"
    home.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(home)],
                                                   capture_output=True).returncode == 0
    if os.geteuid() == 0 and not mounted:
        pytest.skip("root without mount: cannot make a folder read-only")
    with Store(home / "ranker.sqlite3") as s:
        s.add_papers([paper("2505.00001")])
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
    else:
        os.chmod(home / "ranker.sqlite3", 0o444)
        os.chmod(home, 0o555)
    try:
        yield home
    finally:
        if mounted:
            subprocess.run(["umount", str(home)], check=True)
        else:
            os.chmod(home, 0o755)


def test_a_read_only_database_opens_for_reading_and_says_read_only_on_a_write(read_only_home):
    from ranker.errors import StoreError
    db = read_only_home / "ranker.sqlite3"
    with Store(db) as s:
        assert s.read_only and s.get_paper("2505.00001").title == "T 2505.00001"
        with pytest.raises(StoreError) as e:
            s.add_papers([paper("2505.00002")])
    msg = str(e.value)
    assert msg.startswith(f"{db}: read-only (") and "not a usable" not in msg and "\n" not in msg


def test_a_read_only_ranker_home_is_named_as_such_by_the_commands(read_only_home, tmp_path):
    from conftest import DAYS, ranker
    listing = DAYS / "2025-05-15" / "listing.jsonl"
    r = ranker("fetch", "--from", listing, "--out", tmp_path / "day.jsonl", env={"RANKER_HOME": read_only_home})
    db = read_only_home / "ranker.sqlite3"
    assert r.returncode == 1 and r.stderr.startswith(f"error: {db}: read-only (") and "not a usable" not in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_a_locked_database_names_itself_and_the_run_holding_it(tmp_path):
    """Another process records a `ranker score` run and holds a write transaction open."""
    import subprocess
    import sys
    import textwrap
    from ranker.errors import StoreError
    db = tmp_path / "r.sqlite3"
    Store(db).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from ranker.store import Store
        with Store({str(db)!r}) as s, s.recording("score", {{}}):
            s.conn.execute("BEGIN IMMEDIATE")
            print("holding", flush=True)
            time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        with Store(db, busy_timeout=0.2) as s:                 # opening an up-to-date database takes no lock
            with pytest.raises(StoreError) as e:
                s.put_score(Score("1", 8, 7, "x"), "m", "h")
    finally:
        holder.kill()
        holder.wait()
    msg = str(e.value)
    assert msg.startswith(f"{db}: database is locked: ") and f"held by ranker score, pid {holder.pid}" in msg


def test_a_full_disk_names_the_database(tmp_path):
    import os
    import subprocess
    from ranker.errors import StoreError
    d = tmp_path / "tiny"
    d.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(d)], capture_output=True).returncode:
        pytest.skip("a full disk needs a tmpfs mount (root)")
    try:
        with Store(d / "r.sqlite3") as s:
            with pytest.raises(StoreError) as e:
                s.put_embeddings(((f"p{i}", "h", np.ones(384, dtype=np.float32)) for i in range(2000)), "minilm")
            assert str(e.value).startswith(f"{d / 'r.sqlite3'}: cannot write: No space left on device")
            assert s.count_embeddings("minilm") == 0 and s.integrity_check() == "ok"
    finally:
        subprocess.run(["umount", str(d)], check=True)
        assert not os.path.ismount(d)


def test_m002_marks_the_rows_older_versions_left_running(tmp_path):
    db = tmp_path / "old.sqlite3"
    v1_database(db)
    c = sqlite3.connect(db)
    c.execute("INSERT INTO runs (kind, started_at, status) VALUES ('run', 0, 'running')")
    c.commit()
    c.close()
    with Store(db) as s:
        assert s.run_status(1) == "interrupted"
        assert {r[1] for r in s.conn.execute("PRAGMA table_info(runs)")} >= {"pid", "host"}
