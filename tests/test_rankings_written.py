"""`ranker run` (run_day) and `ranker prefilter` leave a day's ranking in the store, and run_day the row that says
which scores make the day's digest: what the web pages read."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from ranker.store import Store

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
    r = subprocess.run([sys.executable, "-c", "from ranker.cli import main; main()", "prefilter", "--papers",
                        str(listing), "--out", str(out), "--embedder", EMBEDDER, "--db", str(db)],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "RANKER_DEBUG": "1"})
    assert r.returncode == 0, r.stderr
    assert "all vectors from the store" in r.stderr
    written = _jsonl(out)
    with Store(db) as s:
        rows = s.get_rankings(DAY)
        assert [(r.paper_id, r.kept, r.topic) for r in rows] == [(d["id"], d["kept"], d["topic"]) for d in written]
        assert sum(r.kept for r in rows) == 24 and {r.embedder for r in rows} == {EMBEDDER}
        assert s.count_papers() == 60 and s.get_paper(papers[0].id).title == papers[0].title
        assert s.get_day_digest(DAY) is None         # no LLM ran: no digest
