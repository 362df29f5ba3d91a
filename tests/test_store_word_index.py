"""The word-search index (papers_fts) that the first search builds, while other processes write: the build takes
the write lock a chunk of papers at a time, so they get it between chunks; what they write meanwhile is searchable
once, with its new text; a build killed mid-way is finished by the next search."""
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from ranker.records import Paper
from ranker.store import Store

N = 20_000
# abstracts of arXiv's length and variety (160 words of about 19,000), so that one transaction over N papers takes
# more than a second, as it did
WORDS = [a + b + c + d for a in ("lin", "gra", "dif", "spa", "tok", "emb", "net", "mod", "opt", "ker", "sam", "vec")
         for b in ("ea", "o", "u", "ie", "a", "or", "ul", "an", "ex", "im")
         for c in ("r", "ph", "sion", "rse", "en", "ding", "m", "tes", "al", "ics")
         for d in ("", "s", "ed", "ing", "ly", "ion", "al", "er", "ic", "ist", "ize", "ure", "ent", "ive", "ous", "ness")]


def pid(i: int) -> str:
    return f"2501.{i:05d}"


def stored(db, n: int = N) -> None:
    """n papers, paper i (rowid i + 1) titled with its own word w<i>."""
    rnd = random.Random(0)
    with Store(db) as s:
        s.add_papers(Paper(id=pid(i), title=f"w{i:05d} graphs", abstract=" ".join(rnd.choices(WORDS, k=160)),
                           date="2025-01-06") for i in range(n))


