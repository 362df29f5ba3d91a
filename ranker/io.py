"""The few helpers every layer shares, each written once:

  atomic_file / atomic_write   write a file so a reader sees the old one or the whole new one, never half
  check_writable               fail at once, naming the file, where such a write would fail after a long job
  check_output_dir             the same for a command's output folder (output_dir makes it)
  parse_arxiv_id / arxiv_id    an arXiv id in any of the forms arXiv and digests write it
  same_paper_id                an exact id, optionally with a version suffix (for validating model answers)
  retry                        exponential backoff that honours Retry-After, for every network client
                               (a deadline and a cancellable wait bound it)
  redact / add_secret          secrets (a registered API key, Bearer / sk- tokens) out of every error text
  clean_text                   NUL, control and bidi-override characters out of text from outside
  is_loopback_host / _url      what offline mode still allows
  expand_paths                 files named by paths, folders (searched recursively) and globs
  day_span                     days said as one span: `2025-05-15`, or `2025-04-17..2025-07-18`
  counted                      a count and its noun: `1 paper`, `2 papers`, `1,204 papers`
  local_stamp                  the clock's time for a file ranker writes, with its UTC offset
  Warn, Progress               the one signature of every warning and progress callback
  quiet_transformers           transformers' messages and progress bars off for a block, then as they were
"""
from __future__ import annotations

import errno
import glob
import ipaddress
import json
import os
import random
import re
import secrets
import signal
import stat
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Mapping, TypeVar
from urllib.parse import urlparse

from .errors import InputError, RankerError, ReaderGone

# A one-line note for the user (a skipped line, a retry, a day left out); never an error. The CLI prints it.
Warn = Callable[[str], None]
# (stage, done, total): how far a long step is; total None when unknown. A stage named LOADING + what ("loading
# smollm2-135m") is a model load: (stage, 0, None) when it starts, (stage, 1, 1) when the model is ready. A model
# whose name the load itself learns (a server's own, "auto") may end under that name: a ready stage that never
# started is the one load in progress.
Progress = Callable[[str, int, "int | None"], None]
LOADING = "loading "


def ignore_warning(_msg: str) -> None:
    pass


# --------------------------------------------------------------------------- paths
def expand_user(path: str | os.PathLike, *, key: str | None = None, where: str | None = None,
                error: type[RankerError] = InputError) -> Path:
    """Path(path).expanduser(); a "~user" that names no user (or a "~" with no home to find) is `error` naming
    `key` or `where` (a setting, a variable), where pathlib's RuntimeError ended a command as 'unexpected failure:
    Could not determine home directory'."""
    try:
        return Path(path).expanduser()
    except RuntimeError:
        head = os.fspath(path).split("/", 1)[0]
        why = "no home folder is known (HOME is unset)" if head == "~" else "no such user"
        raise error(f"cannot expand {head!r}: {why}", key=key, where=where) from None


def fs_text(name: str) -> str:
    """A name from the file system (os.fsdecode's: under LC_ALL=C with Python's UTF-8 mode off its non-ASCII
    bytes are surrogate escapes, which neither SQLite nor a UTF-8 file takes) as the text its UTF-8 bytes spell,
    the name a UTF-8 terminal shows: the same under every locale (fs_name's inverse). Bytes that are no UTF-8 as
    surrogate escapes, as a UTF-8 run reads them ("ö\\udcff", not all escapes)."""
    if not any("\udc80" <= c <= "\udcff" for c in name):
        return name
    try:
        return os.fsencode(name).decode("utf-8", "surrogateescape")
    except UnicodeError:
        return name


def fs_name(text: str) -> str:
    """A path written as text (in ranker.toml, always UTF-8) as the file system takes it. Under a locale whose
    encoding cannot spell it (LC_ALL=C with Python's UTF-8 mode off: ASCII) every use of it failed, 'ascii' codec
    can't encode character: it names the file its UTF-8 bytes name (the name a UTF-8 terminal, `ls` or Python's
    UTF-8 mode shows), as surrogate escapes; any other (a lone surrogate, "\\ud800", that no encoding spells) as
    it is."""
    try:
        os.fsencode(text)
        return text
    except UnicodeEncodeError:
        pass
    try:
        return os.fsdecode(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:
        return text


# --------------------------------------------------------------------------- atomic writes
def _cannot_write(path, e: OSError) -> InputError:
    if e.errno == errno.EPIPE:              # `--out - | head -1`: the reader went away, nothing is at fault
        return ReaderGone(f"cannot write: {e.strerror or e}", where=str(path))
    return InputError(f"cannot write: {e.strerror or e}", where=str(path))


def check_writable(path: str | os.PathLike) -> None:
    """An InputError naming `path` now where atomic_file would fail at the end of a long job: a directory
    given as a file, or a folder that cannot be made or written in. Makes nothing: a temporary file is
    created and removed in its folder, or in the nearest of that folder's parents that is there."""
    given = Path(path)
    _held_descriptor(given)                         # /dev/fd/3 with no descriptor 3 given: refused now
    if _names_a_stream(given) and given.exists():
        return
    if given.is_dir():
        raise _a_directory(given)
    if given.exists() and not given.is_file():
        return                                      # a device or a pipe: written in place, no file made
    _can_make_in(Path(os.path.realpath(given)).parent, given)


def check_output_dir(path: str | os.PathLike, key: str = "out") -> None:
    """An InputError naming `path` (and the setting `key`) now where output_dir would fail after a long job:
    a file where the folder goes, or a folder that cannot be made or written in. Makes nothing."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise InputError("not a directory", where=str(out), key=key)
    _can_make_in(Path(os.path.realpath(out)), out)


def _can_make_in(folder: Path, given: Path) -> None:
    """`folder` is one, or can be made, and a file can be written in it (`given`: what errors name)."""
    there = folder
    while not there.exists() and there != there.parent:
        there = there.parent
    if not there.is_dir():
        raise InputError(f"cannot write: {there} is not a folder", where=str(given))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{given.name}.", suffix=".tmp", dir=there)
        os.close(fd)
        os.unlink(tmp)
    except OSError as e:
        raise _cannot_write(given, e) from None


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _a_directory(path: Path, own_name: bool = False) -> InputError:
    """A directory where a file is to be written: one the user named is told to name a file; in the place of
    one of ranker's own names (a day's DATE-run.json, an index's manifest.json) it can only be moved away."""
    if own_name:
        return InputError("is a directory where ranker keeps one of its files; move it away or remove it",
                          where=str(path))
    return InputError("is a directory; give a file name", where=str(path))


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "w", encoding: str = "utf-8", *,
                renames: list[tuple[Path, Path]] | None = None, locks: list[int] | None = None,
                tidy: bool = False, own_name: bool = False) -> Iterator[IO]:
    """Yield a file to write `path` with; it takes its place only when the block ends without error.

    A regular file is written to a temporary `.NAME.XXXXXXXX.tmp` beside it, flushed to disk and renamed over
    it, so a reader (or a killed run) sees the old file or the whole new one. A symlink is followed (the link
    stays, its target is replaced); a character or block device, a FIFO or a socket (/dev/null, /dev/stdout)
    is written in place, never replaced, and so is a name in /proc or one that leads there (/dev/stdout
    redirected to a file is written through the descriptor, where the shell left off, not renamed over; see
    _names_a_stream and _write_in_place). A directory is an InputError;
    so is any OSError (a full disk, a read-only file system), naming the path, and the temporary file is
    removed whatever went wrong. With `renames`, a regular file is not renamed: (temporary, target) is appended
    for write_together.
    The temporary file is held locked (flock) until it has its name (or, with `renames`, until it is written;
    with `locks` too, the descriptor holding it is appended there for the caller to close once it is renamed),
    so a writer killed meanwhile (kill -9, the OOM killer) is told from a live one: with `tidy`, the temporary
    files of `path` that killed writers left (a snapshot's papers, gigabytes) are removed first.
    With `own_name`, `path` is a name ranker made in a folder (a day's DATE-run.json in --out, an index's
    manifest.json), never one the user gave: a FIFO, socket or device there (or a link to one) was not put there
    to be written into, and is not (a FIFO's open waited for a reader forever): the new file takes its name by
    the rename, as it would an old file's; so does a link to nothing there."""
    if mode not in ("w", "wb"):
        raise ValueError("atomic_file writes text ('w') or bytes ('wb')")
    given = Path(path)
    target = given
    if not own_name and _names_a_stream(given):
        if given.is_dir():
            raise _a_directory(given)
        yield from _write_in_place(given, mode.replace("w", "a"), encoding)
        return
    try:
        st = os.stat(given)                          # follows links
    except FileNotFoundError:
        st = None
        # a dangling link: create its target; one of ranker's own names is replaced (the index's manifest.json
        # made as the link's target beside it was then removed as a file the manifest does not name)
        if given.is_symlink() and not own_name:
            target = Path(os.path.realpath(given))
    except OSError as e:
        raise _cannot_write(given, e) from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise _a_directory(given, own_name)
        if not stat.S_ISREG(st.st_mode):
            if not own_name:
                yield from _write_in_place(given, mode, encoding)
                return
            st = None                                # replaced, the link to it too: nothing of it to keep
        elif given.is_symlink():
            target = Path(os.path.realpath(given))
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if tidy:
            remove_leftovers([target], dead_only=True)
        while True:
            tmp = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)   # the umask applies
            except FileExistsError:
                continue
            held = _held_while_written(fd)
            if _names_this(tmp, fd):
                break
            # another command's tidy (remove_leftovers) took it for a killed writer's, unlocked between its
            # creation and its lock: the rename at the end failed, the file's name gone; a new name
            if held is not None:
                os.close(held)
            os.close(fd)
    except OSError as e:
        raise _cannot_write(given, e) from None
    try:
        # the descriptor goes into the file object first: whatever fails after this closes it
        with os.fdopen(fd, mode, **({"encoding": encoding} if mode == "w" else {})) as f:
            if st is not None:
                os.chmod(tmp, stat.S_IMODE(st.st_mode))   # a rewritten file keeps its permissions
            yield f
            f.flush()
            os.fsync(f.fileno())
        if renames is not None:
            renames.append((tmp, target))
            if locks is not None and held is not None:
                locks.append(held)             # still locked until the caller has renamed it
                held = None
            return
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _cannot_write(given, e) from None
        raise
    finally:
        if held is not None:
            os.close(held)
    _fsync_dir(folder)


