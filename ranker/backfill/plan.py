"""What a backfill reads: the source files, how they split into independent reads, and the row filters.

A source is an arXiv metadata snapshot, a papers JSONL file (maybe gzipped), or a folder: its listing.jsonl,
else every `<day>/listing.jsonl` under it (the history layout; GPT's files beside them are not papers), else
every *.jsonl / *.json (.gz) file in it.
An uncompressed JSON-lines file splits into byte ranges read independently (a line belongs to the range its
first byte is in), so a 4 GB snapshot is read by many workers at once and no worker holds more than a batch;
a gzipped file or an XML feed is one read. Each range goes through the library's own readers
(ranker.sources: iter_snapshot / iter_jsonl / read_papers, then filter_papers for categories, announce types
and duplicate ids), and then through the backfill's filters: the day window and the papers already ranked on
their day (a PairSet: 8 bytes a row, for a rerun over millions of ranked rows to hand every read task).
What the readers skip (a line that is not JSON, a row without an id, a truncated last line) is counted per split
(SplitReport) and summed over the splits, in any order, by a ReadTally: counts by reason and the first few
skipped lines as file:line, a byte range's line numbers made the file's.
"""
from __future__ import annotations

import gzip
import hashlib
import os
from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from ..errors import InputError
from ..records import Paper
from ..sources import ReadReport, detect_format, filter_papers, read_papers
from ..sources.jsonl import Overlong, capped_lines, rest_of_line
from ..sources.reading import GZ_ERRORS
from ..sources.report import LINE_CAP

SPLIT_BYTES = 32 << 20          # one read task per 32 MB of an uncompressed JSON-lines file (~20k papers)
_SNIFF = 64 * 1024
_EXTENSIONS = (".jsonl", ".json", ".jsonl.gz", ".json.gz")
MAX_EXAMPLES = 5                # skipped lines a backfill names (file:line); every one is counted
COUNTED = ("skipped", "filtered", "duplicates", "bad_bytes", "no_abstract", "truncated")   # ReadReport's counts


@dataclass(frozen=True)
class Split:
    """One independent read: a byte range of a JSON-lines file, or a whole file."""
    path: str
    fmt: str                    # snapshot | jsonl | rss | atom
    start: int = 0
    end: int | None = None      # None: to the end of the file (and the only way to read .gz and XML)
    gz: bool = False


def pair_hash(id_: str, date: str) -> int:
    """A paper's row ("id|date") as 64 bits, the same in every process."""
    return int.from_bytes(hashlib.blake2b(f"{id_}|{date}".encode(), digest_size=8).digest(), "little")


class PairSet:
    """A set of (id, date) rows held as their sorted 64-bit hashes (pair_hash): 8 bytes a row, where a set of
    "id|date" strings takes about 100, and one buffer to pickle (to a Ray task). A lookup costs about 2 us, a
    few percent of reading the paper. Two rows share a hash with odds of about rows x lookups / 2^64 (1e-7
    for millions of each): such a paper would be taken for ranked."""

    def __init__(self, hashes=()):
        # an array.array, which bisect searches faster than numpy does one value at a time
        self.hashes = array("Q", np.unique(np.asarray(hashes, dtype=np.uint64)).tobytes())

    @classmethod
    def of(cls, ids: Iterable[str], dates: Iterable[str]) -> "PairSet":
        return cls(np.fromiter((pair_hash(i, d) for i, d in zip(ids, dates)), dtype=np.uint64))

    def has(self, id_: str, date: str) -> bool:
        h = pair_hash(id_, date)
        i = bisect_left(self.hashes, h)
        return i < len(self.hashes) and self.hashes[i] == h

    def __or__(self, other: "PairSet") -> "PairSet":
        return PairSet(np.concatenate([np.frombuffer(self.hashes, np.uint64), np.frombuffer(other.hashes, np.uint64)]))

    def __len__(self) -> int:
        return len(self.hashes)


@dataclass(frozen=True)
class Filters:
    """Applied to every paper after the readers: the day window, and what an earlier run already wrote."""
    since: str | None = None
    until: str | None = None
    categories: tuple[str, ...] | None = None
    announce: tuple[str, ...] | None = None
    skip_pairs: PairSet = field(default_factory=PairSet)     # the (id, date) rows already ranked

    def wants(self, p: Paper) -> bool:
        if not p.date:
            return False
        if (self.since and p.date < self.since) or (self.until and p.date > self.until):
            return False
        return not self.skip_pairs.has(p.id, p.date)


