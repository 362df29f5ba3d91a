"""`ranker backfill` with the local engine and `ranker import`, no model loaded: the source split into byte
ranges, the per-day prefilter against the daily one, Parquet shards written exactly once, resuming after a
kill -9, reruns that do nothing, import twice == once, and the one-line errors (Ray missing included).
The Ray engine and the real models are in test_backfill_ray.py."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
import pyarrow as pa

from conftest import DAYS, MODELS, REPO, backfill_settings, rules_config, backfill_table, damaged_gz, grown_snapshot, \
    listening, make_snapshot, parquet_files, ranker, snapshot_with_bad_lines, store_tables
from ranker.backfill import BackfillSpec, import_backfill, run_backfill, shards
from ranker.backfill.plan import Filters, PairSet, plan_splits, read_split, source_files
from ranker.backends.fake import fake_scores
from ranker.cli.backfill import summary_line
from ranker.errors import ConfigError, InputError, MissingDependency
from ranker.records import Failure
from ranker.store import Store

ALL_IDS = sorted({json.loads(line)["id"] for d in DAYS.iterdir() for line in (d / "listing.jsonl").open()})


# --------------------------------------------------------------------------- the source
def test_a_folder_of_days_reads_its_listings_only():
    files = source_files(DAYS)
    assert [f.name for f in files] == ["listing.jsonl"] * 5          # gpt_scores.jsonl is not a papers file
    with pytest.raises(InputError, match="no such file"):
        source_files(DAYS / "nope")


def test_a_fifo_named_as_a_days_listing_is_not_a_source_file(tmp_path):
    """A day folder's listing.jsonl that is a FIFO was taken as a source file: planning the splits opened it and
    waited for a writer forever (timeout 8: exit 124). Files only, as the folder's own listing and its loose
    papers files are taken."""
    shutil.copytree(DAYS / "2025-06-23", tmp_path / "2025-06-23")
    (tmp_path / "2025-06-24").mkdir()
    os.mkfifo(tmp_path / "2025-06-24" / "listing.jsonl")
    assert source_files(tmp_path) == [tmp_path / "2025-06-23" / "listing.jsonl"]


def test_byte_ranges_read_every_paper_exactly_once(tmp_path):
    snap = make_snapshot(tmp_path / "snap.json", 300)
    whole = [p.id for s in plan_splits([snap], split_bytes=1 << 40) for p in read_split(s, Filters())]
    assert len(whole) == len(set(whole)) == 300
    for size in (997, 4096, 65536):                     # ranges that cut lines anywhere
        splits = plan_splits([snap], split_bytes=size)
        assert len(splits) > 1
        got = [p.id for s in splits for p in read_split(s, Filters())]
        assert sorted(got) == sorted(whole), size


def test_filters_window_categories_and_rows_already_ranked(tmp_path):
    snap = make_snapshot(tmp_path / "snap.json", 300, 100)          # 2026-01-05, -06, -07
    (split,) = plan_splits([snap])
    days = {p.date for p in read_split(split, Filters())}
    assert len(days) >= 3
    first = min(days)
    got = list(read_split(split, Filters(since=sorted(days)[1], until=sorted(days)[1])))
    assert {p.date for p in got} == {sorted(days)[1]}
    got = list(read_split(split, Filters(categories=("cs.CV",))))
    assert got and all("cs.CV" in p.categories for p in got)
    ranked = [p for p in read_split(split, Filters(since=first, until=first))][:60]      # 60 of the first day's
    got = list(read_split(split, Filters(skip_pairs=PairSet.of([p.id for p in ranked], [first] * 60))))
    assert len(got) == 240 and not {p.id for p in ranked} & {p.id for p in got}
    assert len(list(read_split(split, Filters(skip_pairs=PairSet.of([p.id for p in ranked], ["2000-01-01"] * 60))))) \
        == 300                              # the same paper on another day is another row


def test_a_paper_without_a_day_is_no_row_of_a_backfill(tmp_path):
    """A papers file whose row has no day (JSON lines without "date"): a backfill ranks and scores days, and such
    a paper belongs to none; it was read as a row of the day "" (a shard of no day, scored every rerun)."""
    src = tmp_path / "papers.jsonl"
    src.write_text(json.dumps({"id": "2501.00001", "title": "Dated", "abstract": "a", "date": "2025-01-06"}) + "\n"
                   + json.dumps({"id": "2501.00002", "title": "Undated", "abstract": "b"}) + "\n")
    (split,) = plan_splits([src])
    assert [(p.id, p.date) for p in read_split(split, Filters())] == [("2501.00001", "2025-01-06")]


def test_dedupe_keeps_the_first_row_of_every_key():
    import pyarrow as pa
    t = pa.table({"id": ["a", "a", "b", "c", "c", "d"], "v": [1, 2, 3, 4, 5, 6]})
    assert shards.dedupe(t, ["id"]).to_pydict() == {"id": ["a", "b", "c", "d"], "v": [1, 3, 4, 6]}
    assert shards.dedupe(t, ["id"], [("v", "descending")]).to_pydict() == {"id": ["d", "c", "b", "a"],
                                                                          "v": [6, 5, 3, 2]}


def test_a_paper_in_two_files_of_a_folder_is_scored_once(tmp_path):
    """The same day's papers in two files of the source folder (two ranked rows each): every paper is
    scored once (by the local engine), none counted as done before it was, and the summary counts each row
    once."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        shutil.copy(DAYS / "2025-05-15" / "listing.jsonl", src / name)
    res = run_backfill(BackfillSpec(source=src, out=tmp_path / "bf", score=True), backfill_settings())
    ids = backfill_table(tmp_path / "bf", "scores").column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 192 and res.run["phases"]["score"]["already_done"] == 0
    assert res.summary["ranked"]["rows"] == 192 and res.run["phases"]["score"]["engine"]["requests"] == 192
    assert res.summary["scores"][f"fake:m|{res.run['scoring']['prompt_hash']}"]["scored"] == 192


SKIPPED_LINES = {"skipped": 3, "skipped_by_reason": {"no_id": 1, "not_json": 2}}


def test_skipped_lines_are_counted_by_reason_and_named_by_their_file_line(tmp_path):
    """However the file is cut into byte ranges (one range holding only the truncated last line among them),
    every good paper is read and the bad lines are counted by reason, named by their line in the file."""
    from ranker.backfill.plan import ReadTally, read_source
    snap = snapshot_with_bad_lines(tmp_path / "snap.json")
    size = snap.stat().st_size
    for split_bytes in (1 << 40, size - 100, 4096):
        splits = plan_splits([snap], split_bytes=split_bytes)
        tally = ReadTally(splits)
        assert len(list(read_source(splits, Filters(), tally))) == 300, split_bytes
        rec = tally.record()
        assert SKIPPED_LINES.items() <= rec.items(), (split_bytes, rec)
        assert [e.split(": ", 1)[0] for e in rec["skipped_first"]] == [f"{snap}:41", f"{snap}:152", f"{snap}:303"]
        assert "not valid JSON" in rec["skipped_first"][0] and "no valid arXiv id" in rec["skipped_first"][1]


def test_a_backfill_records_the_lines_it_skipped_in_its_manifest(tmp_path):
    snap = snapshot_with_bad_lines(tmp_path / "snap.json.gz", garbage=1000)
    res = run_backfill(BackfillSpec(source=snap, out=tmp_path / "bf", all_categories=True, score=True),
                       backfill_settings())
    assert res.summary["ranked"]["rows"] == 300
    got = json.loads(res.manifest.read_text())["runs"][-1]["phases"]["rank"]["input"]
    assert got["skipped"] == 1003 and got["skipped_by_reason"] == {"no_id": 1, "not_json": 1002}
    assert [e.split(": ", 1)[0] for e in got["skipped_first"]] == [f"{snap}:{n}" for n in (41, 152, 303, 304, 305)]
    assert got["filtered"] == 0 and got["duplicates"] == 0


def test_a_damaged_gz_source_is_one_error_naming_the_file(tmp_path):
    """A .gz cut short (a download stopped) or corrupt: an InputError naming the file, not Click's "aborted" with
    status 130 (the EOFError of a sniff past the end) or an "unexpected failure" (zlib.error)."""
    for name, path in damaged_gz(tmp_path).items():
        with pytest.raises(InputError) as e:
            run_backfill(BackfillSpec(source=path, out=tmp_path / f"bf-{name}", score=True), backfill_settings())
        assert e.value.where == str(path) and e.value.message.startswith("cannot read ("), (name, e.value)
    p = ranker("backfill", "--from", tmp_path / "short.jsonl.gz", "--out", tmp_path / "bf", "--score", "--backend",
               "fake", "--db", tmp_path / "r.sqlite3")
    assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
    assert p.stderr.startswith(f"error: --from {tmp_path / 'short.jsonl.gz'}: cannot read ("), p.stderr


# --------------------------------------------------------------------------- the per-day prefilter
def test_the_per_day_prefilter_is_the_daily_prefilter(tmp_path):
    """prefilter_day on one day's vectors keeps exactly what `ranker prefilter` (rank_papers) keeps with the
    same vectors."""
    from ranker.prefilter import rank_papers
    from ranker.prefilter.embed import QUERY_PREFIX, Embedder, paper_text, text_hash
    from ranker.prefilter.rank import build_queries
    from ranker.prompts import load_prompts
    from ranker.sources import read_papers
    from ranker.backfill.stages import PrefilterPlan, prefilter_day

    papers = list(read_papers(DAYS / "2025-06-23" / "listing.jsonl"))
    ps = load_prompts()
    qs = build_queries(ps)
    rng = np.random.default_rng(1)
    pv = rng.normal(size=(len(papers), 16)).astype(np.float32)
    pv /= np.linalg.norm(pv, axis=1, keepdims=True)
    qv = rng.normal(size=(len(qs.texts), 16)).astype(np.float32)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True)
    emb = Embedder("minilm")
    with Store(tmp_path / "r.sqlite3") as store:          # every vector cached: no model is loaded
        store.put_embeddings(((p.id, text_hash(paper_text(p)), v) for p, v in zip(papers, pv)), emb.key)
        store.put_embeddings(((QUERY_PREFIX + text_hash(" ".join(t.split())), text_hash(" ".join(t.split())), v)
                              for t, v in zip(qs.texts, qv)), emb.key)
        daily = rank_papers(papers, ps, embedder=emb, keep=0.25, store=store)
        plan = PrefilterPlan.build(ps, emb, keep=0.25, store=store)
    assert not emb.loaded
    t = shards.papers_table(papers[::-1])                 # any order in, the same answer out
    t = t.set_column(t.schema.get_field_index("vector"), "vector", shards.vector_column(pv[::-1]))
    out = prefilter_day(t, plan)
    assert out.num_rows == len(papers)
    got = dict(zip(out.column("id").to_pylist(), zip(out.column("prefilter_score").to_pylist(),
                                                     out.column("kept").to_pylist(), out.column("topic").to_pylist())))
    for r in daily.ranked:
        score, kept, topic = got[r.paper.id]
        assert kept == r.kept and topic == r.topic and score == pytest.approx(r.prefilter_score)
    assert set(out.column("day_papers").to_pylist()) == {len(papers)}
    done = set(out.column("id").to_pylist()[:10])          # an interrupted day: ranked whole, 10 rows left out
    again = prefilter_day(t, plan, done)
    assert again.num_rows == len(papers) - 10 and not done & set(again.column("id").to_pylist())


# --------------------------------------------------------------------------- the local engine
def test_local_backfill_scores_every_paper_once_and_a_rerun_does_nothing(tmp_path):
    out = tmp_path / "bf"
    spec = BackfillSpec(source=DAYS, out=out, score=True)
    res = run_backfill(spec, backfill_settings())
    r, s = backfill_table(out, "ranked"), backfill_table(out, "scores")
    assert sorted(r.column("id").to_pylist()) == ALL_IDS                  # every paper, once
    assert sorted(s.column("id").to_pylist()) == ALL_IDS
    assert set(s.column("status").to_pylist()) == {"scored"}
    for row in s.to_pylist()[:50]:
        assert (row["RELEVANCE"], row["NOVELTY"]) == fake_scores(row["id"])
        assert row["model"] == "fake:m" and row["prompt_hash"] == res.run["scoring"]["prompt_hash"]
    assert res.summary["scores"][f"fake:m|{res.run['scoring']['prompt_hash']}"]["scored"] == len(ALL_IDS)
    before = parquet_files(out)

    again = run_backfill(spec, backfill_settings())
    assert parquet_files(out) == before                                       # nothing written, nothing touched
    assert "skipped" in again.run["phases"]["rank"]
    assert again.run["phases"]["score"]["to_do"] == 0
    m = json.loads((out / "manifest.json").read_text())
    assert [r["status"] for r in m["runs"]] == ["ok", "ok"]

    window = BackfillSpec(source=DAYS, out=out, score=True, since="2025-05-13", until="2025-05-15")
    other = run_backfill(window, backfill_settings(model="n"))
    s = backfill_table(out, "scores")
    assert other.run["phases"]["score"]["to_do"] == s.num_rows - len(ALL_IDS) > 0   # the window's papers only
    assert {d for d, m in zip(s.column("date").to_pylist(), s.column("model").to_pylist()) if m == "fake:n"} \
        == {"2025-05-13", "2025-05-15"}


