"""The llamacpp backend with the bundled SmolLM2 GGUF (Q4_1, as shipped) on this machine's CPU: real shared-day
papers, the schema enforced by llama.cpp's grammar matcher, the shared prefix computed once, expected-score
mode, `ranker run --backend llamacpp` end to end; plus its failure modes (no llama-cpp-python, no GGUF file,
an unknown option)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import DAYS, REPO
from ranker.backends.base import Request
from ranker.backends.schema import check_answer, paper_schema
from ranker.errors import ConfigError, MissingDependency, ModelError
from ranker.prompts import build_messages, load_prompts
from ranker.records import Paper

DAY = DAYS / "2025-06-23" / "listing.jsonl"
RANKER = str(REPO / ".venv" / "bin" / "ranker") if (REPO / ".venv/bin/ranker").exists() else "ranker"


def papers(n: int, day=DAY) -> list[Paper]:
    with open(day, encoding="utf-8") as f:
        return [Paper.from_dict(json.loads(line)) for line, _ in zip(f, range(n))]


def one_line(e: Exception) -> bool:
    return "\n" not in str(e) and len(str(e)) < 800


@pytest.fixture(scope="module")
def engine():
    pytest.importorskip("llama_cpp")
    from ranker.backends.llamacpp_backend import LlamaCppBackend
    be = LlamaCppBackend("smollm2-135m", parallel=4)
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
        assert r.text == json.dumps(obj, ensure_ascii=False, separators=(",", ":"))   # compact, as xgrammar
    assert out[6].ok, out[6].error
    check_answer(json.loads(out[6].text), pair, 60)
    assert out[7].finish_reason == "length" and not out[7].ok and out[7].usage.completion_tokens == 6
    assert st["prompt_tokens"] - before["prompt_tokens"] == sum(r.usage.prompt_tokens for r in out)

    # the next call (the next batch of a day) finds the prefix still held: nothing shared is computed again
    again = engine.generate(reqs[:2])
    assert engine.stats()["primer_prompt_tokens"] == st["primer_prompt_tokens"]
    assert [r.text for r in again] == [r.text for r in out[:2]]   # greedy and deterministic
    assert engine.count_tokens("hello world") == 2


@pytest.mark.slow
def test_one_at_a_time_gives_the_same_answers_as_in_parallel(engine):
    from ranker.backends.llamacpp_backend import LlamaCppBackend
    ps = load_prompts()
    pp = papers(3, DAYS / "2025-05-13" / "listing.jsonl")
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=120, layout="instructions-first"),
                    paper_schema([p.id], 60), max_tokens=70) for p in pp]
    together = engine.generate(reqs)
    single = LlamaCppBackend("smollm2-135m", parallel=1)
    try:
        alone = [single.generate([r])[0] for r in reqs]
        st = single.stats()
    finally:
        single.close()
    assert all(r.ok for r in together + alone)
    same = sum(json.loads(a.text)["RELEVANCE"] == json.loads(b.text)["RELEVANCE"] for a, b in zip(together, alone))
    assert same >= 2       # batching may move a float's last bit, rarely a greedy choice
    # one request per call: each call computes only what differs from the previous prompt
    assert st["primer_prompt_tokens"] < sum(r.usage.prompt_tokens for r in alone) / 2


@pytest.mark.slow
def test_expected_scores(engine):
    ps = load_prompts()
    pp = papers(3, DAYS / "2025-07-02" / "listing.jsonl")
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=150), paper_schema([p.id], 60), max_tokens=80)
            for p in pp]
    out = engine.generate(reqs, score_probs=True)
    for r, p in zip(out, pp):
        assert r.ok, r.error
        (obj,) = check_answer(json.loads(r.text), [p.id], 60)
        for field in ("RELEVANCE", "NOVELTY"):
            dist = r.score_probs[field]
            assert set(dist) == set(range(1, 11)) and sum(dist.values()) == pytest.approx(1.0)
            assert dist[obj[field]] > 0
            if 2 <= obj[field] <= 9:          # greedy wrote the most likely first digit
                assert dist[obj[field]] == pytest.approx(max(dist.values()))


@pytest.mark.slow
def test_the_grammar_refuses_what_the_schema_refuses():
    """llama.cpp's own matcher, fed the grammar of one paper's schema token by token."""
    llama_cpp = pytest.importorskip("llama_cpp")
    import ctypes

    from ranker import models
    from ranker.backends.gbnf import schema_to_gbnf
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


@pytest.mark.slow
def test_ranker_run_with_llamacpp_writes_the_digest_offline(tmp_path):
    pytest.importorskip("llama_cpp")
    log = tmp_path / "net.log"
    cfg = tmp_path / "ranker.toml"
    cfg.write_text('[prefilter]\ntop = 8\nmin_keep = 0\n\n[scoring]\nmodel = "smollm2-135m"\ncomment_chars = 120\n\n'
                   '[digest]\nmin_relevance = 1\nmin_novelty = 1\n')
    env = dict(os.environ, RANKER_HOME=str(tmp_path / "home"), RANKER_TEST_NETLOG=str(log),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO / "tests" / "netguard_site"),
                                                        os.environ.get("PYTHONPATH")])))
    out = tmp_path / "digest"
    p = subprocess.run([RANKER, "run", "--offline", "--backend", "llamacpp", "--papers", str(DAY), "--out", str(out),
                        "--config", str(cfg)], env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert (log.read_text() if log.exists() else "") == ""
    manifest = json.loads((out / "2025-06-23-run.json").read_text())
    assert manifest["backend"] == "llamacpp" and manifest["counts"]["scored"] == 8
    assert manifest["counts"]["kept"] == 8 and not manifest.get("failures")
    lines = [json.loads(x) for x in (out / "2025-06-23-scores.jsonl").read_text().splitlines()]
    assert len(lines) == 8
    for obj in lines:                          # every answer met the schema
        check_answer(obj, [obj["ARXIVID"]], 120)
    assert (out / "2025-06-23-output.md").read_text().startswith("# Personalized Daily ArXiv Papers 2025-06-23")


def test_llama_cpp_not_installed_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)       # makes `import llama_cpp` fail
    from ranker.backends import get_backend
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    with pytest.raises(MissingDependency) as e:
        get_backend("llamacpp", "smollm2-135m", gguf=str(f))
    assert "llama-cpp-python" in str(e.value) and "ranker[llamacpp]" in str(e.value) and one_line(e.value)


def test_bad_options_and_missing_files_are_one_line_errors(tmp_path):
    from ranker.backends import get_backend
    with pytest.raises(ConfigError, match="engine_args"):
        get_backend("llamacpp", "smollm2-135m", engine_args={"tensor_parallel_size": 2})
    with pytest.raises(ConfigError, match="parallel"):
        get_backend("llamacpp", "smollm2-135m", parallel=0)
    with pytest.raises(ModelError, match="no such GGUF file") as e:
        get_backend("llamacpp", str(tmp_path / "missing.gguf"))
    assert one_line(e.value)
    with pytest.raises(ModelError, match="not a preset with GGUF weights"):
        get_backend("llamacpp", "nobody/no-such-model")
