"""The `ranker` command: a thin layer over the library. The only place that prints and exits."""
from __future__ import annotations

import errno
import os
import select
import signal
import sys
import threading
from typing import Callable, Mapping

import typer
from typer.core import TyperCommand, TyperGroup

from .. import __version__
from . import (backfill, calibrate, compare, config, evaluate, fetch, import_, index, labels, models, prefilter, run,
               score, serve, similar, site)
from .common import (GIVEN, SETTING_PATHS, QuietOpt, VerboseOpt, alert, debugging, error_line, leave_bar,
                     note_given, os_error_line, sqlite_error_line, terminal, usage_line)
from .term import TERM, terminal_streams, thread_traceback, write_traceback

EXAMPLES = """Rank the daily arXiv flood with local models: fetch -> prefilter -> score -> digest / compare.

\b
Examples:
  ranker run --out ~/digests                       today's cs.LG + cs.AI, ranked, into ~/digests/<date>-*
  ranker run --out ~/digests --date 2025-05-15     rebuild a past day (arXiv API)
  ranker run --papers day.jsonl --out digest/ --offline
  ranker prefilter --papers day.jsonl --out ranked.jsonl --keep 0.3
  ranker similar 2505.09343 --k 10                 the nearest papers of the corpus the database holds
  ranker models list

Engine and library messages go to a log file under $RANKER_HOME/logs (its path is printed when a command
fails); -v/--verbose shows them instead. -q/--quiet says nothing on a good run, only warnings, errors and the
data asked for on stdout: a cron job mails only trouble. `ranker COMMAND --help` has each command's options and
an example.
"""


class _CtrlC(BaseException):
    """Carries a Ctrl-C out of a command past typer's runner, which would turn it into a returned status 130
    and drop what the library said about it (the step, the papers kept)."""

    def __init__(self, interrupt: KeyboardInterrupt):
        super().__init__(str(interrupt))
        self.interrupt = interrupt


class _BrokenPipe(BaseException):
    """Carries an EPIPE out of a command past typer's runner, which ends on any EPIPE with status 1 and no word,
    as if the reader of stdout had gone: a pipe to a worker that died said nothing, even under RANKER_DEBUG."""

    def __init__(self, error: OSError):
        super().__init__(str(error))
        self.error = error


class _Group(TyperGroup):
    def make_context(self, info_name, args, parent=None, **extra):
        # `ranker --help` and --version write while the command line is read, where click ends an EPIPE with
        # its own status 1 as well
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise _BrokenPipe(e) from e
            raise

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as e:
            raise _CtrlC(e) from e
        except OSError as e:
            if e.errno == errno.EPIPE:
                raise _BrokenPipe(e) from e
            raise


class _Command(TyperCommand):
    def invoke(self, ctx):
        note_given(ctx)         # an error about a file an option was given names that option (common.given_key)
        return super().invoke(ctx)


app = typer.Typer(
    name="ranker",
    cls=_Group,
    help=EXAMPLES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,          # plain help: flags shown as flags, no markup read into help texts
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ranker {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit."),
          verbose: VerboseOpt = False, quiet: QuietOpt = False) -> None:
    """ranker: a local, offline ranker for the daily arXiv announcements."""
    terminal(verbose=verbose, quiet=quiet)


# Each command lives in its own module (heavy imports happen inside the command); listed here, in --help order.
for _module in (fetch, prefilter, calibrate, score, run, compare, evaluate, similar, index, models, serve, site,
                labels, backfill, import_, config):
    _module.register(app)


def _noting(typer_app: typer.Typer) -> None:
    """Every command (of the subcommand groups too) a _Command."""
    for command in typer_app.registered_commands:
        if command.cls in (None, TyperCommand):        # typer's default (None in older typers)
            command.cls = _Command
    for group in typer_app.registered_groups:
        _noting(group.typer_instance)


_noting(app)


def _fail(line: str, code: int = 1) -> None:
    from ..io import redact
    alert(f"error: {redact(line)}{TERM.log_note()}")
    TERM.restore()
    sys.exit(code)


def _interrupted(e: KeyboardInterrupt | None) -> None:
    """Ctrl-C: one line (the step and what is kept), status 130. After a SIGTERM, the same line, and the process
    then ends by that signal, as it did before it had a handler."""
    from ..errors import Interrupted
    line = str(e) if isinstance(e, Interrupted) else "interrupted; what was stored so far is kept; rerun to resume"
    alert(line)
    TERM.restore()
    if _TERMINATED:
        _end_by(signal.SIGTERM)
    sys.exit(130)


def _on_ctrl_c(signum, frame) -> None:
    """SIGINT: raise KeyboardInterrupt, and say so to the library too (a step stops at its next checkpoint
    even if an engine swallows the exception). A second Ctrl-C stops the process at once; the next command
    marks its run interrupted."""
    from ..errors import interrupt_requested, request_interrupt
    if interrupt_requested():
        line = b"interrupted again: stopping now; what was stored so far is kept; rerun to resume\n"
        try:                                    # the terminal's stderr (fd 2 may be the command's log)
            os.write(TERM.err.fileno(), leave_bar() + line)   # never glued to a bar, nor the cursor left hidden
        except (OSError, ValueError, AttributeError):
            os.write(2, line)
        os._exit(130)
    request_interrupt()
    raise KeyboardInterrupt


_TERMINATED: list[int] = []     # a SIGTERM came: the command stops as at a Ctrl-C, then ends by the signal


def _on_term(signum, frame) -> None:
    """SIGTERM (systemd stopping the unit, its timeout, a shutdown; `kill PID` from a script): the command stops
    as at a Ctrl-C, so the run is recorded interrupted, its manifest says so, the day's web view is put back and
    the engine closed, where the default action left a run marked running and said nothing in the cron mail or
    the journal. A second one ends the process at once."""
    from ..errors import interrupt_requested, request_interrupt
    _TERMINATED.append(signum)
    if interrupt_requested():
        _end_by(signum)
    request_interrupt()
    raise KeyboardInterrupt


def _end_by(signum: int) -> None:
    """End the process by `signum` at its default action (whoever sent it sees it obeyed: a shell's 143, a
    systemd stop that counts as clean), what was written flushed first."""
    for stream in (sys.stdout, sys.stderr, TERM.out, TERM.err):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)                  # not reached: the default action of SIGTERM ends the process