# --------------------------------------------------------------------------- the source
def source_files(source: str | os.PathLike) -> list[Path]:
    """The files of a source: the file itself, or the papers files of a folder (see the module doc)."""
    p = Path(source).expanduser()
    if not p.exists():
        raise InputError("no such file or folder", where=str(p))
    if p.is_file():
        return [p]
    names = ("listing.jsonl", "listing.jsonl.gz")
    listings = [p / n for n in names if (p / n).is_file()] or \
        sorted(f for f in p.glob("*/listing.jsonl*") if f.name in names and f.is_file())   # a FIFO: never read
    if listings:
        return listings
    files = sorted(f for f in p.iterdir()
                   if f.is_file() and f.name.endswith(_EXTENSIONS) and not f.name.startswith((".", "_")))
    if not files:
        raise InputError("no papers files here (expected <day>/listing.jsonl or *.jsonl / *.json, maybe .gz)",
                         where=str(p))
    return files


def fingerprint(files: Iterable[Path]) -> list[list]:
    """[path, size, mtime_ns] of each file: a rerun on an unchanged source can skip reading it."""
    out = []
    for f in files:
        st = f.stat()
        out.append([str(f.resolve()), st.st_size, st.st_mtime_ns])
    return out


def _sniff(path: Path) -> tuple[str, bool]:
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            head = f.read(_SNIFF)
            first = None
            if head.lstrip(b"\xef\xbb\xbf").lstrip().startswith(b"{"):
                f.seek(0)
                first = f.readline(LINE_CAP)
    except GZ_ERRORS as e:
        raise InputError(f"cannot read ({getattr(e, 'strerror', None) or e})", where=str(path)) from None
    fmt = detect_format(head, first)
    if fmt is None:
        raise InputError("unrecognised format: expected an arXiv metadata snapshot, papers JSON lines or "
                         "arXiv RSS/Atom XML", where=str(path))
    return fmt, gz


def plan_splits(files: Iterable[Path], split_bytes: int = SPLIT_BYTES) -> list[Split]:
    """Independent reads covering every file once."""
    out: list[Split] = []
    for f in files:
        fmt, gz = _sniff(f)
        size = f.stat().st_size
        if gz or fmt in ("rss", "atom") or size <= split_bytes:
            out.append(Split(str(f), fmt, 0, None, gz))
            continue
        for start in range(0, size, split_bytes):
            out.append(Split(str(f), fmt, start, min(size, start + split_bytes), False))
    return out


# --------------------------------------------------------------------------- reading
def _range_lines(path: str, start: int, end: int | None) -> Iterator[bytes]:
    """The lines whose first byte lies in [start, end)."""
    with open(path, "rb") as f:
        if start > 0:
            f.seek(start - 1)
            rest_of_line(f)       # the rest of a line that began before `start` belongs to the range before
        pos = f.tell()
        lines = capped_lines(f)
        while end is None or pos < end:
            line = next(lines, None)
            if line is None:
                return
            pos += line.size if isinstance(line, Overlong) else len(line)
            yield line


def _gz_lines(path: str) -> Iterator[bytes]:
    try:
        with gzip.open(path, "rb") as f:
            yield from capped_lines(f)
    except GZ_ERRORS as e:
        raise InputError(f"cannot read ({e})", where=path) from None


@dataclass
class SplitReport(ReadReport):
    """The report of one split's read, which also counts the split's lines and keeps its first skipped lines."""
    lines: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)     # (where, message)

    def warn(self, kind: str, where: str, msg: str, reason: str | None = None) -> None:
        super().warn(kind, where, msg, reason)
        if kind == "skipped" and len(self.examples) < MAX_EXAMPLES:
            self.examples.append((where, msg))

    def record(self) -> dict:
        """What ReadTally.add takes (small, to travel from a Ray read task)."""
        return {"lines": self.lines, "reasons": dict(self.reasons), "examples": list(self.examples),
                **{k: getattr(self, k) for k in COUNTED}}