def building(db, chunk: int, held: int = 0, killed_in: int = 0) -> subprocess.Popen:
    """A real process whose first search builds the index, `chunk` papers a transaction. It stops in the pause
    after each of its first `held` chunks (their transaction committed, the write lock let go), says "between
    chunks" and goes on at a line on its stdin; with `killed_in`, it stops as chunk `killed_in` commits (its papers
    copied, the lock held), says "committing", and waits there to be killed: where the build is, as it says, not
    a guess of how far it got by a timer that a loaded machine stretches."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        import ranker.store as st
        st.FTS_BUILD_CHUNK = {chunk}
        held, killed_in, chunks, pause = {held}, {killed_in}, 0, time.sleep

        def between_chunks(seconds):
            global held
            if held:
                held -= 1
                print("between chunks", flush=True)
                sys.stdin.readline()
            pause(seconds)

        def traced(sql):
            global chunks
            chunks += sql.startswith("INSERT INTO papers_fts_building")
            if sql == "COMMIT" and chunks == killed_in:
                print("committing", flush=True)
                sys.stdin.readline()

        with st.Store({str(db)!r}) as s:
            time.sleep = between_chunks
            s.conn.set_trace_callback(traced)
            print("building", flush=True)
            print(len(s.search_papers("w00001")), flush=True)
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def goes_on(builder: subprocess.Popen) -> None:
    builder.stdin.write("\n")
    builder.stdin.flush()


def look(db, sql: str):
    """One value read by a connection of its own (WAL: it waits for no writer)."""
    c = sqlite3.connect(db)
    try:
        return c.execute(sql).fetchone()[0]
    finally:
        c.close()


def built(db) -> bool:
    return bool(look(db, "SELECT COUNT(*) FROM sqlite_master WHERE name='papers_fts'"))


def copied(db) -> int:
    """How far the unfinished build has got (0 before its first chunk)."""
    if not look(db, "SELECT COUNT(*) FROM sqlite_master WHERE name='papers_fts_building'"):
        return 0
    return look(db, "SELECT COALESCE(MAX(rowid), 0) FROM papers_fts_building")


def test_other_processes_write_between_the_chunks_of_the_first_build_and_their_papers_are_found_once(tmp_path):
    # The first search copied every paper into the index in one write transaction (22 s for 200,000 papers):
    # a daily run or a thumb clicked meanwhile waited that long for the lock, or failed on it.
    db = tmp_path / "r.sqlite3"
    stored(db)
    # another process, started and its store open, writes when told to, with half a second to get the lock: a
    # new paper, and one the build has not copied yet getting new text
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys
        from ranker.errors import StoreError
        from ranker.records import Paper
        from ranker.store import Store
        with Store({str(db)!r}, busy_timeout=0.5) as s:
            print("ready", flush=True)
            sys.stdin.readline()
            try:
                s.add_papers([Paper(id="2502.00001", title="Newcomer graphs", abstract="Added mid-build.",
                                    date="2025-02-03"),
                              Paper(id={pid(N - 1)!r}, title="Lastchanged title", abstract="x", date="2025-01-06")])
            except StoreError as e:
                print(e, flush=True)
            else:
                print("written", flush=True)
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    builder = None
    try:
        assert writer.stdout.readline() == "ready\n"
        # (the writes come in the build's pauses, as it says it is there: half a second to get the lock raced a
        # chunk, which a loaded machine can make longer than that)
        builder = building(db, chunk=500, held=2)
        assert builder.stdout.readline() == "building\n", builder.stderr.read()
        assert builder.stdout.readline() == "between chunks\n", \
            "the build was one transaction: " + builder.stderr.read()
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.stdout.readline() == "written\n"     # (not "database is locked": the chunk let the lock go)
        assert not built(db) and copied(db) == 500        # (the first chunk is committed, the build not finished)
        goes_on(builder)
        assert builder.stdout.readline() == "between chunks\n", builder.stderr.read()
        # and a paper the build has copied already gets new text
        with Store(db, busy_timeout=0.5) as s:
            s.add_papers([Paper(id=pid(0), title="Firstchanged title", abstract="y", date="2025-01-06")])
        assert not built(db) and copied(db) == 1000
        goes_on(builder)
        out, err = builder.communicate(timeout=120)
    finally:
        for p in (writer, builder):
            if p is not None:
                p.kill()
                p.wait()
    assert builder.returncode == 0 and out == "1\n", err
    with Store(db) as s:
        assert s._fts_state()[0] and s.count_papers() == N + 1
        indexed = s.conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM papers_fts").fetchone()
        assert indexed == (N + 1, N + 1)
        assert s.search_papers("newcomer") == ["2502.00001"]
        assert s.search_papers("lastchanged") == [pid(N - 1)] and s.search_papers(f"w{N - 1:05d}") == []
        assert s.search_papers("firstchanged") == [pid(0)] and s.search_papers("w00000") == []
        assert s.search_papers("w12345") == [pid(12345)]
        assert s.conn.execute("SELECT name FROM sqlite_master WHERE name='papers_fts_building'").fetchone() is None


def test_a_first_build_killed_midway_is_not_taken_for_the_index_and_the_next_search_finishes_it(tmp_path):
    # The build's work was one transaction, all lost to a kill; built in chunks, what a killed build leaves must
    # be neither searched as if complete nor left so: the next search goes on from there.
    db = tmp_path / "r.sqlite3"
    stored(db)
    # killed as its fifth chunk commits: four chunks committed, the fifth's papers copied in a transaction that
    # never commits
    builder = building(db, chunk=500, killed_in=5)
    try:
        assert builder.stdout.readline() == "building\n", builder.stderr.read()
        assert builder.stdout.readline() == "committing\n", \
            "the build committed nothing until it was done: a kill mid-way loses it all. " + builder.stderr.read()
        builder.send_signal(signal.SIGKILL)
        builder.wait()
    finally:
        builder.kill()
        builder.wait()
    assert builder.returncode == -9, builder.stderr.read()
    assert not built(db) and copied(db) == 2000, "the killed build committed none of its chunks"
    with Store(db) as s:
        s.add_papers([Paper(id=pid(1), title="Changedafter the kill", abstract="z", date="2025-01-06"),
                      Paper(id="2502.00001", title="Newcomer graphs", abstract="Added after the kill.",
                            date="2025-02-03")])
    # a search that cannot finish the build (another process holds the lock) is answered from the papers
    # themselves, not from the half-built index
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with Store(db, busy_timeout=0.2) as s:
            assert s.search_papers(f"w{N - 1:05d}") == [pid(N - 1)] and not s._fts_state()[0]
    finally:
        other.execute("ROLLBACK")
        other.close()
    with Store(db) as s:
        assert s.search_papers(f"w{N - 1:05d}") == [pid(N - 1)] and s._fts_state()[0]
        indexed = s.conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM papers_fts").fetchone()
        assert indexed == (N + 1, N + 1)
        assert s.search_papers("changedafter") == [pid(1)] and s.search_papers("w00001") == []
        assert s.search_papers("newcomer") == ["2502.00001"] and s.search_papers("w00000") == [pid(0)]


def killed_after_its_first_chunk(db, chunk: int) -> None:
    """A real process whose first search builds the index and is killed (kill -9) in the pause after its first
    chunk: `chunk` papers copied into papers_fts_building, the build unfinished."""
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import os, signal, time
        import ranker.store as st
        st.FTS_BUILD_CHUNK = {chunk}
        time.sleep = lambda seconds: os.kill(os.getpid(), signal.SIGKILL)
        with st.Store({str(db)!r}) as s:
            s.search_papers("w00001")
        """)], capture_output=True, text=True)
    assert child.returncode == -9, child.stderr
    assert not built(db) and copied(db) == chunk


