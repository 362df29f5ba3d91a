"""Paper sources: read a day's papers from any of the formats arXiv (or we) write, and fetch them online.

    read_papers(path_or_url, categories=None, announce=None, date=None)  -> iterator of Paper
    write_papers(papers, path)                                           -> number written (atomic)
    fetch_today(categories, announce)                                    -> today's RSS announcements
    fetch_ids(ids) / fetch_window(since, until, categories)             -> arXiv API metadata

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

import gzip
import io
import json
import os
import sys
from pathlib import Path
from typing import IO, Iterable, Iterator

from ..errors import FetchError, InputError
from ..io import Warn, atomic_write, parse_arxiv_id
from ..records import Paper, Ranked
from .common import (ANNOUNCE_TYPES, ReadReport, check_day, parse_list, per_category, relative_announce,
                     stronger)

DEFAULT_CATEGORIES = ["cs.LG", "cs.AI"]
DEFAULT_ANNOUNCE = ["new", "cross"]
FORMATS = ("rss", "atom", "snapshot", "jsonl")
_SNIFF = 64 * 1024

__all__ = ["read_papers", "read_ranked", "write_papers", "paper_lines", "ranked_lines", "fetch_today", "fetch_ids", "fetch_window", "detect_format",
           "select", "ReadReport", "DEFAULT_CATEGORIES", "DEFAULT_ANNOUNCE", "ANNOUNCE_TYPES", "FORMATS"]


# --------------------------------------------------------------------------- opening a source
def is_url(s: str | os.PathLike) -> bool:
    return isinstance(s, str) and s.split(":", 1)[0].lower() in ("http", "https")


def _open_path(path: Path) -> IO[bytes]:
    try:
        f = open(path, "rb")
        magic = f.read(2)
        f.seek(0)
    except FileNotFoundError:
        raise InputError("file not found", where=str(path)) from None
    except IsADirectoryError:
        raise InputError("is a directory, expected a file", where=str(path)) from None
    except PermissionError:
        raise InputError("permission denied", where=str(path)) from None
    except OSError as e:
        raise InputError(f"cannot open ({e.strerror or e})", where=str(path)) from None
    if magic == b"\x1f\x8b":
        return gzip.open(f, "rb")  # type: ignore[return-value]
    return f


def _head(data: bytes) -> bytes:
    head = data.lstrip(b"\xef\xbb\xbf").lstrip()
    return head


def detect_format(head: bytes, first_line: bytes | None = None) -> str | None:
    """'rss' | 'atom' | 'snapshot' | 'jsonl' from the first bytes (and, for JSON, the first line)."""
    head = _head(head)
    if not head:
        return "jsonl"     # an empty file: an empty day
    if head.startswith(b"<"):
        low = head[:_SNIFF].lower()
        if b"<rss" in low:
            return "rss"
        if b"<feed" in low:
            return "atom"
        return None
    if head.startswith(b"{"):
        from .snapshot import looks_like_snapshot
        line = (first_line if first_line is not None else head.split(b"\n", 1)[0]).strip()
        try:
            obj = json.loads(line.decode("utf-8", errors="replace"))
        except (ValueError, RecursionError):
            return "jsonl"
        return "snapshot" if looks_like_snapshot(obj) else "jsonl"
    return None


def _unknown_format(source: str) -> InputError:
    return InputError("unrecognised format: expected arXiv RSS or Atom XML, an arXiv metadata snapshot or "
                      "papers JSON lines", where=source)


def _parse_bytes(data: bytes, source: str, fmt: str | None, report: ReadReport, date: str | None
                 ) -> tuple[str, Iterator[Paper]]:
    if fmt is None:
        if data[:2] == b"\x1f\x8b":
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError) as e:
                raise InputError(f"corrupt gzip data ({e})", where=source) from None
        fmt = detect_format(data[:_SNIFF], _head(data).split(b"\n", 1)[0])
        if fmt is None:
            raise _unknown_format(source)
    if fmt == "rss":
        from .rss import parse_rss
        return fmt, parse_rss(data, source, report, date=date)
    if fmt == "atom":
        from .atom import parse_atom
        return fmt, parse_atom(data, source, report, date=date)
    return fmt, _stream_lines(io.BytesIO(data), source, fmt, report, date)


def _read_file(path: Path, fmt: str | None, report: ReadReport, date: str | None) -> tuple[str, Iterator[Paper]]:
    source = str(path)
    f = _open_path(path)
    try:
        try:
            if fmt is None:
                head = f.read(_SNIFF)
                first_line = None
                if _head(head).startswith(b"{"):
                    f.seek(0)
                    first_line = f.readline()
                f.seek(0)
                fmt = detect_format(head, first_line)
                if fmt is None:
                    raise _unknown_format(source)
            if fmt in ("rss", "atom"):
                data = f.read()
                f.close()
                return _parse_bytes(data, source, fmt, report, date)
        except (OSError, EOFError) as e:      # unreadable, or a corrupt .gz
            raise InputError(f"cannot read ({e})", where=source) from None
    except BaseException:
        f.close()
        raise
    return fmt, _stream_lines(f, source, fmt, report, date)


def _stream_lines(f: IO[bytes], source: str, fmt: str, report: ReadReport, date: str | None) -> Iterator[Paper]:
    """Line-by-line reading of a JSON-lines file; the file is closed when the iterator ends."""
    def lines() -> Iterator[bytes]:
        try:
            yield from f
        except (OSError, EOFError) as e:     # e.g. a truncated .gz
            raise InputError(f"cannot read ({e})", where=source) from None

    try:
        if fmt == "snapshot":
            from .snapshot import iter_snapshot
            yield from iter_snapshot(lines(), source, report, date=date)
        else:
            from .jsonl import iter_jsonl
            yield from iter_jsonl(lines(), source, report, date=date)
    finally:
        f.close()


# --------------------------------------------------------------------------- filters
def select(papers: Iterable[Paper], *, categories: list[str] | None = None, announce: list[str] | None = None,
           report: ReadReport | None = None, buffered: bool = False) -> Iterator[Paper]:
    """Filter by category and announce type, relabel announce types relative to `categories`, de-duplicate.
    `buffered=True` reads everything first, so a later duplicate's stronger announce type is merged into the
    first occurrence before it is yielded."""
    report = report if report is not None else ReadReport()
    cats = list(categories) if categories else None
    wanted = set(announce) if announce else None
    seen: dict[str, Paper | None] = {}
    out: list[Paper] = []
    for p in papers:
        if cats is not None:
            if not any(c in cats for c in p.categories):
                report.filtered += 1
                continue
            p.announce_type = relative_announce(p, cats)
            for k, v in per_category(p, cats).items():
                p.extra.setdefault(k, v)
        if wanted is not None and (p.announce_type or "new") not in wanted:
            report.filtered += 1
            continue
        if p.id in seen:
            report.warn("duplicates", report.source, f"{p.id}: duplicate; first occurrence kept")
            first = seen[p.id]
            if first is not None:
                first.announce_type = stronger(first.announce_type, p.announce_type)
            continue
        if buffered:
            seen[p.id] = p
            out.append(p)
        else:
            seen[p.id] = None        # streaming: remember the id only, so memory stays flat
            report.kept += 1
            yield p
    for p in out:
        report.kept += 1
        yield p


# --------------------------------------------------------------------------- the public readers
def read_papers(path_or_url: str | os.PathLike | bytes, categories: list[str] | str | None = None,
                announce: list[str] | str | None = None, date: str | None = None, *,
                report: ReadReport | None = None, fmt: str | None = None, policy=None,
                warn: Warn | None = None) -> Iterator[Paper]:
    """Papers from a file (RSS/Atom XML, snapshot or papers JSONL, maybe gzipped), '-' for stdin, an http(s)
    URL, or raw bytes. Opening, sniffing and (for XML) parsing happen now, so a missing or malformed file
    raises InputError at once; JSON lines are read lazily while iterating (memory stays flat).

    categories / announce: lists or comma strings (see the module doc for the defaults). date: YYYY-MM-DD
    that replaces every paper's day (the announcement day). report: a ReadReport to fill with counts.
    policy: a sources.net.NetPolicy for URLs; warn hears of retries."""
    cats = parse_list(categories, key="categories") if categories else None
    ann = parse_list(announce, key="announce", allowed=ANNOUNCE_TYPES) if announce else None
    day = check_day(date) if date else None
    if fmt is not None and fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}", key="fmt")

    if isinstance(path_or_url, (bytes, bytearray)):
        source = "<bytes>"
    elif is_url(str(path_or_url)):
        source = str(path_or_url)
    elif str(path_or_url) == "-":
        source = "<stdin>"
    else:
        source = str(Path(path_or_url))
    report = report if report is not None else ReadReport(source=source)
    report.source = report.source or source
    if isinstance(path_or_url, (bytes, bytearray)):
        kind, papers = _parse_bytes(bytes(path_or_url), source, fmt, report, day)
    elif is_url(source):
        from .net import fetch_bytes
        data = fetch_bytes(source, policy=policy, warn=warn)
        kind, papers = _parse_bytes(data, source, fmt, report, day)
    elif source == "<stdin>":
        kind, papers = _parse_bytes(sys.stdin.buffer.read(), source, fmt, report, day)
    else:
        kind, papers = _read_file(Path(path_or_url), fmt, report, day)
    feed = kind in ("rss", "atom")
    if ann is None and kind == "rss":
        ann = list(DEFAULT_ANNOUNCE)
    return select(papers, categories=cats, announce=ann, report=report, buffered=feed)


def read_ranked(path_or_url: str | os.PathLike | bytes, *, report: ReadReport | None = None,
                warn: Warn | None = None) -> list[Ranked]:
    """`ranker prefilter` output: every row as a Ranked record (the paper, its prefilter_score, whether it
    was kept, its topic), in the file's order. A row without that verdict is an InputError."""
    out = []
    for p in read_papers(path_or_url, report=report, warn=warn):
        r = Ranked.from_paper(p)
        if r is None:
            raise InputError(f"{p.id}: no prefilter verdict (prefilter_score, kept): not the output of "
                             "`ranker prefilter`", where=str(path_or_url))
        out.append(r)
    return out


