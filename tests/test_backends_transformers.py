"""The transformers + xgrammar backend with the bundled SmolLM2 on CPU."""
from __future__ import annotations

import json

import pytest

from conftest import DAYS
from ranker.backends.base import Request
from ranker.backends.schema import check_answer, paper_schema
from ranker.errors import ModelError
from ranker.prompts import build_messages, load_prompts
from ranker.records import Paper

pytestmark = pytest.mark.slow


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
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=150), paper_schema([p.id], 60), max_tokens=70)
            for p in pp]
    out = backend.generate(reqs, score_probs=True)
    assert [r.key for r in out] == [p.id for p in pp]
    for r, p in zip(out, pp):
        assert r.ok, r.error
        (obj,) = check_answer(json.loads(r.text), [p.id], 60)
        assert r.usage.prompt_tokens > 500 and 0 < r.usage.completion_tokens <= 70
        for field in ("RELEVANCE", "NOVELTY"):
            dist = r.score_probs[field]
            assert sum(dist.values()) == pytest.approx(1.0) and dist[obj[field]] > 0
            if 2 <= obj[field] <= 9:
                assert dist[obj[field]] == pytest.approx(max(dist.values()))
    st = backend.stats()
    assert st["requests"] == 3 and st["failed"] == 0 and st["cached_prompt_tokens"] == 0


def test_small_batches_and_a_cut_off_answer(backend):
    ps = load_prompts()
    pp = papers(2)
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=60), paper_schema([p.id], 40), max_tokens=60)
            for p in pp]
    reqs[1].max_tokens = 5
    backend.batch_size = 2
    try:
        out = backend.generate(reqs)
    finally:
        backend.batch_size = 1
    assert out[0].ok, out[0].error
    check_answer(json.loads(out[0].text), [pp[0].id], 40)
    assert out[1].finish_reason == "length" and out[1].usage.completion_tokens == 5
    assert out[1].text and len(out[1].text) <= 40          # five tokens' worth, not the batch's sixty


def test_a_missing_model_is_a_model_error(tmp_path):
    from ranker.backends.transformers_backend import TransformersBackend
    with pytest.raises(ModelError) as e:
        TransformersBackend(str(tmp_path / "nothing-here"))
    assert "\n" not in str(e.value)
