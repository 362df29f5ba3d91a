"""What the commands share: the settings edge (flags -> one Settings), options declared once, printing, and
the wording of errors (a setting's key named as the flag, variable or ranker.toml entry it came from)."""
from __future__ import annotations

import os
import re
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Callable, Iterator, Mapping, Optional

import typer

from ..advice import prepare_advice
from ..io import LOADING, fs_text, stdin_or_descriptor
from .term import TERM, command_name

if TYPE_CHECKING:
    from ..errors import RankerError
    from ..settings import Origin, Settings
    from ..store import Store

def given_path(raw: str) -> Path:
    """A path option's value as typed; an empty one (`--out "$DIR"` with DIR unset) is an error, where Path("")
    would quietly be the working folder, and so is a URL (Path would fold its "//" into a name no one meant)."""
    if not raw.strip():
        raise typer.BadParameter("empty; give a value or leave the option out")
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", raw.strip()):
        raise typer.BadParameter("a URL where a local path is expected (save what it points to first)")
    from ..errors import InputError
    from ..io import expand_user
    try:
        expand_user(raw)            # `--db '~nosuch/db'`: said as this flag's, not 'unexpected failure'
    except InputError as e:
        raise typer.BadParameter(e.message) from None
    return Path(raw)


def given_text(raw: str) -> str:
    """A free-text argument (a query) as the user typed it. Under a locale whose encoding cannot spell it (LC_ALL=C
    with Python's UTF-8 mode off: ASCII) Python hands argv's non-ASCII bytes over as surrogate escapes
    ("na\\udcc3\\udcafve"), which neither a model nor a UTF-8 hash takes ('unexpected failure: surrogates not
    allowed'): they are read as the UTF-8 the terminal sent. Bytes that are no UTF-8 at all are this argument's
    error."""
    text = fs_text(raw)
    if any("\udc80" <= c <= "\udcff" for c in text):
        raise typer.BadParameter("not UTF-8 text (bytes the terminal's encoding sent?): type it again in UTF-8")
    return text


DbOpt = Annotated[Optional[Path], typer.Option("--db", help="SQLite database (default: $RANKER_DB, else ranker.toml's "
                                               "db, else $RANKER_HOME/ranker.sqlite3).", show_default=False,
                                               parser=given_path)]
PromptsOpt = Annotated[Optional[Path], typer.Option("--prompts", help="Prompt directory in the seed layout "
                                                    "(default: the bundled prompt set).", show_default=False,
                                                    parser=given_path)]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="A ranker.toml with defaults; flags override it.",
                                                   show_default=False, parser=given_path)]
PapersOpt = Annotated[Path, typer.Option("--papers", help="Papers JSONL (from `ranker fetch` or `ranker prefilter`; "
                                         "'-' for stdin).",
                                         parser=given_path)]
OfflineOpt = Annotated[Optional[bool], typer.Option("--offline/--no-offline", help="Open no network connection "
                                                    "except to loopback (same as RANKER_OFFLINE=1); --no-offline "
                                                    "overrides the environment and ranker.toml.", show_default=False)]
EmbedderOpt = Annotated[Optional[str], typer.Option("--embedder", help="Embedding model: a preset name (minilm, "
                                                    "mpnet), a local folder or a Hugging Face id (default: "
                                                    "prefilter.embedder of ranker.toml, minilm).",
                                                    show_default=False)]
BackendOpt = Annotated[Optional[str], typer.Option("--backend", help="Scoring backend: vllm, transformers, openai; "
                                                   "fake for tests (default: scoring.backend of ranker.toml, "
                                                   "vllm).", show_default=False)]
BackendOptionOpt = Annotated[Optional[list[str]], typer.Option(
    "--backend-option", help="KEY=VALUE: an option of the chosen backend, as in its table of ranker.toml "
    "(e.g. dtype=bfloat16, concurrency=16, engine_args='{ tensor_parallel_size = 2 }'); repeat for more.",
    show_default=False)]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="LLM: a preset (smollm2-135m, qwen2.5-coder-0.5b), "
                                                 "a local folder or a Hugging Face id (default: scoring.model "
                                                 "of ranker.toml, smollm2-135m; with --backend openai: auto, the "
                                                 "server's own model).", show_default=False)]
ScoreModeOpt = Annotated[Optional[str], typer.Option("--score-mode", help="greedy (integers) or expected: also the "
                                                     "probability-weighted mean of the score values (default: "
                                                     "scoring.score_mode of ranker.toml, greedy).",
                                                     show_default=False)]
MaxTokensOpt = Annotated[Optional[int], typer.Option(
    "--max-tokens", help="Cut each paper to this many tokens before embedding (default 128, what the bundled "
    "embedders were trained on; 256, MiniLM's own limit, reads more of the abstract, twice as slowly; never "
    "past the model's limit). Calibrate and prefilter with the same value.", show_default=False)]
LayoutOpt = Annotated[Optional[str], typer.Option(
    "--prompt-layout", help="seed (the seed's order: papers, then the output instructions) or "
    "instructions-first: instructions join the shared prefix, fewer tokens computed per paper (default: "
    "scoring.prompt_layout of ranker.toml, seed).", show_default=False)]
CategoryOpt = Annotated[Optional[str], typer.Option(
    "--category", help="Comma-separated arXiv categories; a paper is kept when any of its categories is "
    "listed (default: fetch.categories of ranker.toml, cs.LG,cs.AI).", show_default=False)]
AnnounceOpt = Annotated[Optional[str], typer.Option(
    "--announce", help="Announce types to keep, comma-separated: new, cross, replace, replace-cross "
    "(default: fetch.announce of ranker.toml, new,cross).", show_default=False)]
KeepOpt = Annotated[Optional[float], typer.Option(
    "--keep", help="Fraction of the papers to keep for the LLM, in (0, 1] (default without a calibration 0.4, "
    "with one --recall 0.95; never fewer than 20 papers, or all of them when there are fewer). On a GPU "
    "scoring a whole day takes seconds: --keep 1 sends every paper.", show_default=False)]
