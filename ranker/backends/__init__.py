"""Scoring backends behind one small interface (see base.py). One string picks the backend."""
from __future__ import annotations

import importlib
from typing import Any, Mapping

from ..errors import ConfigError
from ..settings import Settings
from .base import Backend, Request, Result, SCORE_FIELDS

# name -> "module:Class"; modules are imported only when their backend is asked for.
REGISTRY: dict[str, str] = {
    "vllm": "ranker.backends.vllm_backend:VLLMBackend",
    "transformers": "ranker.backends.transformers_backend:TransformersBackend",
    "openai": "ranker.backends.openai_backend:OpenAIBackend",
    "fake": "ranker.backends.fake:FakeBackend",
}


def get_backend(name: str, model: str, options: Mapping[str, Any] | None = None, **kwargs) -> Backend:
    """Build a backend by name. `model` is a preset name, a local folder or a Hugging Face id; `options`
    the backend's own ([scoring.<name>] in the config), `kwargs` more of them (models_dir, api_key)."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown backend '{name}'; choose one of: {', '.join(sorted(REGISTRY))}",
                          key="scoring.backend")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)(model, **{**(options or {}), **kwargs})


def make_backend(settings: Settings) -> Backend:
    """The backend the settings choose, with its options, the models folder and (openai) the API key."""
    sc = settings.scoring
    extra: dict[str, Any] = {"models_dir": settings.models_dir}
    if sc.backend == "openai" and settings.openai_api_key is not None:
        extra["api_key"] = settings.openai_api_key.get_secret_value()
    return get_backend(sc.backend, sc.model, sc.options.get(sc.backend), **extra)


__all__ = ["Backend", "Request", "Result", "SCORE_FIELDS", "REGISTRY", "get_backend", "make_backend"]
