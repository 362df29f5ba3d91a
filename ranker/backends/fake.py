"""A deterministic backend with no model, for testing the orchestration around scoring.

Scores come from a hash of the paper id, so the same paper always gets the same answer. Failures can be
injected per request key (or per paper id for several-paper requests):

    FakeBackend("any", garbage={"2506.00001"}, length={"2506.00002"}, error={"2506.00003"},
                raise_for={"2506.00004"}, flaky={"2506.00005"}, wrong_id={"2506.00006"},
                context_full={"2506.00007"})

garbage   text that is not JSON            length    a cut-off answer, finish_reason "length"
error     text None, finish_reason "error"  raise_for generate() raises BackendError for the whole batch
flaky     garbage the first time a key is seen, a good answer afterwards (exercises the retry)
wrong_id  valid JSON with another paper's id (exercises the caller's validation)
context_full  a cut-off answer whose prompt left less room in the model's context than its budget, as an
          engine reports it (Result.context_full, and the reason)

die_once="/path/marker" kills the whole process (SIGKILL) inside a generate() call made while the marker file
does not exist, creating it first: a worker lost mid-batch, once (the backfill's retry and resume tests).
die_after=N lets N calls of this instance through before that.
interrupt_after=N: the call after N calls raises KeyboardInterrupt, as Ctrl-C in the middle of a run.

Its COMMENT is two sentences of ~150 characters, cut at the schema's maxLength as an engine cuts a bounded
string (mid-word).

delay     seconds each request takes (a slow engine: to watch progress, and for interrupt tests)
deaf      the delay swallows Ctrl-C, as some engines do while they start (for interrupt tests)
waiting   a file created once a request's delay has begun (inside it, so a Ctrl-C sent after the file is there
          meets the delay, deaf or not): when a test's signal reaches the engine, told rather than guessed
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from pydantic import Field

from ..errors import BackendError
from ..records import Usage
from .base import SCORE_FIELDS, Backend, BackendOptions, Request, Result, cut_by_context
from .schema import SCORE_MAX, SCORE_MIN, schema_ids


def fake_scores(arxiv_id: str) -> tuple[int, int]:
    h = hashlib.sha256(arxiv_id.encode("utf-8")).digest()
    span = SCORE_MAX - SCORE_MIN + 1
    return SCORE_MIN + h[0] % span, SCORE_MIN + h[1] % span


def fake_comment(arxiv_id: str) -> str:
    """The fake judgement of a paper: two whole sentences, 150-odd characters."""
    rel, nov = fake_scores(arxiv_id)
    return (f"A fake judgement of {arxiv_id}, written by a backend without a model for testing. "
            f"It gives relevance {rel} and novelty {nov} from a hash of the identifier.")


def _max_comment(schema: dict) -> int:
    props = schema.get("properties", {})
    if "papers" in props:
        props = props["papers"]["prefixItems"][0]["properties"]
    return int(props.get("COMMENT", {}).get("maxLength", 300))


class FakeOptions(BackendOptions):
    """[scoring.fake]: which requests (keys or paper ids) fail, and how"""
    garbage: set[str] = Field(set(), strict=False)
    length: set[str] = Field(set(), strict=False)
    error: set[str] = Field(set(), strict=False)
    raise_for: set[str] = Field(set(), strict=False)
    flaky: set[str] = Field(set(), strict=False)
    wrong_id: set[str] = Field(set(), strict=False)
    context_full: set[str] = Field(set(), strict=False)
    die_once: str | None = None              # a marker file: SIGKILL this process once (see the module doc)
    die_after: int = Field(0, ge=0)          # calls let through before that
    interrupt_after: int | None = Field(None, ge=0)   # calls let through before a KeyboardInterrupt
    delay: float = Field(0.0, ge=0, strict=False)   # seconds per request
    deaf: bool = False                       # the delay swallows Ctrl-C
    waiting: str | None = None               # a file created once a delay has begun (see the module doc)
    noise: bool = False                      # write to fds 1 and 2, log, print and start a child that prints,
                                             # as an engine and its worker processes do (terminal tests)


class FakeBackend(Backend):
    name = "fake"
    Options = FakeOptions
    supports_score_probs = True

    def __init__(self, model: str = "fake", options: Mapping[str, Any] | FakeOptions | None = None, *,
                 models_dir: Path | None = None, **kwargs):
        o = self.parse_options(options, **kwargs)
        self.model_name = self.store_name(model)
        self.garbage, self.length, self.error = o.garbage, o.length, o.error
        self.raise_for, self.flaky, self.wrong_id = o.raise_for, o.flaky, o.wrong_id
        self.context_full = o.context_full
        self.die_once, self.die_after, self.interrupt_after = o.die_once, o.die_after, o.interrupt_after
        self.noise = o.noise
        if o.noise:
            _noise("loading")
        self.chat_template_kwargs: list[dict | None] = []   # what each request asked of the template, for tests
        self.delay, self.deaf, self.waiting = o.delay, o.deaf, o.waiting
        self.calls: list[list[str]] = []          # the keys of every generate() call, for tests
        self._seen: set[str] = set()
        self._usage = Usage()
        self.closed = False

    def _hit(self, kind: set[str], req: Request, ids: list[str]) -> bool:
        return req.key in kind or any(i in kind for i in ids)

    def _answer(self, ids: list[str], schema: dict, wrong: bool) -> str:
        cap = _max_comment(schema)
        objs = []
        for i in ids:
            rel, nov = fake_scores(i)
            objs.append({"ARXIVID": (i + "x") if wrong else i,
                         "COMMENT": fake_comment(i)[:cap], "RELEVANCE": rel, "NOVELTY": nov})
        data = objs[0] if len(ids) == 1 else {"papers": objs}
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def store_name(cls, model: str, models_dir: Path | None = None) -> str:
        return f"fake:{model}"

    @classmethod
    def loading_name(cls, model: str, models_dir: Path | None = None) -> str:
        # no model is loaded: "loading smollm2-135m" (the default preset's name) said a real model was
        return f"the fake backend ({cls.store_name(model)})"

    def generate(self, requests: list[Request], *, score_probs: bool = False,
                 on_done: Callable[..., None] | None = None) -> list[Result]:
        self.calls.append([r.key for r in requests])
        if self.die_once and requests and len(self.calls) > self.die_after:
            try:
                fd = os.open(self.die_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        if self.interrupt_after is not None and len(self.calls) > self.interrupt_after:
            raise KeyboardInterrupt
        if self.noise:
            _noise("generating")
        for r in requests:
            if self._hit(self.raise_for, r, schema_ids(r.schema)):
                raise BackendError(f"injected failure for {r.key}")
        out = []
        for i, r in enumerate(requests):
            if self.delay:
                self._wait(self.delay)
            ids = schema_ids(r.schema)
            self.chat_template_kwargs.append(r.chat_template_kwargs)
            first_time = r.key not in self._seen
            self._seen.add(r.key)
            prompt = sum(len(m.get("content", "").split()) for m in r.messages)
            if self._hit(self.error, r, ids):
                out.append(Result(r.key, None, "error", error="injected error",
                                  usage=Usage(prompt_tokens=prompt)))
                continue
            text = self._answer(ids, r.schema, self._hit(self.wrong_id, r, ids))
            finish = "stop"
            if self._hit(self.garbage, r, ids) or (first_time and self._hit(self.flaky, r, ids)):
                text = "Sure! Here are my scores: RELEVANCE seven"
            elif self._hit(self.length, r, ids) or self._hit(self.context_full, r, ids):
                text, finish = text[: len(text) // 2], "length"
            usage = Usage(prompt_tokens=prompt, completion_tokens=max(1, len(text) // 4))
            self._usage.add(usage)
            probs = None
            if score_probs and finish == "stop" and text.startswith("{"):
                # as the engines' backends.probs gives them: by field for one paper, "<id>/<field>" for several
                probs = {}
                for pid in ids:
                    for f, v in zip(SCORE_FIELDS, fake_scores(pid)):
                        probs[f if len(ids) == 1 else f"{pid}/{f}"] = _peaked(v)
            res = Result(r.key, text, finish, usage=usage, score_probs=probs)
            if finish == "length" and self._hit(self.context_full, r, ids):
                # a context of the prompt and what was written: no room left, whatever the budget
                cut_by_context(res, usage.completion_tokens, prompt, prompt + usage.completion_tokens, "fake")
            out.append(res)
            if on_done is not None:
                on_done(1, [i])
        return out

    def _wait(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                if self.waiting:
                    Path(self.waiting).touch()
                time.sleep(max(0.0, end - time.monotonic()))
            except KeyboardInterrupt:
                if not self.deaf:
                    raise

    def stats(self) -> dict:
        return {"requests": sum(len(c) for c in self.calls), "prompt_tokens": self._usage.prompt_tokens,
                "completion_tokens": self._usage.completion_tokens, "cached_prompt_tokens": 0}

    def close(self) -> None:
        self.closed = True


def _noise(when: str) -> None:
    """What an engine writes behind our back: raw writes to fds 1 and 2, a log record, a print, a warning and a
    child process's output (an engine worker inherits the descriptors)."""
    import logging
    import subprocess
    import sys
    import warnings
    os.write(1, f"ENGINE-NOISE fd1 {when}\n".encode())
    os.write(2, f"ENGINE-NOISE fd2 {when}\n".encode())
    logging.getLogger("vllm.fake").warning("ENGINE-NOISE log %s", when)
    print(f"ENGINE-NOISE print {when}", flush=True)
    warnings.warn(f"ENGINE-NOISE warning {when}", stacklevel=1)
    subprocess.run([sys.executable, "-c", f"print('ENGINE-NOISE child {when}')"], check=False)


def _peaked(v: int) -> dict[int, float]:
    """Most mass on v, a little on its neighbours: a plausible, deterministic distribution."""
    w = {k: (8.0 if k == v else 1.0 if abs(k - v) == 1 else 0.0) for k in range(SCORE_MIN, SCORE_MAX + 1)}
    t = sum(w.values())
    return {k: x / t for k, x in w.items()}
