"""The prefilter step (`ranker prefilter`, and `ranker run` through run_day) leaves a day's ranking in the store, and
run_day the row that says which scores make the day's digest: what the web pages read."""
from __future__ import annotations

import json

from ranker.settings import resolve
from ranker.steps import prefilter_day
from ranker.store import Store

from conftest import ranker
from webstore import DAY, EMBEDDER, day_papers, fill_store, seed_vectors


def _jsonl(path):
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def test_run_day_stores_the_ranking_and_the_days_digest(tmp_path):
    db = tmp_path / "r.sqlite3"
    res = fill_store(db, tmp_path / "out", hostile=False)[DAY]
    written = _jsonl(res.files["prefilter"])
    with Store(db) as s:
        rows = s.get_rankings(DAY)
        assert [r.paper_id for r in rows] == [d["id"] for d in written]
        assert [(r.kept, r.topic) for r in rows] == [(d["kept"], d["topic"]) for d in written]
        assert all(abs(r.prefilter_score - d["prefilter_score"]) < 1e-6 for r, d in zip(rows, written))
        assert {r.embedder for r in rows} == {EMBEDDER} and {r.run_id for r in rows} == {res.manifest["run_id"]}
        g = s.get_day_digest(DAY)
        assert (g.model, g.prompt_hash) == (res.manifest["model"], res.manifest["prompts"]["hash"])
        assert (g.min_relevance, g.min_novelty, g.run_id) == (8, 7, res.manifest["run_id"])
        picks = [pid for _, pid, _ in s.digest_picks(DAY)]
        digest = json.loads(res.files["json"].read_text())
        assert sorted(picks) == sorted(digest) and len(picks) == res.manifest["counts"]["selected"]


def test_prefilter_cli_stores_the_papers_and_their_ranking(tmp_path):
    db = tmp_path / "r.sqlite3"
    papers = day_papers(DAY, n=60, hostile=False)
    listing = tmp_path / "listing.jsonl"
    listing.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in papers))
    with Store(db) as s:
        seed_vectors(s, papers)                       # every vector cached: no model loads
    out = tmp_path / "ranked.jsonl"
    r = ranker("prefilter", "--papers", listing, "--out", out, "--embedder", EMBEDDER, "--db", db, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "all vectors from the store" in r.stderr
    written = _jsonl(out)
    with Store(db) as s:
        rows = s.get_rankings(DAY)
        assert [(r.paper_id, r.kept, r.topic) for r in rows] == [(d["id"], d["kept"], d["topic"]) for d in written]
        assert sum(r.kept for r in rows) == 24 and {r.embedder for r in rows} == {EMBEDDER}
        assert s.count_papers() == 60 and s.get_paper(papers[0].id).title == papers[0].title
        assert s.get_day_digest(DAY) is None         # no LLM ran: no digest


def test_a_rerun_of_the_prefilter_replaces_the_days_ranking_and_keeps_the_stored_papers(tmp_path):
    db = tmp_path / "r.sqlite3"
    papers = day_papers(DAY, n=30, hostile=False)
    with Store(db) as s:
        seed_vectors(s, papers)
        s.add_papers(papers[:1])                                  # one paper already stored, with its own title
        s.conn.execute("UPDATE papers SET title='stored first' WHERE id=?", (papers[0].id,))
        settings = resolve(flags={"embedder": EMBEDDER, "top": 5, "db": db})
        prefilter_day(papers, settings, store=s)
        first = s.get_rankings(DAY)
        assert len(first) == 30 and sum(r.kept for r in first) == 5 and s.count_papers() == 30
        assert s.get_paper(papers[0].id).title == "stored first"   # a stored paper is not written over
        prefilter_day(papers[:10], settings, store=s, date=DAY, run_id=42)
        again = s.get_rankings(DAY)
        assert sorted(r.paper_id for r in again) == sorted(p.id for p in papers[:10])
        assert {r.run_id for r in again} == {42} and sum(r.kept for r in again) == 5
