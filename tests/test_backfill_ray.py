"""`ranker backfill --engine ray` on a real Ray instance in local mode (ray.init on this machine, 2 CPUs, a
small object store): a 500-paper snapshot in eight embedding batches through the real MiniLM embedder, the
per-day prefilter and fake scoring; the same rows as the local engine; a scoring worker SIGKILLed mid-batch
and retried by Ray; one real vLLM (CPU) actor on 8 papers; a rerun that does nothing; import twice == once; a
SIGTERM (ray.init sets its own handler) stops the command as a Ctrl-C does."""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections import Counter

import numpy as np
import pytest

from conftest import DAYS, REPO, backfill_settings, rules_config, backfill_table, damaged_gz, grown_snapshot, ranker, \
    make_snapshot, parquet_files, snapshot_with_bad_lines, store_tables
from ranker.backends.fake import fake_scores
from ranker.backfill import BackfillSpec, import_backfill, run_backfill, shards
from ranker.errors import InputError, ModelError, RankerError
from ranker.netguard import OFFLINE_ENV
from ranker.store import Store

ray = pytest.importorskip("ray", reason="the ray extra (ranker[ray]) is not installed; `make test` installs it")
pytestmark = pytest.mark.slow          # a Ray instance (and most tests a real model) per module

RAY_OPTIONS = {"sample_memory": False}


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    """One Ray instance for the module: 2 CPUs, a 300 MB object store; its workers import this checkout and
    inherit offline mode's variables (no socket guard in this process: Ray finds its address by a connect)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join([str(REPO)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
        for k, v in OFFLINE_ENV.items():
            mp.setenv(k, v)
        temp = tempfile.mkdtemp(prefix="ranker-rt-", dir="/tmp")
        ray.init(num_cpus=2, object_store_memory=300 << 20, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, _temp_dir=temp)
        yield
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)


def test_500_papers_in_several_batches_embed_prefilter_and_fake_scoring_on_ray_then_rerun_and_import(tmp_path):
    """Five days of 100 papers, embedded in batches of 64 (eight batches, days across batches)."""
    snap = make_snapshot(tmp_path / "snap.json", 500, 100)                    # five days of 100 papers
    out = tmp_path / "bf"
    spec = BackfillSpec(source=snap, out=out, embed=True, score=True, embed_batch=64)
    with Store(tmp_path / "cache.sqlite3") as store:
        res = run_backfill(spec, backfill_settings(), engine="ray", store=store, ray_options=RAY_OPTIONS)
    assert res.run["status"] == "ok" and res.run["phases"]["rank"]["embed_actors"] == 1

    r = backfill_table(out, "ranked")
    ids = r.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 500                         # every paper exactly once
    per_day = Counter(r.column("date").to_pylist())
    assert sorted(per_day.values()) == [100] * 5
    kept = Counter(d for d, k in zip(r.column("date").to_pylist(), r.column("kept").to_pylist()) if k)
    assert kept == {d: 40 for d in per_day}                   # each day's own 40% (the default without a calibration)
    assert set(r.column("day_papers").to_pylist()) == {100}
    v = shards.vectors(r)
    assert v.shape == (500, 384) and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-3)

    s = backfill_table(out, "scores")
    assert sorted(s.column("id").to_pylist()) == sorted(ids)
    status = dict(zip(s.column("id").to_pylist(), s.column("status").to_pylist()))
    kept_ids = {i for i, k in zip(ids, r.column("kept").to_pylist()) if k}
    assert {i for i, st in status.items() if st == "scored"} == kept_ids
    assert {i for i, st in status.items() if st == "not_kept"} == set(ids) - kept_ids
    for row in s.to_pylist():
        if row["status"] == "scored":
            assert (row["RELEVANCE"], row["NOVELTY"]) == fake_scores(row["id"])

    before = parquet_files(out)                                     # a rerun: nothing to read, embed or score
    with Store(tmp_path / "cache.sqlite3") as store:
        again = run_backfill(spec, backfill_settings(), engine="ray", store=store, ray_options=RAY_OPTIONS)
    assert parquet_files(out) == before
    assert "skipped" in again.run["phases"]["rank"] and again.run["phases"]["score"]["to_do"] == 0

    db = tmp_path / "r.sqlite3"
    with Store(db) as st:
        first = import_backfill(out, st)
    once = store_tables(db)
    with Store(db) as st:
        import_backfill(out, st)
    assert store_tables(db) == once                                         # import twice == import once
    assert first.papers == 500 and first.embeddings == 500 and first.scores_new == len(kept_ids)
    assert len(once["embeddings"]) == 500 and {e[1] for e in once["embeddings"]} == {"minilm"}


def test_local_and_ray_engines_write_the_same_rows(tmp_path):
    """...and report the same progress: papers embedded, days ranked of all, papers scored of the to-do (the Ray
    engine said nothing, and `ranker backfill --engine ray` showed no bar)."""
    snap = make_snapshot(tmp_path / "snap.json", 150, 50)
    spec = dict(source=snap, embed=True, score=True)
    said = {"local": [], "ray": []}
    run_backfill(BackfillSpec(out=tmp_path / "local", **spec), backfill_settings(keep=0.3), engine="local",
                 progress=lambda *a: said["local"].append(a))
    run_backfill(BackfillSpec(out=tmp_path / "ray", **spec), backfill_settings(keep=0.3), engine="ray",
                 ray_options=RAY_OPTIONS, progress=lambda *a: said["ray"].append(a))
    last = {e: {stage: (done, total) for stage, done, total in calls} for e, calls in said.items()}
    assert last["ray"] == last["local"] == {"embedding": (150, None), "ranking days": (3, 3), "scoring": (150, 150)}
    for stage in last["ray"]:
        done = [d for s, d, _ in said["ray"] if s == stage]
        assert done == sorted(done), (stage, done)
    for kind, cols in (("ranked", ["id", "date", "kept", "topic", "day_papers"]),
                       ("scores", ["id", "date", "kept", "status", "RELEVANCE", "NOVELTY", "COMMENT"])):
        a, b = (backfill_table(tmp_path / e, kind).sort_by("id") for e in ("local", "ray"))
        assert a.num_rows == b.num_rows == 150
        assert a.select(cols).to_pylist() == b.select(cols).to_pylist()
        assert np.allclose(a.column("prefilter_score").to_numpy(), b.column("prefilter_score").to_numpy(),
                           atol=1e-5)
    assert np.allclose(shards.vectors(backfill_table(tmp_path / "local", "ranked").sort_by("id")),
                       shards.vectors(backfill_table(tmp_path / "ray", "ranked").sort_by("id")), atol=1e-4)


def test_the_ray_engine_keeps_by_the_users_rules_as_the_local_engine_does(tmp_path):
    """The user's exclusions and author pins travel to the Ray workers with the per-day plan: the same rows kept
    as by the local engine, no excluded paper kept or scored, every pinned author's paper kept."""
    from ranker.settings import resolve
    prompts, cfg = rules_config(tmp_path, "Bin-Bin Gao\nHao Sun\n", "diffusion model\nre:^\\s*federated\n",
                                "top = 8\nexclude = ['reinforcement learning']")
    settings = resolve(cfg, flags={"backend": "fake", "model": "m"})
    # the day's first 120 papers, not its 192: every pinned paper is among them, and so is a paper on diffusion
    # models that the top 8 takes without the exclusions (2505.08803); each engine embeds 120
    day = tmp_path / "days" / "2025-05-15"
    day.mkdir(parents=True)
    lines = (DAYS / "2025-05-15" / "listing.jsonl").read_bytes().splitlines(keepends=True)
    (day / "listing.jsonl").write_bytes(b"".join(lines[:120]))
    kept = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        run_backfill(BackfillSpec(source=day, out=out, embed=True, score=True), settings,
                     engine=engine, ray_options=RAY_OPTIONS if engine == "ray" else None)
        r, s = backfill_table(out, "ranked"), backfill_table(out, "scores")
        kept[engine] = {i for i, k in zip(r.column("id").to_pylist(), r.column("kept").to_pylist()) if k}
        assert {i for i, st in zip(s.column("id").to_pylist(), s.column("status").to_pylist())
                if st == "scored"} == kept[engine]
        text = {i: f"{t} {a}".lower() for i, t, a in zip(*(r.column(c).to_pylist() for c in ("id", "title",
                                                                                             "abstract")))}
        assert not any("diffusion model" in text[i] or "reinforcement learning" in text[i] for i in kept[engine])
    assert kept["ray"] == kept["local"]
    assert {"2505.09264", "2505.09265", "2505.08808", "2505.09203"} <= kept["ray"]     # the pins
    assert "2505.09263" not in kept["ray"]             # a pinned author's paper on diffusion models: excluded
    assert "2505.08803" not in kept["ray"]             # on diffusion models: in the top 8 but for the exclusions
    assert len(kept["ray"]) > 8