TopOpt = Annotated[Optional[int], typer.Option("--top", help="Keep exactly the K best papers instead of a "
                                               "fraction.", show_default=False)]
PapersPerRequestOpt = Annotated[Optional[int], typer.Option(
    "--papers-per-request", help="Papers in one request (1 = one paper per request, the default; more "
    "reproduces the seed's multi-paper batches).", show_default=False)]
CalibrationOpt = Annotated[Optional[Path], typer.Option(
    "--calibration", help="A calibration file from `ranker calibrate` (learned from your GPT digest history).",
    show_default=False, parser=given_path)]
NoCalibrationOpt = Annotated[Optional[bool], typer.Option(
    "--no-calibration", help="Rank zero-shot, without the calibration ranker.toml names (the default keep rule "
    "is then the fixed fraction).", show_default=False)]
DefaultPromptsOpt = Annotated[Optional[bool], typer.Option(
    "--default-prompts", help="Use the bundled prompt set for this run, not the prompts ranker.toml names.",
    show_default=False)]
DefaultAuthorsOpt = Annotated[Optional[bool], typer.Option(
    "--default-authors", help="Pin the authors of authors.txt beside the prompts for this run, not the file "
    "ranker.toml's [digest] authors names.", show_default=False)]
DefaultExcludeOpt = Annotated[Optional[bool], typer.Option(
    "--default-exclude", help="Leave out ranker.toml's [prefilter] exclude phrases for this run (exclude.txt "
    "beside the prompts still applies).", show_default=False)]
NoveltyContextOpt = Annotated[Optional[int], typer.Option(
    "--novelty-context", help="Show each paper's K nearest EARLIER papers in the corpus (day and title) inside its "
    "prompt, so the model judges novelty against prior work (default 0 = off; scores are stored apart).",
    show_default=False)]
RecallOpt = Annotated[Optional[float], typer.Option(
    "--recall", help="Keep the smallest top part of the day expected to hold this share of the papers GPT would "
    "pick, in (0, 1]: from the calibration's own held-back picks, or without one from a zero-shot prior. "
    "Default with a calibration: 0.95 (without one, the fixed fraction 0.4).", show_default=False)]


VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the engines' and libraries' own "
                                           "messages on the terminal instead of the log file.")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="Say nothing when all is well (for cron, which mails whatever a job prints): no progress "
    "bar, no loading/ready lines, no summary or notes, not the path of what was written under the --out given. "
    "Never hidden: a warning (a partial score, a skipped day, a --date the papers contradict, an unknown "
    "category), a day whose papers the categories and announce types all left out, an error, and the data asked "
    "for on stdout (--out -, a listing, similar's hits). Not with -v.")]


# --------------------------------------------------------------------------- printing
# stdout (TERM.out) carries only what the user asked for; stderr (TERM.err) our notes, progress and errors.
# Anything else (library logs, engine workers) goes to the command's log file (ranker.cli.term).
def echo(msg: str = "") -> None:
    """stdout: results a user asked for."""
    with naming_stdout():
        typer.echo(msg, file=TERM.out)


STDOUT = "stdout"           # how an error names the command's own stdout (`--out -`, a shell's `> file`)
STDIN = "stdin"             # how every line names '-' read (`--papers -`, `labels import -`, `compare --gpt -`)


@contextmanager
def naming_stdout() -> Iterator[None]:
    """A write to stdout that fails (`> /dev/full`, a redirection to a full disk) names it: the error was
    'no space left on device', naming nothing."""
    try:
        yield
    except OSError as e:
        if e.filename is not None:
            raise
        raise OSError(e.errno, e.strerror or str(e), STDOUT) from None


def info(msg: str) -> None:
    """stderr: progress and notes, so stdout stays clean for pipes; nothing under --quiet (alert: what is said
    even then)."""
    if not TERM.quiet:
        alert(msg)


def wrote(path: Path) -> None:
    """stdout: the path of the file a command wrote under the --out folder the user gave (run's digest, site's
    index.html), for a script to pick up; nothing under --quiet, so a cron line on a good day prints nothing."""
    if not TERM.quiet:
        echo(str(path))


def alert(msg: str) -> None:
    """stderr, --quiet or not: a warning, an error, an interruption. While a progress bar is drawn, the line goes
    above it through the bar's console (written straight to the terminal it would be glued to the bar's line,
    which the next redraw then leaves behind)."""
    try:
        if _LIVE:
            _above(_LIVE[-1], msg)
        else:
            typer.echo(msg, file=TERM.err)
    except BrokenPipeError:
        pass        # stderr's reader went away (`2>&1 | head -1`): the notes are lost, never the command's work


def _above(bar, msg: str) -> None:
    """A line printed above a bar, as the text given: not read as rich text (a ":x:" in a path stays those
    three characters), nor broken at the terminal's width (the terminal wraps it, as any other line)."""
    bar.console.print(msg, highlight=False, markup=False, emoji=False, soft_wrap=True)


def index_said(msg: str) -> None:
    """A ranker.io.Warn callback for the corpus index's lines where a command says them without "warning:"
    (those that embed or search: fetch --embed, prefilter, calibrate, similar, index, import): its notes (built or
    rebuilt from the store, waiting for another process) are info; a failure to update it (index.NOT_UPDATED:
    the vectors are stored, the next command retries) is said under --quiet too."""
    from ..index import NOT_UPDATED
    (alert if msg.startswith(NOT_UPDATED) else info)(msg)


def warn(msg: str) -> None:
    """stderr: a ranker.io.Warn callback (a skipped line, a retry); said under --quiet too."""
    alert(f"warning: {msg}")


def warn_categories(s: "Settings") -> None:
    """A category of fetch.categories whose subject class arXiv's taxonomy lacks as ranker knows it ('cs.XX'):
    one warning each, naming where it was set (--category, the ranker.toml line) and the closest classes, by a
    command that keeps papers by them (fetch, run, backfill; config shows them). It passed the check (only the
    archive was checked), matched no paper, and each daily run said "nothing to do"; kept, not refused: arXiv
    adds classes (a case or stray-key variant of a known one is refused: records.category_problem)."""
    from ..records import category_note
    for cat in s.fetch.categories:
        note = category_note(cat)
        if note:
            warn(f"{name_key('fetch.categories')}: {note}")


