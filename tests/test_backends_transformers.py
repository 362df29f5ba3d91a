"""The transformers + xgrammar backend with the bundled SmolLM2 on CPU."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from conftest import DAYS, MODELS, ctrl_c_when
from ranker.backends.base import Request, Result
from ranker.backends.schema import check_answer, paper_schema
from ranker.errors import ModelError
from ranker.prompts import build_messages, load_prompts
from ranker.records import Paper
from ranker.scoring import ScoreOptions, score_papers
from ranker.store import Store

# threads=1 (the module's backends) is torch's thread count for the whole process: put back after the module,
# else every in-process torch run of the suite after it (MiniLM embedding the backfills' and prefilter's papers)
# ran on one core where it had two
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_threads_put_back")]


def papers(n: int) -> list[Paper]:
    with open(DAYS / "2025-05-15" / "listing.jsonl", encoding="utf-8") as f:
        return [Paper.from_dict(json.loads(line)) for line, _ in zip(f, range(n))]


@pytest.fixture(scope="module")
def backend():
    from ranker.backends.transformers_backend import TransformersBackend
    be = TransformersBackend("smollm2-135m", threads=1)
    yield be
    be.close()


def test_three_papers_one_at_a_time_with_probabilities(backend):
    ps = load_prompts()
    pp = papers(3)
    # a short abstract and comment: the prompt is still the real one (over 1,500 tokens of instructions), the
    # answer still a whole JSON object under the schema, in fewer tokens of CPU time each
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=40), paper_schema([p.id], 20), max_tokens=70)
            for p in pp]
    out = backend.generate(reqs, score_probs=True)
    assert [r.key for r in out] == [p.id for p in pp]
    for r, p in zip(out, pp):
        assert r.ok, r.error
        (obj,) = check_answer(json.loads(r.text), [p.id], 20)
        assert r.usage.prompt_tokens > 500 and 0 < r.usage.completion_tokens <= 70
        for field in ("RELEVANCE", "NOVELTY"):
            dist = r.score_probs[field]
            assert sum(dist.values()) == pytest.approx(1.0) and dist[obj[field]] > 0
            if 2 <= obj[field] <= 9:
                assert dist[obj[field]] == pytest.approx(max(dist.values()))
    st = backend.stats()
    assert st["requests"] == 3 and st["failed"] == 0 and st["cached_prompt_tokens"] == 0


def test_the_manifests_engine_figures_say_the_dtype_and_context(backend):
    """The manifest's engine figures did not say the dtype the model computed in (float32 on a CPU, bfloat16 on
    a GPU, or the option's) nor the context its prompts had to fit."""
    st = backend.stats()
    assert st["dtype"] == "float32" and st["max_model_len"] == 8192 and st["device"] == "cpu"


def test_small_batches_and_a_cut_off_answer(backend):
    ps = load_prompts()
    pp = papers(2)
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=60), paper_schema([p.id], 15), max_tokens=60)
            for p in pp]
    reqs[1].max_tokens = 5
    backend.batch_size = 2
    told = []
    try:
        out = backend.generate(reqs, on_done=lambda n, which: told.append((n, which)))
    finally:
        backend.batch_size = 1
    assert told == [(2, [0, 1])]                  # the batch's requests, named for the progress bar
    assert out[0].ok, out[0].error
    check_answer(json.loads(out[0].text), [pp[0].id], 15)
    assert out[1].finish_reason == "length" and out[1].usage.completion_tokens == 5
    assert not out[1].context_full and out[1].error is None   # its budget's cut-off: a larger one may do
    assert out[1].text and len(out[1].text) <= 40          # five tokens' worth, not the batch's sixty