def built_by_an_older_ranker(c: sqlite3.Connection) -> None:
    """What a ranker from before the chunked build does on its first search: papers_fts made and filled in one
    transaction (it knows nothing of papers_fts_building)."""
    c.execute("CREATE VIRTUAL TABLE papers_fts USING fts5(id, title, abstract, "
              "tokenize='unicode61 remove_diacritics 2')")
    c.execute("INSERT INTO papers_fts (id, title, abstract) SELECT id, title, abstract FROM papers")
    c.execute("COMMIT")


def building_table(db) -> bool:
    return bool(look(db, "SELECT COUNT(*) FROM sqlite_master WHERE name='papers_fts_building'"))


def test_a_build_left_unfinished_beside_an_index_an_older_ranker_built_is_dropped_by_the_next_open(tmp_path):
    # An older ranker, run after a build of this one was killed, built papers_fts in one go; the unfinished
    # papers_fts_building beside it was never used again, nor removed: it stayed in the file for good.
    db = tmp_path / "r.sqlite3"
    stored(db, 300)
    killed_after_its_first_chunk(db, 100)
    with Store(db) as s:                                  # an unfinished build alone is kept, to be gone on with
        assert building_table(db) and not s._fts_state()[0]
    older = sqlite3.connect(db, isolation_level=None)
    older.execute("BEGIN IMMEDIATE")
    built_by_an_older_ranker(older)
    older.close()
    assert built(db) and building_table(db)
    with Store(db) as s:
        assert not building_table(db)
        assert s.conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM papers_fts").fetchone() == (300, 300)
        assert s.search_papers("w00299") == [pid(299)] and s.search_papers("w00000") == [pid(0)]
        assert s.integrity_check() == "ok"


def test_a_search_that_waited_while_an_older_ranker_built_the_index_drops_its_own_unfinished_build(tmp_path):
    # A search going on with an unfinished build waits for the lock while an older ranker builds papers_fts in
    # one go: it then searches that index, and its own unfinished build is dropped, not left beside it.
    import threading
    db = tmp_path / "r.sqlite3"
    stored(db, 300)
    killed_after_its_first_chunk(db, 100)
    holding, waiting = threading.Event(), threading.Event()

    def older_ranker():
        c = sqlite3.connect(db, isolation_level=None)
        c.execute("BEGIN IMMEDIATE")
        holding.set()
        waiting.wait(10)                                  # the search has looked and is asking for the lock now
        built_by_an_older_ranker(c)
        c.close()

    with Store(db) as s:
        # (told by the search's own BEGIN, not guessed by a sleep: a slow start of the search on a loaded machine
        # found the index built before it looked, and never came to the path under test)
        s.conn.set_trace_callback(lambda sql: waiting.set() if sql.startswith("BEGIN") else None)
        t = threading.Thread(target=older_ranker)
        t.start()
        try:
            assert holding.wait(10)
            assert s.search_papers("w00299") == [pid(299)]
        finally:
            t.join()
        assert built(db) and not building_table(db)
        assert s.conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM papers_fts").fetchone() == (300, 300)


# A paper whose words hold letters FTS5's unicode61 keeps whole (it removes diacritics only): Ł, ß, Ø, Æ, Đ, þ
KAISER = Paper(id="1706.03762", title="Notes of Łukasz Kaiser on attention", authors=["Łukasz Kaiser"],
               abstract="Taken down in a café on the Straße des 17. Juni, by Ørsted's Æschylus, Đorđe and þorn.",
               date="2025-01-06")
