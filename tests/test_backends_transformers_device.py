"""The transformers backend's device and dtype options, checked before any model is loaded, and what its
generate does around the model (a model stood in for)."""
from __future__ import annotations

import pytest

import sys
import weakref

from conftest import DAYS, ranker, without_loading
from ranker.backends.base import Request, Result
from ranker.errors import ConfigError


def test_a_device_torch_does_not_know_or_this_machine_has_not_is_a_config_error():
    torch = pytest.importorskip("torch")
    from ranker.backends.transformers_backend import TransformersBackend
    with pytest.raises(ConfigError) as e:
        TransformersBackend("smollm2-135m", device="gpu")
    assert e.value.key == "scoring.transformers.device"
    assert str(e.value).startswith("scoring.transformers.device: 'gpu' is not a torch device")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError) as e:
            TransformersBackend("smollm2-135m", device="cuda")
        assert e.value.key == "scoring.transformers.device" and "no cuda device on this machine" in str(e.value)
    else:
        with pytest.raises(ConfigError, match="no device cuda:99"):
            TransformersBackend("smollm2-135m", device="cuda:99")


@pytest.mark.parametrize("dtype", ["int8", "bool", "complex64", "float8_e4m3fn"])
def test_a_dtype_no_model_computes_in_is_a_config_error(dtype):
    """torch has these dtypes, and the option took them: the loader then refused int8, bool or complex64 in its
    own words without naming the option, and float8 ended as an "unexpected failure"."""
    pytest.importorskip("torch")
    from ranker.backends.transformers_backend import TransformersBackend
    with pytest.raises(ConfigError) as e:
        TransformersBackend("smollm2-135m", device="cpu", dtype=dtype)
    assert str(e.value) == (f"scoring.transformers.dtype: a model cannot compute in dtype '{dtype}'; use auto, "
                            "float32, bfloat16 or float16")


def test_the_cli_names_the_option_in_one_line(tmp_path):
    papers = tmp_path / "day.jsonl"
    papers.write_text((DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[0] + "\n")
    p = ranker("score", "--papers", papers, "--out", tmp_path / "o.jsonl", "--backend", "transformers",
               "--backend-option", "device=gpu")
    err = without_loading(p.stderr)
    assert p.returncode == 1 and err.count("\n") == 1
    assert err.startswith("error: --backend-option device: 'gpu' is not a torch device"), p.stderr


def test_a_failed_batch_is_retried_paper_by_paper_after_its_failure_is_let_go():
    """A batch that fails (a GPU out of memory) is run again one request at a time to find the one at fault.
    The retry ran inside the except handler, whose traceback held the failed call's frames and the batch's
    tensors in them: the memory the retry needed was still taken. It runs after the handler now, the failed
    batch's objects freed, and each request still gets its own result."""
    from ranker.backends.transformers_backend import TransformersBackend

    class Tensor:                                   # stands in for the batch's tensors
        pass
    be = TransformersBackend.__new__(TransformersBackend)           # no model: _generate_chunk stood in for
    be.batch_size, be.device = 4, "cpu"
    be._stats = {"requests": 0, "failed": 0, "generate_seconds": 0.0, "probe_forwards": 0}
    held: list[weakref.ref] = []
    seen = []

    def chunk(reqs, score_probs):
        if len(reqs) > 1:
            batch = Tensor()                        # a local of the failing frame, as generate's tensors are
            held.append(weakref.ref(batch))
            raise RuntimeError("CUDA out of memory")
        seen.append((reqs[0].key, sys.exc_info()[0], [r() for r in held]))
        if reqs[0].key == "b":
            raise ValueError("bad\nrequest")
        return [Result(reqs[0].key, "{}", "stop")]
    be._generate_chunk = chunk
    out = be.generate([Request(k, [{"role": "user", "content": k}], {}) for k in "abc"])
    assert [(r.key, r.ok, r.error) for r in out] == [("a", True, None), ("b", False, "transformers: bad request"),
                                                     ("c", True, None)]
    assert [k for k, _, _ in seen] == ["a", "b", "c"]
    assert all(exc is None for _, exc, _ in seen), "retried inside the batch failure's handler"
    assert all(alive == [None] for _, _, alive in seen), "the failed batch's objects were still held"
    assert be._stats["requests"] == 3 and be._stats["failed"] == 1


def test_a_dtype_in_ranker_toml_is_refused_before_the_run_starts_on_the_day(tmp_path):
    """`[scoring.transformers] dtype = "weird"` (or int8) passed the settings' check and was refused only as the
    model loaded: `ranker run` had embedded and ranked the day first (minutes on a new day) and left a failed
    manifest in --out. It is one line naming the file's line, before anything is read, loaded or written."""
    (tmp_path / "ranker.toml").write_text('[scoring]\nbackend = "transformers"\n[scoring.transformers]\n'
                                          'dtype = "weird"\n')
    for cmd in (["run", "--papers", DAYS / "2025-05-15" / "listing.jsonl", "--out", tmp_path / "d", "--offline"],
                ["config"]):
        r = ranker(*cmd, cwd=tmp_path)
        assert r.returncode == 1 and r.stderr.splitlines() == [
            "error: ranker.toml:4: scoring.transformers.dtype: a model cannot compute in dtype 'weird'; use auto, "
            "float32, bfloat16 or float16"], (cmd, r.stderr)
    assert not (tmp_path / "d").exists()
    (tmp_path / "ranker.toml").write_text('[scoring]\nbackend = "transformers"\n[scoring.transformers]\n'
                                          'dtype = "int8"\n')
    r = ranker("config", cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        "error: ranker.toml:4: scoring.transformers.dtype: a model cannot compute in dtype 'int8'; use auto, float32, "
        "bfloat16 or float16"], r.stderr


def test_dtype_auto_is_a_setting_whichever_backend_scores(tmp_path):
    """`dtype = "auto"` (vLLM's spelling, and transformers' own) was refused by the settings' check: every
    [scoring.*] table is checked whichever backend scores, so a `backend = "vllm"` user with a leftover
    `[scoring.transformers] dtype = "auto"` had status 1 on every command (the load: test_backends_transformers)."""
    (tmp_path / "ranker.toml").write_text('[scoring]\nbackend = "vllm"\n[scoring.transformers]\ndtype = "auto"\n')
    r = ranker("config", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == "", r.stderr
