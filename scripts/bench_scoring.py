"""Benchmark LLM scoring on this machine: every engine a user could pick, on the same papers, model, prompts,
token limit and JSON constraint, against what the hardware can do.

    .venv/bin/python scripts/bench_scoring.py                       # 16 papers, SmolLM2, every engine
    .venv/bin/python scripts/bench_scoring.py --n 16 --layouts seed,instructions-first
    .venv/bin/python scripts/bench_scoring.py --engines vllm,llamacpp-f16 --n 8
    .venv/bin/python scripts/bench_scoring.py --engines llamacpp-f32 --settings '{"llamacpp-f32": {"parallel": 8}}'
    .venv/bin/python scripts/bench_scoring.py --engines vllm \
        --settings '{"vllm": {"engine_args": {"max_num_batched_tokens": 2048}}}'

Engines (each in its own process, so its peak RSS is its own), each at the best setting measured on this
machine (ENGINE_SETTINGS; --settings overrides):
  vllm             the vllm backend as `ranker score` runs it: float32 (the CPU build's default), every
                   request of a layout in one batch, prefix cache; the reference the others are compared to
  vllm-bf16        the same in bfloat16 (AMX matrix units on this CPU)
  transformers     the plain loop: one paper at a time, the whole prompt each time, float32
  llamacpp-f32     llama.cpp on an F32 GGUF holding exactly the weights vLLM loads (`ranker models prepare
                   smollm2-135m --gguf f32`), F32 KV cache: the same precision as vllm
  llamacpp-f16     the same weights in F16 (`--gguf f16`)
  llamacpp         llama.cpp on the GGUF as shipped (Q4_1 for SmolLM2): what a CPU user of Ollama runs
Every llama.cpp engine is scripts/llamacpp_scorer.py (needs the optional extra `ranker[llamacpp]`):
sequences decoded together, the requests' shared prefix computed once, the schema as a GBNF grammar, greedy.

Prints, per layout and engine: papers/s, prompt tokens computed per paper, decode tokens/s, peak RSS,
answers identical to vLLM's (same scores; same text), the FLOP rate achieved and its share of the machine's
measured GEMM rate in the engine's precision; then the machine's limits and an estimate of a day on one H100
(assumptions printed with it).
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))      # script_cli
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LISTING = REPO / "tests" / "data" / "days" / "2025-06-23" / "listing.jsonl"
ENGINES = ("vllm", "vllm-bf16", "transformers", "llamacpp-f32", "llamacpp-f16", "llamacpp")
DEFAULT_ENGINES = ENGINES
# Each engine's settings: the best measured on this 2-core machine, under the shared lock (README, "Scoring
# speed"). vLLM: the backend's defaults (float32 on CPU, 32-token KV blocks, the worker on every core).
ENGINE_SETTINGS: dict[str, dict] = {
    "vllm": {},
    "vllm-bf16": {"dtype": "bfloat16"},
    "llamacpp-f32": {"quant": "f32", "parallel": 16, "kv_f32": True},
    "llamacpp-f16": {"quant": "f16", "parallel": 8, "flash_attn": True},
    "llamacpp": {"quant": None, "parallel": 16},
}
# The GEMM rate each engine's matrix multiplies are held against: its own precision (Q4_1 has no torch
# GEMM; its products run as int8 dot products, held against float32's rate).
LIMIT_OF = {"vllm": "fp32", "vllm-bf16": "bf16", "transformers": "fp32", "llamacpp-f32": "fp32",
            "llamacpp-f16": "fp16", "llamacpp": "fp32"}

# Assumed throughput of vLLM serving an 8B model in bf16 on one H100 SXM (80 GB), batch of a few hundred
# requests. Conservative round numbers: prefill is compute-bound (2 x 8e9 FLOP per token at ~20 % of the
# ~990 TFLOP/s dense bf16 peak ~ 12k tokens/s); decode is bandwidth-bound (16 GB of weights read per step
# at ~3.3 TB/s ~ 5 ms a step, ~64 sequences a step ~ 3k tokens/s once grammar and sampling overheads are
# counted). Engine start: loading 16 GB of weights plus CUDA-graph capture.
H100_PREFILL_TOK_S = 10_000
H100_DECODE_TOK_S = 3_000
H100_ENGINE_START_S = 90


# --------------------------------------------------------------------------- shared helpers
def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its live children (vLLM's worker)."""
    try:
        import psutil
    except ImportError:
        return float("nan")
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def peak_rss_mb() -> float:
    """Peak resident memory (VmHWM) of this process plus that of each live descendant (vLLM's worker)."""
    pids = [os.getpid()]
    try:
        import psutil
        pids += [c.pid for c in psutil.Process().children(recursive=True)]
    except ImportError:
        pass
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def load_papers(listing: Path, n: int):
    from ranker.records import Paper
    papers = []
    with open(listing, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                papers.append(Paper.from_dict(json.loads(line)))
            if len(papers) >= n:
                break
    return papers


def build_requests(papers, comment_chars: int, max_tokens: int, abstract_tokens: int, layout: str = "seed"):
    """One paper per request, built by the library exactly as `ranker score` builds them; only the token
    budget is this benchmark's own."""
    from ranker.prompts import load_prompts
    from ranker.scoring import ScoreOptions, build_requests as library_requests
    opts = ScoreOptions(comment_chars=comment_chars, abstract_tokens=abstract_tokens, layout=layout)
    reqs = library_requests([[p] for p in papers], load_prompts(), opts)
    for r in reqs:
        r.max_tokens = max_tokens
    return reqs


def valid_count(texts, requests, comment_chars: int) -> int:
    from ranker.backends.schema import check_answer, schema_ids
    ok = 0
    for text, req in zip(texts, requests):
        if text is None:
            continue
        try:
            check_answer(json.loads(text), schema_ids(req.schema), comment_chars)
            ok += 1
        except (ValueError, KeyError, TypeError):
            pass
    return ok


def scores(texts) -> list[tuple[int, int] | None]:
    out = []
    for t in texts:
        try:
            d = json.loads(t)
            out.append((d["RELEVANCE"], d["NOVELTY"]))
        except Exception:
            out.append(None)
    return out


# --------------------------------------------------------------------------- the model's arithmetic
def model_shape(model: str) -> dict:
    from ranker import models
    cfg = json.loads((Path(models.resolve(model, kind="llm")) / "config.json").read_text())
    cfg = cfg.get("text_config", cfg)
    h, i, L = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"]
    heads = cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or h // heads
    kv = cfg.get("num_key_value_heads", heads) * hd
    per_layer = h * heads * hd + 2 * h * kv + heads * hd * h + 3 * h * i
    return {"hidden": h, "intermediate": i, "layers": L, "q_dim": heads * hd, "kv_dim": kv,
            "vocab": cfg["vocab_size"], "non_embedding": L * per_layer, "lm_head": cfg["vocab_size"] * h}


def work_flops(shape: dict, computed: int, sampled: int) -> float:
    """Matrix-multiply FLOPs: 2 x non-embedding parameters per token computed, plus the output layer
    (vocab x hidden) for each token sampled. Attention scores are counted apart (attention_flops)."""
    return 2.0 * shape["non_embedding"] * computed + 2.0 * shape["lm_head"] * sampled


def attention_flops(shape: dict, spans: list[tuple[int, int]]) -> float:
    """QK^T and AV for tokens at positions [a, b): 4 x q_dim x position per layer."""
    total = 0
    for a, b in spans:
        total += (a + b - 1) * (b - a) // 2          # sum of positions
    return 4.0 * shape["q_dim"] * shape["layers"] * total


# --------------------------------------------------------------------------- the machine's limit
def measure_limit(shape: dict, threads: int, trials: int = 3) -> dict:
    """GEMM rates at the shapes of a prompt chunk (512 tokens x each of the model's matrices), in float32
    (torch and numpy), bfloat16 and float16 (torch), and float32 at 32 rows and at one row (a decode step);
    memory bandwidth (a 1 GiB copy). Each rate is the best of `trials`: a limit, not a typical value."""
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    h, i, q, kv = shape["hidden"], shape["intermediate"], shape["q_dim"], shape["kv_dim"]
    mats = [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]

    def once(T, dtype, lib):
        flops = secs = 0.0
        for k, n in mats:
            if lib == "torch":
                a, b = torch.randn(T, k).to(dtype), torch.randn(k, n).to(dtype)
                f = lambda: torch.mm(a, b)  # noqa: E731
            else:
                a, b = np.random.rand(T, k).astype(np.float32), np.random.rand(k, n).astype(np.float32)
                f = lambda: a @ b  # noqa: E731
            reps = max(5, int(3e8 / (2 * T * k * n)))
            f()
            t0 = time.perf_counter()
            for _ in range(reps):
                f()
            secs += (time.perf_counter() - t0) / reps
            flops += 2.0 * T * k * n
        return flops / secs / 1e9

    def rate(T, dtype=torch.float32, lib="torch"):
        return max(once(T, dtype, lib) for _ in range(trials))

    out = {"threads": threads,
           "fp32": rate(512), "fp32_numpy": rate(512, lib="numpy"), "bf16": rate(512, torch.bfloat16),
           "fp16": rate(512, torch.float16), "fp32_T32": rate(32), "fp32_T1": rate(1)}
    x = torch.ones(256 << 20, dtype=torch.float32)
    y = torch.empty_like(x)
    y.copy_(x)
    t0 = time.perf_counter()
    for _ in range(5):
        y.copy_(x)
    out["copy_GBps"] = 2 * x.numel() * 4 * 5 / (time.perf_counter() - t0) / 1e9    # read + write
    return out


# --------------------------------------------------------------------------- engines (each in a child)
def reset_cache(backend) -> None:
    """Start a layout with an empty prefix cache, so no layout profits from the one before."""
    if backend.name == "vllm":
        backend._llm.reset_prefix_cache()
    elif backend.name == "llamacpp":
        backend.forget()


def engine_settings(engine: str, given: str | None = None) -> dict:
    """The engine's settings: ENGINE_SETTINGS[engine], updated with what `given` (--settings: a JSON object
    of engine -> settings) says for it."""
    return {**ENGINE_SETTINGS.get(engine, {}), **json.loads(given or "{}").get(engine, {})}


def run_engine(engine: str, model: str, by_layout: dict, args) -> dict:
    settings = engine_settings(engine, args.settings)
    if engine.startswith("vllm"):
        from ranker.backends.vllm_backend import VLLMBackend
        make = lambda: VLLMBackend(model, settings)  # noqa: E731
    elif engine == "transformers":
        from ranker.backends.transformers_backend import TransformersBackend
        make = lambda: TransformersBackend(model, batch_size=1, threads=args.threads)  # noqa: E731
    else:
        from llamacpp_scorer import LlamaCppScorer
        from ranker import models
        quant = settings.pop("quant")
        make = lambda: LlamaCppScorer(models.gguf_file(model, quant), **settings)  # noqa: E731
    t0 = time.perf_counter()
    be = make()
    load = time.perf_counter() - t0
    first_calls: dict[int, float] = {}
    if engine == "transformers":       # time the first grammar call of each generate(): the end of prefill
        import xgrammar.contrib.hf as xhf
        orig = xhf.LogitsProcessor.__call__

        def timed(self, *a, **k):
            first_calls.setdefault(id(self), time.perf_counter())
            return orig(self, *a, **k)
        xhf.LogitsProcessor.__call__ = timed
    out = {"engine": engine, "load_s": round(load, 1), "layouts": {}}
    try:
        for layout, reqs in by_layout.items():
            reset_cache(be)
            before = be.stats()
            c0, t0 = cpu_seconds(), time.perf_counter()
            if engine == "transformers":
                res, prefill = [], 0.0
                for r in reqs:
                    first_calls.clear()
                    s = time.perf_counter()
                    res.extend(be.generate([r]))
                    prefill += min(first_calls.values(), default=s) - s
            else:
                res = be.generate(reqs)
            gen, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            after = be.stats()
            d = {k: after.get(k, 0) - before.get(k, 0) for k in (
                "prompt_tokens", "cached_prompt_tokens", "completion_tokens", "primer_prompt_tokens",
                "grammar_full_masks", "decode_steps", "decode_only_tokens", "decode_only_seconds")}
            entry = {"generate_s": gen, "cpu_s": cpu, "texts": [r.text if r.ok else None for r in res],
                     "prompt_ids": [r.usage.prompt_tokens for r in res],
                     "cached": [r.usage.cached_prompt_tokens for r in res],
                     "completions": [r.usage.completion_tokens for r in res], **d}
            if engine == "transformers":
                entry["prefill_s"] = prefill
                entry["decode_s"] = gen - prefill
            elif engine.startswith("vllm"):
                # the same batch again: every prompt now in the prefix cache (all but its last <32 tokens),
                # so the rerun is nearly all decode: an estimate of vLLM's batched decode rate
                t1 = time.perf_counter()
                again = be.generate(reqs)
                entry["rerun_s"] = time.perf_counter() - t1
                entry["decode_s"] = entry["rerun_s"]
                entry["prefill_s"] = gen - entry["rerun_s"]
                entry["rerun_same"] = sum(a.text == b.text for a, b in zip(res, again))
                entry["engine_env"] = after.get("engine_env")
            else:
                # steps that read no prompt token: the decode rate at this many sequences at once
                entry["decode_tok_s"] = d["decode_only_tokens"] / max(1e-9, d["decode_only_seconds"])
                entry["settings"] = {k: after[k] for k in ("parallel", "n_threads", "n_batch", "n_ubatch",
                                                            "flash_attn", "kv_f32")}
            out["layouts"][layout] = entry
        out["peak_rss_mb"] = peak_rss_mb()
        out["settings"] = engine_settings(engine, args.settings)
        if engine == "transformers":
            import torch
            out["threads"] = torch.get_num_threads()
    finally:
        be.close()
    return out


def child_main(args) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    listing = args.listing or DEFAULT_LISTING
    papers = load_papers(listing, args.n)
    if args.child == "limit":
        result = measure_limit(model_shape(args.model), args.limit_threads)
    else:
        by_layout = {lay: build_requests(papers, args.comment_chars, args.max_tokens, args.abstract_tokens, lay)
                     for lay in args.layouts.split(",")}
        result = run_engine(args.child, args.model, by_layout, args)
    Path(args.result).write_text(json.dumps(result))
    return 0


def spawn(what: str, argv: list[str], tmp: Path) -> dict:
    result = tmp / f"{what}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv, "--child", what, "--result", str(result)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0 or not result.exists():
        tail = "\n".join(proc.stdout.strip().splitlines()[-15:])
        print(f"  {what}: FAILED (exit {proc.returncode})\n{tail}")
        return {}
    print(f"  {what}: done in {time.perf_counter() - t0:.0f} s")
    return json.loads(result.read_text())


# --------------------------------------------------------------------------- the report
def same_answers(texts: list, ref_texts: list) -> tuple[int, int]:
    """(answers with the same two scores, answers with the very same text) against the reference's."""
    scored = sum(1 for a, b in zip(scores(texts), scores(ref_texts)) if a is not None and a == b)
    return scored, sum(1 for a, b in zip(texts, ref_texts) if a is not None and a == b)


def figures(r: dict, lay: str, n: int, shape: dict, limit: dict, ref: dict | None, reqs, comment_chars,
            precision: str = "fp32") -> dict:
    e = r["layouts"][lay]
    computed = e["prompt_tokens"] - e["cached_prompt_tokens"] + e.get("primer_prompt_tokens", 0)
    sampled = e["completion_tokens"]
    flops = work_flops(shape, computed, sampled)
    # the positions whose attention scores were computed: the primer's (the shared prefix, computed once from
    # position 0: each layout starts on an empty cache), then each request's own tokens and its answer's
    spans = [(0, e["primer_prompt_tokens"])] if e.get("primer_prompt_tokens") else []
    for p, c, g in zip(e["prompt_ids"], e["cached"], e["completions"]):
        spans += [(c, p), (p, p + g)]
    same = same_answers(e["texts"], ref["layouts"][lay]["texts"]) if ref is not None else None
    gflops = flops / e["generate_s"] / 1e9
    return {"papers_per_s": n / e["generate_s"], "generate_s": e["generate_s"], "cpu_s": e["cpu_s"],
            "prompt_per_paper": e["prompt_tokens"] / n, "computed_per_paper": computed / n,
            # the share of the prompt tokens not computed in this run: the primer's tokens (the shared prefix
            # computed once) were computed here, though each request then found them cached. Counted as cached,
            # one paper's whole prompt (its own "shared prefix") read "1798 of 1798 (100% cached)"
            "cached_share": max(0, e["prompt_tokens"] - computed) / max(1, e["prompt_tokens"]),
            "completion_per_paper": sampled / n,
            "decode_tok_s": e.get("decode_tok_s") or (sampled / e["decode_s"] if e.get("decode_s") else None),
            "prefill_tok_s": computed / e["prefill_s"] if e.get("prefill_s") else None,
            "peak_rss_mb": r.get("peak_rss_mb"), "same_as_vllm": same,
            "valid": valid_count(e["texts"], reqs, comment_chars), "gflop_per_paper": flops / n / 1e9,
            "attention_share": attention_flops(shape, spans) / flops, "gflops": gflops,
            "limit": precision, "limit_share": gflops / limit[precision] if limit else None}


def h100_estimate(v: dict, n: int, day_papers: int) -> dict | None:
    """A day of `day_papers` papers on one H100 from vLLM's token counts of one layout (`v`, over `n` papers): the
    shared prefix computed once (the primer, else what each request found cached), each paper's own tokens, its
    answer's. None under 2 papers: a lone request has no prefix shared with another (vLLM primes none), and the
    estimate was that of a day sharing nothing ("primer 0", every paper's whole prompt computed)."""
    if n < 2:
        return None
    per_prompt = v["prompt_tokens"] / n
    per_fresh = (v["prompt_tokens"] - v["cached_prompt_tokens"]) / n
    shared = v.get("primer_prompt_tokens") or (per_prompt - per_fresh)
    prefill_s = (shared + day_papers * per_fresh) / H100_PREFILL_TOK_S
    decode_s = day_papers * (v["completion_tokens"] / n) / H100_DECODE_TOK_S
    total = prefill_s + decode_s
    return {"papers": day_papers, "shared": shared, "per_fresh": per_fresh, "prefill_s": prefill_s,
            "decode_s": decode_s, "total_s": total, "with_start_s": total + H100_ENGINE_START_S}


LABELS = {"vllm": "vLLM fp32 (the backend's default)", "vllm-bf16": "vLLM bf16",
          "transformers": "transformers fp32, one at a time", "llamacpp-f32": "llama.cpp F32 GGUF (same weights)",
          "llamacpp-f16": "llama.cpp F16 GGUF (same weights)", "llamacpp": "llama.cpp Q4_1 GGUF as shipped"}


def r_settings(run: dict) -> str:
    return f"settings {run.get('settings') or 'the defaults'}"


def main() -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=16, help="papers to score")
    ap.add_argument("--listing", type=Path, default=None,
                    help="a listing.jsonl (default: the repository's copy of 2025-06-23)")
    ap.add_argument("--comment-chars", type=int, default=300)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--abstract-tokens", type=int, default=400)
    ap.add_argument("--layouts", default="seed,instructions-first",
                    help="prompt layouts to measure, comma-separated: seed, instructions-first")
    ap.add_argument("--engines", default=",".join(DEFAULT_ENGINES),
                    help=f"comma-separated, from: {', '.join(ENGINES)} (vllm first: answers are compared to it)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for the transformers loop (default: torch's own, every core)")
    ap.add_argument("--settings", default=None,
                    help='JSON: engine -> settings over ENGINE_SETTINGS (VLLMOptions; LlamaCppSettings plus quant), '
                         'e.g. \'{"llamacpp-f16": {"parallel": 16}}\'')
    ap.add_argument("--limit-threads", type=int, default=len(os.sched_getaffinity(0)),
                    help="threads for the GEMM measurement (default: every core)")
    ap.add_argument("--no-limit", action="store_true", help="skip measuring the machine's GEMM rate")
    ap.add_argument("--day-papers", type=int, default=400, help="papers a day for the H100 estimate")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child_main(args)

    listing = args.listing or DEFAULT_LISTING
    if not listing.exists():
        ap.error(f"no such listing: {listing}")
    layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    engines = [x.strip() for x in args.engines.split(",") if x.strip()]
    for e in engines:
        if e not in ENGINES:
            ap.error(f"unknown engine {e!r}; choose from {', '.join(ENGINES)}")
    try:
        given = json.loads(args.settings or "{}")
    except ValueError as e:
        ap.error(f"--settings is not JSON: {e}")
    if not isinstance(given, dict) or any(k not in ENGINES or not isinstance(v, dict) for k, v in given.items()):
        ap.error(f"--settings: a JSON object of engine -> settings object; engines: {', '.join(ENGINES)}")
    # what a llama.cpp engine needs, said here: in its own process a missing package or GGUF was a traceback
    # under "FAILED", after the engines before it had run
    if any(e.startswith("llamacpp") for e in engines):
        try:
            importlib.import_module("llama_cpp")
        except ImportError:
            ap.error("the llama.cpp engines need llama-cpp-python: pip install 'ranker[llamacpp]' "
                     "(or leave them out of --engines)")
        from ranker import models
        from ranker.advice import prepare_advice
        from ranker.errors import RankerError
        for e in [e for e in engines if e.startswith("llamacpp")]:
            try:
                models.gguf_file(args.model, engine_settings(e, args.settings).get("quant"))
            except RankerError as x:
                ap.error(f"{e}: {x}{prepare_advice(x)} (or leave it out of --engines)")
    papers = load_papers(listing, args.n)
    n = len(papers)
    by_layout = {lay: build_requests(papers, args.comment_chars, args.max_tokens, args.abstract_tokens, lay)
                 for lay in layouts}
    shape = model_shape(args.model)
    print(f"{n} papers from {listing}; model {args.model}; max_tokens {args.max_tokens}; comment <= "
          f"{args.comment_chars} chars; one paper per request; layouts {', '.join(layouts)}; "
          f"{len(os.sched_getaffinity(0))} cores")
    argv = ["--model", args.model, "--n", str(n), "--listing", str(listing), "--comment-chars",
            str(args.comment_chars), "--max-tokens", str(args.max_tokens), "--abstract-tokens",
            str(args.abstract_tokens), "--layouts", ",".join(layouts), "--limit-threads", str(args.limit_threads)]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if args.settings:
        argv += ["--settings", args.settings]
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        limit = {} if args.no_limit else spawn("limit", argv, Path(tmp))
        for e in engines:
            r = spawn(e, argv, Path(tmp))
            if r:
                runs[e] = r

    fig: dict = {"n": n, "model": args.model, "listing": str(listing), "shape": shape, "limit": limit,
                 "engines": {e: {k: v for k, v in r.items() if k != "layouts"} for e, r in runs.items()},
                 "layouts": {}}
    if limit:
        print(f"\nThe machine's limit ({limit['threads']} threads, best of 3): GEMM at a prompt chunk's shapes "
              f"(512 tokens x the model's matrices) float32 {limit['fp32']:.0f} GFLOP/s with torch "
              f"({limit['fp32_numpy']:.0f} with numpy), bfloat16 (AMX) {limit['bf16']:.0f}, float16 "
              f"{limit['fp16']:.0f}; float32 {limit['fp32_T32']:.0f} at 32 rows, {limit['fp32_T1']:.0f} at one row "
              f"(decode, bandwidth-bound); memory copy {limit['copy_GBps']:.1f} GB/s.")
    print(f"Work per token: 2 x {shape['non_embedding'] / 1e6:.1f}M non-embedding parameters per token computed "
          f"+ 2 x {shape['lm_head'] / 1e6:.1f}M (output layer) per token sampled; attention scores apart.")
    ref = runs.get("vllm")
    header = ("| engine | layout | papers/s | vs vLLM | prompt tokens computed / paper | decode tok/s | peak RSS "
              "| same scores / same text as vLLM | valid | GFLOP/s | share of the GEMM limit |")
    rows = [header, "| " + " | ".join(["---"] * 11) + " |"]
    for lay in layouts:
        fig["layouts"][lay] = {}
        for e, r in runs.items():
            f = figures(r, lay, n, shape, limit, ref if e != "vllm" else None, by_layout[lay], args.comment_chars,
                        LIMIT_OF[e])
            fig["layouts"][lay][e] = {**f, **{k: v for k, v in r["layouts"][lay].items()
                                             if k not in ("texts", "prompt_ids", "cached", "completions")}}
            vs = f["papers_per_s"] / (n / ref["layouts"][lay]["generate_s"]) if ref else None
            same = "-" if f["same_as_vllm"] is None else "{} / {}".format(*f["same_as_vllm"])
            share = "-" if f["limit_share"] is None else f"{f['limit_share']:.1%} of {f['limit']}"
            rows.append(
                f"| {LABELS[e]} | {lay} | {f['papers_per_s']:.3f} ({f['generate_s']:.0f} s) | "
                f"{'-' if vs is None or e == 'vllm' else f'{vs:.2f}x'} | "
                f"{f['computed_per_paper']:.0f} of {f['prompt_per_paper']:.0f} ({f['cached_share']:.0%} cached) | "
                f"{f['decode_tok_s']:.0f} | {f['peak_rss_mb']:.0f} MB | {same} | {f['valid']}/{n} | "
                f"{f['gflops']:.1f} | {share} |")
    print()
    print("\n".join(rows))
    print()
    for lay in layouts:
        for e in runs:
            f = fig["layouts"][lay][e]
            extra = ""
            if e.startswith("vllm"):
                extra = (f"; {r_settings(runs[e])}; rerun with every prompt cached {f['rerun_s']:.1f} s ({f['rerun_same']}/{n} answers "
                         f"identical), primer {f['primer_prompt_tokens']} tokens")
            elif e.startswith("llamacpp"):
                extra = f"; {f['settings']}; grammar full-vocabulary masks {f['grammar_full_masks']}"
            pre = f"prefill {f['prefill_tok_s']:.0f} tok/s" if f["prefill_tok_s"] else ""
            print(f"[{lay}] {e}: {f['cpu_s']:.0f} s CPU; {f['completion_per_paper']:.0f} completion tokens/paper; "
                  f"{pre}; {f['gflop_per_paper']:.2f} GFLOP/paper (+{f['attention_share']:.0%} in attention "
                  f"scores){extra}")

    if ref and layouts:
        v = ref["layouts"][layouts[0]]
        per_prompt, per_out, D = v["prompt_tokens"] / n, v["completion_tokens"] / n, args.day_papers
        est = h100_estimate(v, n, D)
        if est is None:
            print("\nNo H100 estimate: one paper shows no prompt prefix shared across requests (vLLM primes none "
                  "for a lone request); --n 2 or more")
        else:
            fig["h100_estimate"] = {"layout": layouts[0], **{k: est[k] for k in (
                "papers", "prefill_s", "decode_s", "total_s", "with_start_s")}}
            print(f"\nEstimate, one H100, an 8B model in bf16 with vLLM, {D} papers a day ({layouts[0]} layout; "
                  f"token counts as measured here): ({est['shared']:.0f} + {D} x {est['per_fresh']:.0f}) / "
                  f"{H100_PREFILL_TOK_S} + {D} x {per_out:.0f} / {H100_DECODE_TOK_S} = {est['prefill_s']:.1f} + "
                  f"{est['decode_s']:.1f} = {est['total_s']:.0f} s (+ {H100_ENGINE_START_S} s engine start)")
        from ranker.backends.pricing import cost_usd
        from ranker.records import Usage
        gpt = cost_usd("gpt-4o", Usage(prompt_tokens=round(D * per_prompt), completion_tokens=round(D * per_out)))
        fig["gpt4o_cost_usd"] = gpt
        print(f"  the same tokens through gpt-4o: ${gpt:.2f} a day (list price, no caching discount)")
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main, flags={"scoring.model": "--model"}))   # a RankerError: one line, status 1
