"""The store's tables for the web pages: a day's ranking, which scores make its digest, the user's labels, search."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from ranker.errors import InputError
from ranker.records import DayDigest, Label, Paper, Ranked, Score
from ranker.store import Store


def paper(pid, day="2025-05-15", title=None, abstract="An abstract."):
    return Paper(id=pid, title=title or f"Title {pid}", abstract=abstract, authors=["A"], categories=["cs.LG"],
                 primary_category="cs.LG", date=day)


def ranked(p, score, kept, topic="T1"):
    return Ranked(paper=p, prefilter_score=score, kept=kept, topic=topic)


def test_rankings_replace_the_day_and_come_back_best_first(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        ps = [paper(str(i)) for i in range(4)]
        s.add_papers(ps)
        assert s.put_rankings("2025-05-15", [ranked(ps[0], 0.1, False), ranked(ps[1], 0.9, True, "T2"),
                                             ranked(ps[2], 0.5, True)], embedder="minilm", run_id=7) == 3
        rows = s.get_rankings("2025-05-15")
        assert [r.paper_id for r in rows] == ["1", "2", "0"]
        assert rows[0].kept and rows[0].topic == "T2" and rows[0].embedder == "minilm" and rows[0].run_id == 7
        assert rows[0].rule is None
        # a rerun of the day replaces its ranking whole (paper 0 is gone, 3 is new)
        pin = ranked(ps[3], 0.05, True)
        pin.rule = "pin"
        s.put_rankings("2025-05-15", [ranked(ps[1], 0.2, False), pin])
        rows = s.get_rankings("2025-05-15")
        assert [(r.paper_id, r.kept, r.rule) for r in rows] == [("1", False, None), ("3", True, "pin")]
        assert [r.day for r in s.rankings_of_paper("3")] == ["2025-05-15"]


def test_day_digest_latest_run_wins(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        assert s.get_day_digest("2025-05-15") is None
        s.put_day_digest(DayDigest("2025-05-15", "m1", "h1", 8, 7, run_id=1))
        s.put_day_digest(DayDigest("2025-05-15", "m2", "h2", 9, 6, run_id=2))
        g = s.get_day_digest("2025-05-15")
        assert (g.model, g.prompt_hash, g.min_relevance, g.min_novelty, g.run_id) == ("m2", "h2", 9, 6, 2)
        assert g.created_at > 0


def test_day_summaries_and_digest_picks_count_kept_papers_passing_the_cutoffs(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        ps = [paper(str(i)) for i in range(5)] + [paper("9", day="2025-06-01")]
        s.add_papers(ps)
        s.put_rankings("2025-05-15", [ranked(ps[0], 0.9, True, "A"), ranked(ps[1], 0.8, True, "B"),
                                      ranked(ps[2], 0.7, True, "A"), ranked(ps[3], 0.1, False),
                                      ranked(ps[4], 0.0, False)])
        s.put_day_digest(DayDigest("2025-05-15", "m", "h", 8, 7))
        s.put_score(Score("0", 9, 8, "yes"), "m", "h")
        s.put_score(Score("1", 8, 6, "novelty too low"), "m", "h")
        s.put_score(Score("2", 10, 10, "yes"), "m", "h")
        s.put_score(Score("3", 10, 10, "not kept: no pick"), "m", "h")
        s.put_score(Score("0", 1, 1, "another model"), "other", "h")
        s.set_label("0", 1, "2025-05-15")
        s.set_label("3", -1, "2025-05-15")
        days = {d["day"]: d for d in s.day_summaries()}
        assert list(days) == ["2025-06-01", "2025-05-15"]              # newest first
        d = days["2025-05-15"]
        # scored: kept papers with a digest score (paper 3 has one but was not kept)
        assert (d["papers"], d["kept"], d["scored"], d["picks"], d["up"], d["down"]) == (5, 3, 3, 2, 1, 1)
        assert days["2025-06-01"]["papers"] == 1 and not days["2025-06-01"]["ranked"]
        assert s.digest_picks("2025-05") == [("2025-05-15", "0", "A"), ("2025-05-15", "2", "A")]
        assert s.digest_picks("2025-06") == []
        assert s.days() == ["2025-05-15", "2025-06-01"]


def test_a_day_ranked_again_on_fewer_papers_is_counted_as_its_page_lists_it(tmp_path):
    """A day run on its saved file, then again on that file cut down (5 papers, then 3): the day page lists the
    3 of its ranking, but the archive counted the 5 ever announced that day (and a label on a paper no longer
    in the day's ranking among the day's). A day never ranked still counts the papers announced on it."""
    with Store(tmp_path / "r.sqlite3") as s:
        ps = [paper(str(i)) for i in range(5)] + [paper("9", day="2025-06-01")]
        s.add_papers(ps)
        s.put_rankings("2025-05-15", [ranked(p, 1.0 - i / 10, i < 2) for i, p in enumerate(ps[:5])])
        s.add_papers(ps[:3])
        s.put_rankings("2025-05-15", [ranked(p, 1.0 - i / 10, i < 2) for i, p in enumerate(ps[:3])])
        s.set_label("1", 1, "2025-05-15")
        s.set_label("4", -1, "2025-05-15")              # its paper is no longer in the day's ranking
        s.set_label("9", -1, "2025-06-01")
        days = {d["day"]: d for d in s.day_summaries()}
        d = days["2025-05-15"]
        assert (d["papers"], d["kept"], d["up"], d["down"]) == (3, 2, 1, 0)
        assert len(s.get_rankings("2025-05-15")) == 3
        d = days["2025-06-01"]
        assert (d["papers"], d["ranked"], d["down"]) == (1, False, 1)


def test_labels_set_change_undo_with_history(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        s.set_label("1", 1, "2025-05-15")
        s.set_label("1", -1, "2025-05-15")
        s.set_label("2", 1, None)
        assert {k: v.label for k, v in s.get_labels().items()} == {"1": -1, "2": 1}
        assert s.count_labels() == (1, 1)
        s.set_label("1", 0)                                     # undo deletes the label
        assert set(s.get_labels()) == {"2"} and s.get_labels(["1"]) == {}
        assert [(e["paper_id"], e["label"]) for e in s.label_events()] == [("1", 1), ("1", -1), ("2", 1), ("1", 0)]
        assert [e["label"] for e in s.label_events("1")] == [1, -1, 0]
        with pytest.raises(InputError, match=r"\+1, -1 or 0"):
            s.set_label("1", 2)
        with pytest.raises(sqlite3.IntegrityError):              # the schema refuses other values too
            s.conn.execute("INSERT INTO labels VALUES ('x', 5, NULL, 0)")


def test_a_label_expected_to_be_another_than_stored_is_not_written(tmp_path):
    """expected: the label a page showed. A click from a tab that did not see a change made since in another one
    (its undo of a label no longer there, its thumb over another's) writes nothing and answers the label stored;
    one asking what is stored anyway, or expecting what is stored, goes as before."""
    with Store(tmp_path / "r.sqlite3") as s:
        assert s.set_label("1", 1, "2025-05-15", expected=0) == 1
        assert s.set_label("1", -1, "2025-05-15") == -1                 # another tab, no expectation: written
        assert s.set_label("1", 0, expected=1) == -1                    # the stale tab's undo: refused
        assert s.set_label("1", 1, "2025-05-15", expected=0) == -1      # its thumb over the other's: refused
        assert s.get_labels()["1"].label == -1
        assert s.set_label("1", -1, "2025-05-15", expected=1) == -1     # stale, but what it asks is stored
        assert [e["label"] for e in s.label_events("1")] == [1, -1]
        assert s.set_label("1", 0, expected=-1) == 0
        assert s.get_labels() == {} and [e["label"] for e in s.label_events("1")] == [1, -1, 0]
        with pytest.raises(InputError, match="expected label"):
            s.set_label("1", 1, expected=2)


def test_import_labels_is_idempotent_and_the_later_verdict_wins(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        s.set_label("1", 1, "2025-05-15", created_at=1000.0)
        s.set_label("2", 1, "2025-05-15", created_at=5000.0)
        incoming = [Label("1", -1, "2025-05-15", 2000.0),       # newer than ours: wins
                    Label("2", -1, "2025-05-15", 3000.0),       # older than ours: ignored
                    Label("3", 1, "2025-05-16", 4000.0)]        # new
        assert s.import_labels(incoming) == {"added": 1, "changed": 1, "taken back": 0, "unchanged": 1}
        assert {k: v.label for k, v in s.get_labels().items()} == {"1": -1, "2": 1, "3": 1}
        events = len(s.label_events())
        assert s.import_labels(incoming) == {"added": 0, "changed": 0, "taken back": 0, "unchanged": 3}
        assert len(s.label_events()) == events
        with pytest.raises(InputError):
            s.import_labels([Label("4", 1, None, 1.0), Label("5", 2, None, 1.0)])
        assert "4" not in s.get_labels()                         # one transaction: nothing half-imported


def test_a_taken_back_label_stays_taken_back_against_older_verdicts_and_travels(tmp_path):
    """An undo is a verdict with a time too: importing an export made before it must not bring the label
    back, a later thumb from elsewhere does, and an export carries the undo (label 0) to the other side."""
    from ranker.labels import export_labels, import_labels, read_labels
    a, b = Store(tmp_path / "a.sqlite3"), Store(tmp_path / "b.sqlite3")
    with a, b:
        a.set_label("2505.00001", -1, "2025-05-15", created_at=1000.0)
        a.set_label("2505.00002", 1, "2025-05-15", created_at=1000.0)
        export_labels(a, tmp_path / "before.jsonl")
        a.set_label("2505.00001", 0, created_at=2000.0)                       # taken back after the export
        assert import_labels(a, tmp_path / "before.jsonl") == {"added": 0, "changed": 0, "taken back": 0,
                                                                "unchanged": 2}
        assert set(a.get_labels()) == {"2505.00002"}
        assert a.import_labels([Label("2505.00001", 1, None, 3000.0)])["added"] == 1   # a later thumb wins
        a.set_label("2505.00001", 0, created_at=4000.0)
        # the other machine learns of the undo from the export
        assert import_labels(b, tmp_path / "before.jsonl")["added"] == 2
        assert export_labels(a, tmp_path / "after.jsonl") == 2
        assert [(lb.paper_id, lb.label) for lb in read_labels(tmp_path / "after.jsonl")] == [("2505.00002", 1), ("2505.00001", 0)]
        assert import_labels(b, tmp_path / "after.jsonl") == {"added": 0, "changed": 0, "taken back": 1,
                                                               "unchanged": 1}
        assert set(b.get_labels()) == {"2505.00002"}
        assert import_labels(b, tmp_path / "after.jsonl")["taken back"] == 0     # idempotent


def test_an_undo_imported_where_the_thumb_never_was_still_beats_an_older_thumb(tmp_path):
    """Merges must not depend on the order exports arrive in: the undo (time 200) first, then the older thumb
    (time 100), ends as the other order does, with no label; and this store's export carries the undo on."""
    from ranker.labels import export_labels, read_labels
    for order in ([Label("2505.00001", 0, None, 200.0)], [Label("2505.00001", 1, None, 100.0)]), \
                 ([Label("2505.00001", 1, None, 100.0)], [Label("2505.00001", 0, None, 200.0)]):
        with Store(tmp_path / f"{len(list(tmp_path.iterdir()))}.sqlite3") as s:
            for batch in order:
                s.import_labels(batch)
                s.import_labels(batch)                                       # idempotent either way
            assert s.get_labels() == {}
            export_labels(s, tmp_path / "out.jsonl")
            assert [(lb.paper_id, lb.label) for lb in read_labels(tmp_path / "out.jsonl")] == [("2505.00001", 0)]


def test_a_click_that_changes_nothing_records_nothing(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        s.set_label("2505.00001", 1, "2025-05-15", created_at=1000.0)
        s.set_label("2505.00001", 1, "2025-05-15", created_at=2000.0)         # the same thumb again
        s.set_label("2505.00002", 0, created_at=2000.0)                       # an undo with nothing to undo
        assert [(e["paper_id"], e["label"]) for e in s.label_events()] == [("2505.00001", 1)]
        assert s.get_labels()["2505.00001"].created_at == 1000.0              # the verdict's own time is kept


def test_word_search_fts_follows_new_and_changed_papers(tmp_path):
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([paper("1", title="Sparse attention for long contexts", abstract="We prune heads."),
                      paper("2", title="Diffusion policies", abstract="Robots learn with sparse rewards."),
                      paper("3", title="Unrelated", abstract="Nothing here.")])
        assert s.search_papers("sparse") == ["1", "2"]                # the title weighs more
        assert s.search_papers("sparse rewards") == ["2"]              # every word
        assert s.search_papers("atten") == ["1"]                       # the last word is also a prefix
        assert s.search_papers('"; DROP TABLE papers; --') == []       # words only: no FTS syntax from the user
        assert s.search_papers("   ") == []
        # the index built by the first search follows later writes
        s.add_papers([paper("4", title="Sparse mixtures of experts"), paper("3", title="Now about sparse coding")])
        assert set(s.search_papers("sparse")) == {"1", "2", "3", "4"}
        s.add_papers([paper("1", title="Renamed", abstract="Different words.")])
        assert "1" not in s.search_papers("sparse") and s.search_papers("renamed") == ["1"]
        assert s.conn.execute("SELECT COUNT(*) FROM papers_fts").fetchone()[0] == 4


def test_word_search_without_fts5_uses_like(tmp_path, monkeypatch):
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([paper("1", title="100% sparse_attention"), paper("2", title="sparse")])
        monkeypatch.setattr(Store, "_ensure_fts", lambda self: False)
        assert sorted(s.search_papers("sparse")) == ["1", "2"]
        assert s.search_papers("sparse_attention") == ["1"]            # '_' is a letter, not a LIKE wildcard
        assert s.search_papers("100") == ["1"]


def test_paper_vectors_leave_out_query_vectors(tmp_path):
    """What the corpus index reads of the store: paper vectors only, never the embedder's own query vectors."""
    with Store(tmp_path / "r.sqlite3") as s:
        v = np.ones(4, dtype=np.float32) / 2
        s.put_embeddings([("1", "h", v), ("2", "h", -v), ("~query:abc", "h", v)], "minilm")
        rows = [r for chunk in s.paper_vector_rows("minilm", "~") for r in chunk]
        ids, m = [r[1] for r in rows], np.stack([np.frombuffer(r[3], dtype=np.float32) for r in rows])
        assert sorted(ids) == ["1", "2"] and m.shape == (2, 4)
        assert s.paper_vector_stats("minilm", "~")[0] == 2 and s.paper_embedders("~") == ["minilm"]
        assert [r for chunk in s.paper_vector_rows("mpnet", "~") for r in chunk] == []


def test_a_search_result_at_the_days_cut_offs_is_shown_as_picked(tmp_path):
    """RELEVANCE >= min_relevance and NOVELTY >= min_novelty: a paper scored exactly at both cut-offs is a pick
    in the search results as in the digest; one point under either is not."""
    from ranker.web.views import paper_rows
    day = "2025-06-23"
    ps = [Paper(id=f"2506.0000{i}", title=f"T{i}", abstract="a", authors=["X"], date=day) for i in (1, 2, 3)]
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers(ps)
        s.put_rankings(day, [Ranked(p, 1.0 - n / 10, True) for n, p in enumerate(ps)],
                       digest=DayDigest(day, "m", "h", 8, 7))
        s.put_scores([Score(ps[0].id, 8, 7, "c"), Score(ps[1].id, 8, 6, "c"), Score(ps[2].id, 7, 7, "c")], "m", "h")
        rows = paper_rows(s, [p.id for p in ps])
    assert [r.picked for r in rows] == [True, False, False]


def test_a_papers_page_counts_it_picked_on_a_day_it_scored_exactly_the_cut_offs(tmp_path):
    from ranker.web.views import paper_page
    day = "2025-06-23"
    p = Paper(id="2506.00001", title="T", abstract="a", authors=["X"], date=day)
    with Store(tmp_path / "r.sqlite3") as s:
        s.add_papers([p])
        s.put_rankings(day, [Ranked(p, 1.0, True)], digest=DayDigest(day, "m", "h", 8, 7))
        s.put_scores([Score(p.id, 8, 7, "c")], "m", "h")
        page = paper_page(s, p.id)
        assert page.picked_on == [day] and page.scores[0].picked
        s.put_scores([Score(p.id, 7, 7, "c")], "m", "h")
        assert paper_page(s, p.id).picked_on == []
