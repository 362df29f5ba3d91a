"""Paper sources: read a day's papers from any of the formats arXiv (or we) write, and fetch them online.

    read_papers(path_or_url, categories=None, announce=None, date=None)  -> iterator of Paper
    read_ranked(path)                                                    -> prefilter output as Ranked records
    write_papers(papers, path) / paper_lines / ranked_lines              -> papers JSONL, prefilter output
    fetch_today(categories, announce)                                    -> today's RSS announcements
    fetch_ids(ids) / fetch_window(since, until, categories)             -> arXiv API metadata
    fetch_announced(day, categories, announce)                          -> a past day, rebuilt (arXiv API)

This module only re-exports. By job: reading (open, sniff, parse, write), api (online), filters (categories,
announce types, user-given values), normalize (one record -> a clean Paper), report (what a read saw),
rss / atom / snapshot / jsonl (one format each), xmlutil, net (polite HTTP), ingest (store + file in one pass).

Formats are recognised from their first bytes: `<rss` (arXiv RSS 2.0), `<feed` (arXiv API Atom 1.0), a JSON
line with `versions`/`update_date` (the arXiv metadata snapshot), any other JSON line (our papers JSONL, as
`ranker fetch` and `ranker prefilter` write it). A gzip-compressed file is read transparently.

Filters: `categories` keeps a paper when any of its categories is listed, and re-labels its announce type as a
feed of exactly those categories would (primary listed: new; only cross-listed: cross). `announce` keeps the
listed announce types; when not given, feeds (RSS) keep new and cross, and our own JSONL, the snapshot and the
API keep everything. Each id is yielded once: the first occurrence wins, and for feeds (read whole) its
announce type becomes the strongest one seen (new > cross > replace > replace-cross).

A paper without an abstract is kept, with an empty abstract, and counted in the report; an abstract longer
than 20,000 characters is cut (counted); a line that is not valid JSON is skipped (counted, file:line).
"""
from __future__ import annotations

from ..records import ANNOUNCE_TYPES
from .api import DEFAULT_CATEGORIES, fetch_announced, fetch_ids, fetch_today, fetch_window
from .filters import filter_papers
from .reading import (DEFAULT_ANNOUNCE, FORMATS, detect_format, paper_lines, ranked_lines, read_papers, read_ranked,
                      write_papers)
from .report import ReadReport

__all__ = ["read_papers", "read_ranked", "write_papers", "paper_lines", "ranked_lines", "fetch_today", "fetch_ids",
           "fetch_announced",
           "fetch_window", "detect_format", "filter_papers", "ReadReport", "DEFAULT_CATEGORIES", "DEFAULT_ANNOUNCE",
           "ANNOUNCE_TYPES", "FORMATS"]
