"""A whole day through the four public steps with the fake backend and stored vectors (no model), the run
folder's manifest when a run fails or is killed, and `ranker run` / `ranker prefilter` as commands."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from ranker.backends.fake import FakeBackend, fake_scores
from ranker.errors import BackendError
from ranker.sources import read_ranked
from ranker.steps import fetch_day, prefilter_day, render_digest, run_day, score_day
from ranker.store import Store

from conftest import DAYS, fake_settings, ranker, vector_store

LISTING = DAYS / "2025-05-15" / "listing.jsonl"
FLAGS = {"backend": "fake", "model": "tiny", "top": 8, "min_relevance": 5, "min_novelty": 5}


@pytest.fixture
def settings(tmp_path):
    return fake_settings(tmp_path, **FLAGS)


@pytest.fixture
def store(settings):
    with vector_store(settings, LISTING) as s:
        yield s


def lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_a_whole_day_through_the_four_steps(settings, store, tmp_path):
    day = fetch_day(LISTING, settings, store=store)
    assert day.date == "2025-05-15" and len(day.papers) == 192 and store.count_papers() == 192
    assert day.stored.stored_new == 192

    pre = prefilter_day(day.papers, settings, store=store)
    assert len(pre.ranked) == 192 and pre.kept == 8 and pre.embedded == 0 and not pre.model_loaded
    assert [r.kept for r in pre.ranked] == [True] * 8 + [False] * 184
    assert pre.kept_papers == [r.paper for r in pre.ranked[:8]]

    run = score_day(pre.kept_papers, settings, store=store)
    assert run.backend == "fake" and run.model == "fake:tiny" and run.scored == 8 and run.status == "ok"
    assert {i: (s.relevance, s.novelty) for i, s in run.scores.items()} == {
        p.id: fake_scores(p.id) for p in pre.kept_papers}

    dig = render_digest(day.date, day.papers, run, settings, scanned=pre.kept)
    picks = [p.id for p in pre.kept_papers if min(fake_scores(p.id)) >= 5]
    assert sorted(dig.json) == sorted(picks) and len(dig.selected) == len(picks)
    assert dig.markdown.startswith("# Personalized Daily ArXiv Papers 2025-05-15")
    assert f"Total arXiv papers: 192\n\nTotal scanned papers: 8\n\nTotal relevant papers: {len(picks)}" in dig.markdown

    # the same day as one call, into a run folder; everything scored above is reused
    res = run_day(day, tmp_path / "out", settings, store=store)
    m = res.manifest
    assert m["status"] == "ok" and m["backend"] == "fake" and m["model"] == "fake:tiny"
    assert m["counts"] == {"papers": 192, "new_in_store": 192, "seen_before": 0, "excluded": 0, "kept": 8,
                           "pinned": 0, "reuploads": 0, "embedded": 0, "scored": 0, "reused": 8, "retried": 0,
                           "failed": 0, "selected": len(picks), "author_matches": 0}
    assert json.loads(res.files["manifest"].read_text()) == m
    assert [r["ARXIVID"] for r in lines(res.files["scores"])] == [p.id for p in pre.kept_papers]
    ranked = read_ranked(res.files["prefilter"])
    assert [r.paper.id for r in ranked] == [r.paper.id for r in pre.ranked] and sum(r.kept for r in ranked) == 8
    assert "kept" not in ranked[0].paper.extra                 # the verdict travels as Ranked, not as extra
    assert json.loads(res.files["json"].read_text()) == dig.json
    tail = "Total arXiv papers"                                # the token table differs: nothing new was asked
    assert res.files["markdown"].read_text().split(tail)[1] == dig.markdown.split(tail)[1]
    assert store.run_status(m["run_id"]) == "ok" and store.count_papers() == 192
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f.name for f in res.files.values())


def test_a_failed_run_marks_its_manifest_failed(settings, store, tmp_path):
    day = fetch_day(LISTING, settings, store=store)
    out = tmp_path / "out"
    first = run_day(day, out, settings, store=store)
    assert first.manifest["status"] == "ok"
    broken = FakeBackend("other", raise_for={prefilter_day(day.papers, settings, store=store).kept_papers[0].id})
    with pytest.raises(BackendError):
        run_day(day, out, settings, store=store, backend=broken)
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "failed" and "injected failure" in m["error"] and m["run_id"] != first.manifest["run_id"]
    assert store.run_status(m["run_id"]) == "failed"


KILLED_RUN = textwrap.dedent("""
    import os, sys
    from ranker.backends.fake import FakeBackend
    from ranker.settings import resolve
    from ranker.steps import fetch_day, run_day
    from ranker.store import Store

    class Killed(FakeBackend):
        def generate(self, requests, **kw):
            os._exit(9)                     # as a kill -9 in the middle of scoring would

    s = resolve(flags={"backend": "fake", "top": 8, "db": sys.argv[1]})
    with Store(s.db_path) as store:
        run_day(fetch_day(sys.argv[2], s, store=store), sys.argv[3], s, store=store, backend=Killed("other"))