def test_failed_papers_are_rows_and_the_next_run_tries_them_again(tmp_path):
    out = tmp_path / "bf"
    ids = sorted(json.loads(line)["id"] for line in (DAYS / "2025-05-15" / "listing.jsonl").open())
    bad = ids[:3]
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=out, score=True)
    run_backfill(spec, backfill_settings(f"garbage={json.dumps(bad)}"))
    s = backfill_table(out, "scores")
    failed = sorted(i for i, st in zip(s.column("id").to_pylist(), s.column("status").to_pylist()) if st == "failed")
    assert failed == bad
    assert all("not JSON" in e for e, st in zip(s.column("error").to_pylist(), s.column("status").to_pylist())
               if st == "failed")
    res = run_backfill(spec, backfill_settings())
    assert res.run["phases"]["score"]["to_do"] == 3
    best = shards.best_scores(backfill_table(out, "scores"))
    assert best.num_rows == len(ids) and set(best.column("status").to_pylist()) == {"scored"}


def test_kill_9_mid_scoring_then_rerun_leaves_every_paper_once(tmp_path):
    """The process dies inside a scoring batch (the fake backend SIGKILLs it after 6 batches of 50, one shard of
    200 rows written); the rerun scores only the rest, and every paper ends up in the files exactly once. The
    ranking finished before the kill: the rerun does not read the source again."""
    out, marker = tmp_path / "bf", tmp_path / "died"
    code = ("import sys; from ranker.backfill import BackfillSpec, run_backfill; "
            "from ranker.settings import resolve; "
            "s = resolve(flags={'backend': 'fake', 'model': 'm', 'batch_size': 50, "
            "'backend_option': [f'die_once={sys.argv[3]!r}', 'die_after=6']}); "
            "run_backfill(BackfillSpec(source=sys.argv[1], out=sys.argv[2], score=True, shard_rows=200), s)")
    cmd = [sys.executable, "-c", code, str(DAYS), str(out), str(marker)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == -signal.SIGKILL and marker.exists(), p.stderr
    assert backfill_table(out, "scores").num_rows == 200
    m = json.loads((out / "manifest.json").read_text())
    assert m["pinned"] and m["runs"] == []                    # killed: no run was recorded as finished
    assert len(m["ranked_sources"]) == 1                      # ...but the ranking before it was
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    ids = backfill_table(out, "scores").column("id").to_pylist()
    assert sorted(ids) == ALL_IDS                                            # exactly once, in the files too
    m = json.loads((out / "manifest.json").read_text())
    assert m["runs"][-1]["phases"]["score"]["already_done"] == 200
    assert "skipped" in m["runs"][-1]["phases"]["rank"]       # the source is not read again
    assert not [f for f in out.rglob("*") if f.name.endswith(".tmp")]


@pytest.mark.parametrize("point", ["rename .ranked-", "rename .fake_m-", "rename .manifest.json"])
def test_a_backfill_killed_as_a_file_takes_its_name_leaves_no_temporary_file_after_the_rerun(tmp_path, point):
    """kill -9 (tests/crashkit.py) with a shard or the manifest written whole under its temporary name: the
    rerun removes that file (a ranked shard's is gigabytes of vectors; the rest of a day batched otherwise never
    writes its name again) and finishes the job; a file of the user's among the shards stays."""
    import crashkit
    env = {"RANKER_HOME": tmp_path / "home", "RANKER_OFFLINE": "1"}

    def args(out):
        return ["backfill", "--from", DAYS / "2025-05-15", "--out", out, "--score", "--backend", "fake", "--model",
                "m", "--db", f"{out}.sqlite3"]          # a database each: both runs make it, the same points
    p, points = crashkit.trace(args(tmp_path / "ref"), env, tmp_path / "trace.txt")
    assert p.returncode == 0, p.stderr
    out = tmp_path / "bf"
    crashkit.kill_at(args(out), env, crashkit.pick(points, point)[0])
    left = list(out.rglob("*.tmp"))
    assert len(left) == 1 and left[0].name.startswith(point.split(" ")[1]), left
    mine = [left[0].parent / "notes.tmp", left[0].parent / ".notes.parquet.0123abcd.tmp"]   # a temporary's name
    for f in mine:
        f.write_text("the user's")
    p = crashkit.trace(args(out), env, tmp_path / "trace.txt")[0]
    assert p.returncode == 0, p.stderr
    assert sorted(out.rglob("*.tmp")) == sorted(mine)
    assert sorted(backfill_table(out, "scores").column("id").to_pylist()) == \
        sorted(backfill_table(tmp_path / "ref", "scores").column("id").to_pylist())


@pytest.mark.slow                               # the real MiniLM, in 3 runs: about 27 s
def test_an_embedding_backfill_killed_as_a_spill_shard_takes_its_name_removes_its_temporary_before_embedding(
        tmp_path):
    """kill -9 (tests/crashkit.py, the real MiniLM) as the embedding spill's first shard (OUT/_work/embedded/
    date=DAY/emb-*) takes its name, and a killed writer's temporary file of the spill's params stamp beside it:
    the rerun removes both before it embeds (they stayed while it embedded every paper again, hours on a whole
    snapshot, the dead shard until its day was ranked), and finishes the job."""
    import crashkit
    env = {"RANKER_HOME": tmp_path / "home", "RANKER_OFFLINE": "1", "RANKER_MODELS_DIR": MODELS}
    # the day's first 40 papers: one embedding batch (of 256 at most), as the whole day's 192 were, its shard
    # the one the kill lands on; each of the three runs embeds 40 papers, not 192
    day = tmp_path / "days" / "2025-05-15"
    day.mkdir(parents=True)
    lines = (DAYS / "2025-05-15" / "listing.jsonl").read_bytes().splitlines(keepends=True)
    (day / "listing.jsonl").write_bytes(b"".join(lines[:40]))

    def args(out):
        return ["backfill", "--from", day, "--out", out, "--embed", "--db", f"{out}.sqlite3"]
    p, points = crashkit.trace(args(tmp_path / "ref"), env, tmp_path / "trace.txt")
    assert p.returncode == 0, p.stderr
    out = tmp_path / "bf"
    crashkit.kill_at(args(out), env, crashkit.pick(points, "rename .emb-")[0])
    (shard,) = out.rglob("*.tmp")
    assert shard.name.startswith(".emb-") and (out / shards.WORK_DIR / "embedded" / "params").is_file()
    stamp = out / shards.WORK_DIR / "embedded" / ".params.0badf00d.tmp"
    stamp.write_text("a killed writer's")
    p, points = crashkit.trace(args(out), env, tmp_path / "trace.txt")
    assert p.returncode == 0, p.stderr
    embedding = crashkit.pick(points, "rename .emb-")[0]
    assert crashkit.pick(points, "unlink .emb-")[0] < embedding and crashkit.pick(points, "unlink .params.")[0] < \
        embedding, points
    assert not list(out.rglob("*.tmp")) and not (out / shards.WORK_DIR).exists()
    ids = sorted(backfill_table(out, "ranked").column("id").to_pylist())
    assert len(ids) == 40 and ids == sorted(backfill_table(tmp_path / "ref", "ranked").column("id").to_pylist())


@pytest.mark.slow                               # the real MiniLM: about 20 s
def test_a_fifo_in_the_place_of_the_embedding_spills_params_stamp_is_not_read_and_is_replaced(tmp_path):
    """OUT/_work/embedded/params, the stamp of what a stopped run embedded, was read as text: a FIFO in its place
    hung the backfill for good. It is no stamp ranker wrote: the spill is emptied and the run goes on."""
    env = {"RANKER_HOME": tmp_path / "home", "RANKER_OFFLINE": "1", "RANKER_MODELS_DIR": MODELS}
    out = tmp_path / "bf"
    (out / shards.WORK_DIR / "embedded").mkdir(parents=True)
    os.mkfifo(out / shards.WORK_DIR / "embedded" / "params")
    p = ranker("backfill", "--from", DAYS / "2025-05-15", "--out", out, "--embed", "--top", "3", "--db",
               f"{out}.sqlite3", env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert not (out / shards.WORK_DIR).exists() and backfill_table(out, "ranked").num_rows > 0


def test_the_clean_up_of_dead_shard_temporaries_takes_only_a_killed_writers_shard_files(tmp_path):
    """remove_dead_temporaries: a live writer's temporary shard (held by atomic_file), a link with a shard
    temporary's name to a file of the user's, and the user's own `.notes.parquet.XXXXXXXX.tmp` all stay; the one
    temporary a killed writer left goes."""
    from ranker.io import atomic_file
    out = tmp_path / "bf"
    day = out / shards.RANKED_DIR / "date=2025-05-15"
    day.mkdir(parents=True)
    user = tmp_path / "mine.txt"
    user.write_text("the user's")
    link = day / ".ranked-0123456789abcdef.parquet.deadbeef.tmp"
    link.symlink_to(user)
    notes = day / ".notes.parquet.0123abcd.tmp"
    notes.write_text("the user's")
    dead = out / shards.SCORES_DIR / "date=2025-05-15" / ".fake_m-fedcba9876543210.parquet.0badf00d.tmp"
    dead.parent.mkdir(parents=True)
    dead.write_text("a killed writer's")
    with atomic_file(day / "ranked-0123456789abcdef.parquet", "wb") as f:
        f.write(b"being written")
        (live,) = [p for p in day.iterdir() if p.name.startswith(".ranked-") and p != link]
        assert shards.remove_dead_temporaries(out) == 1
        assert live.exists() and link.is_symlink() and user.read_text() == "the user's" and notes.exists()
        assert not dead.exists()
    assert (day / "ranked-0123456789abcdef.parquet").read_bytes() == b"being written"


def test_ctrl_c_mid_scoring_keeps_the_answers_in_hand_and_the_rerun_resumes_after_them(tmp_path):
    """Ctrl-C after 3 scoring batches of 50, before a 2,000-row shard filled: the 150 answers are written, not
    thrown away, and the rerun scores only the rest."""
    out = tmp_path / "bf"
    spec = BackfillSpec(source=DAYS, out=out, score=True, shard_rows=2000)
    with pytest.raises(KeyboardInterrupt):
        run_backfill(spec, backfill_settings("interrupt_after=3", batch_size=50))
    assert backfill_table(out, "scores").num_rows == 150
    (run,) = json.loads((out / "manifest.json").read_text())["runs"]
    assert run["status"] == "interrupted" and "error" not in run          # not a failure with an empty error
    res = run_backfill(spec, backfill_settings(batch_size=50))
    assert res.run["phases"]["score"]["to_do"] == len(ALL_IDS) - 150
    assert sorted(backfill_table(out, "scores").column("id").to_pylist()) == ALL_IDS     # each exactly once


def test_ctrl_c_inside_a_block_keeps_the_block_s_answers_and_the_rerun_asks_only_for_the_rest(tmp_path):
    """Ctrl-C inside the second block of 50, while its one unreadable answer is asked again: the block's 49 answers
    had come back and are written beside the first block's 50 (before, the whole block was thrown away and scored
    again, paid again on a metered API); the unanswered paper gets no row, neither scored nor failed, so the
    rerun scores it, and only it and the blocks not reached. The command still ends as an interrupt: the same
    line, status 130, the run recorded interrupted. The kept rows import into the database with their tokens."""
    day = DAYS / "2025-05-15"
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    spec = BackfillSpec(source=day, out=out, score=True)
    with pytest.raises(KeyboardInterrupt):          # ranked, then stopped before the first request
        run_backfill(spec, backfill_settings("interrupt_after=0", batch_size=50))
    assert backfill_table(out, "scores").num_rows == 0
    order = backfill_table(out, "ranked").column("id").to_pylist()       # the order the blocks are cut in
    bad = order[60]                                  # in the second block: read, then asked again alone
    p = ranker("backfill", "--from", day, "--out", out, "--score", "--backend", "fake", "--model", "m",
               "--batch-size", "50", "--backend-option", f"garbage=[{bad!r}]", "--backend-option",
               "interrupt_after=2", "--db", db)                  # block 1, block 2, then Ctrl-C in its retry
    assert p.returncode == 130 and p.stderr == "interrupted; what was stored so far is kept; rerun to resume\n"
    s = backfill_table(out, "scores")
    assert sorted(s.column("id").to_pylist()) == sorted(i for i in order[:100] if i != bad)
    assert set(s.column("status").to_pylist()) == {"scored"}
    assert all(t > 0 for t in s.column("prompt_tokens").to_pylist() + s.column("completion_tokens").to_pylist())
    m = json.loads((out / "manifest.json").read_text())
    assert [r["status"] for r in m["runs"]] == ["interrupted", "interrupted"] and "error" not in m["runs"][-1]
    key = f"fake:m|{m['runs'][-1]['scoring']['prompt_hash']}"
    assert m["summary"]["scores"][key]["scored"] == 99
    assert m["summary"]["scores"][key]["prompt_tokens"] == sum(s.column("prompt_tokens").to_pylist())
    phase = m["runs"][-1]["phases"]["score"]          # the stopped run's own record: what it wrote and spent
    assert (phase["to_do"], phase["rows_written"]) == (len(order), 99) and phase["engine"]["requests"] == 101
    with Store(db) as store:
        import_backfill(out, store)
        got = store.get_scores(order, "fake:m", m["runs"][-1]["scoring"]["prompt_hash"])
        assert sorted(got) == sorted(s.column("id").to_pylist()) and all(x.prompt_tokens > 0 for x in got.values())
        assert store.get_failures("fake:m", m["runs"][-1]["scoring"]["prompt_hash"], [bad]) == []
    res = run_backfill(spec, backfill_settings(batch_size=50))
    assert res.run["phases"]["score"]["to_do"] == len(order) - 99
    s = shards.best_scores(backfill_table(out, "scores"))
    assert sorted(s.column("id").to_pylist()) == sorted(order) and set(s.column("status").to_pylist()) == {"scored"}
    assert backfill_table(out, "scores").num_rows == len(order)                           # each exactly once


def test_import_twice_equals_once(tmp_path):
    out = tmp_path / "bf"
    run_backfill(BackfillSpec(source=DAYS, out=out, score=True), backfill_settings(f"garbage=[{ALL_IDS[0]!r}]"))
    db = tmp_path / "r.sqlite3"
    with Store(db) as store:
        first = import_backfill(out, store)
    once = store_tables(db)
    with Store(db) as store:
        second = import_backfill(out, store)
    assert store_tables(db) == once
    assert first.papers == len(ALL_IDS) and second.papers == 0
    assert first.scores_new == len(ALL_IDS) - 1 and second.scores_new == 0
    assert second.scores_unchanged == len(ALL_IDS) - 1
    assert len(once["scores"]) == len(ALL_IDS) - 1 and len(once["failures"]) == 1
    # the failure imported again is said apart, as the scores are: the second import said "1 failure" too
    assert (first.failures, first.failures_unchanged, second.failures, second.failures_unchanged) == (1, 0, 0, 1)
    p = ranker("import", out, "--db", db)
    assert p.returncode == 0 and (f"0 scores written ({len(ALL_IDS) - 1:,} already stored), 0 failures (1 already "
                                  "stored); ") in p.stderr, p.stderr
    with Store(db) as store:                                  # what digests and `ranker score` read
        got = store.get_scores(ALL_IDS[1:4], "fake:m", first.keys[0][1])
        assert [(got[i].relevance, got[i].novelty) for i in ALL_IDS[1:4]] == [fake_scores(i) for i in ALL_IDS[1:4]]
        assert store.get_paper(ALL_IDS[5]).title
        assert [store.run_status(i) for i in (1, 2, 3)] == ["ok"] * 3        # each import is one recorded run


def test_a_damaged_or_unreadable_shard_is_one_error_naming_that_file(tmp_path):
    """A shard cut short (a copy that stopped) or with a column of a type this ranker cannot read (a newer
    ranker's) is an InputError naming that very file, not the first folder of its batch or a traceback: the
    rerun of the backfill and the import both."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    out = tmp_path / "bf"
    run_backfill(BackfillSpec(source=DAYS, out=out, score=True), backfill_settings())
    ranked = shards.shard_files(out / "ranked")
    scored = shards.shard_files(out / "scores")
    assert len(ranked) > 2 and len(scored) > 2
    cut = ranked[-1]
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    with pytest.raises(InputError, match="unreadable shard") as e:
        run_backfill(BackfillSpec(source=DAYS, out=out, score=True), backfill_settings(model="n"))
    assert e.value.where == str(cut)
    with Store(tmp_path / "r.sqlite3") as store, pytest.raises(InputError, match="unreadable shard") as e:
        import_backfill(out, store)
    assert e.value.where == str(cut)
    cut.unlink()

    newer = scored[-1]
    t = pq.read_table(newer)
    status = pa.array([[s] for s in t.column("status").to_pylist()], pa.list_(pa.string()))
    pq.write_table(t.set_column(t.schema.get_field_index("status"), "status", status), newer)
    with Store(tmp_path / "r.sqlite3") as store, pytest.raises(InputError, match="unreadable shard") as e:
        import_backfill(out, store)
    assert e.value.where == str(newer)


def test_import_keeps_a_score_stored_after_the_backfill_scored_the_paper(tmp_path):
    """A paper the database holds a later score of (under the same model and prompt) keeps it: importing an
    older backfill does not put back what it scored; a stored score older than the backfill's is replaced."""
    from ranker.records import Score
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=out, score=True), backfill_settings())
    s = backfill_table(out, "scores")
    (a, b), phash = s.column("id").to_pylist()[:2], s.column("prompt_hash")[0].as_py()
    with Store(db) as store:
        store.put_scores([Score(a, 1, 1, "scored after the backfill")], "fake:m", phash)
        store.put_scores([Score(b, 1, 1, "scored before the backfill")], "fake:m", phash)
        store.conn.execute("UPDATE scores SET created_at = 1 WHERE paper_id = ?", (b,))
        store.conn.commit()
        res = import_backfill(out, store)
        got = store.get_scores([a, b], "fake:m", phash)
    assert got[a].comment == "scored after the backfill"
    assert (got[b].relevance, got[b].novelty) == fake_scores(b)
    assert res.scores_new == s.num_rows - 1 and res.scores_newer_kept == 1
    once = store_tables(db)
    with Store(db) as store:
        again = import_backfill(out, store)
    assert store_tables(db) == once and again.scores_new == 0 and again.scores_newer_kept == 1


