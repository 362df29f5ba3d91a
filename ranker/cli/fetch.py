"""`ranker fetch`: read or download a day's papers, store them, write them as JSONL."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import (ConfigOpt, DbOpt, EmbedderOpt, MaxTokensOpt, OfflineOpt, apply_offline, info,
                     progress_enabled)

EXAMPLES = """
Examples:

  ranker fetch --out papers.jsonl   (today's announcements, online)

  ranker fetch --from arxiv_rss_2024-11-28.xml --category cs.LG,cs.AI --out papers.jsonl

  ranker fetch --from arxiv-metadata-oai-snapshot.json --category cs.LG --date 2025-05-13 --out day.jsonl

  ranker fetch --ids 2411.17700,2411.17702v2 --out some.jsonl

  ranker fetch --since 2025-05-12 --until 2025-05-13 --out backfill.jsonl

  ranker fetch --from arxiv-metadata-oai-snapshot.json --embed --out corpus.jsonl   (index years of arXiv once)
"""


def fetch(
    out: Annotated[Path, typer.Option("--out", help="Where to write the papers (JSON lines, written atomically).")],
    from_: Annotated[Optional[str], typer.Option(
        "--from", help="A file or URL to read instead of today's feed: arXiv RSS or Atom XML, an arXiv metadata "
        "snapshot (JSON lines, may be .gz) or papers JSONL.", show_default=False)] = None,
    category: Annotated[Optional[str], typer.Option(
        "--category", help="Comma-separated arXiv categories; a paper is kept when any of its categories is "
        "listed (default: cs.LG,cs.AI).", show_default=False)] = None,
    announce: Annotated[Optional[str], typer.Option(
        "--announce", help="Announce types to keep, comma-separated: new, cross, replace, replace-cross "
        "(default: new,cross).", show_default=False)] = None,
    ids: Annotated[Optional[str], typer.Option(
        "--ids", help="Comma-separated arXiv ids: fetch their metadata from the arXiv API.",
        show_default=False)] = None,
    since: Annotated[Optional[str], typer.Option(
        "--since", help="First submission day (YYYY-MM-DD) of an arXiv API window, for backfills.",
        show_default=False)] = None,
    until: Annotated[Optional[str], typer.Option(
        "--until", help="Last submission day of the window (YYYY-MM-DD; default: today).",
        show_default=False)] = None,
    date: Annotated[Optional[str], typer.Option(
        "--date", help="Use this announcement day (YYYY-MM-DD) for every paper instead of the one the source "
        "gives.", show_default=False)] = None,
    embed: Annotated[bool, typer.Option(
        "--embed", help="Also embed every paper written (in chunks, into the database: memory stays bounded "
        "whatever the input's size) and bring the corpus index up to date, for `ranker similar` and novelty "
        "context.")] = False,
    embedder: EmbedderOpt = None,
    max_tokens: MaxTokensOpt = None,
    db: DbOpt = None,
    offline: OfflineOpt = False,
    config: ConfigOpt = None,
) -> None:
    """Fetch a day's papers: from arXiv's RSS feed (default), a saved file (--from), the arXiv API (--ids,
    --since/--until). Papers go into the database and into --out as JSON lines; a one-line summary goes to
    stderr. A day without announcements writes an empty file and says so.
    """
    from .. import config as cfgmod
    from ..errors import InputError
    from ..sources import ReadReport, fetch_ids, fetch_today, fetch_window, read_papers
    from ..sources.common import parse_list
    from ..sources.ingest import ingest, summary_line
    from ..sources.net import NetPolicy, rss_feed_url
    from ..store import Store

    apply_offline(offline)
    cfg = cfgmod.load_config(config)
    modes = [name for name, given in (("--from", from_), ("--ids", ids), ("--since", since)) if given]
    if len(modes) > 1:
        raise InputError(f"use only one of {', '.join(modes)}", where=modes[1])
    if until and not since:
        raise InputError("--until needs --since", where="--until")
    cats = parse_list(category, flag="--category") if category else list(cfg.fetch.categories)
    if not cats:
        raise InputError("no category given", where="--category")
    from ..sources.common import ANNOUNCE_TYPES
    ann = parse_list(announce, flag="--announce", allowed=ANNOUNCE_TYPES) if announce else list(cfg.fetch.announce)
    policy = NetPolicy.from_config(cfg.fetch)
    report = ReadReport()
    common = dict(report=report, offline=offline or None, policy=policy, notify=info)

    if ids:
        papers = fetch_ids(ids.split(","), categories=cats, date=date, **common)
        source = "the arXiv API"
    elif since:
        papers = fetch_window(since, until, cats, ann, date, **common)
        source = "the arXiv API"
    elif from_:
        papers = read_papers(from_, cats, ann, date, **common)
        source = from_
    else:
        papers = fetch_today(cats, ann, date, **common)
        source = rss_feed_url(cats)

    embedded = None
    with Store(cfgmod.db_path(db)) as store:
        with _Counter() as progress:
            res = ingest(papers, out, store=store, progress=progress)
        if embed and res.written:
            embedded = _embed(out, store, embedder or cfg.prefilter.embedder, max_tokens)

    for note in report.notes():
        info(note)
    if res.written == 0:
        if report.seen == 0:
            day = f" on {date or report.feed_date}" if (date or report.feed_date) else ""
            info(f"no announcements{day} in {source} (a weekend or holiday?): wrote an empty {out}")
        else:
            info(f"0 of {report.seen} papers in {source} match {','.join(cats)} / {','.join(ann)}: "
                 f"wrote an empty {out}")
        return
    info(summary_line(res, report))
    if embedded:
        info(embedded)


def _embed(papers_file: Path, store, embedder: str, max_tokens: int | None) -> str:
    """Embed the papers just written (streamed back from the file) and sync the corpus index; the summary."""
    from ..index import embed_corpus
    from ..prefilter.embed import Embedder
    from ..sources import read_papers
    with _Counter("embedding papers") as progress:
        r = embed_corpus(read_papers(papers_file), store, Embedder(embedder, max_tokens=max_tokens),
                         progress=progress, warn=info)
    skipped = f"; {r.skipped} without title or abstract skipped" if r.skipped else ""
    return (f"embedded {r.embedded:,} of {r.papers:,} papers ({r.papers - r.embedded:,} already stored){skipped}"
            f"; index: {r.sync.count:,} vectors ({'exact' if r.sync.kind == 'flat' else 'approximate (IVF)'})")


class _Counter:
    """A spinner with a running count on a terminal; nothing elsewhere."""

    def __init__(self, what: str = "reading papers"):
        self._what = what
        self._shown = 0
        self._bar = None
        self._task = None

    def __enter__(self):
        if progress_enabled():
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
            self._bar = Progress(SpinnerColumn(), TextColumn(self._what + ": {task.completed}"),
                                 TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self._bar.__enter__()
            self._task = self._bar.add_task("read", total=None)
        return self

    def __call__(self, n: int) -> None:
        if self._bar is not None and (n % 200 == 0 or n - self._shown >= 200):
            self._shown = n
            self._bar.update(self._task, completed=n)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.__exit__(*exc)


def register(app: typer.Typer) -> None:
    import inspect
    app.command("fetch", help=inspect.cleandoc(fetch.__doc__ or "") + "\n" + EXAMPLES)(fetch)
