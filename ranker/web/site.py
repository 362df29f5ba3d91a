"""`ranker site`: the store's pages as static HTML (archive, months, days, papers, search), for GitHub Pages or
any file server, and readable straight from disk (file://): every link is relative, and search runs in the page
over an index written as scripts, since browsers refuse to fetch() files from disk: one a month
(static/search/2025-07.js: its papers), which the search page loads as it searches, and static/search/index.js,
which names them. So no file grows past a month's papers, and a new day rewrites only its month's (and the list).

No feedback buttons, no labels, no exclusion rule's text (views.public_rule): the site is for publishing.
Rebuilding is idempotent: a page whose content did not change is not written again (its mtime stays), so only the
days that changed are rewritten. New pages go in before the pages that link to them (see _Writer): a rebuild
stopped halfway leaves no link to a missing page.
The pages of an earlier build that this one no longer has go last (_Writer.remove_stale).
A day's and a paper's page is neither rendered nor read back when what it renders is what it rendered last time
and its file is as that build left it: STATE keeps, per page, a digest of its page object (everything the template
shows of the store), the site's own version (templates, the web code, Jinja2) and the file's stat as written. A
daily rebuild so renders the new day's pages, the pages that changed with it and the lists, not the whole history.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..errors import InputError, RankerError
from ..io import (arxiv_id, atomic_file, atomic_write, check_output_dir, counted, json_loads, lock_exclusive,
                  read_regular)
from ..sources.normalize import PLAIN_LETTERS
from ..store import Store
from . import views
from .render import STATIC, SiteUrls, paper_file, public_name, render
from .search import INDEX_UNUSABLE, Neighbours, corpus_similar_many

STATIC_FILES = ("style.css", "site.js")
_TEMPORARY = re.compile(r"^\.(.+)\.[0-9a-f]{8}\.tmp$")        # ranker.io.atomic_file's temporary files
# What a site puts in its folder (the folders hold pages of its own only); a folder that holds any of these and is
# not a site ranker wrote is not written into. MARKER goes in first, so even a first build stopped halfway is
# known as a site by the next one.
OWN = ("index.html", "search.html", "static", "days", "months", "papers")
FOLDERS = ("static", "static/search", "days", "months", "papers")
MARKER = ".ranker-site"
# per page the digest of what it renders and its file's stat as written (see _Writer.page): a rebuild skips a page
# whose both are as they were
STATE = ".ranker-site-pages"
ROOT_FILES = ("index.html", "search.html", MARKER, STATE)      # the files the site writes in DIR itself
SIGNED = b"A static copy made by <code>ranker site</code>."      # every page's footer (base.html)
INDEXED = b"window.RANKER_SEARCH"     # how every search index script begins, today's and the one-file index's
# The files that can go stale, (folder, pattern, what each begins with or holds): a page per day, month and paper,
# the search index of a month, and the one index file of the sites built before the index was cut by month.
# Only files of the names the site gives (a user's own `papers/favourites.html`, saved from a page of the site,
# holds its footer too, and stays).
STALE = (("days", "*.html", SIGNED), ("months", "*.html", SIGNED), ("papers", "*.html", SIGNED),
         ("static/search", "*.js", INDEXED), ("static", "search-index.js", INDEXED))
_DAY_PAGE = re.compile(r"^\d{4}-\d{2}-\d{2}\.html$")
_MONTH_FILE = re.compile(r"^\d{4}-\d{2}\.(html|js)$")


def _named_by_the_site(folder: str, name: str) -> bool:
    """Whether `name` is one the site gives a file of `folder`: a day's page, a month's page or search index, a
    paper's page (an arXiv id's, as paper_file names it)."""
    if folder == "days":
        return bool(_DAY_PAGE.match(name))
    if folder in ("months", "static/search"):
        return bool(_MONTH_FILE.match(name))
    if folder == "papers":
        pid = arxiv_id(name[:-len(".html")].replace("_", "/"))
        return pid is not None and paper_file(pid) == name
    return True                                        # static/search-index.js, named by STALE itself


@dataclass
class SiteResult:
    out: Path
    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    rendered: int = 0                                    # the pages rendered (the others were as they were)
    removed: list[str] = field(default_factory=list)     # pages of an earlier build that the site no longer has
    days: int = 0
    papers: int = 0
    notes: list[str] = field(default_factory=list)       # what the pages lack, and why

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
        self.folders: set[Path] = set()                   # the site's subfolders made sure of (real, not links)
        self.before = _read_state(out)                    # rel -> [digest, stat...] of the build before
        self.digests: dict[str, str] = {}                 # rel -> digest of what this build's page renders
        self.stamps: dict[str, list[int] | None] = {}     # rel -> its file's stat as this build left it

    def page(self, rel: str, digest: str, make: Callable[[], str]) -> None:
        """Write the page that make() renders, whose inputs hash to `digest` (page_digest), unless the build
        before rendered it from the same inputs and its file is still the one that build left (not edited, not
        replaced, not gone, not a link): then neither rendered nor read back."""
        path = self.out / rel
        self._real_folders(path.parent)
        self.digests[rel] = digest
        was, now = self.before.get(rel), _stamp(path)
        if was is not None and was[0] == digest and was[1:] == now:
            self.site.add(rel)
            self.result.unchanged += 1
            self.stamps[rel] = now
            return
        self.result.rendered += 1
        pending = len(self.changed)
        self.write(rel, make())
        if len(self.changed) == pending:      # written now, or left as it was (else: its stat once finish renames it)
            self.stamps[rel] = _stamp(path)

    def save_state(self) -> None:
        """Record each page's digest with its file's stat as this build left it (written, renamed into place by
        finish, or found as it was), for the next build; written only when it changed, so a build with nothing to
        do writes nothing. Not the stat at the end of the build: a page another program wrote meanwhile (a build
        not kept apart by the lock, an edit, a sync) was taken for this build's, and never written again."""
        state = {rel: [self.digests[rel], *st] for rel, st in self.stamps.items() if st is not None}
        if state == self.before:
            return
        path = self.out / STATE
        _clear_the_way(path, "the site's state")          # as a page's
        # a JSON line a page: a site kept in git (GitHub Pages) changes by the lines of the pages rendered, not
        # by one line of every page's (a year's site holds some 70,000)
        atomic_write(path, "".join(json.dumps([rel, *state[rel]], separators=(",", ":")) + "\n"
                                   for rel in sorted(state)))

    def write(self, rel: str, content: str | bytes) -> None:
        """Write the file, unless it already holds exactly this content (then it is left alone)."""
        self.site.add(rel)
        data = content.encode("utf-8") if isinstance(content, str) else content
        path = self.out / rel
        self._real_folders(path.parent)
        _clear_the_way(path, "the page")
        if _holds(path, data):
            self.result.unchanged += 1
        elif path.is_file():
            with atomic_file(path, "wb", renames=self.renames) as f:
                f.write(data)
            self.changed.append(rel)
        else:
            atomic_write(path, data)
            self.result.written.append(rel)

    def _real_folders(self, folder: Path) -> None:
        """A subfolder of the site (papers/, days/, ...) that is a symlink is replaced by a real, empty folder, as
        a link where a page goes is replaced by the page: the build never writes, nor removes stale pages, through
        it in a folder outside the site."""
        if folder == self.out or folder in self.folders:
            return
        self._real_folders(folder.parent)
        if folder.is_symlink():
            try:
                folder.unlink()
                folder.mkdir()
            except OSError as e:
                raise InputError(f"cannot replace this link with the site's folder: {e.strerror or e}",
                                 where=str(folder)) from None
        self.folders.add(folder)

    def finish(self) -> None:
        """Put the changed files in place."""
        for (tmp, target), rel in zip(self.renames, self.changed):
            try:
                os.replace(tmp, target)
            except OSError as e:
                raise InputError(f"cannot write: {e.strerror or e}", where=str(target)) from None
            self.result.written.append(rel)
            if rel in self.digests:
                self.stamps[rel] = _stamp(target)
        self.renames, self.changed = [], []

    def remove_stale(self) -> None:
        """Remove the pages an earlier build wrote that this one did not: a paper no longer on any day (its day
        run again on fewer papers) or a day the store does not have (a site built again from another database)
        kept its old page, scores and all, on the published site. After finish(): no page of this build links
        to them. So go a month's search index the site no longer has and the one-file index of older builds
        (static/search-index.js, a file past GitHub's limits in a few months). Only files the site wrote (a
        page's footer, an index's first words) go; a file of the user's in those folders stays."""
        for folder, pattern, mark in STALE:
            there = self.out / folder
            for page in sorted(there.glob(pattern)) if there.is_dir() and not there.is_symlink() else ():
                rel = f"{folder}/{page.name}"
                if rel in self.site or page.is_symlink() or not page.is_file() \
                        or not _named_by_the_site(folder, page.name):
                    continue
                try:
                    if not _marked(page, mark):
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


