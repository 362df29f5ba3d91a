"""The one module that owns the SQLite database.

Schema changes are an ordered list of named migration functions (MIGRATIONS, in ranker.migrations); the
`_migrations` table records the names applied, so each runs once.
Every write happens inside one transaction, so a process killed mid-write leaves the database as it
was before that write (SQLite's journal rolls the half-done transaction back on the next open).

Each run row carries the process (pid, host) recording it; opening the store marks rows whose process is gone
(a kill -9, a power cut) as interrupted. A database that cannot be written (a read-only file system or file)
is opened read-only: reading works, and a write is a StoreError that says "read-only" and names the file. SQLite
errors (locked, full disk, I/O) become StoreErrors naming the database; "locked" also names the ranker
process recorded as running, when there is one.
"""
from __future__ import annotations

import json
import re
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from .errors import InputError, StoreError
from .io import clean_text, local_stamp, redact
from .migrations import LEGACY_VERSIONS, MIGRATIONS, READ_WITHOUT, RENAMED, m007_word_index_folded
from .records import DB_FILE, DayDigest, Failure, Label, Paper, Ranked, RankingRow, Score
from .sources.normalize import unaccented

HOST = socket.gethostname()


def process_alive(pid: int, since: float | None = None) -> bool:
    """Is process `pid` (of this host) alive, and (when /proc says when it started) started before `since`
    (the run's start, so a recycled pid is not taken for the run's process)?"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass                                     # alive, another user's
    except OSError:
        return False
    if since is None:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])                  # field 22: start time, clock ticks after boot
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        started = boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return True
    return started <= since + 2.0                # btime is whole seconds


def _run_owner(pid: int | None, host: str | None, started: float | None) -> str:
    """Who a run recorded as running stands for, by the pid and host that recorded it; the one rule every
    reader of 'running' rows goes by. "self": this process's own run; "alive": another process of this host
    that is still running, or any process of another host (its pid cannot be looked at from here: its run
    counts as running until a Store opened on that host finds the process gone); "gone": a process of this
    host that has ended, or whose pid now belongs to a process younger than the run; "untraced": a row
    without a pid (from before runs had owners)."""
    if pid is None:
        return "untraced"
    if host != HOST:
        return "alive"
    if not process_alive(pid, started):
        return "gone"
    return "self" if pid == os.getpid() else "alive"


def _params_hold(raw: str | None, params: dict) -> bool:
    """Whether a run's params (the JSON recording() wrote) hold each of `params`; a row that does not read holds
    none."""
    try:
        given = json.loads(raw or "{}")
    except ValueError:
        return False
    return isinstance(given, dict) and all(given.get(k) == v for k, v in params.items())


@dataclass
class AddResult:
    new: int = 0
    updated: int = 0
    seen_before: dict[str, str] = field(default_factory=dict)   # id -> first day seen, for repeats


@dataclass
class RunRecord:
    """One run being recorded (see Store.recording): set status and summary before the block ends."""
    id: int
    status: str = "ok"
    summary: dict = field(default_factory=dict)


# Who else may hold a locked database: the commands that write without recording a run, and anything else
NO_RUN_RECORDED = ("a command that records no run (ranker prefilter, eval, calibrate, similar, labels import, serve, "
                   "backfill) or another program")
HOLDERS_NAMED = 10                 # the runs recorded as running a "database is locked" line names, at most
_READ_ONLY = ("readonly database", "read-only", "unable to open database file", "attempt to write a readonly")
# A file system with less room than this is full, for a database that failed with an I/O error (see _no_space): a
# WAL's index (-shm) alone takes 32 KiB
_FULL_BELOW = 1 << 20
ASKED_READ_ONLY = "as asked"       # Store.read_only of a store opened read_only=True: "read-only (as asked)"
# Every write names its columns: a command holding its store (a day's run, a backfill) while a newer ranker opens
# the same home and adds columns to a table, as migrations do, goes on writing (the new columns take their defaults)
_RANKING_COLUMNS = ("(day, paper_id, prefilter_score, kept, topic, rule, embedder, run_id) "
                    "VALUES (?,?,?,?,?,?,?,?)")
# a label (paper id, label, day, paper id, time): given where no digest day is known, it keeps the earlier one's
_LABEL_UPSERT = ("INSERT OR REPLACE INTO labels (paper_id, label, day, created_at) "
                 "VALUES (?,?,COALESCE(?,(SELECT day FROM labels WHERE paper_id=?)),?)")

# The word-search index (papers_fts) is built by the first search, into a table of another name that becomes
# papers_fts once it holds every paper, a chunk of papers (by rowid) per write transaction with the lock let go
# between them: a writer in another process (a daily run started by cron while the pages are searched, a
# thumb clicked on them) gets it there, where one transaction over 200,000 papers held it for 14-20 s. A chunk
# holds the lock about half a second (abstracts of arXiv's length; a second at most: scripts/bench_word_index.py
# measures both). A waiting writer tries again every 100 ms once it has waited a while (SQLite's busy handler), so
# the pause between two transactions is longer than that: one of its tries always falls in it, and it gets in
# within one chunk (with 0.05 s it got in only when a try happened to fall in the pause: behind 0.5 s holds, a
# writer on a loaded machine waited up to 1.6 s, measured). The same pause follows each commit of a long fetch
# (Store.adding_papers).
FTS_BUILD_CHUNK = 5000
FTS_BUILD_PAUSE = 0.12              # seconds
_FTS_BUILDING = "papers_fts_building"
_FTS_COLUMNS = "fts5(id, title, abstract, tokenize='unicode61 remove_diacritics 2')"
# It holds a paper's title and abstract folded by sources.normalize.unaccented, as author pins fold names (Ł as L,
# ß as ss, ø as o, æ as ae: letters unicode61 keeps whole, removing diacritics only), and a query is folded alike,
# so "Lukasz", "lukasz" and "Łukasz" each find "Łukasz", "strasse" "Straße". The papers table keeps the text as
# it is, which the pages show (a search answers ids). In SQL (the build), the same function: unaccented(text).
# An index from before (m007) is refolded by the next search: the papers whose text folding changes are put in
# again, folded, in rowid order, FTS_BUILD_CHUNK papers looked at and FTS_REFOLD_CHUNK put in at most a write
# transaction (taking one out of the index, by its id, is most of the time: ~0.5 ms); papers_fts_refold says how
# far it has got, and is dropped at the end.
FTS_REFOLD_CHUNK = 500
_FTS_REFOLD = "papers_fts_refold"


class PaperAdder:
    """Stores papers inside a transaction the caller holds (see Store.adding_papers), or one that `begin`
    opens at the first paper (it returns the connection and the word-search index's state, Store._fts_state)."""

    def __init__(self, conn: sqlite3.Connection | None, *, fts: tuple[bool, int | None] = (False, None),
                 begin: Callable[[], tuple[sqlite3.Connection, tuple[bool, int | None]]] | None = None):
        self.conn = conn
        # keep the word-search index (papers_fts) current, once it has been built; while a build is unfinished,
        # its papers up to the rowid it has reached (those above are copied by its later chunks, as they are then)
        self.fts, self.building = fts
        self.begin = begin
        self.after: Callable[[], None] | None = None      # called once each paper is stored (adding_papers' hold)
        self.added = 0                     # papers stored, committed or not
        self.committed = 0                 # of them, those committed (adding_papers)
        self.result = AddResult()

    def __call__(self, p: Paper) -> str | None:
        if self.conn is None:
            self.conn, (self.fts, self.building) = self.begin()
        c, res = self.conn, self.result
        row = c.execute("SELECT first_seen, version, rowid, title, abstract FROM papers WHERE id=?",
                        (p.id,)).fetchone()
        args = (p.version, clean_text(p.title), clean_text(p.abstract), json.dumps([clean_text(a) for a in p.authors]),
                json.dumps(p.categories), p.primary_category, clean_text(p.comment) if p.comment else p.comment)
        earlier, older = None, False
        if row is None:
            rowid = c.execute("INSERT INTO papers (version,title,abstract,authors,categories,primary_category,"
                              "comment,id,first_seen,last_seen) VALUES (?,?,?,?,?,?,?,?,?,?)",
                              (*args, p.id, p.date or None, p.date or None)).lastrowid
            res.new += 1
        else:
            first, rowid = row[0], row[2]
            # an older version (an old backfill or day read after newer ones) never replaces a newer one's text
            older = p.version is not None and row[1] is not None and p.version < row[1]
            text = ("" if older else "version=COALESCE(?,version), title=?, abstract=?, authors=?, categories=?, "
                    "primary_category=?, comment=?, ")
            c.execute("UPDATE papers SET " + text +
                      "first_seen=CASE WHEN first_seen IS NULL OR (? IS NOT NULL AND ? < first_seen) "
                      "  THEN ? ELSE first_seen END, "
                      "last_seen=CASE WHEN last_seen IS NULL OR ? > last_seen THEN ? ELSE last_seen END "
                      "WHERE id=?",
                      (*(() if older else args), p.date or None, p.date or None, p.date or None, p.date or "",
                       p.date or None, p.id))
            res.updated += 1
            if first and p.date and first < p.date:
                res.seen_before[p.id] = earlier = first
        if p.date:
            c.execute("INSERT OR REPLACE INTO paper_days (paper_id, day, announce_type) VALUES (?,?,?)",
                      (p.id, p.date, p.announce_type))
        # the word index holds a paper's title and abstract only: a paper stored again with the same ones (a
        # backfill imported again, a day run again, a cross-list announced later) keeps its row there. Taken out
        # and put in again, each one was an FTS5 query on its id, whose tokens ("2505", the month) thousands of
        # papers share: an import of a backfill held the write lock 2 to 5 s a chunk of shards while changing
        # nothing, and a thumb clicked in `ranker serve` meanwhile waited out its 5 s and failed
        reindex = row is None or not (older or (row[3], row[4]) == (args[1], args[2]))
        if self.fts and reindex:
            if row is not None:
                c.execute("DELETE FROM papers_fts WHERE papers_fts MATCH ? AND id = ?", (_fts_id(p.id), p.id))
            # the text as stored (args: cleaned), folded, as an index built from the papers table holds it
            c.execute("INSERT INTO papers_fts (id, title, abstract) VALUES (?,?,?)", (p.id, *_folded(args)))
        elif self.building is not None and rowid <= self.building and reindex:
            # a paper the unfinished build has copied: its row there (the paper's rowid) takes the new text
            if row is not None:
                c.execute(f"DELETE FROM {_FTS_BUILDING} WHERE rowid = ?", (rowid,))
            c.execute(f"INSERT INTO {_FTS_BUILDING} (rowid, id, title, abstract) VALUES (?,?,?,?)",
                      (rowid, p.id, *_folded(args)))
        self.added += 1
        if self.after is not None:
            self.after()
        return earlier


def describe_db_error(e: BaseException) -> str:
    """An SQLite error in words a user can act on, for a RankerError (a setting it advises on is a {key:...}
    mention, which the CLI words as the flag or variable)."""
    text = str(e).strip()
    low = text.lower()
    if "locked" in low or "busy" in low:
        return "the database is busy (another ranker command is writing to it); try again when it has finished"
    if "unable to open" in low:
        return "cannot open the database file (does its folder exist, and may we write there?)"
    if "readonly" in low or "read-only" in low:
        return "the database is read-only here; give a writable {key:db} or {key:home}"
    if "disk is full" in low or "database or disk is full" in low:
        return "the disk is full; free some space and run the same command again (what was stored is kept)"
    if "disk i/o" in low:
        return "the disk failed while writing the database (disk I/O error)"
    if "not a database" in low or "malformed" in low or "encrypted" in low:
        return f"not a usable ranker database ({text})"
    return f"database error: {text}"



def behind_message(lacking: list[str] | tuple[str, ...], fix: str) -> str:
    """A read-only open's refusal of a schema lacking the migrations `lacking`, ending with what to do."""
    return (f"opened read-only, and its schema is older than this ranker's (it lacks {', '.join(lacking)}), "
            f"which only an open that may write upgrades: {fix}")


def check_db_path(path: Path) -> None:
    """A StoreError when `path` cannot be a database file whatever is in it: a folder, a device or a pipe
    (/dev/null). What Store checks as it opens; a command that reads its input first (calibrate's history)
    checks it before, so the error is its one line, not said after the input's."""
    if path.is_dir():
        raise StoreError("is a directory, not a database file", where=str(path))
    if path.exists() and not path.is_file():
        # SQLite said "disk I/O error" (a pipe, /dev/null), and wrote a -journal beside a device
        raise StoreError("not a file (a device or a pipe), so not a database file", where=str(path))


class Store:
    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0, create: bool = True,
                 read_only: bool = False):
        """Open (creating it and its folder when needed) the database at `path`. A writer waits up to
        `busy_timeout` seconds for another process's write to finish before a StoreError says it is locked.
        create=False (the commands that only read: site, similar, index status, labels export/list): a
        database that does not exist (nor the file a link names) is an empty one held in memory, so a mistyped
        database path leaves no new file or folder behind (the command says the path and that it holds nothing).
        read_only=True (serve --read-only): opened for reading only, as one that cannot be written is, so
        nothing is written to it, not even an older schema's upgrade: one that lacks migrations reading cannot go
        without (READ_WITHOUT) is refused, saying to open it once with a command that writes; one that does not
        exist is an empty one held in memory, as with create=False."""
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.read_only: str | None = None            # why the database can only be read, when it can
        self.unmigrated: frozenset[str] = frozenset()  # of READ_WITHOUT, those a read-only database lacks
        self._full = False                               # opened read-only because its disk is full (_no_space)
        self.conn = None
        if (not create or read_only) and not self.path.exists():   # (a link whose file is gone too: SQLite made it)
            self.conn = sqlite3.connect(":memory:", isolation_level=None)
            self._migrate()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the database's folder {self.path.parent}: "
                             f"{(e.strerror or str(e)).lower()}", where=str(self.path)) from None
        check_db_path(self.path)
        try:
            if read_only:
                self._open_read_only(None)
                return
            try:
                self._open()
            except sqlite3.DatabaseError as e:
                read_only = self.path.exists() and self._is_read_only(e)
                error = None if read_only else self._error(e, "open")      # (while the connection can still tell)
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                if error is not None:
                    raise error from None
                self._open_read_only(e)
        except BaseException:
            # a database this ranker refuses (a newer schema), a Ctrl-C while waiting for another process's
            # write, a read-only open whose reading of the schema failed or was interrupted: closed, not left
            # open to the error's frames
            if self.conn is not None:
                self.conn.close()
                self.conn = None
            raise
        self._mark_dead_runs()
        self._drop_stale_fts_build()

    def _open(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        self.conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        self._refuse_foreign()
        self._set_wal()
        self.conn.execute("PRAGMA synchronous=NORMAL")
        if self.conn.execute("PRAGMA query_only").fetchone()[0] == 0 and not os.access(self.path, os.W_OK):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        self._migrate()

    def _refuse_foreign(self) -> None:
        """A SQLite database another program made (tables, but neither ranker's migrations nor its papers) is
        refused before anything is written: ranker's tables and WAL mode would change that program's file."""
        tables = [r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                                   "AND name NOT LIKE 'sqlite%' ORDER BY name")]
        if tables and "_migrations" not in tables and "papers" not in tables:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(f"not a ranker database (it holds another program's tables: {shown})",
                             where=str(self.path))

    def _set_wal(self) -> None:
        """Switch a new database to WAL. The switch takes SQLite's exclusive lock without waiting for it, so
        several processes opening one new file at once would see "database is locked" at once: retry within
        the busy timeout, as any other write would wait."""
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e).lower() or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)

    def _is_read_only(self, e: sqlite3.DatabaseError) -> bool:
        text = str(e).lower()
        return any(m in text for m in _READ_ONLY) or not os.access(self.path, os.W_OK) \
            or not os.access(self.path.parent, os.W_OK) or self._no_space(e)

    def _no_space(self, e: sqlite3.DatabaseError) -> bool:
        """Whether `e` is the disk being full. SQLite says so ("database or disk is full") only for the file's own
        pages: a WAL database opened where its index (-shm) cannot be made for want of space is a bare "disk I/O
        error", which is then told by the space its file system has left."""
        if "disk is full" in str(e).lower() or "no space" in str(e).lower():
            return True
        if not str(getattr(e, "sqlite_errorname", "") or "").startswith("SQLITE_IOERR") \
                and "disk i/o error" not in str(e).lower():
            return False
        try:
            st = os.statvfs(self.path if self.path.exists() else self.path.parent)
        except OSError:
            return False
        # a file system that reports no blocks at all (FUSE, some network ones) says nothing about its room
        return st.f_blocks > 0 and st.f_bavail * st.f_frsize < _FULL_BELOW

    def _why_read_only(self) -> str:
        there = self.path if self.path.exists() else self.path.parent
        try:
            st = os.statvfs(there)
        except OSError:
            st = None
        if st is not None and st.f_flag & os.ST_RDONLY:
            return "its file system is mounted read-only"
        if self.path.exists() and not os.access(self.path, os.W_OK):
            return "the file is not writable"
        if self._full and os.access(self.path.parent, os.W_OK):
            # only when the open failed for want of space (root-reserved blocks alone leave root room to write)
            return "its disk is full; free some space"
        return "its folder is not writable"

    def _open_read_only(self, first: sqlite3.DatabaseError | None) -> None:
        """Open a database that cannot be written (`first`: why the writable open failed; None: the caller
        asked for read-only) for reading; its schema must be current (no migration can
        run) but for migrations of READ_WITHOUT, which reading goes without (self.unmigrated names them). mode=ro,
        where SQLite can open or create the WAL's index (-shm) beside it. On read-only media without one, a
        write-ahead log (-wal) there holds writes not yet in the file (of a process killed mid-way, or a copy that
        left out the -shm): it is read with the index held in memory (exclusive locking mode, no file locks:
        nothing can write there); with no log, the file alone is the database (immutable)."""
        self._full = first is not None and self._no_space(first)
        wal = self.path.with_name(self.path.name + "-wal")
        try:
            logged = wal.stat().st_size > 0
        except FileNotFoundError:
            logged = False
        except OSError:
            logged = True                 # there, but unreadable: never read the file as if it had none
        for query in ("mode=ro", "mode=ro&vfs=unix-none" if logged else "immutable=1"):
            try:
                self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?{query}", uri=True,
                                            isolation_level=None, timeout=self.busy_timeout)
                if "vfs=" in query:
                    self.conn.execute("PRAGMA locking_mode=EXCLUSIVE")
                names = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
                break
            except sqlite3.DatabaseError as e:
                unnamed = "no such table" in str(e).lower()
                if first is None and not unnamed and not self._is_read_only(e):
                    # asked for, on media it could write to: a lock, a damaged file; never read unlocked
                    # (immutable) where another process may be writing
                    if self.conn is not None:
                        self.conn.close()
                        self.conn = None
                    raise self._error(e, "open") from None
                # a database from before named migrations counted them in user_version (see _migrate)
                counted = self.conn.execute("PRAGMA user_version").fetchone()[0] if unnamed else 0
                if counted:
                    names = set(LEGACY_VERSIONS[:counted]) if counted <= len(LEGACY_VERSIONS) else None
                    break
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                if unnamed:
                    why = self._why_read_only() if first is not None else ASKED_READ_ONLY
                    raise StoreError(f"read-only ({why}) and not a ranker database yet",
                                     where=str(self.path)) from None
                last = e
        else:
            raise self._error(last if first is None or "not a database" in str(last).lower() else first,
                              "open") from None
        self.read_only = self._why_read_only() if first is not None else ASKED_READ_ONLY
        known = {m.__name__ for m in MIGRATIONS}
        if names is not None:
            names = {RENAMED.get(n, n) for n in names}        # (the same change under the name it shipped as)
        if names != known:
            if names is not None and not names - known and known - names <= READ_WITHOUT:
                self.unmigrated = frozenset(known - names)
                return
            self.conn.close()
            if names is None:
                raise self._newer(f"database schema v{counted} is newer than this ranker")
            if names - known:
                raise self._unknown(names - known)
            if first is None:
                lacking = sorted(known - names - READ_WITHOUT)
                err = StoreError(behind_message(lacking, "run a command that writes to it once first"),
                                 where=str(self.path))
                err.behind = tuple(lacking)
                raise err
            raise StoreError(f"read-only ({self.read_only}) and its schema needs an upgrade this ranker cannot "
                             "write; open it once where it is writable", where=str(self.path))

    def _newer(self, what: str) -> InputError:
        """A database a newer ranker made or upgraded (`what`: how that shows), and what to do about it."""
        return InputError(f"{what}; upgrade ranker to open it", where=str(self.path))

    def _unknown(self, unknown: set[str]) -> InputError:
        return self._newer(f"the database has migrations this ranker does not know ({', '.join(sorted(unknown))}): "
                           "it was made by a newer ranker")

    def _error(self, e: sqlite3.DatabaseError, doing: str = "write") -> StoreError:
        """A SQLite error as one line naming the database (and, for a lock, the ranker run holding it)."""
        text = str(e)
        low = text.lower()
        if "locked" in low or "busy" in low:
            holder = self.holder() or f"no ranker run is recorded as running: maybe {NO_RUN_RECORDED}"
            err = StoreError(f"database is locked: another process kept it busy for over {self.busy_timeout:g} s "
                             f"({holder}); wait for it to finish or use another database", where=str(self.path))
            err.busy = True
            return err
        if any(m in low for m in _READ_ONLY):
            return StoreError(f"read-only ({self._why_read_only()}): cannot {doing} it", where=str(self.path))
        if self._no_space(e):
            return StoreError(f"cannot {doing}: No space left on device (database or disk is full)",
                              where=str(self.path))
        if "disk i/o error" in low:
            return StoreError(f"cannot {doing}: disk I/O error", where=str(self.path))
        if isinstance(e, sqlite3.OperationalError) and doing != "open":
            return StoreError(f"cannot {doing}: {text}", where=str(self.path))
        return StoreError(f"not a usable ranker database ({text})", where=str(self.path))

    def holder(self) -> str | None:
        """Who probably holds the database's lock, in words: 'probably ranker score, pid 123, running since
        12:03:04 (the run recorded as running), or NO_RUN_RECORDED', the run recorded as running by another live
        process, or with several, 'probably one of the runs recorded as running (...)' naming each (oldest first),
        or None. Which process holds the lock SQLite does not say: naming the latest run alone blamed one that may
        only be waiting itself, and "held by" the one run recorded blamed it for a command that records none.
        This machine's runs come before other machines': their processes are known to live, where another
        machine's run counts as alive unseen (one left marked running by a container that died stays so), and
        those, named first, put this machine's past the HOLDERS_NAMED named."""
        try:
            rows = self.conn.execute("SELECT kind, pid, host, started_at FROM runs WHERE status='running' "
                                     "AND pid IS NOT NULL ORDER BY host IS NOT ?, id", (HOST,)).fetchall()
        except (sqlite3.Error, AttributeError):
            return None
        runs = []
        for kind, pid, host, started in rows:
            if _run_owner(pid, host, started) == "alive":
                where = "" if host == HOST else f" on {host}"
                since = local_stamp(started)
                runs.append(f"ranker {kind}, pid {pid}{where}, running since {since}")
        if not runs:
            return None
        if len(runs) == 1:
            return f"probably {runs[0]} (the run recorded as running), or {NO_RUN_RECORDED}"
        more = f"; and {len(runs) - HOLDERS_NAMED} more" if len(runs) > HOLDERS_NAMED else ""
        return (f"probably one of the runs recorded as running ({'; '.join(runs[:HOLDERS_NAMED])}{more}), or "
                f"{NO_RUN_RECORDED}")

    def _mark_dead_runs(self) -> None:
        """Runs recorded as running by a process of this host that is gone become 'interrupted'."""
        if self.read_only:
            return
        try:
            rows = self.conn.execute("SELECT id, pid, host, started_at FROM runs WHERE status='running'").fetchall()
            dead = [r[0] for r in rows if _run_owner(*r[1:]) == "gone"]
            if dead:
                with self.transaction() as c:
                    c.executemany("UPDATE runs SET status='interrupted', finished_at=COALESCE(finished_at, ?) "
                                  "WHERE id=? AND status='running'", ((time.time(), i) for i in dead))
        except (sqlite3.DatabaseError, StoreError):
            pass                                  # a lock now is not this open's failure: try next time

    @property
    def index_dir(self) -> Path:
        """Where the FAISS indexes of this database's vectors live: faiss/ beside the default database file
        (ranker.sqlite3), faiss-<file name>/ beside any other, so two databases in one folder keep an index each
        (sharing one, each rebuilt the other's whenever it was used)."""
        return self.path.parent / ("faiss" if self.path.name == DB_FILE else f"faiss-{self.path.name}")

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; a SQLite error in it (locked, read-only, full disk) is a StoreError naming
        the database."""
        if self.read_only:
            raise StoreError(f"read-only ({self.read_only}): cannot write to it", where=str(self.path))
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as e:
            raise self._error(e) from None
        try:
            yield self.conn
        except BaseException as e:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass                              # SQLite already rolled back (a full disk, an I/O error)
            if isinstance(e, sqlite3.OperationalError):
                raise self._error(e) from None
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.DatabaseError as e:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.DatabaseError:
                pass
            raise self._error(e) from None

    def _migrate(self) -> None:
        """Apply the migrations this database has not had, in order, each in its own transaction. A database
        that is up to date is only read (no write lock is taken)."""
        names = [m.__name__ for m in MIGRATIONS]
        try:
            applied = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
            if applied == set(names) and self.conn.execute("PRAGMA user_version").fetchone()[0] == len(names):
                return
        except sqlite3.OperationalError as e:
            if "no such table" not in str(e).lower():
                raise
        with self._raw_transaction() as c:
            c.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at REAL NOT NULL)")
            applied = {r[0] for r in c.execute("SELECT name FROM _migrations")}
            counted = c.execute("PRAGMA user_version").fetchone()[0]
            if counted > len(names):
                raise self._newer(f"database schema v{counted} is newer than this ranker (v{len(names)})")
            if not applied and counted:
                # a database from before named migrations: user_version counted the ones it had
                if counted > len(LEGACY_VERSIONS):
                    raise self._newer(f"database schema v{counted} is newer than this ranker")
                had = LEGACY_VERSIONS[:counted]
                c.executemany("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)",
                              ((n, time.time()) for n in had))
                applied = set(had)
            for was, now in RENAMED.items():
                if was in applied and now not in applied:
                    c.execute("UPDATE _migrations SET name=? WHERE name=?", (now, was))
                    applied = (applied - {was}) | {now}
        if applied - set(names):
            raise self._unknown(applied - set(names))
        for migration in MIGRATIONS:
            if migration.__name__ in applied:
                continue
            with self._raw_transaction() as c:
                # another process opening the same database may have applied it since `applied` was read
                if c.execute("SELECT 1 FROM _migrations WHERE name=?", (migration.__name__,)).fetchone():
                    applied.add(migration.__name__)
                    continue
                migration(c)
                c.execute("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", (migration.__name__, time.time()))
                applied.add(migration.__name__)
                c.execute(f"PRAGMA user_version = {len(applied)}")   # how many it has, wherever they stand

    @contextmanager
    def _raw_transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction whose SQLite errors stay SQLite errors (opening maps them itself)."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    @property
    def migrations(self) -> list[str]:
        """The names of the migrations applied to this database, in the order they ran."""
        return [r[0] for r in self.conn.execute("SELECT name FROM _migrations ORDER BY applied_at, rowid")]

    @property
    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    # ------------------------------------------------------------------ papers
    def add_papers(self, papers: Iterable[Paper]) -> AddResult:
        """Insert or refresh papers and the day each was announced, in one transaction (a paper's text is the
        latest version's: an older version read later only adds its day). A paper already announced on an
        earlier day is reported in `seen_before`."""
        with self.adding_papers() as add:
            for p in papers:
                add(p)
        return add.result

    @contextmanager
    def adding_papers(self, *, hold: float | None = None) -> Iterator["PaperAdder"]:
        """One transaction for a stream of papers: `add(paper)` stores one and returns the day it was first
        seen when that is an earlier day (else None). Everything added is committed when the block ends
        without error, and rolled back otherwise. The transaction begins at the first paper, so a source slow
        to give it (a day fetched from the arXiv API, its retries) does not hold the write lock meanwhile.
        `hold`: the papers are committed whenever the transaction has held the write lock that many seconds,
        with a pause after (FTS_BUILD_PAUSE: a waiting writer's busy handler gets in), so a long stream (a
        snapshot of years, read for minutes) does not keep every other process's write waiting until it ends;
        an error then rolls back only the papers since the last commit (storing a paper again is harmless):
        `add.committed` says how many papers were committed."""
        open_tx: list = []                 # (the transaction's context, when it began), while one is open

        def begin() -> tuple[sqlite3.Connection, tuple[bool, int | None]]:
            tx = self.transaction()
            c = tx.__enter__()
            open_tx.append((tx, time.monotonic()))
            # asked under the write lock: an index another process built (or took further) while this one
            # waited is kept
            return c, self._fts_state()
        add = PaperAdder(None, begin=begin)
        if hold is not None:
            def pause() -> None:
                if open_tx and time.monotonic() - open_tx[0][1] >= hold:
                    open_tx.pop()[0].__exit__(None, None, None)
                    add.committed = add.added
                    add.conn = None                 # the next paper begins another transaction
                    time.sleep(FTS_BUILD_PAUSE)
            add.after = pause
        try:
            yield add
        except BaseException as e:
            if open_tx:
                open_tx.pop()[0].__exit__(type(e), e, e.__traceback__)
            raise
        if open_tx:
            open_tx.pop()[0].__exit__(None, None, None)
        add.committed = add.added

    def get_paper(self, paper_id: str) -> Paper | None:
        return self.get_papers([paper_id]).get(paper_id)

    def count_papers(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]

    def get_papers(self, ids: Iterable[str]) -> dict[str, Paper]:
        """The stored papers among `ids` (unknown ids are left out)."""
        out: dict[str, Paper] = {}
        for chunk in _chunks(list(ids)):
            q = ("SELECT id,version,title,abstract,authors,categories,primary_category,comment,first_seen FROM papers "
                 "WHERE id IN (%s)" % ",".join("?" * len(chunk)))
            for r in self.conn.execute(q, chunk):
                out[r[0]] = Paper(id=r[0], version=r[1], title=r[2], abstract=r[3], authors=json.loads(r[4]),
                                  categories=json.loads(r[5]), primary_category=r[6] or "", comment=r[7],
                                  date=r[8] or "")
        return out

    def paper_titles(self, ids: Iterable[str]) -> dict[str, Paper]:
        """The stored papers among `ids` with their title and first day only (no abstract, authors nor
        categories: nothing to decode): what a list of papers shows of each, a page's similar papers."""
        return {r[0]: Paper(id=r[0], title=r[1], abstract="", date=r[2] or "")
                for r in self._rows_for_ids("SELECT id, title, first_seen FROM papers WHERE id IN (%s)", ids)}

    def day_paper_ids(self, day: str) -> list[str]:
        """The ids of the papers announced on `day`, in the order they were stored."""
        return [r[0] for r in self.conn.execute("SELECT paper_id FROM paper_days WHERE day=? ORDER BY rowid", (day,))]

    def paper_days(self, paper_id: str) -> list[str]:
        """Every day a paper was announced on (or ranked on), oldest first."""
        return self.days_of_papers([paper_id]).get(paper_id, [])

    # ------------------------------------------------------------------ word search
    def _fts_tables(self) -> set[str]:
        """Which of papers_fts, papers_fts_building and papers_fts_refold the database holds."""
        return {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE name IN ('papers_fts', ?, ?)",
                                                (_FTS_BUILDING, _FTS_REFOLD))}

    def _fts_state(self) -> tuple[bool, int | None]:
        """(whether the word-search index is built, the highest paper rowid an unfinished build holds or None)."""
        names = self._fts_tables()
        if "papers_fts" in names:
            return True, None
        if _FTS_BUILDING in names:
            return False, self.conn.execute(f"SELECT MAX(rowid) FROM {_FTS_BUILDING}").fetchone()[0] or 0
        return False, None

    def _ensure_fts(self) -> bool:
        """The full-text index of titles and abstracts (FTS5), built on the first search and kept current by
        add_papers from then on. It is derived data, not part of the schema: False when it cannot be built now
        (this SQLite has no FTS5, the database is read-only or busy with another process's write).
        The build copies the papers in rowid order, FTS_BUILD_CHUNK a transaction, into papers_fts_building
        (a paper's row there has the paper's rowid; add_papers keeps those the build has passed current), which
        the transaction that copies the last papers renames papers_fts. So a build interrupted (the process
        killed, the lock not got within the busy timeout) is never taken for the index: the next search goes on
        from where it stopped. A search never reads an unfinished index: it finishes the build first, taking
        turns with any other process building it; when it cannot, it is answered as without FTS5 (LIKE). An
        index from before its text was folded (m007) is refolded the same way, chunk by chunk (_refold_chunk)."""
        names = self._fts_tables()
        unfolded = m007_word_index_folded.__name__ in self.unmigrated    # (read-only: refolded once writable)
        if "papers_fts" in names and _FTS_REFOLD not in names and not unfolded:
            return True
        self._fold_in_sql()
        try:
            while True:
                with self.transaction() as c:
                    built, upto = self._fts_state()
                    if built:                   # another process finished it while this one waited for the lock,
                        # or it is to be refolded (a ranker from before the chunked build makes papers_fts anew:
                        # then this one's unfinished build is of no use, see _drop_stale_fts_build)
                        c.execute(f"DROP TABLE IF EXISTS {_FTS_BUILDING}")
                        if self._refold_chunk(c):
                            return True
                    elif self._build_chunk(c, upto):
                        return True
                time.sleep(FTS_BUILD_PAUSE)
        except StoreError:
            return False

    def _build_chunk(self, c: sqlite3.Connection, upto: int | None) -> bool:
        """One write transaction's share of the build: the papers after rowid `upto` (None: the build begins)
        copied, folded. True once the index is there and needs no refolding."""
        if upto is None:
            c.execute(f"CREATE VIRTUAL TABLE {_FTS_BUILDING} USING {_FTS_COLUMNS}")
            upto = 0
        copied = c.execute(f"INSERT INTO {_FTS_BUILDING} (rowid, id, title, abstract) "
                           "SELECT rowid, id, unaccented(title), unaccented(abstract) FROM papers WHERE rowid > ? "
                           "ORDER BY rowid LIMIT ?", (upto, FTS_BUILD_CHUNK)).rowcount
        if copied < FTS_BUILD_CHUNK:    # every paper is in (none can be added meanwhile: the lock)
            c.execute(f"ALTER TABLE {_FTS_BUILDING} RENAME TO papers_fts")
            return _FTS_REFOLD not in self._fts_tables()      # (a build an older ranker began: refolded next)
        return False

    def _refold_chunk(self, c: sqlite3.Connection) -> bool:
        """One write transaction's share of refolding an index from before m007 (see FTS_REFOLD_CHUNK): the
        papers after the rowid papers_fts_refold holds whose title or abstract folding changes, taken out of the
        index and put in again folded. True once every paper has been looked at (papers_fts_refold dropped)."""
        if _FTS_REFOLD not in self._fts_tables():
            return True
        upto = c.execute(f"SELECT upto FROM {_FTS_REFOLD}").fetchone()[0]
        last = c.execute("SELECT COALESCE(MAX(rowid), 0) FROM papers").fetchone()[0]
        top = min(upto + FTS_BUILD_CHUNK, last)
        rows = c.execute("SELECT rowid, id, unaccented(title), unaccented(abstract) FROM papers "
                         "WHERE rowid > ? AND rowid <= ? AND (unaccented(title) != title "
                         "OR unaccented(abstract) != abstract) ORDER BY rowid LIMIT ?",
                         (upto, top, FTS_REFOLD_CHUNK)).fetchall()
        if len(rows) == FTS_REFOLD_CHUNK:
            top = rows[-1][0]
        for _, pid, title, abstract in rows:
            c.execute("DELETE FROM papers_fts WHERE papers_fts MATCH ? AND id = ?", (_fts_id(pid), pid))
            c.execute("INSERT INTO papers_fts (id, title, abstract) VALUES (?,?,?)", (pid, title, abstract))
        if top >= last:
            c.execute(f"DROP TABLE {_FTS_REFOLD}")
            return True
        c.execute(f"UPDATE {_FTS_REFOLD} SET upto = ?", (top,))
        return False

    def _drop_stale_fts_build(self) -> None:
        """Drop an unfinished build of the word index that lies beside a built one. A ranker from before the
        chunked build makes papers_fts in one transaction, not by renaming papers_fts_building, so one run after
        a build of this ranker was interrupted leaves both; no build goes on beside a built index (each chunk
        looks for papers_fts first, under the write lock, and papers stored since update papers_fts alone), so
        the unfinished one would stay in the file for good, about as large as the index."""
        if self.read_only:
            return
        try:
            if not {"papers_fts", _FTS_BUILDING} <= self._fts_tables():
                return
            with self.transaction() as c:
                if self._fts_state()[0]:
                    c.execute(f"DROP TABLE IF EXISTS {_FTS_BUILDING}")
        except (sqlite3.DatabaseError, StoreError):
            pass                                  # a lock now is not this open's failure: try next time

    def _fold_in_sql(self) -> None:
        """unaccented(text) in this connection's SQL: the word index's folding (see _FTS_COLUMNS)."""
        self.conn.create_function("unaccented", 1, unaccented, deterministic=True)

    def search_papers(self, query: str, limit: int = 50) -> list[str]:
        """Ids of the papers whose title or abstract holds every word of `query` (the last one also as a prefix),
        best match first: FTS5's BM25 with the title weighing more, or, without FTS5, a LIKE scan, newest first.
        Both fold the query and the papers' text as author pins fold names ("Lukasz" finds "Łukasz")."""
        words = _WORD.findall(unaccented(query or ""))[:20]
        if not words:
            return []
        if self._ensure_fts():
            terms = [f'"{w}"' for w in words[:-1]] + [f'"{words[-1]}"*']
            match = "{title abstract} : (" + " ".join(terms) + ")"
            rows = self.conn.execute("SELECT id FROM papers_fts WHERE papers_fts MATCH ? "
                                     "ORDER BY bm25(papers_fts, 0.0, 10.0, 1.0) LIMIT ?", (match, limit))
            return [r[0] for r in rows]
        self._fold_in_sql()
        cond, args = [], []
        for w in words:
            pat = "%" + w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            cond.append("(unaccented(title) LIKE ? ESCAPE '\\' OR unaccented(abstract) LIKE ? ESCAPE '\\')")
            args += [pat, pat]
        rows = self.conn.execute(f"SELECT id FROM papers WHERE {' AND '.join(cond)} "
                                 "ORDER BY last_seen DESC, id LIMIT ?", (*args, limit))
        return [r[0] for r in rows]

    # ------------------------------------------------------------------ runs
    @contextmanager
    def recording(self, kind: str, params: dict) -> Iterator[RunRecord]:
        """A row of the runs table for the block, owned by this process (pid, host): 'running' while it runs,
        then the record's status (ok, partial) and summary, 'interrupted' on Ctrl-C, or 'failed' when the
        block raises. A killed process leaves 'running' until the next Store opened on this host sees that
        the process is gone and marks it interrupted."""
        with self.transaction() as c:
            cur = c.execute("INSERT INTO runs (kind, started_at, params, pid, host) VALUES (?,?,?,?,?)",
                            (kind, time.time(), json.dumps(params, default=str), os.getpid(), HOST))
            rec = RunRecord(id=int(cur.lastrowid))
        raised = True
        try:
            yield rec
            raised = False
        except KeyboardInterrupt:
            rec.status = "interrupted"
            raise
        except BaseException as e:
            rec.status = "failed"
            rec.summary = {**rec.summary, "error": redact(e) or type(e).__name__}
            raise
        finally:
            try:
                with self.transaction() as c:
                    c.execute("UPDATE runs SET finished_at=?, status=?, summary=? WHERE id=?",
                              (time.time(), rec.status, json.dumps(rec.summary, default=str), rec.id))
            except Exception:
                # the block's own error is the one to report (a full disk or a lock must not replace it); the
                # row stays 'running' until the next Store opened here marks it interrupted
                if not raised:
                    raise

    def live_runs(self, kind: str, *, before: int, **params) -> list[dict]:
        """The runs of `kind` recorded before run `before` that are still running in another live process (of
        this host, or of another host: see _run_owner) and whose params hold `params` (day="2025-05-15"): each
        as {"id", "pid", "host", "started_at"}."""
        rows = self.conn.execute("SELECT id, pid, host, started_at, params FROM runs WHERE kind=? "
                                 "AND status='running' AND id<? ORDER BY id", (kind, before)).fetchall()
        out = []
        for rid, pid, host, started, raw in rows:
            if not _params_hold(raw, params):
                continue
            if _run_owner(pid, host, started) == "alive":
                out.append({"id": rid, "pid": pid, "host": host, "started_at": started})
        return out

    def last_run(self, kind: str, **params) -> dict | None:
        """The latest run of `kind` whose params hold `params` (day="2025-05-15"), as {"id", "status",
        "error", "started_at", "finished_at"}; a run recorded as running by a process that is gone is
        "interrupted" (a read-only store cannot mark it so); None when there is none."""
        # the params as recording() wrote them narrow the rows read (a day page asks on every request, and a home's
        # runs are one or more a day for years); the JSON read below decides
        likes = ["%" + json.dumps({k: v}, default=str)[1:-1] + "%" for k, v in params.items()]
        rows = self.conn.execute("SELECT id, status, params, summary, pid, host, started_at, finished_at FROM runs "
                                 "WHERE kind=?" + " AND params LIKE ?" * len(likes) + " ORDER BY id DESC",
                                 (kind, *likes))
        for rid, status, raw, summary, pid, host, started, finished in rows:
            if not _params_hold(raw, params):
                continue
            if status == "running" and _run_owner(pid, host, started) == "gone":
                status = "interrupted"
            # a summary that does not read (a row mended by hand) loses the error only, not the run: read with the
            # params, it made an older run of the day the latest
            try:
                said = json.loads(summary or "{}")
            except ValueError:
                said = {}
            error = said.get("error") if isinstance(said, dict) else None
            return {"id": rid, "status": status, "error": str(error) if error else "", "started_at": started,
                    "finished_at": finished}
        return None

    def run_status(self, run_id: int, kind: str | None = None, **params) -> str | None:
        """The run's status; None when there is none, or it is not of `kind` or its params do not hold
        `params` (day="2025-05-15")."""
        row = self.conn.execute("SELECT status, kind, params FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None or (kind is not None and row[1] != kind):
            return None
        if params and not _params_hold(row[2], params):
            return None
        return row[0]

    # ------------------------------------------------------------------ scores
    def get_scores(self, ids: Iterable[str], model: str, prompt_hash: str, *,
                   texts: Mapping[str, str] | None = None) -> dict[str, Score]:
        """The stored scores of `ids` under this model and prompt. `texts` (paper id -> Paper.scored_text):
        a score that judged other text of the paper is left out (one stored without a text hash is not)."""
        out: dict[str, Score] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = ("SELECT paper_id,relevance,novelty,comment,expected_relevance,expected_novelty,prompt_tokens,"
                 "completion_tokens,cached_prompt_tokens,text_hash FROM scores WHERE model=? AND prompt_hash=? "
                 "AND paper_id IN (%s)" % ",".join("?" * len(chunk)))
            for r in self.conn.execute(q, (model, prompt_hash, *chunk)):
                if texts is not None and r[9] is not None and texts.get(r[0], r[9]) != r[9]:
                    continue
                out[r[0]] = Score(arxiv_id=r[0], relevance=r[1], novelty=r[2], comment=r[3],
                                  expected_relevance=r[4], expected_novelty=r[5], prompt_tokens=r[6] or 0,
                                  completion_tokens=r[7] or 0, cached_prompt_tokens=r[8] or 0)
        return out

    def score_times(self, ids: Iterable[str], model: str, prompt_hash: str) -> dict[str, float]:
        """When each stored score among `ids` of this model and prompt was made."""
        return {r[0]: r[1] for r in self._rows_for_ids(
            "SELECT paper_id, created_at FROM scores WHERE model=? AND prompt_hash=? AND paper_id IN (%s)", ids,
            model, prompt_hash)}

    def put_score(self, score: Score, model: str, prompt_hash: str, run_id: int | None = None) -> None:
        self.put_scores([score], model, prompt_hash, run_id)

    def put_scores(self, scores: Iterable[Score], model: str, prompt_hash: str, run_id: int | None = None, *,
                   scored_at: Mapping[str, float] | None = None, texts: Mapping[str, str] | None = None) -> int:
        """Store many scores of one model and prompt in one transaction (each replaces the paper's earlier
        score and failure under that key). `scored_at`: when a score was made (paper id -> time), for scores
        made before they are stored; default now. `texts`: paper id -> the Paper.scored_text it judged.
        Returns how many were written."""
        n = 0
        now = time.time()
        scored_at, texts = scored_at or {}, texts or {}
        with self.transaction() as c:
            for score in scores:
                c.execute("INSERT OR REPLACE INTO scores (paper_id, model, prompt_hash, relevance, novelty, "
                          "comment, expected_relevance, expected_novelty, prompt_tokens, completion_tokens, run_id, "
                          "created_at, cached_prompt_tokens, text_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                          (score.arxiv_id, model, prompt_hash, score.relevance, score.novelty,
                           clean_text(score.comment),
                           score.expected_relevance, score.expected_novelty, score.prompt_tokens,
                           score.completion_tokens, run_id, scored_at.get(score.arxiv_id, now),
                           score.cached_prompt_tokens, texts.get(score.arxiv_id)))
                c.execute("DELETE FROM failures WHERE paper_id=? AND model=? AND prompt_hash=?",
                          (score.arxiv_id, model, prompt_hash))
                n += 1
        return n

    def put_failure(self, failure: Failure, model: str, prompt_hash: str, run_id: int | None = None) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO failures (paper_id, model, prompt_hash, reason, raw, run_id, "
                      "created_at) VALUES (?,?,?,?,?,?,?)",
                      (failure.arxiv_id, model, prompt_hash, redact(failure.reason),
                       redact(clean_text(failure.raw[:4000])), run_id, time.time()))

    def get_failures(self, model: str, prompt_hash: str, ids: Iterable[str] | None = None) -> list[Failure]:
        """The stored failures of a model and prompt: all of them, or those of `ids`."""
        if ids is None:
            rows = self.conn.execute("SELECT paper_id, reason, raw FROM failures WHERE model=? AND prompt_hash=?",
                                     (model, prompt_hash))
        else:
            rows = self._rows_for_ids("SELECT paper_id, reason, raw FROM failures WHERE model=? AND prompt_hash=? "
                                      "AND paper_id IN (%s)", ids, model, prompt_hash)
        return [Failure(r[0], r[1], r[2] or "") for r in rows]

    # ------------------------------------------------------------------ embeddings
    def get_embeddings(self, keys: dict[str, str], embedder: str) -> dict[str, np.ndarray]:
        """keys: paper id -> hash of the text embedded. A cached vector of other text is a miss."""
        out: dict[str, np.ndarray] = {}
        ids = list(keys)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = ("SELECT paper_id, text_hash, dim, vector FROM embeddings WHERE embedder=? AND paper_id IN (%s)"
                 % ",".join("?" * len(chunk)))
            for pid, th, dim, blob in self.conn.execute(q, (embedder, *chunk)):
                if th == keys[pid] and (v := self._vector(pid, embedder, dim, blob)) is not None:
                    out[pid] = v
        return out

    def put_embeddings(self, rows: Iterable[tuple[str, str, np.ndarray]], embedder: str) -> None:
        """Store (paper id, text hash, vector) rows, each vector one row of finite numbers (as float32); anything
        else (a (1, d) matrix, a NaN or an infinity) is a ValueError and stores nothing."""
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO embeddings (paper_id, embedder, text_hash, dim, vector) "
                          "VALUES (?,?,?,?,?)",
                          ((pid, embedder, th, *_vector_row(pid, v)) for pid, th, v in rows))

    def _vector(self, pid: str, embedder: str, dim: int, blob: bytes) -> np.ndarray | None:
        """A stored vector as float32 numbers; a row whose bytes are not `dim` of them is a damaged database.
        None for a vector holding a NaN or an infinity (put_embeddings refuses them; an older ranker stored them,
        or the file was damaged): read as no vector, so the embedder's cache embeds the text again and the new
        row replaces it (the corpus index takes a vector stored again in place of the one it holds), where
        handed back it would top every ranking (a NaN cosine sorts anywhere) and be any paper's neighbour."""
        if not isinstance(blob, bytes) or len(blob) != 4 * dim:
            size = f"{len(blob)} bytes" if isinstance(blob, bytes) else f"a {type(blob).__name__}"
            raise StoreError(f"the stored vector of {pid} ({embedder}) holds {size}, not the {dim} float32 numbers "
                             "its row says: the database is damaged", where=str(self.path))
        v = np.frombuffer(blob, dtype=np.float32)
        return v if np.isfinite(v).all() else None

    def count_embeddings(self, embedder: str) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM embeddings WHERE embedder=?", (embedder,)).fetchone()[0]

    def has_scores(self, model: str, prompt_hash: str) -> bool:
        """Whether any score of `model` under `prompt_hash` is stored."""
        return self.conn.execute("SELECT EXISTS(SELECT 1 FROM scores WHERE model=? AND prompt_hash=?)",
                                 (model, prompt_hash)).fetchone()[0] == 1

    # ------------------------------------------------------------------ for the corpus index (ranker.index)
    # Paper vectors are the embeddings rows whose id does not start with `query_prefix` (topic and query
    # vectors share the table). The index keeps up by SQLite's rowid: INSERT OR REPLACE gives a replaced row a
    # new rowid above every existing one, so the rows added since a sync are those above its highest rowid.
    @contextmanager
    def read_snapshot(self) -> Iterator[None]:
        """Reads inside see one consistent state of the database (a deferred read transaction)."""
        if self.conn.in_transaction:
            yield
            return
        self.conn.execute("BEGIN")
        try:
            yield
        finally:
            self.conn.execute("COMMIT")

    def paper_vector_stats(self, embedder: str, query_prefix: str) -> tuple[int, int]:
        """(how many paper vectors `embedder` has, the highest rowid of the whole embeddings table)."""
        n = self.conn.execute("SELECT COUNT(*) FROM embeddings WHERE embedder=? AND paper_id NOT LIKE ?",
                              (embedder, _like_prefix(query_prefix))).fetchone()[0]
        top = self.conn.execute("SELECT MAX(rowid) FROM embeddings").fetchone()[0]
        return int(n), int(top or 0)

    def paper_vector_rows(self, embedder: str, query_prefix: str, *, after_rowid: int = 0, every: int = 1,
                          vectors: bool = True, batch: int = 20_000, seen_since: str | None = None,
                          seen_before: str | None = None) -> Iterator[list[tuple[int, str, str, bytes | None]]]:
        """Chunks of (rowid, paper id, text hash, float32 vector bytes or None), in rowid order, for the rows
        above `after_rowid`; every > 1 keeps only rowids divisible by it (an evenly spread sample); seen_since
        (YYYY-MM-DD) keeps only papers first seen on or after that day, seen_before only those first seen before it."""
        cols = "rowid, paper_id, text_hash, " + ("vector" if vectors else "NULL")
        sql = (f"SELECT {cols} FROM embeddings WHERE rowid > ? AND embedder=? AND paper_id NOT LIKE ?"
               + (" AND rowid % ? = 0" if every > 1 else "")
               + (" AND paper_id IN (SELECT id FROM papers WHERE first_seen >= ?)" if seen_since else "")
               + (" AND paper_id IN (SELECT id FROM papers WHERE first_seen < ?)" if seen_before else "")
               + " ORDER BY rowid")
        args: tuple = ((after_rowid, embedder, _like_prefix(query_prefix)) + ((every,) if every > 1 else ())
                       + ((seen_since,) if seen_since else ()) + ((seen_before,) if seen_before else ()))
        cur = self.conn.execute(sql, args)
        while True:
            rows = cur.fetchmany(batch)
            if not rows:
                return
            yield rows

    def paper_embedders(self, query_prefix: str) -> list[str]:
        """The embedders that have paper vectors in the store."""
        rows = self.conn.execute("SELECT DISTINCT embedder FROM embeddings WHERE paper_id NOT LIKE ? ORDER BY 1",
                                 (_like_prefix(query_prefix),)).fetchall()
        return [r[0] for r in rows]

    def embedding_at(self, rowid: int) -> tuple[str, str, str] | None:
        """(embedder, paper id, text hash) of one embeddings row."""
        row = self.conn.execute("SELECT embedder, paper_id, text_hash FROM embeddings WHERE rowid=?",
                                (rowid,)).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def _rows_for_ids(self, sql: str, ids: Iterable[str], *args) -> Iterator[tuple]:
        """The rows of `sql` (whose `IN (%s)` takes the ids; `args` bind the ? before it), 500 ids a query."""
        for chunk in _chunks(list(dict.fromkeys(ids))):
            yield from self.conn.execute(sql % ",".join("?" * len(chunk)), (*args, *chunk))

    def embedding_hashes(self, ids: Iterable[str], embedder: str) -> dict[str, str]:
        """paper id -> text hash of its stored vector, for the ids that have one."""
        return dict(self._rows_for_ids("SELECT paper_id, text_hash FROM embeddings WHERE embedder=? AND paper_id "
                                       "IN (%s)", ids, embedder))

    def get_vectors(self, ids: Iterable[str], embedder: str) -> dict[str, np.ndarray]:
        """paper id -> its stored vector, whatever text it was embedded from (none for a vector that is not
        finite: see _vector)."""
        rows = self._rows_for_ids("SELECT paper_id, dim, vector FROM embeddings WHERE embedder=? AND paper_id IN (%s)",
                                  ids, embedder)
        out = {pid: self._vector(pid, embedder, dim, blob) for pid, dim, blob in rows}
        return {pid: v for pid, v in out.items() if v is not None}

    def versions(self, ids: Iterable[str]) -> dict[str, int]:
        """id -> the version of the paper's stored text, for the ids with a known version."""
        return dict(self._rows_for_ids("SELECT id, version FROM papers WHERE version IS NOT NULL AND id IN (%s)",
                                       ids))

    def first_seen(self, ids: Iterable[str]) -> dict[str, str]:
        """id -> the first day the store saw it announced, for the ids with a known day."""
        return dict(self._rows_for_ids("SELECT id, first_seen FROM papers WHERE first_seen IS NOT NULL AND id "
                                       "IN (%s)", ids))

    # ------------------------------------------------------------------ a day's ranking and digest
    def put_rankings(self, day: str, ranked: Iterable[Ranked], *, embedder: str | None = None,
                     run_id: int | None = None, digest: DayDigest | None = None) -> int:
        """Replace `day`'s prefilter ranking with `ranked`, in one transaction; a ranked paper the store does not
        hold yet is stored with it (a ranking names papers the pages can show). `digest`: the day's digest
        record (put_day_digest), written in the same transaction. Returns the rows written."""
        n = 0
        with self.transaction() as c:
            if digest is not None:
                self._put_day_digest(c, digest)
            add = PaperAdder(c, fts=self._fts_state())
            c.execute("DELETE FROM rankings WHERE day=?", (day,))
            for r in ranked:
                if c.execute("SELECT 1 FROM papers WHERE id=?", (r.paper.id,)).fetchone() is None:
                    add(r.paper)
                c.execute("INSERT OR REPLACE INTO rankings " + _RANKING_COLUMNS,
                          (day, r.paper.id, float(r.prefilter_score), int(bool(r.kept)), r.topic or "",
                           r.rule or None, embedder, run_id))
                n += 1
        return n

    def restore_rankings(self, day: str, earlier: Sequence[RankingRow]) -> None:
        """Put back `day`'s ranking as get_rankings read it before a run that did not finish replaced it (none:
        no ranking)."""
        with self.transaction() as c:
            c.execute("DELETE FROM rankings WHERE day=?", (day,))
            c.executemany("INSERT INTO rankings " + _RANKING_COLUMNS,
                          [(day, r.paper_id, float(r.prefilter_score), int(bool(r.kept)), r.topic or "", r.rule,
                            r.embedder, r.run_id) for r in earlier])

    def get_rankings(self, day: str) -> list[RankingRow]:
        """`day`'s ranking, best first."""
        rows = self.conn.execute("SELECT day,paper_id,prefilter_score,kept,topic,rule,embedder,run_id FROM rankings "
                                 "WHERE day=? ORDER BY prefilter_score DESC, paper_id", (day,))
        return [RankingRow(r[0], r[1], r[2], bool(r[3]), r[4] or "", r[5], r[6], r[7]) for r in rows]

    def rankings_of_paper(self, paper_id: str) -> list[RankingRow]:
        """A paper's rankings by day (rankings_of_papers of one: the site's batched pages read the same rows)."""
        return self.rankings_of_papers([paper_id]).get(paper_id, [])

    def rankings_of_papers(self, ids: Iterable[str]) -> dict[str, list[RankingRow]]:
        """rankings_of_paper for many papers, 500 a query: paper id -> its rows by day (a paper never ranked is
        absent)."""
        out: dict[str, list[RankingRow]] = {}
        for r in self._rows_for_ids("SELECT day,paper_id,prefilter_score,kept,topic,rule,embedder,run_id FROM rankings "
                                    "WHERE paper_id IN (%s) ORDER BY paper_id, day", ids):
            out.setdefault(r[1], []).append(RankingRow(r[0], r[1], r[2], bool(r[3]), r[4] or "", r[5], r[6], r[7]))
        return out

    def days_of_papers(self, ids: Iterable[str]) -> dict[str, list[str]]:
        """paper_days for many papers, 500 a query: paper id -> every day it was announced or ranked on, oldest
        first."""
        days: dict[str, set[str]] = {}
        for pid, day in self._rows_for_ids("SELECT paper_id, day FROM paper_days WHERE paper_id IN (%s)", ids):
            days.setdefault(pid, set()).add(day)
        for pid, day in self._rows_for_ids("SELECT paper_id, day FROM rankings WHERE paper_id IN (%s)", ids):
            days.setdefault(pid, set()).add(day)
        return {pid: sorted(d) for pid, d in days.items()}

    def scores_of_papers(self, ids: Iterable[str]) -> dict[str, list[tuple[str, str, Score]]]:
        """scores_of_paper for many papers, 500 a query: paper id -> (model, prompt_hash, score), newest first."""
        out: dict[str, list[tuple[str, str, Score]]] = {}
        for r in self._rows_for_ids("SELECT paper_id,model,prompt_hash,relevance,novelty,comment,expected_relevance,"
                                    "expected_novelty FROM scores WHERE paper_id IN (%s) "
                                    "ORDER BY paper_id, created_at DESC", ids):
            out.setdefault(r[0], []).append(
                (r[1], r[2], Score(r[0], r[3], r[4], r[5], expected_relevance=r[6], expected_novelty=r[7])))
        return out

    def put_day_digest(self, digest: DayDigest) -> None:
        """Record which scores make `digest.day`'s digest (the latest run of a day wins)."""
        with self.transaction() as c:
            self._put_day_digest(c, digest)

    @staticmethod
    def _put_day_digest(c: sqlite3.Connection, digest: DayDigest) -> None:
        c.execute("INSERT OR REPLACE INTO day_digests (day, run_id, model, prompt_hash, min_relevance, min_novelty, "
                  "created_at) VALUES (?,?,?,?,?,?,?)",
                  (digest.day, digest.run_id, digest.model, digest.prompt_hash, int(digest.min_relevance),
                   int(digest.min_novelty), digest.created_at or time.time()))

    def restore_day_digest(self, day: str, earlier: DayDigest | None) -> None:
        """Put back what `day`'s digest was before a run that did not finish writing its files: `earlier` as it
        was (its own time kept), or no digest at all."""
        if earlier is not None:
            self.put_day_digest(earlier)
            return
        with self.transaction() as c:
            c.execute("DELETE FROM day_digests WHERE day=?", (day,))

    def get_day_digest(self, day: str) -> DayDigest | None:
        r = self.conn.execute("SELECT day,model,prompt_hash,min_relevance,min_novelty,run_id,created_at "
                              "FROM day_digests WHERE day=?", (day,)).fetchone()
        return DayDigest(*r) if r else None

    def scores_of_paper(self, paper_id: str) -> list[tuple[str, str, Score]]:
        """Every stored score of a paper as (model, prompt_hash, score), newest first."""
        return self.scores_of_papers([paper_id]).get(paper_id, [])

    def days(self) -> list[str]:
        """Every day the store knows (announced, ranked or digested), oldest first."""
        # each table's distinct days by stepping its day index from one day to the next (a lookup a day): the
        # plain UNION read every row of paper_days and rankings, on every day page and labels page of `ranker
        # serve` (a year's 73,000 papers were read twice for each page's previous / next links)
        days: set[str] = set()
        for table in ("paper_days", "rankings", "day_digests"):
            days.update(r[0] for r in self.conn.execute(
                f"WITH RECURSIVE d(day) AS (SELECT MIN(day) FROM {table} UNION ALL "
                f"SELECT (SELECT MIN(day) FROM {table} WHERE day > d.day) FROM d WHERE d.day IS NOT NULL) "
                "SELECT day FROM d WHERE day IS NOT NULL"))
        return sorted(days)

    def digest_picks(self, day_prefix: str = "") -> list[tuple[str, str, str]]:
        """(day, paper id, topic) of every digest pick on the days starting with `day_prefix` ("2025-05" for a
        month): a kept paper whose score under the day's digest model and prompt passes the day's cut-offs."""
        rows = self.conn.execute(
            "SELECT g.day, r.paper_id, r.topic FROM day_digests g JOIN rankings r ON r.day = g.day AND r.kept "
            "JOIN scores s ON s.paper_id = r.paper_id AND s.model = g.model AND s.prompt_hash = g.prompt_hash "
            "WHERE substr(g.day, 1, ?) = ? AND s.relevance >= g.min_relevance AND s.novelty >= g.min_novelty "
            "ORDER BY g.day, r.paper_id", (len(day_prefix), day_prefix))
        return [(r[0], r[1], r[2] or "") for r in rows]

    def day_summaries(self) -> list[dict]:
        """One dict per day the store knows (announced, ranked or digested), newest first: papers (a ranked day's
        ranking, as its page lists them; else those announced), kept, scored
        (kept papers with a score under the day's digest model and prompt), picks (those of them that pass the
        day's cut-offs), up / down (labels of its papers)."""
        days: dict[str, dict] = {}

        def row(d):
            return days.setdefault(d, {"day": d, "papers": 0, "kept": 0, "scored": 0, "picks": 0, "up": 0, "down": 0,
                                       "ranked": False, "digest": False})
        for d, n in self.conn.execute("SELECT day, COUNT(*) FROM paper_days GROUP BY day"):
            row(d)["papers"] = n
        for d, n, k in self.conn.execute("SELECT day, COUNT(*), SUM(kept) FROM rankings GROUP BY day"):
            r = row(d)
            # a ranked day's page lists its ranking: a rerun on fewer papers (a saved file cut down) left the
            # archive counting every paper ever announced that day beside a day page of the ranking's
            r.update(papers=n, kept=k or 0, ranked=True)
        for d, scored, picks in self.conn.execute(
                "SELECT g.day, SUM(r.kept), SUM(r.kept AND s.relevance >= g.min_relevance "
                "AND s.novelty >= g.min_novelty) FROM day_digests g JOIN rankings r ON r.day = g.day "
                "JOIN scores s ON s.paper_id = r.paper_id AND s.model = g.model AND s.prompt_hash = g.prompt_hash "
                "GROUP BY g.day"):
            row(d).update(scored=scored, picks=picks or 0)
        for (d,) in self.conn.execute("SELECT day FROM day_digests"):
            row(d)["digest"] = True
        for d, up, down in self.conn.execute(
                "SELECT x.day, SUM(l.label = 1), SUM(l.label = -1) FROM labels l JOIN "
                "(SELECT paper_id, day FROM rankings UNION SELECT paper_id, day FROM paper_days "
                " WHERE day NOT IN (SELECT day FROM rankings)) x "
                "ON x.paper_id = l.paper_id GROUP BY x.day"):
            if d in days:
                days[d].update(up=up or 0, down=down or 0)
        return [days[d] for d in sorted(days, reverse=True)]

    # ------------------------------------------------------------------ the user's labels
    def set_label(self, paper_id: str, label: int, day: str | None = None, *, created_at: float | None = None,
                  source: str = "user", expected: int | None = None) -> int:
        """Thumbs up (+1) or down (-1) on a paper; 0 takes the label back. Every change is kept in label_events;
        a click that changes nothing (the same thumb again, an undo with no label) is no change: no event, and
        the label keeps its time (a later import compares against the time the verdict was given).
        expected: the label the caller believes the paper has (what a page shows, 0 for none); when the store
        holds another one, the label was changed elsewhere since and nothing is written, unless the store
        already holds `label`. Checked in the write's own transaction. Returns the label stored after the call
        (`label`, or the one that stayed)."""
        if label not in (-1, 0, 1):
            raise InputError(f"a label is +1, -1 or 0 (undo), got {label!r}", where=paper_id)
        if expected not in (None, -1, 0, 1):
            raise InputError(f"an expected label is +1, -1 or 0 (none), got {expected!r}", where=paper_id)
        now = time.time() if created_at is None else float(created_at)
        with self.transaction() as c:
            cur = c.execute("SELECT label FROM labels WHERE paper_id=?", (paper_id,)).fetchone()
            stored = cur[0] if cur else 0
            if stored == label or (expected is not None and stored != expected):
                return stored
            if label == 0:
                c.execute("DELETE FROM labels WHERE paper_id=?", (paper_id,))
            else:
                # a verdict given where no digest day is known keeps the earlier one's digest day
                c.execute(_LABEL_UPSERT, (paper_id, label, day, paper_id, now))
            c.execute("INSERT INTO label_events (paper_id, label, day, created_at, source) VALUES (?,?,?,?,?)",
                      (paper_id, label, day, now, source))
        return label

    def get_labels(self, ids: Iterable[str] | None = None) -> dict[str, Label]:
        """The current labels (all of them, or those of `ids`), by paper id."""
        q = "SELECT paper_id,label,day,created_at FROM labels"
        if ids is None:
            return {r[0]: Label(*r) for r in self.conn.execute(q + " ORDER BY created_at DESC, paper_id")}
        out: dict[str, Label] = {}
        for chunk in _chunks(list(ids)):
            for r in self.conn.execute(q + " WHERE paper_id IN (%s)" % ",".join("?" * len(chunk)), chunk):
                out[r[0]] = Label(*r)
        return out

    def count_labels(self) -> tuple[int, int]:
        """(thumbs up, thumbs down)."""
        up, down = self.conn.execute("SELECT SUM(label = 1), SUM(label = -1) FROM labels").fetchone()
        return up or 0, down or 0

    def taken_back(self) -> list[Label]:
        """The papers whose label was taken back (their last change is an undo), as label-0 Labels: an export
        carries them, so an older verdict from another machine does not bring the label back."""
        q = ("SELECT e.paper_id, e.day, e.created_at FROM label_events e WHERE e.label = 0 AND e.id = "
             "(SELECT MAX(id) FROM label_events WHERE paper_id = e.paper_id) "
             "AND e.paper_id NOT IN (SELECT paper_id FROM labels) ORDER BY e.created_at, e.paper_id")
        return [Label(pid, 0, day, t) for pid, day, t in self.conn.execute(q)]

    def label_events(self, paper_id: str | None = None) -> list[dict]:
        """The history of label changes, oldest first (label 0 = taken back)."""
        q = "SELECT paper_id,label,day,created_at,source FROM label_events"
        rows = self.conn.execute(q + (" WHERE paper_id=?" if paper_id else "") + " ORDER BY id",
                                 (paper_id,) if paper_id else ())
        return [dict(zip(("paper_id", "label", "day", "created_at", "source"), r)) for r in rows]

    def import_labels(self, labels: Iterable[Label]) -> dict[str, int]:
        """Merge labels from elsewhere, in one transaction; for a paper labelled on both sides the later verdict
        wins, an undo (label 0) included on either side, so importing the same file twice changes nothing; two
        given at the same second are decided by _wins, the same way on either machine.
        Returns counts of papers by what the import did to each: added, changed, taken back, unchanged. A paper
        given several times (two exports put together) counts once, by its label before and after: a thumb the
        same file then takes back added nothing."""
        before: dict[str, int | None] = {}          # paper -> its label before the import (None: none)
        with self.transaction() as c:
            for lb in labels:
                if lb.label not in (-1, 0, 1):
                    raise InputError(f"a label is +1, -1 or 0 (taken back), got {lb.label!r}", where=lb.paper_id)
                cur = c.execute("SELECT label, created_at FROM labels WHERE paper_id=?", (lb.paper_id,)).fetchone()
                before.setdefault(lb.paper_id, cur[0] if cur is not None else None)
                if cur is None:       # never labelled here, or taken back here: when?
                    row = c.execute("SELECT MAX(created_at) FROM label_events WHERE paper_id=? AND label=0",
                                    (lb.paper_id,)).fetchone()
                    cur = (0, row[0]) if row[0] is not None else None
                if lb.label == 0 and (cur is None or cur[0] == 0 and cur[1] < lb.created_at):
                    # the undo of a thumb never given here, or taken back here too but earlier, is kept as an
                    # event: an older thumb imported later loses to it (not only to this store's earlier undo),
                    # and this store's exports carry it on
                    c.execute("INSERT INTO label_events (paper_id, label, day, created_at, source) VALUES (?,?,?,?,?)",
                              (lb.paper_id, 0, lb.day, lb.created_at, "import"))
                    continue
                if cur is not None and (cur[0] == lb.label or not _wins(lb.label, lb.created_at, *cur)):
                    continue
                if lb.label == 0:
                    c.execute("DELETE FROM labels WHERE paper_id=?", (lb.paper_id,))
                else:
                    c.execute(_LABEL_UPSERT, (lb.paper_id, lb.label, lb.day, lb.paper_id, lb.created_at))
                c.execute("INSERT INTO label_events (paper_id, label, day, created_at, source) VALUES (?,?,?,?,?)",
                          (lb.paper_id, lb.label, lb.day, lb.created_at, "import"))
            counts = {"added": 0, "changed": 0, "taken back": 0, "unchanged": 0}
            for pid, was in before.items():
                row = c.execute("SELECT label FROM labels WHERE paper_id=?", (pid,)).fetchone()
                now = row[0] if row is not None else None
                counts["unchanged" if now == was else "added" if was is None else "taken back" if now is None
                       else "changed"] += 1
        return counts


