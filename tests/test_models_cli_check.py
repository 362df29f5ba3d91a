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


NO_SUCH = "no such model folder, preset (qwen2.5-coder-0.5b, smollm2-135m) or Hugging Face id"     # the LLM presets only


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


def test_a_second_eval_needs_no_model_its_scores_stored_and_a_typo_is_still_refused(tmp_path):
    """A second eval of a model is free: every kept paper's score is in the store, so the model is not loaded,
    and its folder may be gone (a preset since removed from models/). The early check refused it ("not
    prepared") before the history was read; now it defers to the late path, which loads only what is missing.
    A mistyped model, with no score stored under it, is still refused at once, naming --model."""
    import sqlite3
    from contextlib import closing
    hist = tmp_path / "hist"
    hist.mkdir()
    (hist / "2025-05-15").symlink_to(DAYS / "2025-05-15")
    db = tmp_path / "db.sqlite3"
    common = ["--history", hist, "--db", db, "--offline", "--top", "3"]
    first = ranker("eval", *common, "--out", tmp_path / "a", "--backend", "fake", "--model", "tiny")
    assert first.returncode == 0, first.stderr
    # the first eval's answers, as smollm2-135m's (whose real run takes minutes on a CPU): its scores stored
    with closing(sqlite3.connect(db)) as c, c:
        assert c.execute("UPDATE scores SET model='smollm2-135m'").rowcount == 3
    env = _unprepared(tmp_path)                       # presets.toml and the embedder, no smollm2-135m folder
    (env["RANKER_MODELS_DIR"] / "minilm").symlink_to(REPO / "models" / "minilm")
    again = ranker("eval", *common, "--out", tmp_path / "b", "--backend", "transformers", "--model", "smollm2-135m",
                   env=env)
    assert again.returncode == 0, again.stderr
    assert "(0 scored now, 3 reused from the store)" in again.stdout, again.stdout
    # a kept paper not stored under it (a larger --top) needs the model: said by the late path, naming --model
    more = ranker("eval", *common[:-1], "4", "--out", tmp_path / "c", "--backend", "transformers", "--model",
                  "smollm2-135m", env=env)
    assert more.returncode == 1 and more.stderr.endswith(
        "error: --model: model preset 'smollm2-135m' is not prepared; run: ranker models prepare smollm2-135m\n")
    typo = ranker("eval", *common, "--out", tmp_path / "d", "--backend", "transformers", "--model", "smollm2-135",
                  env=env)
    assert typo.returncode == 1 and typo.stderr.startswith("error: --model smollm2-135: no such model"), typo.stderr
    assert typo.stderr.count("\n") == 1 and not (tmp_path / "d").exists()


def _as_model(out, model):
    """OUT's score shards rewritten as `model`'s (its rows and its shard names), as its own backfill writes them."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from ranker.prefilter.embed import slug
    for f in (out / "scores").glob("date=*/*.parquet"):
        t = pq.read_table(f)
        t = t.set_column(t.schema.get_field_index("model"), "model", pa.array([model] * t.num_rows, pa.string()))
        rest = f.name.split("-", 2)[2]                  # past the model's slug (name_hash): prompt hash, rows hash
        pq.write_table(t, f.parent / f"{slug(model)}-{rest}")
        f.unlink()


def test_a_backfill_rerun_with_nothing_to_score_needs_no_model_and_a_typo_is_still_refused(tmp_path):
    """`backfill --score` rerun over a source all scored loads no model, so the early check must not refuse one
    whose folder is gone when OUT's shards hold its scores; a mistyped one (none there) is refused at once."""
    db, out = tmp_path / "db.sqlite3", tmp_path / "out"
    common = ["--from", LISTING, "--out", out, "--db", db, "--offline", "--score"]
    first = ranker("backfill", *common, "--backend", "fake", "--model", "tiny")
    assert first.returncode == 0, first.stderr
    _as_model(out, "smollm2-135m")                     # its real run takes many minutes on a CPU
    env = _unprepared(tmp_path)
    again = ranker("backfill", *common, "--backend", "transformers", "--model", "smollm2-135m", env=env)
    assert again.returncode == 0, again.stderr
    assert "192 already done" in again.stderr + again.stdout, again.stderr
    typo = ranker("backfill", *common, "--backend", "transformers", "--model", "smollm2-135", env=env)
    assert typo.returncode == 1 and typo.stderr.startswith("error: --model smollm2-135: no such model"), typo.stderr
    assert typo.stderr.count("\n") == 1


