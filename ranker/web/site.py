"""`ranker site`: the store's pages as static HTML (archive, months, days, papers, search), for GitHub Pages or
any file server, and readable straight from disk (file://): every link is relative, and search runs in the page
over an index written as a script (static/search-index.js), since browsers refuse to fetch() files from disk.

No feedback buttons and no labels: the site is for publishing. Rebuilding is idempotent: a page whose content
did not change is not written again (its mtime stays), so only the days that changed are rewritten. New pages go
in before the pages that link to them (see _Writer): a rebuild stopped halfway leaves no link to a missing page.
The pages of an earlier build that this one no longer has go last (_Writer.remove_stale).
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..io import atomic_file, atomic_write, counted
from ..store import Store
from . import views
from .render import STATIC, SiteUrls, paper_file, render
from .search import corpus_similar_many

STATIC_FILES = ("style.css", "site.js")
_TEMPORARY = re.compile(r"^\.(.+)\.[0-9a-f]{8}\.tmp$")        # ranker.io.atomic_file's temporary files
# What a site puts in its folder (the folders hold pages of its own only); a folder that holds any of these and is
# not a site ranker wrote is not written into. MARKER goes in first, so even a first build stopped halfway is
# known as a site by the next one.
OWN = ("index.html", "search.html", "static", "days", "months", "papers")
FOLDERS = ("static", "days", "months", "papers")
MARKER = ".ranker-site"
ROOT_FILES = ("index.html", "search.html", MARKER)      # the files the site writes in DIR itself
PAGES = ("days", "months", "papers")           # one page per day, month and paper: the pages that can go stale
SIGNED = b"A static copy made by <code>ranker site</code>."      # every page's footer (base.html)


@dataclass
class SiteResult:
    out: Path
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)     # pages of an earlier build that the site no longer has
    days: int = 0
    papers: int = 0

    @property
    def pages(self) -> int:
        return len(self.written) + self.unchanged

    def summary(self) -> str:
        gone = f", {len(self.removed)} removed" if self.removed else ""
        return (f"site: {counted(self.days, 'day')}, {counted(self.papers, 'paper')}; "
                f"{counted(len(self.written), 'file')} written, "
                f"{self.unchanged} unchanged{gone} -> {self.out / 'index.html'}")


class _Writer:
    """Writes the site in two rounds, so that a rebuild stopped anywhere (Ctrl-C, a full disk, an error) leaves
    every page a visitor can reach from index.html whole: first the files that do not exist yet, which no page
    links to (index.html, new on a first build, comes last); then the existing files whose content changed, which
    may link to the new ones: written beside their old selves as they come, renamed over them in finish()."""

    def __init__(self, out: Path, result: SiteResult):
        self.out = out
        self.result = result
        self.renames: list[tuple[Path, Path]] = []      # (temporary file, the page it replaces)
        self.changed: list[str] = []
        self.site: set[str] = set()                       # every file of this build, written or not
        self.began = time.time()

    def write(self, rel: str, content: str | bytes) -> None:
        """Write the file, unless it already holds exactly this content (then it is left alone)."""
        self.site.add(rel)
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = self.out / rel
        if _holds(path, data):
            self.result.unchanged += 1
        elif path.is_file():
            with atomic_file(path, "wb", renames=self.renames) as f:
                f.write(data)
            self.changed.append(rel)
        else:
            atomic_write(path, data)
            self.result.written.append(rel)

    def finish(self) -> None:
        """Put the changed files in place."""
        for (tmp, target), rel in zip(self.renames, self.changed):
            try:
                os.replace(tmp, target)
            except OSError as e:
                raise InputError(f"cannot write: {e.strerror or e}", where=str(target)) from None
            self.result.written.append(rel)
        self.renames, self.changed = [], []

    def remove_stale(self) -> None:
        """Remove the pages an earlier build wrote that this one did not: a paper no longer on any day (its day
        run again on fewer papers) or a day the store does not have (a site built again from another database)
        kept its old page, scores and all, on the published site. After finish(): no page of this build links
        to them. Only pages the site wrote (their footer) go; a file of the user's in those folders stays."""
        for folder in PAGES:
            there = self.out / folder
            for page in sorted(there.glob("*.html")) if there.is_dir() else ():
                rel = f"{folder}/{page.name}"
                if rel in self.site or page.is_symlink() or not page.is_file():
                    continue
                try:
                    # a page written since this build began is another build's, run at the same time on a
                    # newer state of the store (a day stored meanwhile), whose pages may link to it: kept
                    if page.stat().st_mtime >= self.began or SIGNED not in page.read_bytes():
                        continue
                    page.unlink()
                except FileNotFoundError:
                    continue
                except OSError as e:
                    raise InputError(f"cannot remove this page, which the site no longer has: {e.strerror or e}",
                                     where=str(page)) from None
                self.result.removed.append(rel)

    def discard(self) -> None:
        """Remove the temporary files of changed pages that were not put in place (after a failure)."""
        for tmp, _ in self.renames:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False            # unreadable: written again (atomic_write names the path if that fails too)


