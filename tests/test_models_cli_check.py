"""`ranker run` and `ranker score` find the scoring model before any work: a preset not prepared or a folder
that is not there is the one error line at once, not after the day was fetched, embedded and ranked."""
from __future__ import annotations

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
    assert p.stderr == ("error: model preset 'smollm2-135m' is not prepared; run: ranker models prepare "
                        "smollm2-135m\n")
    assert not db.exists() and not out.exists()        # nothing read, embedded or recorded


def test_score_refuses_a_missing_model_before_reading_papers(tmp_path):
    db = tmp_path / "db.sqlite3"
    for backend, model, want in [("vllm", "smollm2-135m", "model preset 'smollm2-135m' is not prepared"),
                                 ("transformers", str(tmp_path / "gone"), f"{tmp_path / 'gone'}: no such model")]:
        p = ranker("score", "--papers", LISTING, "--out", tmp_path / "o.jsonl", "--db", db, "--backend", backend,
                   "--model", model, env=_unprepared(tmp_path))
        assert p.returncode == 1 and p.stderr.startswith(f"error: {want}") and p.stderr.count("\n") == 1
        assert not db.exists()


def test_backends_without_a_model_on_disk_are_not_checked(tmp_path):
    p = ranker("score", "--papers", LISTING, "--out", tmp_path / "o.jsonl", "--db", tmp_path / "db.sqlite3",
               "--backend", "fake", "--model", "not-a-preset", env=_unprepared(tmp_path))
    assert p.returncode == 0, p.stderr