def _held_while_written(fd: int) -> int | None:
    """A second descriptor of a temporary file, holding an flock on it (released when it is closed, or when its
    process ends, however it ends); None where files cannot be locked."""
    try:
        import fcntl
        held = os.dup(fd)
    except (ImportError, OSError):
        return None
    try:
        try:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            # a file just created, held: another command's tidy, which removes it for a killed writer's in a
            # moment (atomic_file then takes a new name); it went unlocked, a live writer's file for every tidy
            fcntl.flock(held, fcntl.LOCK_EX)
    except OSError:
        os.close(held)
        return None
    return held


def _names_this(path: Path, fd: int) -> bool:
    """`path` still names the file open as `fd` (no other process removed it, or put another in its place)."""
    try:
        return os.path.samestat(os.stat(path, follow_symlinks=False), os.fstat(fd))
    except OSError:
        return False


def write_together(files: Mapping[Path, Iterable[str]], remove: Iterable[Path] = (), *,
                   before_names: Callable[[], None] | None = None) -> None:
    """Write several text files as one set: each whole to a temporary file on disk first, then all renamed in
    one quick step with Ctrl-C held back until it ends, so an interruption (or a failure to write any of
    them, or a rename that fails midway: the files renamed before it take their old files back, kept under a
    second name meanwhile) leaves the old set or the new one, never a mix. A KeyboardInterrupt held back is
    raised once the new set is in place, marked `written`; so is one that comes while the folders are synced
    after it. `remove`: files that have no place in the new set (an earlier set's file this one does not
    make), removed in the same step, and put back with the others when it fails.

    A process killed between two renames (kill -9, the OOM killer, a power cut: nothing of it runs again) cannot
    put anything back: before the first rename a journal of the set (SET_JOURNAL, one in each folder of the
    set, held locked by this process) names what is left to do, and the next set written into that folder, or
    finish_sets, finishes it: every file of the set was whole on disk before the journal was made. Its temporary
    files stay locked until they have their names (see atomic_file's `locks`), so another process tidying the
    folder (remove_leftovers with `dead_only`) leaves them to it, before_names waiting however long.
    `before_names`: called once every file is whole on disk, just before they take their names, so what a caller
    records elsewhere (a database's record of these files) comes a journal's write before the files, not the
    writing of them all: its failure, or a Ctrl-C up to there, leaves the old set.
    The files are names the caller made in its folders (a day's files in --out, eval's, compare's), never a
    stream the user named: a FIFO or device in a file's place is replaced with the rest (atomic_file's
    `own_name`), not written into, where the set waited for a reader forever."""
    renames: list[tuple[Path, Path]] = []
    done: list[Path] = []
    kept: dict[Path, Path | bool] = {}           # target -> a second name of its old file (see _second_name)
    journals: list[tuple[Path, int]] = []
    locks: list[int] = []                        # the temporary files held locked until they have their names
    placed = False
    try:
        targets = [Path(p) for p in files] + [Path(p) for p in remove]
        # a set a killed process left half-named: finished first (also where a link among the files leads)
        for folder in dict.fromkeys(x for p in targets for x in (p.parent, Path(os.path.realpath(p)).parent)):
            finish_sets(folder)
        for path, chunks in files.items():
            with atomic_file(path, renames=renames, locks=locks, own_name=True) as f:
                f.writelines(chunks)
        if before_names is not None:
            before_names()
        with _ctrl_c_held():
            gone = [Path(p) for p in remove if os.path.lexists(p)]
            # the old files' second names are in the journal before they are made: a process killed before its
            # journal had its name (nothing finishes its set) left none of them, no link nothing removes
            names = {target: _old_name(target) for target in [t for _, t in renames] + gone}
            journals = _begin_journals(renames, gone, names)
            for target, name in names.items():
                kept[target] = _second_name(target, name)
            while renames:
                tmp, target = renames[0]
                try:
                    os.replace(tmp, target)
                except OSError as e:
                    _give_up(journals, done, kept)   # a rename that fails midway: the old set, not a mix
                    raise _cannot_write(target, e) from None
                renames.pop(0)
                done.append(target)
            for target in gone:
                try:
                    os.unlink(target)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    _give_up(journals, done, kept)
                    raise _cannot_write(target, e) from None
                done.append(target)
            placed = True
        for folder in dict.fromkeys(target.parent for target in done):
            _fsync_dir(folder)
    except KeyboardInterrupt as e:
        if placed:
            e.written = True                       # the Ctrl-C held back, or one during the sync: the whole
        raise                                      # new set has its names
    finally:
        for tmp in [t for t, _ in renames] + [k for k in kept.values() if isinstance(k, Path)]:
            try:                                   # whatever did not take its name, and the old files' names
                os.unlink(tmp)
            except OSError:
                pass
        for journal, fd in journals:               # the set is whole (or the old one is back): nothing to finish
            try:
                os.unlink(journal)
            except OSError:
                pass
            os.close(fd)
        for fd in locks:
            os.close(fd)