def warn_date(day: str, report) -> None:
    """A --date (checked: YYYY-MM-DD) that labels the papers read (run --papers, fetch --from/--ids/--since), once
    they are read: one warning naming --date where it is more than sources.days.AHEAD days after today
    (sources.days.ahead_note: `--date 2999-01-01` stored the papers under a day no listing will carry without a
    word), else where the source says otherwise (sources.ReadReport.date_note: a feed dated another day, papers
    submitted on or after it, a listing with rows dated after it: `fetch --from` a feed of 2024-11-28 with `--date
    2025-01-02` said nothing either). Not refused: --date still wins (relabelling may be deliberate)."""
    from ..sources.days import ahead_note
    note = ahead_note(day) or report.date_note(day)
    if note:
        warn(f"{flag_name('date')}: {note}")


def nothing_to_do(why: str) -> None:
    """The one line every command says when its input holds nothing to work on (it then exits 0)."""
    info(f"nothing to do: {why}")


def nothing_kept(why: str) -> None:
    """nothing_to_do where the source held papers and the categories / announce types kept none: the setting
    matches nothing (a category of another field, an announce type), not a weekend or a holiday, so it is said
    under --quiet too (`run -q --category math.AG` on a day of 377 papers exited 0 without a word or a digest,
    and would each day); still exit 0."""
    alert(f"nothing to do: {why}")


def warn_read(report) -> None:
    """What a read of papers skipped, cut or repaired (a sources.ReadReport): one warning per kind, with the
    count and the first place. Every command that reads papers says it this way."""
    for note in report.notes():
        warn(note)


def warn_failures(run) -> None:
    """A partial run (a scoring.ScoreRun with failures): one warning line counting them."""
    if run is not None and run.failures:
        from ..io import redact
        warn(redact(f"{run.failure_summary()}; rerun to retry them"))


_STD_NAMES = {"/dev/stdout": 1, "/dev/fd/1": 1, "/proc/self/fd/1": 1,
              "/dev/stderr": 2, "/dev/fd/2": 2, "/proc/self/fd/2": 2}


# the descriptors' names out_path gave -> the --out as the user gave it, for errors (see as_given)
_GIVEN_AS: dict[str, str] = {}


def out_path(path: Path) -> Path:
    """An --out file as the user meant it: '-', /dev/stdout or /dev/stderr is the terminal's (or the shell's
    redirection's) stream, not descriptor 1 or 2, which carry the command's log while it runs. An error about
    the name returned names what the user gave (as_given), not /dev/fd/5, which they never typed."""
    given = STDOUT if str(path) == "-" else str(path)
    if str(path) == "-":
        path = Path("/dev/stdout")
    fd = _STD_NAMES.get(str(path))
    if fd is None:
        return path
    if not TERM.capturing:
        _GIVEN_AS[str(path)] = given
        return path
    stream = TERM.out if fd == 1 else TERM.err
    try:
        mapped = Path(f"/dev/fd/{stream.fileno()}")
    except (OSError, ValueError, AttributeError):
        return path
    from ..io import give_descriptor
    give_descriptor(stream.fileno())         # the caller's stdout (stderr), kept aside while 1 and 2 are the log
    _GIVEN_AS[str(mapped)] = given
    return mapped


def as_given(where: str) -> str:
    """A path an error names, as the user gave it: /dev/fd/5, the descriptor out_path wrote `--out -` to, is
    stdout (/dev/stdout when it was given so); any other path as it is, but quoted as Python writes it where it
    would not read back as typed (errors.given: a newline in a name printed the error on two lines)."""
    from ..errors import given
    return given(_GIVEN_AS.get(where, where))


def out_shown(out: Path) -> str:
    """An --out file as a summary names what was written to: `--out -` is stdout (not a file named '-': a summary
    said "scored -> -"); any other as as_given."""
    return STDOUT if str(out) == "-" else as_given(str(out))


def in_shown(given: "str | Path") -> str:
    """A file read as every line names it (errors with file:line, warnings, summaries, "nothing to do"): '-' is
    stdin, as `--out -` is stdout (it was "no papers in -" but "/dev/stdin:1: ...", the descriptor read); any
    other as as_given. The readers take it as the source's name (`name=`); what is stored keeps the value given."""
    return STDIN if str(given) == "-" else as_given(str(given))


def wrote_empty(out: Path) -> str:
    """What a command with nothing to write says it did with its --out: 'wrote nothing to stdout' for '-'."""
    return f"wrote nothing to {STDOUT}" if str(out) == "-" else f"wrote an empty {as_given(str(out))}"


def check_out(out: Path, *, folder: bool = False) -> None:
    """An --out file (or with `folder`, the output folder) that cannot be written, said now, before a model
    loads or the database opens: a directory given as the file, a file where the folder goes, a folder that
    cannot be made or written in was said only when the results were written, after the work; '-' (stdout)
    for a folder. Makes nothing."""
    from ..errors import InputError
    from ..io import check_output_dir, check_writable
    if folder:
        if str(out) == "-":         # `--out -` as for fetch: a folder named "-" was made in the working folder
            raise InputError("'-' (stdout) cannot take this command's files; give a folder", key="out")
        check_output_dir(out)
    else:
        check_writable(out_path(out))


def _terminal_stream(path: Path) -> bool:
    """An --out that is the terminal's own stdout or stderr ('-', /dev/stdout when it is a terminal)."""
    fd = _STD_NAMES.get("/dev/stdout" if str(path) == "-" else str(path))
    try:
        return fd is not None and (TERM.out if fd == 1 else TERM.err).isatty()
    except (OSError, ValueError, AttributeError):
        return False


_LIVE: list = []          # the progress bar on the terminal now (rich), through which info() prints


def leave_bar() -> bytes:
    """What takes the terminal out of the progress bar drawn now (its lines cleared, the cursor the bar hid
    shown again), for a process that ends without the bar's own cleanup (a second Ctrl-C); b"" when none is."""
    if not _LIVE:
        return b""
    lines = max(1, sum(1 for task in _LIVE[-1].tasks if task.visible))
    return b"\r\x1b[2K" + b"\x1b[1A\x1b[2K" * (lines - 1) + b"\x1b[?25h"