def _clear_the_way(path: Path, what: str) -> None:
    """A page or the state is the site's own file: a link or a FIFO, socket or device left in its place (by a
    hostile earlier build, or anyone who could write in the folder) is removed, so the file is written in its
    place: never written through a link to a file outside the site, nor into a FIFO (atomic_file writes a
    stream in place: the build waited for a reader forever). A folder there is atomic_file's error."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:                      # not there (or not to be looked at: atomic_file says why)
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    try:
        path.unlink()
    except OSError as e:
        kind = "link" if stat.S_ISLNK(mode) else "special file"
        raise InputError(f"cannot replace this {kind} with {what}: {e.strerror or e}", where=str(path)) from None


def _marked(path: Path, mark: bytes) -> bool:
    """Whether the file is one the site wrote: a page holds the footer, an index script begins with its name."""
    if mark == INDEXED:
        with open(path, "rb") as f:
            return f.read(len(mark)) == mark
    return mark in path.read_bytes()


def _stamp(path: Path) -> list[int] | None:
    """A page file's stat as STATE keeps it: any write, replacement or edit by hand changes it (ctime cannot be
    set back); None for what is not a regular file (gone, a link, a folder)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns]


def _read_state(out: Path) -> dict[str, list]:
    """The STATE of the build before; {} when there is none or it cannot be read (every page is rendered then)."""
    path = out / STATE
    try:
        if path.is_symlink() or not path.is_file():
            return {}
        # json_loads: a line nested past the parser's depth ('[[[[...', damaged or hostile) is bad JSON too (it
        # raised RecursionError, and the build died 'unexpected failure')
        rows = [json_loads(line) for line in path.read_bytes().splitlines()]
    except (OSError, ValueError):
        return {}
    return {r[0]: r[1:] for r in rows if isinstance(r, list) and len(r) == 6 and isinstance(r[0], str)}