# A journal of a set of files write_together is giving their names: `.ranker-set.<hex>.json` in each folder of
# the set, listing (by name, in that folder) the temporary files and the names they take, the files the set
# removes and the old files' second names; the writing process holds it locked (flock) while it renames.
SET_JOURNAL = re.compile(r"^\.ranker-set\.[0-9a-f]{8}\.json$")


def _begin_journals(renames: list[tuple[Path, Path]], gone: list[Path],
                    olds: Mapping[Path, Path]) -> list[tuple[Path, int]]:
    """A locked journal in each folder of the set (see SET_JOURNAL), written whole and synced before the first
    rename; [] where files cannot be locked (not POSIX, NFS without a lock daemon: no other process could tell a
    live set from a killed one) or the journal cannot be written (the set is renamed as before without it)."""
    try:
        import fcntl
    except ImportError:
        return []
    per_folder: dict[Path, dict] = {}
    for tmp, target in renames:
        j = per_folder.setdefault(target.parent, {"rename": [], "remove": [], "old": []})
        if tmp.parent == target.parent:
            j["rename"].append([tmp.name, target.name])
    for target in gone:
        per_folder.setdefault(target.parent, {"rename": [], "remove": [], "old": []})["remove"].append(target.name)
    for target, old in olds.items():                # the names the old files' second names are to take
        if target.parent in per_folder:
            per_folder[target.parent]["old"].append(old.name)
    out: list[tuple[Path, int]] = []
    for folder, entries in per_folder.items():
        journal = folder / f".ranker-set.{secrets.token_hex(4)}.json"
        tmp = folder / f".{journal.name}.tmp"
        fd = None
        try:
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)     # locked before it has its name: never seen unlocked
            os.write(fd, json.dumps({"format": 1, **entries}).encode())
            os.fsync(fd)
            os.replace(tmp, journal)
            _fsync_dir(folder)
        except OSError:
            if fd is not None:
                os.close(fd)
            for p in (tmp, journal):
                try:
                    os.unlink(p)
                except OSError:
                    pass
            continue
        out.append((journal, fd))
    return out


def finish_sets(folder: str | os.PathLike) -> int:
    """Finish the sets of files a killed process left half-named in `folder` (write_together's journals that no
    live process holds): each file still under its temporary name takes its name, the files the set removes go,
    and the old files' second names with the journal. A journal another process holds locked (a set being
    renamed now) is left to it. A journal this process may read but not write (its mode made read-only; another
    user's is made 0600 and is not read) is read read-only and its set finished where its lock tells a killed
    set from a live one (a local filesystem; on NFS a read-only descriptor cannot take the lock and it is left):
    every file of a set is whole before its journal has its name, so finishing it is what its writer would have
    done. Returns how many sets were finished; best effort (a folder that cannot be listed or written finishes
    none, and the next set tries again)."""
    try:
        import fcntl
        listed = os.listdir(folder)
    except (ImportError, OSError):
        return 0
    for name in listed:                            # a journal killed while it was written: no set began
        if name.startswith(".") and name.endswith(".tmp") and SET_JOURNAL.match(name[1:-4]):
            fd = _held_if_dead(Path(folder) / name, fcntl)
            if fd is None:
                continue
            try:
                os.unlink(Path(folder) / name)
            except OSError:
                pass
            finally:
                os.close(fd)
    finished = 0
    for name in sorted(n for n in listed if SET_JOURNAL.match(n)):
        journal = Path(folder) / name
        fd = _held_if_dead(journal, fcntl, read=True)
        if fd is None:
            continue                               # held: a live set (or no locks here: cannot tell); not a file
        try:
            if os.fstat(fd).st_nlink == 0:
                continue                           # finished by another process while this one waited
            try:
                entries = json.loads(os.read(fd, 1 << 24).decode())
                renames = [(str(a), str(b)) for a, b in entries.get("rename", [])]
                removes, olds = [str(x) for x in entries.get("remove", [])], [str(x) for x in entries.get("old", [])]
            except (ValueError, TypeError, AttributeError, UnicodeDecodeError):
                renames, removes, olds = [], [], []      # not ours to follow: only the journal goes
            for tmp, target in renames:
                if "/" in tmp + target or not os.path.lexists(Path(folder) / tmp):
                    continue
                try:
                    os.replace(Path(folder) / tmp, Path(folder) / target)
                except OSError:
                    pass
            for x in removes + olds:
                if "/" not in x:
                    try:
                        os.unlink(Path(folder) / x)
                    except OSError:
                        pass
            _fsync_dir(Path(folder))
            try:
                os.unlink(journal)
                finished += 1
            except OSError:
                pass
        finally:
            os.close(fd)
    return finished


def remove_leftovers(files: Iterable[str | os.PathLike], *, dead_only: bool = False) -> int:
    """Remove what a killed writer of `files` left beside them: atomic_file's temporary files
    (`.NAME.XXXXXXXX.tmp`) and write_together's second names of old files (`.NAME.XXXXXXXX.old`). Only for a
    caller that is the one writer of those names now (the folder's index under its lock; not a day's run: one
    from another home, or another machine on a shared database, is not refused): a live writer's temporary file
    would be taken from under it. With `dead_only`, for any caller: only the temporary files no live writer holds
    locked (see atomic_file and write_together; none where files cannot be locked). Returns how many went."""
    try:
        import fcntl
    except ImportError:
        if dead_only:
            return 0
    removed = 0
    for path in files:
        path = Path(path)
        try:
            names = os.listdir(path.parent)
        except OSError:
            continue
        mine = re.compile(r"^\." + re.escape(path.name) + r"\.[0-9a-f]{8}\." + ("tmp" if dead_only else "(tmp|old)")
                          + "$")
        for name in names:
            if not mine.match(name):
                continue
            fd = None
            try:
                if dead_only:
                    fd = _held_if_dead(path.parent / name, fcntl)
                    if fd is None:
                        continue
                os.unlink(path.parent / name)
                removed += 1
            except OSError:
                pass
            finally:
                if fd is not None:
                    os.close(fd)
    return removed


