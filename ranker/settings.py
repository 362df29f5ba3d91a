"""The one place that reads environment variables, the TOML config and flag values, into one Settings.

    s = resolve(config_path, flags={"keep": 0.3, "backend": "openai"})   # what the CLI does, once
    s.prefilter.keep, s.scoring.backend, s.db_path, s.offline ...

Precedence, lowest first: the defaults below, ranker.toml (./ranker.toml or the file given), the environment,
the flags. Nothing below the CLI reads the environment: it is given a Settings (or the values it needs).
A relative path in the file is read from the file's folder (PATH_KEYS, MODEL_KEYS); a flag's or a variable's
from the working directory. "~" is expanded in every path, and $NAME / ${NAME} in the file's from the environment.

Environment:
  RANKER_HOME        where the database, FAISS indexes and caches live (default: the platform's user data dir)
  RANKER_DB          the SQLite file (default: $RANKER_HOME/ranker.sqlite3)
  RANKER_MODELS_DIR  where prepared model folders live (default: the repository's models/ folder, else the
                     home folder's models/)
  RANKER_OFFLINE     1 = never open a non-loopback connection
  RANKER_DEBUG       1 = show full tracebacks
  RANKER_RSS_URL, RANKER_API_URL   base URLs of arXiv's RSS feed and API (tests point them at 127.0.0.1)
  RANKER_FETCH_TIMEOUT, RANKER_FETCH_DOWNLOAD_TIMEOUT, RANKER_FETCH_RETRIES, RANKER_FETCH_BACKOFF,
  RANKER_API_DELAY   network politeness
  OPENAI_BASE_URL    the OpenAI-compatible server of the `openai` backend ([scoring.openai] base_url)
  OPENAI_API_KEY     its key: read from the environment only, never from a file, never printed or stored
  RANKER_TRUSTED_PROXIES   addresses of reverse proxies whose forwarded headers `ranker serve` believes

Each scoring backend takes typed options from its own table, [scoring.vllm], [scoring.transformers],
[scoring.openai]; several may sit in one file, and the chosen backend's Options model validates its table
(ranker.backends.check_options) before any work starts.

An invalid value is a ConfigError whose `key` is the setting ("prefilter.keep"); `origins` says where each
given value came from, so the CLI can name it as the user wrote it: --keep, RANKER_FETCH_RETRIES or
ranker.toml: prefilter.keep.
"""
from __future__ import annotations

import copy
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, ValidationInfo, \
    field_validator, model_validator

from .errors import ConfigError, InputError
from .io import add_secret, expand_user, fs_name, stdin_or_descriptor, read_text
from .records import ANNOUNCE_TYPES, DB_FILE, MIN_NOVELTY, MIN_RELEVANCE, category_problem

REPO_ROOT = Path(__file__).resolve().parent.parent
# the presets every install has: package data (models/presets.toml in a checkout is a link to it), so an
# installed wheel, with no checkout around it, still knows minilm and the rest
BUNDLED_PRESETS = Path(__file__).resolve().parent / "presets.toml"
DEFAULT_CONFIG = "ranker.toml"
DEFAULT_RSS_URL = "https://rss.arxiv.org/rss/"
DEFAULT_API_URL = "https://export.arxiv.org/api/query"
TRUE, FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}
MAX_WAIT = 86400.0      # seconds: the most a [fetch] timeout, delay or backoff may be (a day)
MAX_COUNT = 2**31 - 1   # the most a count of requests or papers may be (past a C long, Arrow's slicing failed)


# --------------------------------------------------------------------------- the settings
def _home_path(v: str | None, key: str) -> str | None:
    """A path written "~/..." in ranker.toml, a variable or `--db=~/...`: no shell expands it there. A "~user"
    naming no user is a ConfigError naming `key` (which the CLI words as the flag, variable or file line)."""
    return str(expand_user(v, key=key, error=ConfigError)) if v else v


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    section: ClassVar[str] = ""        # its key in Settings ("prefilter"), which a ConfigError's key starts with

    def __init__(self, /, **data: Any) -> None:
        """Built in Python (a program using ranker as a library: Settings(prefilter={"keep": 0.3}) or
        PrefilterSettings(keep=0.3)), a bad value is the ConfigError naming its key that ranker.toml's would
        be, not pydantic's ValidationError, which a caller catching RankerError let through."""
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise config_error(e, type(self).section) from None

    @field_validator("*", mode="before")
    @classmethod
    def _not_blank(cls, v: Any) -> Any:
        """An empty text is refused, as an empty flag is: taken for "not given", `prompts = ""` silently meant the
        bundled prompt set and `home = ""` the working folder."""
        if isinstance(v, str) and not v.strip():
            raise ValueError("empty; give a value or leave the key out")
        return v


