"""arXiv's RSS 2.0 announcement feed (https://rss.arxiv.org/rss/cs.LG+cs.AI).

Each <item> carries the title, a description "arXiv:ID Announce Type: TYPE Abstract: TEXT", <category>
elements (primary first), <arxiv:announce_type> and the authors as one <dc:creator> string. The channel's
<pubDate> is the announcement day. A day without announcements (weekend, holiday) is a channel with no items.
"""
from __future__ import annotations

import re
from typing import Iterator

from ..errors import InputError
from ..records import Paper
from .normalize import make_paper, rfc822_day
from .report import ReadReport
from .xmlutil import parse_xml, text_of

NS = {"arxiv": "http://arxiv.org/schemas/atom", "dc": "http://purl.org/dc/elements/1.1/"}
_DESCRIPTION = re.compile(r"^\s*arXiv:(\S+)\s+Announce\s+Type:\s*([A-Za-z\-]+)\s*(.*)$", re.DOTALL)


def parse_rss(data: bytes, source: str, report: ReadReport | None = None, *,
              date: str | None = None) -> Iterator[Paper]:
    """Yield the feed's papers in feed order, unfiltered. The whole document is parsed (and checked) before
    the first paper is yielded, so a truncated feed fails before anything is stored.
    `date` overrides the announcement day the channel's <pubDate> gives."""
    report = report if report is not None else ReadReport(source=source)
    root = parse_xml(data, source, report)
    if not isinstance(root.tag, str) or root.tag.rsplit("}", 1)[-1] != "rss":
        raise InputError(f"expected an RSS feed (<rss>), found <{str(root.tag).rsplit('}', 1)[-1]}>",
                         where=f"{source}:{root.sourceline or 1}")
    channel = root.find("channel")
    if channel is None:
        raise InputError("RSS feed without a <channel>", where=f"{source}:{root.sourceline or 1}")
    items = channel.findall("item")
    day = rfc822_day(channel.findtext("pubDate")) or rfc822_day(channel.findtext("lastBuildDate"))
    if day is None and items:
        day = rfc822_day(items[0].findtext("pubDate"))
    if date:
        if day and items:           # an empty feed (a weekend's) labels no paper: nothing to contradict
            report.own_days[day] += len(items)
        day = date
    elif day is None and items:
        raise InputError("the feed gives no announcement day (<pubDate>); pass {key:date} YYYY-MM-DD", where=source)
    report.feed_date = day or ""
    return _papers_of(items, day or "", source, report)


def _papers_of(items, day: str, source: str, report: ReadReport) -> Iterator[Paper]:
    for item in items:
        where = f"{source}:{item.sourceline or '?'}"
        report.seen += 1
        desc = text_of(item.find("description"))
        m = _DESCRIPTION.match(desc)
        abstract = m.group(3) if m else desc
        desc_id, desc_type = (m.group(1), m.group(2)) if m else (None, None)
        raw_id = (item.findtext("guid") or "").strip() or desc_id or (item.findtext("link") or "").strip()
        announce = (item.findtext("arxiv:announce_type", namespaces=NS) or "").strip() or desc_type
        creators = [text_of(c) for c in item.findall("dc:creator", NS)]
        cats = [(c.text or "").strip() for c in item.findall("category")]
        paper = make_paper(report, where, raw_id=raw_id, title=text_of(item.find("title")), abstract=abstract,
                           authors=", ".join(c for c in creators if c.strip()), categories=cats,
                           date=day or rfc822_day(item.findtext("pubDate")) or "", announce_type=announce)
        if paper is not None:
            yield paper