def _held_if_dead(tmp: Path, fcntl, *, read: bool = False) -> int | None:
    """A descriptor of the temporary file or set journal `tmp`, holding the flock no live writer holds (a killed
    writer's file); None for a live writer's, for what is not a regular file (a link, a FIFO, a device: never
    opened as a file, and opened without blocking should one take its name meanwhile: a FIFO's open waited for a
    writer forever, its read too) and for what cannot be opened or locked (kept: it cannot be told). Opened for
    writing (and reading, with `read`), never truncated: on NFS flock is emulated with fcntl locks, whose
    exclusive lock needs a descriptor open for writing (read-only, no file there was ever removed); a read-only
    file (a killed rewrite of a read-only file) read-only."""
    try:
        try:
            fd = _open_regular(tmp, os.O_RDWR if read else os.O_WRONLY)
        except PermissionError:
            fd = _open_regular(tmp, os.O_RDONLY)
    except OSError:                                    # gone, not a regular file, a FIFO now (ENXIO), a link
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)   # held: a live writer's
    except OSError:
        os.close(fd)
        return None
    return fd


def _open_regular(path: Path, flags: int, *, follow: bool = False) -> int:
    """A descriptor of `path`, opened with `flags`, if it is a regular file: nothing is waited for (a FIFO's open
    waited for a writer forever, its read too) and a link is not followed unless `follow`; an OSError for anything
    else (a FIFO, a socket, a device: never opened as a file; a link, unless `follow`; a folder; gone), one that
    takes the name between the look and the open included, and a BlockingIOError for a file another holds a
    lease on (see read_regular)."""
    look = os.stat if follow else os.lstat
    if not stat.S_ISREG(look(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    fd = os.open(path, flags | (0 if follow else os.O_NOFOLLOW) | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _lease_break_time() -> float:
    """How long the kernel gives a lease holder to let go of a file before it breaks the lease itself (45 s by
    default), and a second more; 46 s where it cannot be read."""
    try:
        with open("/proc/sys/fs/lease-break-time", encoding="ascii") as f:
            return float(f.read()) + 1.0
    except (OSError, ValueError):
        return 46.0


def read_regular(path: str | os.PathLike, limit: int = -1) -> bytes:
    """The bytes of a file ranker wrote, found by its name in a folder (a day's run manifest), its first `limit`
    only where that is given (a site's search index, told by its first words): an OSError unless
    it is a regular file or a link to one (see _open_regular; a folder of links to runs' files, as git-annex or
    stow leave, is read). A FIFO or a device in its place was not made by ranker: its read never waited for.
    A file another holds a write lease on (Samba's oplocks, an NFS server's delegations) refuses an open that
    does not wait (EAGAIN) while its holder is told to let go: opened again every 0.1 s until the lease is let
    go or the kernel breaks it (lease-break-time), not taken as unreadable. Not opened waiting instead: a FIFO
    that takes the name between the look and the open would wait for a writer forever."""
    deadline = None
    while True:
        try:
            fd = _open_regular(Path(path), os.O_RDONLY, follow=True)
            break
        except BlockingIOError:
            deadline = deadline or time.monotonic() + _lease_break_time()
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
    with os.fdopen(fd, "rb") as f:
        return f.read(limit)


def _old_name(target: Path) -> Path:
    """A name for a second name of `target`'s old file (see _second_name)."""
    return target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")


def _second_name(target: Path, link: Path) -> Path | bool:
    """A hard link `link` to `target`'s old file beside it, so write_together can put it back; False when there
    is no old file (putting back is removing the new one), True when no second name can be made (a file system
    without hard links: that file is not put back)."""
    if not os.path.lexists(target):
        return False
    try:
        os.link(target, link)
    except OSError:
        return True
    return link


def _give_up(journals: list[tuple[Path, int]], done: list[Path], kept: Mapping[Path, Path | bool]) -> None:
    """A set that failed midway: its journals go first, then its targets take their old files back (_put_back).
    A journal left while they were put back (the process killed then) had the next set finish the failed one over
    the old files put back: a mix of the two."""
    for journal, _ in journals:
        try:
            os.unlink(journal)
        except OSError:
            pass
    for folder in dict.fromkeys(journal.parent for journal, _ in journals):
        _fsync_dir(folder)
    _put_back(done, kept)


def _put_back(done: list[Path], kept: Mapping[Path, Path | bool]) -> None:
    """The targets renamed so far take their old files back, a new one is removed; best effort."""
    for target in reversed(done):
        old = kept.get(target, True)
        try:
            if isinstance(old, Path):
                os.replace(old, target)
            elif old is False:
                os.unlink(target)
        except OSError:
            pass


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """SIGINT arriving inside the block is acted on when it ends (by the handler that was in place); so is a
    SIGTERM where a Python handler takes it (the CLI's, which stops the command as a Ctrl-C does)."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is None:
        yield                                      # only the main thread may set a handler; None: not Python's
        return
    caught: list = []
    held = [signal.SIGINT] + ([signal.SIGTERM] if callable(signal.getsignal(signal.SIGTERM)) else [])
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append((signum, frame))) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if caught:
        signum, frame = caught[0]
        if callable(previous[signum]):
            previous[signum](signum, frame)
        elif signum == signal.SIGINT and previous[signum] == signal.SIG_DFL:
            raise KeyboardInterrupt


def _names_a_stream(path: Path) -> bool:
    """/dev/stdout, /dev/fd/3, /proc/self/fd/1 ...: a name for an open stream (or a device), never a place to
    put a new file. Checked on the path as given, then link by link without resolving /proc's own links
    (/dev/stdout resolves to whatever the shell redirected it to): a name that leads into /proc is a stream.
    A file or folder under /dev itself (/dev/shm/digests/, a tmpfs), or a link there to one, is a place like
    any other: written whole and renamed, never appended to."""
    return _stream_name(Path(os.path.abspath(path)), 0)


def _stream_name(path: Path, hops: int) -> bool:
    parts = path.parts
    if len(parts) <= 2 or parts[1] not in ("dev", "proc"):
        return False
    if parts[1] == "proc" or Path(os.path.realpath(path.parent)).parts[1:2] == ("proc",):
        return True                                # /proc/self/fd/1, /dev/fd/3 (/dev/fd is /proc/self/fd)
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return False                               # a new file: /dev/shm/x.json is made
    if stat.S_ISLNK(mode) and hops < 40:
        # /dev/stdout leads into /proc (a stream); a link a user made in /dev/shm to a file there does not
        return _stream_name(Path(os.path.abspath(os.path.join(path.parent, os.readlink(path)))), hops + 1)
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


_OWN_FD = re.compile(r"^/(?:dev/fd|proc/self/fd|proc/(\d+)/fd)/(\d+)$")
_STD_FD = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}


def own_descriptor(path: Path) -> int | None:
    """The descriptor of this process that `path` names (/dev/stdout, /dev/fd/5, /proc/self/fd/1), or None. The
    name is normalised first, POSIX's leading "//" folded (//dev/fd/3), and a link to such a name (ln -s
    /dev/fd/3 out) followed hop by hop: its folders resolved, never the descriptor's own link (which leads to the
    file it has open). Matched on the name as given, both skipped the check of a descriptor not given."""
    name = _fold_root(os.path.abspath(path))
    for _ in range(40):
        fd = _descriptor_named(name)
        if fd is not None:
            return fd
        folder, last = os.path.split(name)
        name = os.path.join(_fold_root(os.path.realpath(folder)), last)
        fd = _descriptor_named(name)
        if fd is not None or not os.path.islink(name):
            return fd
        try:
            name = _fold_root(os.path.abspath(os.path.join(os.path.dirname(name), os.readlink(name))))
        except OSError:
            return None                 # (another process's descriptor, not ours to read)
    return None


def stdin_or_descriptor(spec: str | os.PathLike) -> int | None:
    """0 for '-' (stdin), else own_descriptor(spec): the descriptor of this process a command-line value names
    (/dev/stdin, /dev/fd/0, a shell's `<(zcat x.gz)`), or None for a path to read by name."""
    return 0 if str(spec) == "-" else own_descriptor(Path(spec))


# '-' read as stdin, by the one name every reader opens (`prefilter --papers -` read "<stdin>" where `labels import -`
# and `compare --gpt -` read /dev/stdin); what a line calls it is the caller's `name` (the CLI's `stdin`, cli.common
# in_shown), and what is recorded (compare's metrics.json files) keeps this
STDIN = "/dev/stdin"


def stdin_named(spec: str | os.PathLike) -> str | os.PathLike:
    """`spec`, or STDIN for '-' (stdin, not a file named '-')."""
    return STDIN if str(spec) == "-" else spec


def _fold_root(name: str) -> str:
    return "/" + name.lstrip("/") if name.startswith("//") else name


def _descriptor_named(name: str) -> int | None:
    if name in _STD_FD:
        return _STD_FD[name]
    m = _OWN_FD.match(name)
    if m is None or (m.group(1) is not None and int(m.group(1)) != os.getpid()):
        return None
    return int(m.group(2))


# The descriptors the caller gave this process (`3> file`), besides 0-2; None: every one it holds (a library's
# caller, who opened them itself). The CLI records them as it starts, before it opens anything of its own.
_GIVEN_FDS: set[int] | None = None


def open_descriptors() -> set[int]:
    """The descriptors this process holds now."""
    try:
        names: Iterable = os.listdir("/proc/self/fd")
    except OSError:
        try:
            names = os.listdir("/dev/fd")
        except OSError:
            names = range(256)
    held = set()
    for name in names:
        try:
            fd = int(name)
            os.fstat(fd)                # (the listing's own descriptor is closed since)
        except (ValueError, OSError):
            continue
        held.add(fd)
    return held


def given_descriptors(fds: Iterable[int] | None) -> set[int] | None:
    """From now on a name for a descriptor of this process (/dev/fd/N, /proc/self/fd/N) is written or read
    through it only for 0-2, `fds` (those the caller gave, from open_descriptors() at the start) and any
    give_descriptor() adds; any other is refused: it is one this process opened for itself (the database:
    `ranker labels export /dev/fd/3` with no descriptor 3 given wrote the labels over it). None: every one
    held (the default). Returns the setting it replaces."""
    global _GIVEN_FDS
    before, _GIVEN_FDS = _GIVEN_FDS, (None if fds is None else set(fds))
    return before


def give_descriptor(fd: int) -> None:
    """`fd` stands for a descriptor given to the process (the CLI's own copy of its stdout, /dev/fd/5, which
    `--out -` is written through while descriptors 1 and 2 carry the log)."""
    if _GIVEN_FDS is not None:
        _GIVEN_FDS.add(fd)


def _held_descriptor(path: Path, error: type[InputError] = InputError) -> int | None:
    """own_descriptor(path), or an `error` when it is one the caller did not give (see given_descriptors)."""
    fd = own_descriptor(path)
    if fd is None or fd <= 2 or _GIVEN_FDS is None or fd in _GIVEN_FDS:
        return fd
    raise error(f"descriptor {fd} was not given to ranker (as a shell's `{fd}>file` or `{fd}<file` gives it); "
                "give a file name", where=str(path))


def _write_in_place(path: Path, mode: str, encoding: str) -> Iterator[IO]:
    """Write a stream or a device where it is. A name for a descriptor this process holds (`--out -`'s
    /dev/stdout, /dev/fd/5) is written through that descriptor, sharing its offset: opened afresh, a stdout
    redirected to a file was written at the file's end as it was when opened, and the shell's next write
    (`{ ranker fetch --out -; echo done; } > f`) landed over the data. A descriptor the caller did not give is
    an InputError (_held_descriptor)."""
    text = {"encoding": encoding} if "b" not in mode else {}
    fd = _held_descriptor(path)
    try:
        if fd is not None:
            os.fstat(fd)                        # closed: the name is opened as any other (and fails so)
            f = _open_dup(fd, mode.replace("a", "w"), **text)  # an open descriptor is never truncated
        else:
            f = open(path, mode, **text)
    except OSError as e:
        raise _cannot_write(path, e) from None
    try:
        with f:
            yield f
            f.flush()
    except OSError as e:
        raise _cannot_write(path, e) from None


def _open_dup(fd: int, mode: str, **kw) -> IO:
    """A file object on a copy of `fd` (closing it leaves `fd` open); the copy is closed if the open fails."""
    dup = os.dup(fd)
    try:
        return open(dup, mode, **kw)
    except BaseException:
        os.close(dup)
        raise


def open_lock_file(path: Path, *, write: bool = True) -> int:
    """A descriptor of the lock file `path` to flock: with `write` created where missing (0o666, the umask
    applies) and opened for reading and writing, else opened for reading only (an OSError where it is missing).
    Opened without waiting: a FIFO in its place (flock holds on it all the same) was opened as a pipe, and a
    reader waited for a writer for good (as a stream to append to, it was "not seekable")."""
    return os.open(path, (os.O_RDWR | os.O_CREAT if write else os.O_RDONLY) | os.O_NONBLOCK, 0o666)


def lock_exclusive(fd: int, waiting: Callable[[], None], *, without_locks: bool = False) -> None:
    """An exclusive flock on `fd`, held until it is closed (or the process ends, however it ends). Where another
    process holds it, `waiting` is called once, then the lock is waited for. A file system without locks (NFS
    with no lock daemon) raises OSError, or, with `without_locks`, leaves `fd` unlocked."""
    lock_waiting(fd, waiting, without_locks=without_locks)


def lock_waiting(fd: int, waiting: Callable[[], None], *, shared: bool = False, without_locks: bool = False) -> None:
    """lock_exclusive, or with `shared` a shared flock (readers share it; a writer's exclusive one excludes it)."""
    import fcntl
    how = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    try:
        try:
            fcntl.flock(fd, how | fcntl.LOCK_NB)
        except BlockingIOError:
            waiting()
            fcntl.flock(fd, how)
    except OSError:
        if not without_locks:
            raise


def atomic_write(path: str | os.PathLike, data: str | bytes | Iterable[str] | Iterable[bytes], *,
                 tidy: bool = False, own_name: bool = False) -> int:
    """Write text, bytes or an iterable of text or byte chunks (lines) to `path` through atomic_file (`tidy`:
    removing first the temporary files of `path` that killed writers left; `own_name`: a name ranker made in a
    folder, a FIFO or device there replaced, not written into). An iterable is consumed as it is written, so it
    may be a generator of any size. Returns the chunks written (1 for a str or bytes)."""
    if isinstance(data, (str, bytes, bytearray)):
        with atomic_file(path, "w" if isinstance(data, str) else "wb", tidy=tidy, own_name=own_name) as f:
            f.write(data)
        return 1
    n = 0
    with atomic_file(path, "wb", tidy=tidy, own_name=own_name) as f:
        for chunk in data:
            f.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)
            n += 1
    return n


def output_dir(path: str | os.PathLike, key: str = "out") -> Path:
    """The folder a command writes its files into, created with its parents; an InputError naming it (and
    the setting `key`) when it cannot be made or is not a folder."""
    out = Path(path).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output directory: {e.strerror or e}", where=str(out), key=key) \
            from None
    if not out.is_dir():
        raise InputError("not a directory", where=str(out), key=key)
    return out


def json_loads(text: str | bytes, **kw):
    """json.loads, except that a value nested deeper than the parser's recursion allows (a hostile or broken
    '[[[[...', ~1,000 levels) raises json.JSONDecodeError, as any other bad JSON does: it raised RecursionError,
    which no reader's except clause took (`ranker compare` on such a line died 'unexpected failure')."""
    try:
        return json.loads(text, **kw)
    except RecursionError:
        doc = text if isinstance(text, str) else ""
        raise json.JSONDecodeError("nested too deeply", doc, 0) from None


def read_text(path: str | os.PathLike, what: str = "file", error: type[InputError] = InputError,
              errors: str = "strict", name: str | None = None) -> str:
    """A UTF-8 text file, a leading byte-order mark dropped (Notepad's "UTF-8 with BOM": it is not text), or an
    `error` (InputError or a subclass) naming the path (or `name`, what the caller's messages call it: the CLI's
    `stdin` for the /dev/stdin read for '-'): not found, a directory, unreadable, not UTF-8 (unless
    errors="replace")."""
    with _reading(name or path, what, error):
        fd = _held_descriptor(Path(path), error)
        if fd is not None:      # /dev/stdin: read where the caller's descriptor is, as a pipe or a file alike
            with _open_dup(fd, "r", encoding="utf-8-sig", errors=errors) as f:
                return f.read()
        return Path(path).read_text(encoding="utf-8-sig", errors=errors)


def read_bytes(path: str | os.PathLike, what: str = "file", error: type[InputError] = InputError) -> bytes:
    """A file's bytes, as read_text reads its text (a descriptor given, /dev/stdin, where it is), or an `error`
    naming the path."""
    with _reading(path, what, error):
        fd = _held_descriptor(Path(path), error)
        if fd is not None:
            with _open_dup(fd, "rb") as f:
                return f.read()
        return Path(path).read_bytes()


@contextmanager
def _reading(path: str | os.PathLike, what: str, error: type[InputError]) -> Iterator[None]:
    """read_text's and read_bytes' failures as an `error` naming the path."""
    try:
        yield
    except FileNotFoundError:
        raise error(f"{what} not found", where=str(path)) from None
    except IsADirectoryError:
        raise error(f"is a directory, not a {what}", where=str(path)) from None
    except UnicodeDecodeError as e:
        raise error(f"not UTF-8 text (byte {e.start})", where=str(path)) from None
    except OSError as e:
        raise error(f"cannot read: {e.strerror or e}", where=str(path)) from None


# --------------------------------------------------------------------------- arXiv ids
_NEW_ID = r"\d{4}\.\d{4,5}"                                  # 2506.16065
_OLD_ID = r"[a-z][a-z\-]*(?:\.[A-Za-z\-]{2,})?/\d{7}"         # cs/0501001, math.GT/0309136
_ID = re.compile(rf"^({_NEW_ID}|{_OLD_ID})(?:v(\d+))?$")
_ID_PREFIX = re.compile(r"^(?:oai:arxiv\.org:|arxiv:|(?P<url>(?:https?://)?(?:www\.|export\.)?arxiv\.org/"
                        r"(?:abs|pdf|html)/))", re.IGNORECASE)


def parse_arxiv_id(raw: object) -> tuple[str, int | None] | None:
    """(id without version, version or None) from '2506.16065', '2506.16065v2', 'arXiv:2506.16065',
    'oai:arXiv.org:2506.16065v1', 'cs/0501001', 'https://arxiv.org/abs/2506.16065v2' or
    'https://arxiv.org/pdf/2506.16065v2.pdf' (a link's ?query and #anchor ignored, /html/ too); None when it is
    not an arXiv id."""
    if not isinstance(raw, str):
        return None
    s = raw.strip()
    prefix = _ID_PREFIX.match(s)
    if prefix:
        s = s[prefix.end():]
        if prefix.group("url"):
            s = re.split(r"[?#]", s, maxsplit=1)[0]
    s = s.strip().rstrip("/")
    if s.lower().endswith(".pdf"):
        s = s[:-4]
    m = _ID.match(s)
    if not m:
        return None
    return m.group(1), (int(m.group(2)) if m.group(2) else None)


def arxiv_id(raw: object) -> str | None:
    """The id without version (see parse_arxiv_id), or None."""
    parsed = parse_arxiv_id(raw)
    return parsed[0] if parsed else None


# a \\uD800-\\uDFFF escape: JSON lets one stand alone, where it is no character and UTF-8 cannot write it
SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value):
    """(value with every lone surrogate of its strings, keys too, replaced by U+FFFD, how many strings had one);
    a pair of escapes is one character already (json joins them). For what json.loads made of a line or file that
    SURROGATE_ESCAPE finds in: the papers readers (ranker.sources) and the judgements reader (ranker.compare)."""
    if isinstance(value, str):
        fixed = _LONE_SURROGATE.sub("\ufffd", value)
        return fixed, int(fixed != value)
    if isinstance(value, list):
        pairs = [without_lone_surrogates(v) for v in value]
        return [v for v, _ in pairs], sum(n for _, n in pairs)
    if isinstance(value, dict):
        out, total = {}, 0
        for k, v in value.items():
            (k, a), (v, b) = without_lone_surrogates(k), without_lone_surrogates(v)
            out[k] = v
            total += a + b
        return out, total
    return value, 0