def test_the_same_score_imported_later_takes_the_text_it_judged(tmp_path):
    """The database scored a paper's older text; the backfill later gave the same verdict on its newer text:
    the import counts it unchanged and remembers the newer text, so a run over that text reuses the score."""
    from ranker.records import Score
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=out, score=True), backfill_settings())
    s = backfill_table(out, "scores").to_pylist()
    row = next(r for r in s if r["status"] == "scored")
    with Store(db) as store:
        store.put_scores([Score(row["id"], row["RELEVANCE"], row["NOVELTY"], row["COMMENT"],
                                row["expected_relevance"], row["expected_novelty"], row["prompt_tokens"] or 0,
                                row["completion_tokens"] or 0)], "fake:m",
                         row["prompt_hash"], texts={row["id"]: "hash-of-the-older-text"})
        store.conn.execute("UPDATE scores SET created_at = 1 WHERE paper_id = ?", (row["id"],))
        store.conn.commit()
        res = import_backfill(out, store)
        assert res.scores_unchanged == 1 and res.scores_new == len([r for r in s if r["status"] == "scored"]) - 1
        assert row["id"] in store.get_scores([row["id"]], "fake:m", row["prompt_hash"],
                                             texts={row["id"]: row["text_hash"]})
    once = store_tables(db)
    with Store(db) as store:
        assert import_backfill(out, store).scores_unchanged == len(once["scores"])
    assert store_tables(db) == once                            # and a second import changes nothing


def test_imported_scores_carry_the_text_they_judged(tmp_path):
    """A backfill's score rows name the text each judged, and the import keeps it: a later daily run over a
    paper whose abstract was rewritten since scores it again and reuses the rest; a folder written before the
    column existed still imports (its scores are reused as they are)."""
    from dataclasses import replace

    import pyarrow.parquet as pq

    from ranker.backends.fake import FakeBackend
    from ranker.prompts import load_prompts
    from ranker.scoring import score_papers
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=out, score=True), backfill_settings())
    s = backfill_table(out, "scores")
    scored = [i for i, st in zip(s.column("id").to_pylist(), s.column("status").to_pylist()) if st == "scored"]
    assert scored and all(s.column("text_hash").to_pylist()[s.column("id").to_pylist().index(i)] for i in scored)
    with Store(db) as store:
        import_backfill(out, store)
        papers = list(store.get_papers(scored[:3]).values())
        changed = [replace(papers[0], abstract=papers[0].abstract + " Code is released."), *papers[1:]]
        be = FakeBackend(model="m")
        run = score_papers(changed, be, load_prompts(), store)
        assert [k for c in be.calls for k in c] == [papers[0].id] and run.reused == 2
    for f in (out / "scores").rglob("*.parquet"):             # as a folder from before the column
        pq.write_table(pq.read_table(f).drop_columns(["text_hash"]), f)
    with Store(tmp_path / "old.sqlite3") as store:
        assert import_backfill(out, store).scores_new == len(scored)
        be = FakeBackend(model="m")
        assert score_papers(changed, be, load_prompts(), store).reused == 3 and not be.calls


def hashed_embedder(monkeypatch) -> None:
    """The embedder's encode replaced by a stand-in seeded by each text's hash (orchestration tests: no model)."""
    import hashlib
    from ranker.prefilter.embed import Embedder

    def encode(self, texts):
        m = np.stack([np.random.default_rng(int(hashlib.sha1(t.encode()).hexdigest()[:8], 16)).normal(size=384)
                      for t in texts]).astype(np.float32)
        return m / np.linalg.norm(m, axis=1, keepdims=True)
    monkeypatch.setattr(Embedder, "encode", encode)


def test_an_embedded_backfill_joins_the_corpus_index_on_import(tmp_path, monkeypatch):
    """Orchestration only: the embedder's encode is replaced by a hash-seeded stand-in (the real MiniLM runs in
    test_backfill_ray.py); the import brings the corpus index up to the imported vectors, incrementally."""
    from ranker.index import CorpusIndex, similar
    hashed_embedder(monkeypatch)
    notes, db = [], tmp_path / "r.sqlite3"
    for n, day in enumerate(("2025-05-13", "2025-05-15")):
        out = tmp_path / f"bf-{day}"
        run_backfill(BackfillSpec(source=DAYS / day, out=out, embed=True), backfill_settings())
        with Store(db) as store:
            res = import_backfill(out, store, warn=notes.append)
            assert res.index is not None and res.index.count == store.count_embeddings("minilm")     # every vector
            assert (res.index.added, res.index.rebuilt is None) == ((0, False) if n == 0 else (res.embeddings, True))
            st = CorpusIndex(store, "minilm").status()
            assert st.vectors == st.store_vectors == res.index.count and st.problem is None
    assert notes == [f"index built from the store (there was no index yet): {res.index.count - res.embeddings} "
                     "vectors, exact"]
    with Store(db) as store:
        first = store.day_paper_ids("2025-05-15")[0]
        near = similar(store, first, k=3, since="2025-05-14")            # the stored vector: no model
        assert len(near.neighbours) == 3 and first not in [x.id for x in near.neighbours]
        assert {x.date for x in near.neighbours} == {"2025-05-15"}


def test_an_import_whose_index_update_fails_says_so_under_quiet_too(tmp_path, monkeypatch):
    """A file where the corpus index's folder goes: the vectors are imported, the index is not, and the line
    saying so went through the notes -q hides (`ranker import -q` exited 0 without a word); it is said alone."""
    hashed_embedder(monkeypatch)
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=out, embed=True), backfill_settings())
    Store(db).close()                                               # there already: no "new database" line
    blocker = tmp_path / "faiss-r.sqlite3"
    blocker.write_text("not a folder")
    line = (f"index: not updated ({blocker}: is a file, not a folder: the corpus index is kept there); "
            "the next command that embeds retries")
    p = ranker("import", out, "--db", db, "-q")
    assert (p.returncode, p.stdout, p.stderr.splitlines()) == (0, "", [line]), p.stderr
    with Store(db) as store:
        assert store.count_embeddings("minilm") == 192
    assert blocker.read_text() == "not a folder"


def test_a_local_run_stopped_while_ranking_days_is_resumed_without_embedding_again(tmp_path, monkeypatch):
    """Stopped after two of five days were ranked: the rerun ranks the other three from the spill, embedding
    nothing again (the days already written change which papers are read, so batches no longer line up)."""
    from ranker.backfill import local
    from ranker.prefilter.embed import Embedder
    hashed_embedder(monkeypatch)
    encoded = []
    encode = Embedder.encode
    monkeypatch.setattr(Embedder, "encode", lambda self, texts: encoded.extend(texts) or encode(self, texts))
    ranked_days = []
    real = local.prefilter_day

    def stop_on_the_third(t, *a, **k):
        if len(ranked_days) == 2:
            raise KeyboardInterrupt
        ranked_days.append(t.column("date")[0].as_py())
        return real(t, *a, **k)
    monkeypatch.setattr(local, "prefilter_day", stop_on_the_third)
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"          # the store caches the query vectors
    spec = BackfillSpec(source=DAYS, out=out, embed=True, embed_batch=64)
    with Store(db) as store, pytest.raises(KeyboardInterrupt):
        run_backfill(spec, backfill_settings(), store=store)
    assert encoded
    assert (out / shards.WORK_DIR / "embedded" / "params").is_file()      # the stopped run's state: kept
    monkeypatch.setattr(local, "prefilter_day", real)
    encoded.clear()
    with Store(db) as store:
        res = run_backfill(spec, backfill_settings(), store=store)
    assert encoded == [] and res.run["phases"]["rank"]["days_already_complete"] == 2
    r = backfill_table(out, "ranked")
    assert sorted(r.column("id").to_pylist()) == ALL_IDS and len(set(r.column("date").to_pylist())) == 5
    # the finished run leaves no empty OUT/_work behind (the spill in it was removed, the folder was not)
    assert not (out / shards.WORK_DIR).exists(), sorted(p.name for p in out.iterdir())


def test_a_finished_run_keeps_what_else_is_in_its_work_folder(tmp_path, monkeypatch):
    """OUT/_work is removed after a finished run only when empty: a file of anyone's in it stays, and so does
    the folder."""
    hashed_embedder(monkeypatch)
    out = tmp_path / "bf"
    (out / shards.WORK_DIR).mkdir(parents=True)
    (out / shards.WORK_DIR / "mine.txt").write_text("keep\n")
    run_backfill(BackfillSpec(source=DAYS, out=out, embed=True), backfill_settings())
    assert sorted(p.name for p in (out / shards.WORK_DIR).iterdir()) == ["mine.txt"]