_VERSION: str | None = None


def site_version() -> str:
    """A digest of everything besides a page's own object that its HTML depends on: the templates, the web
    code (render's filters, the security policy, the views), the records the page objects are made of (the
    templates call their properties: Paper.url), ranker's and Jinja2's versions. A page of a build with another
    version is rendered again. (ranker's version alone does not tell: a checkout's code changes under one.)"""
    global _VERSION
    if _VERSION is None:
        import jinja2

        from .. import __version__, records
        from .render import TEMPLATES
        h = hashlib.sha256(f"ranker {__version__} jinja2 {jinja2.__version__}".encode())
        here = Path(__file__).parent
        for f in sorted([*TEMPLATES.iterdir(), *here.glob("*.py"), Path(records.__file__)]):
            if f.is_file():
                h.update(f"\0{f.name}\0".encode() + f.read_bytes())
        _VERSION = h.hexdigest()
    return _VERSION


def page_digest(template: str, depth: int, page) -> str:
    """The digest of what a page renders: its template at its depth, the site's version and its page object
    (plain dataclasses, whose repr holds every field the template can show)."""
    return hashlib.sha256(f"{site_version()}\0{template}\0{depth}\0{page!r}".encode("utf-8")).hexdigest()[:32]


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False            # unreadable: written again (atomic_write names the path if that fails too)


def build_site(store: Store, out: str | Path, *, similar=None, embedder: str | None = None,
               waiting: Callable[[], None] | None = None) -> SiteResult:
    """Every page as static HTML under `out`, writing only the files whose content changed. `similar`: the
    paper pages' similar papers, (store, id, k) -> [(id, cosine)]; default the corpus index, searched once for
    every paper (corpus_similar_many), the index of `embedder` (the configured embedder's key) first. `waiting` is
    called once, before this build waits for another one into `out` to end (see _one_build_at_a_time), so the
    caller can say why nothing happens."""
    out = Path(out).expanduser()                 # as every command's output folder (io.output_dir)
    check_output_dir(out)                        # a file there, a folder that cannot be made or written in
    _refuse_others(out)
    if not (out / MARKER).is_file():
        atomic_write(out / MARKER, "A site written by `ranker site`: a rebuild writes over its pages.\n",
                     own_name=True)
    with _one_build_at_a_time(out, waiting or (lambda: None)):
        return _build(store, out, similar, embedder)


