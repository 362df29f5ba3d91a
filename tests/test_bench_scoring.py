"""The arithmetic and bookkeeping of scripts/bench_scoring.py (nothing timed): the FLOPs a paper costs, the
model's shape read from its config, answers compared with the reference engine's, the validity count, each
engine's settings, and the requests it scores (the library's own)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import DAYS, REPO

sys.path.insert(0, str(REPO / "scripts"))
import bench_scoring as bench  # noqa: E402

LISTING = DAYS / "2025-06-23" / "listing.jsonl"
SHAPE = {"hidden": 4, "intermediate": 8, "layers": 2, "q_dim": 4, "kv_dim": 2, "vocab": 10,
         "non_embedding": 1000, "lm_head": 40}


def test_work_flops_counts_computed_tokens_and_sampled_tokens_apart():
    assert bench.work_flops(SHAPE, computed=0, sampled=0) == 0
    assert bench.work_flops(SHAPE, computed=3, sampled=0) == 2 * 1000 * 3
    assert bench.work_flops(SHAPE, computed=3, sampled=5) == 2 * 1000 * 3 + 2 * 40 * 5


def test_attention_flops_sum_the_positions_of_the_tokens_computed():
    # positions 0, 1, 2 attend to 1, 2, 3 keys: 4 x q_dim x layers x (0 + 1 + 2)
    assert bench.attention_flops(SHAPE, [(0, 3)]) == 4 * 4 * 2 * 3
    # a cached prefix of 10 costs nothing; positions 10 and 11 do
    assert bench.attention_flops(SHAPE, [(10, 12)]) == 4 * 4 * 2 * (10 + 11)
    assert bench.attention_flops(SHAPE, [(0, 3), (10, 12)]) == 4 * 4 * 2 * 24
    assert bench.attention_flops(SHAPE, [(5, 5)]) == 0


def test_model_shape_of_smollm2_from_its_config():
    s = bench.model_shape("smollm2-135m")
    cfg = json.loads((REPO / "models" / "smollm2-135m" / "config.json").read_text())
    assert (s["hidden"], s["layers"], s["vocab"]) == (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"])
    assert s["kv_dim"] < s["q_dim"] == s["hidden"]                 # grouped-query attention
    # 30 layers of 576-wide attention and a 1536-wide MLP: 106.2M parameters outside the embedding
    assert round(s["non_embedding"] / 1e5) == 1062 and s["lm_head"] == cfg["vocab_size"] * cfg["hidden_size"]


def test_answers_are_compared_by_scores_and_by_text():
    a = '{"ARXIVID":"1","COMMENT":"x","RELEVANCE":5,"NOVELTY":6}'
    b = '{"ARXIVID":"1","COMMENT":"y","RELEVANCE":5,"NOVELTY":6}'
    c = '{"ARXIVID":"1","COMMENT":"x","RELEVANCE":4,"NOVELTY":6}'
    assert bench.scores([a, c, None, "{broken"]) == [(5, 6), (4, 6), None, None]
    assert bench.same_answers([a, b, c, None], [a, a, a, None]) == (2, 1)    # a failure never counts as same


def test_requests_are_the_librarys_and_validity_is_the_schemas():
    papers = bench.load_papers(LISTING, 3)
    assert len(papers) == 3
    reqs = bench.build_requests(papers, comment_chars=40, max_tokens=77, abstract_tokens=100)
    assert [r.max_tokens for r in reqs] == [77] * 3
    first = reqs[0].messages[-1]["content"]
    assert papers[0].id in first and papers[1].id not in first             # one paper per request
    swapped = bench.build_requests(papers, 40, 77, 100, layout="instructions-first")
    assert swapped[0].messages != reqs[0].messages
    good = json.dumps({"ARXIVID": papers[0].id, "COMMENT": "fine", "RELEVANCE": 3, "NOVELTY": 9})
    wrong_id = json.dumps({"ARXIVID": papers[0].id, "COMMENT": "fine", "RELEVANCE": 3, "NOVELTY": 9})
    too_long = json.dumps({"ARXIVID": papers[2].id, "COMMENT": "x" * 41, "RELEVANCE": 3, "NOVELTY": 9})
    assert bench.valid_count([good, wrong_id, too_long], reqs, 40) == 1       # wrong id; comment too long
    assert bench.valid_count([None, "not json", good], reqs, 40) == 0


def test_engine_settings_are_the_measured_best_unless_given():
    assert bench.engine_settings("vllm") == {}
    assert bench.engine_settings("vllm-bf16") == {"dtype": "bfloat16"}
    f16 = bench.engine_settings("llamacpp-f16", '{"llamacpp-f16": {"parallel": 3}, "vllm": {"dtype": "x"}}')
    assert f16 == {**bench.ENGINE_SETTINGS["llamacpp-f16"], "parallel": 3}
    assert bench.engine_settings("llamacpp-f32")["quant"] == "f32" and bench.engine_settings("llamacpp")["quant"] is None
    assert set(bench.ENGINE_SETTINGS) | {"transformers"} == set(bench.ENGINES) == set(bench.LIMIT_OF)
    assert set(bench.LIMIT_OF.values()) <= {"fp32", "bf16", "fp16"}        # keys measure_limit writes


@pytest.mark.parametrize("argv, said", [
    (["--engines", "vllm,llama"], "unknown engine 'llama'"),
    (["--settings", "{not json"], "--settings is not JSON"),
    (["--settings", '{"vllm-fp8": {}}'], "--settings: a JSON object of engine -> settings"),
    (["--listing", "/nonexistent/listing.jsonl"], "no such listing"),
])
def test_bad_arguments_are_refused_before_any_engine_starts(argv, said):
    p = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_scoring.py"), *argv],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and p.stderr.startswith("error: ") and said in p.stderr and "done in" not in p.stdout


def _run(prompt: list[int], cached: list[int], completions: list[int], primer: int) -> dict:
    """An engine's result for one layout, as run_engine records it (the counts a real engine's stats give)."""
    return {"layouts": {"seed": {
        "generate_s": 10.0, "cpu_s": 20.0, "texts": [None] * len(prompt), "prompt_ids": prompt, "cached": cached,
        "completions": completions, "prompt_tokens": sum(prompt), "cached_prompt_tokens": sum(cached),
        "completion_tokens": sum(completions), "primer_prompt_tokens": primer, "decode_tok_s": 5.0}}}


def test_the_cached_share_is_of_the_prompt_tokens_not_computed_in_the_run():
    """llama.cpp with one paper holds the whole prompt (but its last token) as the "shared prefix", computes it as
    the primer and hands it to the one request as cached: the row read "1798 of 1798 (100% cached)". Computed
    once, the primer counts as computed, never as cached: one paper is 0% cached, and 16 papers sharing 1300
    tokens of 1800 have the 15 later copies of the prefix cached."""
    one = bench.figures(_run([1798], [1797], [50], 1797), "seed", 1, SHAPE, {}, None, [], 300)
    assert one["computed_per_paper"] == 1798 and one["prompt_per_paper"] == 1798
    assert one["cached_share"] == 0
    many = bench.figures(_run([1800] * 16, [1300] * 16, [50] * 16, 1300), "seed", 16, SHAPE, {}, None, [], 300)
    assert many["computed_per_paper"] == (16 * 500 + 1300) / 16
    assert many["cached_share"] == pytest.approx(15 * 1300 / (16 * 1800))
    plain = bench.figures(_run([1800] * 4, [0] * 4, [50] * 4, 0), "seed", 4, SHAPE, {}, None, [], 300)
    assert plain["cached_share"] == 0 and plain["computed_per_paper"] == 1800


def test_the_h100_estimate_needs_a_prefix_shared_by_two_papers():
    """vLLM primes no prefix for a lone request: at --n 1 the estimate read "primer 0", a day of papers each
    computing its whole prompt. Under 2 papers there is none; from 16 it is the primer once plus each paper's own
    tokens."""
    one = _run([1798], [0], [50], 0)["layouts"]["seed"]
    assert bench.h100_estimate(one, 1, 400) is None
    v = _run([1800] * 16, [1300] * 16, [50] * 16, 1300)["layouts"]["seed"]
    est = bench.h100_estimate(v, 16, 400)
    assert est["shared"] == 1300 and est["per_fresh"] == 500
    assert est["prefill_s"] == pytest.approx((1300 + 400 * 500) / bench.H100_PREFILL_TOK_S)
    assert est["decode_s"] == pytest.approx(400 * 50 / bench.H100_DECODE_TOK_S)
    assert est["with_start_s"] == pytest.approx(est["total_s"] + bench.H100_ENGINE_START_S)


def test_the_attention_share_counts_the_primers_positions():
    """The primer's tokens are counted as computed (in the FLOPs), and their attention scores were computed too:
    one paper through llama.cpp (the prompt but its last token as the primer, then the rest) costs the attention
    of the whole prompt computed from scratch, as the plain loop's. Before, the primer's 1797 positions were left
    out: 1 prompt position's attention against the loop's 1798."""
    primed = bench.figures(_run([1798], [1797], [50], 1797), "seed", 1, SHAPE, {}, None, [], 300)
    plain = bench.figures(_run([1798], [0], [50], 0), "seed", 1, SHAPE, {}, None, [], 300)
    assert primed["gflop_per_paper"] == plain["gflop_per_paper"]
    assert primed["attention_share"] == pytest.approx(plain["attention_share"])