def test_a_run_stopped_while_embedding_is_resumed_on_ray_without_embedding_again(tmp_path, monkeypatch):
    """The embedding is spilled apart from the per-day shuffle: a run stopped after its first 50 of 150
    papers were embedded (here by the local engine, Ctrl-C) leaves them on disk, and the Ray engine's rerun
    embeds only the other 100; the rows are those of a run that was never stopped."""
    from ranker.backfill import local
    snap = make_snapshot(tmp_path / "snap.json", 150, 50)
    spec = dict(source=snap, embed=True, embed_batch=50)
    out = tmp_path / "bf"
    real, calls = local.EmbedStage.__call__, []

    def stop_at_the_second_batch(self, t):
        calls.append(t.num_rows)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, t)
    monkeypatch.setattr(local.EmbedStage, "__call__", stop_at_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run_backfill(BackfillSpec(out=out, **spec), backfill_settings(), engine="local")
    monkeypatch.undo()
    assert len(shards.pairs_in(shards.shard_files(out / shards.WORK_DIR / "embedded"))) == 50
    res = run_backfill(BackfillSpec(out=out, **spec), backfill_settings(), engine="ray", ray_options=RAY_OPTIONS)
    rank = res.run["phases"]["rank"]
    assert (rank["already_embedded"], rank["embedded"]) == (50, 100)
    assert not (out / shards.WORK_DIR).exists()              # the spill and, then empty, its folder: removed
    run_backfill(BackfillSpec(out=tmp_path / "whole", **spec), backfill_settings(), engine="local")
    a, b = (backfill_table(o, "ranked").sort_by("id") for o in (out, tmp_path / "whole"))
    assert a.num_rows == b.num_rows == 150
    assert a.select(["id", "date", "kept", "topic"]).to_pylist() == b.select(["id", "date", "kept", "topic"]).to_pylist()
    assert np.allclose(shards.vectors(a), shards.vectors(b), atol=1e-4)


def test_a_newer_snapshot_adds_the_late_papers_of_days_already_ranked_on_ray_as_locally(tmp_path):
    """The rerun from a newer snapshot (the older one's last day had 25 of its 50 papers): on Ray, as by the
    local engine, the 25 are embedded (nothing else) and ranked with the 25 rows that day holds, which stay as
    they were; both engines' folders end with the same rows."""
    old, snap = grown_snapshot(tmp_path, per_day=50)
    cols = ["id", "date", "version", "kept", "topic", "day_papers"]
    got = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        spec = dict(out=out, all_categories=True, embed=True)
        opts = dict(engine=engine, ray_options=RAY_OPTIONS if engine == "ray" else None)
        run_backfill(BackfillSpec(source=old, **spec), backfill_settings(), **opts)
        before = backfill_table(out, "ranked").sort_by("id").select(cols).to_pylist()
        res = run_backfill(BackfillSpec(source=snap, **spec), backfill_settings(), **opts)
        rank = res.run["phases"]["rank"]
        assert (rank["embedded"], rank["rows_written"], rank["added_to_ranked_days"]) == (25, 25, 25), engine
        assert (rank["days_already_complete"], res.summary["ranked"]["rows"]) == (5, 300), engine
        r = backfill_table(out, "ranked").sort_by("id")
        assert r.num_rows == 300 and [x for x in r.select(cols).to_pylist() if x in before] == before
        got[engine] = r
    a, b = got["local"], got["ray"]
    assert a.select(cols).to_pylist() == b.select(cols).to_pylist()
    assert np.allclose(a.column("prefilter_score").to_numpy(), b.column("prefilter_score").to_numpy(), atol=1e-5)


def test_a_worker_killed_mid_batch_is_retried_and_every_paper_lands_once(tmp_path):
    """The scoring actor SIGKILLs itself inside its first batch; Ray restarts it and retries the batch."""
    snap = make_snapshot(tmp_path / "snap.json", 600, 200)
    marker = tmp_path / "died"
    out = tmp_path / "bf"
    res = run_backfill(BackfillSpec(source=snap, out=out, score=True, shard_rows=100),
                       backfill_settings(f"die_once={str(marker)!r}", batch_size=50), engine="ray",
                       ray_options=RAY_OPTIONS)
    assert marker.exists()                                          # the worker did die
    assert res.run["status"] == "ok"
    s = backfill_table(out, "scores")
    ids = s.column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 600                         # every paper exactly once, in the files
    assert set(s.column("status").to_pylist()) == {"scored"}
    assert not [f for f in out.rglob("*") if f.name.endswith(".tmp")]


def test_a_paper_ranked_twice_on_the_same_day_is_scored_once_on_ray(tmp_path):
    """A folder whose a.jsonl and b.jsonl hold the same day, ranked (by the local engine, for a fixed layout)
    into 300-row shards: papers twice in one shard and papers in two shards. The Ray engine then scores
    another model: each paper once, one row each."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        shutil.copy(DAYS / "2025-05-15" / "listing.jsonl", src / name)
    out = tmp_path / "bf"
    spec = BackfillSpec(source=src, out=out, score=True, shard_rows=300)
    run_backfill(spec, backfill_settings())
    ranked = backfill_table(out, "ranked")
    assert ranked.num_rows == 384 and len(set(ranked.column("id").to_pylist())) == 192   # each paper twice
    res = run_backfill(spec, backfill_settings(model="n", batch_size=16), engine="ray", ray_options=RAY_OPTIONS)
    assert res.run["phases"]["score"]["to_do"] == 192 and res.run["phases"]["score"]["rows_written"] == 192
    s = backfill_table(out, "scores")
    ids = [i for i, m in zip(s.column("id").to_pylist(), s.column("model").to_pylist()) if m == "fake:n"]
    assert len(ids) == len(set(ids)) == 192
    assert res.summary["scores"][f"fake:n|{res.run['scoring']['prompt_hash']}"]["scored"] == 192


def test_the_ray_read_tasks_count_the_lines_they_skip_as_the_local_engine_does(tmp_path, monkeypatch):
    """A snapshot with bad lines cut into 16 KB ranges (a read task each): the manifest records the same counts
    by reason, and the same first lines by their line in the file, as the local engine's."""
    from ranker.backfill import plan
    snap = snapshot_with_bad_lines(tmp_path / "snap.json", garbage=20)
    of = plan.SourcePlan.of.__func__
    monkeypatch.setattr(plan.SourcePlan, "of", classmethod(lambda cls, source: of(cls, source, 16384)))
    got = {}
    for engine in ("local", "ray"):
        res = run_backfill(BackfillSpec(source=snap, out=tmp_path / engine, all_categories=True, score=True),
                           backfill_settings(), engine=engine, ray_options=RAY_OPTIONS if engine == "ray" else None)
        assert res.summary["ranked"]["rows"] == 300
        got[engine] = json.loads(res.manifest.read_text())["runs"][-1]["phases"]["rank"]
    assert got["ray"]["read_tasks"] > 30
    assert got["ray"]["input"] == got["local"]["input"]
    assert got["ray"]["input"]["skipped_by_reason"] == {"no_id": 1, "not_json": 22}
    assert [e.split(": ", 1)[0] for e in got["ray"]["input"]["skipped_first"]] == \
        [f"{snap}:{n}" for n in (41, 152, 303, 304, 305)]


def test_a_workers_error_reaches_the_caller_as_the_library_error(tmp_path):
    with pytest.raises(ModelError) as e:
        run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "bf", score=True),
                     backfill_settings(backend="vllm", model="no-such-model"), engine="ray", ray_options=RAY_OPTIONS)
    assert "no-such-model" in str(e.value) and "\n" not in str(e.value)
    m = json.loads((tmp_path / "bf" / "manifest.json").read_text())
    assert m["runs"][-1]["status"] == "failed"


