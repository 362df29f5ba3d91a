"""Scoring backends behind one small interface (see base.py). One string picks the backend."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Mapping

from ..errors import ConfigError, ModelError
from ..io import Warn
from ..settings import Settings
from .base import SCORE_FIELDS, Backend, BackendOptions, Request, Result

if TYPE_CHECKING:
    from pathlib import Path

# name -> "module:Class"; modules are imported only when their backend is asked for.
REGISTRY: dict[str, str] = {
    "vllm": "ranker.backends.vllm_backend:VLLMBackend",
    "transformers": "ranker.backends.transformers_backend:TransformersBackend",
    "openai": "ranker.backends.openai_backend:OpenAIBackend",
    "fake": "ranker.backends.fake:FakeBackend",
}


def backend_class(name: str) -> type[Backend]:
    """The class of a backend by name (its module is imported now, which loads no engine)."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown backend '{name}'; choose one of: {', '.join(sorted(REGISTRY))}",
                          key="scoring.backend")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get_backend(name: str, model: str, options: Mapping[str, Any] | None = None, **kwargs) -> Backend:
    """Build a backend by name. `model` is a preset name, a local folder or a Hugging Face id; `options`
    its own, as in its [scoring.<name>] table; kwargs: models_dir, api_key, or more options."""
    return backend_class(name)(model, options, **kwargs)


def check_options(settings: Settings) -> None:
    """Validate the chosen backend's name and every [scoring.<backend>] table against that backend's
    Options, before any work starts (a ConfigError names scoring.<backend>.<key>)."""
    backend_class(settings.scoring.backend)
    for name, table in settings.scoring.options.items():
        if name not in REGISTRY:
            raise ConfigError(f"no backend is called '{name}'; choose one of: {', '.join(sorted(REGISTRY))}",
                              key=f"scoring.{name}")
        backend_class(name).parse_options(table)


def options_in_force(settings: Settings) -> dict[str, Any]:
    """The chosen backend's options as it will run with them, its defaults included (JSON-ready), for
    settings.effective."""
    scoring = settings.scoring
    return backend_class(scoring.backend).parse_options(scoring.options.get(scoring.backend)).model_dump(mode="json")


def check_model(settings: Settings) -> None:
    """The scoring model there as the chosen backend will load it (a preset prepared, a folder there, a Hugging
    Face id cached where offline), nothing loaded: a ModelError about the model itself is keyed scoring.model
    (a mistyped name was said naming no setting), a tokenizer's keeps its own key. What building the backend
    raises (no memory for it, an engine that failed to start) is no fault of the setting, and is not keyed so:
    make_backend keys only this check's errors."""
    scoring = settings.scoring
    try:
        backend_class(scoring.backend).check_model(scoring.model, models_dir=settings.models_dir,
                                                   options=scoring.options.get(scoring.backend))
    except ModelError as e:
        if e.key is None:
            e.key = "scoring.model"
        raise


def make_backend(settings: Settings, warn: Warn | None = None) -> Backend:
    """The backend the settings choose, with its [scoring.<backend>] options, the models folder and, for a
    backend that uses one, the API key from the environment (and `warn` for one that has notes)."""
    scoring = settings.scoring
    cls = backend_class(scoring.backend)
    extra: dict[str, Any] = {"models_dir": settings.models_dir}
    if getattr(cls, "uses_api_key", False) and settings.openai_api_key is not None:
        extra["api_key"] = settings.openai_api_key.get_secret_value()
    if getattr(cls, "uses_warn", False) and warn is not None:
        extra["warn"] = warn
    check_model(settings)        # only its error names the setting: building the backend fails on its own
    return cls(scoring.model, scoring.options.get(scoring.backend), **extra)


def model_key(name: str, model: str, models_dir: Path | None = None) -> str:
    """What scores made by backend `name` with `model` are stored under (Backend.model_name), known
    without building the backend (models_dir: the settings' models folder, as make_backend passes it)."""
    return backend_class(name).model_key(model, models_dir)


__all__ = ["Backend", "BackendOptions", "Request", "Result", "SCORE_FIELDS", "REGISTRY", "backend_class",
           "get_backend", "check_options", "make_backend", "model_key", "options_in_force"]
