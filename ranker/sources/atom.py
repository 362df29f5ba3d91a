"""arXiv API answers (Atom 1.0): https://export.arxiv.org/api/query?search_query=...|id_list=...

An <entry> has <id> (the abs URL with version), <title>, <summary>, <author><name>, <category term>,
<arxiv:primary_category term>, <arxiv:comment> and <published> (the first version's submission time, used as
the paper's day unless a day is given). The API reports a bad query as a feed with one entry whose id points
at .../api/errors; that becomes an InputError carrying arXiv's message.
"""
from __future__ import annotations

from typing import Iterator

from ..errors import InputError
from ..records import Paper
from .normalize import fold, iso_day, make_paper
from .report import ReadReport
from .xmlutil import parse_xml, text_of

NS = {"a": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom",
      "opensearch": "http://a9.com/-/spec/opensearch/1.1/"}


def parse_atom(data: bytes, source: str, report: ReadReport | None = None, *,
               date: str | None = None) -> Iterator[Paper]:
    """Yield the entries as papers (announce type 'new': the API knows no announcements). The document is
    parsed whole before the first paper is yielded."""
    report = report if report is not None else ReadReport(source=source)
    root = parse_xml(data, source, report)
    if not isinstance(root.tag, str) or root.tag != f"{{{NS['a']}}}feed":
        raise InputError(f"expected an Atom feed (<feed>), found <{str(root.tag).rsplit('}', 1)[-1]}>",
                         where=f"{source}:{root.sourceline or 1}")
    entries = root.findall("a:entry", NS)
    for e in entries:
        if "/api/errors" in (e.findtext("a:id", namespaces=NS) or ""):
            msg = fold(text_of(e.find("a:summary", NS))) or "unspecified error"
            raise InputError(f"the arXiv API reported an error: {msg[:200]}", where=f"{source}:{e.sourceline}")
    return _entries(entries, source, report, date)


def _entries(entries, source: str, report: ReadReport, date: str | None) -> Iterator[Paper]:
    for e in entries:
        where = f"{source}:{e.sourceline or '?'}"
        report.seen += 1
        prim = e.find("arxiv:primary_category", NS)
        cats = [c.get("term") or "" for c in e.findall("a:category", NS)]
        authors = [text_of(a.find("a:name", NS)) for a in e.findall("a:author", NS)]
        published = e.findtext("a:published", namespaces=NS)
        if date:
            report.submitted(iso_day(published))
        paper = make_paper(report, where, raw_id=e.findtext("a:id", namespaces=NS),
                           title=text_of(e.find("a:title", NS)), abstract=text_of(e.find("a:summary", NS)),
                           authors=[a for a in authors if a.strip()], categories=cats,
                           primary=prim.get("term") if prim is not None else None,
                           date=date or iso_day(published) or "",
                           comment=e.findtext("arxiv:comment", namespaces=NS), announce_type="new")
        if paper is not None:
            yield paper
