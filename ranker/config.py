"""The one place that reads environment variables, paths and the TOML config.

Environment:
  RANKER_HOME        where the database, FAISS indexes and caches live (default: the platform's user data dir)
  RANKER_DB          the SQLite file (default: $RANKER_HOME/ranker.sqlite3)
  RANKER_MODELS_DIR  where prepared model folders live (default: the repository's models/ folder)
  RANKER_OFFLINE     1 = never open a non-loopback connection
  RANKER_DEBUG       1 = show full tracebacks
  RANKER_RSS_URL, RANKER_API_URL   base URLs of arXiv's RSS feed and API (tests point them at 127.0.0.1)
  RANKER_FETCH_TIMEOUT, RANKER_FETCH_RETRIES, RANKER_FETCH_BACKOFF, RANKER_API_DELAY   network politeness knobs
  OPENAI_BASE_URL, OPENAI_API_KEY  the OpenAI-compatible server for the `openai` backend
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RSS_URL = "https://rss.arxiv.org/rss/"
DEFAULT_API_URL = "https://export.arxiv.org/api/query"


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def home() -> Path:
    if os.environ.get("RANKER_HOME"):
        return Path(os.environ["RANKER_HOME"]).expanduser()
    from platformdirs import user_data_dir
    return Path(user_data_dir("ranker", appauthor=False))


def db_path(override: str | Path | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    if os.environ.get("RANKER_DB"):
        return Path(os.environ["RANKER_DB"]).expanduser()
    return home() / "ranker.sqlite3"


def models_dir() -> Path:
    if os.environ.get("RANKER_MODELS_DIR"):
        return Path(os.environ["RANKER_MODELS_DIR"]).expanduser()
    bundled = REPO_ROOT / "models"
    if (bundled / "presets.toml").exists():
        return bundled
    return home() / "models"


def presets_file() -> Path:
    for cand in (models_dir() / "presets.toml", REPO_ROOT / "models" / "presets.toml"):
        if cand.exists():
            return cand
    return Path(__file__).parent / "presets.toml"


def offline() -> bool:
    return env_flag("RANKER_OFFLINE")


def debug() -> bool:
    return env_flag("RANKER_DEBUG")


def rss_url() -> str:
    return os.environ.get("RANKER_RSS_URL", DEFAULT_RSS_URL)


def api_url() -> str:
    return os.environ.get("RANKER_API_URL", DEFAULT_API_URL)


def _env_number(name: str, kind: type = float) -> float | int | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"expected a {kind.__name__}, got {raw!r}", where=name) from None
    if value < 0:
        raise ConfigError(f"must not be negative, got {raw!r}", where=name)
    return value


def fetch_timeout() -> float | None:
    """RANKER_FETCH_TIMEOUT: seconds to wait for an arXiv server to answer (default: [fetch] timeout)."""
    return _env_number("RANKER_FETCH_TIMEOUT")


def fetch_retries() -> int | None:
    """RANKER_FETCH_RETRIES: retries after a 429/5xx or a connection error (default: [fetch] retries)."""
    return _env_number("RANKER_FETCH_RETRIES", int)


def fetch_backoff() -> float | None:
    """RANKER_FETCH_BACKOFF: seconds before the first retry, doubled each time (tests set it near 0)."""
    return _env_number("RANKER_FETCH_BACKOFF")


def api_delay() -> float | None:
    """RANKER_API_DELAY: seconds between two arXiv API requests (arXiv asks for 3)."""
    return _env_number("RANKER_API_DELAY")


def openai_base_url() -> str:
    return os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")


def openai_api_key() -> str | None:
    """The key is only ever read here, from the environment; it is never written anywhere."""
    return os.environ.get("OPENAI_API_KEY") or None


# --------------------------------------------------------------------------- the TOML config
class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FetchConfig(_Section):
    categories: list[str] = ["cs.LG", "cs.AI"]
    announce: list[Literal["new", "cross", "replace", "replace-cross"]] = ["new", "cross"]
    timeout: float = Field(30.0, gt=0)
    retries: int = Field(5, ge=0)


class PrefilterConfig(_Section):
    embedder: str = "minilm"
    keep: float = Field(0.4, gt=0, le=1)
    top: int | None = Field(None, ge=1)
    min_keep: int = Field(20, ge=0)
    calibration: str | None = None


class ScoringConfig(_Section):
    backend: str = "vllm"
    model: str = "smollm2-135m"
    prompts: str | None = None
    score_mode: Literal["greedy", "expected"] = "greedy"
    papers_per_request: int = Field(1, ge=1)
    abstract_tokens: int = Field(400, ge=16)
    comment_chars: int = Field(300, ge=20)
    batch_size: int = Field(64, ge=1)        # requests per engine call; scores are saved after each call
    prompt_layout: Literal["seed", "instructions-first"] = "seed"   # see ranker.prompts.build_messages
    novelty_context: int = Field(0, ge=0, le=50)   # K earlier related papers shown in each prompt (0 = off)
    engine_args: dict = {}


class DigestConfig(_Section):
    min_relevance: int = Field(8, ge=1, le=10)
    min_novelty: int = Field(7, ge=1, le=10)


class Config(_Section):
    fetch: FetchConfig = FetchConfig()
    prefilter: PrefilterConfig = PrefilterConfig()
    scoring: ScoringConfig = ScoringConfig()
    digest: DigestConfig = DigestConfig()


def load_config(path: str | Path | None = None) -> Config:
    """Read a ranker.toml; no path (and no ./ranker.toml) gives the defaults."""
    if path is None:
        cand = Path("ranker.toml")
        if not cand.exists():
            return Config()
        path = cand
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("config file not found", where=str(path)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"not valid TOML: {e}", where=str(path)) from None
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise ConfigError(f"{key}: {err['msg']}", where=str(path)) from None