class FetchSettings(_Section):
    """[fetch]: the categories and announce types a day takes, and how arXiv is asked (URLs, timeouts, retries,
    backoff, the API's delay)."""
    section: ClassVar[str] = "fetch"
    categories: list[str] = ["cs.LG", "cs.AI"]
    announce: list[str] = ["new", "cross"]
    # (seconds are finite: TOML's inf, or RANKER_FETCH_TIMEOUT=inf, would wait forever or overflow; and at most a
    # day: 1e23 passed, and the socket's timeout overflowed, 'unexpected failure: timestamp out of range')
    timeout: float = Field(30.0, gt=0, le=MAX_WAIT, allow_inf_nan=False)   # seconds to wait for arXiv to answer
    # seconds one try may take in all, from the request to the answer's last byte: `timeout` bounds each
    # silence only, and a server (a proxy, a captive portal) that trickles a byte now and then kept a fetch
    # going for hours; 300 s holds arXiv's largest answers (the cs.LG+cs.AI feed, ~3 MB) down to ~10 KB/s
    download_timeout: float = Field(300.0, gt=0, le=MAX_WAIT, allow_inf_nan=False)
    retries: int = Field(5, ge=0)             # retries after a 429/5xx or a connection error
    backoff: float = Field(2.0, ge=0, le=MAX_WAIT, allow_inf_nan=False)  # seconds before the first retry, doubled each
    api_delay: float = Field(3.0, ge=0, le=MAX_WAIT, allow_inf_nan=False)  # seconds between two API requests (3 asked)
    rss_url: str = DEFAULT_RSS_URL
    api_url: str = DEFAULT_API_URL

    @field_validator("categories")
    @classmethod
    def _categories(cls, v: list[str]) -> list[str]:
        for c in v:
            problem = category_problem(c)
            if problem:
                raise ValueError(problem)
        if not v:
            raise ValueError("no category given")
        return list(dict.fromkeys(v))

    @field_validator("announce")
    @classmethod
    def _announce(cls, v: list[str]) -> list[str]:
        for a in v:
            if a not in ANNOUNCE_TYPES:
                raise ValueError(f"unknown value {a!r}; expected one of {', '.join(ANNOUNCE_TYPES)}")
        if not v:               # a fetch would take an empty list for the default types
            raise ValueError(f"no announce type given (expected some of {', '.join(ANNOUNCE_TYPES)})")
        return list(dict.fromkeys(v))


class PrefilterSettings(_Section):
    """[prefilter]: the embedder (and max_tokens), the keep rule (keep / top / recall, min_keep), the
    calibration and the user's exclusions."""
    section: ClassVar[str] = "prefilter"
    embedder: str = "minilm"                  # preset, folder or Hugging Face id
    # phrases ("diffusion model") or patterns ("re:^quantum") whose papers never reach the LLM; exclude.txt
    # beside the prompts adds more (ranker.prefilter.rules)
    exclude: list[str] = []
    max_tokens: int | None = Field(None, ge=8)    # cut each text to this many tokens (None: the embedder's 128)
    # the keep rule: the top `keep` fraction, exactly `top` papers, or the smallest top part expected to hold a
    # share `recall` of GPT's picks; none given: recall 0.95 with a calibration, else prefilter.recall's fixed
    # DEFAULT_KEEP fraction. A rule given by a flag replaces the ones ranker.toml names.
    keep: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    top: int | None = Field(None, ge=1)
    recall: float | None = Field(None, gt=0, le=1, allow_inf_nan=False)
    min_keep: int = Field(20, ge=0)           # never fewer than min(N, min_keep)
    calibration: str | None = None            # a `ranker calibrate` file

    @field_validator("calibration")
    @classmethod
    def _calibration(cls, v: str | None) -> str | None:
        v = _home_path(v, f"{cls.section}.calibration")
        # stdin by any name ('-', /dev/stdin, /dev/fd/0) or another descriptor (a shell's `<(cat cal.json)`):
        # the run's manifest names the calibration's file and a rerun reads it again, which a stream cannot give
        # (`calibration = "-"` in ranker.toml was "-: calibration file not found", /dev/stdin was read)
        fd = None if v is None else stdin_or_descriptor(v)
        if fd is not None:
            raise ValueError(f"'{v}' ({'stdin' if fd == 0 else f'descriptor {fd}'}) cannot be the calibration: "
                             "the run's manifest names its file, and a rerun reads it again; give the file "
                             "`ranker calibrate` wrote")
        return v


class ScoringSettings(_Section):
    """[scoring]: the backend and model, the prompts and how papers are put to the model (ScoreOptions),
    and each backend's own options ([scoring.<backend>], checked by that backend's Options model)."""
    section: ClassVar[str] = "scoring"
    backend: str = "vllm"
    model: str = "smollm2-135m"
    prompts: str | None = None                # a prompt directory (None: the bundled seed prompt)
    score_mode: Literal["greedy", "expected"] = "greedy"
    papers_per_request: int = Field(1, ge=1, le=MAX_COUNT)
    abstract_tokens: int = Field(400, ge=16)
    max_authors: int = Field(50, ge=4)        # = prompts.MAX_AUTHORS: past it, the first ones and the last 3
    comment_chars: int = Field(300, ge=20)    # = backends.schema.COMMENT_CHARS, GPT-4o's 99th percentile
    # passed to the model's chat template (vLLM, transformers, an OpenAI-compatible server): reasoning
    # templates (Qwen3 ...) think by default, which spends the token budget on a hidden monologue
    chat_template_kwargs: dict[str, Any] = {"enable_thinking": False}
    batch_size: int = Field(64, ge=1, le=MAX_COUNT)   # requests per engine call; scores are stored after each call
    prompt_layout: Literal["seed", "instructions-first"] = "seed"   # see ranker.prompts.build_messages
    novelty_context: int = Field(0, ge=0, le=50)   # K earlier related papers shown in each prompt (0 = off)
    # [scoring.<backend>] tables, by backend name: validated by that backend's Options model
    options: dict[str, dict[str, Any]] = {}

    @field_validator("prompts")
    @classmethod
    def _prompts(cls, v: str | None) -> str | None:
        return _home_path(v, f"{cls.section}.prompts")

    @model_validator(mode="after")
    def _served_model(self) -> "ScoringSettings":
        """The openai backend with no model named scores with the server's own ("auto"). The default,
        smollm2-135m, is a local preset: sent to a server, vLLM's refuses it and llama.cpp's ignores it, and
        scores were stored under that preset's name, where a run of the local preset reused them (and the
        server's run reused the preset's, never asking the server)."""
        if self.backend == "openai" and "model" not in self.model_fields_set:
            self.model = "auto"
        return self

    @model_validator(mode="before")
    @classmethod
    def _backend_tables(cls, data: Any) -> Any:
        """[scoring.vllm] etc. arrive as table-valued keys; `engine_args` directly under [scoring] (the
        older spelling) is the vllm backend's."""
        if not isinstance(data, dict):
            return data
        given = data.get("options") or {}
        if not isinstance(given, dict) or not all(isinstance(v, dict) for v in given.values()):
            return data                 # not tables: the field's own check says what is wrong, and where
        data = dict(data)
        options = {k: dict(v) for k, v in given.items()}
        data.pop("options", None)
        if "engine_args" in data:
            options.setdefault("vllm", {})["engine_args"] = data.pop("engine_args")
        for k in [k for k, v in data.items() if isinstance(v, dict) and k not in cls.model_fields]:
            options.setdefault(k, {}).update(data.pop(k))
        data["options"] = options
        return data