def progress_enabled() -> bool:
    """A bar only on a terminal that can redraw a line: on a dumb one (TERM=dumb, as Emacs' shell sets it) rich
    draws nothing and the bar swallowed the "loading <model> ..." line, so such a terminal is told as a log is.
    None under --quiet (nor are the loads said: info)."""
    return not TERM.quiet and TERM.err.isatty() and os.environ.get("TERM", "").lower() not in ("dumb", "unknown")


class Progress:
    """A ranker.io.Progress callback. On a terminal (stderr): a bar per stage with its count, elapsed time and
    an estimate of the time left; a model load ("loading NAME" stage) shows a spinner with its time. Elsewhere
    only the loads are said, one line each, so a log of the run still shows where the time went."""

    def __init__(self, out: Path | None = None):
        """`out`: where the command streams its data while the bar would be drawn (fetch's --out): when that
        is the very terminal (`-`, /dev/stdout), no bar, whose redraws erased the data's lines and left their
        frames among them; the terminal is told as a log is."""
        self._bar = None
        self._over_data = out is not None and _terminal_stream(out)
        self._tasks: dict[str, int] = {}
        self._shown: dict[str, int] = {}
        self._started: dict[str, float] = {}

    def __enter__(self):
        if progress_enabled() and not self._over_data:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress as RichProgress, SpinnerColumn,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)
            self._bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("left"),
                                     TimeRemainingColumn(), console=Console(file=TERM.err), transient=True,
                                     refresh_per_second=4)
            self._bar.__enter__()
            _LIVE.append(self._bar)
        return self

    def __call__(self, stage: str, done: int, total: int | None) -> None:
        if stage.startswith(LOADING):
            self._loading(stage, done, total)
            return
        if self._bar is None:
            return
        if total is None and done % 200 and done - self._shown.get(stage, 0) < 200:
            return                  # a running count: redrawn every 200 or so, whatever the step size
        self._shown[stage] = done
        if stage not in self._tasks:
            self._tasks[stage] = self._bar.add_task(stage, total=total)
        self._bar.update(self._tasks[stage], completed=done, total=total)

    def _loading(self, stage: str, done: int, total: int | None) -> None:
        finished = total is not None and done >= total
        if not finished:
            self._started[stage] = time.perf_counter()
            if self._bar is None:
                info(f"{stage} ...")
            elif stage not in self._tasks:
                self._tasks[stage] = self._bar.add_task(stage + " ...", total=None)
            return
        # a load that ends under the name it learnt (a server's model) is the one started under other words
        begun = stage if stage in self._started or len(self._started) != 1 else next(iter(self._started))
        seconds = time.perf_counter() - self._started.pop(begun, time.perf_counter())
        line = f"{stage}: ready in {seconds:.1f} s"
        if self._bar is None:
            info(line)
        else:
            task = self._tasks.pop(begun, None)
            if task is not None:
                self._bar.remove_task(task)
            _above(self._bar, line)

    def __exit__(self, *exc):
        if self._bar is not None:
            if self._bar in _LIVE:
                _LIVE.remove(self._bar)
            self._bar.__exit__(*exc)


# --------------------------------------------------------------------------- the settings edge
ORIGINS: dict[str, "Origin"] = {}      # where each value of this command's settings came from, by key
# Parameters whose flag is not "--" + the name with dashes.
_FLAG_NAMES = {"from_": "--from", "categories": "--category", "fmt": "--format"}


DB_PATH: list[Path] = []             # the database this command opened (named by a database error)
DEBUG: list[bool] = []               # the settings' debug (RANKER_DEBUG or ranker.toml's), once they are read
# a command's own options named as a section of the settings (compare --prefilter), added once its settings are
# read: a key of that name is then the option, not the section (nor the ranker.toml line of a value in it)
OPTION_KEYS: set[str] = set()
# the values this command line gave the command's options, by parameter name ({"papers": ("x.csv",)}), noted as
# the command starts (app._Command): an error about a file one of them names, or a file in a folder one names,
# that names no setting says the option (given_key). `run --papers x.csv --prompts p/` said "x.csv: unrecognised
# format", no flag
GIVEN: dict[str, tuple[str, ...]] = {}
# options that take a path as text (a Path-typed option's value is a Path): GIVEN holds only these and those, not
# --since 2025-05-01 (which claimed ./2025-05-01/listing.jsonl) nor --date, --backend, --category
_TEXT_PATH_OPTIONS = {"from_", "gpt", "local", "papers", "prefilter", "gguf"}
# the paths this command's settings name that no flag gave (RANKER_DB, ranker.toml's [digest] authors, the config
# file, the home's database): a file among them, or in a folder among them, is the setting's, never claimed by the
# folder of an option (`RANKER_DB=out/ranker.db ranker site --out out` said "--out out/ranker.db: ...")
SETTING_PATHS: list[str] = []


def load_settings(config: Path | None, *, verbose: bool = False, quiet: bool = False, log: bool = True,
                  **flags) -> "Settings":
    """The one Settings of this command, from ranker.toml, the environment and its flags (None = not given);
    also checks the chosen backend's options, switches offline mode on when asked, and from here on sends
    what libraries and engines print to the command's log file (unless verbose, or `log` is False: a command
    that makes no log file). `verbose`, `quiet`: the command's -v and -q (or the group's, `ranker -q run`), a
    pair refused."""
    from .. import settings
    terminal(verbose=verbose, quiet=quiet)
    not_empty(**{k: v for k, v in flags.items() if isinstance(v, str)})    # --model "$M" with M unset
    g = settings.gather(config, flags)
    ORIGINS.clear()
    ORIGINS.update(g.origins)
    OPTION_KEYS.clear()                   # a command's own, not the last command's of this process
    s = settings.build(g)
    from ..backends import check_options
    from ..errors import ConfigError
    check_options(s)
    if s.file_layer is not None:        # the file's own [scoring.<backend>] tables, whatever went over them
        try:
            check_options(s.file_layer)
        except ConfigError as e:
            raise settings.in_file(e, g) from None
    if s.offline:
        from ..netguard import enable_offline
        enable_offline()
    DB_PATH[:] = [s.db_path]
    SETTING_PATHS[:] = _setting_paths(s, g.origins)
    DEBUG[:] = [s.debug]
    TERM.verbose = TERM.verbose or not log or s.debug      # -v itself: terminal() above
    TERM.capture(s.home, command_name())
    return s