@contextmanager
def _one_build_at_a_time(out: Path, waiting: Callable[[], None]) -> Iterator[None]:
    """An exclusive lock on the site's folder for the whole build (released when the process ends, however it
    ends): two builds at once (a cron job's and one by hand) removed each other's temporary files, the one not
    yet put in place failing, and a build of an older state of the store removed as stale the pages the other
    had just linked. The second waits for the first, calling `waiting` before it does."""
    if os.name != "posix":                   # no flock: builds are not kept apart
        yield
        return
    # the marker file, opened for writing: NFS emulates flock by byte-range locks, which an exclusive lock takes
    # only on a file open for writing (a folder opened read-only was refused there with EBADF)
    try:
        fd = os.open(out / MARKER, os.O_WRONLY | os.O_APPEND)
    except OSError:                          # a marker one may not write (copied read-only): unlocked
        fd = None
    try:
        if fd is not None:                   # a file system without locks: the build goes on unlocked
            lock_exclusive(fd, waiting, without_locks=True)
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _linked(out: Path, folder: Path) -> bool:
    """`folder` (out itself or below it), or a folder between it and out, is a symlink."""
    while folder != out and folder != folder.parent:
        if folder.is_symlink():
            return True
        folder = folder.parent
    return False


def _build(store: Store, out: Path, similar, embedder: str | None = None) -> SiteResult:
    res = SiteResult(out=out)
    w = _Writer(out, res)
    # what a killed build left: temporary files are never published
    for folder in (out, *(out / f for f in FOLDERS)):       # only where the site writes: not .git, not ~
        # nor through a folder that is a link (replaced by a real one when a page is written there): its
        # temporary files are another command's, in a folder outside the site
        for tmp in folder.glob(".*.tmp") if folder.is_dir() and not _linked(out, folder) else ():
            m = _TEMPORARY.match(tmp.name)
            # in DIR itself, only those of the site's own files: DIR may be another command's output
            # folder too (`ranker run --out DIR`), whose file being written is not the site's to remove
            if m and (folder != out or m.group(1) in ROOT_FILES) and tmp.is_file():
                tmp.unlink(missing_ok=True)
    if similar is None:
        # the corpus index is searched before the snapshot below: inside it, an index that another process (a
        # run) brought up to the store since would look ahead of the store, and be built again
        failed: list[str] = []
        ids = _day_paper_ids(store)
        # kept beside the index: a new day searches its papers, not every paper again (index.allpairs)
        near = corpus_similar_many(store, ids, 2 * views.SIMILAR_K, failed=failed,    # 2x: room (see below)
                                   embedder=embedder, keep=True)
        # a store on read-only media (its index cannot be built beside it) gave pages without their similar
        # papers, and nothing said so
        res.notes += [f"similar papers left out of the paper pages: {INDEX_UNUSABLE} ({why})" for why in failed]
        # and each page it cost its panel says so, as serve's page does, without the reason: a published page
        # would show the building machine's paths (the build's note says it)
        lost = _with_vectors(store, [i for i in ids if i not in near]) if failed else set()

        def similar(_store, pid, _k):
            if pid in lost:
                raise RankerError(f"{INDEX_UNUSABLE} where this site was built (the build said why)")
            return near.get(pid, [])
    try:
        # one state of the store for every page: a `ranker run` storing a day while the pages were read put it in
        # the archive and month lists (read last) though its page was never written, a link to nothing
        with store.read_snapshot():
            _write_pages(store, w, similar)
        w.finish()
        w.remove_stale()
        w.save_state()
    finally:
        w.discard()
    return res