""")


def test_a_killed_run_never_leaves_an_earlier_ok_manifest_beside_its_files(settings, store, tmp_path):
    out = tmp_path / "out"
    first = run_day(fetch_day(LISTING, settings, store=store), out, settings, store=store)
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    store.close()
    p = subprocess.run([sys.executable, "-c", KILLED_RUN, str(settings.db_path), str(LISTING), str(out)],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 9, p.stderr
    m = json.loads((out / "2025-05-15-run.json").read_text())
    assert m["status"] == "running" and m["run_id"] != first.manifest["run_id"]       # not the old "ok"
    assert sorted(f.name for f in out.iterdir()) == sorted(before)                   # no temporary left
    assert (out / "2025-05-15-scores.jsonl").read_bytes() == before["2025-05-15-scores.jsonl"]   # never half
    with Store(settings.db_path) as again:
        assert again.run_status(m["run_id"]) == "running" and again.integrity_check() == "ok"


# --------------------------------------------------------------------------- as commands
def test_ranker_run_and_prefilter_as_commands(store, settings, tmp_path):
    db = settings.db_path
    r = ranker("run", "--papers", LISTING, "--out", tmp_path / "out", "--db", db, "--backend", "fake",
               "--config", _toml(tmp_path), "--offline")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(tmp_path / "out" / "2025-05-15-output.md")
    assert r.stderr.strip().splitlines()[-1].startswith("2025-05-15: 192 papers, 8 kept by the prefilter, 8 scored")
    ranked = tmp_path / "ranked.jsonl"
    r = ranker("prefilter", "--papers", LISTING, "--out", ranked, "--db", db, "--top", "5")
    assert r.returncode == 0, r.stderr
    r = ranker("score", "--papers", ranked, "--only-kept", "--out", tmp_path / "s.jsonl", "--db", db,
               "--backend", "fake", "--model", "tiny")
    assert r.returncode == 0, r.stderr
    assert [x["ARXIVID"] for x in lines(tmp_path / "s.jsonl")] == [x["id"] for x in lines(ranked)[:5]]
    assert "5 of 5 papers scored" in r.stderr and "5 reused" in r.stderr     # `ranker run` stored them


def _toml(tmp_path):
    f = tmp_path / "ranker.toml"
    f.write_text("[prefilter]\ntop = 8\n[scoring]\nmodel = 'tiny'\n")
    return f


def test_writing_to_dev_null_keeps_the_device(store, settings, tmp_path):
    before = os.stat("/dev/null")
    try:
        r = ranker("prefilter", "--papers", LISTING, "--out", "/dev/null", "--db", settings.db_path)
        assert r.returncode == 0, r.stderr
        r = ranker("fetch", "--from", LISTING, "--out", "/dev/null", "--db", settings.db_path)
        assert r.returncode == 0, r.stderr
        after = os.stat("/dev/null")
        assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev
    finally:
        from test_io import _repair_dev_null
        _repair_dev_null(before)
    r = ranker("prefilter", "--papers", LISTING, "--out", tmp_path, "--db", settings.db_path)
    assert r.returncode == 1 and r.stderr == f"error: {tmp_path}: is a directory; give a file name\n"