def same_paper_id(answer: object, expected: str) -> bool:
    """True when `answer` is exactly `expected`, or `expected` followed by a version suffix vN (nothing else:
    '2506.16065vEVIL' is not 2506.16065)."""
    return isinstance(answer, str) and re.fullmatch(re.escape(expected) + r"(?:v\d+)?", answer.strip()) is not None


# --------------------------------------------------------------------------- retries
# Answers worth asking again: timeouts, conflicts, rate limits and a server's passing trouble.
RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})


class Retryable(Exception):
    """Raised by the call that `retry` repeats: this attempt failed in a way another attempt may not."""

    def __init__(self, reason: str, *, retry_after: float | None = None, status: int | None = None,
                 kind: str = "status"):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after        # seconds the server asked for (Retry-After), if it did
        self.status = status                  # the HTTP status, for kind "status"
        self.kind = kind                      # "status", "timeout", "slow" (a body not done by the deadline),
        #                                       "connection", "empty" (an empty answer) or "broken" (cut short)
        self.attempts = 0                     # set when retry gives up: how many attempts were made
        self.too_long = False                 # set when retry gives up because the server asked for too long
        self.out_of_time = False              # set when retry gives up because its deadline has come


@dataclass
class RetryPolicy:
    retries: int = 5            # attempts after the first
    backoff: float = 2.0        # seconds before the first retry; doubled each time, with a little jitter
    max_wait: float = 120.0     # the longest single wait; a server asking for longer ends the retries at once
    floor: float = 0.0          # no wait is shorter (a service's own spacing between two requests)

    def wait(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds before retry number `attempt` (0-based): the backoff, or what the server asked if longer."""
        # the doubling stops at 2**1000 (any backoff a setting allows times it is still a finite float): `retries`
        # has no upper bound, and 2.0 ** 1024 overflowed, the 1,025th retry ending the command with an OverflowError
        doubled = self.backoff * 2.0 ** min(attempt, 1000)
        backoff = max(self.floor, min(self.max_wait, doubled) * random.uniform(0.8, 1.0))
        return backoff if retry_after is None else min(self.max_wait, max(retry_after, backoff))


T = TypeVar("T")


class Cancelled(Exception):
    """A wait of `retry` was cut short by its `sleep` (the run is being interrupted)."""


def retry(call: Callable[[], T], policy: RetryPolicy,
          on_retry: Callable[[int, Retryable, float], None] | None = None, *, deadline: float | None = None,
          sleep: Callable[[float], bool | None] = time.sleep) -> T:
    """Call `call` until it returns; each Retryable it raises is retried after policy.wait(), at most
    policy.retries times. on_retry(attempt, error, wait) hears of each retry before its wait. When the
    retries are spent, a server's Retry-After exceeds policy.max_wait, or the next attempt could not start
    before `deadline` (a time.monotonic() value), the last Retryable is raised with `attempts` (and
    `too_long` or `out_of_time`) set. `sleep(seconds)` waits between attempts; one that returns True
    (threading.Event.wait of a set event) cancels the retries with Cancelled."""
    for attempt in range(policy.retries + 1):
        try:
            return call()
        except Retryable as e:
            e.attempts = attempt + 1
            if e.retry_after is not None and e.retry_after > policy.max_wait:
                e.too_long = True
                raise
            if attempt == policy.retries:
                raise
            wait = policy.wait(attempt, e.retry_after)
            if deadline is not None and time.monotonic() + wait >= deadline:
                e.out_of_time = True
                raise
            if on_retry is not None:
                on_retry(attempt + 1, e, wait)
            if sleep(wait) is True:
                raise Cancelled("cancelled") from e
    raise AssertionError("unreachable")


def retry_after_seconds(value: str | None) -> float | None:
    """An HTTP Retry-After header as seconds (a number or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - time.time())


# --------------------------------------------------------------------------- secrets and outside text
_SECRETS: set[str] = set()
# Credential shapes redacted wherever they appear: a Bearer token, an OpenAI-style key, a value given to a
# key-like name (api_key=..., "authorization": "...", password: ...).
_BEARER = re.compile(r"(?i)\b(bearer)(\s+|%20)[A-Za-z0-9._~+/=\-]{6,}")
# the other schemes of an Authorization header (Basic base64, Token ...): any value after the header's name; alone,
# only a value shaped as base64 (16 or more of its characters, letters and digits), so prose stays: "each token
# counts", "a basic ResNet-50 baseline", "per token FP16/BF16 cost" (a model's output and server text are redacted)
_SCHEME_AFTER_NAME = re.compile(r"(?i)(\b(?:authorization|auth)[\"']?\s*[:=]\s*[\"']?(?:basic|token)(?:\s+|%20))"
                                r"[A-Za-z0-9._~+/=\-]+")
_SCHEME = re.compile(r"(?i)(\b(?:basic|token)(?:\s+|%20))(?=[A-Za-z0-9+/=]*\d)(?=[A-Za-z0-9+/=]*[A-Za-z])"
                     r"[A-Za-z0-9+/=]{16,}(?![A-Za-z0-9._~+/=\-])")
_SK_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}")
# the names as environment variables write them too, after a prefix of their own (OPENAI_API_KEY=, HF_TOKEN=,
# GITHUB_TOKEN=): "\b" before "API" does not hold after "OPENAI_", and a variable's line went out as it was
_NAMED = re.compile(r"(?i)(\b(?:[A-Za-z0-9]+_)*(?:api[_-]?key|access[_-]?token|auth[_-]?token|authorization|"
                    r"x-api-key|shared[_-]?access[_-]?(?:signature|key))[\"']?\s*[:=]\s*"
                    r"[\"']?)(?!(?:bearer|basic|token)\b)[A-Za-z0-9._~+/=\-]{8,}")