PLAIN = Paper(id="2502.00002", title="Attention in graphs", abstract="Lukas walks down the street.",
              date="2025-01-06")
# each query finds KAISER alone: the name as typed on any keyboard, in any case, the last word also as a prefix
# (quotes and stars are no syntax: words only, as before)
FOLDED = ("Lukasz", "lukasz", "Łukasz", "ŁUKASZ", "łukasz kaiser", "kaiser Łuk", "KAISER luk", '"Lukasz" Kaiser*',
          "strasse", "Straße", "STRASSE", "strasse des", "Orsted", "ørsted", "aeschylus", "Dorde", "thorn")


def test_a_name_is_found_whatever_letters_it_is_typed_in(tmp_path, monkeypatch):
    # Author pins fold "Łukasz" as "Lukasz" and "Straße" as "Strasse" (sources.normalize.unaccented); the word
    # search did not: unicode61's remove_diacritics keeps ł, ß, ø, æ, đ, þ whole, so "Lukasz" found nothing.
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([KAISER])
        for q in FOLDED:                                  # the first builds the index from the papers table
            assert s.search_papers(q) == [KAISER.id], q
        s.add_papers([PLAIN, Paper(id="2502.00003", title="Łódź trams", abstract="Gdańsk.", date="2025-01-07"),
                      KAISER])                            # stored since: by add_papers, a new one and one again
        for q in FOLDED:
            assert s.search_papers(q) == [KAISER.id], q
        assert s.search_papers("lodz gdansk") == s.search_papers("ŁÓDŹ") == ["2502.00003"]   # stored since
        assert set(s.search_papers("lukas")) == {PLAIN.id, KAISER.id} and s.search_papers("lukas walks") == [PLAIN.id]
        assert s.get_paper(KAISER.id) == s.get_papers([KAISER.id])[KAISER.id]
        assert (s.get_paper(KAISER.id).title, s.get_paper(KAISER.id).abstract) == (KAISER.title, KAISER.abstract)
        # without the index (no FTS5, a busy or read-only database), the LIKE scan folds alike
        monkeypatch.setattr(Store, "_ensure_fts", lambda self: False)
        for q in FOLDED:
            assert s.search_papers(q) == [KAISER.id], q
        assert s.search_papers("lodz") == ["2502.00003"]


def test_a_paper_stored_while_a_build_is_unfinished_is_indexed_folded(tmp_path):
    db = tmp_path / "r.sqlite3"
    stored(db, 300)
    killed_after_its_first_chunk(db, 100)
    with Store(db) as s:                                  # a paper the build has copied: its row there anew
        s.add_papers([Paper(id=pid(5), title="Łukasz on Straße", abstract="x", date="2025-01-06")])
        assert s.search_papers("lukasz strasse") == [pid(5)] and s.search_papers("w00005") == []


