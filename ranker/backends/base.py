"""The one small interface every scoring backend implements.

A backend takes a batch of chat requests, each with the JSON schema its answer must follow, and returns
one Result per request, in the same order. It knows nothing of papers, prompts or the store: scoring.py
builds the requests and validates what comes back.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from ..errors import ConfigError
from ..records import Usage

# Fields whose value distribution a backend reports in "expected" score mode.
SCORE_FIELDS = ("RELEVANCE", "NOVELTY")


def one_line(e: BaseException, limit: int = 400) -> str:
    """An engine's exception as one bounded line, for errors and failure records."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def reject_unknown(backend: str, unknown: dict) -> None:
    """Options a backend's constructor does not take are a config error, not a silent no-op."""
    if not unknown:
        return
    hint = " (engine_args is for the vllm backend)" if "engine_args" in unknown and backend != "vllm" else ""
    raise ConfigError(f"unknown {backend} backend option(s): {', '.join(sorted(unknown))}{hint}",
                      where="scoring options")


@dataclass
class Request:
    key: str                          # what the caller uses to match the result (a paper id, or ids joined)
    messages: list[dict[str, str]]    # [{"role": "system", ...}, {"role": "user", ...}]
    schema: dict                      # JSON schema the output must satisfy (enforced by the engine)
    max_tokens: int = 256


@dataclass
class Result:
    key: str
    text: str | None                  # the raw generated text (None when the request failed outright)
    finish_reason: str = "stop"       # "stop", "length" (cut off: a failure) or "error"
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    # "expected" mode: for each score field, the probability of each integer value 1..10 at the position
    # where the model wrote it, renormalised over the values the schema allows. None when not asked / unknown.
    score_probs: dict[str, dict[int, float]] | None = None

    @property
    def ok(self) -> bool:
        return self.text is not None and self.finish_reason == "stop" and self.error is None


class Backend(ABC):
    """Subclasses set `name` and implement `generate`; heavy imports happen in __init__ or generate."""

    name: str = "base"
    model_name: str = ""              # what the manifest and the store key scores by
    supports_score_probs: bool = False

    @classmethod
    def model_key(cls, model: str) -> str:
        """The model_name an instance built for `model` will have, known without building it (the backfill
        looks up what is already scored before it starts an engine)."""
        return model

    @abstractmethod
    def generate(self, requests: list[Request], *, score_probs: bool = False) -> list[Result]:
        """Run every request (batched as the engine likes) and return results in the same order."""

    def count_tokens(self, text: str) -> int | None:
        """Tokens of `text` under this model's tokenizer, when the backend has one."""
        return None

    def stats(self) -> dict:
        """Engine figures for the run manifest (e.g. prefix-cache hits)."""
        return {}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
