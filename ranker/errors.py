"""Error kinds. The CLI turns any RankerError into one line on stderr.

An error carries what is at fault so the CLI can name it the way the user gave it:
  where  a file (with :line), a folder or a URL
  key    a setting or parameter: a config key such as "prefilter.keep", or a parameter name such as "date".
         The library never names a command-line flag; the CLI words a key as the flag, the environment
         variable or the ranker.toml entry the value came from.
A message may mention another setting as {key:prefilter.max_tokens} (advice: "use ... or calibrate again"):
str() shows the key, the CLI the flag that sets it.
"""
from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from typing import Callable, Iterator

_MENTION = re.compile(r"\{key:([A-Za-z_][A-Za-z0-9_.]*)\}")


def _same(key: str) -> str:
    return key


def mentions(text: str, name_mention: Callable[[str], str] = _same) -> str:
    """`text` with its {key:...} mentions named by name_mention (the key itself by default; the CLI its flag)."""
    return _MENTION.sub(lambda m: name_mention(m.group(1)), text)


def mentioned(text: str) -> list[str]:
    """The keys `text` mentions as {key:...}."""
    return _MENTION.findall(text)


class RankerError(Exception):
    """Something the user can fix: bad input, a missing model, a network outage."""

    def __init__(self, message: str, *, where: str | None = None, key: str | None = None):
        self.message = " ".join(str(message).split())
        self.where = where
        self.key = key
        super().__init__(self.render())

    def render(self, name_key: Callable[[str], str] = _same, name_mention: Callable[[str], str] = _same) -> str:
        """One line: '<key as named> <where>: <message>' (the parts that are known), the settings the message
        mentions named by name_mention."""
        label = " ".join(x for x in ((name_key(self.key) if self.key else ""), self.where or "") if x)
        message = mentions(self.message, name_mention)
        return f"{label}: {message}" if label else message

    def __str__(self) -> str:
        return self.render()

    def __reduce__(self):
        # picklable whatever a subclass's constructor takes, so an error raised in another process (a Ray
        # worker) comes back as itself
        return (_restore, (type(self), self.args, self.__dict__))


class InputError(RankerError):
    """A file or value we were given is not what it should be."""


class ReaderGone(InputError):
    """A stream written to lost its reader: the other end of a pipe closed (`ranker fetch --out - | head -1`).
    Not the user's mistake: the CLI ends quietly (status 1, no line), as a pipeline expects."""


class EmptyDay(InputError):
    """A day holds no papers to rank: a weekend, a holiday, a file or feed of no announcements, or a filter that
    kept none (the message says which). Nothing to do rather than a bad input: a daily script may catch it and
    skip the day (or check `day.papers` first)."""


class ConfigError(RankerError):
    """A setting is wrong (in the TOML config, a flag, an environment variable or a value given in Python):
    `key` names the setting, or `where` the file or variable, when known."""


class FetchError(RankerError):
    """The network source could not be read (after retries)."""


class ModelError(RankerError):
    """A model could not be found, prepared or loaded. `prepare`: where what is missing is a preset not prepared
    yet, (preset name, GGUF variant or None), for the caller to say how to prepare it (the CLI names its
    command: the library names none)."""

    prepare: tuple[str, str | None] | None = None

    def __init__(self, message: str, *, where: str | None = None, key: str | None = None,
                 prepare: tuple[str, str | None] | None = None):
        super().__init__(message, where=where, key=key)
        self.prepare = prepare


class BackendError(RankerError):
    """A scoring backend failed as a whole (not one paper)."""


class StoreError(InputError):
    """The database cannot be opened, read or written: read-only, locked by another process, a full disk.
    `busy`: another process held it past the busy timeout (the same request may succeed later). `behind`: opened
    read-only as asked, the migrations its schema lacks (an upgrade only an open that may write makes)."""

    busy = False
    behind: tuple[str, ...] = ()


class MissingDependency(RankerError):
    """An optional package is not installed; says which extra brings it."""

    def __init__(self, package: str, extra: str, purpose: str = ""):
        hint = f"pip install 'ranker[{extra}]'" if extra else f"pip install {package}"
        what = f" (needed for {purpose})" if purpose else ""
        super().__init__(f"the package '{package}' is not installed{what}; install it with: {hint}")
        self.package = package
        self.extra = extra