def test_a_ray_backfill_without_address_checks_the_model_here_before_ray_starts(tmp_path):
    """`--engine ray` without --address starts Ray on this machine, whose workers load the model from here: a
    mistyped one was said naming no flag once the database and --out were made and the whole source ranked."""
    db, out = tmp_path / "db.sqlite3", tmp_path / "out"
    r = ranker("backfill", "--from", LISTING, "--out", out, "--db", db, "--offline", "--score", "--engine", "ray",
               "--model", "nosuch", timeout=300)
    assert r.returncode == 1 and r.stderr == f"error: --model nosuch: {NO_SUCH}\n", r.stderr[-2000:]
    assert not db.exists() and not out.exists()


def test_a_broken_presets_file_is_said_naming_the_file_not_the_model_flag(tmp_path, monkeypatch):
    """presets.toml's own errors name the file: the early check keyed every keyless ConfigError as scoring.model,
    so a broken presets.toml read "error: --model .../presets.toml: preset ... lacks the keys"; check_embedder's
    (the Embedder reads presets.toml first today) keyed it as prefilter.embedder. A wrong kind still names them."""
    from ranker.cli import common
    from ranker.errors import ConfigError
    from ranker.settings import Settings
    models = tmp_path / "models"
    models.mkdir()
    (models / "presets.toml").write_text("[smollm2-135m]\nkind = 3\n")
    want = (f"error: {models / 'presets.toml'}: preset 'smollm2-135m' lacks the keys 'description', 'packages', "
            "'format', 'member'\n")
    p = ranker("score", "--papers", LISTING, "--out", tmp_path / "o.jsonl", "--db", tmp_path / "db.sqlite3",
               "--offline", "--backend", "transformers", "--model", "smollm2-135m", env={"RANKER_MODELS_DIR": models})
    assert p.returncode == 1 and p.stderr == want, p.stderr
    # the embedder's check, past its Embedder: presets.toml read by check_name alone
    s = Settings(prefilter={"embedder": "minilm"}, models_dir=REPO / "models", db=tmp_path / "db.sqlite3")
    broken = ConfigError("preset 'minilm' lacks the key 'member'", where=str(models / "presets.toml"))
    kind = ConfigError("an LLM preset, not an embedder", where="minilm")
    for e, key in [(broken, None), (kind, "prefilter.embedder")]:
        def check_name(*a, e=e, **k):
            raise e
        monkeypatch.setattr("ranker.models.check_name", check_name)
        with pytest.raises(ConfigError) as got:
            common.check_embedder(s)
        assert got.value.key == key


class _NoRoom:
    """A backend whose model is found but cannot be built (as vLLM's or transformers' out of memory)."""
    loads_local_model = True

    @classmethod
    def check_model(cls, model, models_dir=None, options=None):
        from ranker.backends.base import Backend
        Backend.check_model.__func__(cls, model, models_dir, options)

    @classmethod
    def given_tokenizer(cls, options=None):
        return None

    def __init__(self, model, options=None, **kw):
        from ranker.errors import ModelError
        raise ModelError(f"model {model} does not fit in memory: CUDA out of memory")


def test_make_backend_names_the_model_setting_for_a_model_not_there_only(tmp_path, monkeypatch):
    """make_backend keyed every keyless ModelError as scoring.model, runtime failures too: "error: --model: model
    smollm2-135m does not fit in memory". Only the model not found (its check) names the setting now."""
    import ranker.backends as backends
    from ranker.errors import ModelError
    from ranker.settings import Settings
    monkeypatch.setattr(backends, "backend_class", lambda name: _NoRoom)
    for model, key, said in [("smollm2-135m", None, "does not fit in memory"),
                             (str(tmp_path / "gone"), "scoring.model", "no such model")]:
        s = Settings(scoring={"backend": "fake", "model": model}, models_dir=REPO / "models")
        with pytest.raises(ModelError) as got:
            backends.make_backend(s)
        assert got.value.key == key and said in str(got.value), (got.value.key, str(got.value))


def test_a_score_rerun_needs_no_model_its_scores_stored_and_a_typo_is_still_refused(tmp_path):
    """A rerun of a scored day loads no model (README: "a rerun of a finished day loads no model"), yet `score`
    (and `run`) refused a model whose folder is gone at the early check though every score was stored; eval and
    backfill deferred already. A mistyped model, with no score stored under it, is still refused at once."""
    import sqlite3
    from contextlib import closing
    db = tmp_path / "db.sqlite3"
    common = ["--papers", LISTING, "--db", db, "--offline"]
    first = ranker("score", *common, "--out", tmp_path / "a.jsonl", "--backend", "fake", "--model", "tiny")
    assert first.returncode == 0, first.stderr
    with closing(sqlite3.connect(db)) as c, c:       # as smollm2-135m's, whose real run takes minutes on a CPU
        assert c.execute("UPDATE scores SET model='smollm2-135m'").rowcount == 192
    env = _unprepared(tmp_path)
    again = ranker("score", *common, "--out", tmp_path / "b.jsonl", "--backend", "transformers", "--model",
                   "smollm2-135m", env=env)
    assert again.returncode == 0, again.stderr
    assert "(192 reused from the store, 0 new" in again.stdout + again.stderr, again.stdout + again.stderr
    typo = ranker("score", *common, "--out", tmp_path / "c.jsonl", "--backend", "transformers", "--model",
                  "smollm2-135", env=env)
    assert typo.returncode == 1 and typo.stderr.startswith("error: --model smollm2-135: no such model"), typo.stderr
    assert typo.stderr.count("\n") == 1 and not (tmp_path / "c.jsonl").exists()


