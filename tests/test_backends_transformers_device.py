"""The transformers backend's device and dtype options, checked before any model is loaded."""
from __future__ import annotations

import pytest

from conftest import DAYS, ranker, without_loading
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
    assert str(e.value) == (f"scoring.transformers.dtype: a model cannot compute in {dtype}; use float32, bfloat16 "
                            "or float16")


def test_the_cli_names_the_option_in_one_line(tmp_path):
    papers = tmp_path / "day.jsonl"
    papers.write_text((DAYS / "2025-05-15" / "listing.jsonl").read_text().splitlines()[0] + "\n")
    p = ranker("score", "--papers", papers, "--out", tmp_path / "o.jsonl", "--backend", "transformers",
               "--backend-option", "device=gpu")
    err = without_loading(p.stderr)
    assert p.returncode == 1 and err.count("\n") == 1
    assert err.startswith("error: --backend-option device: 'gpu' is not a torch device"), p.stderr
