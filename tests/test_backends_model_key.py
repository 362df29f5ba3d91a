"""What scores of a model loaded from disk are stored under: a preset by its name, a folder by its absolute
path (not as typed), so `--model ./m` in two working directories is two models whose scores never mix."""
from __future__ import annotations

import pytest

from conftest import DAYS, MODELS, ranker
from ranker.backends import backend_class, model_key


def _copy(src, dest):
    """A model folder of its own whose files are links to `src`'s (the same weights, another path)."""
    dest.mkdir(parents=True)
    for f in src.iterdir():
        (dest / f.name).symlink_to(f)
    return dest


def test_a_folder_is_keyed_by_its_absolute_path(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "m").mkdir(parents=True)
    (b / "m").mkdir(parents=True)
    (a / "link").symlink_to(a / "m")
    for backend in ("vllm", "transformers"):
        cls = backend_class(backend)
        monkeypatch.chdir(a)
        assert cls.store_name("./m") == model_key(backend, "m") == str(a / "m")
        assert cls.store_name(str(a / "m")) == cls.store_name("link") == str(a / "m")    # one folder, one key
        monkeypatch.chdir(b)
        assert cls.store_name("./m") == str(b / "m")
        assert cls.store_name("smollm2-135m") == "smollm2-135m"                     # presets by name
        (b / "smollm2-135m").mkdir(exist_ok=True)                                   # ... as resolve finds them
        assert cls.store_name("smollm2-135m") == "smollm2-135m"
        assert cls.store_name("org/not-a-folder") == "org/not-a-folder"           # a Hub id as given
    assert backend_class("fake").store_name("./m") == "fake:./m"                   # not a model on disk
    from ranker.backends.base import local_model_key
    assert local_model_key("smollm2-135m", models_dir=MODELS) == "smollm2-135m"


@pytest.mark.slow
def test_the_same_relative_folder_in_two_directories_is_scored_twice(tmp_path):
    """`ranker score --model ./m` from two working directories, one database: the second ./m is another
    folder, so its papers are scored by it, not read back from the first one's scores."""
    papers = tmp_path / "day.jsonl"
    papers.write_text((DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[0] + "\n")
    db = tmp_path / "db.sqlite3"
    # a short abstract and comment (the answer's length is not the point: which model it is stored under is)
    config = tmp_path / "ranker.toml"
    config.write_text("[scoring]\nabstract_tokens = 16\ncomment_chars = 20\n")
    runs = []
    for cwd in (tmp_path / "one", tmp_path / "two"):
        _copy(MODELS / "smollm2-135m", cwd / "m")
        p = ranker("score", "--papers", papers, "--out", cwd / "scores.jsonl", "--db", db, "--backend",
                   "transformers", "--model", "./m", "--backend-option", "threads=1", "--config", config, cwd=cwd)
        assert p.returncode == 0, p.stderr
        runs.append(p.stderr.splitlines()[-1])
    assert "(0 reused from the store, 1 new" in runs[0]
    assert "(0 reused from the store, 1 new" in runs[1], runs[1]
    import sqlite3
    from contextlib import closing
    with closing(sqlite3.connect(db)) as c:
        models = {r[0] for r in c.execute("SELECT DISTINCT model FROM scores")}
    assert models == {str(tmp_path / "one" / "m"), str(tmp_path / "two" / "m")}


def test_the_key_known_before_loading_uses_the_settings_models_folder(tmp_path, monkeypatch):
    """A models folder of one's own whose presets.toml names `mine`, run from a folder that holds a `mine`
    folder too: the built backend keys scores by the preset's name, so the key known before loading (which
    tells a finished day to load no model, and the backfill what is scored) must be the same."""
    own = tmp_path / "models"
    own.mkdir()
    (own / "presets.toml").write_text((MODELS / "presets.toml").read_text().replace("[smollm2-135m]", "[mine]"))
    monkeypatch.chdir(own)
    (own / "mine").mkdir()
    from ranker.backends.base import local_model_key
    for backend in ("vllm", "transformers"):
        assert backend_class(backend).store_name("mine", own) == "mine" == local_model_key("mine", own)
        assert model_key(backend, "mine", own) == "mine"


def test_a_backfill_with_the_openai_backend_and_no_model_is_asked_for_the_served_one():
    """The openai backend with no model named scores with the server's own ("auto", set by the settings, never
    typed): what must know the stored name before the server is asked (the backfill's plan) says to name it,
    without quoting an "auto" the user never wrote."""
    from ranker.errors import ConfigError
    from ranker.settings import resolve
    s = resolve(flags={"backend": "openai"}, env={})
    assert s.scoring.model == "auto"
    with pytest.raises(ConfigError) as e:
        model_key("openai", s.scoring.model)
    assert e.value.key == "scoring.model" and "name the model it serves" in str(e.value)
    assert "auto" not in str(e.value)
