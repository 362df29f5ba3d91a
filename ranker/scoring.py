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
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from .backends import Backend, Request, Result
from .backends.base import GenerateInterrupted
from .backends.probs import expected_value
from .backends.schema import COMMENT_CHARS, check_answer, load_answer, paper_schema
from .errors import ConfigError, InputError, checkpoint, during
from .io import Progress, counted, redact, same_paper_id
from .prompts import MAX_AUTHORS, PromptSet, build_messages
from .records import Failure, Paper, Score, Usage
from .settings import ScoringSettings
from .store import Store


NO_THINKING = {"enable_thinking": False}


@dataclass
class ScoreOptions:
    """How papers are put to the model (ScoreOptions.from_settings: the [scoring] settings): papers per
    request, abstract and author limits, score mode, batch size, prompt layout, novelty context."""
    papers_per_request: int = 1
    abstract_tokens: int = 400
    max_authors: int = MAX_AUTHORS    # author names a paper's block shows at most (ranker.prompts.author_list)
    comment_chars: int = COMMENT_CHARS    # asked for in the prompt, enforced by the schema (see schema.py)
    score_mode: str = "greedy"        # or "expected": also read the score-value probabilities
    batch_size: int = 64              # requests per backend call; scores are stored after each call
    hardened: bool = True             # paper text inside <paper> delimiters, marked as data
    layout: str = "seed"              # or "instructions-first" (see ranker.prompts.build_messages)
    novelty_context: int = 0          # K earlier related papers (day, title) shown inside each paper's block
    # passed to the model's chat template: a reasoning template (Qwen3 ...) thinks by default, spending the
    # token budget on a hidden monologue before the JSON; off unless asked
    chat_template_kwargs: dict = field(default_factory=lambda: dict(NO_THINKING))

    @classmethod
    def from_settings(cls, scoring: ScoringSettings) -> "ScoreOptions":
        """From the [scoring] settings."""
        return cls(papers_per_request=scoring.papers_per_request, abstract_tokens=scoring.abstract_tokens,
                   max_authors=scoring.max_authors, comment_chars=scoring.comment_chars,
                   score_mode=scoring.score_mode, batch_size=scoring.batch_size, layout=scoring.prompt_layout,
                   novelty_context=scoring.novelty_context,
                   chat_template_kwargs=dict(scoring.chat_template_kwargs))

    def prompt_hash(self, prompts) -> str:
        """The hash scores under `prompts` (a PromptSet) and these options are stored under and looked up by:
        one formula for every place that stores or asks for scores (a run, a backfill, eval, the early model
        check)."""
        return prompts.hash(**self.prompt_options())

    def prompt_options(self) -> dict:
        """What changes the text the model sees (and so the prompt hash)."""
        opts = {"papers_per_request": self.papers_per_request, "abstract_tokens": self.abstract_tokens,
                "comment_chars": self.comment_chars, "hardened": self.hardened}
        if self.layout != "seed":          # the seed layout keeps the hashes scores were stored under
            opts["layout"] = self.layout
        if self.novelty_context > 0:       # likewise: scores with a novelty context are stored apart
            opts["novelty_context"] = self.novelty_context
        # an author cap other than the default is stored apart too. The hash is of the prompt set and these
        # options, never of a paper's text, so the default cap (which changed the blocks of the few papers with
        # more authors) left every stored score where it was: a score is looked up by (paper, model, prompt
        # hash), and the text hash stored beside it (Paper.scored_text) is of the paper's full author list,
        # which the cap does not change.
        if self.max_authors != MAX_AUTHORS:
            opts["max_authors"] = self.max_authors
        if self.chat_template_kwargs != NO_THINKING:
            opts["chat_template_kwargs"] = dict(sorted(self.chat_template_kwargs.items()))
        return opts

    @property
    def max_tokens(self) -> int:
        # ARXIVID + COMMENT + two integers with JSON punctuation, per paper; comments run ~4 chars a token
        return self.papers_per_request * (self.comment_chars // 2 + 64)


@dataclass
class ScoreRun:
    """What scoring a list of papers gives (score_papers, steps.score_day): the validated Score of each paper
    by id, the Failures, the counts (`reused` from the store, `scored` by the model, `retried`), this run's
    token usage and timings; `status`: "ok", "partial" when some papers failed, "failed" when papers were due
    and none has a score (a run whose scores were all reused is ok)."""
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
    pending: list[Paper] = field(default_factory=list)    # not in the store yet (stored_run), to score

    @property
    def scores_usage(self) -> Usage:
        """What the run's scores cost when the model wrote them, reused ones included (the store keeps each
        score's tokens): the same for a run and its rerun, unlike `usage`, this run's own spend."""
        u = Usage()
        for p in self.papers:
            s = self.scores.get(p.id)
            if s is not None:
                u.add(Usage(prompt_tokens=s.prompt_tokens, completion_tokens=s.completion_tokens,
                            cached_prompt_tokens=s.cached_prompt_tokens))
        return u

    @property
    def status(self) -> str:
        """ok; partial when some papers could not be scored; failed when papers were due and none has a
        score."""
        if self.papers and not self.scores:
            return "failed"
        return "partial" if self.failures else "ok"

    def failure_summary(self) -> str:
        """'3 of 40 papers could not be scored (first: 2506.00001: not JSON ...)', or '' when none failed."""
        if not self.failures:
            return ""
        first = self.failures[0]
        n = len(self.failures)
        return (f"{n} of {counted(len(self.papers), 'paper')} could not be scored "
                f"(first: {first.arxiv_id}: {first.reason})")

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
        data = load_answer(result.text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not JSON ({e.msg} at char {e.pos})") from None
    out = {obj["ARXIVID"]: Score(arxiv_id=obj["ARXIVID"], relevance=obj["RELEVANCE"], novelty=obj["NOVELTY"],
                                 comment=obj["COMMENT"])
           for obj in check_answer(data, ids, comment_chars, strict=False)}
    if result.score_probs:
        # {field: dist} for a one-paper answer; {"<id as answered>/<field>": dist} for several (backends.probs)
        for pid, sc in out.items():
            if len(ids) == 1:
                mine = result.score_probs
            else:
                mine = {k.rsplit("/", 1)[1]: v for k, v in result.score_probs.items()
                        if "/" in k and same_paper_id(k.rsplit("/", 1)[0], pid)}
            sc.expected_relevance = expected_value(mine.get("RELEVANCE"))
            sc.expected_novelty = expected_value(mine.get("NOVELTY"))
    u = result.usage
    for n, s in enumerate(out.values()):       # each paper a share; the shares add up to the request's tokens
        s.prompt_tokens = _share(u.prompt_tokens, len(out), n)
        s.completion_tokens = _share(u.completion_tokens, len(out), n)
        s.cached_prompt_tokens = _share(u.cached_prompt_tokens, len(out), n)
    return out


def _share(total: int, parts: int, n: int) -> int:
    """The n-th of `parts` whole shares of `total` (the first total % parts shares one more)."""
    q, r = divmod(total, parts)
    return q + (1 if n < r else 0)


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
                                            hardened=options.hardened, layout=options.layout,
                                            comment_chars=options.comment_chars, related=related,
                                            max_authors=options.max_authors),
                    schema=paper_schema([p.id for p in g], options.comment_chars),
                    max_tokens=options.max_tokens,
                    chat_template_kwargs=dict(options.chat_template_kwargs) or None) for g in groups]


