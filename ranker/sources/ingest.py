"""Store a stream of papers and write them as JSONL, in one pass, safely.

Papers flow from the reader into a store transaction and, at the same time, into a temporary file next to
the output (ranker.io.atomic_file). Only when the whole source has been read without error does the file take
its final name; the transaction commits then too, and every HOLD seconds before (a snapshot of years is stored
in parts, each whole). A reader error rolls back what is not committed yet, says how many papers were, and
removes the temporary file, so nothing stored before is lost and no half file appears; a rerun stores the rest.
Papers the store has seen on an earlier day get `first_seen` in the written line.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Iterable

from ..errors import RankerError
from ..io import Progress, atomic_file, counted, day_span
from ..records import Paper


@dataclass
class IngestResult:
    out: str
    written: int = 0
    by_type: Counter = field(default_factory=Counter)
    days: Counter = field(default_factory=Counter)
    stored_new: int = 0            # papers the store did not know
    seen_before: dict[str, str] = field(default_factory=dict)   # id -> first day seen
    papers: list[Paper] = field(default_factory=list)           # with keep=True

    @property
    def day_span(self) -> str:
        if not self.days:
            return ""
        return day_span(self.days) or "an unknown day"


HOLD = 1.0          # seconds a fetch holds the database's write lock at most before it commits what it stored


def ingest(papers: Iterable[Paper], out: str | os.PathLike | None, store=None,
           progress: Progress | None = None, keep: bool = False) -> IngestResult:
    """Add `papers` to `store` (a ranker.store.Store, or None) and write them to `out` (JSONL through
    ranker.io.atomic_file; None: no file), in one pass. The papers are stored in one transaction, committed
    every HOLD seconds of it: a source read in less (a day, a feed, the API's pages) is stored whole or not at
    all, a longer one (a snapshot of years) in parts, each whole, which a rerun completes. A paper the store saw
    on an earlier day gets "first_seen" in its line. With `keep`, the papers are also returned in
    IngestResult.papers."""
    res = IngestResult(out=str(out) if out is not None else "")
    with ExitStack() as stack:
        # tidy: a fetch killed before (the OOM killer, mid-snapshot) left its temporary file, gigabytes maybe
        f = stack.enter_context(atomic_file(out, tidy=True)) if out is not None else None
        # committed every HOLD seconds: a snapshot of years is read for minutes, and held in one transaction it
        # kept every other process's write waiting that long (a thumb in `ranker serve` refused after 5 s, cron's
        # `ranker run` failing "database is locked" after 30 s)
        add = stack.enter_context(store.adding_papers(hold=HOLD)) if store is not None else None
        try:
            _read_into(papers, add, f, progress, keep, res)
        except RankerError as e:
            # a source read for longer than HOLD failed after a part of it was committed: said, so the papers
            # stored are not taken for none (nor the days they hold for whole)
            if add is not None and add.committed:
                e.message += f" ({add.committed:,} of the {counted(res.written, 'paper')} read before it are stored)"
            raise
        if add is not None:
            res.stored_new = add.result.new
            res.seen_before = dict(add.result.seen_before)
    return res


def _read_into(papers: Iterable[Paper], add, f, progress: Progress | None, keep: bool, res: IngestResult) -> None:
    for p in papers:
        earlier = add(p) if add is not None else None
        if f is not None:
            d = p.to_dict()
            if earlier:
                d["first_seen"] = earlier
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
        res.written += 1
        res.by_type[p.announce_type or "unknown"] += 1
        res.days[p.date] += 1
        if keep:
            res.papers.append(p)
        if progress is not None:
            progress("reading papers", res.written, None)


def summary_line(res: IngestResult, report=None) -> str:
    """'207 papers (79 new, 128 cross) for 2024-11-28 -> papers.jsonl; 3 seen on an earlier day'"""
    order = ["new", "cross", "replace", "replace-cross", "unknown"]
    kinds = ", ".join(f"{res.by_type[k]} {k}" for k in order if res.by_type.get(k))
    line = counted(res.written, "paper")
    if kinds:
        line += f" ({kinds})"
    span = res.day_span
    if span:
        line += f" for {span}"
    elif report is not None and getattr(report, "feed_date", ""):
        line += f" for {report.feed_date}"
    line += f" -> {res.out}"
    if res.seen_before:
        line += f"; {len(res.seen_before)} seen on an earlier day"
    if report is not None and report.duplicates:
        line += f"; {counted(report.duplicates, 'duplicate')} dropped"
    if report is not None and getattr(report, "unknown_type", 0):
        line += f"; {report.unknown_type:,} of an unknown announce type skipped"
    return line