def test_an_answer_does_not_depend_on_what_shares_its_batch(backend):
    """Left-padded beside a prompt seven times its length, a request gets the greedy answer and the score
    probabilities it gets alone (padding masked, positions counted from its own first token)."""
    def req(key, text):
        return Request(key, [{"role": "user", "content": text}], paper_schema([key], 20), max_tokens=90)
    short = req("1706.03762", "Score the paper 'Attention is all you need' (arXiv 1706.03762) for relevance and "
                              "novelty, 1 to 10, as JSON.")
    long_ = req("2001.00001", "Score this paper, 1 to 10, as JSON. " + "It studies large language models for "
                              "ranking scientific papers by relevance. " * 40)
    (alone,) = backend.generate([short], score_probs=True)
    backend.batch_size = 2
    try:
        both = backend.generate([short, long_], score_probs=True)
    finally:
        backend.batch_size = 1
    assert len(backend.prompt_ids(long_.messages)) > 7 * len(backend.prompt_ids(short.messages))
    assert alone.ok and both[0].text == alone.text and both[1].ok
    for field in ("RELEVANCE", "NOVELTY"):
        assert both[0].score_probs[field] == pytest.approx(alone.score_probs[field], abs=1e-5)


def test_ctrl_c_keeps_the_answers_generated_before_it(backend, tmp_path):
    """Scoring hands the backend its whole batch (64 papers) in one call, which this backend answers one
    paper at a time, seconds of CPU each: Ctrl-C on the second paper threw the first's answer away with the
    call, and a rerun computed it again. It comes back with the interrupt (GenerateInterrupted) and is stored."""
    pp = papers(3)
    opt = ScoreOptions(abstract_tokens=60, comment_chars=60)
    first_done = threading.Event()

    def progress(stage, done, total):
        if done >= 1:
            first_done.set()
    with Store(tmp_path / "db.sqlite3") as store:
        with ctrl_c_when(first_done), pytest.raises(KeyboardInterrupt) as e:
            score_papers(pp, backend, load_prompts(), store, options=opt, progress=progress)
        got = store.get_scores([p.id for p in pp], backend.model_name,
                               load_prompts().hash(**opt.prompt_options()))
    assert list(got) == [pp[0].id]
    assert e.value.run.scored == 1 and e.value.run.usage.completion_tokens > 0


def test_a_missing_model_is_a_model_error(tmp_path):
    from ranker.backends.transformers_backend import TransformersBackend
    with pytest.raises(ModelError) as e:
        TransformersBackend(str(tmp_path / "nothing-here"))
    assert "\n" not in str(e.value)


def model_with(tmp_path, name: str, **changes) -> Path:
    """The bundled SmolLM2 as a folder whose JSON file `name` has `changes` over its own (weights linked)."""
    src, dst = (MODELS / "smollm2-135m").resolve(), tmp_path / f"smollm2-{name.split('.')[0]}"
    dst.mkdir()
    for f in src.iterdir():
        if f.name != name:
            (dst / f.name).symlink_to(f)
    (dst / name).write_text(json.dumps({**json.loads((src / name).read_text()), **changes}))
    return dst


def template_model(tmp_path, template: str | None) -> Path:
    """The bundled SmolLM2 as a folder whose chat template is `template` (None: none at all; weights linked)."""
    src, dst = (MODELS / "smollm2-135m").resolve(), tmp_path / "smollm2-template"
    dst.mkdir()
    for f in src.iterdir():
        if f.name != "chat_template.jinja":
            (dst / f.name).symlink_to(f)
    if template is not None:
        (dst / "chat_template.jinja").write_text(template)
    return dst


@pytest.mark.parametrize("template, words", [
    (None, "it has no chat template"),
    ("{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}",
     "its chat template cannot format a system and a user message, as scoring sends: System role not supported")])
def test_a_model_whose_chat_template_cannot_take_the_requests_is_refused_once(tmp_path, template, words):
    """A base model without a chat template (or a folder copied without chat_template.jinja), or one whose
    template refuses a system message, loaded, then failed every paper in transformers' words, one failure
    record each. It is one ModelError naming the model, before the weights load."""
    from ranker.backends.transformers_backend import TransformersBackend
    folder = template_model(tmp_path, template)
    with pytest.raises(ModelError) as e:
        TransformersBackend(str(folder), threads=1)
    assert str(e.value).startswith(f"model {folder} cannot be scored: {words}"), str(e.value)
    assert "\n" not in str(e.value)