def keyed(e: RankerError, key: str) -> RankerError:
    """`e` naming the parameter its file was given to (`key`), where it names none: "x.csv: not a digest" read
    for --gpt is said "--gpt x.csv: not a digest"."""
    if e.key is None:
        e.key = key
    return e


def _restore(cls, args, state):
    e = cls.__new__(cls)
    Exception.__init__(e, *args)
    e.__dict__.update(state)
    return e


def frame_owners(e: BaseException) -> Iterator[object]:
    """The `self` of each frame the failure `e` went up through, innermost last: how an object half made
    when a library failed (an engine, a cluster node) is found, to stop what it had started."""
    tb = e.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        tb = tb.tb_next
        if owner is not None:
            yield owner


def where(path, line: int | None = None) -> str:
    return f"{path}:{line}" if line is not None else str(path)


def given(value: str) -> str:
    """A value the user gave (a model's name), as an error names it: as typed, or quoted as Python writes it when
    it would not read back as typed (empty, control characters, spaces around it), not as nothing visible."""
    return value if value and value.isprintable() and value == value.strip() else repr(value)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during a step: which step (`stage`) and, where papers are scored, how many of those due
    have a stored score by then (`scored` of `due`; None where the step scores nothing), `reused` of those
    taken from the store rather than scored by this command. A KeyboardInterrupt, so whatever treats Ctrl-C
    specially still does; the CLI words it as one line and exits 130."""

    def __init__(self, stage: str, scored: int | None = None, due: int | None = None,
                 reused: int | None = None):
        super().__init__(stage)
        self.stage = stage
        self.scored = scored
        self.due = due
        self.reused = reused

    def __str__(self) -> str:
        if self.scored is None:
            kept = "what was stored so far is kept"
        elif self.reused:
            # a rerun of a stopped run reuses what the first stored: "12 scored so far" counted those too
            now = self.scored - self.reused
            kept = (f"{now} paper{'s' if now != 1 else ''} scored now and {self.reused} reused from the store "
                    "are kept")
        else:
            kept = (f"{self.scored} paper{'s' if self.scored != 1 else ''} scored so far "
                    f"{'are' if self.scored != 1 else 'is'} kept")
        return f"interrupted during {self.stage}; {kept}; rerun to resume"


# Set when Ctrl-C was pressed (the CLI's SIGINT handler says so), in case a library swallowed the
# KeyboardInterrupt it raised: every step checks it at its checkpoints and stops there.
_INTERRUPT = threading.Event()


def request_interrupt() -> None:
    """Ctrl-C was pressed: steps stop at their next checkpoint, even where a library caught the
    KeyboardInterrupt (some engines do while they start)."""
    _INTERRUPT.set()


def interrupt_requested() -> bool:
    return _INTERRUPT.is_set()


def clear_interrupt() -> None:
    _INTERRUPT.clear()


def checkpoint() -> None:
    """A place where a long step may stop: raises KeyboardInterrupt when Ctrl-C was pressed."""
    if _INTERRUPT.is_set():
        raise KeyboardInterrupt


@contextmanager
def during(stage: str, scored: Callable[[], int | None] | None = None,
           due: Callable[[], int | None] | None = None,
           reused: Callable[[], int | None] | None = None) -> Iterator[None]:
    """Name the step a Ctrl-C interrupts: a KeyboardInterrupt in the block becomes Interrupted(stage) (with
    the counts `scored()`, `due()` and `reused()` give, when given); an Interrupted from an inner step keeps its
    stage and gains the counts it lacks. The end of the block is a checkpoint, and after Ctrl-C any error in
    the block (an engine whose worker process got the same signal) is the interrupt."""
    def counts() -> tuple:
        return tuple(f() if f else None for f in (scored, due, reused))

    try:
        yield
        checkpoint()                       # a Ctrl-C the block swallowed stops the step here
    except Interrupted as e:
        if e.scored is None and scored is not None:
            e.scored = scored()
            if e.reused is None and reused is not None:
                e.reused = reused()        # of the same count: never one step's beside another's
        if e.due is None and due is not None:
            e.due = due()
        raise
    except KeyboardInterrupt as e:
        raise Interrupted(stage, *counts()) from e
    except Exception as e:
        if not _INTERRUPT.is_set():
            raise
        # after Ctrl-C, an engine whose worker process got the same signal fails with its own error
        raise Interrupted(stage, *counts()) from e