def stored_run(papers: Iterable[Paper], model_name: str, prompts: PromptSet, store: Store, *,
               options: ScoreOptions | None = None) -> ScoreRun:
    """The run as far as the store already has it: each paper once, in order; the stored scores of this
    model and prompt (hash) reused; `pending` the papers still to score. Needs no backend, so a day whose
    papers are all scored loads no model."""
    opt = options or ScoreOptions()
    papers = list({p.id: p for p in papers}.values())
    phash = opt.prompt_hash(prompts)
    run = ScoreRun(model=model_name, prompt_hash=phash, papers=papers)
    # a score of other text (a replacement rewrote the abstract) is not reused: the paper is scored again
    stored = store.get_scores([p.id for p in papers], model_name, phash,
                              texts={p.id: p.scored_text for p in papers})
    if opt.score_mode == "expected":   # a greedy-mode score lacks the expectation: score it again
        stored = {k: s for k, s in stored.items() if s.expected_relevance is not None}
    run.scores.update(stored)
    run.reused = len(stored)
    run.pending = [p for p in papers if p.id not in stored]
    return run


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
                 progress: Progress | None = None, related: Related | None = None) -> ScoreRun:
    """Score every paper once. Already-stored scores (same model and prompt hash) are reused; new ones are
    stored as each batch completes, so an interrupted run resumes from the store. A paper whose answer fails
    validation is retried once, then recorded as a failure; nothing is silently dropped. `progress` hears
    ("scoring", done, total) as the backend finishes requests, not only between batches. Ctrl-C stops it with
    the interrupt's `run` the ScoreRun as far as it got (its usage: what it spent, the answers that came back
    before the Ctrl-C included).

    related: with options.novelty_context > 0, each paper's earlier related papers (required then, so one
    prompt hash never covers two kinds of prompt)."""
    opt = options or ScoreOptions()
    _check_related(opt, related)
    check_score_mode(backend, opt)          # a wrong mode is an error even when every score is stored
    run = stored_run(papers, backend.model_name, prompts, store, options=opt)
    pending, run.pending = run.pending, []
    total = len(run.papers)
    t0 = time.perf_counter()
    try:
        with during("scoring", scored=lambda: len(run.scores), due=lambda: total, reused=lambda: run.reused):
            _score_pending(pending, backend, prompts, opt, run, store, run_id, progress, total, related)
    except KeyboardInterrupt as e:
        e.run = run              # as far as it got, its spend included (as steps.score_day's BackendError)
        raise
    finally:
        run.seconds = time.perf_counter() - t0
        run.engine = backend.stats()
    return run


