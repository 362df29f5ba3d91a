"""Scoring backends behind one small interface (see base.py). One string picks the backend."""
from __future__ import annotations

import importlib

from ..errors import ConfigError
from .base import Backend, Request, Result, SCORE_FIELDS

# name -> "module:Class"; modules are imported only when their backend is asked for.
REGISTRY: dict[str, str] = {
    "vllm": "ranker.backends.vllm_backend:VLLMBackend",
    "transformers": "ranker.backends.transformers_backend:TransformersBackend",
    "openai": "ranker.backends.openai_backend:OpenAIBackend",
    "llamacpp": "ranker.backends.llamacpp_backend:LlamaCppBackend",
    "fake": "ranker.backends.fake:FakeBackend",
}


def get_backend(name: str, model: str, **options) -> Backend:
    """Build a backend by name. `model` is a preset name, a local folder or a Hugging Face id."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown backend '{name}'; choose one of: {', '.join(sorted(REGISTRY))}",
                          where="--backend")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)(model, **options)


__all__ = ["Backend", "Request", "Result", "SCORE_FIELDS", "REGISTRY", "get_backend"]
