"""Store a stream of papers and write them as JSONL, in one pass, safely.

Papers flow from the reader into one store transaction and, at the same time, into a temporary file next to
the output. Only when the whole source has been read without error does the transaction commit and the file
take its final name; a reader error rolls the store back and removes the temporary file, so nothing stored
before is lost and no half file appears. Papers the store has seen on an earlier day get `first_seen` in the
written line (a second, streaming pass over the temporary file, only when there are any).
"""
from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ..errors import InputError
from ..records import Paper


@dataclass
class IngestResult:
    out: str
    written: int = 0
    by_type: Counter = field(default_factory=Counter)
    days: Counter = field(default_factory=Counter)
    stored_new: int = 0            # papers the store did not know
    seen_before: dict[str, str] = field(default_factory=dict)   # id -> first day seen

    @property
    def day_span(self) -> str:
        if not self.days:
            return ""
        ds = sorted(d for d in self.days if d)
        if not ds:
            return "an unknown day"
        return ds[0] if ds[0] == ds[-1] else f"{ds[0]}..{ds[-1]}"


def _tmp_next_to(path: Path) -> tuple[int, str]:
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
        return tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror or e})", where=str(path)) from None


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def ingest(papers: Iterable[Paper], out: str | os.PathLike, store=None,
           progress: Callable[[int], None] | None = None) -> IngestResult:
    """Write `papers` to `out` (JSONL, atomic) and add them to `store` (a ranker.store.Store, or None) in one
    transaction. Returns counts for the summary line."""
    out_path = Path(out)
    res = IngestResult(out=str(out_path))
    fd, tmp = _tmp_next_to(out_path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            def tee() -> Iterable[Paper]:
                for p in papers:
                    f.write(json.dumps(p.to_dict(), ensure_ascii=False) + "\n")
                    res.written += 1
                    res.by_type[p.announce_type or "unknown"] += 1
                    res.days[p.date] += 1
                    if progress is not None:
                        progress(res.written)
                    yield p

            if store is not None:
                added = store.add_papers(tee())
                res.stored_new = added.new
                res.seen_before = dict(added.seen_before)
            else:
                for _ in tee():
                    pass
            f.flush()
            os.fsync(f.fileno())
        if res.seen_before:
            tmp = _mark_first_seen(tmp, out_path, res.seen_before)
        os.replace(tmp, out_path)
    except BaseException as e:
        _unlink(tmp)
        if isinstance(e, OSError):
            raise InputError(f"cannot write ({e.strerror or e})", where=str(out_path)) from None
        raise
    return res


def _mark_first_seen(tmp: str, out_path: Path, seen: dict[str, str]) -> str:
    fd, tmp2 = _tmp_next_to(out_path)
    try:
        with open(tmp, encoding="utf-8") as src, os.fdopen(fd, "w", encoding="utf-8") as dst:
            for line in src:
                d = json.loads(line)
                if d.get("id") in seen:
                    d["first_seen"] = seen[d["id"]]
                    line = json.dumps(d, ensure_ascii=False) + "\n"
                dst.write(line)
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        _unlink(tmp2)
        raise
    _unlink(tmp)
    return tmp2


def summary_line(res: IngestResult, report=None) -> str:
    """'207 papers (79 new, 128 cross) for 2024-11-28 -> papers.jsonl; 3 seen on an earlier day'"""
    order = ["new", "cross", "replace", "replace-cross", "unknown"]
    kinds = ", ".join(f"{res.by_type[k]} {k}" for k in order if res.by_type.get(k))
    line = f"{res.written} paper{'s' if res.written != 1 else ''}"
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
        line += f"; {report.duplicates} duplicate{'s' if report.duplicates != 1 else ''} dropped"
    return line
