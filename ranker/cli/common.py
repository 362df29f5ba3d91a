"""What the commands share: the settings edge (flags -> one Settings), options declared once, printing, and
the wording of errors (a setting's key named as the flag, variable or ranker.toml entry it came from)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from ..errors import RankerError
    from ..settings import Origin, Settings

DbOpt = Annotated[Optional[Path], typer.Option("--db", help="SQLite database (default: $RANKER_HOME/ranker.sqlite3).",
                                               show_default=False)]
PromptsOpt = Annotated[Optional[Path], typer.Option("--prompts", help="Prompt directory in the seed layout "
                                                    "(default: the bundled prompt set).", show_default=False)]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="A ranker.toml with defaults; flags override it.",
                                                   show_default=False)]
PapersOpt = Annotated[Path, typer.Option("--papers", help="Papers JSONL (from `ranker fetch` or `ranker prefilter`).")]
OfflineOpt = Annotated[Optional[bool], typer.Option("--offline", help="Open no network connection except to "
                                                    "loopback (same as RANKER_OFFLINE=1).", show_default=False)]
EmbedderOpt = Annotated[Optional[str], typer.Option("--embedder", help="Embedding model: a preset name (minilm, "
                                                    "mpnet), a local folder or a Hugging Face id.",
                                                    show_default=False)]
BackendOpt = Annotated[Optional[str], typer.Option("--backend", help="Scoring backend: vllm, transformers, openai "
                                                   "(or fake, for tests).", show_default=False)]
BackendOptionOpt = Annotated[Optional[list[str]], typer.Option(
    "--backend-option", help="KEY=VALUE: an option of the chosen backend, as in its table of ranker.toml "
    "(e.g. dtype=bfloat16, concurrency=16, engine_args='{ tensor_parallel_size = 2 }'); repeat for more.",
    show_default=False)]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="LLM: a preset (smollm2-135m, qwen2.5-coder-0.5b), "
                                                 "a local folder or a Hugging Face id.", show_default=False)]
ScoreModeOpt = Annotated[Optional[str], typer.Option("--score-mode", help="greedy (integers) or expected (also the "
                                                     "probability-weighted mean of the score values).",
                                                     show_default=False)]
MaxTokensOpt = Annotated[Optional[int], typer.Option(
    "--max-tokens", help="Cut each paper to this many tokens before embedding (default 128, what the bundled "
    "embedders were trained on; 256 reads more of the abstract, twice as slowly). Calibrate and prefilter "
    "with the same value.", show_default=False)]
LayoutOpt = Annotated[Optional[str], typer.Option(
    "--prompt-layout", help="seed (the seed's order: papers, then the output instructions) or "
    "instructions-first (instructions join the shared prefix: fewer tokens computed per paper).",
    show_default=False)]
CalibrationOpt = Annotated[Optional[Path], typer.Option(
    "--calibration", help="A calibration file from `ranker calibrate` (learned from your GPT digest history).",
    show_default=False)]


# --------------------------------------------------------------------------- printing
def echo(msg: str = "") -> None:
    """stdout: results a user asked for."""
    typer.echo(msg)


def info(msg: str) -> None:
    """stderr: progress and notes, so stdout stays clean for pipes."""
    typer.echo(msg, err=True)


def warn(msg: str) -> None:
    """stderr: a ranker.io.Warn callback (a skipped line, a retry)."""
    typer.echo(f"warning: {msg}", err=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


class Progress:
    """A progress bar on a terminal (stderr), silence elsewhere: a ranker.io.Progress callback. A stage of
    unknown size (total None) shows a running count."""

    def __init__(self):
        self._bar = None
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        if progress_enabled():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
                TimeElapsedColumn
            from rich.console import Console
            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._bar.__enter__()
        return self

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if self._bar is None or (total is None and done % 200):
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._bar.add_task(stage, total=total)
        self._bar.update(self._tasks[stage], completed=done, total=total)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)


# --------------------------------------------------------------------------- the settings edge
ORIGINS: dict[str, "Origin"] = {}      # where each value of this command's settings came from, by key
# Parameters whose flag is not "--" + the name with dashes.
_FLAG_NAMES = {"from_": "--from", "categories": "--category", "fmt": "--format"}


def load_settings(config: Path | None, **flags) -> "Settings":
    """The one Settings of this command, from ranker.toml, the environment and its flags (None = not given);
    also checks the chosen backend's options and switches offline mode on when asked."""
    from .. import settings
    g = settings.gather(config, flags)
    ORIGINS.clear()
    ORIGINS.update(g.origins)
    s = settings.build(g)
    from ..backends import check_options
    check_options(s)
    if s.offline:
        from ..netguard import enable_offline
        enable_offline()
    return s


def flag_name(param: str) -> str:
    return _FLAG_NAMES.get(param) or "--" + param.rstrip("_").replace("_", "-")


def name_key(key: str) -> str:
    """A key at fault as the user gave it: --keep, RANKER_FETCH_RETRIES, 'ranker.toml: prefilter.keep', or
    for a plain parameter ("date") its flag."""
    from ..settings import BACKEND_OPTION, Settings
    origin = ORIGINS.get(key)
    if origin is not None:
        if origin.kind == "flag":
            if origin.name == BACKEND_OPTION:
                return f"{flag_name(BACKEND_OPTION)} {key.rsplit('.', 1)[-1]}"
            return flag_name(origin.name)
        if origin.kind == "env":
            return origin.name
        return f"{origin.name}: {key}"
    if "." in key or key in Settings.model_fields:
        return key
    return flag_name(key)


def name_mention(key: str) -> str:
    """A setting a message advises on: its flag when there is one, else its variable, else its key."""
    from ..settings import ENV_KEYS, FLAG_KEYS
    for name, k in FLAG_KEYS.items():
        if k == key:
            return flag_name(name)
    for var, (k, _kind) in ENV_KEYS.items():
        if k == key:
            return var
    if "." not in key:
        return flag_name(key)
    return key


def error_line(e: "RankerError") -> str:
    return e.render(name_key, name_mention)