def test_a_failed_pipeline_gives_its_actors_cpus_back_while_the_caller_holds_the_error(tmp_path):
    """Ray Data lets a failed pipeline's actors go by dropping its references to them; one left in the
    error's traceback kept its CPU, and the next pipeline in the process waited for it forever (the next test
    here, one vLLM actor beside a read task on 2 CPUs, hung to its timeout)."""
    import time
    with pytest.raises(ModelError) as e:
        run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "bf", score=True),
                     backfill_settings(backend="vllm", model="no-such-model"), engine="ray", ray_options=RAY_OPTIONS)
    deadline = time.monotonic() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ray.available_resources().get("CPU", 0) == 2, (ray.available_resources(), e.value)


# A process of its own (this module's Ray instance is up): a backfill whose Ray cannot start, then what it left.
FAILED_START = r"""
import json, os, sys, time
from pathlib import Path
from ranker.backfill import BackfillSpec, run_backfill
from ranker.errors import RankerError
from ranker.settings import resolve

def descendants():
    parent, name = {}, {}
    for d in Path("/proc").iterdir():
        try:
            stat = (d / "stat").read_text() if d.name.isdigit() else ""
        except OSError:
            continue
        if stat and stat[stat.rindex(")") + 2] != "Z":
            parent[int(d.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
            name[int(d.name)] = stat[stat.index("(") + 1:stat.rindex(")")]
    mine, todo = [], [os.getpid()]
    while todo:
        of = todo.pop()
        kids = [c for c, p in parent.items() if p == of]
        mine += kids
        todo += kids
    return sorted(name[p] for p in mine)

try:
    run_backfill(BackfillSpec(source=Path(sys.argv[1]), out=Path(sys.argv[2]), score=True),
                 resolve(flags={"backend": "fake", "model": "m"}), engine="ray",
                 ray_options={"object_store_mb": 1, "sample_memory": False})
except RankerError as e:              # held, as a caller holds it
    deadline = time.monotonic() + 10
    while descendants() and time.monotonic() < deadline:
        time.sleep(0.2)
    print(json.dumps({"error": str(e), "processes": descendants(),
                      "folders": [str(f) for f in Path("/tmp").glob(f"ranker-ray-*/session_*_{os.getpid()}")]}))
"""


