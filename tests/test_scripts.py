"""The measurement scripts (scripts/) run against today's library in their smallest mode and print the figures
README.md quotes in the shape it quotes them. Nothing here checks a figure's value on the real data (the lead
re-measures those); the vectors are the deterministic stand-ins of conftest.store_vectors and the LLM is the
fake backend, except in the slow tests, which load MiniLM as the scripts do."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import DAYS, REPO, SEED_DIGEST, store_vectors

SCRIPTS = REPO / "scripts"
F = r"-?\d+\.\d{3}"                                  # a figure printed to three decimals


def script(name: str, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run scripts/NAME with this interpreter (the test's RANKER_HOME); it must succeed."""
    p = subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == 0, f"{name} failed ({p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


@pytest.fixture(scope="module")
def vectors_db(tmp_path_factory) -> Path:
    """A store holding stand-in MiniLM vectors for every paper of the tests' five days and every query text the
    scripts embed (the prompt's queries, topic descriptions and irrelevant keywords): no script loads a model."""
    from ranker.prefilter.embed import QUERY_PREFIX, embedder_key, text_hash
    from ranker.prompts import load_prompts
    from ranker.records import Paper
    from ranker.store import Store
    db = tmp_path_factory.mktemp("script-vectors") / "vectors.sqlite3"
    papers = [Paper.from_dict(json.loads(line)) for f in sorted(DAYS.glob("*/listing.jsonl"))
              for line in f.read_text(encoding="utf-8").splitlines()]
    ps = load_prompts()
    extra = [t.description for t in ps.topics] + [k for k in ps.keywords.irrelevant if k.strip()]
    rng = np.random.default_rng(0)
    with Store(db) as s:
        store_vectors(s, papers, ps)
        rows = []
        for t in sorted({" ".join(t.split()) for t in extra}):
            v = rng.normal(size=384).astype(np.float32)
            rows.append((QUERY_PREFIX + text_hash(t), text_hash(t), v / np.linalg.norm(v)))
        s.put_embeddings(rows, embedder_key("minilm"))
    return db


