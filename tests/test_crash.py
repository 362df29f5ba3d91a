"""kill -9 in the middle of fetch, embedding and scoring (real subprocesses): a rerun completes, every paper
appears exactly once, and the database passes PRAGMA integrity_check."""
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from conftest import DAYS, RANKER, REPO



@pytest.fixture
def env(tmp_path):
    e = dict(os.environ, RANKER_HOME=str(tmp_path / "home"), RANKER_OFFLINE="1")
    e.pop("RANKER_DB", None)
    return e


def db(tmp_path):
    return tmp_path / "home" / "ranker.sqlite3"


def kill_when(cmd, env, ready, timeout=300):
    """Start cmd, SIGKILL it as soon as ready() is true; fail if it ended before that."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while time.time() - t0 < timeout:
        if p.poll() is not None:
            pytest.fail(f"{' '.join(cmd[-6:])} finished (rc {p.returncode}) before it could be killed: "
                        f"{p.stderr.read().decode()[-500:]}")
        if ready():
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            return
        time.sleep(0.02)
    p.kill()
    pytest.fail("timed out waiting for the moment to kill")


def integrity(path):
    c = sqlite3.connect(path)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


def count(path, sql):
    c = sqlite3.connect(path)
    try:
        return c.execute(sql).fetchone()[0]
    finally:
        c.close()


def ok(cmd, env):
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    return p


def test_kill_during_fetch(tmp_path, env):
    day = DAYS / "2025-05-15" / "listing.jsonl"
    ok([*RANKER, "fetch", "--from", str(day), "--out", str(tmp_path / "day.jsonl")], env)
    before = count(db(tmp_path), "SELECT COUNT(*) FROM papers")
    snap = tmp_path / "snapshot.json"
    ok([sys.executable, str(REPO / "scripts" / "make_snapshot.py"), "--n", "20000", "--out", str(snap)], env)
    big = tmp_path / "big.jsonl"

    def writing() -> bool:         # killed while papers stream into the output's temporary file, not before
        for f in tmp_path.glob(".big.jsonl.*"):
            try:
                if f.stat().st_size > 10_000:
                    return True
            except FileNotFoundError:  # renamed into place: the fetch is done, and kill_when says so
                pass
        return False
    kill_when([*RANKER, "fetch", "--from", str(snap), "--category", "cs.LG,cs.AI", "--out", str(big)], env,
              writing)
    assert integrity(db(tmp_path)) == "ok"
    # nothing lost; a snapshot read for longer than ingest.HOLD is committed in parts, each whole (papers of the
    # snapshot: cs.LG / cs.AI, with their days), so other processes' writes get in meanwhile
    assert count(db(tmp_path), "SELECT COUNT(*) FROM papers") >= before
    assert count(db(tmp_path), "SELECT COUNT(*) FROM papers p WHERE NOT EXISTS (SELECT 1 FROM paper_days d "
                 "WHERE d.paper_id = p.id)") == 0
    assert not big.exists()                                                   # the output appears whole or not
    ok([*RANKER, "fetch", "--from", str(snap), "--category", "cs.LG,cs.AI", "--out", str(big)], env)
    ids = [json.loads(line)["id"] for line in big.open()]
    assert len(ids) == len(set(ids)) > 1000
    # the killed fetch's temporary file (a snapshot's papers: gigabytes for years of arXiv) is gone too
    assert list(tmp_path.glob(".big.jsonl.*")) == []
    assert count(db(tmp_path), "SELECT COUNT(*) FROM papers") == before + len(ids)
    assert integrity(db(tmp_path)) == "ok"


@pytest.mark.slow
def test_kill_during_scoring(tmp_path, env):
    # 6 papers in batches of 2: the kill after the first batch is stored leaves two batches for the rerun
    rows = [json.loads(line) for line in (DAYS / "2025-07-02" / "listing.jsonl").open()][:6]
    papers = tmp_path / "p.jsonl"
    papers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # a short prompt set and short abstracts keep the CPU prefill small: this test is about resuming
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for name, text in {"system_prompt.txt": "You rate arXiv papers.",
                       "paper_topics.txt": "1. Model Compression\n   - Relevant: pruning, quantization\n",
                       "score_criteria.txt": "Relevance and novelty from 1 to 10.",
                       "postfix_prompt_abstract.txt": "Answer in JSON with ARXIVID, COMMENT, RELEVANCE, NOVELTY."
                       }.items():
        (prompts / name).write_text(text)
    cfg = tmp_path / "ranker.toml"
    cfg.write_text(f'[scoring]\nbackend = "transformers"\nmodel = "smollm2-135m"\nbatch_size = 2\n'
                   f'comment_chars = 40\nabstract_tokens = 60\nprompts = "{prompts}"\n')
    out = tmp_path / "s.jsonl"
    cmd = [*RANKER, "score", "--papers", str(papers), "--out", str(out), "--config", str(cfg)]

    def scored_some():
        try:
            return db(tmp_path).exists() and count(db(tmp_path), "SELECT COUNT(*) FROM scores") >= 2
        except sqlite3.OperationalError:      # tables not created yet
            return False
    kill_when(cmd, env, scored_some)
    assert integrity(db(tmp_path)) == "ok"
    stored = count(db(tmp_path), "SELECT COUNT(*) FROM scores")
    assert 2 <= stored < len(rows)
    assert not out.exists()                    # the scores file appears whole, at the end, or not at all
    p = ok(cmd, env)
    assert f"{stored} reused" in p.stderr
    got = [json.loads(line)["ARXIVID"] for line in out.read_text().splitlines()]
    assert sorted(got) == sorted(r["id"] for r in rows)                    # every paper exactly once
    assert count(db(tmp_path), "SELECT COUNT(*) FROM scores") == len(rows)
    assert integrity(db(tmp_path)) == "ok"


@pytest.mark.slow
def test_kill_during_embedding(tmp_path, env):
    from ranker.prefilter.embed import CHUNK
    # one day of 405 papers: two chunks of the embedder (CHUNK = 256), so the kill comes after the first is
    # stored and before the second is
    rows = [json.loads(line) for line in (DAYS / "2025-05-13" / "listing.jsonl").open()]
    assert CHUNK < len(rows) < 2 * CHUNK
    papers = tmp_path / "p.jsonl"
    papers.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "ranked.jsonl"
    cmd = [*RANKER, "prefilter", "--papers", str(papers), "--out", str(out)]

    def some_embedded():
        if not db(tmp_path).exists():
            return False
        try:
            return count(db(tmp_path), "SELECT COUNT(*) FROM embeddings") > 0
        except sqlite3.OperationalError:      # tables not created yet
            return False
    kill_when(cmd, env, some_embedded)
    assert integrity(db(tmp_path)) == "ok"
    done_before = count(db(tmp_path), "SELECT COUNT(*) FROM embeddings")
    assert not out.exists()
    ok(cmd, env)
    got = [json.loads(line)["id"] for line in out.open()]
    assert sorted(got) == sorted(r["id"] for r in rows)                   # every paper exactly once
    assert count(db(tmp_path), "SELECT COUNT(*) FROM embeddings") >= len(rows) > done_before
    assert integrity(db(tmp_path)) == "ok"
