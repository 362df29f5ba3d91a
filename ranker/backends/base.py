"""The one small interface every scoring backend implements.

A backend takes a batch of chat requests, each with the JSON schema its answer must follow, and returns
one Result per request, in the same order. It knows nothing of papers, prompts or the store: scoring.py
builds the requests and validates what comes back.

Each backend declares its options as a pydantic model (`Options`, a BackendOptions: unknown keys refused)
next to it; they come from its [scoring.<name>] table, --backend-option, or keyword arguments.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from ..errors import ConfigError
from ..io import fs_name, fs_text
from ..records import Usage
from ..settings import near_miss, out_of_range

# Fields whose value distribution a backend reports in "expected" score mode.
SCORE_FIELDS = ("RELEVANCE", "NOVELTY")


def local_model_key(model: str, models_dir: Path | None = None) -> str:
    """What scores of a model loaded from disk are stored under: a preset's name, an existing folder's
    absolute path (so ./model typed in two working directories is two models, and two spellings of one folder
    one), as its UTF-8 text (io.fs_text: the key a UTF-8 run stores, where LC_ALL=C's surrogate escapes were
    refused by SQLite), anything else (a Hugging Face id) as given. The order is models.resolve's."""
    from .. import models
    try:
        if model in models.presets(models_dir):
            return model
    except ConfigError:          # no presets.toml to read: resolve says so when the model is loaded
        pass
    return folder_key(model) if Path(fs_name(model)).expanduser().is_dir() else model


def folder_key(model: str) -> str:
    """The key of a model folder named `model`: its absolute path as UTF-8 text (see local_model_key)."""
    return fs_text(str(Path(fs_name(model)).expanduser().resolve()))


def one_line(e: BaseException, limit: int = 400) -> str:
    """An engine's exception as one bounded line, for errors and failure records."""
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# The shape of every request's messages (prompts.build_messages): what a model's chat template must take.
CHAT_PROBE = [{"role": "system", "content": "x"}, {"role": "user", "content": "y"}]


def chat_template_problem(tokenizer: Any, prompt_text: Callable[[list[dict[str, str]]], str]) -> str | None:
    """Why the model's chat template cannot format scoring's requests (a system and a user message), in words,
    or None when it can. `prompt_text` is the backend's own way of applying it. A model without a template
    (a base model, a folder copied without chat_template.jinja) otherwise failed every paper in the
    tokenizer's words, one failure record each."""
    try:
        prompt_text(CHAT_PROBE)
    except Exception as e:
        if getattr(tokenizer, "chat_template", "") is None:
            return ("it has no chat template (a base model, or a folder without chat_template.jinja or a "
                    "chat_template in tokenizer_config.json); scoring sends chat messages: use an instruct "
                    "model, or add its template")
        return f"its chat template cannot format a system and a user message, as scoring sends: {one_line(e)}"
    return None


class BackendOptions(BaseModel):
    """A backend's options. Subclasses list them with their types and defaults; an unknown key, or a value
    of the wrong type ("4" for 4), is a ConfigError naming scoring.<backend>.<key>."""
    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="before")
    @classmethod
    def _not_blank(cls, v: Any) -> Any:
        """An empty text is refused, as the settings' own are: `device = ""` (or `--backend-option device=`, a
        variable unset in a script) was taken for "not given", scoring on whatever device came first."""
        if isinstance(v, str) and not v.strip():
            raise ValueError("empty; give a value or leave the key out")
        return v

    @classmethod
    def parse(cls, backend: str, *sources: Mapping[str, Any] | None) -> "BackendOptions":
        """The options from mappings (later ones win): a table of the config, keyword arguments."""
        data: dict[str, Any] = {}
        for src in sources:
            data.update(src or {})
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(["scoring", backend, *(str(p) for p in err["loc"][:1])])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown option" + near_miss(str(err["loc"][0]), cls.model_fields)
            elif len(err["loc"]) == 1:
                msg = out_of_range(err, cls.model_fields.get(str(err["loc"][0]))) or msg
            raise ConfigError(msg, key=key) from None


@dataclass
class Request:
    key: str                          # what the caller uses to match the result (a paper id, or ids joined)
    messages: list[dict[str, str]]    # [{"role": "system", ...}, {"role": "user", ...}]
    schema: dict                      # JSON schema the output must satisfy (enforced by the engine)
    max_tokens: int = 256
    chat_template_kwargs: dict | None = None   # given to the model's chat template ({"enable_thinking": False})


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
    # cut off ("length") by the model's context, not by the request's max_tokens: its prompt left less room
    # than that budget, so asking again with a larger one cannot help (cut_by_context)
    context_full: bool = False

    @property
    def ok(self) -> bool:
        return self.text is not None and self.finish_reason == "stop" and self.error is None


class GenerateInterrupted(KeyboardInterrupt):
    """Ctrl-C during Backend.generate, with what had come back by then: `results[i]` is request i's Result, or
    None for a request that had not been answered. A caller keeps the answers paid for before it stops."""

    def __init__(self, results: list["Result | None"]):
        super().__init__()
        self.results = results


MIN_ANSWER_ROOM = 8        # tokens of the context a prompt must leave for its answer

# Where configs keep the context length, as vLLM looks for it (GPT-2: n_positions, MPT: max_seq_len, ...).
MAX_LEN_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length",
                "max_seq_length", "seq_len")


