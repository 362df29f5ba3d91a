"""The one module that owns the SQLite database.

Schema changes are an ordered list of named migration functions (MIGRATIONS); the `_migrations` table records
the names applied, so each runs once.
Every write happens inside one transaction, so a process killed mid-write leaves the database as it
was before that write (SQLite's journal rolls the half-done transaction back on the next open).

Each run row carries the process (pid, host) recording it; opening the store marks rows whose process is gone
(a kill -9, a power cut) as interrupted. A database that cannot be written (a read-only file system or file)
is opened read-only: reading works, and a write is a StoreError that says "read-only" and names the file. SQLite
errors (locked, full disk, I/O) become StoreErrors naming the database; "locked" also names the ranker
process recorded as running, when there is one.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .errors import InputError, StoreError
from .io import clean_text, redact
from .records import Failure, Paper, Score

# --------------------------------------------------------------------------- migrations
# Each migration is a named function that changes the schema inside one transaction. They run in list order,
# each once; `_migrations` records the names applied (and PRAGMA user_version their count). Add new ones at
# the end, never rename or reorder one that has shipped.
def m001_initial(c: sqlite3.Connection) -> None:
    """Papers and the days they were announced, runs, scores, failures, embeddings."""
    c.execute("""
        CREATE TABLE papers (
            id TEXT PRIMARY KEY,
            version INTEGER,
            title TEXT NOT NULL,
            abstract TEXT NOT NULL,
            authors TEXT NOT NULL,          -- JSON list
            categories TEXT NOT NULL,       -- JSON list, primary first
            primary_category TEXT,
            comment TEXT,
            first_seen TEXT,                -- first announcement day we saw it on
            last_seen TEXT
        )""")
    c.execute("""
        CREATE TABLE paper_days (
            paper_id TEXT NOT NULL REFERENCES papers(id),
            day TEXT NOT NULL,
            announce_type TEXT,
            PRIMARY KEY (paper_id, day)
        )""")
    c.execute("""
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            status TEXT NOT NULL DEFAULT 'running',
            params TEXT,                    -- JSON
            summary TEXT                    -- JSON
        )""")
    c.execute("""
        CREATE TABLE scores (
            paper_id TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            relevance INTEGER NOT NULL CHECK (relevance BETWEEN 1 AND 10),
            novelty INTEGER NOT NULL CHECK (novelty BETWEEN 1 AND 10),
            comment TEXT NOT NULL,
            expected_relevance REAL,
            expected_novelty REAL,
            prompt_tokens INTEGER DEFAULT 0,
            completion_tokens INTEGER DEFAULT 0,
            run_id INTEGER,
            created_at REAL NOT NULL,
            PRIMARY KEY (paper_id, model, prompt_hash)
        )""")
    c.execute("""
        CREATE TABLE failures (
            paper_id TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            reason TEXT NOT NULL,
            raw TEXT,
            run_id INTEGER,
            created_at REAL NOT NULL,
            PRIMARY KEY (paper_id, model, prompt_hash)
        )""")
    c.execute("""
        CREATE TABLE embeddings (
            paper_id TEXT NOT NULL,
            embedder TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            dim INTEGER NOT NULL,
            vector BLOB NOT NULL,           -- float32, normalised
            PRIMARY KEY (paper_id, embedder)
        )""")


def m002_run_owner(c: sqlite3.Connection) -> None:
    """The process recording a run (pid, host), so a later start can tell a run whose process is gone. Rows
    that earlier versions left 'running' cannot be traced to a process: they are marked interrupted."""
    c.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    c.execute("ALTER TABLE runs ADD COLUMN host TEXT")
    c.execute("UPDATE runs SET status='interrupted' WHERE status='running'")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_initial,
    m002_run_owner,
]

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


_READ_ONLY = ("readonly database", "read-only", "unable to open database file", "attempt to write a readonly")


class PaperAdder:
    """Stores papers inside a transaction the caller holds (see Store.adding_papers)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.result = AddResult()

    def __call__(self, p: Paper) -> str | None:
        c, res = self.conn, self.result
        row = c.execute("SELECT first_seen FROM papers WHERE id=?", (p.id,)).fetchone()
        args = (p.version, clean_text(p.title), clean_text(p.abstract), json.dumps([clean_text(a) for a in p.authors]),
                json.dumps(p.categories), p.primary_category, clean_text(p.comment) if p.comment else p.comment)
        earlier = None
        if row is None:
            c.execute("INSERT INTO papers (version,title,abstract,authors,categories,primary_category,"
                      "comment,id,first_seen,last_seen) VALUES (?,?,?,?,?,?,?,?,?,?)",
                      (*args, p.id, p.date or None, p.date or None))
            res.new += 1
        else:
            first = row[0]
            c.execute("UPDATE papers SET version=COALESCE(?,version), title=?, abstract=?, authors=?, "
                      "categories=?, primary_category=?, comment=?, "
                      "first_seen=CASE WHEN first_seen IS NULL OR (? IS NOT NULL AND ? < first_seen) "
                      "  THEN ? ELSE first_seen END, "
                      "last_seen=CASE WHEN last_seen IS NULL OR ? > last_seen THEN ? ELSE last_seen END "
                      "WHERE id=?",
                      (*args, p.date or None, p.date or None, p.date or None, p.date or "",
                       p.date or None, p.id))
            res.updated += 1
            if first and p.date and first < p.date:
                res.seen_before[p.id] = earlier = first
        if p.date:
            c.execute("INSERT OR REPLACE INTO paper_days (paper_id, day, announce_type) VALUES (?,?,?)",
                      (p.id, p.date, p.announce_type))
        return earlier