def test_a_ray_that_fails_to_start_leaves_no_process_or_folder_behind(tmp_path):
    """ray.init can fail after starting Ray's first processes (here an object store below Ray's minimum); Ray's
    own shutdown does not know of them. They ran on (the GCS, the autoscaler's monitor, the dashboard on its
    port) until the process exited, and the run's Ray folder stayed in /tmp."""
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, "-c", FAILED_START, str(DAYS / "2025-05-15"), str(tmp_path / "bf")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip(), proc.stderr[-3000:]
    left = json.loads(proc.stdout.strip().splitlines()[-1])
    assert left["error"].startswith("cannot start or reach Ray: ") and "object store" in left["error"]
    assert left["processes"] == [], left
    assert left["folders"] == [], left


def test_a_damaged_gz_read_by_a_ray_task_is_the_error_naming_the_file(tmp_path):
    """A .gz cut short or corrupt past what the plan's sniff reads fails in the Ray read task: the caller gets
    the InputError naming the file (zlib's own error was "the Ray pipeline failed")."""
    files = damaged_gz(tmp_path)
    for name in ("cut", "corrupt"):
        with pytest.raises(InputError) as e:
            run_backfill(BackfillSpec(source=files[name], out=tmp_path / name, score=True), backfill_settings(),
                         engine="ray", ray_options=RAY_OPTIONS)
        assert e.value.where == str(files[name]) and e.value.message.startswith("cannot read ("), (name, e.value)


