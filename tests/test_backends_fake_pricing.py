"""The fake backend's determinism and failure injection, and the price table."""
from __future__ import annotations

import json

import pytest

from ranker.backends import get_backend
from ranker.backends.base import Request
from ranker.backends.fake import FakeBackend, fake_scores
from ranker.backends.pricing import cost_usd, price_for
from ranker.backends.schema import check_answer, paper_schema
from ranker.errors import BackendError, ConfigError
from ranker.records import Usage


def req(*ids, key=None):
    return Request(key or "+".join(ids), [{"role": "user", "content": "score these"}],
                   paper_schema(list(ids), 50))


def test_fake_is_deterministic_and_valid():
    be = get_backend("fake", "whatever")
    out = be.generate([req("2506.00001"), req("2506.00002", "2506.00003")], score_probs=True)
    assert all(r.ok for r in out)
    one = json.loads(out[0].text)
    check_answer(one, ["2506.00001"], 50)
    assert (one["RELEVANCE"], one["NOVELTY"]) == fake_scores("2506.00001")
    check_answer(json.loads(out[1].text), ["2506.00002", "2506.00003"], 50)
    assert sum(out[0].score_probs["RELEVANCE"].values()) == pytest.approx(1.0)
    assert max(out[0].score_probs["NOVELTY"], key=out[0].score_probs["NOVELTY"].get) == one["NOVELTY"]
    again = FakeBackend().generate([req("2506.00001")])
    assert again[0].text == out[0].text
    assert be.stats()["requests"] == 2


def test_fake_failure_injection():
    be = FakeBackend(garbage={"g"}, length={"l"}, error={"e"}, flaky={"f"}, wrong_id={"w"})
    out = {r.key: r for r in be.generate([req(k) for k in "glefw"])}
    assert out["g"].ok            # garbage is "ok" at the engine level; the caller's parse fails
    with pytest.raises(ValueError):
        json.loads(out["g"].text)
    assert out["l"].finish_reason == "length" and not out["l"].ok
    assert out["e"].text is None and out["e"].finish_reason == "error"
    with pytest.raises(ValueError):
        json.loads(out["f"].text)
    with pytest.raises(ValueError):
        check_answer(json.loads(out["w"].text), ["w"], 50)
    retry = be.generate([req("f")])[0]                 # flaky: good the second time
    check_answer(json.loads(retry.text), ["f"], 50)
    with pytest.raises(BackendError):
        FakeBackend(raise_for={"x"}).generate([req("a"), req("x")])


def test_unknown_backend_is_a_config_error():
    with pytest.raises(ConfigError, match="choose one of"):
        get_backend("nope", "m")


def test_prices():
    assert price_for("gpt-4o") == price_for("gpt-4o-2024-08-06") == price_for("openai/gpt-4o")
    assert price_for("gpt-4o-mini-2024-07-18").prompt == 0.15
    assert price_for("smollm2-135m") is None and price_for("gpt-4offline") is None
    # the longest listed prefix: gpt-4.1-mini is not priced as gpt-4.1
    assert price_for("gpt-4.1-mini-2025-04-14").prompt == 0.40 and price_for("gpt-4.1-2025-04-14").prompt == 2.00
    u = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, cached_prompt_tokens=400_000)
    assert cost_usd("gpt-4o", u) == pytest.approx(0.6 * 2.5 + 0.4 * 1.25 + 0.1 * 10)
    assert cost_usd("gpt-4o-mini", Usage(prompt_tokens=2_000_000, completion_tokens=1_000_000)) == pytest.approx(0.9)
    assert cost_usd("/models/llama-3.1-8b", u) == 0.0


def test_the_digest_and_the_manifest_price_cached_tokens_as_the_engine_does():
    from ranker.backends.pricing import costs
    from ranker.scoring import ScoreRun
    from ranker.settings import resolve
    from ranker.steps import render_digest
    u = Usage(prompt_tokens=1_000_000, completion_tokens=100_000, cached_prompt_tokens=400_000)
    prompt, completion = costs("gpt-4o", u)
    assert prompt == pytest.approx(0.6 * 2.5 + 0.4 * 1.25) and completion == pytest.approx(1.0)
    assert prompt + completion == pytest.approx(cost_usd("gpt-4o", u))
    # the digest prices what its scores cost (each carries its share of the tokens, cached ones included)
    from ranker.records import Paper, Score
    papers = [Paper(id=f"2505.0000{i}", title="t", abstract="a") for i in range(2)]
    scores = {p.id: Score(p.id, 5, 5, "c", prompt_tokens=500_000, completion_tokens=50_000,
                          cached_prompt_tokens=200_000) for p in papers}
    run = ScoreRun(model="gpt-4o", prompt_hash="h", papers=papers, scores=scores)
    dig = render_digest("2025-05-15", papers, run, resolve(env={}), scanned=0)
    assert (dig.cost.prompt_cost, dig.cost.completion_cost) == (prompt, completion)
    assert "| **Cost**     | $2.00     | $1.00        | $3.00     |" in dig.markdown


def test_a_prompt_must_leave_room_for_its_answer():
    """The engines' shared check (vLLM, the benchmark's llama.cpp): a prompt that leaves fewer than 8 tokens of
    the context is that request's error result, naming both sizes, its prompt tokens counted."""
    from ranker.backends.base import answer_room
    assert answer_room("a", 4000, 4096) == (96, None)
    assert answer_room("a", 4088, 4096) == (8, None)
    room, res = answer_room("2505.00001", 4090, 4096)
    assert room == 0 and not res.ok and res.key == "2505.00001" and res.usage.prompt_tokens == 4090
    assert res.error == "prompt of 4090 tokens does not fit a context of 4096 tokens"
    assert answer_room("a", 4090, 4096, "[scoring.vllm] max_model_len")[1].error == (
        "prompt of 4090 tokens does not fit a context of 4096 tokens ([scoring.vllm] max_model_len)")
