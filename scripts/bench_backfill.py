#!/usr/bin/env python
"""Backfill benchmark: the local engine against Ray Data in local mode on this machine, and what a cluster
would take for a whole arXiv snapshot.

  1. embed + prefilter (`ranker backfill --embed`, MiniLM) of --n-embed papers, local then Ray;
  2. fake scoring (`ranker backfill --score --backend fake`, no model: what the pipeline itself costs) of
     --n-score papers, local then Ray;
     papers/s of each phase, and peak RSS of every process (local: the command, from the kernel; Ray: each
     process of the session, sampled by the engine and written to the run's manifest);
  3. per-paper token counts of the real prompt (seed layout, the bundled prompt) with a real 7B-family
     tokenizer (Qwen2.5's, the same as Qwen2.5-7B's) on papers of the snapshot, and of real answers (GPT-4o's
     COMMENTs of the shared days, as the JSON the schema asks for);
  4. the estimate for a --gpus GPU cluster on a --cluster-papers snapshot with an 8B model, formula printed.

    python scripts/bench_backfill.py [--n-embed 2000] [--n-score 30000] [--workdir DIR]

Heavy (a few minutes of both cores): run it under the shared lock.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(REPO / "scripts"))
import bench_year  # noqa: E402  (its timed(): wall seconds and the kernel's peak RSS of a command)
import make_snapshot  # noqa: E402  (snapshot(): its own error line, status 1)
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)

# The cluster estimate's assumptions (one H100, an 8B model in bf16 under vLLM), as in README's scoring figures
PREFILL_TOK_S = 10_000          # conservative: 24k tok/s measured for an 8B shape's prefill on an H200 (bench_gpu)
PREFILL_TOK_S_HIGH = 20_000     # the figure
DECODE_TOK_S = 3_000            # batched decode, hundreds of sequences in flight
EMBED_PAPERS_S = 4_633          # MiniLM on one H200 at the 128-token cut, measured (README, bench_gpu.py)
ENGINE_START_S = 90             # vLLM engine start with an 8B model, each actor in parallel
TOKENIZER = "qwen2.5-coder-0.5b"  # the preset whose tokenizer is Qwen2.5-7B's


def run(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(seconds, peak RSS MB of the command itself, stderr), by bench_year.timed: its stderr read from a file once
    it has ended (a pipe read only then stalled a command that wrote more than the pipe holds)."""
    secs, rss, rc, _, err = bench_year.timed(cmd, env)
    if rc != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{err[-1500:]}")
    return secs, rss, err


def backfill(engine: str, snap: Path, out: Path, extra: list[str], env: dict, n: int, label: str) -> dict:
    cmd = [str(BIN / "ranker"), "backfill", "--from", str(snap), "--out", str(out), "--all-categories",
           "--engine", engine, *extra]
    wall, rss, _ = run(cmd, env)
    run_rec = json.loads((out / "manifest.json").read_text())["runs"][-1]
    phase = "score" if "--score" in extra else "rank"
    secs = run_rec["phases"][phase]["seconds"]
    procs = run_rec.get("processes") or []
    top = max((p["peak_rss_mb"] for p in procs), default=rss)
    print(f"{label:<34} {engine:<5} {n:>6} papers  {phase} phase {secs:7.1f} s = {n / secs:7.1f} papers/s  "
          f"(command {wall:6.1f} s)  peak RSS: command {rss:5.0f} MB, largest process {top:5.0f} MB "
          f"of {len(procs) or 1}")
    return {"engine": engine, "papers": n, "phase_s": secs, "wall_s": wall, "rss_mb": rss, "processes": procs,
            "run": run_rec}


def print_processes(label: str, procs: list[dict]) -> None:
    print(f"  {label}: peak RSS per process")
    for p in procs:
        print(f"    {p['peak_rss_mb']:7.1f} MB  pid {p['pid']:<7} {p['name'][:70]}")


def days_dir() -> Path:
    """The shared announcement days (the main checkout's sibling, or a worktree's), else the tests' copy."""
    for d in (REPO.parent / "shared" / "data" / "days", REPO.parent.parent / "shared" / "data" / "days",
              REPO / "tests" / "data" / "days"):
        if any(d.glob("*/listing.jsonl")):
            return d
    sys.exit("no <day>/listing.jsonl folder found; give --days")


