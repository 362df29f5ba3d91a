"""The terminal of one command: what reaches the user, and where everything else goes.

stdout carries only what the user asked for (a path, the data of a pipe), stderr our own notes, progress and
the one error line. Everything else written while a command runs, Python logging and warnings, vLLM's, torch's
and transformers' messages, the engine worker process's own prints to its inherited descriptors, goes to a log
file, RANKER_HOME/logs/<date>-<time>-<command>-<pid>.log, unless -v/--verbose (or RANKER_DEBUG=1) asks to see it:
file descriptors 1 and 2 are pointed at the log, and our two streams keep the terminal's originals.
A file's name goes out as its own bytes, UTF-8 or not (as Python's stdout does under C.UTF-8), never as '?'.

    TERM.capture(home, "run")     # from here on, only TERM.out / TERM.err reach the terminal
    TERM.restore()                # the descriptors are the terminal's again; an empty log is removed
"""
from __future__ import annotations

import codecs
import logging
import os
import stat
import sys
import time
from pathlib import Path
from typing import TextIO

KEEP_LOGS = 30          # the newest log files kept in RANKER_HOME/logs
TERMINAL_ERRORS = "ranker.terminal"     # how a terminal stream writes what its encoding cannot spell


def _terminal_errors(e: UnicodeError) -> tuple[str | bytes, int]:
    """What a stream whose encoding cannot spell a character writes instead (LC_ALL=C with UTF-8 mode off:
    ASCII; PYTHONIOENCODING=latin-1; a cp1252 console): a surrogate escape (a name from argv, the environment or
    the file system under such a locale) its own byte back, so a printed path names the file (`ranker run --out
    dö` printed "d??/2025-...-output.md", naming no file); any other character its backslash escape (a title's
    "D\\xe9j\\xe0 Vu", where it was "D?j? Vu"). Never raises."""
    if not isinstance(e, UnicodeEncodeError):
        raise e
    o = ord(e.object[e.start])
    if 0xDC80 <= o <= 0xDCFF:
        return bytes([o - 0xDC00]), e.start + 1
    return (f"\\x{o:02x}" if o <= 0xFF else f"\\u{o:04x}" if o <= 0xFFFF else f"\\U{o:08x}"), e.start + 1


codecs.register_error(TERMINAL_ERRORS, _terminal_errors)


def terminal_streams() -> None:
    """sys.stdout and sys.stderr write what their encoding cannot spell as _terminal_errors does, where that
    encoding is not UTF-8 (under PYTHONIOENCODING=latin-1 stdout's 'strict' raised on a CJK title; under LC_ALL=C
    its surrogateescape raised on any non-ASCII character)."""
    for stream in (sys.stdout, sys.stderr):
        enc = (getattr(stream, "encoding", None) or "").replace("_", "-").lower()
        if enc and enc not in ("utf-8", "utf8"):
            try:
                stream.reconfigure(errors=TERMINAL_ERRORS)
            except (AttributeError, ValueError, OSError):
                pass


class _RedactingFormatter(logging.Formatter):
    """The log's lines, traceback included, redacted as every error line is (ranker.io.redact): httpx logs each
    request's URL at INFO, and an openai backend's base URL https://user:PASSWORD@host/v1 went into the log file
    whole, once a request."""

    def format(self, record: logging.LogRecord) -> str:
        from ..io import redact
        return redact(super().format(record))