_WORD = re.compile(r"\w+", re.UNICODE)


def _folded(args: tuple) -> tuple[str, str]:
    """The title and abstract of PaperAdder's row as the word index holds them (see _FTS_COLUMNS)."""
    return unaccented(args[1]), unaccented(args[2])


def _fts_id(paper_id: str) -> str:
    """An FTS5 query that finds a paper's row by its id column (the caller checks the id exactly)."""
    return 'id : "' + paper_id.replace('"', '""') + '"'


def _vector_row(pid: str, v) -> tuple[int, bytes]:
    """(dim, float32 bytes) of one vector to store."""
    a = np.asarray(v, dtype=np.float32)
    if a.ndim != 1 or not a.size:
        raise ValueError(f"the vector of {pid} has shape {a.shape}, not one row of numbers")
    if not np.isfinite(a).all():
        raise ValueError(f"the vector of {pid} holds numbers that are not finite (NaN or infinity)")
    return a.shape[0], a.tobytes()


# Which of two verdicts on a paper given at the same second wins an import (a labels file's times are whole
# seconds): a taking back, then a thumb down, then a thumb up. By the clock's fraction each machine kept its own
# (its stored verdict's fraction beat the file's whole second), so two that swapped their exports never agreed.
_SAME_SECOND_RANK = {1: 0, -1: 1, 0: 2}


def _wins(label: int, at: float, other_label: int, other_at: float) -> bool:
    """Whether the verdict (label, at) wins over (other_label, other_at): the later second, else the rank."""
    return (int(at // 1), _SAME_SECOND_RANK[label]) > (int(other_at // 1), _SAME_SECOND_RANK[other_label])


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern for ids starting with `prefix` (which must hold no % or _)."""
    if "%" in prefix or "_" in prefix:
        raise ValueError(f"id prefix {prefix!r} holds a LIKE wildcard")
    return prefix + "%"
