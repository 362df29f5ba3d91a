"""Benchmark LLM scoring: vLLM (one batched call, prefix caching) against the loop a user writes first
(transformers, one paper at a time), on the same papers, model, prompts, token limit and JSON constraint.

    .venv/bin/python scripts/bench_scoring.py                       # 32 papers, SmolLM2
    .venv/bin/python scripts/bench_scoring.py --n 8 --model qwen2.5-coder-0.5b
    .venv/bin/python scripts/bench_scoring.py --n 16 --layouts seed,instructions-first

Prints papers/s for each, their ratio, the prompt tokens computed against those served from the prefix
cache, and an estimate of a day's scoring on one H100 with an 8B model (assumptions printed with it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LISTING = REPO / "tests" / "data" / "days" / "2025-06-23" / "listing.jsonl"

# Assumed throughput of vLLM serving an 8B model in bf16 on one H100 SXM (80 GB), batch of a few hundred
# requests. Conservative round numbers: prefill is compute-bound (2 x 8e9 FLOP per token at ~20 % of the
# ~990 TFLOP/s dense bf16 peak ~ 12k tokens/s); decode is bandwidth-bound (16 GB of weights read per step
# at ~3.3 TB/s ~ 5 ms a step, ~64 sequences a step ~ 3k tokens/s once grammar and sampling overheads are
# counted). Engine start: loading 16 GB of weights plus CUDA-graph capture.
H100_PREFILL_TOK_S = 10_000
H100_DECODE_TOK_S = 3_000
H100_ENGINE_START_S = 90


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


def valid_count(results, requests, comment_chars: int) -> int:
    from ranker.backends.schema import check_answer, schema_ids
    ok = 0
    for res, req in zip(results, requests):
        if not res.ok:
            continue
        try:
            check_answer(json.loads(res.text), schema_ids(req.schema), comment_chars)
            ok += 1
        except (ValueError, KeyError, TypeError):
            pass
    return ok


def scores(results) -> list[tuple[int, int] | None]:
    out = []
    for r in results:
        try:
            d = json.loads(r.text)
            out.append((d["RELEVANCE"], d["NOVELTY"]))
        except Exception:
            out.append(None)
    return out


VLLM_KEYS = ("prompt_tokens", "cached_prompt_tokens", "computed_prompt_tokens", "completion_tokens",
             "primer_prompt_tokens")


def run_vllm(model: str, by_layout: dict) -> dict:
    """One engine; each layout's requests in one generate call. Figures per layout (stats are deltas)."""
    from ranker.backends.vllm_backend import VLLMBackend
    t0 = time.perf_counter()
    vb = VLLMBackend(model)
    load = time.perf_counter() - t0
    out = {}
    try:
        for layout, reqs in by_layout.items():
            before = vb.stats()
            c0, t0 = cpu_seconds(), time.perf_counter()
            res = vb.generate(reqs)
            gen, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            after = vb.stats()
            out[layout] = {"load_s": round(load, 1), "generate_s": round(gen, 2), "papers_per_s": len(reqs) / gen,
                           "cpu_s": round(cpu, 1), "results": res, "engine_env": after["engine_env"],
                           **{k: after[k] - before[k] for k in VLLM_KEYS}}
    finally:
        vb.close()
    return out