def short_context_model(tmp_path, context: int):
    """The bundled SmolLM2 as a folder whose config states a context of `context` tokens (weights linked)."""
    return model_with(tmp_path, "config.json", max_position_embeddings=context)


def test_greedy_is_greedy_whatever_the_models_generation_config_suggests(backend, tmp_path):
    """generate() fills what it is not told from the model's generation_config.json: Qwen2.5's ships
    do_sample with repetition_penalty 1.05, which bent every "greedy" answer and its score probabilities away
    from what vLLM (explicit sampling parameters) writes. The same weights with such a file answer the same."""
    from ranker.backends.transformers_backend import TransformersBackend
    msgs = [{"role": "user", "content": "Score the paper 'Attention is all you need' (arXiv 1706.03762) for "
                                        "relevance and novelty, 1 to 10, as JSON."}]
    req = Request("1706.03762", msgs, paper_schema(["1706.03762"], 20), max_tokens=80)
    folder = model_with(tmp_path, "generation_config.json", do_sample=True, temperature=0.7, top_k=20,
                        repetition_penalty=1.3)
    be = TransformersBackend(str(folder), threads=1)
    try:
        (got,) = be.generate([req], score_probs=True)
    finally:
        be.close()
    (want,) = backend.generate([req], score_probs=True)
    assert want.ok and got.text == want.text
    for field in ("RELEVANCE", "NOVELTY"):
        assert got.score_probs[field] == pytest.approx(want.score_probs[field], abs=1e-6)


def test_a_multimodal_model_scores_with_its_text_model(tmp_path):
    """Gemma 3 (4B and up) loads as Gemma3ForConditionalGeneration, whose config keeps vocab_size in its text
    config only: the backend read config.vocab_size and stopped with an AttributeError ("unexpected failure")
    once the weights were loaded. A tiny Gemma 3 of random weights, SmolLM2's tokenizer, answers under the
    schema."""
    import shutil

    import torch
    from transformers import AutoTokenizer, Gemma3Config, Gemma3ForConditionalGeneration

    from ranker.backends.transformers_backend import TransformersBackend
    src, folder = MODELS / "smollm2-135m", tmp_path / "gemma3-tiny"
    cfg = Gemma3Config(
        text_config=dict(vocab_size=len(AutoTokenizer.from_pretrained(str(src))), hidden_size=64,
                         intermediate_size=128, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         head_dim=32, max_position_embeddings=4096, sliding_window=512,
                         layer_types=["sliding_attention", "full_attention"]),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14),
        mm_tokens_per_image=4, eos_token_id=2, pad_token_id=2, bos_token_id=1)
    torch.manual_seed(0)
    Gemma3ForConditionalGeneration(cfg).save_pretrained(folder)
    for f in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        shutil.copy(src / f, folder / f)
    be = TransformersBackend(str(folder), threads=1)
    try:
        (res,) = be.generate([Request("1706.03762", [{"role": "user", "content": "Score arXiv 1706.03762."}],
                                      paper_schema(["1706.03762"], 40), max_tokens=200)])
    finally:
        be.close()
    assert be.max_model_len == 4096
    assert res.ok, res.error
    check_answer(json.loads(res.text), ["1706.03762"], 40)