def test_days_already_complete_counts_the_days_of_the_run_s_window(tmp_path, monkeypatch):
    """A folder ranked up to 2025-05-15 (three days), then the days from June: none of them was complete, and the
    summary said "3 days already complete" (the folder's, not the window's); a run over every day finds three."""
    hashed_embedder(monkeypatch)
    out = tmp_path / "bf"
    counts = []
    for since, until in ((None, "2025-05-15"), ("2025-06-01", None), (None, None)):
        res = run_backfill(BackfillSpec(source=DAYS, out=out, embed=True, since=since, until=until),
                           backfill_settings())
        counts.append(res.run["phases"]["rank"]["days_already_complete"])
    assert counts == [0, 0, 5] and res.run["phases"]["rank"]["rows_written"] == 0


# --------------------------------------------------------------------------- errors
def test_settings_are_pinned_per_output_folder(tmp_path):
    out = tmp_path / "bf"
    day = BackfillSpec(source=DAYS / "2025-05-15", out=out, score=True)
    run_backfill(day, backfill_settings())
    with pytest.raises(InputError) as e:
        run_backfill(day, backfill_settings(category="cs.CL"))
    assert e.value.key == "fetch.categories" and "['cs.AI', 'cs.LG']" in e.value.message
    with pytest.raises(InputError) as e:
        run_backfill(BackfillSpec(source=DAYS, out=tmp_path / "x"), backfill_settings())
    assert e.value.key == "embed" and "neither is asked for" in e.value.message      # an error, not "nothing to do"
    with pytest.raises(InputError) as e:
        run_backfill(BackfillSpec(source=DAYS, out=tmp_path / "x", score=True, since="2025-06-01",
                                  until="2025-05-01"), backfill_settings())
    assert e.value.key == "until"
    with pytest.raises(ConfigError) as e:                     # no corpus index inside a backfill: refused first
        run_backfill(BackfillSpec(source=DAYS, out=tmp_path / "y", score=True), backfill_settings(novelty_context=3))
    assert e.value.key == "scoring.novelty_context" and not (tmp_path / "y").exists()


def test_settings_are_pinned_only_once_something_is_ranked(tmp_path, monkeypatch):
    """A first run that ranked nothing (its embedder failed to load; a category the source lacks) pins
    nothing: the next run with other settings is not refused, and ranks what the first did not."""
    from ranker.errors import ModelError
    from ranker.prefilter.embed import Embedder
    hashed_embedder(monkeypatch)
    encode = Embedder.encode

    def broken(self, texts):
        raise ModelError("no such model", where="nosuchmodel")
    out = tmp_path / "bf"
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=out, embed=True)
    monkeypatch.setattr(Embedder, "encode", broken)
    with pytest.raises(ModelError):
        run_backfill(spec, backfill_settings(keep=0.5))
    monkeypatch.setattr(Embedder, "encode", encode)
    res = run_backfill(spec, backfill_settings(keep=0.3))
    assert res.run["status"] == "ok" and res.summary["ranked"]["kept"] == round(0.3 * 192)
    other = tmp_path / "bf2"
    day = BackfillSpec(source=DAYS / "2025-05-15", out=other, score=True)
    assert run_backfill(day, backfill_settings(category="q-bio.XX")).summary["ranked"]["rows"] == 0
    res = run_backfill(day, backfill_settings())
    assert res.summary["ranked"]["rows"] == 192 and res.summary["scores"]


def test_the_keep_rule_is_pinned_as_it_applies(tmp_path, monkeypatch):
    """The folder pins the rule the days were kept by, defaults filled in: a resume that would keep by
    another rule (a recall given or dropped) is refused, the same rule spelt out is not."""
    from ranker.backfill import manifest as mf
    hashed_embedder(monkeypatch)
    out = tmp_path / "bf"
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=out, embed=True)
    run_backfill(spec, backfill_settings(recall=0.7))
    assert {"recall": 0.7, "keep": None, "top": None}.items() <= mf.load(out)["pinned"].items()
    with pytest.raises(InputError) as e:                      # dropped: the default would keep 40% instead
        run_backfill(spec, backfill_settings())
    assert e.value.key in ("prefilter.keep", "prefilter.recall") and "0.7" in str(e.value), str(e.value)
    run_backfill(spec, backfill_settings(recall=0.7))         # the same rule again: fine
    other = BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "bf2", embed=True)
    run_backfill(other, backfill_settings())                  # the default, pinned as it applies: keep 0.4
    assert {"keep": 0.4, "recall": None, "top": None}.items() <= mf.load(tmp_path / "bf2")["pinned"].items()
    run_backfill(other, backfill_settings(keep=0.4))          # ...so saying it is the same rule
    with pytest.raises(InputError):
        run_backfill(other, backfill_settings(recall=0.9))


def test_the_users_exclusions_and_author_pins_keep_as_ranker_prefilter_keeps(tmp_path, monkeypatch):
    """--embed keeps each day as `ranker prefilter` does, the user's rules included (the backfill kept by the keep
    rule alone): an excluded paper is never kept nor sent to the LLM, the keep rule counts only the others, and
    a pinned author's paper is kept besides. The rules are pinned with the folder: a resume under others is
    refused, as another keep rule is."""
    from ranker.prefilter import rank_papers
    from ranker.prefilter.embed import Embedder
    from ranker.prompts import load_prompts
    from ranker.settings import resolve
    from ranker.sources import read_papers
    from ranker.steps import day_rules
    hashed_embedder(monkeypatch)
    prompts, cfg = rules_config(tmp_path, "Bin-Bin Gao\nHao Sun\n", "diffusion model\n",
                                "top = 8\nexclude = ['reinforcement learning']")
    settings = resolve(cfg, flags={"backend": "fake", "model": "m"})
    day, out = DAYS / "2025-05-15", tmp_path / "bf"
    spec = BackfillSpec(source=day, out=out, embed=True, score=True)
    run_backfill(spec, settings)
    r = backfill_table(out, "ranked")
    ids = set(r.column("id").to_pylist())
    ps = load_prompts(prompts)
    daily = rank_papers([p for p in read_papers(day / "listing.jsonl") if p.id in ids], ps,
                        embedder=Embedder("minilm"), top=8, rules=day_rules(settings, ps))
    assert len(daily.ranked) == len(ids) and daily.excluded > 5 and daily.pinned > 0      # the day has both
    kept = {x.paper.id for x in daily.ranked if x.kept}
    assert len(kept) == 8 + daily.pinned
    assert {i for i, k in zip(r.column("id").to_pylist(), r.column("kept").to_pylist()) if k} == kept
    s = backfill_table(out, "scores")
    assert {i for i, st in zip(s.column("id").to_pylist(), s.column("status").to_pylist()) if st == "scored"} == kept
    (prompts / "exclude.txt").write_text("diffusion model\ngraph neural network\n")
    with pytest.raises(InputError) as e:
        run_backfill(spec, resolve(cfg, flags={"backend": "fake", "model": "m"}))
    assert e.value.key == "prefilter.exclude"


def test_a_resume_under_other_author_pins_is_refused_naming_the_authors_setting(tmp_path, monkeypatch):
    """The exclusions and the author pins were pinned as one digest named prefilter.exclude: a resume after
    authors.txt changed was refused as if the exclusions had, naming a setting the user never touched. Each is
    pinned on its own, and the refusal names the one that changed."""
    from ranker.settings import resolve
    hashed_embedder(monkeypatch)
    prompts, cfg = rules_config(tmp_path, "Bin-Bin Gao\n", "diffusion model\n")
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "bf", embed=True)
    run_backfill(spec, resolve(cfg))
    (prompts / "authors.txt").write_text("Bin-Bin Gao\nHao Sun\n")
    with pytest.raises(InputError) as e:
        run_backfill(spec, resolve(cfg))
    assert e.value.key == "digest.authors" and "authors" in e.value.message, (e.value.key, e.value.message)
    (prompts / "authors.txt").write_text("Bin-Bin Gao\n")
    (prompts / "exclude.txt").write_text("diffusion model\ngraph neural network\n")
    with pytest.raises(InputError) as e:
        run_backfill(spec, resolve(cfg))
    assert e.value.key == "prefilter.exclude" and "exclude" in e.value.message, (e.value.key, e.value.message)
    (prompts / "exclude.txt").write_text("diffusion model\n")
    assert run_backfill(spec, resolve(cfg)).run["status"] == "ok"            # the same rules: resumed


def test_without_ray_the_ray_engine_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)             # `import ray` now fails as if not installed
    with pytest.raises(MissingDependency, match=r"ranker\[ray\]"):
        run_backfill(BackfillSpec(source=DAYS, out=tmp_path / "bf", score=True), backfill_settings(), engine="ray")
    assert not (tmp_path / "bf").exists()
    fake = tmp_path / "site"                                  # the CLI, with a `ray` that cannot be imported
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('No module named ray (simulated)')\n")
    p = ranker("backfill", "--from", DAYS, "--out", tmp_path / "bf", "--score", "--backend", "fake", "--engine",
               "ray", env={"PYTHONPATH": os.pathsep.join([str(fake), str(REPO)])})
    assert p.returncode == 1
    assert p.stderr.strip().count("\n") == 0 and "pip install 'ranker[ray]'" in p.stderr, p.stderr


def test_a_scoring_engine_wider_than_the_ray_cluster_is_refused_not_waited_for(tmp_path, monkeypatch):
    """tensor_parallel_size 2 on a one-GPU cluster, or on two nodes of one GPU each: Ray would wait forever for an
    actor it cannot place (its wait for actors has no limit); the engine says so before building the pipeline.
    No Ray instance is started. (The job is a whole one: the engine hands its workers for_workers(job).)"""
    pytest.importorskip("ray", reason="the ray extra (ranker[ray]) is not installed")
    from ranker.backfill.job import Job
    from ranker.backfill.plan import SourcePlan
    from ranker.backfill.ray_engine import RayEngine
    from ranker.scoring import ScoreOptions
    s = backfill_settings("tensor_parallel_size=2", backend="vllm", model="m")
    job = Job(spec=BackfillSpec(DAYS, tmp_path), settings=s, out=tmp_path, source=SourcePlan.of(DAYS / "2025-05-15"),
              filters=Filters(), pins={}, prompts=None, options=ScoreOptions.from_settings(s.scoring))
    for nodes, says in (([(16.0, 1.0)], "the Ray cluster has 1"),
                        ([(8.0, 1.0), (8.0, 1.0)], "no node of the Ray cluster has more than 1")):
        eng = RayEngine(sample_memory=False)
        monkeypatch.setattr(eng, "_connect", lambda: None)
        monkeypatch.setattr(eng, "_resources", lambda: (sum(c for c, _ in nodes), sum(g for _, g in nodes)))
        monkeypatch.setattr(eng, "_nodes", lambda: nodes)
        with pytest.raises(ConfigError) as e:
            eng.score(job, shards.ScoreTodo([], None))
        assert e.value.key == "scoring.vllm.tensor_parallel_size" and "2 GPUs" in e.value.message
        assert says in e.value.message, e.value.message


def test_cli_backfill_and_import(tmp_path):
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    p = ranker("backfill", "--from", DAYS / "2025-05-15", "--out", out, "--score", "--backend", "fake", "--model",
               "m", "--db", db)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(out / "manifest.json")
    assert "192 papers in 1 day, 192 kept" in p.stderr and "192 scored, 0 failed" in p.stderr, p.stderr
    p = ranker("import", out, "--db", db)
    assert p.returncode == 0, p.stderr
    assert "scores written" in p.stderr
    with Store(db) as store:
        assert store.count_papers() == 192
    p = ranker("import", tmp_path, "--db", db)
    assert p.returncode == 1 and "not a backfill folder" in p.stderr and p.stderr.count("\n") == 1


def test_import_into_a_database_not_there_says_it_made_one(tmp_path):
    """`ranker import bf/ --db new.sqlite3`: importing into a new home is a use, but a mistyped --db left a new
    database there without a word (the next command found nothing in the one meant). One line names the new
    database, only when it was made; a folder that is no backfill is refused before any database is made."""
    out = tmp_path / "bf"
    p = ranker("backfill", "--from", DAYS / "2025-05-15", "--out", out, "--score", "--backend", "fake", "--model",
               "m", "--db", tmp_path / "first.sqlite3")
    assert p.returncode == 0, p.stderr
    db = tmp_path / "new" / "r.sqlite3"
    (tmp_path / "new").mkdir()
    p = ranker("import", out, "--db", db)
    assert p.returncode == 0, p.stderr
    said = f"{db}: a new database (there was none); the import made it"
    assert said in p.stderr.splitlines(), p.stderr
    with Store(db) as store:
        assert store.count_papers() == 192
    p = ranker("import", out, "--db", db)
    assert p.returncode == 0 and "new database" not in p.stderr, p.stderr
    quiet = tmp_path / "quiet.sqlite3"                 # said under -q too (alone): -q is how cron runs it
    p = ranker("import", out, "--db", quiet, "-q")
    assert (p.returncode, p.stdout, p.stderr.splitlines()) == (
        0, "", [f"{quiet}: a new database (there was none); the import made it"]), p.stderr
    other = tmp_path / "other.sqlite3"
    p = ranker("import", tmp_path / "new", "--db", other)
    assert p.returncode == 1 and "not a backfill folder" in p.stderr and p.stderr.count("\n") == 1, p.stderr
    assert not other.exists()