def test_measure_comments_prints_the_percentiles_the_comment_bound_follows():
    from ranker.backends.schema import COMMENT_CHARS
    out = script("measure_comments.py", "--history", DAYS, "--seed", SEED_DIGEST).stdout
    n = [len(json.loads(line)["COMMENT"]) for f in sorted(DAYS.glob("*/gpt_scores.jsonl"))
         for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert f"{len(n)} GPT-4o comments in {DAYS}" in out
    m = re.search(r"min (\d+)  median (\d+)  p90 ([\d.]+)  p95 ([\d.]+)  p99 ([\d.]+)  max (\d+)", out)
    assert m, out
    got = [float(x) for x in m.groups()]
    want = [min(n), round(np.percentile(n, 50)), *np.percentile(n, [90, 95, 99]), max(n)]
    assert got == pytest.approx(want, abs=0.01)
    assert re.search(r"seed digest: 47 comments, \d+-\d+ characters", out)
    assert f"default bound (backends.schema.COMMENT_CHARS): {COMMENT_CHARS}" in out


@pytest.mark.parametrize("name, args, line", [
    ("make_snapshot.py", ["--n", "3", "--out", "{file}/x.json"], "{file}: not a folder (--out {file}/x.json)"),
    ("bench_load.py", ["--n", "3", "--workdir", "{file}/w"], "{file}/w: not a directory"),
    ("bench_load.py", ["--n", "3", "--workdir", "{file}"], "--workdir {file}: not a folder"),
    ("bench_memory.py", ["--history", "{gone}", "--home", "{gone}", "--day", "0"], "{gone}: no such file or directory"),
], ids=["make_snapshot", "bench_load", "bench_load-file", "bench_memory"])
def test_a_script_without_ranker_ends_a_path_it_cannot_use_in_one_line(name, args, line, tmp_path):
    """make_snapshot.py, bench_load.py and bench_memory.py import no ranker (so no cli.app.script_main): a path
    given that cannot be written or read ended them in an OSError traceback; now one line naming it, status 1."""
    (tmp_path / "file").write_text("not a folder\n")
    paths = {"file": tmp_path / "file", "gone": tmp_path / "gone"}
    p = subprocess.run([sys.executable, str(SCRIPTS / name), *(a.format(**paths) for a in args)],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 1 and p.stderr == f"error: {line.format(**paths)}\n", p.stderr[-2000:]


def test_bench_memory_refuses_a_work_folder_inside_the_home_in_one_line(tmp_path):
    """`--work` inside `--home`: the home is copied into --work, so the copy copied itself until a RecursionError
    traceback of 190 kB; a --work not made yet was "<work>/bench-memory-x1y2: no such file or directory". Now one
    line naming both flags, status 1; a --work not there yet is made, and the home inside --work stays allowed."""
    (tmp_path / "days" / "2025-01-01").mkdir(parents=True)
    (tmp_path / "days" / "2025-01-01" / "listing.jsonl").write_text("{}\n")
    home = tmp_path / "home"
    home.mkdir()
    (home / "ranker.sqlite3").write_bytes(b"")      # no store: the runs below end at reading it, if they get there

    def run(home, work):
        return subprocess.run([sys.executable, str(SCRIPTS / "bench_memory.py"), "--history", str(tmp_path / "days"),
                               "--home", str(home), "--day", "0", "--work", str(work)],
                              capture_output=True, text=True, timeout=60, cwd=tmp_path)
    for work in (home, home / "w", tmp_path / "." / "home" / "w" / "deeper"):
        p = run(home, work)
        assert p.returncode == 1 and p.stderr == (f"error: --work {work} is inside --home {home}, which is copied "
                                                  "into it: give a folder outside the home\n"), p.stderr[-500:]
    assert sorted(x.name for x in home.iterdir()) == ["ranker.sqlite3"]
    (tmp_path / "file").write_text("x")
    p = run(home, tmp_path / "file")
    assert p.returncode == 1 and p.stderr == f"error: --work {tmp_path / 'file'}: not a folder\n", p.stderr[-500:]
    (tmp_path / "outer" / "home").mkdir(parents=True)            # the home inside --work: copied beside itself
    (tmp_path / "outer" / "home" / "ranker.sqlite3").write_bytes(b"")
    for home, work in ((tmp_path / "outer" / "home", tmp_path / "outer"), (home, tmp_path / "new" / "w")):
        p = run(home, work)
        assert p.returncode == 1 and p.stderr == (f"error: {home / 'ranker.sqlite3'}: no such table: rankings "
                                                  "(bench_year.py fill makes the home)\n"), p.stderr[-500:]


@pytest.mark.parametrize("first, second, said", [
    (None, b"\xff\n", "2: not a JSON line ("),
    (b"\xff\n", None, "1: not a JSON line ("),
    (b'{"title": "t", "abstract": "a", "categories": ["cs.LG"]}\n', None, "1: no 'authors' in the row"),
], ids=["bad-byte-line-2", "bad-byte-only-line", "no-authors"])
def test_make_snapshot_names_the_listing_line_it_cannot_use(first, second, said, tmp_path):
    """An undecodable byte ended make_snapshot in `UnboundLocalError: n` (a one-line listing) or was said at a
    wrong line (the text stream decodes ahead; n carried from the file before); a row without authors was a
    KeyError traceback. Now one line naming file:line, status 1; a good file before counts its own lines."""
    days = tmp_path / "days"
    (days / "2025-01-01").mkdir(parents=True)
    good = {"title": "T", "abstract": "One. Two.", "authors": ["A B"], "categories": ["cs.LG"]}
    (days / "2025-01-01" / "listing.jsonl").write_text("\n".join(json.dumps(good) for _ in range(5)) + "\n")
    (days / "2025-01-02").mkdir()
    bad = days / "2025-01-02" / "listing.jsonl"
    bad.write_bytes((first or json.dumps(good).encode() + b"\n") + (second or b""))
    p = subprocess.run([sys.executable, str(SCRIPTS / "make_snapshot.py"), "--n", "3", "--days", days, "--out",
                        tmp_path / "x.json"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.startswith(f"error: {bad}:{said}"), p.stderr[-2000:]
    assert len(p.stderr.splitlines()) == 1 and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("name, args, line", [
    ("make_snapshot.py", ["--out", "x.json", "--nosuch"], "unrecognized arguments: --nosuch"),
    ("make_snapshot.py", ["--out", "x.json", "--n", "x"], "argument --n: invalid int value: 'x'"),
    ("make_snapshot.py", ["--out", "x.json", "--n", "-1"], "--n must be >= 0 and --per-day >= 1"),
    ("bench_load.py", ["--n", "x"], "argument --n: invalid int value: 'x'"),
    ("bench_word_index.py", ["--papers", "0"], "--papers must be at least 1"),
    ("bench_year.py", ["make", "--from", "d", "--out", "o", "--cycles", "x"],
     "argument --cycles: invalid int value: 'x'"),
    ("eval_score_mode.py", ["--nosuch"], "unrecognized arguments: --nosuch"),
], ids=["snapshot-nosuch", "snapshot-int", "snapshot-own", "load-int", "word-index-own", "year-sub", "score-mode"])
def test_a_script_s_usage_error_is_one_line_and_status_1(name, args, line, tmp_path):
    """A flag unknown or a bad value (argparse's own errors, a script's ap.error, a subcommand's) ended a script
    with its usage text and status 2, where every other error of a script or of `ranker` is one line, status 1;
    now `error: MESSAGE` naming the flag, status 1 (scripts/script_cli.Parser), run from another folder by its
    full path too. --help is as argparse has it."""
    p = subprocess.run([sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert p.returncode == 1 and p.stderr == f"error: {line}\n" and p.stdout == "", p.stderr[-2000:]
    p = subprocess.run([sys.executable, str(SCRIPTS / name), "--help"], capture_output=True, text=True,
                       timeout=60, cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("usage: ") and p.stderr == "", p.stderr[-2000:]


@pytest.mark.parametrize("name", ["bench_backfill.py", "bench_load.py"])
def test_a_snapshot_that_cannot_be_made_ends_the_benchmark_with_make_snapshot_s_line(name, tmp_path):
    """bench_backfill.py ran make_snapshot.py with check=True and its stderr thrown away: a failure was a
    CalledProcessError traceback without the reason; now make_snapshot's own line, status 1 (make_snapshot.snapshot,
    which bench_load.py uses too)."""
    (tmp_path / "empty").mkdir()
    args = {"bench_backfill.py": ["--n-embed", "3", "--n-score", "3", "--days", tmp_path / "empty"],
            "bench_load.py": ["--n", "-1"]}[name]
    p = subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args), "--workdir", tmp_path / "work"],
                       capture_output=True, text=True, timeout=120)
    said = {"bench_backfill.py": f"no */listing.jsonl under {tmp_path / 'empty'}",
            "bench_load.py": "--n must be >= 0 and --per-day >= 1"}[name]
    assert p.returncode == 1 and p.stderr == f"error: {said}\n", p.stderr[-2000:]


def test_bench_backfill_says_a_workdir_that_is_a_file_in_one_line(tmp_path):
    """bench_backfill.py --workdir FILE ended in mkdir's FileExistsError traceback; now one line naming the flag."""
    (tmp_path / "file").write_text("not a folder\n")
    p = subprocess.run([sys.executable, str(SCRIPTS / "bench_backfill.py"), "--workdir", str(tmp_path / "file")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stderr == f"error: --workdir {tmp_path / 'file'}: not a folder\n", p.stderr[-2000:]


def test_make_snapshot_refuses_an_out_that_is_not_a_regular_file(tmp_path):
    """--out naming a FIFO (or /dev/full): the snapshot was written beside it and renamed over it, the FIFO
    gone (run as root, a device node replaced); now refused before anything is written."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    p = subprocess.run([sys.executable, str(SCRIPTS / "make_snapshot.py"), "--n", "3", "--out", fifo],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr == f"error: --out {fifo}: not a regular file (the snapshot is written beside it and renamed over it)\n", p.stderr[-2000:]
    assert fifo.is_fifo() and sorted(x.name for x in tmp_path.iterdir()) == ["fifo"]


def test_make_snapshot_in_a_worktree_splices_the_shared_days(tmp_path):
    """A worktree at work/wt/NAME finds work/shared/data/days (as wf_common.DATA does); before, its snapshots
    (bench_load.py's, the tests' own) were spliced from the tests' five days instead."""
    def day(root: Path, title: str) -> None:
        d = root / "2025-01-02"
        d.mkdir(parents=True)
        row = {"id": "2501.00001", "title": title, "abstract": "One sentence. Another one.", "authors": ["A B"],
               "categories": ["cs.LG"], "comment": None}
        (d / "listing.jsonl").write_text(json.dumps(row) + "\n")

    day(tmp_path / "shared" / "data" / "days", "From the shared days")
    checkout = tmp_path / "wt" / "name"
    day(checkout / "tests" / "data" / "days", "From the tests' copy")
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPTS / "make_snapshot.py", checkout / "scripts")
    shutil.copy(SCRIPTS / "script_cli.py", checkout / "scripts")
    out = tmp_path / "snap.json"
    subprocess.run([sys.executable, str(checkout / "scripts" / "make_snapshot.py"), "--n", "3", "--out", str(out)],
                   check=True, capture_output=True, timeout=60)
    assert {json.loads(line)["title"] for line in out.read_text().splitlines()} == {"From the shared days"}


def test_bench_gpu_without_a_gpu_says_so_in_one_line():
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    p = subprocess.run([sys.executable, str(SCRIPTS / "bench_gpu.py"), "--embedder", str(REPO / "models" / "minilm")],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [p.stderr.strip()]
    assert "no CUDA device" in p.stderr and "--device cpu" in p.stderr


def test_eval_score_mode_prints_an_auc_per_ranking():
    out = script("eval_score_mode.py", "--backend", "fake", "--model", "tiny", "--per-day", 6,
                 "--days", DAYS).stdout
    assert re.search(r"tiny via fake: 30 papers scored \(10 GPT picks, 0 failures\) in \d+ s", out), out
    for name in ("greedy RELEVANCE", "greedy RELEVANCE+NOVELTY", "expected RELEVANCE", "expected RELEVANCE+NOVELTY"):
        assert re.search(rf"AUC {re.escape(name)} +{F}   \(\d+ distinct values\)", out), name


def test_eval_injection_prints_each_attacks_shift_per_layout(tmp_path):
    out = script("eval_injection.py", "--backend", "fake", "--model", "tiny", "--papers", 2,
                 "--attacks", "direct,single_quote", "--json", tmp_path / "inj.json").stdout
    for layout in ("plain", "hardened"):
        assert re.search(rf"{layout} prompt layout, sanitiser current \(tiny, 2 papers\): clean papers whose "
                         r"score moved when injected papers shared the batch: \d+ \(control, same clean batch "
                         r"reordered: \d+\)", out), out
    rows = re.findall(r"^(direct|single_quote) +(-?\d+\.\d\d) +(-?\d+\.\d\d) +(-?\d+\.\d\d) +(-?\d+\.\d\d) +"
                      r"\d+/2$", out, re.M)
    assert [r[0] for r in rows] == ["direct", "single_quote"] * 2
    report = json.loads((tmp_path / "inj.json").read_text())
    assert set(report["layouts"]) == {"plain", "hardened"} and report["papers"] == 2


def test_eval_novelty_context_prints_the_agreement_with_and_without_context(vectors_db):
    out = script("eval_novelty_context.py", "--backend", "fake", "--model", "tiny", "--n", 4, "--days", DAYS,
                 "--vectors-db", vectors_db).stdout
    assert re.search(r"corpus: 1,445 papers of 5 days .*, 0 embedded now; scoring 4 GPT picks", out), out
    assert "Earlier related papers" in out
    for k in (0, 5):
        assert re.search(rf"^K={k}: 4 scored, 0 failed in \d+ s; [\d,]+ prompt tokens$", out, re.M), out
        assert re.search(rf"^ +{k} +4 +({F}|n/a) +{F} +{F} +{F} +{F} +({F}|n/a) +\d+$", out, re.M), out
    assert re.search(r"NOVELTY changed for \d+ of 4 papers when the context was added", out)


def test_eval_reuploads_prints_the_cosine_distribution_and_the_rule(vectors_db):
    out = script("eval_reuploads.py", "--days", DAYS, "--vectors-db", vectors_db, "--plant", 0).stdout
    assert re.search(r"^vectors: [\d,]+ papers, 0 embedded now, the rest from ", out, re.M), out
    assert re.search(r"the product's rule \(cosine >= [\d.]+, or >= [\d.]+ with nearly the same abstract\) flags "
                     r"\d+ of the [\d,]+ papers", out), out
    assert len(re.findall(r"^  threshold 0\.\d\d: flags \d+ of \d+ same-paper pairs, \d+ different papers$", out,
                          re.M)) == 7


def test_eval_keep_prints_the_kept_recall_per_target(vectors_db, tmp_path):
    db = tmp_path / "v.sqlite3"
    shutil.copy(vectors_db, db)                          # the script adds nothing, but it opens the store to write
    out = script("eval_keep.py", "--data", DAYS.parent, "--db", db, "--test-days", 1).stdout
    assert re.search(r"^5 days 2025-\S+\.\.2025-\S+, 1445 papers, \d+ picks", out, re.M), out
    # each mean with its 95% interval: none over the 1 test day, one over the 5 days
    none, ci = r"\[–\]", r"\[\d\.\d\d, \d\.\d\d\]"

    def metrics(ci, f=F):
        return rf"AUC {f} {ci}  R@25 {f} {ci}  R@40 {f} {ci}  keep95 {f} {ci}"
    assert re.search(rf"^walk-forward, shipped calibration: {metrics(none)}$", out, re.M), out
    assert re.search(rf"^zero-shot, all 5 days: +{metrics(ci)}$", out, re.M), out
    diff = metrics(none, r"[+-]\d\.\d{3}")
    assert re.search(rf"^walk-forward minus zero-shot, same days \(paired\): {diff}$", out, re.M), out
    for r in ("0.80", "0.90", "0.95"):
        assert re.search(rf"^ {r} +{F} +{F} +{F} +{F} +{F}$", out, re.M), r
    assert len(re.findall(r"mean recall \d\.\d{3}  kept fraction \d\.\d{3}  worst day \d\.\d{3}$", out, re.M)) == 6


def test_eval_labels_prints_each_learner(vectors_db, tmp_path):
    db = tmp_path / "v.sqlite3"
    shutil.copy(vectors_db, db)
    out = script("eval_labels.py", "--data", DAYS.parent, "--db", db, "--test-days", 1, "--label-days", 2).stdout
    m = re.search(r"labels: top 20 of \S+ \(2 days\) by zero-shot: (\d+) labels, (\d+) up, (\d+) down", out)
    assert m and int(m[1]) == 40 and int(m[2]) + int(m[3]) == 40, out
    for name in ("zero-shot", "history only", "history + labels", "labels only"):
        assert re.search(rf"^  {re.escape(name)} +AUC {F} \[–\]  R@25 {F} \[–\]  R@40 {F} \[–\]  keep95 {F} \[–\]",
                         out, re.M), name


def test_eval_walkforward_lists_its_approaches_without_loading_the_days(tmp_path):
    """--list used to load every day first, embedding what its store lacked: the 50 shared days into the user's
    own store (no --db and no shared cache) before printing a list of names."""
    out = script("eval_walkforward.py", "--list", "--data", DAYS.parent, timeout=60).stdout
    assert "B = v1 + meta + title words" in out and "shipped: ranker calibrate (library fit)" in out
    assert not (tmp_path / "home" / "ranker.sqlite3").exists()


def test_eval_walkforward_prints_a_row_per_approach_and_the_recall_check(vectors_db, tmp_path):
    db = tmp_path / "v.sqlite3"
    shutil.copy(vectors_db, db)
    out = script("eval_walkforward.py", "--data", DAYS.parent, "--db", db, "--test-days", 1, "--approaches",
                 "SHIPPED,shipped: ranker calibrate", timeout=300).stdout
    assert re.search(r"^5 days \S+, 1445 papers, \d+ picks; embedder minilm; 0 texts embedded", out, re.M), out
    four = rf"{F} {F} {F} {F}"
    assert re.search(rf"^zs: SHIPPED rank.zero_shot .*\| +{four} \| +{four} \| +[\d.]+ \| [\d.]+$", out, re.M), out
    assert re.search(rf"^shipped: ranker calibrate \(library fit\) +\| +{four} \| +\| +[\d.]+ \| [\d.]+$", out,
                     re.M), out
    assert re.search(rf"^ 0\.95 score threshold \(shipped\) +{F} +{F} +{F}$", out, re.M), out
    # each approach's mean over the test days with its interval (none over 1 day) and its paired difference
    none = rf"AUC {F} \[–\]  R@25 {F} \[–\]  R@40 {F} \[–\]  keep95 {F} \[–\]"
    signed = none.replace(F, r"[+-]\d\.\d{3}")
    assert re.search(rf"^shipped: ranker calibrate \(library fit\) +\| {none}\n +\| minus zero-shot: {signed}$",
                     out, re.M), out


@pytest.mark.slow
def test_bench_load_prints_each_stage(tmp_path):
    out = script("bench_load.py", "--n", 200, "--workdir", tmp_path, timeout=300).stdout
    for stage in ("ranker --help (baseline)", "fetch --from snapshot", "prefilter (cold)", "prefilter (warm, cached)"):
        assert re.search(rf"^{re.escape(stage)} +\d+ papers +[\d.]+ s +\d+ papers/s  peak RSS +\d+ MB$", out,
                         re.M), stage
    assert re.search(r"cold/warm prefilter time ratio: [\d.]+x; baseline RSS \d+ MB", out)


@pytest.mark.slow
def test_bench_prefilter_prints_cold_warm_and_the_index():
    out = script("bench_prefilter.py", "--papers", 60, "--faiss-n", 0, timeout=300).stdout
    assert re.search(r"cold: +[\d.]+ s for 60 papers \(model load [\d.]+ s, embedding [\d.]+ s = [\d.]+ papers/s",
                     out), out
    assert re.search(r"warm: +[\d.]+ s as a CLI process \(rc 0\): prefilter: kept \d+ of 60 papers", out), out
    assert re.search(r"corpus index: +1,000 vectors  exact \(numpy\) +build +[\d.]+ s  search [\d.]+ ms/query", out)


@pytest.mark.slow
def test_bench_backfill_without_the_tokenizer_still_prints_its_phases(tmp_path, monkeypatch):
    """Without the Qwen2.5 preset the token counts and the cluster estimate are skipped with the reason, said
    before the phases run; before, every phase was measured and the run then ended in a traceback."""
    models = tmp_path / "models"
    models.mkdir()
    (models / "minilm").symlink_to(REPO / "models" / "minilm")
    monkeypatch.setenv("RANKER_MODELS_DIR", str(models))
    out = script("bench_backfill.py", "--n-embed", 40, "--n-score", 60, "--token-sample", 5, "--days", DAYS,
                 "--workdir", tmp_path / "work", "--json", tmp_path / "fig.json", timeout=600).stdout
    why = "skipped (model preset 'qwen2.5-coder-0.5b' is not prepared; run: ranker models prepare qwen2.5-coder-0.5b)"
    assert out.count(f"tokens and the cluster estimate: {why}") == 2, out
    for what, n in (("embed + prefilter (MiniLM)", 40), ("fake scoring (no model)", 60)):
        for engine in ("local", "ray"):
            assert re.search(rf"^{re.escape(what)} +{engine} +{n} papers  \w+ phase +[\d.]+ s = +[\d.]+ papers/s",
                             out, re.M), (what, engine)
        assert re.search(rf"Ray local / local: [\d.]+x the time of the {re.escape(what)} phase", out)
    assert set(json.loads((tmp_path / "fig.json").read_text())) >= {"embed + prefilter (MiniLM)", "keep_fraction"}


def test_bench_scoring_says_what_a_llamacpp_engine_lacks_before_any_engine_starts(tmp_path):
    """Before, each engine's own process ended in a traceback under "FAILED" after the engines before it had run
    (minutes of vLLM); now the run is refused with the command that fixes it."""
    hidden = tmp_path / "hidden" / "llama_cpp"                # llama-cpp-python not installed
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError('No module named llama_cpp', name='llama_cpp')\n")
    bench = [sys.executable, str(SCRIPTS / "bench_scoring.py"), "--n", "1", "--no-limit"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    p = subprocess.run([*bench, "--engines", "vllm,llamacpp"], capture_output=True, text=True, timeout=120,
                       env={**env, "PYTHONPATH": f"{hidden.parent}{os.pathsep}{REPO}"})
    assert p.returncode == 1 and "pip install 'ranker[llamacpp]'" in p.stderr.splitlines()[-1]
    assert "FAILED" not in p.stdout and "Traceback" not in p.stderr
    (tmp_path / "models").mkdir()                             # no GGUF prepared
    p = subprocess.run([*bench, "--engines", "vllm,llamacpp-f32"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "RANKER_MODELS_DIR": str(tmp_path / "models")})
    assert p.returncode == 1 and "FAILED" not in p.stdout
    assert "run: ranker models prepare smollm2-135m --gguf f32" in p.stderr.splitlines()[-1]


def test_bench_index_prints_the_kinds_table_and_the_products_figures(vectors_db):
    out = script("bench_index.py", "--n", 20000, "--skip-hnsw", "--sizes", 3000, "--vectors-db", vectors_db,
                 timeout=300).stdout
    assert re.search(r"real vectors: 1,445 MiniLM vectors from ", out), out
    assert len(re.findall(rf"^IVF-Flat nlist \d+ +nprobe \d+ +{F} +[\d.]+ +[\d.]+ +[\d.]+ +\d+ +{F}$", out,
                          re.M)) == 4, out
    assert re.search(r"lowest p95 with recall@10 >= 0.95: IVF-Flat", out)
    assert re.search(r"== ranker.index.CorpusIndex over a SQLite store of 3,000 paper vectors ==", out)
    assert re.search(r"add a 1,000-paper day: index sync [\d.]+ s \(added 1000, ", out), out
    assert re.search(rf"search \(base \+ recent segment, k=10\): p50 [\d.]+ ms, p95 [\d.]+ ms; recall@10 vs exact {F}",
                     out), out
    assert re.search(r"status with the full check \(digest of 4,000 rows, checksums\): [\d.]+ s, problem: None", out)


def test_bench_word_index_prints_the_builds_time_and_the_longest_lock_and_wait():
    """The README's figures for the first word search (its build in chunks and in one transaction, and the
    refolding of an index built before m007) were measured by hand; the script prints them."""
    from ranker.store import FTS_BUILD_CHUNK, FTS_BUILD_PAUSE
    out = script("bench_word_index.py", "--papers", 3000, timeout=60).stdout
    assert re.search(r"^store: 3,000 synthetic papers of arXiv length \(titles 8-12 words, abstracts 150-190, "
                     r"5 authors\) added in [\d.]+ s; \d+ MB$", out, re.M), out
    assert re.search(r"^first word search \(ranker.web.search.search, words\) builds the index of 3,000 papers:$",
                     out, re.M), out
    lock = r": built in [\d.]+ s; the write lock held [\d.]+ s at most by one transaction; a writer every 0.3 s " \
           r"waited [\d.]+ s at most \(median [\d.]+ s, \d+ writes\)$"
    n = 3000 // FTS_BUILD_CHUNK + 1
    chunks = rf"in chunks of {FTS_BUILD_CHUNK:,} papers \({n} transactions?, {FTS_BUILD_PAUSE} s apart\)"
    assert re.search(rf"^  {chunks}" + lock, out, re.M), out
    refold = r"^  its refolding by the first search after the upgrade \(m007; 150 papers put in again\)"
    assert re.search(refold + lock.replace("built", "refolded"), out, re.M), out
    assert re.search(r"^  in one transaction \(FTS_BUILD_CHUNK above the papers\)" + lock, out, re.M), out


@pytest.mark.slow
def test_bench_web_prints_the_site_and_each_pages_time(vectors_db, tmp_path):
    """Slow: the search by meaning loads MiniLM for its query, as `ranker serve` does."""
    out = script("bench_web.py", "--history", DAYS, "--days", 1, "--db", tmp_path / "web" / "ranker.sqlite3",
                 "--vectors-from", vectors_db, "--site", tmp_path / "site", timeout=300).stdout
    assert re.search(r"^vectors copied: \d+$", out, re.M), out
    assert re.search(r"^store: 1 day, [\d,]+ papers through run_day \(fake LLM\) in [\d.]+ s$", out, re.M), out
    assert re.search(r"^site: \d+ files, [\d.]+ MB \(search index [\d.]+ MB, 1 month, the largest [\d.]+ MB\); "
                     r"built in [\d.]+ s; rebuilt in "
                     r"[\d.]+ s with 0 files written$", out, re.M), out
    for page in ("archive", "month", "day", "paper", "search by words", "labels"):
        assert re.search(rf"^serve {page}.*: \d+ ms, \d+ kB$", out, re.M), page
    assert re.search(r"^serve search by meaning: first [\d.]+ s \(loads the embedder\), then \d+ ms$", out, re.M)


def test_eval_walkforward_without_embedder2_leaves_out_the_approaches_that_need_it(vectors_db, tmp_path):
    """Every approach is the default, and four read a second embedder's vectors: without --embedder2 the run
    ended in a KeyError at the first of them, after all the others and before the recall checks."""
    db = tmp_path / "v.sqlite3"
    shutil.copy(vectors_db, db)
    out = script("eval_walkforward.py", "--data", DAYS.parent, "--db", db, "--test-days", 1, "--approaches",
                 "second embedder,shipped: ranker calibrate", timeout=300).stdout
    assert "left out, no --embedder2 given: 4 approaches that read a second embedder's vectors" in out
    assert re.search(r"^shipped: ranker calibrate \(library fit\) +\|", out, re.M), out
    assert "second embedder's LR" not in out and "keep by recall, shipped" in out


def test_bench_year_measure_calibrate_alone_gets_the_days_before(tmp_path, monkeypatch):
    """`bench_year.py measure --calibrate` without --eval pointed `ranker calibrate --history` at a folder only
    the --eval branch made: the calibrate figure was an exit 1 ('no such folder')."""
    import importlib.util
    monkeypatch.setattr(sys, "path", list(sys.path))     # the script puts the checkout first: for this test only
    spec = importlib.util.spec_from_file_location("bench_year", SCRIPTS / "bench_year.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    history = tmp_path / "days"
    for day in ("2025-05-12", "2025-05-13", "2025-05-14"):
        (history / day).mkdir(parents=True)
        (history / day / "listing.jsonl").write_text("")
    calls = []

    def timed_cli(args, env, label):
        calls.append(args)
        if args[0] == "run":
            out = Path(args[args.index("--out") + 1])
            out.mkdir(parents=True, exist_ok=True)
            (out / "2025-05-14-run.json").write_text("{}")
        return {}

    class Store:                                  # only what measure asks of the store
        def __init__(self, path):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def count_papers(self):
            return 0

        def get_rankings(self, day):
            return [type("R", (), {"paper_id": "2505.00001"})()]

    monkeypatch.setattr(bench, "fill", lambda *a, **k: None)
    monkeypatch.setattr(bench, "timed_cli", timed_cli)
    monkeypatch.setattr(bench, "measure_serve", lambda *a, **k: None)
    monkeypatch.setattr("ranker.store.Store", Store)
    bench.measure(history, tmp_path / "home", 2, do_eval=False, do_calibrate=True, site=False, port=0)
    calibrate = next(a for a in calls if a[0] == "calibrate")
    folder = Path(calibrate[calibrate.index("--history") + 1])
    assert sorted(p.name for p in folder.iterdir()) == ["2025-05-12", "2025-05-13"]


def test_bench_site_prints_each_builds_time_pages_rendered_and_files_written(tmp_path):
    """A small history (three days' first 15 papers), two days filled as bench_year does; the third is the new
    day. The same tree twice: its sites are the same."""
    history, home = tmp_path / "days", tmp_path / "home"
    for day in sorted(d for d in DAYS.iterdir() if (d / "listing.jsonl").is_file())[:3]:
        (history / day.name).mkdir(parents=True)
        lines = (day / "listing.jsonl").read_text(encoding="utf-8").splitlines()[:15]
        (history / day.name / "listing.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    script("bench_year.py", "fill", "--history", history, "--home", home, "--upto", 2)
    out = script("bench_site.py", "--history", history, "--home", home, "--day", 2, REPO, REPO,
                 timeout=300).stdout
    n = r"\s+[\d.]+ s\s+(\d+) pages rendered\s+(\d+) files written  \((\d+) days, (\d+) papers\)$"
    got = {label: [int(x) for x in m] for label, *m in re.findall(rf"^  ([a-z ,]+?){n}", out, re.M)}
    assert list(got) == ["site from scratch", "rebuild, nothing changed", "rebuild after one new day",
                         "rebuild after it, nothing changed"], out
    assert out.count(f"{REPO}:") == 2 and out.rstrip().endswith("the two sites: identical"), out
    scratch, same, new_day, again = got.values()
    assert scratch[0] == scratch[2] + scratch[3] == 2 + 30 and scratch[1] > 32
    assert same[:2] == [0, 0] and again[:2] == [0, 0]
    assert new_day[2:] == [3, 45] and 2 + 15 <= new_day[0] <= 3 + 45


def test_bench_memory_prints_each_commands_peak_rss_for_each_tree(tmp_path):
    """A small history (three days' first 15 papers), two days filled as bench_year does and the third day's
    vectors stored (its run loads no model); the same tree twice: each command's peak RSS for each, then the
    two side by side. (The commands that load MiniLM, calibrate and serve are left out here.)"""
    import importlib.util
    spec = importlib.util.spec_from_file_location("bench_year", SCRIPTS / "bench_year.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    history, home = tmp_path / "days", tmp_path / "home"
    for day in sorted(d for d in DAYS.iterdir() if (d / "listing.jsonl").is_file())[:3]:
        (history / day.name).mkdir(parents=True)
        lines = (day / "listing.jsonl").read_text(encoding="utf-8").splitlines()[:15]
        (history / day.name / "listing.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    bench.fill(history, home, 2, vectors_of=2)
    skip = [a for name in ("similar text", "calibrate", "serve") for a in ("--skip", name)]
    out = script("bench_memory.py", "--history", history, "--home", home, "--day", 2, *skip, REPO, REPO,
                 timeout=300).stdout
    measured = ["run", "site", "site again", "index status", "index rebuild", "similar id", "eval"]
    for name in measured:
        got = re.findall(rf"^  {name} +(\d+) MB peak +[\d.]+ s$", out, re.M)
        assert len(got) == 2 and all(int(mb) > 20 for mb in got), (name, out)
    assert "exit" not in out and out.count(f"{REPO}: 2 days ranked in the store") == 2, out
    side = re.findall(r"^  ([a-z ]+?) +(\d+) -> +(\d+)$", out.split("first tree -> second:")[1], re.M)
    assert [name for name, *_ in side] == measured, out


# each script run with only its arguments parsed: argparse's parse_args stops the script once it has parsed them
PARSE_ONLY = """
import argparse, runpy, sys
parse = argparse.ArgumentParser.parse_args
def parse_args(self, args=None, namespace=None):
    parse(self, args, namespace)
    raise SystemExit(0)
argparse.ArgumentParser.parse_args = parse_args
sys.argv = sys.argv[1:]
sys.path.insert(0, sys.argv[0].rsplit("/", 1)[0])     # as `python scripts/NAME.py` puts its folder first
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def docstring_commands() -> list[tuple[str, str, list[str]]]:
    """(the script whose docstring shows it, the script it runs, its arguments) for every command line a script's
    docstring shows (`python scripts/NAME.py ARGS`, a `[--flag VALUE]` as `--flag VALUE`, continuation lines
    joined, a trailing `# comment` left out)."""
    import ast
    import shlex
    out = []
    for path in sorted(SCRIPTS.glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")), clean=False) or ""
        lines = re.sub(r"\\\n\s*", " ", doc).splitlines()
        for i, line in enumerate(lines):
            m = re.search(r"python scripts/(\w+\.py)(.*)", line)
            if not m:
                continue
            args = m[2]
            for more in lines[i + 1:]:                  # `    [--vectors-db FILE]` under the command
                if not re.match(r"\s+\[", more):
                    break
                args += " " + more
            args = re.sub(r"\s#\s.*$", "", args).replace("[", " ").replace("]", " ")
            out.append((path.name, m[1], shlex.split(args)))
    return out


def test_docstring_commands_are_found():
    got = {(shown, name) for shown, name, _ in docstring_commands()}
    assert {("bench_site.py", "bench_site.py"), ("bench_memory.py", "bench_year.py"),
            ("eval_keep.py", "eval_keep.py")} <= got
    assert ("eval_reuploads.py", ["--days", "../shared/data/days", "--vectors-db",
                                  "../cache/history-embeddings.sqlite3", "--embedder", "minilm"]) in \
        [(shown, args) for shown, _, args in docstring_commands()]


@pytest.mark.parametrize("shown,name,args", docstring_commands(), ids=lambda x: x if isinstance(x, str) else "")
def test_every_docstring_command_is_accepted_by_its_script(shown, name, args):
    """A user copies the command a script's docstring shows: its script takes every argument of it. Before,
    bench_site.py's showed `--code /tmp/old .` and the script refused it (`unrecognized arguments: --code`;
    the source trees are positional)."""
    p = subprocess.run([sys.executable, "-c", PARSE_ONLY, str(SCRIPTS / name), *args], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, f"{shown}'s `scripts/{name} {' '.join(args)}`: {p.stderr.strip()[-600:]}"


@pytest.mark.slow
def test_eval_finetune_probe_times_a_few_training_steps(vectors_db, tmp_path):
    """eval_finetune.py, which no test ran: its probe fine-tunes the real MiniLM for a few steps on the tests'
    days (the split as the full run makes it) and prints the two rates the README quotes (examples/s, papers/s)."""
    db = tmp_path / "v.sqlite3"
    shutil.copy(vectors_db, db)
    out = script("eval_finetune.py", "--data", DAYS.parent, "--db", db, "--test-days", 1, "--holdout-days", 1,
                 "--probe", timeout=300).stdout
    assert re.search(r"^5 days: fine-tune on \S+ \(3 days, \d+ papers, \d+ picks\); stacking weights on \S+; "
                     r"test \S+ \(1 days\); loaded in \d+s$", out, re.M), out
    assert re.search(r"^probe: [\d.]+ training examples/s \(batch 16\), [\d.]+ papers/s embedded$", out, re.M), out


def test_bench_year_and_bench_memory_measure_a_command_without_usr_bin_time(monkeypatch, tmp_path):
    """The peak RSS and wall time of a command, as the kernel counts them, where /usr/bin/time is not installed
    (Debian's `time` package: not on a minimal machine). Before, both scripts ran every command under
    /usr/bin/time -v and ended in a FileNotFoundError traceback there (`make test` ran bench_memory.py)."""
    import importlib.util
    real = subprocess.Popen

    class NoTime(real):                                       # a machine without /usr/bin/time
        def __init__(self, args, *a, **k):
            if str(args[0]) == "/usr/bin/time":
                raise FileNotFoundError(2, "No such file or directory", "/usr/bin/time")
            super().__init__(args, *a, **k)
    monkeypatch.setattr(subprocess, "Popen", NoTime)
    monkeypatch.syspath_prepend(str(SCRIPTS))
    mods = {}
    for name in ("bench_year", "bench_memory"):
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        mods[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mods[name])
    hog = [sys.executable, "-c", "import sys; b = b'x' * (300 * 2**20); print('said', file=sys.stderr)"]
    # the caller large (as pytest is, 3 GB by the suite's end): the kernel's count of a command started straight
    # from it began at the caller's size (the suite read 3,386 MB for this 300 MB command)
    ballast = b"y" * (700 * 2**20)
    mb, secs, rc, last = mods["bench_memory"].peak_of(hog, dict(os.environ), tmp_path)
    del ballast
    assert rc == 0 and 300 <= mb < 600 and 0 < secs < 60 and last == "said"
    got = mods["bench_year"].timed_cli(["--version"], dict(os.environ), "version")
    assert got["rc"] == 0 and 20 < got["rss_mb"] < 1000 and 0 < got["seconds"] < 60 and got["stdout"].strip()


def test_eval_score_mode_refuses_too_few_papers_per_day_for_a_pick():
    """A third of each day's papers are GPT's picks: under 3 a day there are none, and after every paper had been
    scored (minutes with a real model) each AUC was printed as nan under sklearn's warnings."""
    p = subprocess.run([sys.executable, str(SCRIPTS / "eval_score_mode.py"), "--backend", "fake", "--model", "tiny",
                        "--per-day", "2", "--days", str(DAYS)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1 and p.stdout == "", p.stdout
    assert "--per-day" in p.stderr.strip().splitlines()[-1] and "nan" not in p.stderr


@pytest.mark.parametrize("name,args", [("eval_score_mode.py", ["--per-day", "3", "--days", str(DAYS)]),
                                       ("eval_injection.py", ["--papers", "1"]),
                                       ("eval_novelty_context.py", ["--n", "1", "--days", str(DAYS)])])
def test_llm_evals_say_what_their_model_lacks_before_any_work(name, args, tmp_path):
    """Their default model, qwen2.5-coder-0.5b, is one `make run` does not prepare: before, the run ended in a
    ModelError traceback (eval_novelty_context.py's after building its corpus), now it is refused at once in
    one line with the command that prepares it."""
    (tmp_path / "models").mkdir()
    p = subprocess.run([sys.executable, str(SCRIPTS / name), "--backend", "vllm", *args], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "RANKER_MODELS_DIR": str(tmp_path / "models")})
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "run: ranker models prepare qwen2.5-coder-0.5b" in p.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("name", ["eval_score_mode.py", "eval_injection.py", "eval_novelty_context.py"])
def test_llm_evals_name_the_backend_flag_for_an_unknown_backend(name):
    """A backend name mistyped was said as the model's fault, under a config key the scripts do not read:
    "error: --model qwen2.5-coder-0.5b: scoring.backend: unknown backend 'vlm'"."""
    days = [] if name == "eval_injection.py" else ["--days", str(DAYS)]
    p = subprocess.run([sys.executable, str(SCRIPTS / name), "--backend", "vlm", *days], capture_output=True,
                       text=True, timeout=120)
    last = p.stderr.strip().splitlines()[-1]
    assert p.returncode == 1 and p.stdout == "", p.stderr[-2000:]
    assert p.stderr.startswith("error: --backend: unknown backend 'vlm'; choose one of: "), last
    assert "--model" not in last and "scoring." not in last, last


@pytest.mark.parametrize("call", ["bench_load.stage('loud', CMD, dict(os.environ), 1)['stderr']",
                                  "bench_backfill.run(CMD, dict(os.environ))[2]"],
                         ids=["bench_load", "bench_backfill"])
def test_bench_load_and_bench_backfill_time_a_command_that_says_much(call):
    """A command that writes more to stderr than a pipe holds (64 KiB: a verbose vLLM or Ray log) is timed to its
    end. Before, both scripts waited for it (os.wait4) before reading its stderr pipe: the command blocked on the
    full pipe, the benchmark waited for ever."""
    module = call.split(".")[0]
    code = (f"import os, sys\nsys.path.insert(0, {str(SCRIPTS)!r})\nimport {module}\n"
            "CMD = [sys.executable, '-c', \"import sys; sys.stderr.write('x' * 2**20 + '\\\\nlast\\\\n')\"]\n"
            f"err = {call}\nprint(len(err), err.strip().splitlines()[-1])\n")
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{call}: still waiting after 60 s for a command that wrote 1 MiB to stderr")
    assert p.returncode == 0, p.stderr[-2000:]
    n, last = p.stdout.strip().splitlines()[-1].split()
    assert int(n) >= 2**20 and last == "last", p.stdout


@pytest.mark.parametrize("name, named", [("eval_keep.py", "--embedder"), ("eval_labels.py", "prefilter.embedder"),
                                         ("eval_walkforward.py", "--embedder")])
def test_an_embedder_not_prepared_ends_a_script_in_the_command_s_one_line(name, named, tmp_path):
    """The walk-forward scripts ended an embedder not prepared in a ModelError traceback naming
    prefilter.embedder; now as a command ends it (cli.app.script_main): one line with the command that prepares
    it, status 1, naming the script's own flag where it has one (the line named the config key
    prefilter.embedder, which a script's user never sets; eval_labels.py has no such flag)."""
    (tmp_path / "models").mkdir()
    (tmp_path / "data" / "days").mkdir(parents=True)
    (tmp_path / "data" / "days" / "2025-05-15").symlink_to(DAYS / "2025-05-15")
    p = subprocess.run([sys.executable, str(SCRIPTS / name), "--data", tmp_path / "data", "--db",
                        tmp_path / "db.sqlite3"], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "RANKER_MODELS_DIR": str(tmp_path / "models"),
                            "RANKER_HOME": str(tmp_path / "home")})
    assert p.returncode == 1 and p.stderr == (f"error: {named}: model preset 'minilm' is not prepared; "
                                              "run: ranker models prepare minilm\n"), p.stderr[-2000:]


def test_eval_walkforward_says_a_second_embedder_not_prepared_before_any_work(tmp_path):
    """--embedder2 not prepared (mpnet: `make run` prepares MiniLM only) was said only after the first embedder's
    work (the history read and embedded: minutes on the shared days); now before any day is read, one line
    naming --embedder2, status 1, as --embedder is."""
    if (Path(os.environ.get("RANKER_MODELS_DIR", REPO / "models")) / "mpnet").exists():
        pytest.skip("mpnet is prepared here")
    (tmp_path / "data" / "days").mkdir(parents=True)
    (tmp_path / "data" / "days" / "2025-05-15").symlink_to(DAYS / "2025-05-15")
    p = subprocess.run([sys.executable, str(SCRIPTS / "eval_walkforward.py"), "--data", tmp_path / "data", "--db",
                        tmp_path / "db.sqlite3", "--embedder2", "mpnet"], capture_output=True, text=True,
                       timeout=120, env={**os.environ, "RANKER_HOME": str(tmp_path / "home")})
    assert p.returncode == 1 and p.stdout == "", p.stdout[-2000:]
    assert p.stderr == "error: --embedder2: model preset 'mpnet' is not prepared; run: ranker models prepare mpnet\n"


@pytest.mark.parametrize("args, line", [(["--embedder", "mpnet"], "--embedder: model preset 'mpnet' is not "
                                          "prepared; run: ranker models prepare mpnet"),
                                         (["--max-tokens", "4"], "--max-tokens: must be at least 8")])
def test_bench_prefilter_names_its_own_flag_at_fault(args, line, tmp_path):
    """bench_prefilter.py's --embedder and --max-tokens: an error about either named the config key
    (prefilter.embedder, prefilter.max_tokens); now the script's flag, one line, status 1."""
    (tmp_path / "models").mkdir()
    p = subprocess.run([sys.executable, str(SCRIPTS / "bench_prefilter.py"), "--papers", "20", *args],
                       capture_output=True, text=True, timeout=120,
                       env={**os.environ, "RANKER_MODELS_DIR": str(tmp_path / "models"),
                            "RANKER_HOME": str(tmp_path / "home")})
    assert p.returncode == 1 and p.stderr == f"error: {line}\n", p.stderr[-2000:]