class DigestSettings(_Section):
    """[digest]: the cut-offs a scored paper passes to be picked, and the pinned authors' file."""
    section: ClassVar[str] = "digest"
    min_relevance: int = Field(MIN_RELEVANCE, ge=1, le=10)
    min_novelty: int = Field(MIN_NOVELTY, ge=1, le=10)
    authors: str | None = None                # pinned authors (default: authors.txt beside the prompts)

    @field_validator("authors")
    @classmethod
    def _authors(cls, v: str | None) -> str | None:
        # as the prompts and the calibration: `ranker config` showed "~/authors.txt" as <cwd>/~/authors.txt
        return _home_path(v, f"{cls.section}.authors")


class ServeSettings(_Section):
    """[serve]: the reverse proxies `ranker serve` believes."""
    section: ClassVar[str] = "serve"
    # addresses (or networks, "10.0.0.0/24") of reverse proxies on other machines whose X-Forwarded-Proto and
    # X-Forwarded-For `ranker serve` believes, besides a proxy on 127.0.0.1 (an HTTPS proxy on a gateway: its
    # label posts were refused as cross-site); a forwarded header from anyone else is never believed
    trusted_proxies: list[str] = []

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, v: list[str]) -> list[str]:
        import ipaddress
        out = []
        for a in v:
            try:
                a = a.strip().strip("[]")
                out.append(str(ipaddress.ip_network(a, strict=False) if "/" in a else ipaddress.ip_address(a)))
            except ValueError:
                raise ValueError(f"{a!r} is not an IP address or network (name the proxy by the address it "
                                 "connects from: 10.0.0.5, 10.0.0.0/24, fd00::5)") from None
        return list(dict.fromkeys(out))


def env_flag(value: str | None) -> bool:
    """The one notion of a true environment flag: 1, true, yes, on (any case)."""
    return (value or "").strip().lower() in TRUE