def test_an_import_that_fails_after_making_a_new_database_says_it_left_one(tmp_path):
    """`ranker import bf/ --db new.sqlite3` whose shard is damaged: the database was made, then the import failed,
    and the one line said the shard only: the new database (a mistyped --db's, or an empty home's) was left
    without a word. It stays (what the shards before the failure stored is kept: the import records its run
    there, and a rerun completes it), and a line before the error says it was made."""
    out = tmp_path / "bf"
    run_backfill(BackfillSpec(source=DAYS, out=out, score=True), backfill_settings())
    cut = shards.shard_files(out / "ranked")[-1]
    cut.write_bytes(cut.read_bytes()[:cut.stat().st_size // 2])
    db = tmp_path / "new.sqlite3"
    p = ranker("import", out, "--db", db)
    assert p.returncode == 1 and db.exists(), p.stderr
    lines = p.stderr.splitlines()
    assert len(lines) == 2 and lines[1].startswith("error: ") and "unreadable shard" in lines[1], p.stderr
    assert lines[0] == (f"{db}: a new database (there was none); the import made it and then stopped: it stays, "
                        "with what was imported before the failure"), p.stderr
    p = ranker("import", out, "--db", db)              # the database there now: nothing said of it
    assert p.returncode == 1 and "new database" not in p.stderr and p.stderr.count("\n") == 1, p.stderr


def test_import_of_a_backfill_stopped_after_one_shard_counts_it_in_words(tmp_path):
    # a backfill whose scoring failed leaves its papers' shard; importing it said "1 shards"
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    p = ranker("backfill", "--from", DAYS / "2025-05-15", "--out", out, "--score", "--backend", "fake", "--model",
               "m", "--db", db, "--backend-option", "raise_for=['2505.08800']")
    assert p.returncode == 1, p.stderr
    p = ranker("import", out, "--db", db)
    assert p.returncode == 0, p.stderr
    assert p.stderr.splitlines()[-1] == (f"imported {out}: 1 shard; 192 new papers, 0 vectors, 0 scores written "
                                         "(0 already stored), 0 failures; models / prompts: none"), p.stderr


@pytest.mark.parametrize("flag,value", [("--calibration", "bad.json"), ("--keep", "0.3"),
                                        ("--default-exclude", None), ("--default-authors", None)])
def test_a_prefilter_flag_without_embed_is_refused_as_unused(tmp_path, flag, value):
    """`backfill --score --calibration bad.json` without --embed exited 0: only the prefilter reads the
    calibration (and the keep rule), and a backfill runs it with --embed alone, keeping every paper without it.
    Now one line naming the flag, before anything is written. So are --default-exclude and --default-authors: the
    exclusions and pins are the prefilter's too (taken, changing nothing)."""
    (tmp_path / "bad.json").write_text("not a calibration\n")
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    p = ranker("backfill", "--from", DAYS / "2025-05-15", "--out", out, "--score", "--backend", "fake", "--model",
               "m", "--db", db, flag, *([value] if value else []), cwd=tmp_path)
    assert p.returncode == 1 and p.stderr == (
        f"error: {flag}: only the prefilter reads it, and a backfill runs it with --embed alone (without it every "
        "paper is kept); add --embed or leave it out\n"), p.stderr
    assert not out.exists() and not db.exists()


def test_an_out_that_is_a_file_is_the_line_every_command_gives(tmp_path):
    """backfill had its own check of --out ('/x: exists and is not a folder', not naming the flag) where every
    other command says '--out /x: not a directory' (io.check_output_dir); the library says it the same way, with
    nothing made, and the CLI before the database is opened."""
    afile, db = tmp_path / "afile", tmp_path / "r.sqlite3"
    afile.write_text("mine\n")
    with pytest.raises(InputError) as e:
        run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=afile, score=True), backfill_settings())
    assert e.value.key == "out" and e.value.message == "not a directory"
    p = ranker("backfill", "--from", DAYS / "2025-05-15", "--out", afile, "--score", "--backend", "fake",
               "--model", "m", "--db", db)
    site = ranker("site", "--out", afile, "--db", db)
    assert p.returncode == 1 and p.stderr == f"error: --out {afile}: not a directory\n" == site.stderr, p.stderr
    assert afile.read_text() == "mine\n" and not db.exists()


def test_cli_backfill_says_how_many_lines_it_skipped_and_why(tmp_path):
    """A thousand lines that are not JSON: one count by reason in the summary, three of them named, not all."""
    snap = snapshot_with_bad_lines(tmp_path / "snap.json", garbage=1000)
    p = ranker("backfill", "--from", snap, "--out", tmp_path / "bf", "--score", "--all-categories", "--backend",
               "fake", "--model", "m", "--db", tmp_path / "r.sqlite3")
    assert p.returncode == 0, p.stderr
    assert "1,003 lines of the source skipped (1,002 not valid JSON, 1 without a valid arXiv id)" in p.stderr
    named = [line for line in p.stderr.splitlines() if line.startswith("warning: ")]
    assert [line.split(": ")[1] for line in named] == [f"{snap}:41", f"{snap}:152", f"{snap}:303"], p.stderr
    assert named[-1].endswith("(and 1,000 more, counted in the manifest)") and p.stderr.count("\n") < 8


def test_help_has_examples_and_every_default_it_names():
    p = ranker("backfill", "--help", env={"COLUMNS": "200"})
    assert p.returncode == 0 and "ranker backfill --from" in p.stdout and "ranker import bf/" in p.stdout
    # rich took [words] for markup and dropped them: the defaults are named without brackets (help is plain
    # now, wrapped by click: compared without its line breaks)
    text = " ".join(p.stdout.split())
    assert "(default: fetch.categories of ranker.toml" in text and "the ray extra" in text
    assert "(default: scoring.batch_size of ranker.toml, 64" in text
    assert "(default without a calibration 0.4, with one --recall 0.95; never fewer than 20 papers" in text
    assert "--recall" in text and "--papers-per-request" in text                     # run's flags
    # the examples keep their lines (not run together into one paragraph)
    assert re.search(r"^\s+ranker import bf/", p.stdout, re.M) and re.search(r"^\s+--engine ray", p.stdout, re.M)


@pytest.fixture(scope="module")
def one_day_backfill(tmp_path_factory):
    """A folder `ranker backfill --score` wrote for one day (fake backend)."""
    out = tmp_path_factory.mktemp("one-day") / "bf"
    run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=out, score=True), backfill_settings())
    return out


@pytest.mark.parametrize("args, named", [
    (["--embed", "--keep", "0.5", "--top", "3"], "error: --top: give one of --keep, --top and --recall, not "
                                                 "--keep and --top"),
    (["--embed", "--top", "3", "--recall", "0.9"], "error: --recall: give one of"),
    (["--embed", "--recall", "1.5"], "error: --recall: "),                        # the flags run takes, checked alike
    (["--score", "--papers-per-request", "0"], "error: --papers-per-request: "),
    (["--score", "--category", "cs.CL"], "error: --category: "),                  # not what the folder was ranked with
    (["--score", "--batch-size", "0"], "error: --batch-size: "),
    # past a C long: 'unexpected failure: Python int too large to convert to C long' when the table was sliced
    (["--score", "--batch-size", "99999999999999999999999"], "error: --batch-size: must be at least 1 and at most "),
    (["--score", "--papers-per-request", "99999999999999999999999"], "error: --papers-per-request: must be at "
                                                                      "least 1 and at most "),
    (["--score", "--backend-option", "die_after=-1"], "error: --backend-option die_after: "),
    (["--score", "--since", "2025-13-01"], "error: --since: expected a day as YYYY-MM-DD"),
    (["--score", "--engine", "spark"], "error: --engine: unknown engine 'spark'"),
    (["--score", "--address", "auto"], "error: --address: an address is for the ray engine"),
    (["--keep", "0.5"], "error: --embed: ask for the embedding prefilter, scoring (--score) or both"),
    (["--embed", "--calibration", "/nonexistent/calib.json"], "error: --calibration /nonexistent/calib.json: "
                                                              "calibration file"),
])
def test_cli_errors_name_the_flag_at_fault_in_one_line(tmp_path, one_day_backfill, args, named):
    out = tmp_path / "bf"
    shutil.copytree(one_day_backfill, out, copy_function=shutil.copy2)
    before = parquet_files(out)
    p = ranker("backfill", "--from", DAYS / "2025-05-15", "--out", out, "--backend", "fake", "--db",
               tmp_path / "r.sqlite3", *args)
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and p.stderr.startswith(named), p.stderr
    assert parquet_files(out) == before                            # nothing already written was lost


def test_import_reads_only_the_stored_failures_of_the_papers_it_imports(tmp_path):
    # a backfill's failures can be many (each with up to 4,000 characters of raw answer): the import asks for
    # those of the rows in hand, not every failure of the model and prompt at each chunk
    out = tmp_path / "bf"
    run_backfill(BackfillSpec(source=DAYS, out=out, score=True), backfill_settings(f"garbage=[{ALL_IDS[0]!r}]"))
    with Store(tmp_path / "r.sqlite3") as store:
        store.put_failure(Failure("2401.00001", "old", "x" * 4000), "fake:m", "other")
        import_backfill(out, store)
        reads: list[str] = []
        store.conn.set_trace_callback(reads.append)
        import_backfill(out, store)
        store.conn.set_trace_callback(None)
        failure_reads = [q for q in reads if "FROM failures" in q and q.lstrip().upper().startswith("SELECT")]
        assert failure_reads and all("paper_id IN" in q for q in failure_reads)
        assert [f.arxiv_id for f in store.get_failures("fake:m", "other", ids=["2401.00001", "x"])] == ["2401.00001"]
        assert store.get_failures("fake:m", "other", ids=["x"]) == []


def test_importing_an_older_version_keeps_the_newer_version_s_vector(tmp_path, monkeypatch):
    """An old backfill imported after the store took a newer version of a paper keeps the newer text (Store),
    and so the vector of that text too: the older row's vector would stand for an abstract the store no longer
    holds, in the corpus index and every similar-papers list."""
    hashed_embedder(monkeypatch)
    src = tmp_path / "old.jsonl"
    rows = [json.loads(line) for line in (DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[:30]]
    src.write_text("".join(json.dumps({**r, "version": 1}) + "\n" for r in rows))
    out, pid = tmp_path / "bf", rows[0]["id"]
    run_backfill(BackfillSpec(source=src, out=out, embed=True), backfill_settings())
    newer = np.zeros(384, np.float32)
    newer[0] = 1.0
    with Store(tmp_path / "r.sqlite3") as store:
        from ranker.records import Paper
        store.add_papers([Paper(pid, "The second version", "A rewritten abstract.", date="2025-06-02", version=2)])
        store.put_embeddings([(pid, "v2-text", newer)], "minilm")
        res = import_backfill(out, store)
        assert store.get_paper(pid).abstract == "A rewritten abstract."
        assert store.embedding_hashes([pid], "minilm") == {pid: "v2-text"}
        assert res.embeddings == 29 and store.count_embeddings("minilm") == 30


@pytest.mark.filterwarnings("error::RuntimeWarning")     # a far-off paper's logit once overflowed exp, on stderr
def test_a_calibration_fit_for_other_topics_is_said(tmp_path, monkeypatch):
    """As `ranker prefilter` and `ranker run` do: a calibration fit under other topics than the prompt's ranks
    with figures measured for those, and the backfill says so once (it said nothing)."""
    from ranker.prefilter.calibrate import OTHER_TOPICS, fit
    from ranker.records import Paper
    hashed_embedder(monkeypatch)
    rng = np.random.default_rng(0)
    n = 200
    papers = [Paper(id=f"2501.{i:05d}", title=f"paper {i}", abstract="we study things", categories=["cs.LG"],
                    authors=[f"Author {i}"]) for i in range(n)]
    cal = fit(rng.normal(size=(n, 384)).astype(np.float32), rng.random(n) < 0.2, rng.normal(size=n),
              np.array(["2025-01-01"] * 100 + ["2025-01-02"] * 100), papers, embedder="minilm",
              topics="fit-for-other-topics")
    cal.save(tmp_path / "cal.json")
    warned = []
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "bf", embed=True)
    run_backfill(spec, backfill_settings(calibration=tmp_path / "cal.json"), warn=warned.append)
    assert warned == [f"prefilter: {OTHER_TOPICS}"]
    assert backfill_table(tmp_path / "bf", "ranked").num_rows == 192       # ranked all the same