def _score_pending(pending: list[Paper], backend: Backend, prompts: PromptSet, opt: ScoreOptions,
                   run: ScoreRun, store: Store, run_id: int | None, progress: Progress | None, total: int,
                   related: "Related | None" = None) -> None:
    """Score the papers without a stored score, batch by batch, each batch stored as it completes."""
    done = run.reused
    if progress:
        progress("scoring", done, total)
    per_call = opt.batch_size * opt.papers_per_request
    for b in range(0, len(pending), per_call):
        checkpoint()                       # Ctrl-C, even one the engine swallowed, stops before the next batch
        batch = pending[b:b + per_call]
        batch_end = done + len(batch)
        sizes = [min(opt.papers_per_request, len(batch) - i) for i in range(0, len(batch), opt.papers_per_request)]
        try:
            res = score_batch(batch, backend, prompts, opt, related=related,
                              on_done=_ticker(progress, done, sizes, total),
                              on_scores=lambda scores: _keep(scores, batch, run, store, run_id))
        except BatchInterrupted as e:
            run.usage.add(e.batch.usage)   # the answers that came back before Ctrl-C were paid for (and kept)
            raise
        for f in res.failures.values():
            store.put_failure(f, run.model, run.prompt_hash, run_id)
        run.failures += res.failures.values()
        run.retried += res.retried
        run.usage.add(res.usage)
        done = batch_end
        if progress:
            progress("scoring", done, total)


def _keep(scores: dict[str, Score], batch: list[Paper], run: ScoreRun, store: Store, run_id: int | None) -> None:
    """Store a call's validated scores (with the text each judged) and count them in the run."""
    store.put_scores(scores.values(), run.model, run.prompt_hash, run_id,
                     texts={p.id: p.scored_text for p in batch if p.id in scores})
    run.scores.update(scores)
    run.scored += len(scores)


def _ticker(progress: Progress | None, start: int, sizes: list[int], total: int):
    """A backend's completion callback (on_done(n, which): n requests finished) as ("scoring", done, total)
    progress, `sizes` the papers of each request of the call. A request the backend names counts its own papers
    (a short last request is not a full one), once (a backend that repeats a request after a failure may tell
    it twice); one it only counts (vLLM) counts as the smallest not yet done, which has the least to write: the
    count never runs ahead of the papers answered, nor past the batch's end."""
    if progress is None:
        return None
    named: set[int] = set()
    named_papers = unnamed = 0

    def tick(n: int = 1, which: Sequence[int] | None = None) -> None:
        nonlocal named_papers, unnamed
        if which is None:
            unnamed += n
        for i in which or ():
            if i not in named and 0 <= i < len(sizes):
                named.add(i)
                named_papers += sizes[i]
        done = named_papers
        if unnamed:
            done += sum(sorted(s for i, s in enumerate(sizes) if i not in named)[:unnamed])
        progress("scoring", start + done, total)
    return tick


