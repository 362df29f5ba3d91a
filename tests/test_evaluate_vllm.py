"""`ranker eval` end to end with the real MiniLM embedder and SmolLM2 in the real vLLM engine, on two small
history days (a few papers scored): the LLM's figures come from real answers stored in the database, and a
second eval of the same model scores nothing."""
from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from conftest import DAYS, ranker

pytestmark = pytest.mark.slow


def small_history(root, days=("2025-05-15", "2025-07-02"), n=40):
    """Each day cut to its first n papers, GPT's picks among them kept."""
    for d in days:
        (root / d).mkdir(parents=True)
        lines = (DAYS / d / "listing.jsonl").read_text().splitlines()[:n]
        ids = {json.loads(x)["id"] for x in lines}
        (root / d / "listing.jsonl").write_text("".join(x + "\n" for x in lines))
        picks = [x for x in (DAYS / d / "gpt_scores.jsonl").read_text().splitlines() if json.loads(x)["id"] in ids]
        assert picks, d
        (root / d / "gpt_scores.jsonl").write_text("".join(x + "\n" for x in picks))
    return root


def test_eval_with_real_vllm(tmp_path):
    pytest.importorskip("vllm")
    hist = small_history(tmp_path / "hist")
    args = ["eval", "--history", hist, "--out", tmp_path / "out", "--backend", "vllm", "--model", "smollm2-135m",
            "--top", "3", "--min-relevance", "1", "--min-novelty", "1", "--backend-option", "max_model_len=4096"]
    p = ranker(*args)
    assert p.returncode == 0, p.stderr[-3000:]
    data = json.loads((tmp_path / "out" / "eval.json").read_text())
    assert [d["date"] for d in data["days"]] == ["2025-05-15", "2025-07-02"]
    for d in data["days"]:
        assert d["prefilter"]["papers"] == 40 and d["prefilter"]["kept"] == 3
        assert d["llm"]["scored"] + d["llm"]["failed"] == 3 and d["llm"]["reused"] == 0
        # every answer is a real score: with cut-offs 1/1 every scored paper is in the digest
        assert len(d["digest"]) == d["llm"]["scored"]
        assert d["llm"]["digest"]["local_picks"] == d["llm"]["scored"]
    o = data["overall"]
    assert o["llm"]["scored"] >= 5 and o["llm"]["relevance"]["n"] == sum(len(d["pairs"]) for d in data["days"])
    # the figures are the answers vLLM wrote, as stored: each pair's local scores, and the digest is exactly
    # the scored papers (cut-offs 1/1)
    with closing(sqlite3.connect(tmp_path / "home" / "ranker.sqlite3")) as c:
        stored = {pid: [rel, nov] for pid, rel, nov in c.execute("SELECT paper_id, relevance, novelty FROM scores")}
    assert len(stored) == o["llm"]["scored"]
    for d in data["days"]:
        assert all(p["local"] == stored[p["id"]] for p in d["pairs"])
        assert set(d["digest"]) <= set(stored)
        rows = (hist / d["date"] / "gpt_scores.jsonl").read_text().splitlines()
        gpt = {json.loads(x)["id"]: json.loads(x) for x in rows}
        assert [p["id"] for p in d["pairs"]] == sorted(set(gpt) & set(stored) & set(d["digest"]))
        assert all(p["gpt"] == [gpt[p["id"]]["RELEVANCE"], gpt[p["id"]]["NOVELTY"]] for p in d["pairs"])
    assert "model smollm2-135m (vllm)" in (tmp_path / "out" / "report.html").read_text()

    again = ranker(*args[:4], tmp_path / "again", *args[5:])
    assert again.returncode == 0, again.stderr[-3000:]
    data2 = json.loads((tmp_path / "again" / "eval.json").read_text())
    assert all(d["llm"]["reused"] == d["llm"]["scored"] for d in data2["days"])
    assert data2["overall"]["llm"] == o["llm"]