@pytest.mark.parametrize("embed", [True, False])
def test_a_newer_snapshot_adds_the_late_papers_of_days_already_ranked(tmp_path, monkeypatch, embed):
    """The monthly rerun from a newer snapshot into the same folder: the 50 papers that reached the last day
    since are ranked with that day (it was complete: every paper the older snapshot had), the other days read
    and left alone; with --embed only the new papers are embedded. The 50 were dropped as `filtered` and 0
    rows written. A paper ranked before and since revised is not ranked (embedded, scored) again: its row
    stays the first version's, with --embed or without."""
    from ranker.prefilter.embed import Embedder
    hashed_embedder(monkeypatch)
    encoded = []
    encode = Embedder.encode
    monkeypatch.setattr(Embedder, "encode", lambda self, texts: encoded.extend(texts) or encode(self, texts))
    old, snap = grown_snapshot(tmp_path)
    out = tmp_path / "bf"
    spec = dict(out=out, all_categories=True, embed=embed, score=not embed)
    db = tmp_path / "r.sqlite3"            # the store caches the query vectors: only papers are encoded again
    with Store(db) as store:
        run_backfill(BackfillSpec(source=old, **spec), backfill_settings(), store=store)
    before = backfill_table(out, "ranked")
    last = max(before.column("date").to_pylist())
    assert before.num_rows == 550 and before.column("date").to_pylist().count(last) == 50
    encoded.clear()
    with Store(db) as store:
        res = run_backfill(BackfillSpec(source=snap, **spec), backfill_settings(), store=store)
    rank = res.run["phases"]["rank"]
    assert (rank["rows_written"], rank["input"]["filtered"]) == (50, 550)
    assert rank["added_to_ranked_days"] == 50
    assert len(encoded) == (50 if embed else 0)
    assert summary_line(res).startswith("ranking: 50 rows written (50 added to days already ranked)"
                                        + (", 5 days already complete; " if embed else "; "))
    r = backfill_table(out, "ranked")
    ids = r.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 600 and r.column("date").to_pylist().count(last) == 100
    assert res.summary["ranked"]["rows"] == 600
    old_rows = {x["id"]: x for x in before.to_pylist()}
    for row in r.to_pylist():          # the rows written before are as they were, the revised paper's too
        if row["id"] in old_rows:
            assert row == old_rows[row["id"]]
    assert old_rows["2601.00001"]["version"] == 1 and not any("second version" in t for t in encoded)
    if not embed:
        assert res.run["phases"]["score"]["to_do"] == 50
    if embed:                          # the new rows were ranked among the whole day
        assert {x["day_papers"] for x in r.to_pylist() if x["date"] == last and x["id"] not in old_rows} == {100}
    again = run_backfill(BackfillSpec(source=snap, **spec), backfill_settings())
    assert "skipped" in again.run["phases"]["rank"]


def test_a_failed_runs_error_in_the_manifest_carries_no_secret(tmp_path, monkeypatch):
    """The manifest records a failed run's error text as every other stored error text is: redacted. An error
    whose text carries a credential (here a scoring call that raised with the Authorization header in its
    text) was written into manifest.json as it came."""
    from ranker.backends.fake import FakeBackend
    key = "sk-test-SECRET-0123456789"

    def leaky(self, requests, *args, **kwargs):
        raise RuntimeError(f"upstream refused the request (Authorization: Bearer {key})")
    monkeypatch.setattr(FakeBackend, "generate", leaky)
    out = tmp_path / "bf"
    with pytest.raises(RuntimeError):
        run_backfill(BackfillSpec(source=DAYS, out=out, score=True), backfill_settings())
    text = (out / "manifest.json").read_text()
    run = json.loads(text)["runs"][-1]
    assert run["status"] == "failed" and run["error"].startswith("RuntimeError: upstream refused the request (")
    assert "[redacted]" in run["error"] and key not in text and "sk-test" not in text


def test_a_paper_cross_listed_again_is_scored_from_the_day_that_kept_it(tmp_path, monkeypatch):
    """A paper announced on two days (cross-listed again later: 15 of the shared 50 days' papers are) was scored
    only from its first day: passed over as not kept there, it got a not_kept row and was never scored, though
    its later day kept it (2504.15777 is on 2025-04-23 and, a GPT pick, on 2025-06-13). It is scored from the
    day that kept it, in one run over both days, and by a rerun whose newer source brings the later day."""
    hashed_embedder(monkeypatch)
    rows = [json.loads(line) for line in (DAYS / "2025-05-15" / "listing.jsonl").open()][:30]
    day_a = tmp_path / "a.jsonl"
    day_a.write_text("".join(json.dumps(r) + "\n" for r in rows))
    probe = tmp_path / "probe"
    run_backfill(BackfillSpec(source=day_a, out=probe, embed=True), backfill_settings(top=5))
    passed = [i for i, k in zip(*(backfill_table(probe, "ranked").column(c).to_pylist() for c in ("id", "kept")))
              if not k]
    x = next(r for r in rows if r["id"] == passed[0])
    later = tmp_path / "both"
    later.mkdir()
    shutil.copy(day_a, later / "a.jsonl")
    (later / "b.jsonl").write_text(json.dumps({**x, "date": "2025-05-16"}) + "\n")   # a day of one: kept
    for name, sources in (("once", [later]), ("rerun", [day_a, later])):
        out = tmp_path / name
        for src in sources:
            res = run_backfill(BackfillSpec(source=src, out=out, embed=True, score=True), backfill_settings(top=5))
        ranked = {(r["id"], r["date"]): r["kept"] for r in backfill_table(out, "ranked").to_pylist()}
        assert ranked[(x["id"], "2025-05-15")] is False and ranked[(x["id"], "2025-05-16")] is True
        best = {r["id"]: r for r in shards.best_scores(backfill_table(out, "scores")).to_pylist()}
        assert (best[x["id"]]["status"], best[x["id"]]["date"]) == ("scored", "2025-05-16"), name
        assert (best[x["id"]]["RELEVANCE"], best[x["id"]]["NOVELTY"]) == fake_scores(x["id"])
        key = f"fake:m|{res.run['scoring']['prompt_hash']}"
        assert res.summary["scores"][key]["scored"] == 6 and res.summary["scores"][key]["not_kept"] == 24
        again = run_backfill(BackfillSpec(source=later, out=out, embed=True, score=True), backfill_settings(top=5))
        assert again.run["phases"]["score"]["to_do"] == 0                 # scored once: nothing left


def test_the_summary_counts_papers_kept_as_it_counts_papers(tmp_path):
    """A paper listed on two days is two ranked rows: the summary's "kept" counted rows beside "papers" counting
    papers, and the line read "ranking: 45 papers written; 40 papers in 2 days, 45 kept" (more kept than there
    were). "kept" counts papers (kept_rows the rows) and the line says rows where it counts them."""
    rows = [json.loads(line) for line in (DAYS / "2025-05-15" / "listing.jsonl").open()][:20]
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (src / "b.jsonl").write_text("".join(json.dumps({**r, "date": "2025-05-16"}) + "\n" for r in rows[:5]))
    res = run_backfill(BackfillSpec(source=src, out=tmp_path / "bf", score=True), backfill_settings())
    ranked = res.summary["ranked"]
    assert (ranked["rows"], ranked["papers"], ranked["days"]) == (25, 20, 2)
    assert (ranked["kept"], ranked["kept_rows"]) == (20, 25)
    # the 5 extra rows are said: "25 rows written; 20 papers" left the reader to guess why (1,323 rows for 1,322
    # papers on the shared days 2025-05-06..13, where 2505.04999 is cross-listed into cs.LG, then into cs.AI)
    assert ranked["relisted"] == 5
    assert summary_line(res).startswith("ranking: 25 rows written; 20 papers in 2 days (5 listed on more than one), "
                                        "20 kept; scoring: 20 to score (0 already done), 20 scored, 0 failed in "
                                        "all;"), summary_line(res)


def test_a_paper_passed_over_on_one_day_and_failed_on_another_is_owed_a_score():
    """A paper passed over on its first day (a not_kept row) and kept on a later one whose request failed: the
    best row was the not_kept one, so the summary counted it as passed over, "N failed in all" missed it and an
    import recorded no failure, while the next run tried it again. Its failed row is the one that stands."""
    row = {f.name: None for f in shards.SCORES}
    rows = [{**row, "id": "2505.00001", "date": "2025-05-15", "model": "fake:m", "prompt_hash": "h",
             "status": "not_kept", "kept": False, "written_at": 1.0},
            {**row, "id": "2505.00001", "date": "2025-05-16", "model": "fake:m", "prompt_hash": "h",
             "status": "failed", "kept": True, "error": "timeout", "written_at": 2.0},
            {**row, "id": "2505.00002", "date": "2025-05-15", "model": "fake:m", "prompt_hash": "h",
             "status": "not_kept", "kept": False, "written_at": 1.0},
            {**row, "id": "2505.00002", "date": "2025-05-16", "model": "fake:m", "prompt_hash": "h",
             "status": "scored", "kept": True, "RELEVANCE": 8, "NOVELTY": 7, "written_at": 0.5}]
    best = {r["id"]: r for r in shards.best_scores(pa.Table.from_pylist(rows, schema=shards.SCORES)).to_pylist()}
    assert (best["2505.00001"]["status"], best["2505.00001"]["date"]) == ("failed", "2025-05-16")
    assert (best["2505.00002"]["status"], best["2505.00002"]["date"]) == ("scored", "2025-05-16")