def tokenizer_folder() -> tuple[str | None, str]:
    """(the prepared Qwen2.5 folder whose tokenizer counts the tokens, or None; why not). Looked up before the
    phases run: a machine without the preset measured every phase and then ended in a traceback."""
    from ranker.advice import prepare_advice
    from ranker.errors import RankerError
    from ranker.models import resolve
    from ranker.settings import resolve as resolve_settings
    try:
        return resolve(TOKENIZER, kind="llm", models_dir=resolve_settings().models_dir), ""
    except RankerError as e:
        return None, str(e) + prepare_advice(e)


def token_counts(snap: Path, sample: int, days: Path, folder: str) -> dict:
    """Prompt tokens per paper (and the shared prefix) with the Qwen2.5 tokenizer in `folder`; completion tokens
    of real answers (GPT-4o's comments) in the schema's compact JSON."""
    from transformers import AutoTokenizer

    from ranker.backends.vllm_backend import common_prefix
    from ranker.prompts import load_prompts
    from ranker.scoring import ScoreOptions, build_requests
    from ranker.sources import read_papers
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    ps, opt = load_prompts(), ScoreOptions()
    papers = [p for p, _ in zip(read_papers(snap), range(sample))]
    ids = []
    for req in build_requests([[p] for p in papers], ps, opt):
        text = tok.apply_chat_template(req.messages, tokenize=False, add_generation_prompt=True)
        ids.append(tok.encode(text, add_special_tokens=False))
    shared = common_prefix(ids)
    per_prompt = sum(map(len, ids)) / len(ids)
    answers = []
    for f in sorted(days.glob("*/gpt_scores.jsonl")):
        for line in f.open(encoding="utf-8"):
            d = json.loads(line)
            if d.get("COMMENT"):
                answers.append(json.dumps({"ARXIVID": d.get("id") or d.get("ARXIVID"),
                                           "COMMENT": d["COMMENT"][:opt.comment_chars],
                                           "RELEVANCE": d.get("RELEVANCE"), "NOVELTY": d.get("NOVELTY")},
                                          separators=(",", ":"), ensure_ascii=False))
    comp = [len(tok.encode(a, add_special_tokens=False)) + 1 for a in answers]     # + the end-of-turn token
    return {"papers": len(ids), "prompt": per_prompt, "shared": shared, "fresh": per_prompt - shared,
            "answers": len(comp), "completion": sum(comp) / max(1, len(comp))}


def estimate(n: float, keep: float, gpus: int, tc: dict) -> None:
    kept = n * keep
    embed_s = n / (gpus * EMBED_PAPERS_S)
    for prefill in (PREFILL_TOK_S, PREFILL_TOK_S_HIGH):
        prefill_s = (gpus * tc["shared"] + kept * tc["fresh"]) / (gpus * prefill)
        decode_s = kept * tc["completion"] / (gpus * DECODE_TOK_S)
        total = ENGINE_START_S + embed_s + prefill_s + decode_s
        print(f"  prefill {prefill:,} tok/s: T = {ENGINE_START_S} + {n:,.0f} / ({gpus} x {EMBED_PAPERS_S:,}) + "
              f"({gpus} x {tc['shared']:.0f} + {kept:,.0f} x {tc['fresh']:.0f}) / ({gpus} x {prefill:,}) + "
              f"{kept:,.0f} x {tc['completion']:.0f} / ({gpus} x {DECODE_TOK_S:,})")
        print(f"      = {ENGINE_START_S} + {embed_s:.0f} + {prefill_s:,.0f} + {decode_s:,.0f} s = {total:,.0f} s "
              f"= {total / 3600:.2f} h  ({kept / (prefill_s + decode_s):,.0f} kept papers/s over the cluster)")