def terminal(*, verbose: bool, quiet: bool) -> None:
    """The -v and -q given (the command's, or before it the group's: `ranker -v run -q`), set on the terminal;
    both is an InputError: one asks for the engines' messages, the other for silence."""
    from ..errors import InputError
    if (quiet or TERM.quiet) and (verbose or TERM.verbose):
        raise InputError("give --quiet or --verbose, not both", key="quiet")
    TERM.quiet = TERM.quiet or quiet
    TERM.verbose = TERM.verbose or verbose


def _setting_paths(s: "Settings", origins: "Mapping[str, Origin]") -> list[str]:
    """SETTING_PATHS of the settings `s`."""
    from ..settings import MODEL_KEYS, PATH_KEYS
    paths = []
    for key in (*PATH_KEYS, *MODEL_KEYS, "db_path", "config_file"):
        if getattr(origins.get(key if key != "db_path" else "db"), "kind", None) == "flag" or \
                key == "config_file" and "config" in GIVEN:
            continue
        value: object = s
        for part in key.split("."):
            value = getattr(value, part, None)
        if isinstance(value, (str, Path)) and str(value):
            paths.append(str(value))
    return paths


def note_given(ctx) -> None:
    """GIVEN: the options the command line gave the command of the context `ctx` (click's, as it starts); not
    its defaults nor values from the environment, nor its arguments (`labels import FILE`: the one file the
    command takes needs no name)."""
    GIVEN.clear()
    for p in ctx.command.params:
        if p.param_type_name != "option" or not p.name or \
                getattr(ctx.get_parameter_source(p.name), "name", None) != "COMMANDLINE":
            continue
        value = ctx.params.get(p.name)
        values = tuple(str(v) for v in (value if isinstance(value, (list, tuple)) else [value])
                       if (isinstance(v, Path) or isinstance(v, str) and p.name in _TEXT_PATH_OPTIONS) and str(v))
        if values:
            GIVEN[p.name] = values


def _stripped(where: str) -> list[str]:
    """`where` and, where it ends in :LINE (a file's line), the file without it."""
    m = re.match(r"(.+?)(?::\d+)+$", where)
    return [where, m.group(1)] if m else [where]


def given_key(where: str | None, lines: bool = True) -> str | None:
    """The option (its parameter's name) that was given the file `where` names (with or without :line, unless not
    `lines`), or a folder it is in (`--history days/`: days/2025-01-02/listing.jsonl:3); the most specific when
    several were, none when two options were given the same. stdin is '-' (or /dev/stdin) given to an option
    other than --out."""
    if not where or not GIVEN:
        return None
    if not lines and len(_stripped(where)) > 1:
        return None             # a line of the config file (`--out o --config o/cfg.toml`): said as its line
    found: dict[str, int] = {}
    setting = 0                 # how specifically a path the settings name holds it: an option must beat that
    for w in (_stripped(where) if lines else [where]):
        if w == STDIN:
            for name, values in GIVEN.items():
                if name != "out" and any(stdin_or_descriptor(v) == 0 for v in values):
                    found[name] = max(found.get(name, 0), 1)
            continue
        wa = os.path.abspath(os.path.expanduser(w))
        try:
            here = os.path.join(os.getcwd(), "")
        except OSError:             # the working folder was removed
            here = os.sep
        for v in SETTING_PATHS:
            va = os.path.join(os.path.abspath(os.path.expanduser(v)), "")
            if wa == va[:-1] or wa.startswith(va):
                setting = max(setting, len(va) - (wa != va[:-1]))
        for name, values in GIVEN.items():
            for v in values:
                if v == "-" or "://" in v:
                    continue
                va = os.path.join(os.path.abspath(os.path.expanduser(v)), "")
                if wa == va[:-1]:
                    found[name] = max(found.get(name, 0), len(va))
                elif wa.startswith(va) and not here.startswith(va):
                    # in the folder: not where the folder holds the working one (`--history .`: any file named
                    # relatively, the auto-found ranker.toml too, would be said as its)
                    found[name] = max(found.get(name, 0), len(va) - 1)
    found = {n: n_long for n, n_long in found.items() if n_long > setting}
    if not found:
        return None
    best = max(found.values())
    names = [n for n, n_long in found.items() if n_long == best]
    return names[0] if len(names) == 1 else None


def debugging() -> bool:
    """Whether a failure shows its traceback: the command's settings' debug once they are read (RANKER_DEBUG,
    else ranker.toml's `debug`), RANKER_DEBUG before (ranker.toml's `debug = true` showed none)."""
    from ..settings import debug_from_env
    return DEBUG[-1] if DEBUG else debug_from_env()


def db_there(s: "Settings") -> Path:
    """The database of a command that has nothing to do in a new one (serve, labels, calibrate from labels alone,
    site, similar, index): one named otherwise than the home's own (--db, RANKER_DB, ranker.toml's db) must
    exist, else an InputError naming where it was named. A mistyped path would have left a new empty database
    there (and its folder), what the command writes going into it, or said "nothing to do" and exited 0 (a cron
    job's `ranker site` took a typo for a store with no days); the home's own database is made on a first
    use, as on a fresh machine. (fetch, run, backfill, import, prefilter, score, eval and calibrate --history
    bring papers, so their first use makes the database wherever it is named.)"""
    from ..errors import InputError
    from ..records import DB_FILE
    db_path = s.db_path
    # resolved, both: `../h/ranker.sqlite3` or a symlinked home named the home's own as a typo
    if not db_path.exists() and not db_path.is_symlink() and db_path.resolve() != (s.home / DB_FILE).resolve():
        raise InputError("no database there (a typo?); `ranker run` makes one", key="db", where=str(db_path))
    return db_path


