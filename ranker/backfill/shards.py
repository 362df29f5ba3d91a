"""The backfill's output: Parquet shards, written atomically under names that depend only on their rows.

    OUT/ranked/date=YYYY-MM-DD/ranked-<h>.parquet          every paper read: its fields, text hash, vector,
                                                          prefilter score, kept, topic, papers of its day
    OUT/scores/date=YYYY-MM-DD/<model>-<prompt>-<h>.parquet  one row a paper for one model and prompt hash:
                                                          status scored | failed | not_kept, the scores

<h> is a hash of the shard's sorted ids, so a batch that is written twice (a worker retried by Ray, a rerun of
an interrupted day) lands on the same file, and a file is either absent or whole (a temporary name in the same
folder, then a rename). Readers dedupe on top of that: ranked rows by (id, date), score rows by (id, model,
prompt_hash), a scored row winning over a not_kept or failed one and the newest over older ones.
"""
from __future__ import annotations

import hashlib
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from ..errors import InputError
from ..io import atomic_file, remove_leftovers, special_kind
from ..records import Paper
from .plan import PairSet

RANKED_DIR = "ranked"
SCORES_DIR = "scores"
WORK_DIR = "_work"

PAPER_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("date", pa.string(), nullable=False),
    pa.field("title", pa.string()),
    pa.field("abstract", pa.string()),
    pa.field("authors", pa.list_(pa.string())),
    pa.field("categories", pa.list_(pa.string())),
    pa.field("primary_category", pa.string()),
    pa.field("arxiv_comment", pa.string()),      # the paper's own comment field (pages, venue ...)
    pa.field("announce_type", pa.string()),
    pa.field("version", pa.int32()),
]
RANKED = pa.schema(PAPER_FIELDS + [
    pa.field("text_hash", pa.string()),          # of the text embedded (ranker.prefilter.embed.text_hash)
    pa.field("vector", pa.list_(pa.float32())),  # normalised; null when not embedded
    pa.field("prefilter_score", pa.float64()),   # null when not embedded
    pa.field("kept", pa.bool_()),
    pa.field("topic", pa.string()),
    pa.field("day_papers", pa.int32()),          # papers ranked together on that day; null when not embedded
])
SCORES = pa.schema([
    pa.field("id", pa.string(), nullable=False),
    pa.field("date", pa.string(), nullable=False),
    pa.field("prefilter_score", pa.float64()),
    pa.field("kept", pa.bool_()),
    pa.field("topic", pa.string()),
    pa.field("model", pa.string()),
    pa.field("prompt_hash", pa.string()),
    pa.field("status", pa.string()),             # scored | failed | not_kept
    pa.field("RELEVANCE", pa.int16()),
    pa.field("NOVELTY", pa.int16()),
    pa.field("COMMENT", pa.string()),
    pa.field("expected_relevance", pa.float64()),
    pa.field("expected_novelty", pa.float64()),
    pa.field("prompt_tokens", pa.int32()),
    pa.field("completion_tokens", pa.int32()),
    pa.field("error", pa.string()),
    pa.field("written_at", pa.float64()),
    pa.field("text_hash", pa.string()),          # Paper.scored_text of the text judged (null: older folders)
])
# what the scoring stage reads of a ranked row (not the vector)
SCORE_INPUT = [f.name for f in PAPER_FIELDS] + ["prefilter_score", "kept", "topic"]
DONE_STATUSES = ("scored", "not_kept")          # a failed row is tried again by the next run
# a paper passed over on one day, kept on another: its scored row, else its failed one (a request was made: the
# paper is owed a score, which the next run tries again), and its not_kept row only where no day's request was
_STATUS_RANK = {"scored": 0, "failed": 1, "not_kept": 2}


