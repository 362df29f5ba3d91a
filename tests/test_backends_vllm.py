"""The vLLM backend with the bundled SmolLM2 on this machine's CPU build of vLLM (one engine per module),
plus the failure modes: vLLM missing, a model that does not exist, a model that does not fit."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from conftest import DAYS, MODELS
from ranker.backends.base import Request
from ranker.backends.schema import check_answer, paper_schema
from ranker.errors import MissingDependency, ModelError
from ranker.prompts import build_messages, load_prompts
from ranker.records import Paper

DAY = DAYS / "2025-06-23" / "listing.jsonl"
# vLLM's own log handler would hold on to a stream pytest closes; let its records go to the root logger
os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")


def papers(n: int) -> list[Paper]:
    with open(DAY, encoding="utf-8") as f:
        return [Paper.from_dict(json.loads(line)) for line, _ in zip(f, range(n))]


def one_line(e: Exception) -> bool:
    return "\n" not in str(e) and len(str(e)) < 800


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("vllm")
    from ranker.backends.vllm_backend import VLLMBackend
    be = VLLMBackend("smollm2-135m", max_model_len=4096)
    yield be
    be.close()


@pytest.mark.slow
def test_a_batch_of_real_papers(engine):
    ps = load_prompts()
    pp = papers(7)
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=200), paper_schema([p.id], 30), max_tokens=90)
            for p in pp[:5]]
    pair = [pp[5].id, pp[6].id]
    reqs.append(Request("pair", build_messages(ps, pp[5:7], abstract_tokens=120), paper_schema(pair, 25),
                        max_tokens=160))
    reqs.append(Request("cut", build_messages(ps, pp[:1], abstract_tokens=200), paper_schema([pp[0].id], 30),
                        max_tokens=6))
    out = engine.generate(reqs, score_probs=True)
    assert [r.key for r in out] == [r.key for r in reqs]

    for r, p in zip(out[:5], pp):
        assert r.ok, r.error
        (obj,) = check_answer(json.loads(r.text), [p.id], 30)     # id, 1..10 integers, comment <= 30
        assert r.usage.prompt_tokens > 500 and 0 < r.usage.completion_tokens <= 90
        assert r.usage.cached_prompt_tokens > 0                    # the shared prefix came from the cache
        for field in ("RELEVANCE", "NOVELTY"):
            dist = r.score_probs[field]
            assert set(dist) == set(range(1, 11)) and sum(dist.values()) == pytest.approx(1.0)
            v = obj[field]
            assert dist[v] > 0
            if 2 <= v <= 9:          # greedy wrote the most likely first digit
                assert dist[v] == pytest.approx(max(dist.values()))

    pair_out = out[5]
    assert pair_out.ok, pair_out.error
    check_answer(json.loads(pair_out.text), pair, 25)
    assert set(pair_out.score_probs) == {f"{i}/{f}" for i in pair for f in ("RELEVANCE", "NOVELTY")}

    assert out[6].finish_reason == "length" and not out[6].ok

    st = engine.stats()
    from vllm.platforms import current_platform       # the build installed: vllm-cpu here, plain vllm on a GPU
    assert st["device"] == ("cpu" if current_platform.is_cpu() else current_platform.device_type)
    assert st["requests"] == 7 and st["failed"] == 1
    assert st["cached_prompt_tokens"] > 0 and st["prefix_cache_hit_rate"] > 0.3
    assert st["primer_prompt_tokens"] > 1000
    assert st["prompt_tokens"] == sum(r.usage.prompt_tokens for r in out)
    if 2 <= len(os.sched_getaffinity(0)) <= 4 and not os.environ.get("VLLM_CPU_OMP_THREADS_BIND"):
        assert st["engine_env"]["VLLM_CPU_NUM_OF_RESERVED_CPU"] == "0"     # the worker had every core


@pytest.mark.slow
def test_an_engine_call_that_fails_midway_leaves_nothing_for_the_next(engine, monkeypatch):
    """The batch fails after one request finished: the requests it left in the engine are dropped, so the
    one-at-a-time pass that finds the fault gives each paper its own answer (it gave paper 0 paper 1's, and so
    on down the batch)."""
    ps = load_prompts()
    pp = papers(3)
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=60), paper_schema([p.id], 15), max_tokens=80)
            for p in pp]
    reqs[0].max_tokens = 3                       # finishes first, cut off
    llm_engine = engine._llm.llm_engine
    real_step, failed = llm_engine.step, []

    def step():
        outs = real_step()
        if not failed and any(o.finished for o in outs):
            failed.append(True)
            raise RuntimeError("the engine stumbled")
        return outs

    monkeypatch.setattr(llm_engine, "step", step)
    monkeypatch.setattr(engine, "prime_prefix", False)
    out = engine.generate(reqs)
    assert failed and [r.key for r in out] == [p.id for p in pp]
    assert out[0].finish_reason == "length" and out[0].usage.completion_tokens == 3
    for r, p in zip(out[1:], pp[1:]):
        assert r.ok, r.error
        check_answer(json.loads(r.text), [p.id], 15)
    assert not llm_engine.has_unfinished_requests()


@pytest.mark.slow
def test_a_batch_that_fails_is_counted_once_per_request(engine, monkeypatch):
    """Progress hears each request once, as it finishes. A batch that fails after one request finished (and was
    told) is run again one request at a time: that request was told a second time, so the count ran ahead
    of the papers done and past the batch; a request that then fails alone was never told."""
    ps = load_prompts()
    pp = papers(3)
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=60), paper_schema([p.id], 15), max_tokens=80)
            for p in pp]
    reqs[0].max_tokens = 3                       # finishes first
    llm, llm_engine = engine._llm, engine._llm.llm_engine
    real_generate, real_step = llm.generate, llm_engine.step
    calls: list[int] = []
    plan: dict[int, str] = {}                    # engine call -> how it fails
    finished = [False]                           # a request of this call has finished (and was told)

    def step():
        if plan.get(len(calls) - 1) == "midway" and finished[0]:
            raise RuntimeError("the engine stumbled")
        outs = real_step()
        finished[0] = finished[0] or any(o.finished for o in outs)      # vLLM tells it after this step
        return outs

    def generate(prompts, params, **kw):
        calls.append(len(prompts))
        finished[0] = False
        if plan.get(len(calls) - 1) == "at once":
            raise RuntimeError("the engine would not start the batch")
        return real_generate(prompts, params, **kw)

    monkeypatch.setattr(llm_engine, "step", step)
    monkeypatch.setattr(llm, "generate", generate)
    monkeypatch.setattr(engine, "prime_prefix", False)
    for fails, want_ok in [({0: "midway"}, [False, True, True]),             # then each alone: all answer
                           ({0: "at once", 3: "at once"}, [False, True, False])]:   # the last fails alone too
        calls.clear()
        plan.clear()
        plan.update(fails)
        told: list[int] = []
        out = engine.generate(reqs, on_done=told.append)
        assert calls == [3, 1, 1, 1]
        assert [r.ok for r in out] == want_ok and out[0].finish_reason == "length"
        assert sum(told) == len(reqs), (fails, told)
        assert not llm_engine.has_unfinished_requests()


@pytest.mark.slow
def test_an_answer_whose_probe_failed_is_an_error_not_a_one(engine, monkeypatch):
    """Expected mode: a score digit written against a '1' candidate (1, or the start of 10?) is told by a probe,
    one more engine call. When the probes' call failed, every such '1' was counted as 1 and the answers kept
    expectations pulled towards 1. Now the probes are run again one at a time, and an answer whose own probe
    still fails is an error (its text kept: scoring asks for the paper again), the others read as usual."""
    ps = load_prompts()
    pp = papers(2)
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=60), paper_schema([p.id], 15), max_tokens=80)
            for p in pp]
    first = engine.prompt_ids(reqs[0].messages)
    # SmolLM2 writes '1' (then '0') for every score, which needs no probe: kept from writing it (a logit bias;
    # the log-probs are read before it), it writes another digit against a '1' that must be probed
    one, real_sampling = engine._tok.convert_tokens_to_ids("1"), engine._sampling

    def sampling(req, max_tokens, logprobs):
        sp = real_sampling(req, max_tokens, logprobs)
        sp.logit_bias = {one: -100.0}
        return sp
    monkeypatch.setattr(engine, "_sampling", sampling)
    llm = engine._llm
    real_generate = llm.generate
    probes: list[list[str]] = []                 # each call of probes: whose answer each probe is for

    written: list[int] = []                     # the answers' own completion tokens, in request order

    def generate(prompts, params, **kw):
        if params[0].max_tokens == 1 and params[0].logprobs:
            probes.append(["bad" if p["prompt_token_ids"][:len(first)] == first else "good" for p in prompts])
            if len(prompts) > 1 or probes[-1] == ["bad"]:
                raise RuntimeError("the engine stumbled")           # the batch, then the first answer's alone
            return real_generate(prompts, params, **kw)
        outs = real_generate(prompts, params, **kw)
        written.extend(len(o.outputs[0].token_ids) for o in outs)
        return outs

    monkeypatch.setattr(llm, "generate", generate)
    monkeypatch.setattr(engine, "prime_prefix", False)
    out = engine.generate(reqs, score_probs=True)
    assert probes and set(probes[0]) == {"bad", "good"}, "each answer needed a probe"
    bad, good = out
    assert not bad.ok and bad.finish_reason == "error" and bad.score_probs is None
    assert "probe telling 1 from 10 failed" in bad.error and "the engine stumbled" in bad.error
    check_answer(json.loads(bad.text), [pp[0].id], 15)               # the answer itself is kept
    assert good.ok and set(good.score_probs) == {"RELEVANCE", "NOVELTY"}
    # the good answer's tokens hold its probes' (one token each), as the engine's totals do
    n_probes = probes[0].count("good")
    assert good.usage.completion_tokens == written[1] + n_probes and bad.usage.completion_tokens == written[0]
    assert engine.stats()["completion_tokens"] >= sum(written) + n_probes


def _with_words(p: Paper, n: int) -> Paper:
    """The paper with an abstract of n words, which LONG_ABSTRACT lets into the prompt whole: the author list is
    cut (prompts.MAX_AUTHORS), however long, so the abstract is what makes a prompt as long as a test needs."""
    return Paper.from_dict({**p.to_dict(), "abstract": " ".join(["results"] * n)})


LONG_ABSTRACT = 12000       # abstract_tokens: up to 9,000 words, past twice the 4,000 the search below may try


@pytest.mark.slow
def test_papers_whose_prompts_fill_the_context_fail_alone_and_say_why(engine):
    """A paper whose prompt is over max_model_len is refused before the engine, one whose prompt leaves less
    room than its answer needs is cut off, and the papers beside them are scored. The cut-off one failed as
    "generation was cut off (finish_reason=length)", twice: raising nothing a user sets could help (the budget
    is doubled on the retry, the room is not); the reason now says its prompt filled the context, and it is
    asked once."""
    from ranker.scoring import ScoreOptions, score_batch
    ps = load_prompts()
    opt = ScoreOptions(abstract_tokens=LONG_ABSTRACT, comment_chars=40)
    plain, tight, over = papers(3)

    def room(p: Paper) -> int:
        (req,) = _requests([p], ps, opt)
        return engine.max_model_len - len(engine.prompt_ids(req.messages, req.chat_template_kwargs))

    lo, hi = 0, 4000                              # the fewest words that leave under 30 tokens of room
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if room(_with_words(tight, mid)) >= 30 else (lo, mid)
    tight = _with_words(tight, lo)
    over = _with_words(over, 2 * lo)
    assert 8 <= room(tight) < 30 < opt.max_tokens and room(over) < 0
    asked = engine.stats()["requests"]
    res = score_batch([tight, plain, over], engine, ps, opt)
    assert engine.stats()["requests"] - asked == 3            # no retry: a larger budget would not help
    assert set(res.scores) == {plain.id}
    assert set(res.failures) == {tight.id, over.id}
    assert res.failures[over.id].reason.endswith(
        f"does not fit a context of {engine.max_model_len} tokens ([scoring.vllm] max_model_len; the model takes "
        "up to 8192)"), res.failures[over.id].reason
    why = res.failures[tight.id].reason
    assert "answer cut off after" in why and f"leaves no more of a context of {engine.max_model_len}" in why


@pytest.mark.parametrize("context, option, engine_args, model_max, cpu, said", [
    (4096, 4096, {}, 8192, True, "[scoring.vllm] max_model_len; the model takes up to 8192"),
    (4096, None, {"max_model_len": 4096}, 8192, False,
     "[scoring.vllm] engine_args.max_model_len; the model takes up to 8192"),
    (8192, None, {}, 32768, True, "[scoring.vllm] max_model_len, 8192 by default on CPU; the model takes up to 32768"),
    (4096, 4096, {}, None, False, "[scoring.vllm] max_model_len"),
    (8192, None, {}, 8192, True,
     "the model's own; [scoring] abstract_tokens or papers_per_request shortens the prompt"),
    (32768, None, {}, None, False,
     "the model's own; [scoring] abstract_tokens or papers_per_request shortens the prompt"),
    (2048, 2048, {}, 2048, False, "the model's own, as [scoring.vllm] max_model_len sets it; [scoring] abstract_tokens "
     "or papers_per_request shortens the prompt"),
])
def test_a_prompt_too_long_names_the_setting_of_the_context(context, option, engine_args, model_max, cpu, said):
    """A prompt over the engine's context named both sizes, not what sets the context: the config key that
    raises it (with how far the model goes), or, where the model's own limit is the context, what shortens the
    prompt."""
    from ranker.backends.vllm_backend import context_name
    assert context_name(context, option=option, engine_args=engine_args, model_max=model_max, cpu=cpu) == said


def _requests(group: list[Paper], ps, opt):
    from ranker.scoring import build_requests
    return build_requests([group], ps, opt)


@pytest.mark.slow
def test_a_model_folder_that_is_not_a_causal_lm_is_refused_saying_so():
    """The bundled MiniLM embedder named as the scoring model: vLLM, left to choose, takes it for an embedding
    model and failed with whatever its start met first (a max_model_len it derives otherwise, "HybridKVCache-
    Coordinator requires at least one cacheable group"), and a classifier or reward model started, every
    paper then failing with "LLM.generate() is only supported for generative models". Now such a model is
    refused while its config is read, before any weights load, in one line that says what is wrong."""
    pytest.importorskip("vllm")
    from ranker.backends.vllm_backend import VLLMBackend
    before = _engine_processes()
    with pytest.raises(ModelError) as e:
        VLLMBackend(str(MODELS / "minilm"))
    assert "is not a text-generation model" in str(e.value) and "minilm" in str(e.value) and one_line(e.value)
    assert not _engine_processes() - before


@pytest.mark.slow
def test_the_manifests_engine_figures_say_the_dtype_it_computes_in(engine):
    """On a GPU with dtype left to the model, engine_args had no dtype, and the manifest did not say whether
    the scores came from bfloat16 or float16 weights; it says the engine's own."""
    st = engine.stats()
    assert st["dtype"] == "float32" and st["max_model_len"] == 4096      # (this CPU build's default dtype)


@pytest.mark.slow
def test_a_model_without_a_chat_template_is_refused_once_and_its_engine_stopped(tmp_path):
    """A base model, or a folder copied without chat_template.jinja: the engine started, then every paper
    failed with 'chat template failed: Cannot use chat template functions because ...', one failure record
    each. It is one ModelError naming the model, the engine it had started stopped."""
    pytest.importorskip("vllm")
    from ranker.backends.vllm_backend import VLLMBackend
    src, folder = (MODELS / "smollm2-135m").resolve(), tmp_path / "base-model"
    folder.mkdir()
    for f in src.iterdir():
        if f.name != "chat_template.jinja":
            (folder / f.name).symlink_to(f)
    before = _engine_processes()
    with pytest.raises(ModelError) as e:
        VLLMBackend(str(folder), max_model_len=1024)
    assert str(e.value).startswith(f"model {folder} cannot be scored: it has no chat template"), str(e.value)
    assert one_line(e.value)
    assert not _engine_processes() - before


def test_engine_errors_advise_on_the_settings_by_their_table():
    """vLLM's out-of-memory and failed-start errors advised "lower max_model_len" with no table, where the rest of
    the backend's errors name [scoring.vllm] keys: a user looked for a top-level setting."""
    from ranker.backends.vllm_backend import _engine_error
    oom = str(_engine_error(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"), "m"))
    assert oom.endswith("(lower [scoring.vllm] max_model_len, raise its gpu_memory_utilization / kv_cache_gb, "
                        "or choose a smaller model)"), oom
    start = str(_engine_error(RuntimeError("Engine core initialization failed. See root cause above."), "m"))
    assert start.endswith("lower [scoring.vllm] max_model_len)"), start


@pytest.mark.slow
def test_a_model_that_does_not_fit_is_a_one_line_model_error(monkeypatch, capfd):
    pytest.importorskip("vllm")
    from ranker.backends.vllm_backend import VLLMBackend
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    before = _engine_processes()
    with pytest.raises(ModelError) as e:
        VLLMBackend("smollm2-135m", max_model_len=4096, engine_args={"kv_cache_memory_bytes": 16 << 20})
    assert "does not fit in memory" in str(e.value) and one_line(e.value)
    assert "(lower [scoring.vllm] max_model_len, raise its gpu_memory_utilization / kv_cache_gb" in str(e.value)
    # the start that failed let go of its worker (the weights loaded, 1.5 GB) while the caller still holds
    # the error; it had lived on beside the rest of the test suite
    deadline = time.monotonic() + 20
    while _engine_processes() - before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _engine_processes() - before, e.value
    assert "died unexpectedly" not in capfd.readouterr().err      # shut down on purpose, not found dead


def _engine_processes() -> set[int]:
    """This process's living descendants that vLLM named (VLLM::Worker, VLLM::EngineCore), read from /proc."""
    parent, name = {}, {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        if rest[0] != "Z":
            parent[int(d.name)], name[int(d.name)] = int(rest[1]), stat[stat.index("(") + 1:stat.rindex(")")]
    mine, todo = set(), [os.getpid()]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        mine.update(kids)
        todo += kids
    return {p for p in mine if name[p].startswith("VLLM")}


@pytest.mark.slow
def test_an_unknown_hugging_face_id_is_a_model_error(monkeypatch):
    pytest.importorskip("vllm")
    from ranker.backends.vllm_backend import VLLMBackend
    import huggingface_hub.constants
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # the hub reads the variable once, at its import (the module's engine imported it long before): without its
    # own copy switched too, vLLM asked huggingface.co, and a machine with no network waited ~45 s on the lookups
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError) as e:
        VLLMBackend("nobody/no-such-model")
    assert "no-such-model" in str(e.value) and one_line(e.value)


def test_a_missing_model_folder_is_a_one_line_model_error(tmp_path):
    from ranker.backends.vllm_backend import VLLMBackend
    with pytest.raises(ModelError) as e:
        VLLMBackend(str(tmp_path / "no-such-model"))
    assert "no-such-model" in str(e.value) and one_line(e.value)


@pytest.mark.slow
def test_a_typo_in_engine_args_is_a_config_error_naming_it():
    """It was vLLM's TypeError, read as 'vLLM could not load smollm2-135m'; the engine is not started."""
    pytest.importorskip("vllm")
    from ranker.backends.vllm_backend import VLLMBackend
    from ranker.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        VLLMBackend("smollm2-135m", max_model_len=1024, engine_args={"tensor_paralel_size": 1})
    assert e.value.key == "scoring.vllm.engine_args.tensor_paralel_size" and one_line(e.value)


@pytest.mark.parametrize("dtype", ["float8x", "float64", "int8"])
def test_a_dtype_vllm_does_not_take_is_a_config_error_before_vllm_is_imported(monkeypatch, dtype):
    """It was 'vLLM could not load smollm2-135m: 2 validation errors for ModelConfig ...', once the engine had
    been imported and started to load, and named no option."""
    monkeypatch.setitem(sys.modules, "vllm", None)       # not imported: the option is refused before
    from ranker.backends.vllm_backend import VLLMBackend
    from ranker.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        VLLMBackend("smollm2-135m", dtype=dtype)
    assert e.value.key == "scoring.vllm.dtype" and one_line(e.value)
    assert "'bfloat16'" in str(e.value)                  # the names it takes


def test_engine_args_cannot_name_another_model(monkeypatch):
    """engine_args' model won over the model named: vLLM loaded that one, and its answers were stored as the
    named model's scores (the store and the manifest key them by the named one)."""
    monkeypatch.setitem(sys.modules, "vllm", None)
    from ranker.backends.vllm_backend import VLLMBackend
    from ranker.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        VLLMBackend("smollm2-135m", engine_args={"model": str(MODELS / "qwen2.5-coder-0.5b")})
    assert e.value.key == "scoring.vllm.engine_args"
    assert str(e.value) == "scoring.vllm.engine_args: the model is not an engine argument: name it with scoring.model"


def test_vllm_not_installed_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)       # makes `import vllm` fail
    from ranker.backends import get_backend
    with pytest.raises(MissingDependency) as e:
        get_backend("vllm", "smollm2-135m")
    msg = str(e.value)
    assert "'vllm' is not installed" in msg and "ranker[cpu]" in msg and "ranker[gpu]" in msg
    assert one_line(e.value)


def test_small_machines_give_vllms_cpu_worker_every_core(monkeypatch):
    from ranker.backends.vllm_env import cpu_thread_env
    for k in ("VLLM_CPU_OMP_THREADS_BIND", "VLLM_CPU_NUM_OF_RESERVED_CPU"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    assert cpu_thread_env() == {"VLLM_CPU_OMP_THREADS_BIND": "0,1", "VLLM_CPU_NUM_OF_RESERVED_CPU": "0"}
    assert cpu_thread_env(tensor_parallel_size=2) == {}               # per-rank lists: vLLM's own business
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert cpu_thread_env() == {}                                      # a big machine keeps vLLM's default
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "1")
    assert cpu_thread_env() == {}                                      # the user's choice wins


def _without_context_length(src, dest):
    """A copy of a model folder (files linked) whose config.json leaves out max_position_embeddings."""
    dest.mkdir()
    for f in src.iterdir():
        if f.name != "config.json":
            (dest / f.name).symlink_to(f)
    cfg = json.loads((src / "config.json").read_text())
    del cfg["max_position_embeddings"]
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest


def test_the_context_length_is_read_as_transformers_reads_the_config(tmp_path):
    """The model's context length as transformers reads config.json: a Llama without max_position_embeddings has
    Llama's default (2048, what vLLM derives too), GPT-2 keeps it in n_positions, a multimodal model in its text
    config; a model type transformers does not know: what config.json states; no length at all: unknown
    (then vLLM chooses)."""
    from ranker.backends.vllm_backend import _model_max_len
    assert _model_max_len(str(MODELS / "smollm2-135m")) == 8192
    assert _model_max_len(str(_without_context_length(MODELS / "smollm2-135m", tmp_path / "llama"))) == 2048
    for name, cfg, want in [("gpt2", {"model_type": "gpt2", "n_positions": 1536}, 1536),
                            ("vlm", {"model_type": "llava", "text_config": {"model_type": "llama",
                                                                            "max_position_embeddings": 3072}}, 3072),
                            ("odd", {"model_type": "no-such-architecture"}, None),
                            ("new", {"model_type": "brand-new-architecture", "max_position_embeddings": 131072},
                             131072),                  # transformers cannot read it: config.json as written
                            ("none", None, None)]:
        (tmp_path / name).mkdir()
        if cfg is not None:
            (tmp_path / name / "config.json").write_text(json.dumps(cfg))
        assert _model_max_len(str(tmp_path / name)) == want, name


@pytest.mark.slow
def test_a_model_whose_config_leaves_out_its_context_length_loads(tmp_path):
    """vLLM was handed max_model_len 8192 for such a model and refused it (more than the 2048 it derives)."""
    pytest.importorskip("vllm")
    from ranker.backends.vllm_backend import VLLMBackend
    folder = _without_context_length(MODELS / "smollm2-135m", tmp_path / "smol")
    be = VLLMBackend(str(folder))
    try:
        assert be.max_model_len == 2048 and be.engine_args["max_model_len"] == 2048
    finally:
        be.close()


@pytest.mark.slow
def test_a_model_folder_without_its_tokenizer_loads_with_the_one_engine_args_names(tmp_path):
    """The folder was refused for lacking tokenizer files though engine_args named the tokenizer vLLM loads;
    it loads now, with that tokenizer (the user's path, ~ expanded, is what vLLM gets)."""
    pytest.importorskip("vllm")
    from ranker.backends.vllm_backend import VLLMBackend
    m, tok = tmp_path / "smol", tmp_path / "tok"
    m.mkdir()
    tok.mkdir()
    for f in (MODELS / "smollm2-135m").iterdir():
        (tok if f.name.startswith(("tokenizer", "chat_template")) else m).joinpath(f.name).symlink_to(f)
    be = VLLMBackend(str(m), max_model_len=1024, engine_args={"tokenizer": str(tok)})
    try:
        assert be._llm.llm_engine.model_config.tokenizer == str(tok.resolve())
        assert "tokenizer" not in be.engine_args
        text = be.prompt_text([{"role": "user", "content": "hello"}])
        assert "hello" in text and "<|im_start|>" in text               # SmolLM2's chat template, from tok
    finally:
        be.close()