def write_papers(papers: Iterable[Paper], path: str | os.PathLike) -> int:
    """Write papers as JSON lines, atomically (ranker.io.atomic_write): a reader never sees half a file and
    an interrupted write leaves the old file. Returns the number written."""
    return atomic_write(path, paper_lines(papers))


def paper_lines(papers: Iterable[Paper]) -> Iterator[str]:
    """One JSON line per paper, the papers JSONL layout (listing.jsonl)."""
    for p in papers:
        yield json.dumps(p.to_dict(), ensure_ascii=False) + "\n"


def ranked_lines(ranked: Iterable[Ranked]) -> Iterator[str]:
    """The prefilter output: one JSON line per Ranked record (id, prefilter_score, kept, topic, the paper's
    fields), one at a time (a 30,000-paper day never sits in memory as one string); read_ranked reads it."""
    for r in ranked:
        yield json.dumps(r.to_dict(), ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- online
def fetch_today(categories: list[str] | str | None = None, announce: list[str] | str | None = None,
                date: str | None = None, *, report: ReadReport | None = None, policy=None,
                warn: Warn | None = None) -> Iterator[Paper]:
    """Today's announcements from arXiv's RSS feed for `categories` (default cs.LG, cs.AI; base URL
    policy.rss_url). A day without announcements (weekend, holiday) yields nothing; report.seen == 0."""
    from .net import NetPolicy, rss_feed_url
    policy = policy or NetPolicy()
    cats = parse_list(categories, key="categories") if categories else list(DEFAULT_CATEGORIES)
    ann = announce if announce else list(DEFAULT_ANNOUNCE)
    return read_papers(rss_feed_url(cats, policy.rss_url), cats, ann, date, report=report, policy=policy,
                       warn=warn, fmt="rss")


def _results_to_papers(results, source: str, report: ReadReport, date: str | None) -> Iterator[Paper]:
    """arxiv.Result objects -> Papers; network failures while paging become FetchError."""
    import arxiv
    import requests

    from .common import make_paper
    it = iter(results)
    n = 0
    while True:
        try:
            r = next(it)
        except StopIteration:
            return
        except FetchError:
            raise
        except arxiv.HTTPError as e:
            raise FetchError(f"the arXiv API answered HTTP {e.status}", where=e.url) from None
        except arxiv.ArxivError as e:
            raise FetchError(f"the arXiv API failed: {e.message}", where=e.url) from None
        except requests.exceptions.RequestException as e:
            raise FetchError(f"the arXiv API request failed ({type(e).__name__})", where=source) from None
        n += 1
        report.seen += 1
        published = r.published.date().isoformat() if getattr(r, "published", None) else ""
        p = make_paper(report, f"{source}#{n}", raw_id=r.entry_id, title=r.title, abstract=r.summary,
                       authors=[a.name for a in r.authors], categories=r.categories,
                       primary=r.primary_category or None, date=date or published, comment=r.comment,
                       announce_type="new")
        if p is not None:
            yield p


def fetch_ids(ids: Iterable[str], *, categories: list[str] | str | None = None, date: str | None = None,
              report: ReadReport | None = None, policy=None, warn: Warn | None = None) -> list[Paper]:
    """Metadata for arXiv ids (with or without version) from the arXiv API, in the order given. Ids the API
    does not know are counted in report.skipped. No category filter: `categories` only relabels the announce
    type (new / cross) of the papers that are in them."""
    import arxiv

    from .net import api_client
    report = report if report is not None else ReadReport(source="arXiv API")
    report.source = report.source or "arXiv API"
    wanted: list[str] = []
    for raw in ids:
        raw = raw.strip()
        if not raw:
            continue
        parsed = parse_arxiv_id(raw)
        if parsed is None:
            raise InputError(f"{raw!r} is not an arXiv id like 2411.17700", key="ids")
        if parsed[0] not in wanted:
            wanted.append(parsed[0])
    if not wanted:
        return []
    day = check_day(date) if date else None
    cats = parse_list(categories, key="categories") if categories else None
    client = api_client(policy=policy, warn=warn)
    got: dict[str, Paper] = {}
    for i in range(0, len(wanted), 100):
        chunk = wanted[i:i + 100]
        search = arxiv.Search(id_list=chunk, max_results=len(chunk))
        for p in _results_to_papers(client.results(search), "arXiv API", report, day):
            got.setdefault(p.id, p)
    out = []
    for pid in wanted:
        p = got.get(pid)
        if p is None:
            report.warn("skipped", "arXiv API", f"{pid}: not found")
            continue
        if cats and any(c in cats for c in p.categories):
            p.announce_type = relative_announce(p, cats)
        out.append(p)
        report.kept += 1
    return out


def fetch_window(since: str, until: str | None = None, categories: list[str] | str | None = None,
                 announce: list[str] | str | None = None, date: str | None = None, *,
                 report: ReadReport | None = None, policy=None, warn: Warn | None = None,
                 max_results: int | None = None) -> Iterator[Paper]:
    """Papers submitted between `since` and `until` (YYYY-MM-DD, inclusive; until defaults to today) in
    `categories`, from the arXiv API, oldest first: for backfills. A paper's day is its first version's
    submission day unless `date` is given."""
    import arxiv
    from datetime import date as _date

    from .net import api_client, window_query
    s = check_day(since, "since")
    u = check_day(until, "until") if until else _date.today().isoformat()
    if u < s:
        raise InputError(f"{u} is before the first day, {s}", key="until")
    cats = parse_list(categories, key="categories") if categories else list(DEFAULT_CATEGORIES)
    ann = parse_list(announce, key="announce", allowed=ANNOUNCE_TYPES) if announce else None
    day = check_day(date) if date else None
    report = report if report is not None else ReadReport(source="arXiv API")
    report.source = report.source or "arXiv API"
    client = api_client(policy=policy, warn=warn, page_size=500)
    search = arxiv.Search(query=window_query(s, u, cats), max_results=max_results,
                          sort_by=arxiv.SortCriterion.SubmittedDate, sort_order=arxiv.SortOrder.Ascending)
    return select(_results_to_papers(client.results(search), "arXiv API", report, day), categories=cats,
                  announce=ann, report=report)