# a password or secret given with "=" or as a quoted key ("password": ...) is one of any length (password=hunter2,
# DB_PASSWORD=x); after a bare "password:" only a value shaped as a credential (8 or more characters, letters and
# digits), so prose stays ("Password: the field is required", a title's "Secret: sharing"); the name starts a word
# (not a file's: /etc/passwd, /data/db-password: no such file)
_WORD_START = r"(?<![^\s\"'{(,;&?])"
_PW_WORD = r"(?:[A-Za-z0-9]+_)*(?:(?:client[_-]?)?secret|password|passwd)"
# as a key too (a dict or YAML of the environment: {"HF_TOKEN": "hf_..."}, HF_TOKEN: hf_...), as _NAMED takes
# OPENAI_API_KEY's: only "=" was, and the same token given to a mapping went out whole
_ENV_TOKEN = re.compile(r"(\b(?:[A-Za-z0-9]+_)+TOKEN[\"']?\s*[:=]\s*[\"']?)(?=[A-Za-z0-9._~+/=\-]*\d)"
                        r"(?=[A-Za-z0-9._~+/=\-]*[A-Za-z])[A-Za-z0-9._~+/=\-]{8,}")
_NAMED_PASSWORD = re.compile(r"(?i)((?:" + _WORD_START + _PW_WORD + r"\s*=|[\"']" + _PW_WORD + r"[\"']\s*[:=])\s*[\"']?)"
                             r"(?!null\b)[A-Za-z0-9._~+/=\-]+")
