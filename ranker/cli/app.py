"""The `ranker` command: a thin layer over the library. The only place that prints and exits."""
from __future__ import annotations

import sys

import typer

from .. import __version__
from . import calibrate, compare, fetch, index, models, prefilter, run, score, similar
from .common import error_line

app = typer.Typer(
    name="ranker",
    help="Rank the daily arXiv flood with local models: fetch -> prefilter -> score -> digest / compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ranker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit.")) -> None:
    """ranker: a local, offline ranker for the daily arXiv announcements."""


# Each command lives in its own module (heavy imports happen inside the command); listed here, in --help order.
for _module in (fetch, prefilter, calibrate, score, run, compare, similar, index, models):
    _module.register(app)


def main() -> None:
    from ..errors import RankerError
    from ..settings import debug_from_env
    debug = debug_from_env()
    try:
        app(standalone_mode=False)
    except RankerError as e:
        if debug:
            raise
        typer.echo(f"error: {error_line(e)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("interrupted: what was written so far is kept; run the same command again to resume",
                   err=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors and anything unexpected: one line, never a traceback
        import click
        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        if isinstance(e, click.ClickException):
            if debug:
                raise
            typer.echo(f"error: {e.format_message()}", err=True)
            sys.exit(e.exit_code if isinstance(e, click.UsageError) else 1)
        if isinstance(e, click.exceptions.Abort):
            typer.echo("aborted", err=True)
            sys.exit(130)
        if debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        typer.echo(f"error: {type(e).__name__}: {first} (set RANKER_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
