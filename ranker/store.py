"""The one module that owns the SQLite database.

Schema changes are an ordered list of named migration functions (MIGRATIONS); the `_migrations` table records
the names applied, so each runs once.
Every write happens inside one transaction, so a process killed mid-write leaves the database as it
was before that write (SQLite's journal rolls the half-done transaction back on the next open).
"""
from __future__ import annotations

import json
import sqlite3
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from .errors import InputError
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


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_initial,
]


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


class PaperAdder:
    """Stores papers inside a transaction the caller holds (see Store.adding_papers)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn
        self.result = AddResult()

    def __call__(self, p: Paper) -> str | None:
        c, res = self.conn, self.result
        row = c.execute("SELECT first_seen FROM papers WHERE id=?", (p.id,)).fetchone()
        args = (p.version, p.title, p.abstract, json.dumps(p.authors), json.dumps(p.categories),
                p.primary_category, p.comment)
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
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=30000")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise InputError(f"not a usable ranker database ({e})", where=str(self.path)) from None

    @property
    def index_dir(self) -> Path:
        """Where the FAISS indexes of this database's vectors live: faiss/ beside it."""
        return self.path.parent / "faiss"

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            self.conn.execute("COMMIT")

    def _migrate(self) -> None:
        """Apply the migrations this database has not had, in order, each in its own transaction."""
        names = [m.__name__ for m in MIGRATIONS]
        with self.transaction() as c:
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
            with self.transaction() as c:
                migration(c)
                c.execute("INSERT INTO _migrations VALUES (?, ?)", (migration.__name__, time.time()))
                c.execute(f"PRAGMA user_version = {i}")

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
        return self.get_papers([paper_id]).get(paper_id)

    def count_papers(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM papers").fetchone()[0]

    # ------------------------------------------------------------------ runs
    @contextmanager
    def recording(self, kind: str, params: dict) -> Iterator[RunRecord]:
        """A row of the runs table for the block: 'running' while it runs, then the record's status (ok,
        partial) and summary, or 'failed' when the block raises (a killed process leaves 'running')."""
        with self.transaction() as c:
            cur = c.execute("INSERT INTO runs (kind, started_at, params) VALUES (?,?,?)",
                            (kind, time.time(), json.dumps(params, default=str)))
            rec = RunRecord(id=int(cur.lastrowid))
        try:
            yield rec
        except BaseException:
            rec.status = "failed"
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
                      (score.arxiv_id, model, prompt_hash, score.relevance, score.novelty, score.comment,
                       score.expected_relevance, score.expected_novelty, score.prompt_tokens,
                       score.completion_tokens, run_id, time.time()))
            c.execute("DELETE FROM failures WHERE paper_id=? AND model=? AND prompt_hash=?",
                      (score.arxiv_id, model, prompt_hash))

    def put_failure(self, failure: Failure, model: str, prompt_hash: str, run_id: int | None = None) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO failures VALUES (?,?,?,?,?,?,?)",
                      (failure.arxiv_id, model, prompt_hash, failure.reason, failure.raw[:4000], run_id,
                       time.time()))

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
                          vectors: bool = True, batch: int = 20_000
                          ) -> Iterator[list[tuple[int, str, str, bytes | None]]]:
        """Chunks of (rowid, paper id, text hash, float32 vector bytes or None), in rowid order, for the rows
        above `after_rowid`; every > 1 keeps only rowids divisible by it (an evenly spread sample)."""
        cols = "rowid, paper_id, text_hash, " + ("vector" if vectors else "NULL")
        sql = (f"SELECT {cols} FROM embeddings WHERE rowid > ? AND embedder=? AND paper_id NOT LIKE ?"
               + (" AND rowid % ? = 0" if every > 1 else "") + " ORDER BY rowid")
        args: tuple = (after_rowid, embedder, _like_prefix(query_prefix)) + ((every,) if every > 1 else ())
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
        ids = list(dict.fromkeys(ids))
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            yield from self.conn.execute(sql % ",".join("?" * len(chunk)), (*args, *chunk))

    def embedding_hashes(self, ids: Iterable[str], embedder: str) -> dict[str, str]:
        """paper id -> text hash of its stored vector, for the ids that have one."""
        return dict(self._rows_for_ids("SELECT paper_id, text_hash FROM embeddings WHERE embedder=? AND paper_id "
                                       "IN (%s)", ids, embedder))

    def get_vectors(self, ids: Iterable[str], embedder: str) -> dict[str, np.ndarray]:
        """paper id -> its stored vector, whatever text it was embedded from."""
        rows = self._rows_for_ids("SELECT paper_id, dim, vector FROM embeddings WHERE embedder=? AND paper_id IN (%s)",
                                  ids, embedder)
        return {pid: np.frombuffer(blob, dtype=np.float32, count=dim) for pid, dim, blob in rows}

    def get_papers(self, ids: Iterable[str]) -> dict[str, Paper]:
        """id -> Paper (date = the first day it was announced on), for the ids the store knows."""
        rows = self._rows_for_ids("SELECT id,version,title,abstract,authors,categories,primary_category,comment,"
                                  "first_seen FROM papers WHERE id IN (%s)", ids)
        return {r[0]: Paper(id=r[0], version=r[1], title=r[2], abstract=r[3], authors=json.loads(r[4]),
                            categories=json.loads(r[5]), primary_category=r[6] or "", comment=r[7], date=r[8] or "")
                for r in rows}

    def first_seen(self, ids: Iterable[str]) -> dict[str, str]:
        """id -> the first day the store saw it announced, for the ids with a known day."""
        return dict(self._rows_for_ids("SELECT id, first_seen FROM papers WHERE first_seen IS NOT NULL AND id "
                                       "IN (%s)", ids))


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern for ids starting with `prefix` (which must hold no % or _)."""
    if "%" in prefix or "_" in prefix:
        raise ValueError(f"id prefix {prefix!r} holds a LIKE wildcard")
    return prefix + "%"
