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
from typing import Iterable, Iterator

from .backends import Backend, Request, Result
from .backends.schema import check_answer, paper_schema
from .errors import ConfigError
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

    @classmethod
    def from_settings(cls, scoring: ScoringSettings) -> "ScoreOptions":
        """From the [scoring] settings."""
        return cls(papers_per_request=scoring.papers_per_request, abstract_tokens=scoring.abstract_tokens,
                   comment_chars=scoring.comment_chars, score_mode=scoring.score_mode,
                   batch_size=scoring.batch_size, layout=scoring.prompt_layout)

    def prompt_options(self) -> dict:
        """What changes the text the model sees (and so the prompt hash)."""
        opts = {"papers_per_request": self.papers_per_request, "abstract_tokens": self.abstract_tokens,
                "comment_chars": self.comment_chars, "hardened": self.hardened}
        if self.layout != "seed":          # the seed layout keeps the hashes scores were stored under
            opts["layout"] = self.layout
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


def build_requests(groups: list[list[Paper]], prompts: PromptSet, options: ScoreOptions) -> list[Request]:
    """One request per group of papers: the messages, the JSON schema its answer must follow and its token
    budget, exactly as scoring sends them (benchmarks and evaluations build theirs here too)."""
    return [Request(key=",".join(p.id for p in g),
                    messages=build_messages(prompts, g, abstract_tokens=options.abstract_tokens,
                                            hardened=options.hardened, layout=options.layout),
                    schema=paper_schema([p.id for p in g], options.comment_chars),
                    max_tokens=options.max_tokens) for g in groups]


def check_score_mode(backend: Backend, options: ScoreOptions) -> bool:
    """Whether the score-value probabilities are asked for ("expected" mode); a ConfigError when the backend
    cannot report them."""
    want_probs = options.score_mode == "expected"
    if want_probs and not backend.supports_score_probs:
        raise ConfigError(f"the {backend.name} backend cannot report score probabilities; use the greedy "
                          "score mode", key="scoring.score_mode")
    return want_probs


def score_papers(papers: Iterable[Paper], backend: Backend, prompts: PromptSet, store: Store, *,
                 options: ScoreOptions | None = None, run_id: int | None = None,
                 progress: Progress | None = None) -> ScoreRun:
    """Score every paper once. Already-stored scores (same model and prompt hash) are reused; new ones are
    stored as each batch completes, so an interrupted run resumes from the store. A paper whose answer fails
    validation is retried once, then recorded as a failure; nothing is silently dropped."""
    opt = options or ScoreOptions()
    want_probs = check_score_mode(backend, opt)
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
        per_call = opt.batch_size * opt.papers_per_request
        for b in range(0, len(pending), per_call):
            batch = pending[b:b + per_call]
            res = score_batch(batch, backend, prompts, opt)
            store.put_scores(res.scores.values(), run.model, phash, run_id)
            for f in res.failures.values():
                store.put_failure(f, run.model, phash, run_id)
            run.scores.update(res.scores)
            run.failures += res.failures.values()
            run.scored += len(res.scores)
            run.retried += res.retried
            run.usage.add(res.usage)
            done += len(batch)
            if progress:
                progress("scoring", done, len(papers))
    finally:
        run.seconds = time.perf_counter() - t0
        run.engine = backend.stats()
    return run


@dataclass
class BatchScores:
    """What score_batch gives back for one batch: a Score or a Failure for every paper."""
    scores: dict[str, Score] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    retried: int = 0


def score_batch(papers: list[Paper], backend: Backend, prompts: PromptSet,
                options: ScoreOptions | None = None) -> BatchScores:
    """Score one batch of papers (one backend call, and one more for the answers that failed validation),
    with no store and no file: score_papers stores what it gives back, the backfill's workers write it to
    their shards. A paper whose answer fails twice is a Failure; nothing is silently dropped."""
    opt = options or ScoreOptions()
    want_probs = check_score_mode(backend, opt)
    out = BatchScores()
    groups = [papers[i:i + opt.papers_per_request] for i in range(0, len(papers), opt.papers_per_request)]
    for final in (False, True):
        if not groups:
            break
        results = backend.generate(build_requests(groups, prompts, opt), score_probs=want_probs)
        if len(results) != len(groups):
            raise RuntimeError(f"backend {backend.name} returned {len(results)} results for {len(groups)} "
                               "requests")
        retry: list[list[Paper]] = []
        for group, res in zip(groups, results):
            out.usage.add(res.usage)
            ids = [p.id for p in group]
            try:
                out.scores.update(parse_result(res, ids, opt.comment_chars))
            except ValueError as e:
                if not final:
                    retry.append(group)
                    continue
                for pid in ids:
                    out.failures[pid] = Failure(arxiv_id=pid, reason=str(e), raw=res.text or "")
        out.retried += sum(len(g) for g in retry)
        groups = retry
    return out