# --------------------------------------------------------------------------- rows <-> papers
def papers_table(papers: Sequence[Paper]) -> pa.Table:
    """Ranked-schema rows of papers, with nothing ranked yet (kept true, the rest null)."""
    n = len(papers)
    cols = {
        "id": [p.id for p in papers], "date": [p.date for p in papers], "title": [p.title for p in papers],
        "abstract": [p.abstract for p in papers], "authors": [list(p.authors) for p in papers],
        "categories": [list(p.categories) for p in papers],
        "primary_category": [p.primary_category or None for p in papers],
        "arxiv_comment": [p.comment for p in papers], "announce_type": [p.announce_type for p in papers],
        "version": [p.version for p in papers],
        "text_hash": [None] * n, "vector": [None] * n, "prefilter_score": [None] * n, "kept": [True] * n,
        "topic": [None] * n, "day_papers": [None] * n,
    }
    return pa.Table.from_pydict(cols, schema=RANKED)


def table_papers(t: pa.Table) -> list[Paper]:
    """Papers from rows that carry the paper fields."""
    cols = {f.name: t.column(f.name).to_pylist() for f in PAPER_FIELDS}
    out = []
    for i in range(t.num_rows):
        out.append(Paper(id=cols["id"][i], date=cols["date"][i], title=cols["title"][i] or "",
                         abstract=cols["abstract"][i] or "", authors=cols["authors"][i] or [],
                         categories=cols["categories"][i] or [], primary_category=cols["primary_category"][i] or "",
                         comment=cols["arxiv_comment"][i], announce_type=cols["announce_type"][i],
                         version=cols["version"][i]))
    return out