@dataclass
class BatchScores:
    """What score_batch gives back for one batch: a Score or a Failure for every paper."""
    scores: dict[str, Score] = field(default_factory=dict)
    failures: dict[str, Failure] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    retried: int = 0


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C inside score_batch, with what the batch had by then (`batch`): the scores of the answers that came
    back before it (on_scores heard them too), the failures already final and the tokens spent. A paper with
    neither has no answer: a rerun asks for it again."""

    def __init__(self, batch: BatchScores):
        super().__init__()
        self.batch = batch


def score_batch(papers: list[Paper], backend: Backend, prompts: PromptSet, options: ScoreOptions | None = None,
                *, on_done: Callable[..., None] | None = None, related: Related | None = None,
                on_scores: Callable[[dict[str, Score]], None] | None = None) -> BatchScores:
    """Score one batch of papers (one backend call, and one more for the answers that failed validation),
    with no store and no file: score_papers stores what it gives back, the backfill's workers write it to
    their shards. A paper whose answer fails twice is a Failure; nothing is silently dropped. The retry is
    not the same greedy request again (it would fail the same way): each paper of a failed request is asked
    alone, and one whose answer was cut off gets twice the room; a one-paper request the backend answered
    with an error and no text, or whose answer the model's context cut off (Result.context_full: a larger budget
    would not help), is a Failure at once. `on_done(n, which)` is handed to the first call's
    backend.generate (n requests finished: Backend.generate), for a progress bar; the retry call is not
    counted again. Its requests are the papers options.papers_per_request at a time, in order.
    `on_scores(scores)` hears each call's validated scores as soon as they are read, before the retry call, so
    a caller that stores them (score_papers) keeps them should the retry be interrupted or fail. Ctrl-C is
    BatchInterrupted, holding what the batch had by then (a caller that writes no store, the backfill, keeps it).
    `related`: as for score_papers."""
    opt = options or ScoreOptions()
    _check_related(opt, related)
    want_probs = check_score_mode(backend, opt)
    out = BatchScores()
    groups = [papers[i:i + opt.papers_per_request] for i in range(0, len(papers), opt.papers_per_request)]
    cut_off: set[str] = set()               # papers whose first answer ran out of tokens
    try:
        for final in (False, True):
            if not groups:
                break
            requests = build_requests(groups, prompts, opt, related if opt.novelty_context > 0 else None)
            for req, group in zip(requests, groups):
                if group[0].id in cut_off:
                    req.max_tokens *= 2
            try:
                if on_done is not None and not final:
                    results = backend.generate(requests, score_probs=want_probs, on_done=on_done)
                else:
                    results = backend.generate(requests, score_probs=want_probs)
            except GenerateInterrupted as e:
                # Ctrl-C: the answers that came back before it are kept (paid for, on a metered API), then it stops
                kept: dict[str, Score] = {}
                for group, res in zip(groups, e.results):
                    if res is not None:
                        out.usage.add(res.usage)          # spent, whether or not the answer is kept
                    if res is not None and res.ok:
                        try:
                            kept.update(parse_result(res, [p.id for p in group], opt.comment_chars))
                        except ValueError:
                            pass
                if kept:
                    out.scores.update(kept)
                    if on_scores is not None:
                        on_scores(kept)
                raise
            if len(results) != len(groups):
                raise RuntimeError(f"backend {backend.name} returned {len(results)} results for {len(groups)} "
                                   "requests")
            retry: list[list[Paper]] = []
            new: dict[str, Score] = {}
            for group, res in zip(groups, results):
                out.usage.add(res.usage)
                ids = [p.id for p in group]
                try:
                    new.update(parse_result(res, ids, opt.comment_chars))
                except ValueError as e:
                    # no answer at all from a one-paper request: the backend's own error, after its own retries
                    # (a server down, a prompt too long); the same request again would fail the same way. Nor
                    # does one cut off by the context: its prompt leaves no more room, whatever the budget.
                    # Several papers cut off so are asked alone, each with a shorter prompt.
                    if not final and (len(group) > 1 or (res.text is not None and not res.context_full)):
                        retry += [[p] for p in group]
                        if res.finish_reason == "length" and not res.context_full:
                            cut_off.update(ids)
                        continue
                    for pid in ids:
                        out.failures[pid] = Failure(arxiv_id=pid, reason=redact(e), raw=res.text or "")
            out.scores.update(new)
            if on_scores is not None and new:
                on_scores(new)
            out.retried += sum(len(g) for g in retry)
            groups = retry
    except KeyboardInterrupt as e:
        raise BatchInterrupted(out) from e
    return out


def _check_related(opt: ScoreOptions, related: Related | None) -> None:
    if opt.novelty_context > 0 and related is None:
        raise InputError("a novelty context was asked for but no earlier related papers were given",
                         key="scoring.novelty_context")