_BARE_PASSWORD = re.compile(r"(?i)(" + _WORD_START + _PW_WORD + r"\s*:\s*)(?=[A-Za-z0-9._~+/=\-]*\d)"
                            r"(?=[A-Za-z0-9._~+/=\-]*[A-Za-z])[A-Za-z0-9._~+/=\-]{8,}")
# a secret in a URL's query string (http://h/v1?key=...&token=..., ?apiKey=, ?accessToken=, a signed URL's sig=,
# X-Amz-Signature= or SharedAccessSignature=), of any length: the names that are words of prose too (key, token)
# only there
_QUERY_SECRET = re.compile(r"(?i)([?&;](?:[a-z0-9]+[_.\-])*(?:key|token|secret|password|passwd|pwd|sig|signature|"
                           r"auth|credentials?|api[_-]?key|access[_-]?token|auth[_-]?token|authorization|"
                           r"shared[_-]?access[_-]?(?:signature|key))=)[^&#\s\"'<>]+")
# a password written into a URL (https://user:PASSWORD@host/...): the user name stays, the password goes, up to the
# authority's last "@" (the host is what follows it, as urllib and httpx read it): a password holding an "@" left
# what followed that "@" in the text (https://user:p@ss@host gave "https://user:[redacted]@ss@host")
_URL_PASSWORD = re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s/?#@:]*:)[^\s/?#]+@")
REDACTED = "[redacted]"


def add_secret(value: str | None) -> None:
    """Remember a secret of this process (an API key) so that `redact` removes it from any text."""
    if value and len(value.strip()) >= 4:
        _SECRETS.add(value.strip())


