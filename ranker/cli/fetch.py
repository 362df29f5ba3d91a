"""`ranker fetch`: read or download a day's papers, store them, write them as JSONL."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (AnnounceOpt, CategoryOpt, ConfigOpt, DbOpt, EmbedderOpt, MaxTokensOpt, OfflineOpt, Progress,
                     QuietOpt, VerboseOpt, check_out, flag_name, given_path, in_shown, index_said, info, load_settings,
                     not_empty, nothing_kept, nothing_to_do, out_path, out_shown, warn, warn_categories, warn_date,
                     warn_read, wrote_empty)

EXAMPLES = """
\b
Examples:
  ranker fetch --out papers.jsonl        (today's announcements, online)
  ranker fetch --date 2025-05-13 --out day.jsonl   (a past day's announcements, rebuilt through the arXiv API)
  ranker fetch --from arxiv_rss_2024-11-28.xml --category cs.LG,cs.AI --out papers.jsonl
  ranker fetch --from saved_listing.jsonl --date 2025-05-13 --out day.jsonl   (label an undated file's day)
  ranker fetch --ids 2411.17700,2411.17702v2 --out some.jsonl
  ranker fetch --since 2025-05-12 --until 2025-05-13 --out backfill.jsonl
  ranker fetch --from arxiv-metadata-oai-snapshot.json --embed --out corpus.jsonl   (index years of arXiv once)
"""


def fetch(
    out: Annotated[Path, typer.Option("--out", help="Where to write the papers (JSON lines, written atomically; "
                                      "'-' for stdout).", parser=given_path)],
    from_: Annotated[Optional[str], typer.Option(
        "--from", help="A file or URL to read instead of today's feed: arXiv RSS or Atom XML, an arXiv metadata "
        "snapshot (JSON lines, may be .gz) or papers JSONL; '-' for stdin.", show_default=False)] = None,
    category: CategoryOpt = None, announce: AnnounceOpt = None,
    ids: Annotated[Optional[str], typer.Option(
        "--ids", help="Comma-separated arXiv ids: fetch their metadata from the arXiv API.",
        show_default=False)] = None,
    since: Annotated[Optional[str], typer.Option(
        "--since", help="First submission day (YYYY-MM-DD, in UTC, as arXiv dates submissions) of an arXiv API "
        "window, for backfills.",
        show_default=False)] = None,
    until: Annotated[Optional[str], typer.Option(
        "--until", help="Last submission day of the window (YYYY-MM-DD, in UTC; default: today, the later of "
        "this machine's day and UTC's).",
        show_default=False)] = None,
    date: Annotated[Optional[str], typer.Option(
        "--date", help="Use this announcement day (YYYY-MM-DD) for every paper instead of the one the source "
        "gives; without --from, --ids or --since: that day's announcements, rebuilt through the arXiv API (as "
        "`ranker run --date`).", show_default=False)] = None,
    embed: Annotated[bool, typer.Option(
        "--embed", help="Also embed every paper written (in chunks, into the database: memory stays bounded "
        "whatever the input's size) and bring the corpus index up to date, for `ranker similar` and the novelty "
        "context.")] = False,
    embedder: EmbedderOpt = None,
    max_tokens: MaxTokensOpt = None,
    db: DbOpt = None,
    offline: OfflineOpt = None,
    config: ConfigOpt = None,
    verbose: VerboseOpt = False, quiet: QuietOpt = False,
) -> None:
    """Fetch a day's papers: from arXiv's RSS feed (default), a saved file (--from), the arXiv API (--ids,
    --since/--until). Papers go into the database and into --out as JSON lines; a one-line summary goes to
    stderr. A day without announcements writes an empty file and says so.
    """
    from ..errors import InputError
    from ..io import is_loopback_url
    from ..sources import ReadReport
    from ..sources.ingest import summary_line
    from ..steps import fetch_day
    from ..store import Store

    not_empty(from_=from_, ids=ids, since=since, until=until, date=date)
    s = load_settings(config, verbose=verbose, quiet=quiet, category=category, announce=announce, embedder=embedder,
                      max_tokens=max_tokens, db=db, offline=offline)
    warn_categories(s)
    check_out(out)
    if embed and not _regular_file(out):
        raise InputError("--embed reads the papers back from --out: give a file, not a device or a pipe",
                         key="out")
    modes = [name for name, given in (("from_", from_), ("ids", ids), ("since", since)) if given]
    if len(modes) > 1:
        raise InputError(f"use only one of {', '.join(flag_name(m) for m in modes)}", key=modes[1])
    if until and not since:
        raise InputError("--until needs --since", key="until")
    labelled = None
    if date and modes:          # labels the papers read; without a source a day not announced yet is refused
        from ..sources.filters import check_day
        labelled = check_day(date, "date")
    if s.offline and not from_ and not is_loopback_url(s.fetch.api_url if modes or date else s.fetch.rss_url):
        what = (f"{flag_name(modes[0])} asks arXiv's API server" if modes else
                "the day's announcements are on arXiv's server" if date else "today's feed is on arXiv's server")
        raise InputError(f"offline mode: {what}; read a saved file with --from FILE instead", key="offline")
    report = ReadReport()
    with Store(s.db_path) as store, Progress(out) as progress:
        # recorded as a run, so a command waiting on the database it holds can name it
        with store.recording("fetch", {"from": str(from_ or ""), "ids": ids, "since": since, "until": until,
                                       "embed": embed}) as rec:
            day = fetch_day(from_, s, store=store, out=out_path(out), date=date, ids=ids.split(",") if ids else None,
                            since=since, until=until, keep=False, report=report, progress=progress, warn=warn,
                            name=in_shown(from_) if from_ else None)
            rec.summary = {"papers": day.stored.written, "new": day.stored.stored_new}
            embedded = _embed(out, store, s, progress) if embed and day.stored.written else None
    res, source, cats, ann = day.stored, day.source, s.fetch.categories, s.fetch.announce
    res.out = out_shown(out)            # as the user named it (stdout for '-', not the descriptor written to)

    warn_read(report)
    if labelled:
        warn_date(labelled, report)
    if res.written == 0:
        if report.seen == 0:
            day = f" on {date or report.feed_date}" if (date or report.feed_date) else ""
            nothing_to_do(f"no announcements{day} in {source} (a weekend or holiday?); {wrote_empty(out)}")
        else:
            nothing_kept(f"0 of {report.seen} papers in {source} match {','.join(cats)} / {','.join(ann)}; "
                         f"{wrote_empty(out)}")
        return
    info(summary_line(res, report))
    if embedded:
        info(embedded)


def _regular_file(path: Path) -> bool:
    import stat
    if str(path) == "-":
        return False
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except FileNotFoundError:
        return True                    # written as a regular file
    except OSError:
        return False


def _embed(papers_file: Path, store, s, progress) -> str:
    """Embed the papers just written (streamed back from the file, a chunk at a time) and sync the corpus
    index; the summary line."""
    from ..index import embed_corpus
    from ..index.kinds import label
    from ..io import counted
    from ..prefilter.embed import Embedder
    from ..sources import read_papers
    emb = Embedder.from_settings(s)
    r = embed_corpus(read_papers(papers_file), store, emb, progress=progress, warn=index_said)
    skipped = f"; {r.skipped:,} without title or abstract skipped" if r.skipped else ""
    if r.sync is None:
        index = "index not updated"
    else:
        index = f"index ({emb.key}): {counted(r.sync.count, 'vector')}, {label(r.sync.kind)}"
    return (f"embedded {r.embedded:,} of {counted(r.papers, 'paper')} ({r.papers - r.embedded:,} already stored)"
            f"{skipped}; {index}")


def register(app: typer.Typer) -> None:
    import inspect
    app.command("fetch", short_help="Fetch a day's papers into the database and a JSONL file.",
                help=inspect.cleandoc(fetch.__doc__ or "") + "\n" + EXAMPLES)(fetch)