def config_context(get: Callable[[str], Any]) -> int | None:
    """The context length a model's config states (`get(key)` reads one of its keys), or None."""
    for key in MAX_LEN_KEYS:
        v = get(key)
        if isinstance(v, int) and not isinstance(v, bool) and v > 0:
            return v
    return None


def hf_config_context(cfg: Any) -> int | None:
    """config_context of a transformers config object: its text model's config for a multimodal one."""
    get_text = getattr(cfg, "get_text_config", None)
    text = get_text() if callable(get_text) else cfg
    return config_context(lambda key: getattr(text, key, None))


# What shortens a prompt, for a context no setting can raise (said where a prompt does not fit)
SHORTER_PROMPT = "[scoring] abstract_tokens or papers_per_request shortens the prompt"


def answer_room(key: str, prompt_tokens: int, context: int,
                context_name: str | None = None) -> tuple[int, Result | None]:
    """(tokens left for the answer, None) when a prompt of `prompt_tokens` fits a context of `context` tokens
    with room to answer; else (0, the request's error Result naming both sizes, and `context_name`: the setting
    the context comes from, or what to change)."""
    room = context - prompt_tokens
    if room >= MIN_ANSWER_ROOM:
        return room, None
    said = f" ({context_name})" if context_name else ""
    return 0, Result(key, None, "error", usage=Usage(prompt_tokens=prompt_tokens),
                     error=f"prompt of {prompt_tokens} tokens does not fit a context of {context} tokens{said}")


def cut_by_context(result: Result, limit: int, prompt_tokens: int, context: int, context_name: str) -> None:
    """Mark `result`, an answer cut off at the `limit` tokens its prompt of `prompt_tokens` left in a context of
    `context` tokens (`context_name`: where that size comes from), as the context's failure: its reason says so
    and `context_full` is set, so a caller does not retry it with a larger budget."""
    result.context_full = True
    result.error = (f"answer cut off after {limit} tokens: its prompt of {prompt_tokens} tokens leaves no more of "
                    f"a context of {context} tokens ({context_name})")


class Backend(ABC):
    """Subclasses set `name` and `Options`, take (model, options=None, *, models_dir=None, **options) and
    implement `generate`; heavy imports happen in __init__ or generate."""

    name: str = "base"
    Options: ClassVar[type[BackendOptions]] = BackendOptions
    model_name: str = ""              # what the manifest and the store key scores by
    supports_score_probs: bool = False   # "expected" score mode needs it (scoring checks)
    loads_local_model: bool = False      # its model is a preset, folder or Hugging Face id (models.resolve)

    @classmethod
    def parse_options(cls, options: Mapping[str, Any] | BackendOptions | None = None, **kwargs) -> BackendOptions:
        """This backend's options, validated, from a table (or an Options instance) and keyword arguments."""
        if isinstance(options, BackendOptions):
            options = options.model_dump(exclude_unset=True)
        return cls.Options.parse(cls.name, options, kwargs)

    @classmethod
    def store_name(cls, model: str, models_dir: Path | None = None) -> str | None:
        """The name this backend will store scores of `model` under (its model_name), known before it is
        built, or None when only the built backend knows (a server's own model). Lets a day whose papers are
        all scored skip loading the model. For a model loaded from disk: local_model_key (with the same
        models_dir the backend is built with, whose presets.toml names the presets)."""
        return local_model_key(model, models_dir)

    @classmethod
    def loading_name(cls, model: str, models_dir: Path | None = None) -> str | None:
        """What building this backend for `model` loads, as the loading note names it ("loading <this>"), or
        None when only the built backend knows (a server's own model: its model_name then)."""
        return model if cls.store_name(model, models_dir) is not None else None

    @classmethod
    def check_model(cls, model: str, models_dir: Path | None = None,
                    options: Mapping[str, Any] | BackendOptions | None = None) -> None:
        """Find `model` as the backend will load it with these options, without loading it, so a command can
        refuse a model that is not there (a preset not prepared, a missing folder) before any other work: a
        ModelError or ConfigError. Backends that load weights from disk set `loads_local_model`; for the others
        (a server's model) there is nothing to look for."""
        if cls.loads_local_model:
            from .. import models
            models.resolve(model, kind="llm", models_dir=models_dir, tokenizer=cls.given_tokenizer(options))

    @classmethod
    def given_tokenizer(cls, options: Mapping[str, Any] | BackendOptions | None = None) -> str | None:
        """The tokenizer these options give the loader apart from the model, found as it will load it (an
        error when it is not there), or None: the model's own folder holds it."""
        return None

    @classmethod
    def model_key(cls, model: str, models_dir: Path | None = None) -> str:
        """store_name where it must be known without building the backend (the backfill looks up what is
        already scored before it starts an engine): a ConfigError when only the built backend knows."""
        name = cls.store_name(model, models_dir)
        if name is None:
            raise ConfigError(f"the {cls.name} backend learns the model's name only from its server, and this "
                              "must know it before the server is asked: name the model it serves", key="scoring.model")
        return name

    @abstractmethod
    def generate(self, requests: list[Request], *, score_probs: bool = False,
                 on_done: Callable[..., None] | None = None) -> list[Result]:
        """Run every request (batched as the engine likes) and return results in the same order; `on_done(n,
        which)` is told as requests finish (n at a time), for a progress bar: `which` their indices in
        `requests`, left out (on_done(n)) where the engine says only how many (vLLM)."""

    def stats(self) -> dict:
        """Engine figures for the run manifest (e.g. prefix-cache hits)."""
        return {}

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