def test_ctrl_c_while_the_run_is_summed_up_still_records_the_run(tmp_path, monkeypatch):
    """Ctrl-C (or systemd's SIGTERM) after the work, while the folder's totals are read from every shard (seconds
    on months of history): the run, which scored every paper, was left out of manifest.json (its counts and its
    spend lost; the earlier manifest kept, with the totals of before it). It is recorded, as interrupted, and
    the stale totals are not kept as this folder's."""
    out = tmp_path / "bf"
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=out, score=True)
    run_backfill(BackfillSpec(source=DAYS / "2025-05-13", out=out, score=True), backfill_settings())

    def stopped(out):
        raise KeyboardInterrupt
    monkeypatch.setattr(shards, "summary", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_backfill(spec, backfill_settings())
    m = json.loads((out / "manifest.json").read_text())
    assert [r["status"] for r in m["runs"]] == ["ok", "interrupted"]
    score = m["runs"][-1]["phases"]["score"]
    assert score["rows_written"] == score["to_do"] > 0 and score["engine"]["requests"] > 0
    assert "summary" not in m                 # not the totals of before this run's rows
    monkeypatch.undo()
    res = run_backfill(spec, backfill_settings())
    assert res.run["phases"]["score"]["to_do"] == 0 and res.summary["ranked"]["rows"] == m["runs"][-1][
        "phases"]["rank"]["rows_written"] + m["runs"][0]["phases"]["rank"]["rows_written"]


def test_importing_again_writes_no_vector_the_store_holds_and_a_paper_on_two_days_has_one(tmp_path, monkeypatch):
    """`ranker import` after each resume of a long backfill: every vector of the folder was written again
    (INSERT OR REPLACE: each row moved above the corpus index's mark, which then read them all back), and the
    import said "N vectors" for them; a paper announced on two days was counted (and written) twice. A vector
    already stored for the same text is left as it is, and the count is of the vectors written."""
    import sqlite3
    hashed_embedder(monkeypatch)
    rows = [json.loads(line) for line in (DAYS / "2025-05-15" / "listing.jsonl").open()][:30]
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (src / "b.jsonl").write_text(json.dumps({**rows[0], "date": "2025-05-16"}) + "\n")
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    run_backfill(BackfillSpec(source=src, out=out, embed=True), backfill_settings())
    with Store(db) as store:
        first = import_backfill(out, store)
        assert (first.papers, first.embeddings, store.count_embeddings("minilm")) == (30, 30, 30)

    def rowids():
        with closing(sqlite3.connect(db)) as c:
            return c.execute("SELECT rowid, paper_id, text_hash FROM embeddings ORDER BY rowid").fetchall()
    before = rowids()
    with Store(db) as store:
        again = import_backfill(out, store)
    assert (again.papers, again.embeddings) == (0, 0) and rowids() == before
    assert again.index.count == 30 and again.index.added == 0


def test_a_paper_on_two_days_with_two_texts_has_the_vector_of_the_text_stored(tmp_path, monkeypatch):
    """A paper listed on two days with its text changed between them (no version number, as a day's listing
    gives): the store keeps the later read's text, while the import stored the first day's row's vector, of the
    older text (the index then served it, and the prefilter embedded the paper again). The vector stored is the
    one of the text the store holds."""
    from ranker.prefilter.embed import paper_text, text_hash
    hashed_embedder(monkeypatch)
    rows = [json.loads(line) for line in (DAYS / "2025-05-15" / "listing.jsonl").open()][:10]
    assert rows[0].get("version") is None
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (src / "b.jsonl").write_text(json.dumps({**rows[0], "date": "2025-05-16",
                                             "abstract": rows[0]["abstract"] + " A corrected sentence."}) + "\n")
    out, db = tmp_path / "bf", tmp_path / "r.sqlite3"
    run_backfill(BackfillSpec(source=src, out=out, embed=True), backfill_settings())
    with Store(db) as store:
        import_backfill(out, store)
        held = text_hash(paper_text(store.get_paper(rows[0]["id"])))
        assert store.embedding_hashes([rows[0]["id"]], "minilm") == {rows[0]["id"]: held}


def test_a_run_stopped_while_ranking_records_what_it_left_on_disk(tmp_path, monkeypatch):
    """A run stopped while embedding, then one stopped while ranking days, were recorded in manifest.json with an
    empty rank phase: the rows they wrote were in no run's figures (the runs' rows_written did not add up to the
    folder's rows) and what they embedded was not said. Each records the ranked rows it wrote and the papers
    embedded and not ranked yet; the runs' rows then add up to the folder's."""
    from ranker.backfill import local
    from ranker.prefilter.embed import Embedder
    hashed_embedder(monkeypatch)
    encode, real = Embedder.encode, local.prefilter_day
    calls = []

    def stop_on_the_third_batch(self, texts):
        calls.append(len(texts))
        if len(calls) == 4:                   # the first call embeds the prompt's queries
            raise KeyboardInterrupt
        return encode(self, texts)
    monkeypatch.setattr(Embedder, "encode", stop_on_the_third_batch)
    out = tmp_path / "bf"
    spec = BackfillSpec(source=DAYS, out=out, embed=True, embed_batch=64)
    with pytest.raises(KeyboardInterrupt):
        run_backfill(spec, backfill_settings())
    (run,) = json.loads((out / "manifest.json").read_text())["runs"]
    assert run["status"] == "interrupted"
    assert (run["phases"]["rank"]["rows_written"], run["phases"]["rank"]["embedded_not_ranked"]) == (0, 128)
    monkeypatch.setattr(Embedder, "encode", encode)
    days = []

    def stop_on_the_third_day(t, *a, **k):
        if len(days) == 2:
            raise KeyboardInterrupt
        days.append(t.column("date")[0].as_py())
        return real(t, *a, **k)
    monkeypatch.setattr(local, "prefilter_day", stop_on_the_third_day)
    with pytest.raises(KeyboardInterrupt):
        run_backfill(spec, backfill_settings())
    rank = json.loads((out / "manifest.json").read_text())["runs"][-1]["phases"]["rank"]
    written = backfill_table(out, "ranked").num_rows
    assert rank["rows_written"] == written == sum(1 for f in DAYS.glob("*/listing.jsonl")
                                                  if f.parent.name in days for _ in f.open())
    assert rank["embedded_not_ranked"] == len(ALL_IDS) - written and rank["shards"] == 2
    monkeypatch.setattr(local, "prefilter_day", real)
    res = run_backfill(spec, backfill_settings())
    runs = json.loads((out / "manifest.json").read_text())["runs"]
    assert [r["status"] for r in runs] == ["interrupted", "interrupted", "ok"]
    assert sum(r["phases"]["rank"]["rows_written"] for r in runs) == res.summary["ranked"]["rows"] == len(ALL_IDS)


def test_the_summary_counts_as_to_score_only_the_papers_the_prefilter_kept(tmp_path, monkeypatch):
    """An embedded backfill said "scoring: 192 to score (0 already done), 10 scored": the 182 papers the prefilter
    passed over (settled without a request) were counted as papers to score, which read as 182 missing, and
    as that many requests to pay for on a metered API. They are said apart; the rerun has nothing to score."""
    hashed_embedder(monkeypatch)
    day = DAYS / "2025-05-15"
    n = sum(1 for _ in (day / "listing.jsonl").open())
    out = tmp_path / "bf"
    res = run_backfill(BackfillSpec(source=day, out=out, embed=True, score=True), backfill_settings(top=10))
    assert f"; scoring: 10 to score ({n - 10} not kept, 0 already done), 10 scored, 0 failed in all;" \
        in summary_line(res)
    assert res.run["phases"]["score"]["engine"]["requests"] == 10
    again = run_backfill(BackfillSpec(source=day, out=out, embed=True, score=True), backfill_settings(top=10))
    assert f"; scoring: 0 to score ({n} already done), 10 scored, 0 failed in all;" in summary_line(again)


def test_a_stopped_run_s_embedding_survives_a_new_day_added_to_its_folder(tmp_path, monkeypatch):
    """A backfill of a folder of days stopped while embedding, resumed after the next day's listing was added to
    the folder (a daily fetch into the history the backfill reads): everything it had embedded was thrown away
    and embedded again (hours, on months of history), as if a file it read had changed. Only the papers not
    embedded yet are; a file that did change still empties the spill."""
    from ranker.prefilter.embed import Embedder
    hashed_embedder(monkeypatch)
    src = tmp_path / "days"
    days = sorted(DAYS.iterdir())
    for d in days[:4]:
        shutil.copytree(d, src / d.name)
    encode, encoded = Embedder.encode, []

    def stop_on_the_fourth_call(self, texts):      # the first call embeds the prompt's queries
        if len(encoded) == 3:
            raise KeyboardInterrupt
        encoded.append(len(texts))
        return encode(self, texts)
    monkeypatch.setattr(Embedder, "encode", stop_on_the_fourth_call)
    out = tmp_path / "bf"
    spec = BackfillSpec(source=src, out=out, embed=True, embed_batch=64)
    with pytest.raises(KeyboardInterrupt):
        run_backfill(spec, backfill_settings())
    monkeypatch.setattr(Embedder, "encode", lambda self, texts: encoded.append(len(texts)) or encode(self, texts))
    shutil.copytree(days[4], src / days[4].name)
    encoded.clear()
    res = run_backfill(spec, backfill_settings())
    assert res.run["phases"]["rank"]["already_embedded"] == 128
    assert sum(encoded[1:]) == len(ALL_IDS) - 128                   # the queries, then only the rest
    assert sorted(backfill_table(out, "ranked").column("id").to_pylist()) == ALL_IDS

    out2 = tmp_path / "bf2"                                           # a file it read changed: embedded again
    spec = BackfillSpec(source=src, out=out2, embed=True, embed_batch=64)
    monkeypatch.setattr(Embedder, "encode", stop_on_the_fourth_call)
    encoded.clear()
    with pytest.raises(KeyboardInterrupt):
        run_backfill(spec, backfill_settings())
    first = src / days[0].name / "listing.jsonl"
    first.write_text(first.read_text().replace("a", "a", 1) + "\n")
    monkeypatch.setattr(Embedder, "encode", lambda self, texts: encoded.append(len(texts)) or encode(self, texts))
    res = run_backfill(spec, backfill_settings())
    assert res.run["phases"]["rank"]["already_embedded"] == 0


def test_a_folder_an_older_ranker_pinned_resumes_under_the_same_rule(tmp_path, monkeypatch):
    """A ranker from before the keep rule was pinned as it applies wrote top and keep as given (None: the
    default) and recall only when set: resumed with the same settings it goes on (it was refused as 'kept by the
    default, this run asks for keep = 0.4'), and a rule that keeps otherwise is still refused."""
    from ranker.backfill import manifest as mf
    hashed_embedder(monkeypatch)
    out = tmp_path / "bf"
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=out, embed=True)
    run_backfill(spec, backfill_settings())

    def as_older(**pinned):
        m = mf.load(out)
        for key in ("recall", "exclude", "authors"):            # keys that ranker did not write
            m["pinned"].pop(key, None)
        m["pinned"].update(pinned)
        mf.save(out, m)
    as_older(keep=None, top=None)                               # the default: 40% without a calibration
    run_backfill(spec, backfill_settings())
    assert {"keep": 0.4, "recall": None, "top": None}.items() <= mf.load(out)["pinned"].items()
    as_older(keep=None, top=None)
    run_backfill(spec, backfill_settings(keep=0.4))             # the same rule spelt out
    as_older(keep=0.3, top=None, recall=0.7)                    # keep won over recall there as it does here
    run_backfill(spec, backfill_settings(keep=0.3))
    as_older(keep=None, top=None)
    with pytest.raises(InputError) as e:                        # another rule: still refused
        run_backfill(spec, backfill_settings(recall=0.7))
    assert e.value.key in ("prefilter.keep", "prefilter.recall") and "keep = 0.4" in str(e.value), str(e.value)


def test_a_folder_ranked_under_other_topics_says_the_prompts_or_the_ranker_changed(tmp_path, monkeypatch):
    """The folder pins a digest of the topics read from the prompts. The same prompts read into other topics by
    a newer ranker (the topics reader changed since: 35 texts then, 48 now for the bundled prompts) is refused
    naming the prompts and the ranker that read them, not as a setting to put back ('queries = ...; use the same
    setting'), which the user never changed."""
    from ranker.backfill import manifest as mf
    hashed_embedder(monkeypatch)
    out = tmp_path / "bf"
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=out, embed=True)
    run_backfill(spec, backfill_settings())
    m = mf.load(out)
    m["pinned"]["queries"] = "1a5a8be954ab9638"            # what a ranker of early December read from them
    mf.save(out, m)
    with pytest.raises(InputError) as e:
        run_backfill(spec, backfill_settings())
    assert e.value.key == "scoring.prompts", e.value.key
    assert "prefilter topics" in e.value.message and "read them otherwise" in e.value.message
    assert "1a5a8be954ab9638" in e.value.message and "use the same setting" not in e.value.message


def test_a_backfill_whose_embedder_gives_nan_stops_naming_it_and_an_older_folder_s_nan_vectors_are_not_imported(
        tmp_path, monkeypatch):
    """A NaN vector from the model stops the backfill with one line naming the embedder and the paper; shards a
    ranker wrote before that check (NaN in them) import their papers, not those vectors, and say so."""
    from ranker.errors import ModelError
    from ranker.index import CorpusIndex
    from ranker.prefilter.embed import Embedder
    hashed_embedder(monkeypatch)
    day = "2025-05-13"
    first = json.loads((DAYS / day / "listing.jsonl").open().readline())["id"]
    hashed = Embedder.encode

    def broken(self, texts):
        m = hashed(self, texts)
        m[[t.startswith(title) for t in texts]] = np.nan
        return m
    title = " ".join(json.loads((DAYS / day / "listing.jsonl").open().readline())["title"].split())
    monkeypatch.setattr(Embedder, "encode", broken)
    with pytest.raises(ModelError, match=rf"^minilm: .*not finite.* paper {re.escape(first)}\b"):
        run_backfill(BackfillSpec(source=DAYS / day, out=tmp_path / "bf", embed=True), backfill_settings())
    monkeypatch.setattr(Embedder, "check_finite", lambda self, vecs, names: vecs)     # an older ranker's shards
    out = tmp_path / "bf-old"
    run_backfill(BackfillSpec(source=DAYS / day, out=out, embed=True), backfill_settings())
    with Store(tmp_path / "r.sqlite3") as store:
        res = import_backfill(out, store)
        assert res.not_finite == [first] and store.get_paper(first) is not None
        assert not store.get_vectors([first], "minilm") and res.embeddings == store.count_embeddings("minilm") > 0
        assert res.index.count == res.embeddings and CorpusIndex(store, "minilm").status().problem is None


def test_the_ray_workers_find_model_folders_named_from_the_commands_folder(tmp_path, monkeypatch):
    """`--embedder embs/mini --model ./llm` (folders of the command's working folder) with --engine ray: a worker
    runs in a folder of Ray's, where 'embs/mini' was taken for a Hugging Face id (a download, or offline mode's
    error) and './llm' was no folder. for_workers names them from the root as it does --out and --from, and
    vLLM's engine_args paths with them; a preset, an id and a folder already absolute stay as given."""
    from ranker import models
    from ranker.backfill.job import Job
    from ranker.backfill.plan import SourcePlan
    from ranker.backfill.ray_engine import for_workers
    from ranker.scoring import ScoreOptions
    monkeypatch.chdir(tmp_path)
    (tmp_path / "embs").mkdir()
    (tmp_path / "embs" / "mini").symlink_to(MODELS / "minilm")
    (tmp_path / "tok").mkdir()
    source = SourcePlan.of(DAYS / "2025-04-30" / "listing.jsonl")

    def worker(settings):
        job = Job(spec=BackfillSpec(source="x", out="bf"), settings=settings, out=Path("bf"), source=source,
                  filters=Filters(), pins={}, prompts=None, options=ScoreOptions.from_settings(settings.scoring))
        return for_workers(job).settings

    s = worker(backfill_settings('engine_args={download_dir = "hf", tokenizer = "./tok", max_model_len = 512}',
                                 backend="vllm", model="./llm", embedder="embs/mini"))
    monkeypatch.chdir("/")                          # where the worker runs
    assert models.resolve(s.prefilter.embedder, kind="embedder", models_dir=s.models_dir) == \
        str((MODELS / "minilm").resolve())
    assert s.scoring.model == str(tmp_path / "llm")                 # not there yet: a folder by its "./"
    assert s.scoring.options["vllm"]["engine_args"] == {"download_dir": str(tmp_path / "hf"),
                                                        "tokenizer": str(tmp_path / "tok"), "max_model_len": 512}
    monkeypatch.chdir(tmp_path)
    s = worker(backfill_settings('engine_args={tokenizer = "Qwen/Qwen2.5-0.5B-Instruct"}', backend="vllm",
                                 model="Qwen/Qwen2.5-0.5B-Instruct", embedder="minilm"))
    assert (s.prefilter.embedder, s.scoring.model) == ("minilm", "Qwen/Qwen2.5-0.5B-Instruct")
    assert s.scoring.options["vllm"]["engine_args"] == {"tokenizer": "Qwen/Qwen2.5-0.5B-Instruct"}