def test_a_run_rerun_needs_no_model_its_scores_stored_and_a_typo_is_still_refused(tmp_path):
    """`run`'s rerun of a finished day, its model's folder gone since (scores and vectors stored), writes the
    digest again from the store: the early model check defers to what is stored, as score's does (this was
    checked by hand only). A mistyped model is still refused before anything is read."""
    import sqlite3
    from contextlib import closing
    db, out = tmp_path / "db.sqlite3", tmp_path / "digest"
    common = ["--papers", LISTING, "--db", db, "--offline", "--out", out]
    first = ranker("run", *common, "--backend", "fake", "--model", "tiny")
    assert first.returncode == 0, first.stderr
    digest = (out / "2025-05-15-output.md").read_text()
    with closing(sqlite3.connect(db)) as c, c:       # as smollm2-135m's, whose real run takes minutes on a CPU
        n = c.execute("UPDATE scores SET model='smollm2-135m'").rowcount
    assert n > 0
    env = _unprepared(tmp_path)                      # neither the LLM nor the embedder prepared now
    again = ranker("run", *common, "--backend", "transformers", "--model", "smollm2-135m", env=env)
    assert again.returncode == 0, again.stderr
    assert f"{n} kept by the prefilter, 0 scored ({n} reused, 0 failed)" in again.stderr, again.stderr
    # the same digest below its usage table (which names the model the scores are stored under)
    def papers(text):
        lines = text.splitlines()
        return lines[max(i for i, x in enumerate(lines[:12]) if x.startswith("|")) + 1:]
    again_digest = (out / "2025-05-15-output.md").read_text()
    assert "*[smollm2-135m]*" in again_digest and papers(again_digest) == papers(digest) and len(papers(digest)) > 20
    typo = ranker("run", *common, "--backend", "transformers", "--model", "smollm2-135", env=env)
    assert typo.returncode == 1 and typo.stderr.startswith("error: --model smollm2-135: no such model"), typo.stderr
    assert typo.stderr.count("\n") == 1


@pytest.mark.parametrize("command", ["run", "score"])
def test_scores_under_another_prompt_set_do_not_excuse_a_missing_model(tmp_path, command):
    """The early check deferred to the store when it held scores of the model under ANY prompt set: `--prompts
    P2` over scores of P1 (all to score again) got past it with the model's folder gone, and failed later, once
    another day's papers were read (the embedder not prepared for them, or the model, after the prefilter). Now
    only this prompt set's scores excuse the model: refused at once, naming --model."""
    import shutil
    import sqlite3
    from contextlib import closing
    from ranker.prompts import DEFAULT_DIR
    db = tmp_path / "db.sqlite3"
    out = (lambda name: ["--out", tmp_path / name]) if command == "run" else \
        (lambda name: ["--out", tmp_path / f"{name}.jsonl"])
    first = ranker(command, "--papers", LISTING, "--db", db, "--offline", *out("a"), "--backend", "fake",
                   "--model", "tiny")
    assert first.returncode == 0, first.stderr
    with closing(sqlite3.connect(db)) as c, c:       # as smollm2-135m's, whose real run takes minutes on a CPU
        assert c.execute("UPDATE scores SET model='smollm2-135m'").rowcount > 0
    p2 = tmp_path / "p2"
    shutil.copytree(DEFAULT_DIR, p2)
    (p2 / "score_criteria.txt").write_text((p2 / "score_criteria.txt").read_text() + "\nPrefer papers with code.\n")
    env = _unprepared(tmp_path)                      # neither the LLM nor the embedder prepared now
    other_day = DAYS / "2025-07-02" / "listing.jsonl"   # none of its papers stored: all to read, embed and score
    again = ranker(command, "--papers", other_day, "--db", db, "--offline", *out("b"), "--backend", "transformers",
                   "--model", "smollm2-135m", "--prompts", p2, env=env)
    assert again.returncode == 1 and again.stderr == (
        "error: --model: model preset 'smollm2-135m' is not prepared; run: ranker models prepare smollm2-135m\n"), \
        again.stderr
    # under the prompt set its scores were stored under, the early check still defers (to the late path)
    same = ranker(command, "--papers", LISTING, "--db", db, "--offline", *out("c"), "--backend", "transformers",
                  "--model", "smollm2-135m", env=env)
    assert same.returncode == 0, same.stderr