def default_home(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("RANKER_HOME", "").strip():        # blank: not set, as for every variable (gather)
        return expand_user(env["RANKER_HOME"], where="RANKER_HOME", error=ConfigError)
    from platformdirs import user_data_dir
    return Path(user_data_dir("ranker", appauthor=False))


def _home_folder(home: Path) -> None:
    """A ConfigError naming the home (RANKER_HOME, ranker.toml's `home`) when it, or the nearest of its parents
    that is there, is not a folder: `labels list` and `site` said "nothing to do" of the store inside a file,
    `serve` named the database's folder, and no log could be made in it; so did a link to what is not there (a
    drive not mounted). A missing home is made when used."""
    for p in (home, *home.parents):
        named = f"{p}" if p == home else f"{p}, above {home},"
        try:
            if not p.exists():
                if p.is_symlink():      # a link to what is not there (a drive not mounted) or a loop of links
                    raise ConfigError(f"{named} is a link to {os.readlink(p)}, which is not there; give a folder "
                                      "(it is made if missing)", key="home")
                continue
        except OSError:                 # unreadable: left for the command that uses it to say
            return
        if not p.is_dir():
            said = "is a file" if p.is_file() else "is not a folder"
            raise ConfigError(f"{named} {said}; give a folder (it is made if missing)", key="home")
        return


def default_models_dir(env: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """$RANKER_MODELS_DIR, else the repository's models/ (where presets.toml is), else the home folder's models/
    (`home`: the settings' own, ranker.toml's `home` included; None: $RANKER_HOME or the platform's)."""
    env = os.environ if env is None else env
    if env.get("RANKER_MODELS_DIR", "").strip():
        return expand_user(env["RANKER_MODELS_DIR"], where="RANKER_MODELS_DIR", error=ConfigError)
    bundled = REPO_ROOT / "models"
    if (bundled / "presets.toml").exists():
        return bundled
    return (home if home is not None else default_home(env)) / "models"


def debug_from_env(env: Mapping[str, str] | None = None) -> bool:
    """RANKER_DEBUG, for the CLI's error handler (which must know it before any Settings exists)."""
    return env_flag((os.environ if env is None else env).get("RANKER_DEBUG"))


class Settings(_Section):
    """Every setting in one validated value: the home folder, database and models folder, offline, debug,
    and a section per step. Built by resolve() (ranker.toml, the environment, flags) or in Python; a bad value
    is a ConfigError naming its key ("prefilter.keep")."""
    home: Path = Field(default_factory=default_home, strict=False)
    db: Path | None = Field(None, strict=False)           # None: home / ranker.sqlite3
    # (the home given beside it, validated first: Settings(home=...) built in Python keeps its models there)
    models_dir: Path = Field(default_factory=lambda given: default_models_dir(home=given.get("home")), strict=False)
    offline: bool = False
    debug: bool = False
    fetch: FetchSettings = FetchSettings()
    prefilter: PrefilterSettings = PrefilterSettings()
    scoring: ScoringSettings = ScoringSettings()
    digest: DigestSettings = DigestSettings()
    serve: ServeSettings = ServeSettings()
    openai_api_key: SecretStr | None = Field(None, exclude=True, repr=False)   # from OPENAI_API_KEY only
    _origins: dict[str, "Origin"] = PrivateAttr(default_factory=dict)
    _file: "Settings | None" = PrivateAttr(default=None)
    _config_file: Path | None = PrivateAttr(default=None)

    @field_validator("home", "db", "models_dir")
    @classmethod
    def _paths(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        v = expand_user(v, key=info.field_name, error=ConfigError) if v is not None else v
        if info.field_name == "home" and v is not None:
            _home_folder(v)
        return v

    @property
    def db_path(self) -> Path:
        return self.db if self.db is not None else self.home / DB_FILE

    @property
    def presets_file(self) -> Path:
        for cand in (self.models_dir / "presets.toml", BUNDLED_PRESETS):
            if cand.exists():
                return cand
        return self.models_dir / "presets.toml"

    @property
    def origins(self) -> dict[str, "Origin"]:
        """Where each value that is not a default came from, by key."""
        return self._origins

    @property
    def config_file(self) -> Path | None:
        """The ranker.toml read (the one given, or the working folder's), None when none was."""
        return self._config_file

    @property
    def file_layer(self) -> "Settings | None":
        """The config file's values on their own, validated (None without a file): what a check made after
        `build` (the backends' options) runs on too, its errors named by in_file."""
        return self._file

    def public(self) -> dict:
        """The settings as JSON-ready data for the run manifest and the store (no secret in it: a password
        written into a server's URL is redacted)."""
        return _redacted(self.model_dump(mode="json"))


# --------------------------------------------------------------------------- where values come from
@dataclass(frozen=True)
class Origin:
    """Where a given setting came from (Settings.origins, by key): a file's line, a variable or a flag."""
    kind: Literal["file", "env", "flag"]
    name: str               # the file's path, the variable, or the flag's parameter name ("min_keep")
    line: int | None = None     # a file's line that sets the value (or opens the table)


# Flags, by the parameter name a command declares them under, and the setting each sets.
FLAG_KEYS: dict[str, str] = {
    "backend": "scoring.backend", "model": "scoring.model", "prompts": "scoring.prompts",
    "score_mode": "scoring.score_mode", "prompt_layout": "scoring.prompt_layout",
    "papers_per_request": "scoring.papers_per_request", "batch_size": "scoring.batch_size",
    "novelty_context": "scoring.novelty_context",
    "embedder": "prefilter.embedder", "max_tokens": "prefilter.max_tokens", "keep": "prefilter.keep",
    "top": "prefilter.top", "recall": "prefilter.recall", "calibration": "prefilter.calibration",
    "min_relevance": "digest.min_relevance", "min_novelty": "digest.min_novelty",
    "category": "fetch.categories", "announce": "fetch.announce",
    "db": "db", "offline": "offline", "trusted_proxies": "serve.trusted_proxies",
}
# Flags that take a setting of ranker.toml (or a variable) back to its default, unset, by the parameter name.
UNSET_FLAGS: dict[str, str] = {"no_calibration": "prefilter.calibration", "default_prompts": "scoring.prompts",
                               "default_authors": "digest.authors", "default_exclude": "prefilter.exclude"}
# `backend_option` ("KEY=VALUE", repeatable) sets scoring.<backend>.KEY, its value read as TOML ("4", "true",
# "{ tensor_parallel_size = 2 }"), or as a string when it is not TOML ("bfloat16").
BACKEND_OPTION = "backend_option"

# Environment variables and the setting each sets, with how its text is read.
ENV_KEYS: dict[str, tuple[str, type]] = {
    "RANKER_HOME": ("home", str), "RANKER_DB": ("db", str), "RANKER_MODELS_DIR": ("models_dir", str),
    "RANKER_OFFLINE": ("offline", bool), "RANKER_DEBUG": ("debug", bool),
    "RANKER_RSS_URL": ("fetch.rss_url", str), "RANKER_API_URL": ("fetch.api_url", str),
    "RANKER_FETCH_TIMEOUT": ("fetch.timeout", float), "RANKER_FETCH_RETRIES": ("fetch.retries", int),
    "RANKER_FETCH_DOWNLOAD_TIMEOUT": ("fetch.download_timeout", float),
    "RANKER_FETCH_BACKOFF": ("fetch.backoff", float), "RANKER_API_DELAY": ("fetch.api_delay", float),
    "OPENAI_BASE_URL": ("scoring.openai.base_url", str),
    "RANKER_TRUSTED_PROXIES": ("serve.trusted_proxies", list),
}
SECRET_ENV = {"OPENAI_API_KEY": "openai_api_key"}
# Settings that name a file or folder. Written relative in a config file they are read from the file's folder,
# as a flag's are from the working directory: `--config ~/ranker/ranker.toml` run from cron (or any other
# folder) must find its prompts and calibration and keep using its database, not start an empty one there.
PATH_KEYS = ("home", "db", "models_dir", "prefilter.calibration", "scoring.prompts", "digest.authors")
# Settings that name a model: a preset, a folder or a Hugging Face id. A relative folder in a config file is read
# from the file's folder when it is written as one ("./x", "../x": never a preset or an id) or is there.
MODEL_KEYS = ("scoring.model", "prefilter.embedder")
# vLLM engine arguments ([scoring.vllm] engine_args) that name a file or folder, read from the file's folder too:
# those that are always a path as PATH_KEYS are; those that may also be a Hugging Face id ("tokenizer") or a word
# ("auto") as MODEL_KEYS are, when written as a path ("./x", "../x") or there. Other engine arguments as written.
ENGINE_PATH_ARGS = ("download_dir", "allowed_local_media_path", "log_config_file")
ENGINE_NAME_ARGS = ("tokenizer", "hf_config_path", "generation_config")
_LIST_KEYS = {"fetch.categories", "fetch.announce", "serve.trusted_proxies"}
# The prefilter's keep rules: one given by a flag replaces any other that ranker.toml names.
KEEP_RULE_KEYS = ("prefilter.keep", "prefilter.top", "prefilter.recall")


@dataclass
class Gathered:
    """Raw values by source, before validation: what `build` turns into a Settings."""
    data: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, Origin] = field(default_factory=dict)
    config_file: Path | None = None
    # the config file's own values (its relative paths read from its folder) and their origins, before any
    # variable or flag went over them: `build` validates them as they stand too
    file_data: dict[str, Any] | None = None
    file_origins: dict[str, Origin] = field(default_factory=dict)


def _put(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    for n, p in enumerate(parts[:-1], start=1):
        data = data.setdefault(p, {})
        if not isinstance(data, dict):
            raise ConfigError("expected a table", key=".".join(parts[:n]))
    data[parts[-1]] = value


def _put_over(g: Gathered, key: str, value: Any, given_as: str) -> None:
    """_put a variable's or a flag's value over ranker.toml's; where the file made a plain value of a table the
    key needs (`scoring = 3` and --backend), the file's entry is at fault: named by its line, with what needs
    it (`given_as`: the variable, or a flag's setting as a mention the CLI words as the flag). Left to _put, a
    flag's value got "scoring: expected a table", naming neither the file nor its line."""
    try:
        _put(g.data, key, value)
    except ConfigError as e:
        if e.key is None:
            raise
        o = g.origins.get(e.key)
        where = (f"{o.name}:{o.line}" if o.line else o.name) if o else None
        raise ConfigError(f"{e.key} must be a table ([{e.key}]) to take {given_as}", where=where) from None


def _leaves(data: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in data.items():
        key = f"{prefix}{k}"
        out += _leaves(v, key + ".") if isinstance(v, dict) and k not in ("engine_args",) else [key]
    return out


_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_TABLE = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-\s\"']+?)\s*\]\]?\s*(?:#.*)?$")   # [t] or [[t]]
_TOML_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"'.\s]+?)\s*=")


def _bare(key: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in key.split("."))


def toml_lines(text: str) -> dict[str, int]:
    """The line of each key ("prefilter.keep") and table ("scoring.vllm") a TOML text sets, as far as a line
    scan tells (a key inside a multi-line value is not seen; the parser has already accepted the file)."""
    out: dict[str, int] = {}
    table = ""
    for n, line in enumerate(text.splitlines(), start=1):
        m = _TOML_TABLE.match(line)
        if m:
            table = _bare(m.group(1))
            out.setdefault(table, n)
            continue
        m = _TOML_KEY.match(line)
        if m:
            key = f"{table}.{_bare(m.group(1))}" if table else _bare(m.group(1))
            out.setdefault(key, n)
    return out


def _read_toml(path: Path, shown: str | None = None) -> tuple[dict, dict[str, int]]:
    """The config's values and the line of each key. Errors name the file as `shown` (as the user gave it)."""
    shown = shown or str(path)
    text = read_text(path, "config file", ConfigError)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = _TOML_POS.search(msg)
        where = f"{shown}:{m.group(1)}" if m else shown
        msg = _TOML_POS.sub("", msg).replace("(at end of document)", "at the end of the file").strip()
        msg = (msg[:1].lower() + msg[1:]) + (f" (column {m.group(2)})" if m else "")
        raise ConfigError(f"not valid TOML: {msg}", where=where) from None
    lines = toml_lines(text)
    for key in _leaves(data):
        if key.rsplit(".", 1)[-1] in ("api_key", "openai_api_key"):
            raise ConfigError("an API key is read from the environment (OPENAI_API_KEY) only, never from a file",
                              where=f"{shown}:{lines[key]}" if key in lines else shown, key=key)
    return data, lines


def _on_disk(v: str, base: Path) -> str:
    """A model's name as the file system takes it (fs_name) where so it names a file or folder, from `base` or
    the working folder; else as written: a server's model name ("mistral-français") is any text, and under
    LC_ALL=C its fs_name, surrogate escapes, was refused by SQLite and named a model the server lacks."""
    fv = fs_name(v)
    if fv == v:
        return v
    try:
        path = expand_user(fv)
    except InputError:
        return v
    return fv if path.exists() or (base / path).exists() else v


def _from_folder(data: dict, base: Path) -> None:
    """The file's relative paths (PATH_KEYS, MODEL_KEYS, ENGINE_PATH_ARGS, ENGINE_NAME_ARGS) read from `base`, its
    folder (Path() for the working folder's own file: kept as written). "~" is left to the fields' own expansion.
    Each as the file system takes it (io.fs_name: "./mödel" under LC_ALL=C was "no such model folder"); a model's
    name or engine id only where so it names a file or folder (_on_disk)."""
    for key in (*PATH_KEYS, *MODEL_KEYS):
        *tables, name = key.split(".")
        table = data
        for t in tables:
            table = table.get(t) if isinstance(table, dict) else None
        v = table.get(name) if isinstance(table, dict) else None
        if not isinstance(v, str) or not v.strip():
            continue                    # not given, or wrong: validation names it
        v = table[name] = fs_name(v) if key not in MODEL_KEYS else _on_disk(v, base)
        try:
            path = expand_user(v)
        except InputError:
            continue                    # a "~user" naming no user: validation names its key
        if path.is_absolute() or base == Path() or v == "-":
            continue                    # ("-": stdin, which the calibration's validation refuses by its name)
        if key in MODEL_KEYS and not (v.startswith(("./", "../")) or ("/" in v and (base / path).exists())):
            continue                    # a preset or a Hugging Face id (or a folder of the working directory)
        table[name] = str(base / path)
    scoring = data.get("scoring")
    if not isinstance(scoring, dict):
        return
    vllm = scoring.get("vllm")
    for engine_args in (scoring.get("engine_args"), vllm.get("engine_args") if isinstance(vllm, dict) else None):
        if not isinstance(engine_args, dict):
            continue
        for name in (*ENGINE_PATH_ARGS, *ENGINE_NAME_ARGS):
            v = engine_args.get(name)
            if not isinstance(v, str) or not v.strip() or v in ("auto", "vllm"):
                continue                # not given, wrong (vLLM names it), or generation_config's own words
            v = engine_args[name] = fs_name(v) if name not in ENGINE_NAME_ARGS else _on_disk(v, base)
            if base == Path():
                continue
            try:
                path = expand_user(v)
            except InputError:
                continue                # a "~user" naming no user: left for the engine to name
            if path.is_absolute():
                if v.startswith("~"):
                    engine_args[name] = str(path)   # the engine would take "~" as a folder's name
                continue
            if name in ENGINE_NAME_ARGS and not (v.startswith(("./", "../")) or (base / path).exists()):
                continue                # a Hugging Face id (or a folder of the working directory)
            engine_args[name] = str(base / path)


_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def _expand_variables(data: dict, env: Mapping[str, str], shown: str, lines: dict[str, int]) -> None:
    """$NAME and ${NAME} in the file's paths (PATH_KEYS, MODEL_KEYS) from the environment, as a shell does in a
    flag's: no shell reads the file, and `home = "$SCRATCH/ranker"` made a folder named "$SCRATCH" beside it.
    $$ is a literal $ (as make and compose write it: `home = "/data/pay$$ment"`). A variable that is not set, or
    set but empty (`$SCRATCH/ranker` would be /ranker, at the root), is a ConfigError naming the file's line
    and the key. The engine arguments that name a file or folder (ENGINE_PATH_ARGS, ENGINE_NAME_ARGS, in
    [scoring.vllm] engine_args or the older [scoring] one) are paths too: `download_dir = "$SCRATCH/hf"` was
    handed to vLLM as written."""
    engine = [f"{table}.engine_args.{a}" for table in ("scoring.vllm", "scoring")
              for a in (*ENGINE_PATH_ARGS, *ENGINE_NAME_ARGS)]
    for key in (*PATH_KEYS, *MODEL_KEYS, *engine):
        *tables, name = key.split(".")
        table = data
        for t in tables:
            table = table.get(t) if isinstance(table, dict) else None
        v = table.get(name) if isinstance(table, dict) else None
        if not isinstance(v, str) or "$" not in v:
            continue

        def value(m: re.Match) -> str:
            if m.group(1):
                return "$"
            var = m.group(2) or m.group(3)
            if env.get(var, "").strip():
                return env[var]
            line = lines.get(key, lines.get(".".join(tables)))    # (an inline table's own line)
            where = f"{shown}:{line}" if line is not None else shown
            if var in env:
                raise ConfigError(f"{key}: ${var} is empty in the environment", where=where)
            raise ConfigError(f"{key}: ${var} is not set in the environment (write $$ for a literal $)",
                              where=where)
        table[name] = _VARIABLE.sub(value, v)


def _env_value(var: str, raw: str, kind: type) -> Any:
    text = raw.strip()
    if kind is bool:
        if text.lower() not in TRUE | FALSE:
            raise ConfigError(f"expected 1 or 0 (true/false), got {raw!r}", where=var)
        return text.lower() in TRUE
    if kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"expected {'an integer' if kind is int else 'a number'}, got {raw!r}",
                              where=var) from None
    if kind is list:                 # comma-separated, as the flag of the same setting
        return [x.strip() for x in text.split(",") if x.strip()]
    return text


# Variables of ranker's own that are no setting: the test suite's and the README screenshot's.
OTHER_ENV = ("RANKER_REQUIRE_ALL", "RANKER_SCREENSHOT", "RANKER_TEST_NETLOG")


def _misspelt_variable(env: Mapping[str, str]) -> None:
    """A ConfigError for a set variable that is a near miss of one of ranker's (RANKER_OFLINE, ranker_db): as an
    unknown key of ranker.toml, it would otherwise be a silent no-op, and RANKER_OFLINE=1 would open the network."""
    from difflib import get_close_matches
    known = {v[len("RANKER_"):]: v for v in (*ENV_KEYS, *OTHER_ENV) if v.startswith("RANKER_")}
    for var in sorted(env):
        if not var.upper().startswith("RANKER_") or var in ENV_KEYS or var in OTHER_ENV or not env[var].strip():
            continue
        near = get_close_matches(var[len("RANKER_"):].upper(), list(known), n=1, cutoff=0.8)
        if near:
            raise ConfigError(f"not a variable ranker reads (a typo?); did you mean {known[near[0]]}?", where=var)


def _flag_value(key: str, value: Any) -> Any:
    if isinstance(value, os.PathLike):
        value = str(value)
    if key in _LIST_KEYS and isinstance(value, str):
        value = [x.strip() for x in value.split(",") if x.strip()]
    return value


def parse_option(text: str) -> tuple[str, Any]:
    """'KEY=VALUE' of --backend-option: VALUE read as TOML (4, 0.5, true, [..], {..}), else as a string."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ConfigError(f"expected KEY=VALUE, got {text!r}", key=BACKEND_OPTION)
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key, value


def gather(config: str | os.PathLike | None = None, flags: Mapping[str, Any] | None = None,
           env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Gathered:
    """Collect the values of ranker.toml, the environment and the flags (None = not given), with where each
    came from. `config` None reads ./ranker.toml when there is one."""
    env = os.environ if env is None else env
    g = Gathered()
    path = Path(config) if config is not None else (cwd or Path.cwd()) / DEFAULT_CONFIG
    if config is not None or path.exists():
        shown = str(config) if config is not None else DEFAULT_CONFIG     # as the user knows it
        g.config_file = path
        g.data, lines = _read_toml(path, shown)
        _expand_variables(g.data, env, shown, lines)
        _from_folder(g.data, path.parent if config is not None or cwd is not None else Path())
        for key in _leaves(g.data):
            g.origins[key] = Origin("file", shown, lines.get(key))
        for key, n in lines.items():                 # tables too, so an error about one names its line
            g.origins.setdefault(key, Origin("file", shown, n))
        if "scoring.engine_args" in g.origins:      # the older spelling is the vllm backend's: named by its line
            g.origins.setdefault("scoring.vllm.engine_args", g.origins["scoring.engine_args"])
        g.file_data, g.file_origins = copy.deepcopy(g.data), dict(g.origins)
    _misspelt_variable(env)
    for var, (key, kind) in ENV_KEYS.items():
        if env.get(var, "").strip():
            _put_over(g, key, _env_value(var, env[var], kind), var)
            g.origins[key] = Origin("env", var)
    for var, key in SECRET_ENV.items():
        if env.get(var, "").strip():
            # stripped as every variable is: a key read from a file written on Windows (an env-file's CRLF) kept
            # its '\r', which no HTTP header may carry, and every request failed as 'connection failed'
            g.data[key] = env[var].strip()
    if "home" not in g.data:
        g.data["home"] = str(default_home(env))
    home = g.data["home"]       # ranker.toml's, RANKER_HOME or the platform's: the models go under it too
    try:
        home = expand_user(home) if isinstance(home, str) and home.strip() else None    # (a bad one: named later)
    except InputError:
        home = None
    if "models_dir" not in g.data:
        g.data["models_dir"] = str(default_models_dir(env, home))
    flags = dict(flags or {})
    options = flags.pop(BACKEND_OPTION, None) or []
    for name, value in flags.items():
        if value is None:
            continue
        if name in UNSET_FLAGS:
            key = UNSET_FLAGS[name]
            if value and any(flags.get(f) is not None for f, k in FLAG_KEYS.items() if k == key):
                raise ConfigError(f"given with {{key:{key}}}; give one of them", key=name)
            if value:
                *tables, last = key.split(".")
                table = g.data
                for part in tables:
                    table = table.get(part) if isinstance(table, dict) else None
                if isinstance(table, dict):
                    table.pop(last, None)
                g.origins[key] = Origin("flag", name)
            continue
        if name not in FLAG_KEYS:
            raise ValueError(f"no setting for the flag parameter {name!r}")
        key = FLAG_KEYS[name]
        _put_over(g, key, _flag_value(key, value), f"{{key:{key}}}")
        g.origins[key] = Origin("flag", name)
    if any(g.origins.get(k, Origin("file", "")).kind == "flag" for k in KEEP_RULE_KEYS):
        for key in KEEP_RULE_KEYS:
            if g.origins.get(key) is not None and g.origins[key].kind != "flag":
                g.data.get("prefilter", {}).pop(key.split(".")[1], None)
                del g.origins[key]
    if options:
        backend = flags.get("backend") or g.data.get("scoring", {}).get("backend") or ScoringSettings().backend
        for text in options:
            k, v = parse_option(text)
            key = f"scoring.{backend}.{k}"
            if k in ("api_key", "openai_api_key"):
                raise ConfigError("an API key is read from the environment (OPENAI_API_KEY) only", key=key)
            _put_over(g, key, v, f"{{key:{key}}}")
            g.origins[key] = Origin("flag", BACKEND_OPTION)
    return g


def _error_key(loc: tuple) -> str:
    parts = [str(p) for p in loc if not isinstance(p, int)]
    if len(parts) >= 3 and parts[:2] == ["scoring", "options"]:
        parts = ["scoring", *parts[2:]]
    return ".".join(parts)


def config_error(e: ValidationError, section: str = "") -> ConfigError:
    """The first problem of a validation as a ConfigError carrying its key (`section`: the key of the section
    that was validated, "prefilter", or "" for the whole Settings)."""
    err = e.errors()[0]
    key = _error_key((section, *err["loc"]) if section else err["loc"])
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        msg = "unknown setting" + near_miss(key.split(".")[-1], _keys_beside(key))
    elif err["type"] == "path_type":         # pydantic's words name the class: "... for <class 'pathlib.Path'>"
        msg = "expected a path, written as text"
    elif err["type"] == "model_type":        # "... or instance of PrefilterSettings": [[prefilter]], say
        msg = f"expected a table ([{key}])"
    else:
        msg = out_of_range(err, _field_at(Settings, key.split("."))) or msg
    return ConfigError(msg, key=key)


_BOUND_ERRORS = {"greater_than": "gt", "greater_than_equal": "ge", "less_than": "lt", "less_than_equal": "le"}
_BOUND_WORDS = {"gt": "more than", "ge": "at least", "lt": "less than", "le": "at most"}


def out_of_range(err: Mapping[str, Any], info: Any = None) -> str | None:
    """A number outside its setting's range, in ranker's words and with the whole range (`info`: the field's
    FieldInfo, whose bounds are read): "must be more than 0 and at most 1, got 2", where pydantic said "Input
    should be less than or equal to 1" (of a flag too: "--keep: Input should be ..."). None for another error."""
    crossed = _BOUND_ERRORS.get(err.get("type", ""))
    if crossed is None:
        return None
    bounds = {b: getattr(m, b) for m in getattr(info, "metadata", None) or [] for b in _BOUND_WORDS
              if getattr(m, b, None) is not None}
    bounds.setdefault(crossed, (err.get("ctx") or {}).get(crossed))
    said = " and ".join(f"{_BOUND_WORDS[b]} {_number(bounds[b])}" for b in _BOUND_WORDS if bounds.get(b) is not None)
    return f"must be {said}, got {_number(err.get('input'))}"


def _number(v: Any) -> Any:
    """2.0 as 2: a flag's "--keep 2" arrives as a float, and "got 2.0" is not what was typed. A float past
    float's exact integers stays a float: 1e23 was said as "got 99999999999999991611392"."""
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53 else v


def _field_at(model: Any, parts: list[str]) -> Any:
    """The FieldInfo of the setting at `parts` (["prefilter", "keep"]) of `model`, None where there is none."""
    info = None
    for part in parts:
        if not (isinstance(model, type) and issubclass(model, BaseModel)) or part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = info.annotation
    return info


def near_miss(word: str, choices, cutoff: float = 0.7) -> str:
    """'; did you mean X?' for the choice `word` is a likely typo of ('prefilte' for prefilter), else ''. The CLI's
    flags and commands use it too, with a looser cutoff (a flag is read beside its command's few others)."""
    from difflib import get_close_matches
    near = get_close_matches(word, sorted(set(choices)), n=1, cutoff=cutoff)
    return f"; did you mean {near[0]}?" if near else ""


def _keys_beside(key: str) -> list[str]:
    """The settings a file may write where `key` stands (the keys of its table), for near_miss."""
    model: Any = Settings
    for part in key.split(".")[:-1]:
        info = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if info is None:
            return []
        model = info.annotation
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [k for k, f in model.model_fields.items() if not f.exclude and k != "options"]


def _validated(data: dict) -> Settings:
    """Settings from raw values; the first problem is a ConfigError carrying its key."""
    try:
        return Settings.model_validate(data)
    except ValidationError as e:
        raise config_error(e) from None


def in_file(e: ConfigError, g: Gathered) -> ConfigError:
    """A problem with a value of the config file that something else replaced, named by the file's line and
    the key in the words it has when the file's value is the one used ("ranker.toml:3: prefilter.keep: ...");
    the key itself is not the error's, which the CLI would name as the variable or flag now holding it."""
    key = e.key or ""
    o = g.file_origins.get(key) or next((o for k, o in g.file_origins.items() if k.startswith(key + ".")), None)
    shown = o.name if o is not None else str(g.config_file)
    where = f"{shown}:{o.line}" if o is not None and o.line else shown
    return ConfigError(f"{key}: {e.message}" if key else e.message, where=where)


def build(g: Gathered) -> Settings:
    """Validate gathered values into Settings; the first problem is a ConfigError carrying its key (one with a
    value of the config file that a variable or flag replaced: naming the file's line, see in_file)."""
    prefilter = g.data.get("prefilter")
    given = [k for k in KEEP_RULE_KEYS if isinstance(prefilter, dict) and prefilter.get(k.split(".")[1]) is not None]
    if len(given) > 1:          # the prefilter would follow one and drop the others without a word
        names = [k.split(".")[1] for k in KEEP_RULE_KEYS]
        raise ConfigError(f"give one of {', '.join(names[:-1])} and {names[-1]}, not "
                          f"{' and '.join(k.split('.')[1] for k in given)}", key=given[-1])
    s = _validated(g.data)
    if g.file_data is not None:
        # a value of the file that a variable or a flag went over is checked all the same: `keep = "x"` under
        # --keep, or `home = 3` under RANKER_HOME, passed until the day the cron line or the variable went
        try:
            s._file = _validated(g.file_data)
        except ConfigError as e:
            raise in_file(e, g) from None
    s._origins = dict(g.origins)
    s._config_file = g.config_file
    if s.openai_api_key is not None:
        add_secret(s.openai_api_key.get_secret_value())     # never to appear in an error, stored or printed
    return s


def resolve(config: str | os.PathLike | None = None, flags: Mapping[str, Any] | None = None,
            env: Mapping[str, str] | None = None) -> Settings:
    """Settings from ranker.toml (or `config`), the environment and the flags: see the module doc."""
    return build(gather(config, flags, env))


# --------------------------------------------------------------------------- the settings in force
@dataclass(frozen=True)
class Effective:
    """One setting in force: its key ("prefilter.keep", "scoring.vllm.dtype"), its value as JSON-ready data (None:
    not set, the code's own choice then) and where it came from (None: the built-in default)."""
    key: str
    value: Any
    origin: Origin | None
    # not set: `value` is the one the code applies then (the prefilter's keep rule), and `why` says what made it
    applied: bool = False
    why: str | None = None


def effective(s: Settings, chosen_options: Mapping[str, Any] | None = None) -> list[Effective]:
    """Every setting of `s` with its value and origin, in the file's order: the top-level keys, then each table's,
    the [scoring.<backend>] tables after [scoring]'s: the chosen backend's as `chosen_options` gives it (every option,
    its defaults included: ranker.backends.options_in_force), another's as given. The database is the path in
    use (home/ranker.sqlite3 when no `db` is given), every path absolute. No secret: the API key is left out
    and a password in a URL redacted, as in the run manifest."""
    def origin(key: str) -> Origin | None:
        o = s.origins.get(key)      # else a value inside it: one key of a table-valued setting, engine_args'
        return o if o is not None else next((o for k, o in s.origins.items() if k.startswith(key + ".")), None)

    def backend_tables() -> list[Effective]:
        out = []
        chosen = s.scoring.backend
        for backend in [chosen, *sorted(b for b in s.scoring.options if b != chosen)]:
            given = data["scoring"]["options"].get(backend, {})
            if backend == chosen and chosen_options is not None:
                given = chosen_options
            out += [Effective(f"scoring.{backend}.{k}", _redacted(v), origin(f"scoring.{backend}.{k}"))
                    for k, v in given.items()]
        return out

    data = s.public()
    data["db"] = str(s.db_path)
    top: list[Effective] = []
    tables: list[Effective] = []
    for name, info in Settings.model_fields.items():
        if info.exclude:
            continue                                    # the API key
        section = info.annotation
        if not (isinstance(section, type) and issubclass(section, _Section)):
            top.append(Effective(name, _absolute(name, data[name]), origin(name)))
            continue
        tables += [Effective(f"{name}.{sub}", _absolute(f"{name}.{sub}", data[name][sub]), origin(f"{name}.{sub}"))
                   for sub in section.model_fields if (name, sub) != ("scoring", "options")]
        if name == "scoring":
            tables += backend_tables()
    return top + tables


def _absolute(key: str, value: Any) -> Any:
    """A path setting's value as the absolute path it stands for (a relative one is the working folder's)."""
    return str(Path(value).absolute()) if key in PATH_KEYS and isinstance(value, str) else value


def _redacted(v: Any) -> Any:
    """JSON-ready data with every text redacted (io.redact)."""
    from .io import redact
    if isinstance(v, str):
        return redact(v)
    if isinstance(v, dict):
        return {k: _redacted(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_redacted(x) for x in v]
    return v