def _refuse_others(out: Path) -> None:
    """An InputError when `out` holds a file or folder of the site's names and is not a site ranker wrote (its
    MARKER, or, from before sites were marked, its search index, one file then): `ranker site --out .` in a folder
    of one's own wrote over its index.html. Other files (a repository's README, .git) stay beside the site."""
    if not out.is_dir() or (out / MARKER).is_file():
        return
    for index in ("search/index.js", "search-index.js"):
        try:
            # read only from a regular file: a FIFO there was read as one, and the command waited for a writer
            if read_regular(out / "static" / index, 22) == b"window.RANKER_SEARCH =":
                return
        except OSError:
            pass
    clash = [name for name in OWN if os.path.lexists(out / name)]
    if clash:
        raise InputError(f"holds {', '.join(clash)}, and is not a site ranker wrote; choose a new folder, an empty "
                         "one, or one holding a site of ranker's", where=str(out))


def _with_vectors(store: Store, ids: list[str]) -> set[str]:
    """Those of `ids` with a paper vector of any embedder: the papers a usable corpus index gives a panel (one
    without a vector has none, and its page says nothing, as serve's)."""
    from ..prefilter.embed import QUERY_PREFIX
    out: set[str] = set()
    for key in store.paper_embedders(QUERY_PREFIX) if ids else ():
        out.update(store.embedding_hashes([i for i in ids if i not in out], key))
    return out


def _day_paper_ids(store: Store) -> list[str]:
    """The papers of every day, as the day pages list them (its ranking, else the day's papers)."""
    ids: set[str] = set()
    for day in store.days():
        ids.update([r.paper_id for r in store.get_rankings(day)] or store.day_paper_ids(day))
    return sorted(ids)


_PAPER_BATCH = 500        # paper pages whose reads are made together


class _PaperReads:
    """What views.paper_page reads of the store, for a batch of papers read in one query per kind (its paper,
    rankings, days, scores: a query each per page before, most of a rebuild's time once unchanged pages are no
    longer rendered); the days' digests are read once for the whole site. The same rows, in the same order, as
    the store's own methods give one paper at a time, but for the similar papers: those as their panel shows
    them (get_papers: paper_titles); any other read goes to the store."""

    def __init__(self, store: Store, ids: list[str], digests: dict, listed: set[str] = frozenset()):
        """`listed`: the papers their pages list as similar, read as the panel shows them (paper_titles: its id,
        title and day), so each page's digest holds what its panel shows, not every listed paper's abstract."""
        self.store, self.digests = store, digests
        self.papers = store.get_papers(ids)
        self.listed = store.paper_titles(listed)
        self.rankings = store.rankings_of_papers(ids)
        self.days = store.days_of_papers(ids)
        self.scores = store.scores_of_papers(ids)

    def get_paper(self, paper_id: str):
        return self.papers.get(paper_id) if paper_id in self.papers else self.store.get_paper(paper_id)

    def get_papers(self, ids):
        """(paper_page's read of a page's similar papers)"""
        ids = list(ids)
        got = {i: self.listed[i] for i in ids if i in self.listed}
        missing = [i for i in ids if i not in got]
        return {**got, **self.store.paper_titles(missing)} if missing else got

    def rankings_of_paper(self, paper_id: str):
        return list(self.rankings.get(paper_id, []))

    def paper_days(self, paper_id: str):
        return list(self.days.get(paper_id, []))

    def scores_of_paper(self, paper_id: str):
        return list(self.scores.get(paper_id, []))

    def get_day_digest(self, day: str):
        if day not in self.digests:
            self.digests[day] = self.store.get_day_digest(day)
        return self.digests[day]

    def __getattr__(self, name):
        return getattr(self.store, name)