def test_an_address_ray_reads_as_a_client_or_a_bad_port_is_no_unexpected_failure(monkeypatch):
    """The early check of --address: an address of another protocol (anyscale://..., which ray.init hands to Ray
    Client as it does ray://) is left to ray.init, as is `auto` that RAY_ADDRESS makes one; a port that is no port
    number ('127.0.0.1:abc', ':99999') is one line. Both ended the command 'unexpected failure: 'ValueError'
    object has no attribute 'strerror''."""
    pytest.importorskip("ray", reason="the ray extra (ranker[ray]) is not installed")
    from ranker.backfill.ray_engine import _not_answering
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert _not_answering("anyscale://my-cluster") is None and _not_answering("ray://10.0.0.1") is None
    monkeypatch.setenv("RAY_ADDRESS", "anyscale://my-cluster")
    assert _not_answering("auto") is None
    monkeypatch.delenv("RAY_ADDRESS")
    for bad, port in (("127.0.0.1:abc", "abc"), ("127.0.0.1:99999", "99999"), ("ray://h:99999999", "99999999")):
        why = _not_answering(bad)
        assert why is not None and why.startswith(f"no Ray cluster at {bad}: ") and f"'{port}' is not a port" in why


@pytest.mark.parametrize("kind, says", [
    ("http", "an HTTP/1 server answers there ('HTTP/1.0 505 "),
    ("echo", "something other than a Ray cluster answers there ('PRI * HTTP/2.0'; "),
    ("closing", "what listens there closed the connection without a word"),
    ("silent", "what listens there answered nothing in 0.5 s"),
])
def test_an_address_where_something_else_than_ray_listens_is_told_from_a_cluster(monkeypatch, kind, says):
    """The early check of --address took any listener for a cluster (it only connected): a web server, an echo, a
    socket that closes or answers nothing there passed it, and ray.init waited on it after the driver's own work.
    A Ray cluster speaks gRPC (HTTP/2): a gRPC server passes, and anything passes with TLS (RAY_USE_TLS), whose
    handshake this check does not speak. (Listening where Ray takes 127.0.0.1 to: this machine's address.)"""
    pytest.importorskip("ray", reason="the ray extra (ranker[ray]) is not installed")
    from ray._private.services import resolve_ip_for_localhost
    from ranker.backfill.ray_engine import _not_answering
    monkeypatch.delenv("RAY_USE_TLS", raising=False)
    host = resolve_ip_for_localhost("127.0.0.1")
    with listening(kind, host) as port:
        canonical = f"{host}:{port}"
        for address, named in ((f"127.0.0.1:{port}", f"127.0.0.1:{port}" + ("" if host == "127.0.0.1" else
                                                                             f" ({canonical})")),
                               (f"ray://{canonical}", f"ray://{canonical} ({canonical})")):
            start = time.monotonic()
            why = _not_answering(address, timeout=0.5)
            assert time.monotonic() - start < 3, kind
            assert why is not None and why.startswith(f"no Ray cluster at {named}: {says}"), why
        monkeypatch.setenv("RAY_USE_TLS", "1")
        assert _not_answering(f"127.0.0.1:{port}", timeout=0.5) is None
    monkeypatch.delenv("RAY_USE_TLS")
    with listening("grpc", host) as port:
        assert _not_answering(f"127.0.0.1:{port}") is None and _not_answering(f"ray://{host}:{port}") is None


def test_an_address_whose_listener_trickles_bytes_is_told_within_the_check_s_time():
    """The early check's timeout bounded each read, not the check: a listener sending one byte every 0.27 s kept
    a check of 0.3 s busy 32 s (and one of the default 5 s, about 160 s), as long as 120 bytes took to come."""
    pytest.importorskip("ray", reason="the ray extra (ranker[ray]) is not installed")
    from ray._private.services import resolve_ip_for_localhost
    from ranker.backfill.ray_engine import _not_answering
    with listening("trickle", resolve_ip_for_localhost("127.0.0.1"), every=0.8 * 0.5) as port:
        start = time.monotonic()
        why = _not_answering(f"127.0.0.1:{port}", timeout=0.5)
        took = time.monotonic() - start
    assert took < 2 * 0.5, took
    assert why is not None and "something other than a Ray cluster answers there ('x" in why, why


@pytest.mark.parametrize("source", ["-", "/dev/stdin", "/dev/fd/0"])
def test_a_backfill_from_stdin_is_refused_in_one_line_saying_why(tmp_path, source):
    """`zcat snap.gz | ranker backfill --from - ...` said "-: no such file or folder", as if the user had named a
    file '-'; a backfill's source is read by path (by Ray's read tasks, by the rerun that resumes it). stdin by
    its other names said "/dev/stdin: not a directory", naming no flag."""
    from conftest import RANKER
    r = subprocess.run([*RANKER, "backfill", "--from", source, "--out", str(tmp_path / "bf"), "--embed"],
                       input=(DAYS / "2025-05-15" / "listing.jsonl").read_bytes(), capture_output=True, cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr.decode() == ("error: --from: a backfill does not read stdin: its source is read by path, by "
                                 "Ray's read tasks (on any node) and by a rerun, which resumes by the files' paths, "
                                 "sizes and times; save it to a file (a .gz snapshot is read as it is)\n")
    assert not (tmp_path / "bf").exists() and not (tmp_path / "-").exists()


def test_a_backfill_from_a_shells_pipe_is_refused_naming_the_flag(tmp_path):
    """`--from <(zcat snap.gz)` (/dev/fd/N) said "/dev/fd/N: not a directory", naming no flag."""
    from conftest import RANKER
    fd = os.open(DAYS / "2025-05-15" / "listing.jsonl", os.O_RDONLY)
    try:
        r = subprocess.run([*RANKER, "backfill", "--from", f"/dev/fd/{fd}", "--out", str(tmp_path / "bf"),
                            "--embed"], capture_output=True, cwd=tmp_path, pass_fds=(fd,))
    finally:
        os.close(fd)
    assert r.returncode == 1
    assert r.stderr.decode().startswith(f"error: --from: a backfill does not read a stream (descriptor {fd}): ")
    assert r.stderr.decode().count("\n") == 1 and not (tmp_path / "bf").exists()



def test_the_manifests_processes_are_labelled_by_what_was_measured(tmp_path, monkeypatch):
    """A Ray engine that failed before its memory sampler started has no samples: the manifest held the driver's
    own peak under "driver and its Ray instance", which was not measured. (An engine in Ray's place, failing as
    its first read does: no Ray started.)"""
    from ranker.backfill import job as job_module

    class FailedEarly:
        name = "ray"
        processes, processes_of = None, "driver and its Ray instance"

        def check_address(self):              # a cluster that answers: the failure comes at the first read
            pass

        def __getattr__(self, name):
            raise RuntimeError("Ray failed to start")

        def close(self):
            pass

    monkeypatch.setattr(job_module, "_engine", lambda *a: FailedEarly())
    out = tmp_path / "bf"
    with pytest.raises(RuntimeError):
        run_backfill(BackfillSpec(DAYS / "2025-05-15" / "listing.jsonl", out, score=True), backfill_settings(),
                     engine="ray")
    run = json.loads((out / "manifest.json").read_text())["runs"][-1]
    assert run["status"] == "failed" and run["processes_of"] == "driver", run
    assert [p["name"] for p in run["processes"]] == ["driver"] and run["processes"][0]["pid"] == os.getpid()
    sampled = [{"pid": 1, "name": "driver", "peak_rss_mb": 10.0}, {"pid": 2, "name": "raylet", "peak_rss_mb": 5.0}]
    from types import SimpleNamespace
    assert job_module.measured_processes(SimpleNamespace(processes=sampled, processes_of="driver and its Ray instance")
                                         ) == (sampled, "driver and its Ray instance")


@pytest.mark.parametrize("address, said", [
    ("127.0.0.1:6379", "; the driver's peak RSS 300 MB (the cluster's not measured); "),
    (None, "; peak RSS 300 MB over 1 process; "),
])
def test_the_summary_says_the_cluster_was_not_measured_only_when_one_was_joined(address, said):
    """A Ray run whose Ray instance was started here but sampled nothing (its manifest says "driver") joined no
    cluster: the summary said "(the cluster's not measured)" of a run that had none."""
    from types import SimpleNamespace
    run = {"engine": "ray", "address": address, "phases": {"rank": {"rows_written": 3}}, "seconds": 1.0,
           "processes": [{"peak_rss_mb": 300.0}], "processes_of": "driver"}
    res = SimpleNamespace(run=run, summary={"ranked": {"papers": 3, "days": 1}}, out="bf")
    assert said in summary_line(res)


def test_the_summary_groups_every_count_of_a_large_backfill():
    """A backfill is where the counts run to hundreds of thousands: its summary grouped the papers and rows
    (counted) but not the scoring's ("scoring: 120000 to score (540000 not kept, 0 already done), 120000 scored"),
    two styles in one line, nor the days added to ("12000 added to days already ranked"); and "over 1
    process(es)" where every other count is said in the singular or the plural."""
    from types import SimpleNamespace
    run = {"engine": "ray", "address": None, "seconds": 1.0, "processes_of": "driver and its Ray instance",
           "phases": {"rank": {"rows_written": 660000, "added_to_ranked_days": 12000},
                      "score": {"to_do": 660000, "not_kept": 540000, "already_done": 1500}},
           "scoring": {"model": "m", "prompt_hash": "h"},
           "processes": [{"peak_rss_mb": 300.0}, {"peak_rss_mb": 900.0}, {"peak_rss_mb": 1200.0}]}
    summary = {"ranked": {"papers": 660000, "days": 500, "kept": 120000},
               "scores": {"m|h": {"scored": 118500, "failed": 1500}}}
    line = summary_line(SimpleNamespace(run=run, summary=summary, out="bf"))
    assert "(12,000 added to days already ranked)" in line, line
    assert "scoring: 120,000 to score (540,000 not kept, 1,500 already done), 118,500 scored, 1,500 failed in all" \
        in line, line
    assert "; peak RSS 1200 MB over 3 processes; " in line, line
    assert not re.search(r"\b\d{4,}\b", line.replace("1200 MB", "")), line


@pytest.mark.parametrize("kind", ["ranked", "scores"])
def test_a_fifo_named_as_a_shard_stops_a_rerun_and_an_import_in_one_line_naming_it(tmp_path, one_day_backfill, kind):
    """Shards are found by listing OUT/ranked and OUT/scores: a FIFO named as one is no shard ranker wrote. Not
    opened (no wait for a writer), and not skipped either, as a damaged shard is not: the rerun and the import
    stop in one line naming it (Arrow's own words said the path twice and spoke of Windows' NUL and CON)."""
    out = tmp_path / "bf"
    shutil.copytree(one_day_backfill, out)
    fifo = shards.shard_files(out / kind)[0].parent / f"{kind}-fedcba9876543210.parquet"
    os.mkfifo(fifo)
    for args, flag in ((["import", out, "--db", tmp_path / "r.sqlite3"], ""),       # FOLDER: an argument
                       (["backfill", "--from", DAYS / "2025-05-15", "--out", out, "--score", "--backend", "fake",
                         "--model", "n"], "--out ")):                                 # in the folder --out names
        p = ranker(*args, timeout=30)
        assert p.returncode == 1 and p.stderr.splitlines()[-1] == \
            f"error: {flag}{fifo}: a named pipe named as a shard, not a file ranker wrote; remove it", p.stderr


def test_a_fifo_in_the_place_of_the_backfill_lock_file_is_locked_without_waiting(tmp_path, one_day_backfill):
    """OUT/.lock was opened as a stream to append to: a FIFO in its place stopped a rerun with "error: file or
    stream is not seekable.", naming no file. It is opened without waiting, as the index's lock file is, and
    locked all the same."""
    out = tmp_path / "bf"
    shutil.copytree(one_day_backfill, out)
    (out / ".lock").unlink(missing_ok=True)
    os.mkfifo(out / ".lock")
    p = ranker("backfill", "--from", DAYS / "2025-05-15", "--out", out, "--score", "--backend", "fake", "--model",
               "n", timeout=30)
    assert p.returncode == 0, p.stderr


def test_a_fifo_named_as_the_backfill_manifest_stops_an_import_in_one_line_naming_it(tmp_path, one_day_backfill):
    """OUT/manifest.json was read as text: a FIFO in its place hung `ranker import` (and a rerun) for good."""
    out = tmp_path / "bf"
    shutil.copytree(one_day_backfill, out)
    (out / "manifest.json").unlink()
    os.mkfifo(out / "manifest.json")
    p = ranker("import", out, "--db", tmp_path / "r.sqlite3", timeout=30)
    assert p.returncode == 1 and p.stderr.splitlines()[-1] == f"error: {out / 'manifest.json'}: a named pipe named " \
        "as the backfill manifest, not a file ranker wrote; remove it", p.stderr


def test_a_backfill_run_records_its_start_and_end_with_their_utc_offset(tmp_path, monkeypatch):
    """The manifest's runs[].started/finished were the local time without a zone (`2026-12-08T08:00:00` in
    Tokyo), unlike a day's run manifest (`2026-12-08T08:00:00+0900`): a backfill folder copied to a machine in
    another zone, or read beside UTC times, placed its runs hours off. Each says its offset and the clock's
    instant."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        before = time.time()
        run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "bf", score=True), backfill_settings())
        after = time.time()
    finally:
        monkeypatch.undo()
        time.tzset()
    (run,) = json.loads((tmp_path / "bf" / "manifest.json").read_text())["runs"]
    started, finished = (datetime.fromisoformat(run[k]) for k in ("started", "finished"))
    tokyo = datetime.fromtimestamp(before, ZoneInfo("Asia/Tokyo")).utcoffset()
    assert started.utcoffset() == finished.utcoffset() == tokyo, run
    assert int(before) <= started.timestamp() <= finished.timestamp() <= after
