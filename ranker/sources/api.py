"""Papers from arXiv online: today's RSS feed, and the arXiv API by id or by submission window (backfills),
through ranker.sources.net's polite HTTP (timeouts, retries, offline mode)."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable, Iterator

from ..errors import FetchError, InputError
from ..io import Progress, Warn, parse_arxiv_id
from ..records import ANNOUNCE_TYPES, Paper
from .filters import check_day, filter_papers, parse_list, relative_announce
from .reading import DEFAULT_ANNOUNCE, read_papers
from .report import ReadReport

if TYPE_CHECKING:
    from .net import NetPolicy

DEFAULT_CATEGORIES = ["cs.LG", "cs.AI"]
# an old id's subject class, which is not part of the id: arXiv answers math.GT/0309136 as math/0309136
_OLD_CLASS = re.compile(r"\.[A-Za-z\-]+/")


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


def _results_to_papers(results, source: str, report: ReadReport, date: str | None,
                       progress: Progress | None = None) -> Iterator[Paper]:
    """arxiv.Result objects -> Papers; network failures while paging become FetchError. `progress` hears
    ("fetching from the arXiv API", results read, None)."""
    import arxiv
    import requests

    from .net import reason_of
    from .normalize import make_paper
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
            raise FetchError(f"the arXiv API request failed ({reason_of(e)})", where=source) from None
        n += 1
        report.seen += 1
        if progress is not None:
            progress("fetching from the arXiv API", n, None)
        published = r.published.date().isoformat() if getattr(r, "published", None) else ""
        if date:                # labelled with another day: ReadReport.date_note compares the submissions with it
            report.submitted(published)
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
        p = got.get(pid) or got.get(_OLD_CLASS.sub("/", pid))
        if p is None:
            report.warn("skipped", "arXiv API", f"{pid}: not found", "not_found")
            continue
        if cats and any(c in cats for c in p.categories):
            p.announce_type = relative_announce(p, cats)
        out.append(p)
        report.kept += 1
    return out


def fetch_announced(day: str, categories: list[str] | str | None = None, announce: list[str] | str | None = None,
                    *, report: ReadReport | None = None, policy=None, warn: Warn | None = None) -> Iterator[Paper]:
    """The announcements dated `day` (YYYY-MM-DD) rebuilt through the arXiv API: the papers in `categories`
    first submitted in the window that announcement holds (ranker.sources.days), each dated `day`, announce
    types new / cross relative to `categories`. A Saturday or Sunday yields nothing and asks nothing (the
    report's feed_date says which day it was); a day not announced yet is an InputError, asked nothing (the
    API holds none of its papers, or a part of them would be stored as the whole day)."""
    from datetime import datetime, timezone

    import arxiv

    from .days import FIRST, announced_at, is_announcement_day, submission_window
    from .net import NetPolicy, api_client, window_query_utc
    d = check_day(day, "date")
    if d < FIRST.isoformat():
        # the API's empty answer was asked again and again, then 'try again later' (year 1: a crash)
        raise InputError(f"{d} is before arXiv's first announcement ({FIRST}): there is no day to rebuild",
                         key="date")
    report = report if report is not None else ReadReport(source="arXiv API")
    report.source = report.source or "arXiv API"
    report.feed_date = d
    if not is_announcement_day(d):
        return iter(())
    cats = parse_list(categories, key="categories") if categories else list(DEFAULT_CATEGORIES)
    ann = parse_list(announce, key="announce", allowed=ANNOUNCE_TYPES) if announce else list(DEFAULT_ANNOUNCE)
    start, end = submission_window(d)
    if announced_at(d) > datetime.now(timezone.utc):
        # the window still open (or to come), or closed and not announced (14:00 to 20:00 US Eastern: the API
        # holds none of it yet, and its empty answer was asked again and again, then "try again later")
        raise InputError(f"{d} is not announced yet: its announcement holds the submissions until "
                         f"{end:%Y-%m-%d %H:%M} UTC (14:00 US Eastern), announced at {announced_at(d):%Y-%m-%d %H:%M} "
                         "UTC (20:00 US Eastern)", key="date")
    policy = policy or NetPolicy()
    client = api_client(policy=policy, warn=warn, page_size=500)
    search = arxiv.Search(query=window_query_utc(start, end, cats), max_results=None,
                          sort_by=arxiv.SortCriterion.SubmittedDate, sort_order=arxiv.SortOrder.Ascending)
    return filter_papers(_results_to_papers(_never_empty(client, search, policy, d, cats), "arXiv API", report, d),
                         categories=cats, announce=ann, report=report, buffered=True)


def _never_empty(client, search, policy: "NetPolicy", day: str, cats: list[str]) -> Iterator:
    """The results of a weekday's submission window. A weekday window is never empty (even before a holiday,
    papers are submitted), but the API is known to answer an empty feed for a while: the client asks an empty
    first page again (ranker.sources.net, the policy's retries and backoff) before believing it, and here a
    FetchError says it kept doing so: a cron job must not take the day for a holiday and skip it."""
    results = iter(client.results(search))
    try:
        head = next(results)
    except StopIteration:
        raise FetchError(f"the arXiv API answered no paper for {day}'s submission window {client.empty_tries} "
                         f"times ({', '.join(cats)}; it sometimes answers empty for a while): try again later",
                         where=policy.api_url) from None
    yield head
    yield from results


def fetch_window(since: str, until: str | None = None, categories: list[str] | str | None = None,
                 announce: list[str] | str | None = None, date: str | None = None, *,
                 report: ReadReport | None = None, policy=None, warn: Warn | None = None,
                 max_results: int | None = None, progress: Progress | None = None) -> Iterator[Paper]:
    """Papers submitted between `since` and `until` (YYYY-MM-DD, inclusive; until defaults to today, days.today) in
    `categories`, from the arXiv API, oldest first: for backfills. A paper's day is its first version's
    submission day unless `date` is given. Every page is read before the first paper is given (as
    fetch_announced does): a window is many pages apart by the API's delay, and a caller storing the papers in
    one transaction (ranker.sources.ingest) must not hold the database's write lock across them. `progress`
    hears of the results read while the pages come."""
    import arxiv

    from .days import today
    from .net import api_client, window_query
    s = check_day(since, "since")
    if until:
        u = check_day(until, "until")
        if u < s:
            raise InputError(f"{u} is before the first day, {s}", key="until")
    else:
        u = today()
        if u < s:
            # the window ends today: the day was not given, and naming it sent the user after a flag not used
            raise InputError(f"{s} is after today ({u}): nothing submitted then can be asked for yet", key="since")
    cats = parse_list(categories, key="categories") if categories else list(DEFAULT_CATEGORIES)
    ann = parse_list(announce, key="announce", allowed=ANNOUNCE_TYPES) if announce else None
    day = check_day(date) if date else None
    report = report if report is not None else ReadReport(source="arXiv API")
    report.source = report.source or "arXiv API"
    client = api_client(policy=policy, warn=warn, page_size=500)
    search = arxiv.Search(query=window_query(s, u, cats), max_results=max_results,
                          sort_by=arxiv.SortCriterion.SubmittedDate, sort_order=arxiv.SortOrder.Ascending)
    return filter_papers(_results_to_papers(client.results(search), "arXiv API", report, day, progress),
                         categories=cats, announce=ann, report=report, buffered=True)

