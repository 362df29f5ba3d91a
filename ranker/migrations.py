"""The SQLite database's schema, as the ordered list of named migrations that ranker.store runs on opening
(each once, in order: Store._migrate), with what older and branch-made databases recorded instead."""
from __future__ import annotations

import sqlite3
import time
from typing import Callable


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


def m002_rankings_and_day_digests(c: sqlite3.Connection) -> None:
    """What a day's pages show: the prefilter's ranking of the day, and which scores make its digest."""
    c.execute("""
        CREATE TABLE rankings (
            day TEXT NOT NULL,
            paper_id TEXT NOT NULL,
            prefilter_score REAL NOT NULL,
            kept INTEGER NOT NULL,          -- 0/1: passed on to the LLM
            topic TEXT,                     -- best-matching topic of the prompt set
            rule TEXT,                      -- NULL, or a user rule that decided it ('pin', 'exclude')
            embedder TEXT,
            run_id INTEGER,
            PRIMARY KEY (day, paper_id)
        )""")
    c.execute("CREATE INDEX rankings_paper ON rankings (paper_id)")
    c.execute("CREATE INDEX paper_days_day ON paper_days (day)")
    c.execute("""
        CREATE TABLE day_digests (
            day TEXT PRIMARY KEY,
            run_id INTEGER,
            model TEXT NOT NULL,            -- the scores of (model, prompt_hash) make the day's digest
            prompt_hash TEXT NOT NULL,
            min_relevance INTEGER NOT NULL,
            min_novelty INTEGER NOT NULL,
            created_at REAL NOT NULL
        )""")


def m003_labels(c: sqlite3.Connection) -> None:
    """The user's own labels (thumbs up/down), and every change made to them."""
    c.execute("""
        CREATE TABLE labels (
            paper_id TEXT PRIMARY KEY,
            label INTEGER NOT NULL CHECK (label IN (-1, 1)),
            day TEXT,                       -- the digest day it was given on
            created_at REAL NOT NULL
        )""")
    c.execute("""
        CREATE TABLE label_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            paper_id TEXT NOT NULL,
            label INTEGER NOT NULL CHECK (label IN (-1, 0, 1)),   -- 0: the label was taken back
            day TEXT,
            created_at REAL NOT NULL,
            source TEXT NOT NULL DEFAULT 'user'                   -- user | import
        )""")


def m004_score_cached_tokens(c: sqlite3.Connection) -> None:
    """Each score's share of the prompt tokens a provider served from its cache, so a digest built from
    stored scores prices them as the first run did."""
    c.execute("ALTER TABLE scores ADD COLUMN cached_prompt_tokens INTEGER DEFAULT 0")
def m005_run_owner(c: sqlite3.Connection) -> None:
    """The process recording a run (pid, host), so a later start can tell a run whose process is gone. Rows
    that earlier versions left 'running' cannot be traced to a process: they are marked interrupted."""
    c.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
    c.execute("ALTER TABLE runs ADD COLUMN host TEXT")
    c.execute("UPDATE runs SET status='interrupted' WHERE status='running'")


def m006_score_text(c: sqlite3.Connection) -> None:
    """What each score judged: a hash of the paper's text as the prompt showed it (Paper.scored_text), so a
    paper whose text changed since is scored again. Scores stored before have none and are reused as they are."""
    c.execute("ALTER TABLE scores ADD COLUMN text_hash TEXT")


def m007_word_index_folded(c: sqlite3.Connection) -> None:
    """The word-search index holds titles and abstracts folded as author names are (Ł as L, ß as ss: see
    ranker.store's _FTS_COLUMNS), which an index built (or a build begun) before does not: "Lukasz" never found
    "Łukasz" there. Such an index is marked to be refolded, which the next search does in chunks
    (Store._ensure_fts): dropping it here held the write lock 2 s on 200,000 papers, and a paper of plain ASCII,
    most of them, is indexed right."""
    if c.execute("SELECT 1 FROM sqlite_master WHERE name IN ('papers_fts', 'papers_fts_building')").fetchone():
        c.execute("CREATE TABLE papers_fts_refold (upto INTEGER NOT NULL)")
        c.execute("INSERT INTO papers_fts_refold (upto) VALUES (0)")


# ranker.labels.CLOCK_SKEW when m008 was written: a migration keeps the meaning it shipped with (and the store
# below ranker.labels imports nothing of it)
_M008_SKEW = 24 * 3600


def m008_label_times_not_in_the_future(c: sqlite3.Connection) -> None:
    """Labels stored before a label's time was checked on input (one more than ranker.labels.CLOCK_SKEW past the
    clock is refused) may hold a far-future time, a mistyped year or a clock run years ahead: such a verdict won
    every merge with the verdicts given since, and an export carrying it is refused whole where times are checked.
    Each such time, a label's and its events' (an undo is merged by its time too), becomes this migration's clock,
    as the input check's own limit is the clock: the verdict is kept, as if given now, losing to any given later,
    and its export is read by any machine whose clock is within the skew. Dropping it would lose a verdict the
    user gave; moving it only to the skew's edge would keep it winning for a day, refused by a clock a little
    behind. The clock is not trusted below the start of the last run this store recorded (the last written,
    not the latest time: a clock that ran ahead while runs were recorded, and was put right since, left runs in
    the future too): a clock reset behind at the upgrade (a board without its battery) would otherwise move
    every verdict's time back to it for good, so "now" is the later of the two (a label given more than a day
    after that run, under such a clock, takes that run's time)."""
    last_run = c.execute("SELECT started_at FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    now = max(time.time(), last_run[0] if last_run else 0.0)
    for table in ("labels", "label_events"):
        c.execute(f"UPDATE {table} SET created_at = ? WHERE created_at > ?", (now, now + _M008_SKEW))


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_initial,
    m002_rankings_and_day_digests,
    m003_labels,
    m004_score_cached_tokens,
    m005_run_owner,
    m006_score_text,
    m007_word_index_folded,
    m008_label_times_not_in_the_future,
]

# A database from before named migrations counted its schema in PRAGMA user_version, over a list of SQL
# scripts: 1 on main, 2 and 3 from the web pages' branch. What each count meant, by name, so such a database is
# adopted right wherever other migrations come to stand in MIGRATIONS.
LEGACY_VERSIONS: tuple[str, ...] = ("m001_initial", "m002_rankings_and_day_digests", "m003_labels")

# Migrations that shipped on a branch under another name before the merge placed them: a database that branch
# made records the old name, which means the same change.
RENAMED: dict[str, str] = {"m002_score_cached_tokens": "m004_score_cached_tokens",   # the daily branch (#13)
                           "m002_run_owner": "m005_run_owner"}                       # the safety branch (#11)

# Migrations a database may lack and still be read where it cannot be written (a read-only file, folder or
# medium, where none can run): reading does without what they change, and the next writable open runs them.
# m007 only marks an unfolded word index for refolding: a store that lacks it does not search that index (it
# could miss a folded word) but scans the papers, as where the index cannot be built (see _ensure_fts).
# m008 only moves far-future label times back: reading without it shows them as they were stored.
READ_WITHOUT: frozenset[str] = frozenset({"m007_word_index_folded", "m008_label_times_not_in_the_future"})