def main() -> int:
    ap = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-embed", type=int, default=2000)
    ap.add_argument("--n-score", type=int, default=30000)
    ap.add_argument("--token-sample", type=int, default=300)
    ap.add_argument("--cluster-papers", type=float, default=2.7e6)
    ap.add_argument("--gpus", type=int, default=16)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--days", type=Path, help="<day>/listing.jsonl + gpt_scores.jsonl folders (default: the shared "
                    "days)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.workdir and args.workdir.exists() and not args.workdir.is_dir():
        ap.error(f"--workdir {args.workdir}: not a folder")     # not mkdir's "file exists" traceback
    work = args.workdir or Path(tempfile.mkdtemp(prefix="ranker-bench-backfill-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "RANKER_HOME": str(work / "home"), "RANKER_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join([str(REPO)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH")
                                                       else []))}
    days = args.days or days_dir()
    snaps = {}
    for n in sorted({args.n_embed, args.n_score}):
        snaps[n] = work / f"snapshot-{n}.json"
        if not snaps[n].exists():
            make_snapshot.snapshot(["--n", str(n), "--out", str(snaps[n]), "--days", str(days)], env)
    print(f"this machine: {os.cpu_count()} cores; work folder {work}; snapshots spliced from {days}")
    folder, why = tokenizer_folder()
    if folder is None:
        print(f"tokens and the cluster estimate: skipped ({why})")
    fig: dict = {}
    for what, n, extra in (("embed + prefilter (MiniLM)", args.n_embed, ["--embed"]),
                           ("fake scoring (no model)", args.n_score, ["--score", "--backend", "fake"])):
        res = {}
        for engine in ("local", "ray"):
            out = work / f"{'embed' if '--embed' in extra else 'score'}-{engine}"
            if out.exists():
                import shutil
                shutil.rmtree(out)
            res[engine] = backfill(engine, snaps[n], out, extra, env, n, what)
        ratio = res["ray"]["phase_s"] / res["local"]["phase_s"]
        print(f"  Ray local / local: {ratio:.2f}x the time of the {what} phase "
              f"({res['ray']['phase_s'] - res['local']['phase_s']:+.1f} s)")
        print_processes(f"Ray, {what}", res["ray"]["processes"])
        fig[what] = {e: {k: v for k, v in r.items() if k != "run"} for e, r in res.items()}
        if "--embed" in extra:
            summ = json.loads((work / "embed-local" / "manifest.json").read_text())["summary"]["ranked"]
            keep = summ["kept"] / summ["rows"]
            fig["keep_fraction"] = keep

    if folder is None:
        print(f"\ntokens and the cluster estimate: skipped ({why})")
        if args.json:
            args.json.write_text(json.dumps(fig, indent=2, default=str) + "\n")
        return 0
    tc = token_counts(snaps[args.n_embed], args.token_sample, days, folder)
    fig["tokens"] = tc
    print(f"\ntokens (Qwen2.5 tokenizer, seed layout, bundled prompt): {tc['prompt']:.0f} prompt tokens a paper "
          f"over {tc['papers']} papers of the snapshot, {tc['shared']} of them a prefix every request shares, "
          f"{tc['fresh']:.0f} per paper; {tc['completion']:.0f} completion tokens a paper "
          f"(GPT-4o's {tc['answers']} answers of {days.name}/ as the schema's JSON)")
    keep = fig.get("keep_fraction", 0.4)
    print(f"\nEstimate: {args.cluster_papers:,.0f} papers, {args.gpus} GPUs (H100), an 8B model in bf16 under vLLM, "
          f"keep fraction {keep:.3f} (measured above), one vLLM engine per GPU, MiniLM on the same GPUs first:")
    print(f"  assumptions per GPU: embedding {EMBED_PAPERS_S:,} papers/s (measured, H200), prefill "
          f"{PREFILL_TOK_S:,} or {PREFILL_TOK_S_HIGH:,} tok/s, batched decode {DECODE_TOK_S:,} tok/s, "
          f"engine start {ENGINE_START_S} s; the shared prefix computed once per engine")
    print("  T = start + N / (G x embed) + (G x shared + N x keep x fresh) / (G x prefill) "
          "+ N x keep x completion / (G x decode)")
    estimate(args.cluster_papers, keep, args.gpus, tc)
    if args.json:
        args.json.write_text(json.dumps(fig, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main))   # a RankerError: one line, status 1
