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