def _write_pages(store: Store, w: _Writer, similar) -> None:
    res = w.result
    for name in STATIC_FILES:
        w.write(f"static/{name}", (STATIC / name).read_bytes())

    index: dict[str, list] = {}              # every paper of the site: the search index's rows
    days = store.days()
    day_pages = []
    day_digests: dict[str, str] = {}
    for day in days:
        dp = views.day_page(store, day, with_labels=False, all_days=days, public=True)
        if dp is None:
            continue
        day_pages.append(day)
        day_digests[day] = page_digest("day.html", 1, dp)
        for row in dp.picks + dp.rest:            # a paper on several days: its latest day
            pid = row.paper.id
            index[pid] = [pid, row.paper.title, day, row.topic, int(row.picked),
                          " ".join(row.paper.abstract.split())]
            if paper_file(pid) != f"{pid}.html":          # its page's name, where the id alone does not give it
                index[pid].append(f"papers/{paper_file(pid)}")

    found = similar

    def similar_in_site(_reads, pid, k):
        """Only papers with a page here: the corpus index also holds papers on no day, which have none."""
        near = found(store, pid, k)
        kept = [(i, sim) for i, sim in near if i in index]
        return near.keep(kept, shown=public_name) if isinstance(near, Neighbours) else kept

    ids = sorted(index)
    digests: dict[str, object] = {}
    for start in range(0, len(ids), _PAPER_BATCH):
        chunk = ids[start:start + _PAPER_BATCH]
        # each page's similar papers first, so their titles are read with the batch's papers, not a query a page
        near: dict[str, list | RankerError] = {}
        for pid in chunk:
            try:
                near[pid] = similar_in_site(None, pid, views.SIMILAR_K)
            except RankerError as e:
                near[pid] = e
        # (the k shown: the first k + 1, the paper itself left out)
        listed = {i for got in near.values() if not isinstance(got, RankerError)
                  for i, _ in got[:views.SIMILAR_K + 1]}
        reads = _PaperReads(store, chunk, digests, listed=listed)

        def similar_read(_reads, pid, _k):
            if isinstance(near[pid], RankerError):
                raise near[pid]
            return near[pid]
        for pid in chunk:
            pp = views.paper_page(reads, pid, similar=similar_read, with_labels=False, public=True)
            if pp is None:
                continue
            res.papers += 1
            w.page(f"papers/{paper_file(pid)}", page_digest("paper.html", 1, pp),
                   lambda: render("paper.html", urls=SiteUrls(1), page=pp))
    # each day page that changed is read again here, rather than held from the first pass: a site of years
    # would hold every day's rows at once (the first pass keeps only the search index's rows and its digest)
    for day in day_pages:
        res.days += 1
        w.page(f"days/{day}.html", day_digests[day], lambda: render(
            "day.html", urls=SiteUrls(1), page=views.day_page(store, day, with_labels=False, all_days=days,
                                                              public=True)))
    groups = views.archive(store)
    for g in groups:
        mp = views.month_page(store, g.month, groups)
        if mp is not None:
            w.write(f"months/{g.month}.html", render("month.html", urls=SiteUrls(1), page=mp))

    _write_search_index(w, index.values())
    w.write("search.html", render("search.html", urls=SiteUrls(0), q="", mode="", used="", rows=[],
                                  semantic=False, embedder="", note=""))
    w.write("index.html", render("archive.html", urls=SiteUrls(0), groups=groups, up=0, down=0))


def _script_json(value) -> str:
    """`value` as JSON to put in a script. '<' only occurs inside JSON strings, where \\u003c means the same: no
    paper's text can look like markup, even if inlined."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":")).replace("<", "\\u003c")


def _write_search_index(w: _Writer, rows) -> None:
    """The search index: scripts, not .json files, since pages opened from disk may not fetch() a file next to
    them. One a month, its papers (each on its latest day) newest first: what changes with a new day is its
    month's file, and no file outgrows a month (the one file of every paper was 21.5 MB for 50 days of
    listings, past GitHub's 50 MB warning in about six months, and rewritten whole for each new day). Then the
    list of them, with each month's count (the search page says how many papers it searches before loading
    any) and a version of each file's content, so a browser's cached copy of a month's index is not used once
    that month has changed."""
    months: dict[str, list] = {}
    for row in sorted(rows, key=lambda r: (r[2], r[0]), reverse=True):
        months.setdefault(row[2][:7], []).append(row)
    listed = []
    for month, papers in months.items():          # newest first: the search page asks for them in this order
        data = f"window.RANKER_SEARCH_MONTHS[{_script_json(month)}] = {_script_json(papers)};\n".encode("ascii")
        w.write(f"static/search/{month}.js", data)
        listed.append([month, len(papers), f"static/search/{month}.js?v={hashlib.sha1(data).hexdigest()[:12]}"])
    w.write("static/search/index.js", "window.RANKER_SEARCH = " + _script_json(
        {"papers": sum(n for _, n, _ in listed), "months": listed, "letters": PLAIN_LETTERS}) + ";\n")