def test_a_prompt_must_leave_its_answer_room_in_the_models_context(tmp_path):
    """A prompt over the model's context is refused with the reason (it was scored beyond the positions the
    model knows); one that fits leaves its answer only the room that is left, and an answer cut off there says
    the context is full (Result.context_full), not just "length": it had failed as a budget cut-off, which
    scoring retried with twice the budget the context does not have."""
    from transformers import AutoTokenizer

    from ranker.backends.transformers_backend import TransformersBackend
    ps = load_prompts()
    long_p, short_p = papers(2)
    long_m = build_messages(ps, [long_p], abstract_tokens=150)
    short_m = build_messages(ps, [short_p], abstract_tokens=10)
    tok = AutoTokenizer.from_pretrained(str(MODELS / "smollm2-135m"))
    n_short = len(tok.encode(tok.apply_chat_template(short_m, add_generation_prompt=True, tokenize=False),
                             add_special_tokens=False))
    context = n_short + 20
    be = TransformersBackend(str(short_context_model(tmp_path, context)), threads=1, batch_size=2)
    try:
        reqs = [Request(long_p.id, long_m, paper_schema([long_p.id], 60), max_tokens=70),
                Request(short_p.id, short_m, paper_schema([short_p.id], 60), max_tokens=70)]
        out = be.generate(reqs)
    finally:
        be.close()
    assert [r.key for r in out] == [long_p.id, short_p.id]
    assert out[0].text is None and out[0].finish_reason == "error"
    # the setting that would fit it: transformers reads the context from the model's config, so the prompt's
    assert out[0].error.endswith(f"does not fit a context of {context} tokens (the model's config; [scoring] "
                                 "abstract_tokens or papers_per_request shortens the prompt)"), out[0].error
    assert out[1].usage.prompt_tokens == n_short
    assert out[1].finish_reason == "length" and out[1].usage.completion_tokens == 20
    assert out[1].context_full and out[1].error == (f"answer cut off after 20 tokens: its prompt of {n_short} "
                                                    f"tokens leaves no more of a context of {context} tokens "
                                                    "(the model's config; [scoring] abstract_tokens or "
                                                    "papers_per_request shortens the prompt)")


def test_a_batch_never_runs_past_the_context_for_its_longest_prompt():
    """Left-padded to its longest prompt, a batch generates its largest answer limit on every row: a prompt that
    fits with little room, beside one with much, was run past the model's context (a learned-position model,
    GPT-2, fails there, on a GPU for the rest of the process). No model call goes past the context."""
    from ranker.backends.transformers_backend import TransformersBackend
    be = TransformersBackend.__new__(TransformersBackend)          # no model: what _generate_chunk hands on
    be.max_model_len = 100
    be.prompt_ids = lambda messages, kwargs=None: [1] * int(messages[0]["content"])
    calls = []

    def fitting(chunk, prompts, limits, score_probs):
        calls.append((max(len(p) for p in prompts), max(limits)))
        return [Result(r.key, "{}", "stop") for r in chunk]
    be._generate_fitting = fitting
    reqs = [Request(n, [{"role": "user", "content": n}], {}, max_tokens=50) for n in ("90", "20", "30")]
    out = be._generate_chunk(reqs, False)
    assert [r.key for r in out] == ["90", "20", "30"] and all(r.ok for r in out)
    assert calls and all(width + new <= 100 for width, new in calls), calls
    calls.clear()
    be._generate_chunk(reqs[1:], False)                            # a batch that fits stays one call
    assert calls == [(30, 50)]


def test_loading_draws_no_progress_bar_on_the_callers_stderr(capfd):
    """transformers' "Loading weights" bar was drawn on the stderr of a program that builds the backend (the
    CLI sends it to its log file; a notebook or a service got it), and the caller's transformers settings
    stay as they were."""
    from transformers.utils import logging as hf_logging
    from ranker.backends.transformers_backend import TransformersBackend
    before = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled())
    capfd.readouterr()
    with TransformersBackend("smollm2-135m", threads=1):
        pass
    assert "Loading weights" not in capfd.readouterr().err
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == before


def test_dtype_auto_loads_the_checkpoints_own_dtype_and_the_stats_say_which():
    """`dtype = "auto"` is given to from_pretrained as it is; the manifest's stats record the dtype loaded
    (smollm2-135m's config says bfloat16), not "auto". Scores are keyed by the model, not its dtype."""
    from ranker.backends.transformers_backend import TransformersBackend
    be = TransformersBackend("smollm2-135m", device="cpu", dtype="auto", threads=1)
    try:
        assert be.stats()["dtype"] == "bfloat16" and str(be._model.dtype) == "torch.bfloat16"
    finally:
        be.close()
