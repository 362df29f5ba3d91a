"""Our own papers JSONL: the layout of shared/data/days/*/listing.jsonl and of `ranker fetch --out`.

Also reads `ranker prefilter` output, whose rows carry extra keys (prefilter_score, kept, topic, ...): every
key we do not model is kept in Paper.extra and written back unchanged. The per-category keys of a listing
("cs.LG": "new" | "cross" | null) give the announce type when the row has none.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from ..records import PAPER_FIELDS, Paper
from .common import ANNOUNCE_TYPES, ReadReport, iso_day, json_lines, make_paper, no_valid_records, stronger

_KNOWN = set(PAPER_FIELDS)


def _announce(d: dict) -> str | None:
    at = d.get("announce_type")
    if isinstance(at, str) and at in ANNOUNCE_TYPES:
        return at
    found = None
    for k, v in d.items():
        if "." in k and isinstance(v, str) and v in ANNOUNCE_TYPES:   # "cs.LG": "new"
            found = stronger(found, v)
    return found


def iter_jsonl(lines: Iterable[bytes], source: str, report: ReadReport | None = None, *,
               date: str | None = None) -> Iterator[Paper]:
    report = report if report is not None else ReadReport(source=source)
    good = 0
    for where, d in json_lines(lines, source, report):
        version = d.get("version")
        paper = make_paper(report, where, raw_id=d.get("id"), title=d.get("title"), abstract=d.get("abstract"),
                           authors=d.get("authors"), categories=d.get("categories"),
                           primary=d.get("primary_category"),
                           date=date or iso_day(d.get("date")) or "", comment=d.get("comment"),
                           announce_type=_announce(d),
                           version=version if isinstance(version, int) and not isinstance(version, bool) else None,
                           extra={k: v for k, v in d.items() if k not in _KNOWN})
        if paper is not None:
            good += 1
            yield paper
    if good == 0 and report.skipped:
        raise no_valid_records(report, "paper")
