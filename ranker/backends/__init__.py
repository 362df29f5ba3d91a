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
    "fake": "ranker.backends.fake:FakeBackend",
}


def get_backend(name: str, model: str, **options) -> Backend:
    """Build a backend by name. `model` is a preset name, a local folder or a Hugging Face id."""
    return backend_class(name)(model, **options)


def backend_class(name: str) -> type[Backend]:
    """The class behind a backend name, without building it (its module imports no engine)."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown backend '{name}'; choose one of: {', '.join(sorted(REGISTRY))}",
                          where="--backend")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def model_key(name: str, model: str) -> str:
    """What scores made by backend `name` with `model` are stored under (Backend.model_name)."""
    return backend_class(name).model_key(model)


__all__ = ["Backend", "Request", "Result", "SCORE_FIELDS", "REGISTRY", "get_backend", "backend_class",
           "model_key"]