def check_model(s: "Settings", *, scored: "Callable[[str, str], bool] | None" = None) -> None:
    """The scoring model found as the chosen backend will load it (a preset prepared, a folder there), before
    a command that scores starts on the day: a missing one is an error now, not after the prefilter. What is wrong
    with the model itself names scoring.model (--model, or its ranker.toml line), as check_embedder names
    prefilter.embedder: `--model nosuch` said "error: nosuch: no such model folder ...", naming no flag (a
    tokenizer's own error names its engine_args key already). `scored(key, prompt_hash)`: whether scores of the
    model under this prompt set (the hash they are stored under) are stored (asked, read-only, only when the model
    is not there): where some are, a rerun may need no model (a second eval of it, a backfill with nothing left
    to score) and the late path, which loads it only for what is missing, says it then; a typo has none, nor
    has another prompt set (--prompts P2 over scores of P1: all to score), and is refused now."""
    from ..backends import backend_class, check_model as model_there
    from ..errors import ConfigError, ModelError
    try:
        model_there(s)               # keys what is wrong with the model itself as scoring.model
    except ModelError:
        if scored is not None:
            phash = _prompt_hash(s)
            if phash is not None and any(scored(k, phash) for k in _model_keys(backend_class(s.scoring.backend), s)):
                return
        raise
    except ConfigError as e:
        _key_for(e, "scoring.model", s.scoring.model)
        raise


def _key_for(e: "RankerError", key: str, name: str) -> None:
    """A keyless ConfigError about the model named `name` (where nothing or the name) keyed as `key`, the setting
    that named it; one about a file (presets.toml's own errors, where the file) keeps its where alone: a broken
    presets.toml said "--model .../presets.toml: preset ... lacks the keys"."""
    from ..errors import given
    if e.key is None and e.where in (None, given(name)):
        e.key = key


def _prompt_hash(s: "Settings") -> str | None:
    """The prompt hash the settings' scores are stored under (the prompt set's texts and the options that change
    what the model is shown), or None where the prompt set cannot be read (said where the command reads it)."""
    from ..errors import RankerError
    from ..prompts import load_prompts
    from ..scoring import ScoreOptions
    try:
        return ScoreOptions.from_settings(s.scoring).prompt_hash(load_prompts(s.scoring.prompts))
    except RankerError:
        return None


def _model_keys(cls, s: "Settings") -> list[str]:
    """What scores of the configured model may be stored under: its store name, and for a folder since
    removed, the absolute path it was stored under while it was there."""
    from ..backends.base import folder_key
    name = cls.store_name(s.scoring.model, s.models_dir)
    keys = [name] if name is not None else []
    path = folder_key(s.scoring.model)         # the folder's key, as local_model_key gives it while it is there
    return keys + [path] if path not in keys else keys


def _store_says(db: Path, ask: "Callable[[Store], bool]") -> bool:
    """`ask` of the store at `db`, opened read-only (never created): False where there is none or it cannot be
    read (what is wrong with it is said where the command opens it)."""
    from ..errors import RankerError
    from ..store import Store
    if not db.is_file():
        return False
    try:
        with Store(db, read_only=True) as st:
            return ask(st)
    except RankerError:
        return False


def scores_stored(db: Path) -> "Callable[[str, str], bool]":
    """check_model's `scored` for a store at `db` (opened read-only, never created)."""
    return lambda model, prompt_hash: _store_says(db, lambda st: st.has_scores(model, prompt_hash))


def check_embedder(s: "Settings", *, loadable: bool = False):
    """The embedder the settings name (its Embedder, not loaded), or a ModelError naming prefilter.embedder (the
    --embedder or ranker.toml line it came from) when no preset, folder or Hugging Face id has that name (a
    ConfigError when it names an LLM preset, said after "loading smollm2-135m ..." and naming no flag), said
    before a command reads its input: it said "-1: no such model folder ...", naming no flag, after the
    "loading -1 ..." line (calibrate's and eval's, after the history's). Only what is wrong wherever the vectors
    come from: a preset not prepared, or an id not cached offline, may still be served from the store's vectors.
    `loadable`: those too (models.resolve's check, with its advice to prepare the preset) where the store holds
    no vector of the embedder, for a command whose input takes long to read (calibrate's and eval's history:
    `--embedder mpnet` not prepared said so only once the whole history was read)."""
    from ..errors import ConfigError, ModelError
    from ..models import check_name, resolve
    from ..prefilter.embed import Embedder
    emb = Embedder.from_settings(s)
    try:
        (resolve if loadable else check_name)(s.prefilter.embedder, "embedder", s.models_dir)
    except ModelError as e:
        # a name that is nothing here (a model folder since removed) whose vectors the store holds: served from
        # them, as before this check, while every text asked for is stored; a typo has none
        if not _vectors_stored(s.db_path, emb.key):
            e.key = "prefilter.embedder"
            raise
    except ConfigError as e:
        _key_for(e, "prefilter.embedder", s.prefilter.embedder)
        raise
    return emb


def _vectors_stored(db: Path, embedder: str) -> bool:
    """Whether the store at `db` (opened read-only, never created) holds any vector of `embedder`."""
    return _store_says(db, lambda st: st.count_embeddings(embedder) > 0)


