"""`ranker run` and `ranker score` find the scoring model before any work: a preset not prepared or a folder
that is not there is the one error line at once, not after the day was fetched, embedded and ranked."""
from __future__ import annotations

import pytest

from conftest import DAYS, REPO, ranker

LISTING = DAYS / "2025-05-15" / "listing.jsonl"


def _unprepared(tmp_path):
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    (models / "presets.toml").write_text((REPO / "models" / "presets.toml").read_text())
    return {"RANKER_MODELS_DIR": models}


def test_run_refuses_an_unprepared_model_before_the_prefilter(tmp_path):
    db, out = tmp_path / "db.sqlite3", tmp_path / "digest"
    p = ranker("run", "--papers", LISTING, "--out", out, "--db", db, "--offline", "--backend", "transformers",
               "--model", "smollm2-135m", env=_unprepared(tmp_path))
    assert p.returncode == 1
    assert p.stderr == ("error: --model: model preset 'smollm2-135m' is not prepared; run: ranker models prepare "
                        "smollm2-135m\n")
    assert not db.exists() and not out.exists()        # nothing read, embedded or recorded


def test_score_refuses_a_missing_model_before_reading_papers(tmp_path):
    db = tmp_path / "db.sqlite3"
    gone = tmp_path / "gone"
    for backend, model, want in [("vllm", "smollm2-135m", "--model: model preset 'smollm2-135m' is not prepared"),
                                 ("transformers", str(gone), f"--model {gone}: no such model")]:
        p = ranker("score", "--papers", LISTING, "--out", tmp_path / "o.jsonl", "--db", db, "--backend", backend,
                   "--model", model, env=_unprepared(tmp_path))
        assert p.returncode == 1 and p.stderr.startswith(f"error: {want}") and p.stderr.count("\n") == 1
        assert not db.exists()


def test_backends_without_a_model_on_disk_are_not_checked(tmp_path):
    p = ranker("score", "--papers", LISTING, "--out", tmp_path / "o.jsonl", "--db", tmp_path / "db.sqlite3",
               "--backend", "fake", "--model", "not-a-preset", env=_unprepared(tmp_path))
    assert p.returncode == 0, p.stderr


NO_SUCH = "no such model folder, preset (minilm, mpnet, qwen2.5-coder-0.5b, smollm2-135m) or Hugging Face id"


@pytest.mark.parametrize("command", ["run", "score", "eval", "backfill"])
def test_a_mistyped_model_is_one_line_naming_the_flag_or_config_line_before_anything_is_made(tmp_path, command):
    """`--model nosuch` (or ranker.toml's `model = "nosuch"`) said "error: nosuch: no such model folder ...",
    naming no flag or config line where `--embedder nosuch` names its flag; `eval` said it only after the whole
    history was read (and "loading nosuch ..."), `backfill --score` after its database and --out were made. Now
    one line naming --model, or the ranker.toml line of scoring.model, before anything is read or made."""
    hist = tmp_path / "hist"
    hist.mkdir()
    (hist / "2025-05-15").symlink_to(DAYS / "2025-05-15")
    out = tmp_path / "out"
    args = {"run": ["--papers", LISTING, "--out", out],
            "score": ["--papers", LISTING, "--out", out],
            "eval": ["--history", hist, "--out", out, "--backend", "vllm"],
            "backfill": ["--from", LISTING, "--out", out, "--score"]}[command]
    db = tmp_path / "db.sqlite3"
    r = ranker(command, *args, "--db", db, "--model", "nosuch", "--offline")
    assert r.returncode == 1 and r.stderr == f"error: --model nosuch: {NO_SUCH}\n", r.stderr
    r = ranker(command, *args, "--db", db, "--model", "minilm", "--offline")
    assert r.returncode == 1 and r.stderr == "error: --model minilm: an embedder preset, not an LLM\n", r.stderr
    cfg = tmp_path / "ranker.toml"
    cfg.write_text('[scoring]\nmodel = "nosuch"\n')
    r = ranker(command, *args, "--db", db, "--config", cfg, "--offline")
    assert r.returncode == 1 and r.stderr == f"error: {cfg}:2: scoring.model nosuch: {NO_SUCH}\n", r.stderr
    assert not db.exists() and not out.exists()
