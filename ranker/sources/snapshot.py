"""The arXiv metadata snapshot (Kaggle "arxiv-metadata-oai-snapshot.json"): one JSON object a line with
`id`, `title`, `abstract`, `authors` (one string), `categories` (space separated, primary first), `comments`,
`versions` ([{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}, ...]) and `update_date`.

Read line by line: memory stays flat whatever the file size. A paper's day is its first version's submission
day (the snapshot knows no announcement day) unless the caller gives one.
"""
from __future__ import annotations

import re
from typing import Iterable, Iterator

from ..records import Paper
from .jsonl import json_lines, no_valid_records
from .normalize import iso_day, make_paper, rfc822_day
from .report import ReadReport

_VERSION = re.compile(r"^v?(\d+)$")


def looks_like_snapshot(obj: object) -> bool:
    return isinstance(obj, dict) and ("versions" in obj or "update_date" in obj)


def _versions(value) -> tuple[str | None, int | None]:
    """(the first version's day, the latest version number)"""
    if not isinstance(value, list):
        return None, None
    v1_day = any_day = None
    latest = None
    for v in value:
        if not isinstance(v, dict):
            continue
        m = _VERSION.match(str(v.get("version", "")).strip())
        n = int(m.group(1)) if m and len(m.group(1)) < 6 else None
        day = rfc822_day(v["created"]) if isinstance(v.get("created"), str) else None
        if n is not None:
            latest = n if latest is None else max(latest, n)
        if day:
            any_day = any_day or day
            if n == 1:
                v1_day = day
    return v1_day or any_day, latest


def iter_snapshot(lines: Iterable[bytes], source: str, report: ReadReport | None = None, *,
                  date: str | None = None, part: bool = False) -> Iterator[Paper]:
    """The snapshot's papers. Lines that are not a paper are skipped, counted; a file with none is an error,
    unless the lines are `part` of one (a byte range, which may hold a truncated last line alone)."""
    report = report if report is not None else ReadReport(source=source)
    good = 0
    for where, d in json_lines(lines, source, report):
        first_day, latest = _versions(d.get("versions"))
        if date:
            report.submitted(first_day)
        authors = d.get("authors")
        if not (isinstance(authors, str) and authors.strip()) and isinstance(d.get("authors_parsed"), list):
            authors = d.get("authors_parsed")
        paper = make_paper(report, where, raw_id=d.get("id"), title=d.get("title"), abstract=d.get("abstract"),
                           authors=authors, categories=d.get("categories"),
                           date=date or first_day or iso_day(d.get("update_date")) or "",
                           comment=d.get("comments"), announce_type="new", version=latest)
        if paper is not None:
            good += 1
            yield paper
    if good == 0 and report.skipped and not part:
        raise no_valid_records(report, "snapshot")