def check_served(s: "Settings", emb, papers, what: str) -> None:
    """The embedder `emb` (check_embedder's) loadable, or the store's vectors of it serving every one of `papers`
    (`what`: whose they are, "the history") and of the topic queries (s.scoring.prompts'; embedded with them),
    said after they are read and before any of them is embedded (eval: before the store is opened for the work;
    calibrate: with it open, once the labels are read from it, before the fit writes anything; prefilter: before
    the store is opened; run: as the day is fetched, before it is stored and the run's manifest written): else
    models.resolve's ModelError (with its advice to prepare the preset) naming prefilter.embedder. check_embedder
    lets an embedder not prepared through where the store holds SOME of its vectors; a history of papers beyond
    them was then embedded up to the first such paper and failed there, naming no flag (the database opened,
    eval's --out made), and so were topic queries not stored (paper_topics.txt changed). Reads the stored
    vectors' text hashes only when the model is not loadable."""
    from ..errors import ModelError, RankerError
    from ..io import counted, grouped
    from ..models import resolve
    from ..prefilter.embed import query_key
    from ..prefilter.rank import build_queries
    from ..prompts import load_prompts
    from ..store import Store
    try:
        resolve(s.prefilter.embedder, "embedder", s.models_dir)
        return
    except ModelError as e:
        err = e
    queries = build_queries(load_prompts(s.scoring.prompts)).texts
    total, n_queries = len({p.id for p in papers}), len({query_key(t)[0] for t in queries})
    missing, missing_queries = total, n_queries
    if s.db_path.is_file():
        try:
            with Store(s.db_path, read_only=True) as st:
                missing = len(emb.unstored(papers, st))
                missing_queries = len(emb.unstored_queries(queries, st))
        except RankerError:
            pass
    if not missing and not missing_queries:
        return

    def held(lacking: int, of: int) -> str:
        return "none" if lacking == of else f"only {grouped(of - lacking)}"
    papers_said = f"{held(missing, total)} of the {counted(total, 'paper')} of {what}"
    queries_said = f"{held(missing_queries, n_queries)} of the {counted(n_queries, 'topic query', 'topic queries')}"
    if not missing:
        said = f"every one of the {counted(total, 'paper')} of {what} but {queries_said}"
    elif missing_queries:
        said = f"{papers_said} and {queries_said}"
    else:
        said = papers_said
    raise ModelError(f"{err.message}, and the database holds its vectors for {said}", where=err.where,
                     key="prefilter.embedder", prepare=err.prepare) from None


def check_prefilter(s: "Settings"):
    """The embedder's name and token cut, and the calibration file, checked as check_model checks the LLM, before
    `ranker run` writes its manifest: a mistyped --embedder or --calibration, or a --max-tokens past the model's
    limit, replaced the folder's finished manifest with a failed one. Only what is wrong wherever the vectors come
    from (no preset, folder or Hugging Face id of that name; a cut the model cannot read): a preset not prepared,
    or an id not cached offline, may still be served from the store's vectors (check_served, once the day is
    read). The embedder (check_embedder's)."""
    emb = check_embedder(s)
    if s.prefilter.calibration:
        from ..prefilter.calibrate import Calibration
        # one fit with another embedder too: it failed after the manifest was written, replacing the finished one
        Calibration.load(s.prefilter.calibration).check_embedder(emb.key)
    return emb


def not_empty(**values) -> None:
    """An option given an empty text (`--date "$DAY"` with DAY unset) is an error, not the option left out: left
    out, --date would rank today's feed and --since every day of the source instead of the one asked for."""
    from ..errors import InputError
    for name, v in values.items():
        for one in (v if isinstance(v, (list, tuple)) else [v]):      # a repeatable option: each of its values
            if isinstance(one, str) and not one.strip():
                raise InputError("empty; give a value or leave the option out", key=name)


def one_keep_rule(**rules) -> None:
    """At most one of the keep-rule flags (--keep, --top, --recall); a given one replaces ranker.toml's."""
    from ..errors import InputError
    given = [name for name, v in rules.items() if v is not None]
    if len(given) > 1:
        names = [flag_name(n) for n in rules]
        raise InputError(f"give one of {', '.join(names[:-1])} and {names[-1]}, not "
                         f"{' and '.join(flag_name(n) for n in given)}", key=given[-1])


def flag_name(param: str) -> str:
    return _FLAG_NAMES.get(param) or "--" + param.rstrip("_").replace("_", "-")


def name_key(key: str) -> str:
    """A key at fault as the user gave it: --keep, RANKER_FETCH_RETRIES, 'ranker.toml:3: prefilter.keep', or
    for a plain parameter ("date") its flag. A table named in the config file ("scoring.vlm") is blamed on
    the file that has it."""
    from ..settings import BACKEND_OPTION, Settings
    if key in OPTION_KEYS:
        return flag_name(key)
    origin = ORIGINS.get(key)
    if origin is None:      # a table or a section: the origin of a value inside it
        inside = [o for k, o in ORIGINS.items() if k.startswith(key + ".")]
        origin = inside[0] if inside else None
    parts = key.split(".")
    for n in range(len(parts) - 1, 2, -1):      # a key inside an option's value (engine_args.tokenizer): the
        if origin is not None:                  # option's origin (not the table's above it)
            break
        origin = ORIGINS.get(".".join(parts[:n]))
    if origin is not None:
        if origin.kind == "flag":
            if origin.name == BACKEND_OPTION:   # scoring.<backend>.engine_args.x as engine_args.x
                return f"{flag_name(BACKEND_OPTION)} {key.split('.', 2)[-1]}"
            return flag_name(origin.name)
        if origin.kind == "env":
            return origin.name
        return f"{origin.name}:{origin.line}: {key}" if origin.line else f"{origin.name}: {key}"
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


def error_line(e: "RankerError", flags: "Mapping[str, str] | None" = None) -> str:
    """The error's one line. `flags`: a script's own flags by the config key each stands for
    ({"prefilter.embedder": "--embedder"}, scripts/eval_keep.py's): a key among them, at fault or mentioned, is
    named by the script's flag, which the user gave, not by the command's."""
    import copy

    from ..errors import ConfigError, InputError, keyed, mentioned
    # a file an option was given: "--papers x.csv: unrecognised format", not "x.csv: ..."; of the config file
    # only the file itself (`--config x: config file not found`): a line of it is said as every setting's line is
    # ("ranker.toml:3: prefilter.keep: ...")
    option = None
    if e.key is None and isinstance(e, (InputError, ConfigError)):
        option = given_key(e.where, lines=isinstance(e, InputError))
    if option and flag_name(option) in (name_mention(k) for k in mentioned(e.message)):
        option = None           # the message names it already ("give a writable {key:db}"): said once
    if option:
        e = keyed(copy.copy(e), option)
    if e.where is not None and as_given(e.where) != e.where:
        e = copy.copy(e)
        e.where = as_given(e.where)
    flags = flags or {}
    return e.render(lambda k: flags.get(k) or (flag_name(k) if k == option else name_key(k)),
                    lambda k: flags.get(k) or name_mention(k)) + prepare_advice(e)