class Store:
    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0):
        """Open (creating it and its folder when needed) the database at `path`. A writer waits up to
        `busy_timeout` seconds for another process's write to finish before a StoreError says it is locked."""
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.read_only: str | None = None            # why the database can only be read, when it can
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the database's folder: {e.strerror or e}",
                             where=str(self.path.parent)) from None
        self.conn = None
        if self.path.is_dir():
            raise StoreError("is a directory, not a database file", where=str(self.path))
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
        self._mark_dead_runs()

    def _open(self) -> None:
        self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout)
        self.conn.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        if self.conn.execute("PRAGMA query_only").fetchone()[0] == 0 and not os.access(self.path, os.W_OK):
            raise sqlite3.OperationalError("attempt to write a readonly database")
        self._migrate()

    def _is_read_only(self, e: sqlite3.DatabaseError) -> bool:
        text = str(e).lower()
        return any(m in text for m in _READ_ONLY) or not os.access(self.path, os.W_OK) \
            or not os.access(self.path.parent, os.W_OK)

    def _why_read_only(self) -> str:
        there = self.path if self.path.exists() else self.path.parent
        try:
            if os.statvfs(there).f_flag & os.ST_RDONLY:
                return "its file system is mounted read-only"
        except OSError:
            pass
        if self.path.exists() and not os.access(self.path, os.W_OK):
            return "the file is not writable"
        return "its folder is not writable"

    def _open_read_only(self, first: sqlite3.DatabaseError) -> None:
        """Open a database that cannot be written for reading (mode=ro, or immutable on read-only media
        where SQLite cannot create its WAL index); its schema must be current (no migration can run)."""
        for query in ("mode=ro", "immutable=1"):
            try:
                self.conn = sqlite3.connect(f"{self.path.resolve().as_uri()}?{query}", uri=True,
                                            isolation_level=None)
                names = {r[0] for r in self.conn.execute("SELECT name FROM _migrations")}
                break
            except sqlite3.DatabaseError as e:
                if self.conn is not None:
                    self.conn.close()
                    self.conn = None
                if "no such table" in str(e).lower():
                    raise StoreError(f"read-only ({self._why_read_only()}) and not a ranker database yet",
                                     where=str(self.path)) from None
                last = e
        else:
            raise self._error(last if "not a database" in str(last).lower() else first, "open") from None
        self.read_only = self._why_read_only()
        if names != {m.__name__ for m in MIGRATIONS}:
            self.conn.close()
            raise StoreError(f"read-only ({self.read_only}) and its schema needs an upgrade this ranker cannot "
                             "write; open it once where it is writable", where=str(self.path))

    def _error(self, e: sqlite3.DatabaseError, doing: str = "write") -> StoreError:
        """A SQLite error as one line naming the database (and, for a lock, the ranker run holding it)."""
        text = str(e)
        low = text.lower()
        if "locked" in low or "busy" in low:
            holder = self.holder() or ("no ranker run or score is recorded as running: maybe a ranker fetch "
                                       "or another program")
            return StoreError(f"database is locked: another process kept it busy for over {self.busy_timeout:g} s "
                              f"({holder}); wait for it to finish or use another database", where=str(self.path))
        if any(m in low for m in _READ_ONLY):
            return StoreError(f"read-only ({self._why_read_only()}): cannot {doing} it", where=str(self.path))
        if "disk is full" in low or "no space" in low:
            return StoreError(f"cannot {doing}: No space left on device (database or disk is full)",
                              where=str(self.path))
        if "disk i/o error" in low:
            return StoreError(f"cannot {doing}: disk I/O error", where=str(self.path))
        if isinstance(e, sqlite3.OperationalError) and doing != "open":
            return StoreError(f"cannot {doing}: {text}", where=str(self.path))
        return StoreError(f"not a usable ranker database ({text})", where=str(self.path))

    def holder(self) -> str | None:
        """'ranker score (pid 123, since 12:03:04)': the latest run recorded as running by another live
        process, or None."""
        try:
            rows = self.conn.execute("SELECT kind, pid, host, started_at FROM runs WHERE status='running' "
                                     "AND pid IS NOT NULL ORDER BY id DESC LIMIT 20").fetchall()
        except (sqlite3.Error, AttributeError):
            return None
        for kind, pid, host, started in rows:
            if pid == os.getpid() and host == HOST:
                continue
            if host != HOST or process_alive(pid, started):
                where = "" if host == HOST else f" on {host}"
                since = time.strftime("%H:%M:%S", time.localtime(started))
                return f"held by ranker {kind}, pid {pid}{where}, running since {since}"
        return None

    def _mark_dead_runs(self) -> None:
        """Runs recorded as running by a process of this host that is gone become 'interrupted'."""
        if self.read_only:
            return
        try:
            rows = self.conn.execute("SELECT id, pid, started_at FROM runs WHERE status='running' AND host=?",
                                     (HOST,)).fetchall()
            dead = [r[0] for r in rows if r[1] is not None and not process_alive(r[1], r[2])]
            if dead:
                with self.transaction() as c:
                    c.executemany("UPDATE runs SET status='interrupted', finished_at=COALESCE(finished_at, ?) "
                                  "WHERE id=? AND status='running'", ((time.time(), i) for i in dead))
        except (sqlite3.DatabaseError, StoreError):
            pass                                  # a lock now is not this open's failure: try next time

    @property
    def index_dir(self) -> Path:
        """Where the FAISS indexes of this database's vectors live: faiss/ beside it."""
        return self.path.parent / "faiss"

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
                raise InputError(f"database schema v{counted} is newer than this ranker (v{len(names)})",
                                 where=str(self.path))
            if not applied and counted:
                # a database from before named migrations: user_version counted the ones it had
                c.executemany("INSERT INTO _migrations VALUES (?, ?)", ((n, time.time()) for n in names[:counted]))
                applied = set(names[:counted])
        unknown = applied - set(names)
        if unknown:
            raise InputError(f"the database has migrations this ranker does not know ({', '.join(sorted(unknown))}); "
                             "it was made by a newer ranker", where=str(self.path))
        for i, migration in enumerate(MIGRATIONS, start=1):
            if migration.__name__ in applied:
                continue
            with self._raw_transaction() as c:
                migration(c)
                c.execute("INSERT INTO _migrations VALUES (?, ?)", (migration.__name__, time.time()))
                c.execute(f"PRAGMA user_version = {i}")

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
        """Insert or refresh papers and the day each was announced, in one transaction.
        A paper already announced on an earlier day is reported in `seen_before`."""
        with self.adding_papers() as add:
            for p in papers:
                add(p)
        return add.result

    @contextmanager
    def adding_papers(self) -> Iterator["PaperAdder"]:
        """One transaction for a stream of papers: `add(paper)` stores one and returns the day it was first
        seen when that is an earlier day (else None). Everything added is committed when the block ends
        without error, and rolled back otherwise."""
        with self.transaction() as c:
            yield PaperAdder(c)

    def get_paper(self, paper_id: str) -> Paper | None:
        row = self.conn.execute("SELECT id,version,title,abstract,authors,categories,primary_category,comment,"
                                "first_seen FROM papers WHERE id=?", (paper_id,)).fetchone()
        if row is None:
            return None
        return Paper(id=row[0], version=row[1], title=row[2], abstract=row[3], authors=json.loads(row[4]),
                     categories=json.loads(row[5]), primary_category=row[6] or "", comment=row[7],
                     date=row[8] or "")

    def count_papers(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]

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
        try:
            yield rec
        except KeyboardInterrupt:
            rec.status = "interrupted"
            raise
        except BaseException as e:
            rec.status = "failed"
            rec.summary = {**rec.summary, "error": redact(e) or type(e).__name__}
            raise
        finally:
            with self.transaction() as c:
                c.execute("UPDATE runs SET finished_at=?, status=?, summary=? WHERE id=?",
                          (time.time(), rec.status, json.dumps(rec.summary, default=str), rec.id))

    def run_status(self, run_id: int) -> str | None:
        row = self.conn.execute("SELECT status FROM runs WHERE id=?", (run_id,)).fetchone()
        return row[0] if row else None

    # ------------------------------------------------------------------ scores
    def get_scores(self, ids: Iterable[str], model: str, prompt_hash: str) -> dict[str, Score]:
        out: dict[str, Score] = {}
        ids = list(ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            q = ("SELECT paper_id,relevance,novelty,comment,expected_relevance,expected_novelty,prompt_tokens,"
                 "completion_tokens FROM scores WHERE model=? AND prompt_hash=? AND paper_id IN (%s)"
                 % ",".join("?" * len(chunk)))
            for r in self.conn.execute(q, (model, prompt_hash, *chunk)):
                out[r[0]] = Score(arxiv_id=r[0], relevance=r[1], novelty=r[2], comment=r[3],
                                  expected_relevance=r[4], expected_novelty=r[5], prompt_tokens=r[6] or 0,
                                  completion_tokens=r[7] or 0)
        return out

    def put_score(self, score: Score, model: str, prompt_hash: str, run_id: int | None = None) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO scores VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                      (score.arxiv_id, model, prompt_hash, score.relevance, score.novelty, clean_text(score.comment),
                       score.expected_relevance, score.expected_novelty, score.prompt_tokens,
                       score.completion_tokens, run_id, time.time()))
            c.execute("DELETE FROM failures WHERE paper_id=? AND model=? AND prompt_hash=?",
                      (score.arxiv_id, model, prompt_hash))

    def put_failure(self, failure: Failure, model: str, prompt_hash: str, run_id: int | None = None) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?,?,?)",
                      (failure.arxiv_id, model, prompt_hash, redact(failure.reason),
                       redact(clean_text(failure.raw[:4000])), run_id, time.time()))

    def get_failures(self, model: str, prompt_hash: str) -> list[Failure]:
        rows = self.conn.execute("SELECT paper_id, reason, raw FROM failures WHERE model=? AND prompt_hash=?",
                                 (model, prompt_hash)).fetchall()
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
                if th == keys[pid]:
                    out[pid] = np.frombuffer(blob, dtype=np.float32, count=dim)
        return out

    def put_embeddings(self, rows: Iterable[tuple[str, str, np.ndarray]], embedder: str) -> None:
        with self.transaction() as c:
            c.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?,?,?)",
                          ((pid, embedder, th, int(v.shape[0]), np.asarray(v, dtype=np.float32).tobytes())
                           for pid, th, v in rows))

    def count_embeddings(self, embedder: str) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM embeddings WHERE embedder=?", (embedder,)).fetchone()[0]