def build_site(store: Store, out: str | Path, *, similar=None) -> SiteResult:
    """Every page as static HTML under `out`, writing only the files whose content changed. `similar`: the
    paper pages' similar papers, (store, id, k) -> [(id, cosine)]; default the corpus index, searched once for
    every paper (corpus_similar_many)."""
    out = Path(out).expanduser()                 # as every command's output folder (io.output_dir)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", where=str(out), key="out")
    _refuse_others(out)
    res = SiteResult(out=out)
    w = _Writer(out, res)
    if out.is_dir():                         # what a killed build left: temporary files are never published
        for folder in (out, *(out / f for f in FOLDERS)):       # only where the site writes: not .git, not ~
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                m = _TEMPORARY.match(tmp.name)
                # in DIR itself, only those of the site's own files: DIR may be another command's output
                # folder too (`ranker run --out DIR`), whose file being written is not the site's to remove
                if m and (folder != out or m.group(1) in ROOT_FILES) and tmp.is_file():
                    tmp.unlink(missing_ok=True)
    if not (out / MARKER).is_file():
        atomic_write(out / MARKER, "A site written by `ranker site`: a rebuild writes over its pages.\n")
    if similar is None:
        # the corpus index is searched before the snapshot below: inside it, an index that another process (a
        # run) brought up to the store since would look ahead of the store, and be built again
        near = corpus_similar_many(store, _day_paper_ids(store), 2 * views.SIMILAR_K)   # 2x: room (see below)

        def similar(_store, pid, _k):
            return near.get(pid, [])
    try:
        # one state of the store for every page: a `ranker run` storing a day while the pages were read put it in
        # the archive and month lists (read last) though its page was never written, a link to nothing
        with store.read_snapshot():
            _write_pages(store, w, similar)
        w.finish()
        w.remove_stale()
    finally:
        w.discard()
    return res


def _refuse_others(out: Path) -> None:
    """An InputError when `out` holds a file or folder of the site's names and is not a site ranker wrote (its
    MARKER, or, from before sites were marked, its search index): `ranker site --out .` in a folder of one's own
    wrote over its index.html. Other files (a repository's README, .git) stay beside the site."""
    if not out.is_dir() or (out / MARKER).is_file():
        return
    try:
        with open(out / "static" / "search-index.js", "rb") as f:
            if f.read(22) == b"window.RANKER_SEARCH =":
                return
    except OSError:
        pass
    clash = [name for name in OWN if os.path.lexists(out / name)]
    if clash:
        raise InputError(f"holds {', '.join(clash)}, and is not a site ranker wrote; choose a new folder, an empty "
                         "one, or one holding a site of ranker's", where=str(out))


def _day_paper_ids(store: Store) -> list[str]:
    """The papers of every day, as the day pages list them (its ranking, else the day's papers)."""
    ids: set[str] = set()
    for day in store.days():
        ids.update([r.paper_id for r in store.get_rankings(day)] or store.day_paper_ids(day))
    return sorted(ids)


def _write_pages(store: Store, w: _Writer, similar) -> None:
    res = w.result
    for name in STATIC_FILES:
        w.write(f"static/{name}", (STATIC / name).read_bytes())

    index: dict[str, list] = {}              # every paper of the site: the search index's rows
    days = store.days()
    day_pages = []
    for day in days:
        dp = views.day_page(store, day, with_labels=False, all_days=days, plots_too=False)
        if dp is None:
            continue
        day_pages.append(day)
        for row in dp.picks + dp.rest:            # a paper on several days: its latest day
            index[row.paper.id] = [row.paper.id, row.paper.title, day, row.topic, int(row.picked),
                                   f"papers/{paper_file(row.paper.id)}", " ".join(row.paper.abstract.split())]

    found = similar

    def similar_in_site(st, pid, k):
        """Only papers with a page here: the corpus index also holds papers on no day, which have none."""
        return [(i, sim) for i, sim in found(st, pid, k) if i in index]

    for pid in sorted(index):
        pp = views.paper_page(store, pid, similar=similar_in_site, with_labels=False)
        if pp is not None:
            res.papers += 1
            w.write(f"papers/{paper_file(pid)}", render("paper.html", urls=SiteUrls(1), page=pp))
    # each day page is read again here, with its plots, rather than held from the first pass: a site of years
    # would hold every day's rows at once (the first pass keeps only the search index's rows)
    for day in day_pages:
        res.days += 1
        w.write(f"days/{day}.html", render("day.html", urls=SiteUrls(1),
                                           page=views.day_page(store, day, with_labels=False, all_days=days)))
    groups = views.archive(store)
    for g in groups:
        mp = views.month_page(store, g.month, groups)
        if mp is not None:
            w.write(f"months/{g.month}.html", render("month.html", urls=SiteUrls(1), page=mp))

    rows = sorted(index.values(), key=lambda r: (r[2], r[0]), reverse=True)
    # A script, not a .json file: pages opened from disk may not fetch() a file next to them. '<' only occurs
    # inside JSON strings, where \u003c means the same: no paper's text can look like markup, even if inlined.
    w.write("static/search-index.js", "window.RANKER_SEARCH = " + json.dumps(
        {"papers": rows}, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c") + ";\n")
    w.write("search.html", render("search.html", urls=SiteUrls(0), q="", mode="", used="", rows=[],
                                  semantic=False, embedder="", note=""))
    w.write("index.html", render("archive.html", urls=SiteUrls(0), groups=groups, up=0, down=0))