def vector_column(m: np.ndarray) -> pa.Array:
    m = np.ascontiguousarray(m, dtype=np.float32)
    n, d = m.shape
    offsets = pa.array(np.arange(0, n * d + 1, d, dtype=np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(m.reshape(-1)))


def vectors(t: pa.Table) -> np.ndarray:
    """The vector column as an (n, dim) float32 matrix; every row must have one."""
    col = t.column("vector").combine_chunks()
    if col.null_count:
        raise InputError("rows without a vector reached a step that needs one (ranked without {key:embed})")
    flat = np.asarray(col.flatten(), dtype=np.float32)
    return flat.reshape(t.num_rows, -1) if t.num_rows else np.zeros((0, 0), dtype=np.float32)


def conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    """The schema's columns in its order and types (extra columns dropped)."""
    return t.select(schema.names).cast(schema)


# --------------------------------------------------------------------------- writing
def shard_name(prefix: str, ids: Iterable[str]) -> str:
    h = hashlib.sha1("\n".join(sorted(ids)).encode("utf-8")).hexdigest()[:16]
    return f"{prefix}-{h}.parquet"


def write_shard(t: pa.Table, path: Path) -> None:
    """Write a Parquet file so that it is either absent or whole (ranker.io.atomic_file)."""
    with atomic_file(path, "wb", own_name=True) as f:
        pq.write_table(t, f, compression="zstd")


def write_partitioned(t: pa.Table, root: str | Path, prefix: str) -> list[tuple[str, int]]:
    """One shard per day of the rows, under root/date=<day>/; returns (path relative to root, rows)."""
    root = Path(root)
    out = []
    if t.num_rows == 0:
        return out
    days = t.column("date")
    distinct = sorted(set(days.to_pylist()))
    for day in distinct:
        part = t if len(distinct) == 1 else t.filter(pc.equal(days, day))
        name = shard_name(prefix, part.column("id").to_pylist())
        rel = f"date={day}/{name}"
        write_shard(part, root / rel)
        out.append((rel, part.num_rows))
    return out


# a shard's temporary file (atomic_file's `.NAME.XXXXXXXX.tmp`), NAME a shard's (shard_name: PREFIX-16 hex
# digits.parquet), never another .parquet file's of the user's
_SHARD_TEMPORARY = re.compile(r"^\.([^/]+-[0-9a-f]{16}\.parquet)\.[0-9a-f]{8}\.tmp$")


def remove_dead_temporaries(out: str | Path) -> int:
    """Remove the temporary shard files that writers killed part-way (kill -9, the OOM killer, a lost node) left
    under OUT/ranked/, OUT/scores/ and the embedding spill in OUT/_work/: a shard's name depends on its rows, so
    a rerun that batches the rest differently never writes that name again, and the file (a ranked shard's
    vectors: gigabytes) stayed for good. Only atomic_file's temporaries of shard names under date=DAY/ folders,
    and only those no live writer holds locked (ranker.io.remove_leftovers, dead_only). Returns how many went."""
    out = Path(out)
    targets = []
    for root in (out / RANKED_DIR, out / SCORES_DIR, out / WORK_DIR / "embedded"):
        try:
            days = [root / d for d in os.listdir(root) if d.startswith("date=")]
        except OSError:
            continue
        for d in days:
            try:
                names = os.listdir(d)
            except OSError:                  # not a folder
                continue
            targets += {d / m.group(1) for m in map(_SHARD_TEMPORARY.match, names) if m}
    return remove_leftovers(targets, dead_only=True) if targets else 0


# --------------------------------------------------------------------------- reading
def shard_files(root: str | Path, since: str | None = None, until: str | None = None,
                prefix: str | None = None) -> list[Path]:
    """The shards under root (sorted), of the days in [since, until] and names starting with prefix."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for d in sorted(root.iterdir()):
        if not (d.is_dir() and d.name.startswith("date=")):
            continue
        day = d.name[5:]
        if (since and day < since) or (until and day > until):
            continue
        for f in sorted(d.iterdir()):
            if f.suffix == ".parquet" and not f.name.startswith((".", "_")) and \
                    (prefix is None or f.name.startswith(prefix + "-")):
                out.append(f)
    return out


def pairs_in(files: Sequence[Path]) -> PairSet:
    """The (id, date) of every row of these shards (reads two columns)."""
    t = read_table(files, RANKED, ["id", "date"])
    return PairSet.of(t.column("id").to_pylist(), t.column("date").to_pylist())


def days_with_new_rows(files: Sequence[Path], known: PairSet) -> set[str]:
    """The days of these shards' rows that hold a row not in `known`."""
    t = read_table(files, RANKED, ["id", "date"])
    return {d for i, d in zip(t.column("id").to_pylist(), t.column("date").to_pylist()) if not known.has(i, d)}


def file_rows(files: Sequence[Path]) -> int:
    """The rows of these shards, from their footers (no column is read)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def rows_by_day(written: Iterable[tuple[str, int]]) -> dict[str, int]:
    """The rows of write_partitioned's shards ("date=DAY/name", rows), summed by day."""
    out: dict[str, int] = defaultdict(int)
    for rel, n in written:
        out[rel.split("/", 1)[0][5:]] += n
    return dict(out)


def read_table(files: Sequence[Path], schema: pa.Schema, columns: list[str] | None = None,
               filter=None) -> pa.Table:
    if not files:
        return schema.empty_table().select(columns) if columns else schema.empty_table()
    try:
        ds = pads.dataset([str(f) for f in files], schema=schema, format="parquet")
        return ds.to_table(columns=columns, filter=filter)
    except (OSError, pa.ArrowException) as e:
        # a damaged file (cut short by a copy), or one whose columns this ranker cannot read (a newer one's
        # types): named, so that it can be removed or written again; a FIFO, socket or device named as a shard
        # (not waited on: Arrow refuses what is not a file) is no shard this ranker wrote, said so
        bad = _unreadable(files, schema, columns)
        kind = special_kind(bad) if bad is not None else None
        why = f"{kind} named as a shard, not a file ranker wrote; remove it" if kind else \
            f"unreadable shard ({' '.join(str(e).split())[:300]})"
        raise InputError(why, where=str(bad or files[0].parent)) from None


def _unreadable(files: Sequence[Path], schema: pa.Schema, columns: list[str] | None) -> Path | None:
    """The first of `files` that cannot be read alone (None: each can)."""
    for f in files:
        try:
            pads.dataset([str(f)], schema=schema, format="parquet").to_table(columns=columns)
        except (OSError, pa.ArrowException):
            return f
    return None


def dedupe(t: pa.Table, keys: list[str], sort: list[tuple[str, str]] | None = None) -> pa.Table:
    """The first row of each key (after sorting by `sort`, else in table order)."""
    if t.num_rows == 0:
        return t
    if sort:
        t = t.take(pc.sort_indices(t, sort_keys=sort))
    idx = t.select(keys).append_column("__i", pa.array(np.arange(t.num_rows, dtype=np.int64)))
    first = idx.group_by(keys, use_threads=False).aggregate([("__i", "min")]).column("__i_min")
    return t.take(first.take(pc.sort_indices(first)))         # those rows, in table order


def best_scores(t: pa.Table) -> pa.Table:
    """One score row per (id, model, prompt_hash): scored, then failed, then not_kept, then the newest."""
    if t.num_rows == 0:
        return t
    rank = pa.array([_STATUS_RANK.get(s, 3) for s in t.column("status").to_pylist()], pa.int8())
    t = t.append_column("__rank", rank)
    t = dedupe(t, ["id", "model", "prompt_hash"], [("__rank", "ascending"), ("written_at", "descending")])
    return t.drop_columns(["__rank"])


# --------------------------------------------------------------------------- what is already there
@dataclass
class RankedState:
    pairs: PairSet = field(default_factory=PairSet)            # the (id, date) of every ranked row
    days: set[str] = field(default_factory=set)                # the days that hold ranked rows
    complete_days: set[str] = field(default_factory=set)       # of them, those ranked by the prefilter that
                                                               # hold every paper they were ranked among
    rows: int = 0                                              # ranked rows (a row written twice counts twice)


def ranked_state(out: str | Path) -> RankedState:
    """What earlier runs ranked. A day ranked by the prefilter is complete when it holds as many distinct ids
    as the papers it was ranked among (day_papers): every paper the source it was read from had that day (a
    newer source may have more)."""
    t = read_table(shard_files(Path(out) / RANKED_DIR), RANKED, ["id", "date", "day_papers"])
    if t.num_rows == 0:
        return RankedState()
    st = RankedState(rows=t.num_rows)
    t = dedupe(t, ["id", "date"])
    st.pairs = PairSet.of(t.column("id").to_pylist(), t.column("date").to_pylist())
    per_day = t.group_by("date", use_threads=False).aggregate([("id", "count"), ("day_papers", "max")])
    for d, got, size in zip(*(per_day.column(c).to_pylist() for c in ("date", "id_count", "day_papers_max"))):
        st.days.add(d)
        if size is not None and got >= size:
            st.complete_days.add(d)
    return st


@dataclass
class ScoreTodo:
    files: list[Path]               # ranked shards holding rows to score
    todo: set[str] | None           # "id|date" to score; None: every row of `files`
    count: int = 0                  # rows to score
    candidates: int = 0             # distinct papers ranked in the window
    done: int = 0                   # of them, already scored (or not kept) for this model and prompt
    not_kept: int = 0               # of the rows to score, those the prefilter did not keep (no request)


def score_todo(out: str | Path, model: str, prompt_hash: str, since: str | None = None,
               until: str | None = None) -> ScoreTodo:
    """The ranked rows of the window that still need a score row for (model, prompt_hash). A paper ranked on
    several days (cross-listed again later) is scored once: from the first day that kept it, else its first
    day. A paper passed over as not kept on one day is scored when another day keeps it (a later day ranked
    by this run or an earlier one)."""
    out = Path(out)
    files = shard_files(out / RANKED_DIR, since, until)
    r = read_table(files, RANKED, ["id", "date", "kept"])
    if r.num_rows == 0:
        return ScoreTodo([], set(), 0, 0, 0)
    r = r.append_column("__unkept", pc.invert(pc.fill_null(r.column("kept"), True)))
    first = dedupe(r, ["id"], [("__unkept", "ascending"), ("date", "ascending"), ("id", "ascending")])
    s = read_table(shard_files(out / SCORES_DIR), SCORES, ["id", "model", "prompt_hash", "status"],
                   filter=(pads.field("model") == model) & (pads.field("prompt_hash") == prompt_hash))
    settled: dict[str, set[str]] = defaultdict(set)
    for i, st in zip(s.column("id").to_pylist(), s.column("status").to_pylist()):
        settled[st].add(i)
    todo, not_kept = set(), 0
    for i, d, unkept in zip(*(first.column(c).to_pylist() for c in ("id", "date", "__unkept"))):
        if i not in settled["scored"] and not (unkept and i in settled["not_kept"]):
            todo.add(f"{i}|{d}")
            not_kept += unkept
    done = first.num_rows - len(todo)
    if not todo:
        return ScoreTodo([], set(), 0, first.num_rows, done)
    every = len(todo) == r.num_rows           # nothing done, no repeated ids: no filter needed
    if not every:
        days = {k.rsplit("|", 1)[1] for k in todo}
        files = [f for f in files if f.parent.name[5:] in days]
    return ScoreTodo(files, None if every else todo, len(todo), first.num_rows, done, not_kept)


def has_scores(out: str | Path, model: str, prompt_hash: str) -> bool:
    """Whether OUT's score shards hold any row of `model` under `prompt_hash`."""
    s = read_table(shard_files(Path(out) / SCORES_DIR), SCORES, ["id"],
                   filter=(pads.field("model") == model) & (pads.field("prompt_hash") == prompt_hash))
    return s.num_rows > 0


def todo_per_file(todo: ScoreTodo) -> list[set[str] | None]:
    """The "id|date" rows each of todo.files is to score (None: all of its rows). A row in several shards
    belongs to the first that holds it, so that it is scored once (both engines read their rows through it)."""
    if todo.todo is None:
        return [None] * len(todo.files)
    left, out = set(todo.todo), []
    for f in todo.files:
        t = read_table([f], RANKED, ["id", "date"])
        mine = {f"{i}|{d}" for i, d in zip(t.column("id").to_pylist(), t.column("date").to_pylist())} & left
        left -= mine
        out.append(mine)
    return out


def read_to_score(f: Path, mine: set[str] | None) -> pa.Table:
    """The rows of ranked shard `f` to score, each once: all of them (mine None) or those in `mine` (its share
    of todo_per_file)."""
    t = read_table([f], RANKED, SCORE_INPUT)
    return t if mine is None else dedupe(keep_todo(t, mine), ["id", "date"])


def keep_todo(t: pa.Table, todo: set[str] | None) -> pa.Table:
    if todo is None or t.num_rows == 0:
        return t
    keys = pc.binary_join_element_wise(t.column("id"), t.column("date"), "|")
    return t.filter(pc.is_in(keys, value_set=pa.array(sorted(todo), pa.string())))


def summary(out: str | Path) -> dict:
    """Counts for the manifest, from the shards themselves."""
    out = Path(out)
    r = dedupe(read_table(shard_files(out / RANKED_DIR), RANKED, ["id", "date", "kept"]), ["id", "date"])
    days = r.column("date").to_pylist()
    kept = r.filter(pc.fill_null(r.column("kept"), False))
    # "kept" counts papers, as "papers" does (kept on a day at least: scored once); it counted (paper, day) rows,
    # so a paper listed on two days made more papers kept than there were
    # "relisted": the papers listed on more than one day (a later cross-list, arXiv adding a category), each a
    # row a day: why rows outnumber papers, which the summary line says
    ids = Counter(r.column("id").to_pylist())
    res: dict = {"ranked": {"rows": r.num_rows, "papers": len(ids), "relisted": sum(n > 1 for n in ids.values()),
                            "days": len(set(days)), "kept": len(set(kept.column("id").to_pylist())),
                            "kept_rows": kept.num_rows,
                            "first_day": min(days) if days else None, "last_day": max(days) if days else None,
                            "shards": len(shard_files(out / RANKED_DIR))},
                 "scores": {}}
    s = best_scores(read_table(shard_files(out / SCORES_DIR), SCORES,
                               ["id", "model", "prompt_hash", "status", "prompt_tokens", "completion_tokens",
                                "written_at"]))
    by: dict[tuple[str, str], dict] = {}
    for m, h, st, pt, ct in zip(*(s.column(c).to_pylist() for c in ("model", "prompt_hash", "status",
                                                                    "prompt_tokens", "completion_tokens"))):
        d = by.setdefault((m, h), {"model": m, "prompt_hash": h, "scored": 0, "failed": 0, "not_kept": 0,
                                   "prompt_tokens": 0, "completion_tokens": 0})
        d[st] = d.get(st, 0) + 1
        d["prompt_tokens"] += pt or 0
        d["completion_tokens"] += ct or 0
    res["scores"] = {f"{m}|{h}": v for (m, h), v in sorted(by.items())}
    res["score_shards"] = len(shard_files(out / SCORES_DIR))
    return res
