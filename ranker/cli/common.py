"""Options shared by several commands, declared once."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

DbOpt = Annotated[Optional[Path], typer.Option("--db", help="SQLite database (default: $RANKER_HOME/ranker.sqlite3).",
                                               show_default=False)]
PromptsOpt = Annotated[Optional[Path], typer.Option("--prompts", help="Prompt directory in the seed layout "
                                                    "(default: the bundled prompt set).", show_default=False)]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="A ranker.toml with defaults; flags override it.",
                                                   show_default=False)]
PapersOpt = Annotated[Path, typer.Option("--papers", help="Papers JSONL (from `ranker fetch` or `ranker prefilter`).")]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Open no network connection except to loopback "
                                          "(same as RANKER_OFFLINE=1).")]
EmbedderOpt = Annotated[Optional[str], typer.Option("--embedder", help="Embedding model: a preset name (minilm, "
                                                    "mpnet), a local folder or a Hugging Face id.",
                                                    show_default=False)]


def echo(msg: str = "") -> None:
    """stdout: results a user asked for."""
    typer.echo(msg)


def info(msg: str) -> None:
    """stderr: progress and notes, so stdout stays clean for pipes."""
    typer.echo(msg, err=True)


def progress_enabled() -> bool:
    return sys.stderr.isatty()


def apply_offline(offline: bool) -> None:
    if offline:
        from ..netguard import enable_offline
        enable_offline()


BackendOpt = Annotated[Optional[str], typer.Option("--backend", help="Scoring backend: vllm, llamacpp (CPU), "
                                                   "transformers, openai (or fake, for tests).", show_default=False)]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="LLM: a preset (smollm2-135m, qwen2.5-coder-0.5b), "
                                                 "a local folder or a Hugging Face id (llamacpp: a preset or a "
                                                 ".gguf file).", show_default=False)]
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


class Progress:
    """A progress bar on a terminal (stderr), silence elsewhere."""

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

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self._bar is None:
            return
        if stage not in self._tasks:
            self._tasks[stage] = self._bar.add_task(stage, total=total)
        self._bar.update(self._tasks[stage], completed=done, total=total)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)


def config_with_overrides(config_path, **flags):
    """Load the TOML config and apply the flags a user gave (None = not given)."""
    from ..config import load_config
    cfg = load_config(config_path)
    sections = {"backend": "scoring", "model": "scoring", "prompts": "scoring", "score_mode": "scoring",
                "prompt_layout": "scoring", "papers_per_request": "scoring",
                "embedder": "prefilter", "keep": "prefilter", "top": "prefilter",
                "calibration": "prefilter", "min_relevance": "digest", "min_novelty": "digest",
                "categories": "fetch", "announce": "fetch"}
    from pydantic import ValidationError
    from ..errors import ConfigError
    for key, value in flags.items():
        if value is None:
            continue
        section = getattr(cfg, sections[key])
        try:
            setattr(section, key, str(value) if isinstance(value, Path) else value)
            type(section).model_validate(section.model_dump())
        except ValidationError as e:
            raise ConfigError(e.errors()[0]["msg"], where=f"--{key.replace('_', '-')}") from None
    return cfg
