"""Papers -> requests -> backend -> validated Scores -> JSONL lines + the store.

One paper per request by default: every request of a day shares the same prefix (system prompt, topics,
criteria), so vLLM's prefix cache computes it once; a paper's text can only ever move its own score.
Scores are stored by (paper, model, prompt hash) as they complete, so an interrupted run resumes where it
stopped and a rerun costs nothing.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from .backends import Backend, Request, Result
from .backends.schema import paper_schema
from .errors import InputError
from .prompts import PromptSet, build_messages
from .records import Failure, Paper, Score, Usage
from .store import Store


@dataclass
class ScoreOptions:
    papers_per_request: int = 1
    abstract_tokens: int = 400
    comment_chars: int = 300
    score_mode: str = "greedy"        # or "expected": also read the score-value probabilities
    batch_size: int = 64              # requests per backend call; lines are written after each call
    hardened: bool = True             # paper text inside <paper> delimiters, marked as data
    layout: str = "seed"              # or "instructions-first" (see ranker.prompts.build_messages)
    novelty_context: int = 0          # K earlier related papers (day, title) shown inside each paper's block

    @classmethod
    def from_config(cls, sc) -> "ScoreOptions":
        """From a config's [scoring] section."""
        return cls(papers_per_request=sc.papers_per_request, abstract_tokens=sc.abstract_tokens,
                   comment_chars=sc.comment_chars, score_mode=sc.score_mode, batch_size=sc.batch_size,
                   layout=sc.prompt_layout, novelty_context=sc.novelty_context)

    def prompt_options(self) -> dict:
        """What changes the text the model sees (and so the prompt hash)."""
        opts = {"papers_per_request": self.papers_per_request, "abstract_tokens": self.abstract_tokens,
                "comment_chars": self.comment_chars, "hardened": self.hardened}
        if self.layout != "seed":          # the seed layout keeps the hashes scores were stored under
            opts["layout"] = self.layout
        if self.novelty_context > 0:       # likewise: scores with a novelty context are stored apart
            opts["novelty_context"] = self.novelty_context
        return opts

    @property
    def max_tokens(self) -> int:
        # ARXIVID + COMMENT + two integers with JSON punctuation, per paper; comments run ~4 chars a token
        return self.papers_per_request * (self.comment_chars // 2 + 64)


@dataclass
class ScoreRun:
    model: str
    prompt_hash: str
    scores: dict[str, Score] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    reused: int = 0
    scored: int = 0
    retried: int = 0
    seconds: float = 0.0
    engine: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- validation
def _check_one(obj, expected_id: str, comment_chars: int) -> Score:
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    missing = {"ARXIVID", "COMMENT", "RELEVANCE", "NOVELTY"} - obj.keys()
    if missing:
        raise ValueError(f"missing {', '.join(sorted(missing))}")
    aid = str(obj["ARXIVID"]).strip()
    if aid.split("v")[0] != expected_id and aid != expected_id:
        raise ValueError(f"ARXIVID {aid!r} is not {expected_id!r}")
    vals = {}
    for k in ("RELEVANCE", "NOVELTY"):
        v = obj[k]
        if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 10:
            raise ValueError(f"{k} {v!r} is not an integer in 1..10")
        vals[k] = v
    comment = obj["COMMENT"]
    if not isinstance(comment, str):
        raise ValueError("COMMENT is not a string")
    return Score(arxiv_id=expected_id, relevance=vals["RELEVANCE"], novelty=vals["NOVELTY"],
                 comment=" ".join(comment.split())[:comment_chars])


def parse_result(result: Result, ids: list[str], comment_chars: int) -> dict[str, Score]:
    """Validate a backend's answer for the papers `ids`; raises ValueError saying what is wrong."""
    if result.error:
        raise ValueError(result.error)
    if result.finish_reason == "length":
        raise ValueError("generation was cut off (finish_reason=length)")
    if result.text is None:
        raise ValueError("no output")
    try:
        data = json.loads(result.text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg} at char {e.pos})") from None
    items = data["papers"] if len(ids) > 1 and isinstance(data, dict) and "papers" in data else [data]
    if len(items) != len(ids):
        raise ValueError(f"{len(items)} answers for {len(ids)} papers")
    out = {}
    for obj, pid in zip(items, ids):
        out[pid] = _check_one(obj, pid, comment_chars)
    if len(ids) == 1 and result.score_probs:
        s = out[ids[0]]
        s.expected_relevance = _expectation(result.score_probs.get("RELEVANCE"))
        s.expected_novelty = _expectation(result.score_probs.get("NOVELTY"))
    share = max(1, len(ids))
    for s in out.values():
        s.prompt_tokens = result.usage.prompt_tokens // share
        s.completion_tokens = result.usage.completion_tokens // share
    return out