def run_transformers(model: str, by_layout: dict, threads: int | None) -> dict:
    """The plain loop: one paper at a time, the whole prompt each time."""
    from ranker.backends.transformers_backend import TransformersBackend
    t0 = time.perf_counter()
    tb = TransformersBackend(model, batch_size=1, threads=threads)
    load = time.perf_counter() - t0
    import torch
    out = {}
    for layout, reqs in by_layout.items():
        before = tb.stats()
        c0, t0 = cpu_seconds(), time.perf_counter()
        res = [tb.generate([r])[0] for r in reqs]
        gen, cpu = time.perf_counter() - t0, cpu_seconds() - c0
        after = tb.stats()
        out[layout] = {"load_s": round(load, 1), "generate_s": round(gen, 2), "papers_per_s": len(reqs) / gen,
                       "cpu_s": round(cpu, 1), "threads": torch.get_num_threads(), "results": res,
                       "prompt_tokens": after["prompt_tokens"] - before["prompt_tokens"],
                       "completion_tokens": after["completion_tokens"] - before["completion_tokens"]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--n", type=int, default=32, help="papers to score")
    ap.add_argument("--listing", type=Path, default=None,
                    help="a listing.jsonl (default: the repository's copy of 2025-06-23)")
    ap.add_argument("--comment-chars", type=int, default=300)
    ap.add_argument("--max-tokens", type=int, default=200)
    ap.add_argument("--abstract-tokens", type=int, default=400)
    ap.add_argument("--layouts", default="seed",
                    help="prompt layouts to measure, comma-separated: seed, instructions-first")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for the transformers loop (default: torch's own, every core, as "
                         "vLLM's worker gets on a machine of up to four cores)")
    ap.add_argument("--skip-transformers", action="store_true")
    ap.add_argument("--day-papers", type=int, default=400, help="papers a day for the H100 estimate")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = ap.parse_args()

    listing = args.listing or DEFAULT_LISTING
    if not listing.exists():
        ap.error(f"no such listing: {listing}")
    layouts = [x.strip() for x in args.layouts.split(",") if x.strip()]
    papers = load_papers(listing, args.n)
    by_layout = {lay: build_requests(papers, args.comment_chars, args.max_tokens, args.abstract_tokens, lay)
                 for lay in layouts}
    n = len(papers)
    print(f"{n} papers from {listing}; model {args.model}; max_tokens {args.max_tokens}; "
          f"comment <= {args.comment_chars} chars; one paper per request; layouts {', '.join(layouts)}")
    fig: dict = {"n": n, "model": args.model, "listing": str(listing), "layouts": {}}

    vres = run_vllm(args.model, by_layout)
    tres = {} if args.skip_transformers else run_transformers(args.model, by_layout, args.threads)
    for lay in layouts:
        v = vres[lay]
        reqs = by_layout[lay]
        v["valid"] = valid_count(v["results"], reqs, args.comment_chars)
        print(f"\n[{lay} layout]")
        print(f"(a) vLLM batched + prefix cache : {v['papers_per_s']:7.3f} papers/s  ({v['generate_s']:.1f} s wall, "
              f"{v['cpu_s']:.0f} s CPU; engine start {v['load_s']:.0f} s; {v['engine_env'] or 'vLLM default threads'}); "
              f"valid {v['valid']}/{n}")
        print(f"    prompt tokens {v['prompt_tokens']}: computed {v['computed_prompt_tokens']} + primer "
              f"{v['primer_prompt_tokens']}, served from cache {v['cached_prompt_tokens']} "
              f"({v['cached_prompt_tokens'] / max(1, v['prompt_tokens']):.0%}); completion {v['completion_tokens']}")
        entry = {"vllm": {k: x for k, x in v.items() if k != "results"}}
        if lay in tres:
            t = tres[lay]
            t["valid"] = valid_count(t["results"], reqs, args.comment_chars)
            print(f"(b) transformers, one at a time  : {t['papers_per_s']:7.3f} papers/s  ({t['generate_s']:.1f} s wall, "
                  f"{t['cpu_s']:.0f} s CPU; {t['threads']} thread(s)); valid {t['valid']}/{n}; prompt tokens "
                  f"computed {t['prompt_tokens']}")
            same = sum(1 for a, b in zip(scores(v["results"]), scores(t["results"])) if a is not None and a == b)
            ratio = t["generate_s"] / v["generate_s"]
            cpu_ratio = t["cpu_s"] / v["cpu_s"] if v["cpu_s"] else float("nan")
            print(f"ratio (a)/(b): {ratio:.1f}x in papers/s, {cpu_ratio:.1f}x in CPU time; same RELEVANCE and "
                  f"NOVELTY in {same}/{n} papers")
            entry["transformers"] = {k: x for k, x in t.items() if k != "results"}
            entry.update(ratio=ratio, cpu_ratio=cpu_ratio, same_scores=same)
        fig["layouts"][lay] = entry

    # an H100 + 8B estimate from the measured token counts of the first layout
    v = vres[layouts[0]]
    per_prompt = v["prompt_tokens"] / n
    per_fresh = v["computed_prompt_tokens"] / n
    shared = v["primer_prompt_tokens"] or (per_prompt - per_fresh)
    per_out = v["completion_tokens"] / n
    D = args.day_papers
    prefill_s = (shared + D * per_fresh) / H100_PREFILL_TOK_S
    decode_s = D * per_out / H100_DECODE_TOK_S
    total = prefill_s + decode_s
    fig["h100_estimate"] = {"layout": layouts[0], "papers": D, "prefill_s": prefill_s, "decode_s": decode_s,
                            "total_s": total, "with_start_s": total + H100_ENGINE_START_S}
    print(f"\nEstimate, one H100, an 8B model in bf16 with vLLM, {D} papers a day ({layouts[0]} layout; token "
          f"counts as measured here; an 8B model's tokenizer gives similar counts):")
    print(f"  per paper: {per_prompt:.0f} prompt tokens, of which {per_fresh:.0f} not shared; "
          f"{per_out:.0f} completion tokens; shared prefix {shared:.0f} tokens computed once")
    print(f"  assumptions: prefill {H100_PREFILL_TOK_S:,} tok/s, batched decode {H100_DECODE_TOK_S:,} tok/s, "
          f"engine start {H100_ENGINE_START_S} s")
    print("  time = (shared + papers x fresh) / prefill + papers x completion / decode")
    print(f"       = ({shared:.0f} + {D} x {per_fresh:.0f}) / {H100_PREFILL_TOK_S} + {D} x {per_out:.0f} / "
          f"{H100_DECODE_TOK_S} = {prefill_s:.1f} + {decode_s:.1f} = {total:.0f} s "
          f"(+ {H100_ENGINE_START_S} s engine start = {total + H100_ENGINE_START_S:.0f} s)")
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
    raise SystemExit(main())