def redact(text: object) -> str:
    """`text` with every secret this process knows (add_secret) and anything shaped like a credential
    (a Bearer, Basic or Token credential, an sk-... key, api_key=... / "authorization": ... / password=...,
    a URL's password, a URL query's key=, apiKey=, token=, accessToken=, secret=, sig=...) replaced by [redacted]. Applied to every error text before it
    is stored or printed, to `ranker config` and to the run manifest."""
    out = str(text)
    for secret in sorted(_SECRETS, key=len, reverse=True):
        out = out.replace(secret, REDACTED)
    out = _BEARER.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", out)
    out = _SCHEME_AFTER_NAME.sub(lambda m: m.group(1) + REDACTED, out)
    out = _SCHEME.sub(lambda m: m.group(1) + REDACTED, out)
    out = _SK_KEY.sub(REDACTED, out)
    out = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}@", out)
    out = _QUERY_SECRET.sub(lambda m: m.group(1) + REDACTED, out)
    out = _ENV_TOKEN.sub(lambda m: m.group(1) + REDACTED, out)
    out = _NAMED_PASSWORD.sub(lambda m: m.group(1) + REDACTED, out)
    out = _BARE_PASSWORD.sub(lambda m: m.group(1) + REDACTED, out)
    return _NAMED.sub(lambda m: m.group(1) + REDACTED, out)


# C0/C1 controls other than tab, newline and carriage return; bidi embeddings, overrides and isolates
# (U+202A..U+202E, U+2066..U+2069), which can make text read differently from what it says.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def clean_text(text: str) -> str:
    """Text from outside (a paper, a model's comment) without NUL, other control characters and bidi
    controls; everything else unchanged."""
    return _UNSAFE_CHARS.sub("", text)


# --------------------------------------------------------------------------- loopback
def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 and ::1 (and '' for a unix socket's empty host)."""
    if host in ("localhost", "localhost.localdomain", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    try:
        host = urlparse(url).hostname or ""
    except ValueError:
        return False
    return is_loopback_host(host)


def url_host(url: str) -> str:
    """'host:port' (or 'host') of a URL, for messages."""
    try:
        p = urlparse(url)
        return f"{p.hostname}:{p.port}" if p.port else str(p.hostname)
    except ValueError:
        return url


# --------------------------------------------------------------------------- naming files
_GLOB_CHARS = set("*?[")


def day_span(days: Iterable[str]) -> str:
    """The first and the last of these YYYY-MM-DD days as `first..last`, one day alone as itself, "" for none."""
    ds = sorted(d for d in days if d)
    if not ds:
        return ""
    return ds[0] if ds[0] == ds[-1] else f"{ds[0]}..{ds[-1]}"


def grouped(n: int) -> str:
    """A count as every summary and report writes it, thousands grouped: `12,345`."""
    return f"{n:,}"


def counted(n: int, noun: str, many: str | None = None) -> str:
    """`n` with its noun, singular for one (`1 paper`, `3 papers`; `many` for a plural not made by an "s":
    `counted(2, "match", "matches")`), thousands grouped (`1,204 papers`)."""
    return f"{grouped(n)} {noun if n == 1 else (many or noun + 's')}"


def local_stamp(t: float | None = None) -> str:
    """This machine's time now (or at `t`, seconds since 1970), as the files ranker writes record when (a run
    manifest's `started`, a calibration's `created`, a backfill's runs) and `index status` shows it:
    `2025-06-02T07:00:00+0900`, its UTC offset said, so a time written in Tokyo is not read as the same hour in
    California (nor two of one run as hours apart)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def special_kind(path: str | os.PathLike) -> str | None:
    """What a name that is neither a file nor a folder is, in words ("a named pipe", "a socket", "a device"; a
    link followed), for the line that refuses it; None for a file, a folder or nothing there."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    return "a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"


def expand_paths(specs: str | os.PathLike | Iterable[str | os.PathLike], *, keep: Callable[[Path], bool],
                 what: str, key: str | None = None) -> list[Path]:
    """The files named by `specs`: a file named directly is always taken (its content is checked by the
    reader); folders (searched recursively) and globs give the files for which keep(file) is true; '-' is stdin
    (/dev/stdin). Duplicates are dropped, order kept. A spec that names nothing is an InputError carrying `key`."""
    if isinstance(specs, (str, os.PathLike)):
        specs = [specs]
    out: list[Path] = []

    def walk(folder: Path) -> list[Path]:
        return [f for f in sorted(folder.rglob("*")) if f.is_file() and keep(f)]

    for spec in specs:
        spec = stdin_named(spec)         # as the advice below says ('-' was no such file)
        p = Path(str(spec)).expanduser()
        if p.is_file():
            out.append(p)
        elif p.is_dir():
            found = walk(p)
            if not found:
                raise InputError(f"no {what} found in this directory", where=str(p), key=key)
            out.extend(found)
        elif p.exists() and own_descriptor(p) is not None:
            # this process's stdin or a descriptor the shell gave it (`<(zcat gpt.jsonl.gz)` is /dev/fd/63): a
            # pipe, not a regular file, read once where it is
            out.append(p)
        elif p.exists():
            # a named pipe (mkfifo), a device (/dev/null) or a socket: there, so not "no such file" as it was; not
            # read either (a named pipe no writer opened would hang the command): stdin or a shell's pipe serve
            raise InputError(f"not a regular file or a folder but {special_kind(p)}; give a file, a folder, '-' for "
                             "stdin or a shell's pipe (<(command))", where=str(spec), key=key)
        elif _GLOB_CHARS & set(str(spec)):
            files: list[Path] = []
            for m in map(Path, sorted(glob.glob(str(p), recursive=True))):
                files.extend(walk(m) if m.is_dir() else [m] if m.is_file() and keep(m) else [])
            if not files:
                raise InputError("no matching file", where=str(spec), key=key)
            out.extend(files)
        else:
            raise InputError("no such file or directory", where=str(spec), key=key)
    seen: set[Path] = set()
    unique = []
    for f in out:
        r = f.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(f)
    return unique


_QUIET = {"depth": 0, "saved": None}
_QUIET_LOCK = threading.Lock()


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' messages below errors and its progress bars ("Loading weights") off while the block runs
    (a model loading writes nothing on the caller's stderr), and put back as they were once the last such block
    ends: they are transformers' settings for the whole process, and a program that uses ranker as a library
    keeps its own (they stayed switched off after the first embedder loaded). The bars are switched by their
    flags, transformers' and huggingface_hub's (its global and per-group states), saved and put back as they
    were: transformers' enable_progress_bar() also enabled every hub bar, the host's own choices gone."""
    try:
        import importlib
        from transformers.utils import logging as hf_logging
        hub_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")
        hub_bars = hub_tqdm.progress_bar_states
        hf_logging._tqdm_active      # a transformers without this flag: nothing to quiet
    except Exception:            # no transformers, or one without these: nothing to quiet
        yield
        return
    with _QUIET_LOCK:
        if _QUIET["depth"] == 0:
            _QUIET["saved"] = (hf_logging.get_verbosity(), hf_logging._tqdm_active, dict(hub_bars))
            hf_logging.set_verbosity_error()
            hf_logging._tqdm_active = False
            hub_bars.clear()
            hub_bars["_global"] = False
        _QUIET["depth"] += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET["depth"] -= 1
            saved = _QUIET["saved"] if _QUIET["depth"] == 0 else None
            if saved is not None:
                _QUIET["saved"] = None
                verbosity, bars, states = saved
                hf_logging.set_verbosity(verbosity)
                hf_logging._tqdm_active = bars
                hub_bars.clear()
                hub_bars.update(states)
