"""`ranker site`: the store's pages as static HTML (archive, months, days, papers, search), for GitHub Pages or
any file server, and readable straight from disk (file://): every link is relative, and search runs in the page
over an index written as a script (static/search-index.js), since browsers refuse to fetch() files from disk.

No feedback buttons and no labels: the site is for publishing. Rebuilding is idempotent: a page whose content
did not change is not written again (its mtime stays), so only the days that changed are rewritten. New pages go
in before the pages that link to them (see _Writer): a rebuild stopped halfway leaves no link to a missing page.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..io import atomic_file, atomic_write
from ..sources.normalize import PLAIN_LETTERS
from ..store import Store
from . import views
from .render import STATIC, SiteUrls, paper_file, render
from .search import corpus_similar_many

STATIC_FILES = ("style.css", "site.js")
_TEMPORARY = re.compile(r"^\..+\.[0-9a-f]{8}\.tmp$")          # ranker.io.atomic_file's temporary files
# What a site puts in its folder (the folders hold pages of its own only); a folder that holds any of these and is
# not a site ranker wrote is not written into. MARKER goes in first, so even a first build stopped halfway is
# known as a site by the next one.
OWN = ("index.html", "search.html", "static", "days", "months", "papers")
FOLDERS = ("static", "days", "months", "papers")
MARKER = ".ranker-site"


@dataclass
class SiteResult:
    out: Path
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    days: int = 0
    papers: int = 0

    @property
    def pages(self) -> int:
        return len(self.written) + self.unchanged

    def summary(self) -> str:
        return (f"site: {self.days} days, {self.papers} papers; {len(self.written)} files written, "
                f"{self.unchanged} unchanged -> {self.out / 'index.html'}")


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

    def write(self, rel: str, content: str | bytes) -> None:
        """Write the file, unless it already holds exactly this content (then it is left alone)."""
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
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a folder", where=str(out))
    _refuse_others(out)
    res = SiteResult(out=out)
    w = _Writer(out, res)
    if out.is_dir():                         # what a killed build left: temporary files are never published
        for folder in (out, *(out / f for f in FOLDERS)):       # only where the site writes: not .git, not ~
            for tmp in folder.glob(".*.tmp") if folder.is_dir() else ():
                if _TEMPORARY.match(tmp.name) and tmp.is_file():
                    tmp.unlink(missing_ok=True)
    if not (out / MARKER).is_file():
        atomic_write(out / MARKER, "A site written by `ranker site`: a rebuild writes over its pages.\n")
    try:
        _write_pages(store, w, similar)
        w.finish()
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

    if similar is None:
        # twice as many: room for the neighbours left out below
        near = corpus_similar_many(store, sorted(index), 2 * views.SIMILAR_K)

        def similar(_store, pid, _k):
            return near.get(pid, [])
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
    # `letters`: what serve's word search folds besides accents (Ł as L, ß as ss), for site.js to fold alike.
    data = json.dumps({"papers": rows, "letters": PLAIN_LETTERS}, ensure_ascii=True, separators=(",", ":"))
    w.write("static/search-index.js", "window.RANKER_SEARCH = " + data.replace("<", "\\u003c") + ";\n")
    w.write("search.html", render("search.html", urls=SiteUrls(0), q="", mode="", used="", rows=[],
                                  semantic=False, embedder="", note=""))
    w.write("index.html", render("archive.html", urls=SiteUrls(0), groups=groups, up=0, down=0))
