"""What a scoring run costs in API fees. Local models (vLLM, transformers, a local `vllm serve`) cost $0.

Prices are US dollars per million tokens (OpenAI list prices; cached prompt tokens at their own, lower price).
A model id matches the longest listed prefix, so "gpt-4o-2024-08-06" is priced as gpt-4o and
"gpt-4o-mini-2024-07-18" as gpt-4o-mini. Anything unlisted is taken to be local and free.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..records import Usage


@dataclass(frozen=True)
class Price:
    prompt: float            # $ per 1M prompt tokens
    completion: float        # $ per 1M completion tokens
    cached_prompt: float     # $ per 1M prompt tokens served from the provider's cache


PRICES: dict[str, Price] = {
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4.1": Price(2.00, 8.00, 0.50),          # the 4.1 family bills cached prompt tokens at a quarter
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
}


def price_for(model: str) -> Price | None:
    """The price of a model id, or None for a local or unknown model."""
    name = model.rsplit("/", 1)[-1].lower()
    best = None
    for prefix in PRICES:
        if name == prefix or name.startswith(prefix + "-"):
            if best is None or len(prefix) > len(best):
                best = prefix
    return PRICES[best] if best else None


def costs(model: str, usage: Usage) -> tuple[float, float]:
    """(prompt, completion) dollars for `usage` on `model`, cached prompt tokens at their own price ($0 for
    anything not in the table). The one cost computation: the digest's table, the manifest and the openai
    backend's stats all come from here."""
    p = price_for(model)
    if p is None:
        return 0.0, 0.0
    cached = min(usage.cached_prompt_tokens, usage.prompt_tokens)
    fresh = usage.prompt_tokens - cached
    return (fresh * p.prompt + cached * p.cached_prompt) / 1e6, usage.completion_tokens * p.completion / 1e6


def cost_usd(model: str, usage: Usage) -> float:
    """Dollars for `usage` on `model` ($0 for anything not in the table)."""
    return sum(costs(model, usage))
