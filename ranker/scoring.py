"""Papers -> requests -> backend -> validated Scores -> the store (and the seed's JSONL lines).

One paper per request by default: every request of a day shares the same prefix (system prompt, topics,
criteria), so vLLM's prefix cache computes it once; a paper's text can only ever move its own score.
Scores are stored by (paper, model, prompt hash) as they complete, so an interrupted run resumes where it
stopped and a rerun costs nothing.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping, Sequence

from .backends import Backend, Request, Result
from .backends.schema import check_answer, paper_schema
from .errors import ConfigError, InputError
from .io import Progress
from .prompts import PromptSet, build_messages
from .records import Failure, Paper, Score, Usage
from .settings import ScoringSettings
from .store import Store


@dataclass
class ScoreOptions:
    papers_per_request: int = 1
    abstract_tokens: int = 400
    comment_chars: int = 300
    score_mode: str = "greedy"        # or "expected": also read the score-value probabilities
    batch_size: int = 64              # requests per backend call; scores are stored after each call
    hardened: bool = True             # paper text inside <paper> delimiters, marked as data
    layout: str = "seed"              # or "instructions-first" (see ranker.prompts.build_messages)
    novelty_context: int = 0          # K earlier related papers (day, title) shown inside each paper's block

    @classmethod
    def from_settings(cls, scoring: ScoringSettings) -> "ScoreOptions":
        """From the [scoring] settings."""
        return cls(papers_per_request=scoring.papers_per_request, abstract_tokens=scoring.abstract_tokens,
                   comment_chars=scoring.comment_chars, score_mode=scoring.score_mode,
                   batch_size=scoring.batch_size, layout=scoring.prompt_layout,
                   novelty_context=scoring.novelty_context)

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
    papers: list[Paper] = field(default_factory=list)      # what was asked, in order (each id once)
    scores: dict[str, Score] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    reused: int = 0
    scored: int = 0
    retried: int = 0
    seconds: float = 0.0
    engine: dict = field(default_factory=dict)
    backend: str = ""                   # the backend's name (steps.score_day)
    load_seconds: float = 0.0           # opening the backend (steps.score_day)

    @property
    def status(self) -> str:
        """ok, or partial when some papers could not be scored."""
        return "partial" if self.failures else "ok"

    def lines(self) -> Iterator[str]:
        """The seed's JSONL of this run, in the papers' order."""
        return score_lines(self.papers, self.scores)


# --------------------------------------------------------------------------- validation
def parse_result(result: Result, ids: list[str], comment_chars: int) -> dict[str, Score]:
    """A backend's answer for the papers `ids` as Scores (validated by backends.schema.check_answer, the one
    validator; a COMMENT over comment_chars is cut, not refused); raises ValueError saying what is wrong."""
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
    out = {obj["ARXIVID"]: Score(arxiv_id=obj["ARXIVID"], relevance=obj["RELEVANCE"], novelty=obj["NOVELTY"],
                                 comment=obj["COMMENT"])
           for obj in check_answer(data, ids, comment_chars, strict=False)}
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
def score_lines(papers: Iterable[Paper], scores: dict[str, Score]) -> Iterator[str]:
    """The seed's JSONL, one line per scored paper, in the papers' order."""
    for p in papers:
        s = scores.get(p.id)
        if s is not None:
            yield json.dumps(s.to_jsonl(), ensure_ascii=False) + "\n"


# paper id -> (day, title) of its earlier related papers: the novelty context (ranker.index.novelty_context)
Related = Mapping[str, Sequence[tuple[str, str]]]


def build_requests(groups: list[list[Paper]], prompts: PromptSet, options: ScoreOptions,
                   related: Related | None = None) -> list[Request]:
    """One request per group of papers: the messages, the JSON schema its answer must follow and its token
    budget, exactly as scoring sends them (benchmarks and evaluations build theirs here too)."""
    return [Request(key=",".join(p.id for p in g),
                    messages=build_messages(prompts, g, abstract_tokens=options.abstract_tokens,
                                            hardened=options.hardened, layout=options.layout, related=related),
                    schema=paper_schema([p.id for p in g], options.comment_chars),
                    max_tokens=options.max_tokens) for g in groups]


def score_papers(papers: Iterable[Paper], backend: Backend, prompts: PromptSet, store: Store, *,
                 options: ScoreOptions | None = None, run_id: int | None = None,
                 progress: Progress | None = None, related: Related | None = None) -> ScoreRun:
    """Score every paper once. Already-stored scores (same model and prompt hash) are reused; new ones are
    stored as each batch completes, so an interrupted run resumes from the store. A paper whose answer fails
    validation is retried once, then recorded as a failure; nothing is silently dropped.

    related: with options.novelty_context > 0, each paper's earlier related papers (required then, so one
    prompt hash never covers two kinds of prompt)."""
    opt = options or ScoreOptions()
    if opt.novelty_context > 0 and related is None:
        raise InputError("a novelty context was asked for but no earlier related papers were given",
                         key="scoring.novelty_context")
    want_probs = opt.score_mode == "expected"
    if want_probs and not backend.supports_score_probs:
        raise ConfigError(f"the {backend.name} backend cannot report score probabilities; use the greedy "
                          "score mode", key="scoring.score_mode")
    papers = list({p.id: p for p in papers}.values())
    phash = prompts.hash(**opt.prompt_options())
    run = ScoreRun(model=backend.model_name, prompt_hash=phash, papers=papers)
    t0 = time.perf_counter()

    stored = store.get_scores([p.id for p in papers], run.model, phash)
    if want_probs:   # a greedy-mode score lacks the expectation: score it again
        stored = {k: s for k, s in stored.items() if s.expected_relevance is not None}
    run.scores.update(stored)
    run.reused = len(stored)
    pending = [p for p in papers if p.id not in stored]
    try:
        done = len(stored)
        if progress:
            progress("scoring", done, len(papers))
        groups = [pending[i:i + opt.papers_per_request] for i in range(0, len(pending), opt.papers_per_request)]
        for b in range(0, len(groups), opt.batch_size):
            batch = groups[b:b + opt.batch_size]
            failed = _run_batch(batch, backend, prompts, opt, want_probs, run, store, run_id, final=False,
                                related=related)
            if failed:
                run.retried += sum(len(g) for g in failed)
                _run_batch(failed, backend, prompts, opt, want_probs, run, store, run_id, final=True,
                           related=related)
            done += sum(len(g) for g in batch)
            if progress:
                progress("scoring", done, len(papers))
    finally:
        run.seconds = time.perf_counter() - t0
        run.engine = backend.stats()
    return run


def _run_batch(groups: list[list[Paper]], backend: Backend, prompts: PromptSet, opt: ScoreOptions,
               want_probs: bool, run: ScoreRun, store: Store, run_id: int | None,
               final: bool, related: Related | None = None) -> list[list[Paper]]:
    """Score one batch of request groups; returns the groups to retry (first pass) or records failures."""
    requests = build_requests(groups, prompts, opt, related if opt.novelty_context > 0 else None)
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
    return retry