# --------------------------------------------------------------------------- errors in the user's words
_PYDANTIC_WORDS = (("valid number", "a number"), ("valid integer", "an integer"), ("valid float", "a number"),
                   ("valid boolean", "true or false"))


def _given(opt: str) -> str | None:
    """The value given to an option on this command line, for a message."""
    import sys
    argv = sys.argv[1:]
    for i, a in enumerate(argv):
        if a == opt and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(opt + "="):
            return a[len(opt) + 1:]
    return None


def _opt(param) -> str:
    """A parameter as the user writes it: its flag, or an argument's name as --help shows it (FILE)."""
    opts = [o for o in (getattr(param, "opts", None) or []) if o.startswith("--")]
    if opts:
        return opts[0]
    if getattr(param, "param_type_name", "") == "argument" and getattr(param, "name", None):
        return param.name.upper()
    return getattr(param, "name", None) or "a value"


def _closest(word: str, choices) -> str:
    from ..settings import near_miss
    return near_miss(word, choices, cutoff=0.5)


def _options_of(ctx) -> list[str]:
    """The command's flags a misspelt one may be near, --help among them (it is no parameter of the command: `run
    --hlep` was said to mean --keep)."""
    out: list[str] = [o for o in getattr(ctx, "help_option_names", None) or [] if o.startswith("--")]
    for p in getattr(getattr(ctx, "command", None), "params", []) or []:
        out += [o for o in (*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])) if o.startswith("--")]
    return out


def usage_line(e) -> str:
    """A command-line mistake (a typer/click usage exception) as one line in the user's words: the flag and
    what is wrong with it, the closest flag or command for a misspelt one; never the exception's class."""
    kind = type(e).__name__
    ctx = getattr(e, "ctx", None)
    where = f" (see `{ctx.command_path.replace('python -m ranker', 'ranker')} --help`)" if ctx is not None else ""
    if kind == "NoSuchOption":
        name = e.option_name
        near = _closest(name, _options_of(ctx)) if ctx is not None else ""
        return f"there is no option {name}{near or where}"
    if kind == "MissingParameter":
        param = e.param
        what = re.split(r"\.\s+(?=[A-Z])", getattr(param, "help", None) or "")[0].rstrip(".")   # its first sentence
        if what and not what[1:2].isupper():          # "Folder for ..." -> "folder for ...", not "JSONL" -> "jSONL"
            what = what[0].lower() + what[1:]
        return f"{_opt(param)} is required" + (f" ({what})" if what else "")
    if kind == "BadOptionUsage":
        name = getattr(e, "option_name", "") or ""
        if "requires an argument" in e.message or "requires" in e.message:
            return f"{name} needs a value{where}"
        return f"{name}: {e.message}"
    if kind == "BadParameter" or kind == "NoSuchOption" or hasattr(e, "param"):
        param = getattr(e, "param", None)
        opt = _opt(param) if param is not None else (e.param_hint or "a value")
        msg = e.message.split(",")[0].strip().rstrip(".")
        if getattr(param, "required", False):       # a required option or argument cannot be left out
            msg = msg.replace(" or leave the option out", "")
        for needle, words in _PYDANTIC_WORDS:
            if needle in msg:
                msg = f"expected {words}"
        given = _given(opt) if isinstance(opt, str) and opt.startswith("--") else None
        return f"{opt}: {msg}" + (f", got {given!r}" if given else "")
    if kind == "UsageError" and "unexpected extra argument" in e.message:
        # click's "Got unexpected extra argument(s) (b c)": the words given, and what the command takes instead
        m = re.match(r"Got unexpected extra argument(s|\(s\))? \((.*)\)$", e.message, re.S)
        extra = m.group(2) if m else e.message
        # how many: click's own word counts them (a quoted word with a space is one); where it cannot tell
        # ("argument(s)"), the command line's words do
        many = m.group(1) == "s" if m and m.group(1) != "(s)" else extra not in sys.argv[1:]
        command = getattr(ctx, "command", None)
        takes = [_opt(p) for p in getattr(command, "params", None) or []
                 if getattr(p, "param_type_name", "") == "argument"]
        path = ctx.command_path.replace("python -m ranker", "ranker") if ctx is not None else "ranker"
        then = (f"{' and '.join(takes)} {'is one value' if len(takes) == 1 else 'are one value each'}; quote "
                "a value that has spaces") if takes else f"`{path}` takes options only"
        return f"unexpected extra argument{'s' if many else ''} '{extra}': {then}{where}"
    if kind == "UsageError" and "No such command" in e.message:
        name = e.message.split("'")[1] if "'" in e.message else e.message
        group = getattr(ctx, "command", None)
        names = list(getattr(group, "commands", {}) or {}) if group is not None else []
        return f"there is no command {name!r}{_closest(name, names) or where}"
    msg = e.format_message() if hasattr(e, "format_message") else str(e)
    return " ".join(msg.split()) or kind


def os_error_line(e: OSError) -> str:
    """A file system error as '<path>: <what happened>' (no errno, no class name)."""
    what = (e.strerror or str(e) or type(e).__name__).strip()
    what = what[0].lower() + what[1:] if what else what
    names = [as_given(str(x)) for x in (e.filename, e.filename2) if x is not None]
    option = given_key(str(e.filename)) if len(names) == 1 else None     # a file an option was given, as error_line
    return f"{flag_name(option) + ' ' if option else ''}{' -> '.join(names)}: {what}" if names else what


def sqlite_error_line(e: Exception) -> str:
    """An SQLite error as one line naming the database and what to do."""
    from ..errors import InputError
    from ..store import describe_db_error
    db = DB_PATH[0] if DB_PATH else "the database"
    return error_line(InputError(describe_db_error(e), where=str(db)))     # its {key:...} mentions as flags