def _reader_gone() -> None:
    """The reader of stdout (or of an --out pipe) went away (`ranker fetch --out - | head -1`): no line, and the
    process ends by SIGPIPE, as `cat`, `grep` or `yes` do then (the shell's 141; a script telling a reader gone
    from a failure by it: status 1 said "error" where no error was). What is still buffered for that reader is
    dropped: a stream whose flush fails is pointed at /dev/null, so the last flush before the end says nothing.
    Also where the caller ignored SIGPIPE (`trap '' PIPE`, a Python parent's restore_signals=False), where `cat`
    would exit 1 with a line: the interpreter sets SIGPIPE to ignored at its start and keeps no record of the
    disposition it inherited (signal.getsignal says SIG_IGN either way), so that caller cannot be told apart."""
    TERM.restore()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            try:
                null = os.open(os.devnull, os.O_WRONLY)
                os.dup2(null, stream.fileno())
                os.close(null)
            except (OSError, ValueError):
                pass
    _end_by(signal.SIGPIPE)


def _broken_pipe(e: BaseException) -> bool:
    """The reader of the command's stdout (or of an --out pipe) went away: a ReaderGone, a failed write to
    stdout (naming_stdout names it), or an EPIPE naming nothing while stdout's own reader is gone (click's help
    and usage text, written past naming_stdout: `ranker fetch --help | head -0` said 'error: broken pipe').
    Any other EPIPE (a closed pipe to an engine's worker, a server's socket) is an error as any other, said in
    its line (or its traceback under RANKER_DEBUG)."""
    from ..errors import ReaderGone
    from .common import STDOUT
    if isinstance(e, ReaderGone):
        return True
    if not isinstance(e, OSError) or e.errno != errno.EPIPE:
        return False
    return e.filename == STDOUT or (e.filename is None and _stdout_reader_gone())


def _stdout_reader_gone() -> bool:
    """Whether the command's stdout (TERM.out: descriptor 1, or its saved copy while 1 carries the log) is a pipe
    or socket with no reader left: poll reports POLLERR on a pipe's write end once its last reader closed (POLLHUP
    on a socket whose peer shut down); a live, full or idle pipe, a file or a terminal reports neither."""
    try:
        fd = TERM.out.fileno()
    except (OSError, ValueError, AttributeError):
        fd = 1
    try:
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _named(e: OSError) -> OSError:
    """A failed write that names no file, made by click itself to the command's stdout (the help of `ranker
    --help > /dev/full`, --version), named stdout as naming_stdout names ranker's own writes: the line was 'no
    space left on device', naming nothing. Any other error as it is."""
    from .common import STDOUT
    if e.filename is not None:
        return e
    tb = e.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        # click's echo, or typer's own copy of click (typer._click.utils)
        if frame.f_code.co_name == "echo" and str(frame.f_globals.get("__name__")).endswith("click.utils"):
            if _is_stdout(frame.f_locals.get("file")):
                return OSError(e.errno, e.strerror or str(e), STDOUT)
        tb = tb.tb_next
    return e


def _is_stdout(stream) -> bool:
    """Whether a stream click wrote to is the command's stdout (descriptor 1, or TERM.out while 1 is the log)."""
    if stream is None:
        return False
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return stream is sys.stdout
    if not TERM.capturing:
        return fd == 1
    try:
        return fd == TERM.out.fileno()
    except (OSError, ValueError, AttributeError):
        return False