class ReadTally:
    """What a backfill's read of its splits skipped or dropped. Splits report in any order (Ray's read tasks),
    a split reported again (a retried task) replacing its report; record() sums them in source order."""

    def __init__(self, splits: Iterable[Split]):
        self.splits = list(splits)
        self.reads: dict[int, dict] = {}

    def add(self, index: int, record: dict) -> None:
        self.reads[index] = record

    def record(self) -> dict:
        """For the manifest: skipped (lines), skipped_by_reason, skipped_first (the first few, "file:line:
        message"), and the papers filtered out, duplicates dropped, lines with bad bytes repaired, papers
        without an abstract kept, overlong texts cut."""
        counts = dict.fromkeys(COUNTED, 0)
        reasons: dict[str, int] = {}
        first: list[str] = []
        line0: dict[str, int | None] = {}       # per file: lines in its splits before this one (None: unknown)
        for i, s in enumerate(self.splits):
            r = self.reads.get(i)
            before = line0.get(s.path, 0)
            line0[s.path] = None if r is None or before is None else before + r["lines"]
            if r is None:
                continue
            for k in COUNTED:
                counts[k] += r[k]
            for k, n in r["reasons"].items():
                reasons[k] = reasons.get(k, 0) + n
            for where, msg in r["examples"][:MAX_EXAMPLES - len(first)]:
                first.append(f"{_file_line(s, where, before)}: {msg}")
        return {"skipped": counts.pop("skipped"), "skipped_by_reason": dict(sorted(reasons.items())),
                "skipped_first": first, **counts}


def _file_line(split: Split, where: str, before: int | None) -> str:
    """A reader's "path@start:line" (a line of a byte range) as the file's "path:line", when the lines before
    the range are known."""
    prefix = f"{split.path}@{split.start}:"
    if split.start and before is not None and where.startswith(prefix) and where[len(prefix):].isdigit():
        return f"{split.path}:{before + int(where[len(prefix):])}"
    return where


def _counted(lines: Iterable[bytes], report: SplitReport) -> Iterator[bytes]:
    for line in lines:
        report.lines += 1
        yield line


def read_split(split: Split, filters: Filters, report: SplitReport | None = None) -> Iterator[Paper]:
    """The papers of one split that pass the readers' filters and `filters`; `report` hears what was skipped."""
    report = report if report is not None else SplitReport(source=split.path)
    cats = list(filters.categories) if filters.categories else None
    ann = list(filters.announce) if filters.announce else None
    if split.fmt in ("rss", "atom"):
        papers: Iterable[Paper] = read_papers(split.path, cats, ann, report=report)
    else:
        lines = _counted(_gz_lines(split.path) if split.gz else _range_lines(split.path, split.start, split.end),
                         report)
        where = split.path if split.start == 0 else f"{split.path}@{split.start}"
        if split.fmt == "snapshot":
            from ..sources.snapshot import iter_snapshot
            raw = iter_snapshot(lines, where, report, part=split.end is not None)
        else:
            from ..sources.jsonl import iter_jsonl
            raw = iter_jsonl(lines, where, report, part=split.end is not None)
        papers = filter_papers(raw, categories=cats, announce=ann, report=report)
    for p in papers:
        if filters.wants(p):
            yield p
        else:
            report.filtered += 1


def read_source(splits: Iterable[Split], filters: Filters, tally: ReadTally | None = None) -> Iterator[Paper]:
    for i, s in enumerate(splits):
        report = SplitReport(source=s.path)
        yield from read_split(s, filters, report)
        if tally is not None:
            tally.add(i, report.record())


def chunks(items: Iterable, n: int) -> Iterator[list]:
    buf: list = []
    for x in items:
        buf.append(x)
        if len(buf) >= n:
            yield buf
            buf = []
    if buf:
        yield buf


@dataclass
class SourcePlan:
    files: list[Path]
    splits: list[Split] = field(default_factory=list)
    fingerprint: list[list] = field(default_factory=list)

    @classmethod
    def of(cls, source: str | os.PathLike, split_bytes: int = SPLIT_BYTES) -> "SourcePlan":
        files = source_files(source)
        return cls(files, plan_splits(files, split_bytes), fingerprint(files))