def redacting_handler() -> logging.Handler:
    """The handler of Python's logging while a command runs, on descriptor 2 (the log file, or under -v the
    terminal): each line, traceback included, redacted (_RedactingFormatter). The one place both get it: under
    -v the libraries' lines went to the terminal through Python's last-resort printer, whole."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def write_traceback(kind, value, tb, head: str = "") -> None:
    """Write an exception's traceback to stderr as Python would (after `head`), redacted as the log's lines are
    (ranker.io.redact): for sys.excepthook and threading.excepthook, which printed it whole."""
    import traceback

    from ..io import redact
    text = head + "".join(traceback.format_exception(kind, value, tb))
    try:
        sys.stderr.write(redact(text))
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def thread_traceback(args) -> None:
    """threading.excepthook: a thread's uncaught exception, as Python's own hook says it, redacted
    (write_traceback). Python's wrote an exception's text whole, a URL's password or a key in it included, to
    descriptor 2: the log file, or under -v the terminal."""
    if args.exc_type is SystemExit:
        return
    name = args.thread.name if args.thread is not None else "unknown"
    write_traceback(args.exc_type, args.exc_value, args.exc_traceback, head=f"Exception in thread {name}:\n")


class Terminal:
    def __init__(self):
        self.verbose = False
        self.quiet = False          # -q/--quiet: our notes and progress unsaid; warnings, errors and data still
        self.log_path: Path | None = None
        self._saved: tuple[int, int] | None = None
        self._out: TextIO | None = None
        self._err: TextIO | None = None
        self._handler: logging.Handler | None = None

    @property
    def out(self) -> TextIO:
        """Where results go: the terminal's stdout."""
        return self._out or sys.stdout

    @property
    def err(self) -> TextIO:
        """Where notes, progress and errors go: the terminal's stderr."""
        return self._err or sys.stderr

    @property
    def capturing(self) -> bool:
        return self._saved is not None

    @property
    def to_log(self) -> bool:
        """Descriptor 2 is the log file now (not the terminal's stderr, as under -v)."""
        return self._saved is not None and self.log_path is not None

    def capture(self, home: Path, command: str) -> None:
        """Send descriptors 1 and 2 (and so every library's output and the worker processes') to a new log
        file under home/logs. Verbose, to the terminal's stderr instead: stdout carries the data alone
        (`ranker -v score --out - > scores.jsonl` had an engine's prints among the scores). Does nothing when
        already capturing, or when the log cannot be created."""
        if self._saved is not None:
            return
        if self.verbose:
            try:
                fd, path = os.dup(2), None
            except OSError:
                return
        else:
            logs = Path(home) / "logs"
            stamp = time.strftime("%Y%m%d-%H%M%S")
            try:
                logs.mkdir(mode=0o700, parents=True, exist_ok=True)
                _owners_only(logs, folder=True)     # an older ranker's 0755 folder listed every log's name
                path = logs / f"{stamp}-{command or 'ranker'}-{os.getpid()}.log"
                # the owner's only: libraries write to it what no redaction sees (a traceback's locals, an
                # engine's prints), and the papers and paths of a run are the user's
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            except OSError:
                return          # no log folder: the user sees everything rather than the command failing
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        saved = (os.dup(1), os.dup(2))
        enc = getattr(sys.stdout, "encoding", None) or "utf-8"
        self._out = open(saved[0], "w", buffering=1, encoding=enc, errors=TERMINAL_ERRORS, closefd=False)
        self._err = open(saved[1], "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or enc,
                         errors=TERMINAL_ERRORS, closefd=False)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        self._saved = saved
        self.log_path = path
        self._handler = redacting_handler()         # fd 2: the log, or (verbose) the terminal
        root = logging.getLogger()
        root.addHandler(self._handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        if path is not None:
            _prune(logs, KEEP_LOGS)

    def log_note(self) -> str:
        """' (details in LOG)' when the log holds anything, for a failure's line; else ''."""
        path = self.log_path
        try:
            if path is not None and path.stat().st_size > 0:
                return f" (details in {path})"
        except OSError:
            pass
        return ""

    def restore(self) -> None:
        """Give descriptors 1 and 2 back to the terminal; remove the log when nothing was written to it."""
        if self._saved is None:
            return
        for stream in (sys.stdout, sys.stderr, self._out, self._err):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        out, err = self._saved
        os.dup2(out, 1)
        os.dup2(err, 2)
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:                 # a reader that went away (`ranker ... | head`): its data is moot
                pass
        os.close(out)
        os.close(err)
        self._saved = self._out = self._err = None
        try:
            if self.log_path is not None and self.log_path.stat().st_size == 0:
                self.log_path.unlink()
        except OSError:
            pass


def _prune(logs: Path, keep: int) -> None:
    """Keep the newest `keep` log files, each the owner's only: an older ranker made them readable by every
    user (0644), and one may hold what only the log saw (a server URL's password, logged by httpx)."""
    try:
        files = sorted(logs.glob("*.log"), key=_mtime, reverse=True)
    except OSError:
        return
    for old in files[keep:]:
        try:
            old.unlink()
        except OSError:
            pass                        # another's, or gone already: the rest are still seen to
    for kept in files[:keep]:
        _owners_only(kept)


def _mtime(path: Path) -> float:
    """When `path` itself (a link, not what it points to) last changed; 0 for one gone since it was listed (the
    empty log of a command that ended meanwhile)."""
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def _owners_only(path: Path, *, folder: bool = False) -> None:
    """Take the group's and others' access to `path` away if it is a plain file (with `folder`, a folder) of
    this user's: a link (to a file or folder anywhere) is not followed, even one put in its place between the
    look and the change, and one of another user's (or a hard link to one) is left as it is, though root could
    change it."""
    kind, flags = (stat.S_ISDIR, os.O_DIRECTORY) if folder else (stat.S_ISREG, os.O_NONBLOCK)
    try:
        st = path.lstat()
        if not kind(st.st_mode) or st.st_uid != os.geteuid() or not st.st_mode & 0o077:
            return
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | flags)
    except OSError:
        return
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino):      # the very file looked at
            os.fchmod(fd, stat.S_IMODE(now.st_mode) & 0o700)
    except OSError:
        pass
    finally:
        os.close(fd)


def command_name(argv: list[str] | None = None) -> str:
    """The command of this invocation ('run', 'models-prepare', 'labels-export') from argv, for the log's name."""
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    name = "-".join(words[:2]) if words[:1] in (["models"], ["labels"]) else (words[0] if words else "ranker")
    return "".join(c for c in name if c.isalnum() or c in "-_") or "ranker"


TERM = Terminal()
