import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from ranker.errors import InputError
from ranker.records import Failure, Paper, Score
from ranker.store import MIGRATIONS, Store

from conftest import ctrl_c_when, open_files


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
    with pytest.raises(InputError) as e:
        Store(db)
    # it said what was wrong, not what to do
    assert str(e.value) == (f"{db}: database schema v{len(MIGRATIONS) + 5} is newer than this ranker "
                            f"(v{len(MIGRATIONS)}); upgrade ranker to open it")


def test_not_a_database_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.sqlite3"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError) as e:
        Store(bad)
    assert str(bad) in str(e.value)


def test_a_path_that_is_not_a_file_is_refused_in_one_line(tmp_path):
    # a pipe or a device (--db /dev/null, for "no database") was "cannot open: disk I/O error", which reads as a
    # failing disk, and SQLite left a -journal beside /dev/null
    from ranker.errors import StoreError
    fifo = tmp_path / "db.pipe"
    os.mkfifo(fifo)
    for create in (True, False):
        with pytest.raises(StoreError) as e:
            Store(fifo, create=create)
        assert str(e.value) == f"{fifo}: not a file (a device or a pipe), so not a database file"
    assert [p.name for p in tmp_path.iterdir()] == ["db.pipe"]


def test_papers_first_seen_and_repeats(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        r1 = s.add_papers([paper("1"), paper("2")])
        assert (r1.new, r1.updated, r1.seen_before) == (2, 0, {})
        r2 = s.add_papers([paper("2", day="2025-05-16"), paper("3", day="2025-05-16")])
        assert r2.new == 1 and r2.seen_before == {"2": "2025-05-15"}
        assert s.get_paper("2").date == "2025-05-15"
        assert s.count_papers() == 3


def test_an_older_version_read_later_keeps_the_newer_text(tmp_path):
    """An old backfill imported (or an old day read) after a newer version was stored: the stored text stays
    the newer one, word search included, and the older one only adds its day; a newer version, or one of
    unknown version, still replaces it."""
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([Paper("2501.00001", "v1 title", "graph networks", date="2025-01-06", version=1)])
        s.search_papers("graph")                                # builds the word-search index
        s.add_papers([Paper("2501.00001", "v2 title", "diffusion models", date="2025-01-20", version=2)])
        s.add_papers([Paper("2501.00001", "v1 title", "graph networks", date="2025-01-06", version=1)])
        p = s.get_paper("2501.00001")
        assert (p.title, p.abstract, p.version) == ("v2 title", "diffusion models", 2)
        assert s.search_papers("diffusion") == ["2501.00001"] and not s.search_papers("graph")
        assert s.first_seen(["2501.00001"]) == {"2501.00001": "2025-01-06"}
        s.add_papers([Paper("2501.00001", "v3 title", "x", date="2025-02-03", version=3)])
        s.add_papers([Paper("2501.00001", "unversioned", "y", date="2025-02-04")])
        assert (s.get_paper("2501.00001").title, s.get_paper("2501.00001").version) == ("unversioned", 3)


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


def test_a_vector_is_stored_as_the_row_it_is_or_refused(tmp_path):
    # A (1, d) matrix was stored with dim 1 (its number of rows) and its d numbers: it was read back as a vector of
    # one number, silently; a (2, d) one as a vector of two.
    from ranker.errors import StoreError
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        s.put_embeddings([("1", "h", np.array([0.5, 0.25, 2.0, 1.0], dtype=np.float64)), ("2", "h", [1.0, 2.0])],
                         "minilm")
        got = s.get_vectors(["1", "2"], "minilm")
        assert got["1"].dtype == np.float32 and got["1"].tolist() == [0.5, 0.25, 2.0, 1.0] and got["2"].shape == (2,)
        for bad in (np.ones((1, 4), dtype=np.float32), np.ones((2, 4), dtype=np.float32), np.float32(1.0), []):
            with pytest.raises(ValueError, match="the vector of 3 has shape"):
                s.put_embeddings([("1", "h2", np.zeros(4, dtype=np.float32)), ("3", "h", bad)], "minilm")
        assert s.count_embeddings("minilm") == 2 and s.get_embeddings({"1": "h"}, "minilm")["1"][0] == 0.5
        # nor a NaN or an infinity: such a vector was any paper's neighbour (and topped a list at +inf)
        for bad in (np.nan, np.inf, -np.inf):
            with pytest.raises(ValueError, match="the vector of 3 holds numbers that are not finite"):
                s.put_embeddings([("1", "h2", np.zeros(4, dtype=np.float32)), ("3", "h", [0.5, bad, 0, 0])],
                                 "minilm")
        assert s.count_embeddings("minilm") == 2 and s.get_embeddings({"1": "h"}, "minilm")["1"][0] == 0.5
        # a row whose bytes are not its dim's float32 numbers (a damaged database) is said to be so, not cut to
        # size or a ValueError of numpy's
        with s.transaction() as c:
            c.execute("UPDATE embeddings SET vector = ? WHERE paper_id = '1'", (np.ones(8, dtype=np.float32).tobytes(),))
            c.execute("UPDATE embeddings SET vector = ? WHERE paper_id = '2'", (b"\0" * 4,))
        for pid in ("1", "2"):
            for read in (lambda: s.get_vectors([pid], "minilm"), lambda: s.get_embeddings({pid: "h"}, "minilm")):
                with pytest.raises(StoreError) as e:
                    read()
                assert str(e.value).startswith(f"{db}: the stored vector of {pid} (minilm) holds ")
                assert "the database is damaged" in str(e.value)


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


# The web pages' branch appended two more scripts to that list (user_version 2 and 3), run the same way.
V2_SQL = """
CREATE TABLE rankings (day TEXT NOT NULL, paper_id TEXT NOT NULL, prefilter_score REAL NOT NULL, kept INTEGER NOT
    NULL, topic TEXT, rule TEXT, embedder TEXT, run_id INTEGER, PRIMARY KEY (day, paper_id));
CREATE INDEX rankings_paper ON rankings (paper_id);
CREATE INDEX paper_days_day ON paper_days (day);
CREATE TABLE day_digests (day TEXT PRIMARY KEY, run_id INTEGER, model TEXT NOT NULL, prompt_hash TEXT NOT NULL,
    min_relevance INTEGER NOT NULL, min_novelty INTEGER NOT NULL, created_at REAL NOT NULL)
"""
V3_SQL = """
CREATE TABLE labels (paper_id TEXT PRIMARY KEY, label INTEGER NOT NULL CHECK (label IN (-1, 1)), day TEXT,
    created_at REAL NOT NULL);
CREATE TABLE label_events (id INTEGER PRIMARY KEY AUTOINCREMENT, paper_id TEXT NOT NULL, label INTEGER NOT NULL
    CHECK (label IN (-1, 0, 1)), day TEXT, created_at REAL NOT NULL, source TEXT NOT NULL DEFAULT 'user')
"""


def v1_database(path, version: int = 1):
    """A database as the ranker before named migrations left it at `version` (1; 2 and 3 from the web branch)."""
    c = sqlite3.connect(path)
    for sql in (V1_SQL, V2_SQL, V3_SQL)[:version]:
        for stmt in sql.split(";"):
            c.execute(stmt)
    c.execute("INSERT INTO papers VALUES ('2501.00001', 1, 'T', 'A', '[]', '[\"cs.LG\"]', 'cs.LG', NULL, "
              "'2025-01-06', '2025-01-06')")
    c.execute("INSERT INTO scores VALUES ('2501.00001', 'm', 'h', 8, 7, 'ok', NULL, NULL, 0, 0, NULL, 0)")
    if version >= 2:
        c.execute("INSERT INTO rankings VALUES ('2025-01-06', '2501.00001', 0.5, 1, 'T1', NULL, 'minilm', 3)")
        c.execute("INSERT INTO day_digests VALUES ('2025-01-06', 3, 'm', 'h', 8, 7, 0)")
    if version >= 3:
        c.execute("INSERT INTO labels VALUES ('2501.00001', 1, '2025-01-06', 5)")
    c.execute(f"PRAGMA user_version = {version}")
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
        assert s.migrations[0] == "m001_initial" and s.schema_version == len(MIGRATIONS) + 1
        assert s.get_paper("2501.00001").title == "T"
        assert s.get_scores(["2501.00001"], "m", "h")["2501.00001"].relevance == 8
        assert s.integrity_check() == "ok"
    with Store(db) as s:                           # and nothing runs twice
        assert ran == [1] and s.conn.execute("SELECT note FROM papers").fetchone() == (None,)


def _schema(db):
    """Every table's columns and every index's columns, by name (what a migration builds)."""
    c = sqlite3.connect(db)
    names = c.execute("SELECT type, name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE "
                      "'sqlite_%' AND name != '_migrations' ORDER BY name").fetchall()
    out = {n: c.execute(f"PRAGMA {'table' if t == 'table' else 'index'}_info({n})").fetchall() for t, n in names}
    c.close()
    return out
@pytest.mark.parametrize("version", [1, 2, 3])
def test_named_migrations_build_the_schema_each_old_version_had(tmp_path, version, monkeypatch):
    old, new = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    v1_database(old, version)
    monkeypatch.setattr("ranker.store.MIGRATIONS", MIGRATIONS[:version])
    Store(new).close()
    assert _schema(old) == _schema(new)


def test_a_migration_killed_midway_leaves_the_schema_before_it_and_the_next_open_finishes(tmp_path):
    # kill -9 between the two statements of m005: the database is as m004 left it, neither old nor new
    db, fresh = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    v1_database(db, 3)
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        import ranker.migrations as mg
        import ranker.store as st

        def m005_run_owner(c):
            c.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
            os.kill(os.getpid(), signal.SIGKILL)
        st.MIGRATIONS[st.MIGRATIONS.index(mg.m005_run_owner)] = m005_run_owner
        st.Store({str(db)!r})
        """)], capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    c = sqlite3.connect(db)
    done = [r[0] for r in c.execute("SELECT name FROM _migrations ORDER BY rowid")]
    columns = [r[1] for r in c.execute("PRAGMA table_info(runs)")]
    c.close()
    assert done == [m.__name__ for m in MIGRATIONS[:4]] and "pid" not in columns
    with Store(db) as s:
        assert s.migrations == [m.__name__ for m in MIGRATIONS] and s.integrity_check() == "ok"
        assert s.get_labels()["2501.00001"].label == 1 and s.get_rankings("2025-01-06")[0].topic == "T1"
    Store(fresh).close()
    assert _schema(db) == _schema(fresh)


@pytest.mark.parametrize("version", [1, 2, 3])
def test_an_old_database_upgrades_to_the_latest_schema_and_keeps_its_data(tmp_path, version):
    db, fresh = tmp_path / "old.sqlite3", tmp_path / "new.sqlite3"
    v1_database(db, version)
    with Store(db) as s:
        assert s.migrations == [m.__name__ for m in MIGRATIONS] and s.schema_version == len(MIGRATIONS)
        assert s.get_scores(["2501.00001"], "m", "h")["2501.00001"].relevance == 8
        if version >= 2:
            assert s.get_rankings("2025-01-06")[0].topic == "T1" and s.get_day_digest("2025-01-06").run_id == 3
        assert s.get_labels() == ({"2501.00001": s.get_labels()["2501.00001"]} if version >= 3 else {})
        s.set_label("2501.00001", -1, "2025-01-06")                # the new tables work
        assert s.get_labels()["2501.00001"].label == -1 and s.integrity_check() == "ok"
        assert s.get_scores(["2501.00001"], "m", "h")["2501.00001"].cached_prompt_tokens == 0   # m004's default
        s.put_score(Score("2501.00002", 6, 5, "c", prompt_tokens=900, cached_prompt_tokens=700), "m", "h")
        assert s.get_scores(["2501.00002"], "m", "h")["2501.00002"].cached_prompt_tokens == 700
    Store(fresh).close()
    assert _schema(db) == _schema(fresh)


def test_an_old_v2_database_is_adopted_by_name_wherever_other_migrations_stand(tmp_path, monkeypatch):
    # another branch's migration merged before the web's: user_version 2 still means m001 + m002_rankings...
    db = tmp_path / "old.sqlite3"
    v1_database(db, 2)
    ran = []

    def m002_other_branch(c):
        ran.append("other")
        c.execute("ALTER TABLE runs ADD COLUMN other_branch INTEGER")

    monkeypatch.setattr("ranker.store.MIGRATIONS", [MIGRATIONS[0], m002_other_branch, *MIGRATIONS[1:]])
    with Store(db) as s:
        assert ran == ["other"] and s.schema_version == len(MIGRATIONS) + 1
        assert set(s.migrations) == {m.__name__ for m in MIGRATIONS} | {"m002_other_branch"}
        assert s.get_rankings("2025-01-06")[0].paper_id == "2501.00001"


def test_a_daily_branch_database_has_its_m002_score_cached_tokens_adopted_as_m004(tmp_path, monkeypatch):
    # the daily branch (#13) shipped m004's change as its m002, before the web's m002/m003 were merged
    db, fresh = tmp_path / "daily.sqlite3", tmp_path / "new.sqlite3"
    m004 = next(m for m in MIGRATIONS if m.__name__ == "m004_score_cached_tokens")

    def m002_score_cached_tokens(c):
        m004(c)

    monkeypatch.setattr("ranker.store.MIGRATIONS", [MIGRATIONS[0], m002_score_cached_tokens])
    with Store(db) as s:
        with s.transaction() as c:                  # as that branch's code wrote it (today's adds text_hash)
            c.execute("INSERT INTO scores (paper_id, model, prompt_hash, relevance, novelty, comment, prompt_tokens, "
                      "created_at, cached_prompt_tokens) VALUES ('2501.00001', 'm', 'h', 8, 7, 'ok', 900, 0, 640)")
        assert s.migrations == ["m001_initial", "m002_score_cached_tokens"] and s.schema_version == 2
    monkeypatch.undo()
    with Store(db) as s:                            # the column is not added twice; the web's tables are built
        assert set(s.migrations) == {m.__name__ for m in MIGRATIONS} and s.schema_version == len(MIGRATIONS)
        assert s.get_scores(["2501.00001"], "m", "h")["2501.00001"].cached_prompt_tokens == 640
        assert s.get_rankings("2025-01-06") == [] and s.integrity_check() == "ok"
    with Store(db) as s:                            # and reopening migrates nothing more
        assert s.schema_version == len(MIGRATIONS)
    Store(fresh).close()
    assert _schema(db) == _schema(fresh)


def test_a_safety_branch_database_has_its_m002_run_owner_adopted_as_m005(tmp_path, monkeypatch):
    # the safety branch (#11) shipped m005's change as its m002; its running rows were marked interrupted
    db, fresh = tmp_path / "safety.sqlite3", tmp_path / "new.sqlite3"
    m005 = next(m for m in MIGRATIONS if m.__name__ == "m005_run_owner")

    def m002_run_owner(c):
        m005(c)

    monkeypatch.setattr("ranker.store.MIGRATIONS", [MIGRATIONS[0], m002_run_owner])
    Store(db).close()
    monkeypatch.undo()
    with Store(db) as s:                            # the columns are not added twice; the others are built
        assert set(s.migrations) == {m.__name__ for m in MIGRATIONS} and s.integrity_check() == "ok"
    Store(fresh).close()
    assert _schema(db) == _schema(fresh)


def test_an_old_database_newer_than_any_known_version_is_refused(tmp_path):
    db = tmp_path / "old.sqlite3"
    v1_database(db, 3)
    c = sqlite3.connect(db)
    c.execute("PRAGMA user_version = 4")
    c.close()
    with pytest.raises(InputError, match="newer than this ranker; upgrade ranker to open it$"):
        Store(db)


def test_a_database_with_unknown_migrations_is_refused(tmp_path):
    db = tmp_path / "r.sqlite3"
    Store(db).close()
    c = sqlite3.connect(db)
    c.execute("INSERT INTO _migrations VALUES ('m777_from_the_future', 0)")
    c.commit()
    c.close()
    with pytest.raises(InputError, match="m777_from_the_future.*made by a newer ranker; upgrade ranker to open it$"):
        Store(db)


def test_a_store_open_while_a_newer_ranker_adds_columns_goes_on_writing(tmp_path, monkeypatch):
    """A command that holds its store for long (a day's run scoring for an hour from cron, a backfill) while a
    newer ranker, installed meanwhile, opens the same home: that one's migrations add columns, as m004, m005 and
    m006 did. Every write of the running one names its columns, so it goes on (the new columns take their
    defaults); one listing its values in the table's order failed "table failures has 8 columns but 7 values
    were supplied", the run's end (its rankings, its digest record) and a label lost to it."""
    from ranker.records import DayDigest, Label, Ranked
    db = tmp_path / "r.sqlite3"
    older = Store(db)
    tables = ("failures", "embeddings", "rankings", "day_digests", "labels")

    def m900_newer_columns(c):
        for t in tables:
            c.execute(f"ALTER TABLE {t} ADD COLUMN newer TEXT DEFAULT 'x'")
    monkeypatch.setattr("ranker.store.MIGRATIONS", [*MIGRATIONS, m900_newer_columns])
    Store(db).close()                                 # the newer ranker's open
    monkeypatch.undo()
    p = paper("2505.00001")
    older.put_failure(Failure("2505.00001", "no JSON", "raw"), "m", "h", run_id=1)
    older.put_embeddings([("2505.00001", "th", np.ones(4, dtype=np.float32) / 2)], "e")
    older.put_rankings("2025-05-15", [Ranked(p, 0.5, kept=True, topic="t")], embedder="e", run_id=1,
                       digest=DayDigest("2025-05-15", "m", "h", 8, 7, run_id=1))
    before = older.get_rankings("2025-05-15")
    older.restore_rankings("2025-05-15", before)
    older.put_day_digest(DayDigest("2025-05-15", "m", "h", 9, 7, run_id=2))
    assert older.set_label("2505.00001", 1, "2025-05-15") == 1
    assert older.import_labels([Label("2505.00002", -1, "2025-05-15", 1.0)])["added"] == 1
    assert [f.reason for f in older.get_failures("m", "h")] == ["no JSON"]
    assert older.get_rankings("2025-05-15") == before and older.get_day_digest("2025-05-15").min_relevance == 9
    assert {k: v.label for k, v in older.get_labels().items()} == {"2505.00001": 1, "2505.00002": -1}
    for t in tables:
        assert older.conn.execute(f"SELECT DISTINCT newer FROM {t}").fetchall() == [("x",)], t
    older.close()


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


def _put_refused(db):
    """What a score put into `db` ends with while another connection holds its write lock (a 0.2 s wait)."""
    from ranker.errors import StoreError
    with Store(db, busy_timeout=0.2) as s:
        with pytest.raises(StoreError) as e:
            s.put_score(Score("1", 8, 7, "x"), "m", "h")
    return e.value


def test_a_locked_database_names_itself_and_the_run_holding_it(tmp_path):
    """Another process records a `ranker score` run and holds a write transaction open."""
    import subprocess
    import sys
    import textwrap
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
        said = _put_refused(db)                               # opening an up-to-date database takes no lock
    finally:
        holder.kill()
        holder.wait()
    msg = str(said)
    assert msg.startswith(f"{db}: database is locked: ")
    assert f"(probably ranker score, pid {holder.pid}, running since " in msg


def test_a_locked_database_with_no_run_recorded_names_the_commands_that_record_none(tmp_path):
    """`ranker backfill` writes its query vectors into the database without recording a run, but the line for a
    lock no recorded run holds did not name it among the probable holders."""
    db = tmp_path / "r.sqlite3"
    Store(db).close()
    lock = sqlite3.connect(db, isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        said = _put_refused(db)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    said = str(said).split("no ranker run is recorded as running: maybe ")[1]
    assert "(ranker prefilter, eval, calibrate, similar, labels import, serve, backfill)" in said


def test_a_locked_database_names_every_run_recorded_as_running(tmp_path):
    """Two commands recorded as running on one home (a `ranker run` holding the write lock, a `ranker score`
    started later and waiting on it): the "database is locked" line (serve's 503, a command's error) named the
    latest one, the waiting score, as the holder. Which one holds it SQLite does not say: it names both, in one
    line."""
    import json
    import socket
    db = tmp_path / "r.sqlite3"
    Store(db).close()
    run = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    lock = sqlite3.connect(db, isolation_level=None)
    try:
        lock.execute("INSERT INTO runs (kind, started_at, status, params, pid, host) VALUES ('run', ?, 'running', "
                     "?, ?, ?)", (time.time(), json.dumps({"day": "d"}), run.pid, socket.gethostname()))
        lock.execute("INSERT INTO runs (kind, started_at, status, params, pid, host) VALUES ('score', ?, "
                     "'running', '{}', 4242, 'elsewhere.example')", (time.time(),))
        lock.execute("BEGIN IMMEDIATE")                    # the run's write
        said = _put_refused(db)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        run.stdin.close()
        run.wait()
    msg = str(said)
    assert msg.startswith(f"{db}: database is locked: ") and len(msg.splitlines()) == 1
    assert f"(probably one of the runs recorded as running (ranker run, pid {run.pid}, running since " in msg
    assert "; ranker score, pid 4242 on elsewhere.example, running since " in msg
    with Store(db) as s:                                   # (the run's process has ended: it is no one's now)
        with s.transaction() as c:
            c.executemany("INSERT INTO runs (kind, started_at, status, params, pid, host) VALUES ('score', ?, "
                          "'running', '{}', ?, 'elsewhere.example')", [(time.time(), 5000 + i) for i in range(11)])
        said = s.holder()
    assert said.startswith("probably one of the runs recorded as running (ranker score, pid 4242 on elsewhere.example, "
                           "running since ")
    assert said.count("; ranker score, pid ") == 9 and "; and 2 more), or a command that records no run" in said
    assert "pid 5009 " not in said


def test_a_live_run_of_this_machine_is_named_before_other_machines_runs(tmp_path):
    """A shared database where runs of other machines were left marked running (a container that died, started
    again under a new name: their processes cannot be looked at from here, so they count as alive): the
    "database is locked" line named the oldest ten first, and the one run this machine sees alive, recorded
    last, was "and 2 more". Runs of this machine, whose processes are known to live, come first."""
    import json
    import socket
    db = tmp_path / "r.sqlite3"
    run = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        with Store(db) as s:
            with s.transaction() as c:
                c.executemany("INSERT INTO runs (kind, started_at, status, params, pid, host) VALUES ('run', ?, "
                              "'running', '{}', ?, ?)",
                              [(time.time(), 5000 + i, f"box-{i}.example") for i in range(11)])
                c.execute("INSERT INTO runs (kind, started_at, status, params, pid, host) VALUES ('score', ?, "
                          "'running', ?, ?, ?)", (time.time(), json.dumps({}), run.pid, socket.gethostname()))
            said = s.holder()
    finally:
        run.stdin.close()
        run.wait()
    assert said.startswith(f"probably one of the runs recorded as running (ranker score, pid {run.pid}, "
                           "running since "), said
    assert "; ranker run, pid 5000 on box-0.example, running since " in said and "; and 2 more), or " in said


def reached(monkeypatch, opened: str = "", statement: str | None = None) -> threading.Event:
    """An event set once a connection made from now on (to a database named with `opened` in it) starts running
    `statement`, as SQLite's trace of it says, or with no statement, starts compiling its first SELECT, as the
    authorizer SQLite asks then says (before the schema is read, where a reader waits on a writer's lock; the
    trace comes only after that): where the store is, not a guess of how soon it gets there."""
    event = threading.Event()
    connect = sqlite3.connect

    def tracing(database, *args, **kwargs):
        conn = connect(database, *args, **kwargs)
        if opened in str(database):
            if statement is not None:
                conn.set_trace_callback(lambda sql: sql == statement and event.set())
            else:
                conn.set_authorizer(lambda action, *_: (action == sqlite3.SQLITE_SELECT and event.set())
                                    or sqlite3.SQLITE_OK)
        return conn
    monkeypatch.setattr(sqlite3, "connect", tracing)
    return event


def test_a_ctrl_c_while_the_database_is_opened_closes_its_connection(tmp_path, monkeypatch):
    """Ctrl-C while the open waits for another process's write (here the switch of a new database to WAL) ends the
    open; the connection it had made stayed open for as long as the caller held the KeyboardInterrupt."""
    db = tmp_path / "r.sqlite3"
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")                      # another process, writing
    # the Ctrl-C comes once the open tries the switch, which it retries for as long as the write holds the lock
    waiting = reached(monkeypatch, statement="PRAGMA journal_mode=WAL")
    try:
        with ctrl_c_when(waiting), pytest.raises(KeyboardInterrupt) as e:
            Store(db, busy_timeout=120)
    finally:
        other.close()
    assert open_files(db) == [], e.value


def test_a_ctrl_c_while_a_read_only_open_reads_the_schema_closes_its_connection(tmp_path, monkeypatch):
    """A database seen read-only (here through a read-only bind mount) while another process writes to it through
    a writable path: the read-only open waits on the writer's lock reading the schema, and a Ctrl-C there (or a
    failure of its schema-version query) left that connection, and so the file, open for as long as the caller
    held the error (the mount could not be unmounted meanwhile)."""
    if os.geteuid() != 0:
        pytest.skip("a read-only view of a writable folder needs a bind mount (root)")
    home, view = tmp_path / "home", tmp_path / "view"
    home.mkdir()
    view.mkdir()
    Store(home / "r.sqlite3").close()
    # another process (its locks are its own: a connection of this one would keep SQLite from closing any file
    # of the database here while it holds them), writing to a copy made by another tool: readers wait on its lock
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sqlite3, time
        c = sqlite3.connect({str(home / "r.sqlite3")!r}, isolation_level=None)
        c.execute("PRAGMA journal_mode=DELETE")
        c.execute("BEGIN EXCLUSIVE")
        print("holding", flush=True)
        time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline() == "holding\n"
        if subprocess.run(["mount", "--bind", str(home), str(view)], capture_output=True).returncode:
            pytest.skip("bind mounts are not permitted here")
        try:
            subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
            db = view / "r.sqlite3"
            # the Ctrl-C comes once the read-only open starts its query of the schema (SQLite waits there on the
            # lock for its default 5 s, then the file is read as immutable: the interrupt is sent well within that)
            reading = reached(monkeypatch, opened="mode=ro")
            with ctrl_c_when(reading), pytest.raises(KeyboardInterrupt) as e:
                Store(db, busy_timeout=0.2)
            assert open_files(db) == [], e.value
        finally:
            subprocess.run(["umount", "-l", str(view)], check=True)
    finally:
        writer.kill()
        writer.wait()


def test_a_full_disk_names_the_database(tmp_path):
    import os
    from conftest import small_disk
    from ranker.errors import StoreError
    d = tmp_path / "tiny"
    with small_disk(d, "256k"):
        with Store(d / "r.sqlite3") as s:
            with pytest.raises(StoreError) as e:
                s.put_embeddings(((f"p{i}", "h", np.ones(384, dtype=np.float32)) for i in range(2000)), "minilm")
            assert str(e.value).startswith(f"{d / 'r.sqlite3'}: cannot write: No space left on device")
            assert s.count_embeddings("minilm") == 0 and s.integrity_check() == "ok"
    assert not os.path.ismount(d)


def test_a_database_on_a_full_disk_is_read_and_a_write_says_the_disk_is_full(tmp_path):
    """A disk that filled up after the database was made: opening it (a WAL database makes its index, -shm, beside
    it) failed with "cannot open: disk I/O error", for every command, so not even `labels export` could take the
    labels off to another disk. It opens for reading, and a write says why it cannot be made."""
    import os
    from conftest import small_disk
    from ranker.errors import StoreError
    d = tmp_path / "tiny"
    with small_disk(d, "1m"):
        db = d / "r.sqlite3"
        with Store(db) as s:
            s.add_papers([paper("2505.00001"), paper("2505.00002")])
            s.set_label("2505.00001", 1)
        before = db.read_bytes()
        try:
            with open(d / "filler", "wb") as f:
                while True:
                    f.write(b"\0" * 4096)
                    f.flush()
        except OSError:
            pass
        with Store(db) as s:
            assert s.count_papers() == 2 and set(s.get_labels()) == {"2505.00001"}
            with pytest.raises(StoreError) as e:
                s.set_label("2505.00002", -1)
            assert str(e.value) == f"{db}: read-only (its disk is full; free some space): cannot write to it"
        assert db.read_bytes() == before
        os.unlink(d / "filler")
        with Store(db) as s:                            # room again: written as before
            s.set_label("2505.00002", -1)
            assert s.read_only is None and set(s.get_labels()) == {"2505.00001", "2505.00002"}
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


def _open_after(barrier, path, errors):
    from ranker.store import Store
    barrier.wait()
    try:
        with Store(path) as s:
            s.conn.execute("SELECT count(*) FROM _migrations").fetchone()
    except Exception as e:      # reported to the parent, which fails the test with it
        errors.put(f"{type(e).__name__}: {e}")


def test_processes_opening_one_new_database_at_once_all_get_it(tmp_path):
    """Several commands started together on a fresh home (a cron job and a web server, say) each create the
    database: none may fail with "database is locked" or a migration applied twice."""
    import multiprocessing as mp
    ctx = mp.get_context("fork")
    errors = ctx.Queue()
    for trial in range(8):
        path = tmp_path / f"new-{trial}.sqlite3"
        barrier = ctx.Barrier(4)
        procs = [ctx.Process(target=_open_after, args=(barrier, path, errors)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(60)
        assert [p.exitcode for p in procs] == [0] * 4
        found = []
        while not errors.empty():
            found.append(errors.get())
        assert not found, f"trial {trial}: {found}"
        with Store(path) as s:
            names = [r[0] for r in s.conn.execute("SELECT name FROM _migrations")]
            assert len(names) == len(set(names)) == len(MIGRATIONS)
            assert s.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
            assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_failing_block_is_the_error_reported_even_when_its_run_cannot_be_recorded(tmp_path, monkeypatch):
    from ranker.errors import StoreError

    def no_transaction():
        raise StoreError("database is locked")
    with Store(tmp_path / "r.sqlite3") as s:
        with pytest.raises(ValueError, match="the block's own error"):
            with s.recording("fetch", {}) as rec:
                monkeypatch.setattr(s, "transaction", no_transaction)
                raise ValueError("the block's own error")
        monkeypatch.undo()
        assert s.run_status(rec.id) == "running"               # marked interrupted by the next open here
        with pytest.raises(StoreError, match="locked"):       # a block that succeeded but whose end cannot be
            with s.recording("fetch", {}):                     # recorded: that is the error
                monkeypatch.setattr(s, "transaction", no_transaction)
        monkeypatch.undo()


@contextmanager
def tmpfs_home(tmp_path):
    """A folder on a tmpfs of its own (unmounted after the block), and a function that remounts it read-only:
    read-only media, where SQLite can create no file beside a database. Skipped where mounting is not
    permitted."""
    home = tmp_path / "media"
    home.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(home)],
                                           capture_output=True).returncode:
        pytest.skip("read-only media need a tmpfs mount (root)")
    try:
        yield home, lambda: subprocess.run(["mount", "-o", "remount,ro", str(home)], check=True)
    finally:
        subprocess.run(["umount", str(home)], check=True)


def killed_after_writing(db, code: str) -> None:
    """Run `code` (with `s`, a Store of `db`) in a real process that is then killed (kill -9): what it
    committed is left in the database's write-ahead log (-wal), not yet in the file."""
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal
        from ranker.records import Paper
        from ranker.store import Store
        s = Store({str(db)!r})
        """) + textwrap.dedent(code) + "\nos.kill(os.getpid(), signal.SIGKILL)\n"], capture_output=True, text=True)
    assert child.returncode == -9, child.stderr


def test_read_only_media_read_the_writes_a_killed_process_left_in_the_wal(tmp_path):
    # A copy of a home taken while a run was writing (or after it was killed) holds its last writes in the
    # -wal only; a copy often leaves out the -shm index (SQLite rebuilds it). On read-only media SQLite cannot
    # rebuild it beside the file: the store opened the database as immutable, which reads the file alone, and
    # showed it as it was before those writes, saying nothing.
    with tmpfs_home(tmp_path) as (home, make_read_only):
        db = home / "ranker.sqlite3"
        with Store(db) as s:
            s.add_papers([paper("2505.00001")])
        killed_after_writing(db, """
            s.add_papers([Paper(id="2505.00002", title="Second", abstract="A", date="2025-05-16")])
            s.set_label("2505.00002", 1, "2025-05-16")
            """)
        assert (home / "ranker.sqlite3-wal").stat().st_size > 0
        (home / "ranker.sqlite3-shm").unlink()
        make_read_only()
        with Store(db) as s:
            assert s.read_only == "its file system is mounted read-only"
            assert s.count_papers() == 2 and s.get_paper("2505.00002").title == "Second"
            assert s.get_labels()["2505.00002"].label == 1 and s.search_papers("second") == ["2505.00002"]
            assert s.days() == ["2025-05-15", "2025-05-16"]
        assert sorted(p.name for p in home.iterdir()) == ["ranker.sqlite3", "ranker.sqlite3-wal"]


@pytest.mark.parametrize("made_by", ["newer", "legacy"])
def test_read_only_media_say_which_ranker_a_database_needs(tmp_path, made_by):
    # On read-only media a newer ranker's database was said to need "an upgrade this ranker cannot write; open
    # it once where it is writable" (where it is then refused as newer), and a database from before named
    # migrations was "not a ranker database yet".
    with tmpfs_home(tmp_path) as (home, make_read_only):
        db = home / "ranker.sqlite3"
        if made_by == "newer":
            Store(db).close()
            c = sqlite3.connect(db)
            c.execute("INSERT INTO _migrations VALUES ('m777_from_the_future', 0)")
            c.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
            c.commit()
            c.close()
            with pytest.raises(InputError) as writable:
                Store(db)
        else:
            v1_database(db, 3)
        make_read_only()
        with pytest.raises(InputError) as e:
            Store(db)
    msg = str(e.value)
    assert msg.startswith(f"{db}: ") and "\n" not in msg
    if made_by == "newer":
        assert "m777_from_the_future" in msg and "schema needs an upgrade" not in msg
        assert msg.endswith("it was made by a newer ranker; upgrade ranker to open it")
        assert str(writable.value).endswith("; upgrade ranker to open it")
    else:
        assert msg == (f"{db}: read-only (its file system is mounted read-only) and its schema needs an upgrade "
                       "this ranker cannot write; open it once where it is writable")


def test_a_store_before_m007_on_read_only_media_is_read_and_upgraded_once_writable(tmp_path, monkeypatch):
    # A store the ranker before m007 left (m007 only marks an unfolded word index for refolding), copied to a
    # read-only share, was refused ("its schema needs an upgrade this ranker cannot write; open it once where it
    # is writable"), so `ranker serve`, `similar` or `labels list` could not read it there. It reads, nothing
    # written; word search scans the papers (its index, unfolded, would miss "Lukasz"); a writable open runs m007.
    from conftest import ranker
    with tmpfs_home(tmp_path) as (home, make_read_only):
        db = home / "ranker.sqlite3"
        before_m007 = [m.__name__ for m in MIGRATIONS].index("m007_word_index_folded")
        monkeypatch.setattr("ranker.store.MIGRATIONS", MIGRATIONS[:before_m007])
        with Store(db) as s:
            s.add_papers([paper("2505.00001"), Paper(id="2505.00002", title="Łukasz on attention", abstract="A",
                                                     date="2025-05-15")])
            s.set_label("2505.00001", 1, "2025-05-15")
            with s.transaction() as c:                     # the index as that ranker built it: not folded
                c.execute("CREATE VIRTUAL TABLE papers_fts USING fts5(id, title, abstract, "
                          "tokenize='unicode61 remove_diacritics 2')")
                c.execute("INSERT INTO papers_fts (id, title, abstract) SELECT id, title, abstract FROM papers")
        monkeypatch.undo()
        before = {p.name: p.read_bytes() for p in home.iterdir()}
        make_read_only()
        with Store(db) as s:
            assert s.read_only == "its file system is mounted read-only"
            # (m008, which only moves far-future label times back, is gone without too)
            assert s.unmigrated == {m.__name__ for m in MIGRATIONS[before_m007:]}
            assert s.migrations == [m.__name__ for m in MIGRATIONS[:before_m007]]
            assert s.get_paper("2505.00002").title == "Łukasz on attention" and s.get_labels()["2505.00001"].label == 1
            assert s.search_papers("Lukasz") == ["2505.00002"] and s.search_papers("T 2505.00001") == ["2505.00001"]
        r = ranker("labels", "list", "--db", db)
        assert r.returncode == 0 and r.stdout.startswith("2505.00001\tup"), r.stderr
        assert {p.name: p.read_bytes() for p in home.iterdir()} == before
        subprocess.run(["mount", "-o", "remount,rw", str(home)], check=True)
        with Store(db) as s:
            assert not s.read_only and not s.unmigrated and s.migrations == [m.__name__ for m in MIGRATIONS]
            assert s.search_papers("Lukasz") == ["2505.00002"] and s.integrity_check() == "ok"
            assert s._fts_tables() == {"papers_fts"}           # refolded by that search, the mark dropped


def test_word_search_works_on_a_read_only_database(read_only_home):
    # the word index is built by the first search; a database that cannot be written searches by LIKE instead
    with Store(read_only_home / "ranker.sqlite3") as s:
        assert s.read_only and s.search_papers("T 2505") == ["2505.00001"]


def test_word_search_works_while_another_process_writes(tmp_path):
    # a long write elsewhere (a daily run, an import) must not turn the web page's search into an error
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        s.add_papers([paper("2505.00001")])
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with Store(db, busy_timeout=0.2) as s:
            assert s.search_papers("T 2505") == ["2505.00001"]
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Store(db) as s:                                 # and the index is built once the database is free
        assert s.search_papers("T 2505") == ["2505.00001"] and s._fts_state()[0]


def test_the_word_index_holds_the_text_the_store_keeps(tmp_path):
    # The store keeps a title without control characters (a bidi override, a NUL); a paper stored after the word
    # index was built was indexed with them, so its words were split where they stood ("Dif<U+202E>fusion":
    # "dif", "fusion") and a search for the word the page shows found nothing, though an index built from the
    # stored papers finds it.
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([paper("2505.00001")])
        assert s.search_papers("T") == ["2505.00001"]                   # the index is built
        s.add_papers([Paper(id="2505.00002", title="Dif\u202efusion of gr\x00aphs", abstract="Sam\x07pling",
                            date="2025-05-15")])
        assert s.get_paper("2505.00002").title == "Diffusion of graphs"
        assert s.search_papers("diffusion graphs") == ["2505.00002"] and s.search_papers("sampling") == ["2505.00002"]


def test_papers_stored_while_another_process_builds_the_word_index_are_searchable(tmp_path):
    # an import that waits for the lock while a search builds the word index must then keep the index current
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        s.add_papers([paper("2505.00001")])
    holding = threading.Event()

    def build():                                          # what Store._ensure_fts does, in another connection
        with Store(db) as builder:
            builder.conn.execute("BEGIN IMMEDIATE")
            holding.set()
            time.sleep(0.5)                               # the other writer has checked and is waiting now
            builder.conn.execute("CREATE VIRTUAL TABLE papers_fts USING fts5(id, title, abstract, "
                                 "tokenize='unicode61 remove_diacritics 2')")
            builder.conn.execute("INSERT INTO papers_fts (id, title, abstract) SELECT id, title, abstract FROM papers")
            builder.conn.execute("COMMIT")

    t = threading.Thread(target=build)
    t.start()
    assert holding.wait(10)
    try:
        with Store(db) as s:
            s.add_papers([paper("2505.00002")])
            assert s._fts_state()[0] and s.search_papers("00002") == ["2505.00002"]
    finally:
        t.join()


def test_a_database_of_another_program_is_refused_and_left_as_it_was(tmp_path):
    from ranker.errors import StoreError
    db = tmp_path / "places.sqlite"
    c = sqlite3.connect(db)
    c.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url TEXT)")
    c.execute("INSERT INTO moz_places VALUES (1, 'https://arxiv.org')")
    c.commit()
    c.close()
    with pytest.raises(StoreError) as e:
        Store(db)
    assert str(e.value).startswith(f"{db}: not a ranker database") and "moz_places" in str(e.value)
    c = sqlite3.connect(db)
    assert [r[0] for r in c.execute("SELECT name FROM sqlite_master")] == ["moz_places"]
    assert c.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    c.close()


def test_a_stream_of_papers_takes_the_write_lock_only_once_its_first_paper_is_there(tmp_path):
    # a day fetched from the arXiv API arrives after minutes of paging and retries: meanwhile another process
    # (a label from the web page, an import) must be able to write
    db = tmp_path / "r.sqlite3"
    with Store(db) as s, Store(db, busy_timeout=0.2) as other:
        def slow_source():
            other.set_label("2505.00009", 1)               # written while the source has given nothing yet
            yield paper("2505.00001")
            yield paper("2505.00002")
        assert s.add_papers(slow_source()).new == 2
        assert s.add_papers([]).new == 0

        def broken_source():
            yield paper("2505.00003")
            raise RuntimeError("the connection dropped")
        with pytest.raises(RuntimeError):                  # a source failing mid-way still stores nothing
            s.add_papers(broken_source())
        assert s.count_papers() == 2 and other.get_labels()["2505.00009"].label == 1


def test_a_missing_database_is_not_created_by_the_commands_that_only_read(tmp_path):
    """A mistyped --db given to a command that only reads the store (site, similar, index status / rebuild,
    labels export / list) leaves no new database file, nor its folder, behind (it used to create both: `--db
    /tmp/nodir/x.sqlite3` made /tmp/nodir), and is refused (status 1: an export for a backup must not pass a typo
    for "no labels", nor a cron job's site build for "no days")."""
    from conftest import ranker
    db = tmp_path / "typo" / "ranker.sqlite3"
    for args in (("site", "--out", tmp_path / "site"), ("similar", "2505.00001"), ("index", "status"),
                 ("index", "rebuild"), ("labels", "export", tmp_path / "labels.jsonl"), ("labels", "list")):
        r = ranker(*args, "--db", db)
        assert r.returncode == 1, (args, r.stderr)
        assert str(db) in r.stdout + r.stderr, (args, r.stdout, r.stderr)
        assert not db.parent.exists(), args
    assert not (tmp_path / "site").exists()
    # a store that is there is opened as before (an import makes none at a named path: test_labels.py)
    Store(db).close()
    (tmp_path / "labels.jsonl").write_text('{"id": "2505.00001", "label": 1, "time": "2025-05-15T10:00:00Z"}\n')
    r = ranker("labels", "import", tmp_path / "labels.jsonl", "--db", db)
    assert r.returncode == 0, r.stderr
    r = ranker("labels", "list", "--db", db)
    assert r.returncode == 0 and "2505.00001" in r.stdout, r.stderr


def test_a_link_to_a_missing_database_is_not_followed_to_make_one_by_a_reader(tmp_path):
    """A database named through a symlink whose file has gone (moved, a volume not mounted) is missing to the
    commands that only read, as an absent path is: SQLite, opening the link, made an empty database where it
    points (and any folder the store makes first)."""
    gone = tmp_path / "volume" / "ranker.sqlite3"
    link = tmp_path / "ranker.sqlite3"
    link.symlink_to(gone)
    with Store(link, create=False) as s:
        assert s.count_papers() == 0
    assert not gone.exists() and not gone.parent.exists() and link.is_symlink()


def test_every_reader_of_running_rows_tells_the_runs_apart_alike(tmp_path):
    """holder (the "database is locked" line), live_runs (a second `ranker run` of a day) and the marking of dead
    runs at each open go by one rule: this process's own run is no other process's; a run of another host is
    under way (its pid cannot be looked at here) and never marked dead from here; a dead process's run is
    marked interrupted and held by no one."""
    import json
    import socket
    db = tmp_path / "r.sqlite3"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    with Store(db) as s:
        with s.transaction() as c:
            for pid, host in ((int(dead.stdout), socket.gethostname()), (4242, "elsewhere.example")):
                c.execute("INSERT INTO runs (kind, started_at, status, params, pid, host) VALUES ('run', ?, "
                          "'running', ?, ?, ?)", (time.time() - 60, json.dumps({"day": "d"}), pid, host))
    with Store(db) as s, s.recording("run", {"day": "d"}) as rec:
        assert [s.run_status(i) for i in (1, 2)] == ["interrupted", "running"]
        assert [(r["id"], r["pid"], r["host"]) for r in s.live_runs("run", before=rec.id + 1, day="d")] == [
            (2, 4242, "elsewhere.example")]
        assert s.holder().startswith("probably ranker run, pid 4242 on elsewhere.example, running since ")
        with s.transaction() as c:
            c.execute("UPDATE runs SET status='ok' WHERE id=2")
        assert s.live_runs("run", before=rec.id + 1, day="d") == [] and s.holder() is None


def test_the_last_run_of_a_day_is_its_own_latest_whatever_its_summary(tmp_path):
    """last_run (a day page's "the latest run of this day failed"): the day's latest run of the kind, not another
    day's whose settings name the day, nor another kind's; a summary that does not read loses its error only: it
    made the day's run before it the latest."""
    with Store(tmp_path / "r.sqlite3") as s:
        for kind, params, fails in (("run", {"day": "2025-05-15"}, True), ("run", {"day": "2025-05-15"}, True),
                                    ("run", {"day": "2025-05-16", "settings": {"day": "2025-05-15"}}, False),
                                    ("score", {"day": "2025-05-15"}, False)):
            try:
                with s.recording(kind, params):
                    if fails:
                        raise RuntimeError("the scoring server went away")
            except RuntimeError:
                pass
        assert s.last_run("run", day="2025-05-15")["id"] == 2
        assert s.last_run("run", day="2025-05-15")["error"] == "the scoring server went away"
        assert s.last_run("run", day="2025-05-16")["id"] == 3 and s.last_run("run", day="2025-05-17") is None
        with s.transaction() as c:
            c.execute("UPDATE runs SET summary='{not json' WHERE id=2")
        assert s.last_run("run", day="2025-05-15") == {**s.last_run("run", day="2025-05-15"), "id": 2,
                                                        "status": "failed", "error": ""}


def test_the_days_are_read_a_lookup_a_day_not_a_row_a_paper(tmp_path):
    """store.days() (every day page's previous / next links and the labels page of `ranker serve`, each request)
    read every row of paper_days and rankings: a year's 73,000 papers twice a page, about 10 ms a call on a
    synthetic store of 73,000 papers over 250 days (about 1 ms now); the year's day page went from 27 to 23 ms, its
    labels page from 14 to 12 (README, bench_year.py). It steps the day indexes from one day to the next instead:
    the same days, and as much work for 3 days of 2,000 papers as for 3 days of 20. Counted in SQLite's
    virtual-machine steps, not timed."""
    from ranker.records import Ranked

    def steps(n: int) -> tuple[list[str], int]:
        with Store(tmp_path / f"s{n}.sqlite3") as s:
            for day in ("2025-05-14", "2025-05-15", "2025-05-16"):
                papers = [paper(f"{day[-2:]}{i:05d}", day=day) for i in range(n)]
                s.add_papers(papers)
                s.put_rankings(day, [Ranked(p, 0.5, kept=True, topic="t") for p in papers[:n // 2]])
            count = [0]

            def tick() -> int:
                count[0] += 1
                return 0
            s.conn.set_progress_handler(tick, 10)
            days = s.days()
            s.conn.set_progress_handler(None, 10)
            return days, count[0]
    small, big = steps(20), steps(2000)
    assert small[0] == big[0] == ["2025-05-14", "2025-05-15", "2025-05-16"]
    assert big[1] <= 2 * small[1] + 10, (small[1], big[1])


def test_a_file_system_reporting_no_room_is_not_judged_full_without_cause(tmp_path, monkeypatch):
    """Disk full was judged from statvfs's free space alone: a FUSE or network file system that reports 0 blocks
    (nothing known) made any disk I/O error 'disk is full', and a database read-only for another reason was said
    to be on a full disk whenever only root-reserved blocks were left."""
    from types import SimpleNamespace
    db = tmp_path / "r.sqlite3"
    with Store(db) as s:
        s.add_papers([paper("2505.00001")])
    with Store(db) as s:
        nothing = SimpleNamespace(f_bavail=0, f_frsize=4096, f_blocks=0, f_flag=0)
        monkeypatch.setattr(os, "statvfs", lambda p: nothing)
        assert not s._no_space(sqlite3.OperationalError("disk I/O error"))
        reserved = SimpleNamespace(f_bavail=0, f_frsize=4096, f_blocks=1000, f_flag=0)
        monkeypatch.setattr(os, "statvfs", lambda p: reserved)
        assert s._no_space(sqlite3.OperationalError("disk I/O error"))
        # read-only for a reason other than room (here: none said by the open): not called a full disk
        assert "disk is full" not in s._why_read_only()


def test_the_same_version_read_again_refreshes_its_text_and_the_same_day_is_not_a_reupload(tmp_path):
    """Only an older version keeps the newer one's text; the same version read again (a corrected abstract)
    replaces it. A paper read again on the day it was first seen is not 'seen before'."""
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([paper("2506.00001", version=2)])
        fixed = paper("2506.00001", version=2)
        fixed.title = "Fixed title"
        again = s.add_papers([fixed])
        assert s.get_paper("2506.00001").title == "Fixed title"
        assert again.seen_before == {}
        later = s.add_papers([paper("2506.00001", version=2, day="2025-05-16")])
        assert later.seen_before == {"2506.00001": "2025-05-15"}


def test_a_label_changed_elsewhere_since_the_page_was_shown_is_not_overwritten(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        s.set_label("2506.00001", 1)
        assert s.set_label("2506.00001", -1, expected=0) == 1           # the page showed no label: stale
        assert s.get_labels()["2506.00001"].label == 1
        assert s.set_label("2506.00001", -1, expected=1) == -1