@pytest.mark.parametrize("left", ["built", "half built"])
def test_an_index_an_older_ranker_built_unfolded_is_refolded_once_by_the_next_search(tmp_path, monkeypatch, left):
    # A store whose index a ranker from before m007 built (or began to build: killed mid-way) holds "łukasz":
    # opened by this one, its search must not read that index as it is ("Lukasz" still found nothing), lose
    # nothing, nor hold the write lock long to fix it (dropping the index took 2 s on 200,000 papers).
    import ranker.store as st
    db = tmp_path / "r.sqlite3"
    with monkeypatch.context() as m:                      # the previous ranker: its migrations, its index
        m.setattr(st, "MIGRATIONS", [f for f in st.MIGRATIONS if f.__name__ != "m007_word_index_folded"])
        stored(db, 300)
        accented = [Paper(id=f"2502.{i:05d}", title=f"Ærø ferries {i}", abstract="From Łódź to Ħal Far.",
                          date="2025-02-03") for i in range(10, 17)]
        with Store(db) as s:
            s.add_papers([KAISER, PLAIN, *accented])
            s.set_label(KAISER.id, 1)
        older = sqlite3.connect(db, isolation_level=None)
        older.execute("BEGIN IMMEDIATE")
        if left == "built":
            built_by_an_older_ranker(older)
            index = "papers_fts"
        else:                                             # its first chunks, up to KAISER, then killed
            older.execute("CREATE VIRTUAL TABLE papers_fts_building USING fts5(id, title, abstract, "
                          "tokenize='unicode61 remove_diacritics 2')")
            older.execute("INSERT INTO papers_fts_building (rowid, id, title, abstract) "
                          "SELECT rowid, id, title, abstract FROM papers WHERE rowid <= 301")
            older.execute("COMMIT")
            index = "papers_fts_building"
        assert older.execute(f"SELECT id FROM {index} WHERE {index} MATCH 'lukasz'").fetchall() == []
        assert older.execute(f"SELECT id FROM {index} WHERE {index} MATCH 'łukasz'").fetchall() == [(KAISER.id,)]
        older.close()
    # in small chunks, to go through several: 100 papers looked at, 3 put in again at most, a transaction
    monkeypatch.setattr(st, "FTS_BUILD_CHUNK", 100)
    monkeypatch.setattr(st, "FTS_REFOLD_CHUNK", 3)
    transactions = []
    with Store(db) as s:
        assert "m007_word_index_folded" in s.migrations and look(db, "SELECT upto FROM papers_fts_refold") == 0
        assert s.count_papers() == 309 and s.get_labels()[KAISER.id].label == 1 and s.integrity_check() == "ok"
        s.conn.set_trace_callback(lambda sql: transactions.append(sql) if sql == "COMMIT" else None)
        assert s.search_papers("Lukasz") == [KAISER.id]
        s.conn.set_trace_callback(None)
        assert not look(db, "SELECT COUNT(*) FROM sqlite_master WHERE name='papers_fts_refold'")
        # (the rest of the build, one chunk; rowids 1-300, a chunk each, have nothing to refold; 301-309 hold 8
        # papers whose text folding changes: 3 transactions)
        assert len(transactions) == (left != "built") + 3 + 3
        for q in FOLDED:
            assert s.search_papers(q) == [KAISER.id], q
        assert sorted(s.search_papers("aero ferries")) == sorted(s.search_papers("lodz hal")) == \
            [a.id for a in accented]
        assert s.conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM papers_fts").fetchone() == (309, 309)
        assert s.search_papers("w00299") == [pid(299)] and s.search_papers("w00000") == [pid(0)]
        assert s.integrity_check() == "ok" and not building_table(db)
    with Store(db) as s:                                  # once: the next open keeps the index as it is
        assert s.migrations[-1] == "m007_word_index_folded" and built(db)
        assert not look(db, "SELECT COUNT(*) FROM sqlite_master WHERE name='papers_fts_refold'")
        assert s.search_papers("lukasz") == [KAISER.id]


def test_papers_stored_again_with_the_same_text_leave_the_index_alone(tmp_path):
    # An import of a backfill again (or a day run again) stores every paper again: each was taken out of the word
    # index by an FTS5 query on its id and put back, 2 to 5 s of write lock a chunk of shards that changed nothing,
    # and a thumb clicked in `ranker serve` meanwhile failed after its 5 s wait.
    db = tmp_path / "r.sqlite3"
    stored(db, 300)
    rnd = random.Random(0)
    again = [Paper(id=pid(i), title=f"w{i:05d} graphs", abstract=" ".join(rnd.choices(WORDS, k=160)),
                   date="2025-01-07") for i in range(300)]
    with Store(db) as s:
        assert s.search_papers("w00007") == [pid(7)]                        # the index is built
        written = []
        s.conn.set_trace_callback(lambda sql: written.append(sql) if sql.startswith(("DELETE FROM papers_fts",
                                                                                      "INSERT INTO papers_fts"))
                                  else None)
        s.add_papers(again[:200] + [Paper(id=pid(200), title="revised title", abstract="new words", date="2025-01-07")])
        s.conn.set_trace_callback(None)
        assert len(written) == 2                                            # the revised paper's row alone
        assert s.paper_days(pid(3)) == ["2025-01-06", "2025-01-07"]         # the rest of the paper is stored
        assert s.search_papers("w00003") == [pid(3)] and s.search_papers("revised") == [pid(200)]
        assert s.search_papers("w00200") == []
        assert s.conn.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM papers_fts").fetchone() == (300, 300)
