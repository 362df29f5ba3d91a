#!/usr/bin/env python
"""GPU figures for the two paths that do not need vLLM: the embedding prefilter and transformers scoring.

    python scripts/bench_gpu.py --embedder models/minilm [--n-embed 30000] [--tokenizer models/smollm2-135m]

1. Embedding: `ranker.prefilter.embed.Embedder` on the GPU over N synthetic papers (text spliced from the
   repository's announcement days, as scripts/make_snapshot.py does), at the default 128-token cut and at 256.
2. Transformers scoring, timing only: models of SmolLM2-135M's shape and of an 8B Llama's shape with random
   weights (no 8B weights can be carried to a GPU box here; speed does not depend on the values), real
   prompts from the default prompt set and the tokenizer given. Each paper costs a prefill of its whole
   prompt plus a fixed number of decoded tokens (the completion length measured on CPU); measured one paper
   at a time (the plain loop) and as one left-padded batch. Without the JSON grammar: its per-token cost is
   host-side and small next to an 8B forward pass.

Needs torch with CUDA, transformers, sentence-transformers; nothing in ranker depends on this script.
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)

SHAPES = {   # the architecture numbers of the two models; weights are random
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True),
    "llama-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False),
}


def synthetic_papers(n: int, seed: int = 0):
    from make_snapshot import load_rows, splice
    from ranker.records import Paper
    rows = load_rows(REPO / "tests" / "data" / "days")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        t, a, b = (rng.choice(rows) for _ in range(3))
        out.append(Paper(id=f"2601.{i:05d}", title=t["title"], abstract=splice(a["abstract"], b["abstract"]),
                         authors=list(t["authors"]), categories=list(t["categories"])))
    return out


def _sync(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak_mb(device: str) -> int:
    import torch
    return round(torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else 0


def bench_embed(path: str, n: int, batch: int, device: str) -> dict:
    import torch
    from ranker.prefilter.embed import Embedder, paper_text
    texts = [paper_text(p) for p in synthetic_papers(n)]
    figs = {}
    for cut in (128, 256):
        e = Embedder(path, max_tokens=cut, batch_size=batch, device=device)
        t0 = time.perf_counter()
        e.model
        load = time.perf_counter() - t0
        e.encode(texts[:512])                       # warm-up: CUDA kernels, allocator
        _sync(device)
        t0 = time.perf_counter()
        v = e.encode(texts)
        _sync(device)
        secs = time.perf_counter() - t0
        figs[cut] = {"papers": n, "seconds": round(secs, 2), "papers_per_s": round(n / secs),
                     "load_s": round(load, 1), "dim": int(v.shape[1]),
                     "peak_gpu_mb": _peak_mb(device)}
        print(f"embed {n} papers, {cut}-token cut, batch {batch}: {secs:6.2f} s = {n / secs:8.0f} papers/s "
              f"(model load {load:.1f} s, peak GPU {figs[cut]['peak_gpu_mb']} MB)", flush=True)
        del e
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    return figs


def bench_llm(shape: str, tokenizer: str, n: int, new_tokens: int, batch: int, device: str) -> dict:
    import torch
    import transformers
    from ranker.prompts import build_messages, load_prompts
    tok = transformers.AutoTokenizer.from_pretrained(tokenizer)
    base = transformers.AutoConfig.from_pretrained(tokenizer)
    cfg = transformers.LlamaConfig(**{**{k: getattr(base, k) for k in ("bos_token_id", "eos_token_id")},
                                      **SHAPES[shape], "max_position_embeddings": 8192})
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32   # CPUs here lack fast bf16
    t0 = time.perf_counter()
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=dtype).eval()
    init = time.perf_counter() - t0
    ps = load_prompts()
    prompts = [tok.apply_chat_template(build_messages(ps, [p], abstract_tokens=400), tokenize=False,
                                       add_generation_prompt=True) for p in synthetic_papers(n, seed=1)]
    ids = [tok(p, add_special_tokens=False, return_tensors="pt").input_ids.to(device) for p in prompts]
    mean_len = sum(x.shape[1] for x in ids) / n
    gen = dict(do_sample=False, max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0,
               temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        model.generate(ids[0], **gen)                                   # warm-up
        _sync(device)
        t0 = time.perf_counter()
        for x in ids:                                                   # prefill only
            model(x)
        _sync(device)
        prefill = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for x in ids:                                                   # the plain loop
            model.generate(x, **gen)
        _sync(device)
        loop = time.perf_counter() - t0
        tok.padding_side = "left"
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        t0 = time.perf_counter()
        for k in range(0, n, batch):                                    # left-padded batches
            enc = tok(prompts[k:k + batch], add_special_tokens=False, return_tensors="pt", padding=True).to(device)
            model.generate(**enc, **gen)
        _sync(device)
        batched = time.perf_counter() - t0
    params = sum(p.numel() for p in model.parameters()) / 1e9
    fig = {"shape": shape, "params_b": round(params, 2), "papers": n, "prompt_tokens_mean": round(mean_len),
           "new_tokens": new_tokens, "init_s": round(init, 1), "prefill_s_per_paper": round(prefill, 4),
           "loop_papers_per_s": round(n / loop, 3), "batched_papers_per_s": round(n / batched, 3),
           "batch": batch, "peak_gpu_mb": _peak_mb(device)}
    print(f"transformers {shape} ({params:.2f}B params, random weights, {str(dtype)[6:]}): {n} papers of ~{mean_len:.0f} "
          f"prompt tokens + {new_tokens} new tokens; prefill {prefill * 1000:.0f} ms/paper; "
          f"one at a time {n / loop:.2f} papers/s; batches of {batch} {n / batched:.2f} papers/s "
          f"({n / batched / (n / loop):.1f}x); peak GPU {fig['peak_gpu_mb']} MB", flush=True)
    del model
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return fig


def main() -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--embedder", required=True, help="a sentence-transformers folder (e.g. models/minilm)")
    ap.add_argument("--n-embed", type=int, default=30000)
    ap.add_argument("--embed-batch", type=int, default=256)
    ap.add_argument("--tokenizer", default=None, help="an LLM folder with tokenizer + config (SmolLM2's)")
    ap.add_argument("--shapes", default="smollm2-135m,llama-8b")
    ap.add_argument("--n-llm", type=int, default=16)
    ap.add_argument("--new-tokens", type=int, default=96, help="decoded tokens per paper (measured on CPU)")
    ap.add_argument("--llm-batch", type=int, default=16)
    ap.add_argument("--device", default="cuda", help="cuda (default), or cpu to try the script out")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    import torch
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        # one line, not the usage text: nothing was wrong with the arguments
        sys.exit(f"bench_gpu.py: no CUDA device here (torch {torch.__version__}); --device cpu tries the script out")
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    figs: dict = {"device": name, "embed": bench_embed(args.embedder, args.n_embed, args.embed_batch, args.device)}
    if args.tokenizer:
        figs["llm"] = []
        for shape in [s for s in args.shapes.split(",") if s]:
            try:
                figs["llm"].append(bench_llm(shape, args.tokenizer, args.n_llm, args.new_tokens, args.llm_batch,
                                            args.device))
            except Exception as e:   # keep the embedding figures if one shape fails
                print(f"transformers {shape}: failed: {type(e).__name__}: {e}", flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figs, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from ranker.cli.app import script_main
    # a RankerError: one line naming the script's flag, status 1
    raise SystemExit(script_main(main, flags={"prefilter.embedder": "--embedder"}))