def _expectation(probs: dict[int, float] | None) -> float | None:
    if not probs:
        return None
    total = sum(probs.values())
    if total <= 0:
        return None
    return round(sum(int(v) * p for v, p in probs.items()) / total, 4)


# --------------------------------------------------------------------------- the run
def write_jsonl_line(fh, score: Score) -> None:
    fh.write(json.dumps(score.to_jsonl(), ensure_ascii=False) + "\n")
    fh.flush()


def score_papers(papers: Iterable[Paper], backend: Backend, prompts: PromptSet, store: Store,
                 out_path: str | Path | None = None, *, options: ScoreOptions | None = None,
                 run_id: int | None = None, progress: Callable[[int, int], None] | None = None,
                 related: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> ScoreRun:
    """Score every paper once. Already-stored scores (same model and prompt hash) are reused; new ones are
    stored and appended to `out_path` as they complete. A paper whose answer fails validation is retried
    once, then recorded as a failure; nothing is silently dropped.

    related: with options.novelty_context > 0, paper id -> its earlier related papers as (day, title)
    (ranker.index.novelty_context computes them); required then, so a prompt hash never mixes prompts."""
    opt = options or ScoreOptions()
    if opt.novelty_context > 0 and related is None:
        raise InputError("a novelty context was asked for but no earlier related papers were given",
                         where="novelty_context")
    papers = list({p.id: p for p in papers}.values())
    phash = prompts.hash(**opt.prompt_options())
    model = backend.model_name
    run = ScoreRun(model=model, prompt_hash=phash)
    t0 = time.perf_counter()
    want_probs = opt.score_mode == "expected"

    stored = store.get_scores([p.id for p in papers], model, phash)
    if want_probs:   # a greedy-mode score lacks the expectation: score it again
        stored = {k: s for k, s in stored.items() if s.expected_relevance is not None}
    run.scores.update(stored)
    run.reused = len(stored)
    pending = [p for p in papers if p.id not in stored]

    fh = None
    if out_path is not None:
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(out_path, "w", encoding="utf-8")
    try:
        if fh:
            for p in papers:
                if p.id in stored:
                    write_jsonl_line(fh, stored[p.id])
        done = len(stored)
        if progress:
            progress(done, len(papers))

        groups = [pending[i:i + opt.papers_per_request] for i in range(0, len(pending), opt.papers_per_request)]
        for b in range(0, len(groups), opt.batch_size):
            batch = groups[b:b + opt.batch_size]
            failed = _run_batch(batch, backend, prompts, opt, want_probs, run, store, fh, run_id, final=False,
                                related=related)
            if failed:
                run.retried += sum(len(g) for g in failed)
                _run_batch(failed, backend, prompts, opt, want_probs, run, store, fh, run_id, final=True,
                           related=related)
            done += sum(len(g) for g in batch)
            if progress:
                progress(done, len(papers))
    finally:
        if fh:
            fh.close()
        run.seconds = time.perf_counter() - t0
        run.engine = backend.stats()
    return run


def _run_batch(groups: list[list[Paper]], backend: Backend, prompts: PromptSet, opt: ScoreOptions,
               want_probs: bool, run: ScoreRun, store: Store, fh, run_id: int | None,
               final: bool, related: Mapping[str, Sequence[tuple[str, str]]] | None = None) -> list[list[Paper]]:
    """Score one batch of request groups; returns the groups to retry (first pass) or records failures."""
    requests = [Request(key=",".join(p.id for p in g),
                        messages=build_messages(prompts, g, abstract_tokens=opt.abstract_tokens,
                                                hardened=opt.hardened, layout=opt.layout, related=related),
                        schema=paper_schema([p.id for p in g], opt.comment_chars),
                        max_tokens=opt.max_tokens) for g in groups]
    results = backend.generate(requests, score_probs=want_probs)
    if len(results) != len(requests):
        raise RuntimeError(f"backend {backend.name} returned {len(results)} results for {len(requests)} requests")
    retry: list[list[Paper]] = []
    for group, res in zip(groups, results):
        run.usage.add(res.usage)
        ids = [p.id for p in group]
        try:
            scores = parse_result(res, ids, opt.comment_chars)
        except ValueError as e:
            if not final:
                retry.append(group)
                continue
            for pid in ids:
                f = Failure(arxiv_id=pid, reason=str(e), raw=res.text or "")
                store.put_failure(f, run.model, run.prompt_hash, run_id)
                run.failures.append(f)
            continue
        for pid in ids:
            store.put_score(scores[pid], run.model, run.prompt_hash, run_id)
            run.scores[pid] = scores[pid]
            run.scored += 1
            if fh:
                write_jsonl_line(fh, scores[pid])
    return retry