def _help(ctx) -> None:
    """A group's help for a command line that names no subcommand, status 0. Written here, in main()'s own
    handler, so a reader gone (`ranker labels | true`) or a full disk is judged here too: it printed a
    traceback."""
    from .common import naming_stdout
    try:
        with naming_stdout():
            typer.echo(ctx.get_help())
    except OSError as err:
        if _broken_pipe(err):
            _reader_gone()
        _fail(os_error_line(err))
    sys.exit(0)


def _after_ctrl_c() -> None:
    """After Ctrl-C, an error that reaches main() is its echo (an engine whose worker got the same signal)."""
    from ..errors import interrupt_requested
    if interrupt_requested():
        _interrupted(None)


def _std_streams() -> None:
    """A standard descriptor the caller closed (`2>&-` in a cron line, `>&-`, a daemon's `<&-`) is /dev/null
    from here on. Python gives no stream for it (sys.stderr None): every command fell over its first note,
    its error line landing on stdout among the data; and the next file opened (the log, the database) would
    take the free number and receive what is written to it."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)       # the lowest free number: fd itself
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdin is None:
        sys.stdin = open(0, closefd=False)
    if sys.stdout is None:
        sys.stdout = open(1, "w", buffering=1, closefd=False)
    if sys.stderr is None:
        sys.stderr = open(2, "w", buffering=1, closefd=False)


def script_main(main: Callable[[], int | None], flags: Mapping[str, str] | None = None) -> int | None:
    """A script's main() (scripts/*.py) ended as a command is: what the user can fix (a RankerError: an embedder
    not prepared) is the command's one line and status 1, not a traceback; RANKER_DEBUG=1 shows the traceback.
    `flags`: the script's own flags by the config key each stands for ({"prefilter.embedder": "--embedder"}),
    which the line names instead of the key. Its return value is the script's status."""
    from ..errors import RankerError
    try:
        return main()
    except RankerError as e:
        if debugging():
            raise
        _fail(error_line(e, flags))


def main() -> None:
    import sqlite3

    from ..errors import RankerError
    from ..io import given_descriptors, open_descriptors
    given_descriptors(open_descriptors())      # before anything is opened: /dev/fd/N is the caller's only for these
    _std_streams()
    terminal_streams()
    threading.excepthook = thread_traceback    # a thread's uncaught exception: redacted, as the log's lines are
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:    # not where the shell ignores it
        signal.signal(signal.SIGINT, _on_ctrl_c)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:               # not where the caller ignores it
        signal.signal(signal.SIGTERM, _on_term)
    try:
        try:
            status = app(standalone_mode=False, prog_name="ranker")
        except _BrokenPipe as e:
            raise e.error from None             # as raised, for what follows (and its traceback)
    except _CtrlC as e:
        if debugging():
            raise e.interrupt from None
        _interrupted(e.interrupt)
    except KeyboardInterrupt as e:
        _interrupted(e)
    except RankerError as e:
        if debugging():
            raise
        _after_ctrl_c()
        if _broken_pipe(e):
            _reader_gone()
        _fail(error_line(e))
    except SystemExit:
        TERM.restore()
        raise
    except Exception as e:  # usage errors and anything unexpected: one line, never a traceback
        if isinstance(e, typer.Exit):
            TERM.restore()
            sys.exit(e.exit_code)
        if isinstance(e, typer.Abort):
            alert("aborted")
            TERM.restore()
            sys.exit(130)
        if type(e).__name__ == "NoArgsIsHelpError" and getattr(e, "ctx", None) is not None:
            _help(e.ctx)                        # `ranker models`: its help, as `ranker` alone shows
        if debugging():
            TERM.restore()
            raise
        _after_ctrl_c()
        if _broken_pipe(e):
            _reader_gone()
        if isinstance(e, typer.TyperException):
            _fail(usage_line(e))        # bad input, as any other: status 1 (never click's 2)
        if isinstance(e, sqlite3.Error):
            _fail(sqlite_error_line(e))
        if isinstance(e, OSError):
            _fail(os_error_line(_named(e)))
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        _fail(f"unexpected failure: {first} (set RANKER_DEBUG=1 for the traceback)")
    finally:
        TERM.restore()
        # after the error line is written: the options of this command line are no later call's (a library
        # call of the same process, an error of `fetch --from -` was said "--from stdin" in it)
        GIVEN.clear()
        SETTING_PATHS.clear()
        TERM.quiet = TERM.verbose = False       # -q/-v are this command's too (`models list -q` then `-v` refused)
        # what leaves main() unhandled (RANKER_DEBUG's re-raise, or a failure in the handlers themselves) is
        # printed redacted, as its one line would have been; set here, after the app ran, since typer sets its
        # own (Python's, unredacted: a URL's password in an exception's text reached the terminal) on every call
        sys.excepthook = write_traceback
    if status == 130:                        # typer's answer to a Ctrl-C outside any command (while parsing)
        _interrupted(None)
    if isinstance(status, int) and status:   # typer returns the status of an Exit instead of exiting
        sys.exit(status)
