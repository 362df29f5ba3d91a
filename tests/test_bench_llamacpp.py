"""The benchmark's llama.cpp engine (scripts/llamacpp_scorer.py) with the bundled SmolLM2 GGUF (Q4_1, as
shipped) on this machine's CPU: real shared-day papers, the schema enforced by llama.cpp's grammar matcher,
the shared prefix computed once, the same answers decoded together or alone; and the grammar fed to
llama.cpp's own matcher. These are what make the benchmark's comparison with vLLM a fair one."""
from __future__ import annotations

import json
import sys

import pytest

from conftest import DAYS, REPO
from ranker import models
from ranker.backends.base import Request
from ranker.backends.schema import check_answer, paper_schema
from ranker.prompts import build_messages, load_prompts
from ranker.records import Paper

sys.path.insert(0, str(REPO / "scripts"))

DAY = DAYS / "2025-06-23" / "listing.jsonl"


def papers(n: int, day=DAY) -> list[Paper]:
    with open(day, encoding="utf-8") as f:
        return [Paper.from_dict(json.loads(line)) for line, _ in zip(f, range(n))]


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("llama_cpp")
    from llamacpp_scorer import LlamaCppScorer
    be = LlamaCppScorer(models.gguf_file("smollm2-135m"), parallel=4)
    yield be
    be.close()


@pytest.mark.slow
def test_real_papers_answer_the_schema_and_share_the_prefix(engine):
    ps = load_prompts()
    pp = papers(8)
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=200), paper_schema([p.id], 80), max_tokens=90)
            for p in pp[:6]]
    pair = [pp[6].id, pp[7].id]
    reqs.append(Request("pair", build_messages(ps, pp[6:8], abstract_tokens=120), paper_schema(pair, 60),
                        max_tokens=170))
    reqs.append(Request("cut", build_messages(ps, pp[:1], abstract_tokens=200), paper_schema([pp[0].id], 80),
                        max_tokens=6))
    before = engine.stats()
    out = engine.generate(reqs)
    st = engine.stats()
    assert [r.key for r in out] == [r.key for r in reqs]
    shared = st["primer_prompt_tokens"] - before["primer_prompt_tokens"]
    assert shared > 1000                                          # system prompt, topics, criteria: once
    for r, p in zip(out[:6], pp):
        assert r.ok, r.error
        (obj,) = check_answer(json.loads(r.text), [p.id], 80)     # id, 1..10 integers, comment <= 80, no extras
        assert r.usage.cached_prompt_tokens == shared             # ... and served from the cache to each paper
        assert r.usage.prompt_tokens > shared + 50 and 0 < r.usage.completion_tokens <= 90
        raw = json.loads(r.text)                                  # compact, keys in order, as xgrammar writes
        assert r.text == json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        assert list(raw) == ["ARXIVID", "COMMENT", "RELEVANCE", "NOVELTY"] and raw["NOVELTY"] == obj["NOVELTY"]
    assert out[6].ok, out[6].error
    check_answer(json.loads(out[6].text), pair, 60)
    assert out[7].finish_reason == "length" and not out[7].ok and out[7].usage.completion_tokens == 6
    assert st["prompt_tokens"] - before["prompt_tokens"] == sum(r.usage.prompt_tokens for r in out)

    # the next call (the next batch of a day) finds the prefix still held: nothing shared is computed again
    again = engine.generate(reqs[:2])
    assert engine.stats()["primer_prompt_tokens"] == st["primer_prompt_tokens"]
    assert [r.key for r in again] == [r.key for r in reqs[:2]]     # (else the loop below checks nothing)
    for r, p in zip(again, pp):       # (2 sequences at once instead of 8: the floats, so the text, may differ)
        assert r.ok and r.usage.cached_prompt_tokens == shared, r.error
        check_answer(json.loads(r.text), [p.id], 80)
    assert engine.count_tokens("hello world") == 2


@pytest.mark.slow
def test_one_at_a_time_gives_mostly_the_same_scores_as_in_parallel(engine):
    from llamacpp_scorer import LlamaCppScorer
    ps = load_prompts()
    pp = papers(3, DAYS / "2025-05-13" / "listing.jsonl")
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=120, layout="instructions-first"),
                    paper_schema([p.id], 60), max_tokens=70) for p in pp]
    together = engine.generate(reqs)
    single = LlamaCppScorer(models.gguf_file("smollm2-135m"), parallel=1)
    try:
        alone = [single.generate([r])[0] for r in reqs]
        st = single.stats()
    finally:
        single.close()
    assert all(r.ok for r in together + alone)
    def scores(r):
        a = json.loads(r.text)
        return a["RELEVANCE"], a["NOVELTY"]
    same = sum(scores(a) == scores(b) for a, b in zip(together, alone))
    assert same >= 2       # batching may move a float's last bit, rarely a greedy choice
    # one request per call: each call computes only what differs from the previous prompt
    assert st["primer_prompt_tokens"] < sum(r.usage.prompt_tokens for r in alone) / 2


@pytest.mark.slow
def test_the_grammar_refuses_what_the_schema_refuses():
    """llama.cpp's own matcher, fed the grammar of one paper's schema token by token."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import ctypes

    from gbnf import schema_to_gbnf
    llama_cpp.llama_backend_init()
    mp = llama_cpp.llama_model_default_params()
    mp.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(models.gguf_file("smollm2-135m")).encode(), mp)
    vocab = llama_cpp.llama_model_get_vocab(model)
    grammar = schema_to_gbnf(paper_schema(["2506.16065"], 20))

    def accepted(text: str) -> bool:
        data = text.encode()
        buf = (llama_cpp.llama_token * (len(data) + 8))()
        n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, len(buf), False, False)
        g = llama_cpp.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
        try:
            for tok in list(buf[:n]) + [llama_cpp.llama_vocab_eos(vocab)]:
                one = (llama_cpp.llama_token_data * 1)(llama_cpp.llama_token_data(tok, 0.0, 0.0))
                arr = llama_cpp.llama_token_data_array(one, 1, -1, False)
                llama_cpp.llama_sampler_apply(g, ctypes.byref(arr))
                if one[0].logit == float("-inf"):
                    return False
                llama_cpp.llama_sampler_accept(g, tok)
            return True
        finally:
            llama_cpp.llama_sampler_free(g)

    try:
        good = '{"ARXIVID":"2506.16065","COMMENT":"short note","RELEVANCE":%s,"NOVELTY":7}'
        assert accepted(good % "10") and accepted(good % "1")
        for bad in (good % "11", good % "0", good % "05", good % "-3", good % "7.0",
                    good.replace(":%s", ": %s") % "5",                       # whitespace
                    good.replace("2506.16065", "2506.16066") % "5",          # another paper's id
                    good.replace("short note", "x" * 21) % "5",              # comment too long
                    good.replace("short note", 'say \\"hi\\"') % "5",        # an escape sequence
                    (good % "5")[:-1] + ',"EXTRA":1}',                       # an extra key
                    (good % "5")[:-1]):                                      # unfinished
            assert not accepted(bad), bad
    finally:
        llama_cpp.llama_model_free(model)