def test_a_source_file_a_ray_worker_cannot_open_is_one_line_naming_the_file(tmp_path, monkeypatch):
    """A file of the source the workers cannot open (on a cluster, --from on the driver's disk only; here taken
    away once the run is planned): the caller got Ray's retry advice where the file's name belongs ("No such file
    or directory: 'Failed to apply UDF transform after 1/1 attempts..."), the file named nowhere."""
    from ranker.backfill import ray_engine
    src = tmp_path / "day.jsonl"
    shutil.copy(DAYS / "2025-05-15" / "listing.jsonl", src)
    planned = ray_engine.papers_datasource

    def gone(*args, **kwargs):
        src.unlink()
        return planned(*args, **kwargs)

    monkeypatch.setattr(ray_engine, "papers_datasource", gone)
    with pytest.raises(RankerError) as e:
        run_backfill(BackfillSpec(source=src, out=tmp_path / "bf", all_categories=True, score=True),
                     backfill_settings(), engine="ray", ray_options=RAY_OPTIONS)
    msg = str(e.value)
    assert f"FileNotFoundError: [Errno 2] No such file or directory: '{src}'" in msg, msg
    assert "\n" not in msg and "attempts" not in msg and "retr" not in msg, msg


def test_a_failed_ranking_ends_its_read_tally_while_the_caller_holds_the_error(tmp_path):
    """The read tasks count what they skip in an actor of the ranking's; a pipeline that failed left it alive (a
    worker process of its own) for as long as the caller held the error, whose frames held its handle."""
    import time
    files = damaged_gz(tmp_path)
    with pytest.raises(InputError) as e:
        run_backfill(BackfillSpec(source=files["cut"], out=tmp_path / "bf", score=True), backfill_settings(),
                     engine="ray", ray_options=RAY_OPTIONS)
    deadline = time.monotonic() + 30
    while _actor_processes("ReadTally") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _actor_processes("ReadTally"), e.value


