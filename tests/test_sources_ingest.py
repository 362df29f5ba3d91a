"""ingest(): one store transaction plus an atomic output file; a failing reader leaves both as they were."""
from __future__ import annotations

import json

import pytest

from ranker.errors import InputError
from ranker.records import Paper
from ranker.sources.ingest import ingest, summary_line
from ranker.store import Store


def paper(i: int, day: str, typ: str = "new") -> Paper:
    return Paper(id=f"2501.{i:05d}", title=f"Paper {i}", abstract="Text.", authors=["A B"], categories=["cs.LG"],
                 primary_category="cs.LG", date=day, announce_type=typ, version=1)


def test_ingest_stores_writes_and_marks_repeats(tmp_path):
    with Store(tmp_path / "r.sqlite3") as store:
        res = ingest([paper(1, "2025-01-06"), paper(2, "2025-01-06", "cross")], tmp_path / "a.jsonl", store)
        assert (res.written, res.stored_new, res.seen_before) == (2, 2, {})
        res = ingest([paper(2, "2025-01-07", "cross"), paper(3, "2025-01-07")], tmp_path / "b.jsonl", store)
        assert res.seen_before == {"2501.00002": "2025-01-06"} and store.count_papers() == 3
    rows = [json.loads(x) for x in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert rows[0]["first_seen"] == "2025-01-06" and "first_seen" not in rows[1]
    assert summary_line(res) == (f"2 papers (1 new, 1 cross) for 2025-01-07 -> {tmp_path / 'b.jsonl'}; "
                                 "1 seen on an earlier day")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_a_reader_failing_half_way_changes_nothing(tmp_path, monkeypatch):
    """A source read in less than ingest.HOLD (a day's feed) is one transaction: failing half-way stores none
    of it. HOLD is set out of reach here: a pause of over 0.5 s between two papers on a loaded machine (CI)
    committed the first one, and the test failed for the machine's load, not for the code."""
    monkeypatch.setattr("ranker.sources.ingest.HOLD", 3600.0)
    out = tmp_path / "day.jsonl"
    out.write_text("previous\n")
    with Store(tmp_path / "r.sqlite3") as store:
        store.add_papers([paper(1, "2025-01-06")])

        def reader():
            yield paper(2, "2025-01-07")
            yield paper(3, "2025-01-07")
            raise InputError("not well-formed", where="feed.xml:120")

        with pytest.raises(InputError, match="feed.xml:120"):
            ingest(reader(), out, store)
        assert store.count_papers() == 1 and store.get_paper("2501.00002") is None
    assert out.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_a_reader_failing_after_a_part_was_committed_says_how_many_papers_are_stored(tmp_path):
    """A source read for longer than ingest.HOLD is committed in parts: one failing after a part was committed (a
    snapshot cut short, a feed gone bad) said only why it failed, and the papers stored, their days part-filled,
    were taken for none stored (as before, when it was one transaction)."""
    import time

    from ranker.sources.ingest import HOLD
    out = tmp_path / "snap.jsonl"
    with Store(tmp_path / "r.sqlite3") as store:
        def reader():
            yield paper(2, "2025-01-07")
            time.sleep(HOLD + 0.1)
            yield paper(3, "2025-01-07")             # committed with paper 2: the transaction held HOLD seconds
            yield paper(4, "2025-01-08")
            raise InputError("Compressed file ended before the end-of-stream marker was reached",
                             where="snap.json.gz")

        with pytest.raises(InputError) as e:
            ingest(reader(), out, store)
        assert str(e.value) == ("snap.json.gz: Compressed file ended before the end-of-stream marker was reached "
                                "(2 of the 3 papers read before it are stored)")
        assert store.count_papers() == 2 and store.get_paper("2501.00004") is None
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
