"""The `ranker` command: a thin layer over the library. The only place that prints and exits."""
from __future__ import annotations

import os
import signal
import sys

import typer
from typer.core import TyperGroup

from .. import __version__
from . import calibrate, compare, fetch, models, prefilter, run, score
from .common import error_line


class _CtrlC(BaseException):
    """Carries a Ctrl-C out of a command past typer's runner, which would turn it into a returned status 130
    and drop what the library said about it (the step, the papers kept)."""

    def __init__(self, interrupt: KeyboardInterrupt):
        super().__init__(str(interrupt))
        self.interrupt = interrupt


class _Group(TyperGroup):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:
            raise _CtrlC(e) from e


app = typer.Typer(
    name="ranker",
    cls=_Group,
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
for _module in (fetch, prefilter, calibrate, score, run, compare, models):
    _module.register(app)


def _interrupted(e: KeyboardInterrupt | None) -> None:
    """Ctrl-C: one line (the step and what is kept), status 130."""
    from ..errors import Interrupted
    line = str(e) if isinstance(e, Interrupted) else "interrupted; what was stored so far is kept; rerun to resume"
    typer.echo(line, err=True)
    sys.exit(130)


def _on_ctrl_c(signum, frame) -> None:
    """SIGINT: raise KeyboardInterrupt, and say so to the library too (a step stops at its next checkpoint
    even if an engine swallows the exception). A second Ctrl-C stops the process at once; the next command
    marks its run interrupted."""
    from ..errors import interrupt_requested, request_interrupt
    if interrupt_requested():
        os.write(2, b"interrupted again: stopping now; what was stored so far is kept; rerun to resume\n")
        os._exit(130)
    request_interrupt()
    raise KeyboardInterrupt


def _after_ctrl_c() -> None:
    """After Ctrl-C, an error that reaches main() is its echo (an engine whose worker got the same signal)."""
    from ..errors import interrupt_requested
    if interrupt_requested():
        _interrupted(None)


def main() -> None:
    from ..errors import RankerError
    from ..io import redact
    from ..settings import debug_from_env
    debug = debug_from_env()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:    # not where the shell ignores it
        signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        status = app(standalone_mode=False)
    except _CtrlC as e:
        if debug:
            raise e.interrupt from None
        _interrupted(e.interrupt)
    except KeyboardInterrupt as e:
        _interrupted(e)
    except RankerError as e:
        if debug:
            raise
        _after_ctrl_c()
        typer.echo(f"error: {redact(error_line(e))}", err=True)
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors and anything unexpected: one line, never a traceback
        import click
        if isinstance(e, click.exceptions.Exit):
            sys.exit(e.exit_code)
        if isinstance(e, click.ClickException):
            if debug:
                raise
            typer.echo(f"error: {redact(e.format_message())}", err=True)
            sys.exit(e.exit_code if isinstance(e, click.UsageError) else 1)
        if isinstance(e, click.exceptions.Abort):
            typer.echo("aborted", err=True)
            sys.exit(130)
        if debug:
            raise
        _after_ctrl_c()
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        typer.echo(f"error: {type(e).__name__}: {redact(first)} (set RANKER_DEBUG=1 for the traceback)", err=True)
        sys.exit(1)
    if status == 130:                        # typer's answer to a Ctrl-C outside any command (while parsing)
        _interrupted(None)
    if isinstance(status, int) and status:   # typer returns the status of an Exit instead of exiting
        sys.exit(status)