def _actor_processes(cls: str) -> list[int]:
    """The living processes below this one that run an actor of class `cls` (Ray names them ray::<class>)."""
    from pathlib import Path

    from ranker.backfill.procmem import descendants
    out = []
    for pid in descendants(os.getpid()):
        try:
            named = (Path(f"/proc/{pid}") / "cmdline").read_bytes().startswith(f"ray::{cls}".encode())
            living = (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            continue
        if named and living:
            out.append(pid)
    return out


def test_one_real_vllm_cpu_actor_scores_8_papers(tmp_path):
    pytest.importorskip("vllm")
    rows = [json.loads(line) for line in (DAYS / "2025-07-02" / "listing.jsonl").open()][:8]
    src = tmp_path / "eight.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "bf"
    res = run_backfill(BackfillSpec(source=src, out=out, all_categories=True, score=True),
                       backfill_settings("max_model_len=4096", backend="vllm", model="smollm2-135m", batch_size=8),
                       engine="ray", ray_options=RAY_OPTIONS)
    s = backfill_table(out, "scores")
    assert sorted(s.column("id").to_pylist()) == sorted(r["id"] for r in rows)
    assert set(s.column("status").to_pylist()) == {"scored"}, s.column("error").to_pylist()
    assert set(s.column("model").to_pylist()) == {"smollm2-135m"}
    for row in s.to_pylist():
        assert 1 <= row["RELEVANCE"] <= 10 and 1 <= row["NOVELTY"] <= 10 and row["prompt_tokens"] > 500
    eng = res.run["phases"]["score"]
    assert eng["score_actors"] == 1 and eng["rows_written"] == 8


def test_sigterm_stops_a_ray_backfill_as_ctrl_c_does_and_the_rerun_resumes(tmp_path):
    """`kill PID` or systemd stopping the unit sends SIGTERM, which the CLI takes as a Ctrl-C. ray.init put its
    own handler (sys.exit(15)) in place of the CLI's: the command ended with status 15 and no line, its run
    recorded 'failed' with "SystemExit: 15". It stops as at a Ctrl-C (the line, the run interrupted, Ray
    stopped), ends by the signal, and the rerun scores each paper once."""
    import signal
    import subprocess
    import sys
    import time
    day, out = DAYS / "2025-05-15", tmp_path / "bf"
    env = {k: v for k, v in os.environ.items() if k != "RANKER_DEBUG"}
    p = subprocess.Popen([sys.executable, "-m", "ranker", "backfill", "--from", str(day), "--out", str(out),
                          "--score", "--backend", "fake", "--model", "m", "--batch-size", "1", "--backend-option",
                          "delay=0.3", "--db", str(tmp_path / "r.sqlite3"), "--engine", "ray"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and p.poll() is None and not (
            (out / "manifest.json").exists() and json.loads((out / "manifest.json").read_text())["ranked_sources"]):
        time.sleep(0.2)
    time.sleep(3)                                   # scoring: 192 papers of 0.3 s each
    assert p.poll() is None, p.communicate()[1][-2000:]
    p.send_signal(signal.SIGTERM)
    _out, err = p.communicate(timeout=120)
    assert p.returncode == -signal.SIGTERM, err[-2000:]
    assert err == "interrupted; what was stored so far is kept; rerun to resume\n"
    (run,) = json.loads((out / "manifest.json").read_text())["runs"]
    assert run["status"] == "interrupted" and "error" not in run and "score" in run["phases"]
    res = run_backfill(BackfillSpec(source=day, out=out, score=True), backfill_settings())
    assert res.run["status"] == "ok"
    assert Counter(backfill_table(out, "scores").column("id").to_pylist()) == \
        Counter(backfill_table(out, "ranked").column("id").to_pylist())               # each paper once


SIGTERM_IN_RAY_INIT = """
import os, signal
import ray._private.utils as u
_set = u.set_sigterm_handler
def set_and_signal(handler):               # the SIGTERM comes while ray.init starts Ray, Ray's handler in place
    _set(handler)
    os.kill(os.getpid(), signal.SIGTERM)
u.set_sigterm_handler = set_and_signal
"""


def test_sigterm_while_ray_starts_stops_the_backfill_as_ctrl_c_does(tmp_path):
    """A SIGTERM while ray.init runs met Ray's own handler (sys.exit(15)): status 15 and no line, the run
    recorded 'failed' with "SystemExit: 15". It is the CLI's SIGTERM, as later in the run."""
    import signal
    out = tmp_path / "bf"
    p = ranker("backfill", "--from", DAYS / "2025-05-15", "--out", out, "--score", "--backend", "fake", "--model", "m",
               "--db", tmp_path / "r.sqlite3", "--engine", "ray", pre=SIGTERM_IN_RAY_INIT, timeout=300)
    assert p.returncode == -signal.SIGTERM, p.stderr[-2000:]
    assert p.stderr == "interrupted; what was stored so far is kept; rerun to resume\n"
    (run,) = json.loads((out / "manifest.json").read_text())["runs"]
    assert run["status"] == "interrupted" and "error" not in run


def test_the_runs_bookkeeping_actors_are_pinned_to_the_drivers_node(tmp_path, monkeypatch):
    """The progress count and the read tally have no restart: placed by Ray's default they could sit on a worker
    node, and losing it failed the run. Both are asked for on the driver's node, not as a preference."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
    made, real = [], ray.remote

    def remote(*args, **options):             # Ray's own, telling what each actor class was asked for with
        decorate = real(*args, **options)
        if args:
            return decorate
        return lambda cls: (made.append((getattr(cls, "__name__", ""), options)), decorate(cls))[1]

    monkeypatch.setattr(ray, "remote", remote)
    res = run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "bf", score=True),
                       backfill_settings(), engine="ray", ray_options=RAY_OPTIONS, progress=lambda *a: None)
    assert res.run["status"] == "ok"
    asked = {name: o for name, o in made if name in ("WriteCount", "ReadTally")}
    assert set(asked) == {"WriteCount", "ReadTally"}, made
    for name, o in asked.items():
        where = o.get("scheduling_strategy")
        assert isinstance(where, NodeAffinitySchedulingStrategy), (name, o)
        assert where.node_id == ray.get_runtime_context().get_node_id() and where.soft is False, (name, o)


def test_a_lost_progress_count_does_not_fail_the_run(tmp_path, monkeypatch):
    """The sinks tell a counting actor what they wrote; with it killed, the run still ranks and scores every
    paper (the progress only stops moving), as the same run with its count alive."""
    from ranker.backfill.ray_engine import RayEngine
    count = RayEngine._count

    def killed(self):
        c = count(self)
        ray.kill(c)
        return c

    monkeypatch.setattr(RayEngine, "_count", killed)
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "bf", score=True)
    res = run_backfill(spec, backfill_settings(), engine="ray", ray_options=RAY_OPTIONS, progress=lambda *a: None)
    assert res.run["status"] == "ok", res.run.get("error")
    ref = run_backfill(BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "ref", score=True),
                       backfill_settings())
    for kind in ("ranked", "scores"):
        got, want = backfill_table(tmp_path / "bf", kind), backfill_table(tmp_path / "ref", kind)
        assert got.num_rows == want.num_rows > 0
        assert sorted(got.column("id").to_pylist()) == sorted(want.column("id").to_pylist())
    assert res.summary["ranked"]["rows"] == ref.summary["ranked"]["rows"]


@pytest.mark.parametrize("when", ["reading", "end"])
def test_a_lost_read_tally_fails_the_run_with_one_line_saying_so(tmp_path, monkeypatch, when):
    """The read tally's counts go into the manifest the user reads; lost (killed while the read tasks report to
    it, or before the ranking asks for its record) the run fails saying what was lost, not with Ray's error
    or a generic pipeline failure, and a rerun ranks every paper once."""
    from ranker.backfill import ray_engine
    RayEngine = ray_engine.RayEngine
    name = "_rank" if when == "reading" else "_tallied"
    real = getattr(RayEngine, name)

    def killing(self, *args):
        ray.kill(args[-1] if when == "end" else args[1])
        return real(self, *args)

    monkeypatch.setattr(RayEngine, name, killing)
    spec = BackfillSpec(source=DAYS / "2025-05-15", out=tmp_path / "bf", score=True)
    with pytest.raises(RankerError) as e:
        run_backfill(spec, backfill_settings(), engine="ray", ray_options=RAY_OPTIONS)
    msg = str(e.value)
    assert "counting the source lines the read skipped was lost" in msg and "\n" not in msg, msg
    m = json.loads((tmp_path / "bf" / "manifest.json").read_text())
    assert m["runs"][-1]["status"] == "failed" and "was lost" in m["runs"][-1]["error"]
    monkeypatch.undo()
    res = run_backfill(spec, backfill_settings(), engine="ray", ray_options=RAY_OPTIONS)
    ids = backfill_table(tmp_path / "bf", "ranked").column("id").to_pylist()
    assert res.run["status"] == "ok" and len(ids) == len(set(ids)) > 0
