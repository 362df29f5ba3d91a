"""`ranker serve`: the FastAPI application over the store.

Pages: / (archive of days by month), /month/YYYY-MM, /day/YYYY-MM-DD, /paper/ID, /search, /labels.
Feedback: POST /label (paper_id, label = up | down | undo, seen, day, next) with the page's CSRF token, answered
with a redirect for a plain form and with JSON for the page's script; a paper's labels are stored in the order their
requests came, and one sent from a page that no longer shows what is stored (seen) is refused (409) with the stored
label. GET /labels.json: every current label, for a page to show again what is stored. Each request opens the store
for itself (SQLite connections stay in their thread).
"""
from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable

from ..errors import MissingDependency, RankerError, StoreError
from ..io import arxiv_id
from ..prefilter.history import is_day_name
from ..settings import Settings
from ..store import Store, describe_db_error
from . import security, views
from .render import STATIC, ServeUrls, render
from .search import MODES, SemanticSearch, corpus_similar, search

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect
except ImportError:                                             # pragma: no cover - the extra is missing
    raise MissingDependency("fastapi", "web", "ranker serve") from None

BUSY_TIMEOUT = 5.0
HOSTS_LOGGED = 100         # refused Host names logged, each once; a flood of made-up names does not fill the log
HOST_HINT = "the server's owner can allow another name where it is started"
log = logging.getLogger("ranker.web")
# a label's form is a few hundred bytes (its id, label, seen, day, next and token): a body past this is refused
# (413) before it is read on, where Starlette read any body whole into memory first
MAX_FORM_BYTES = 64 * 1024
SEARCH_LIMIT = 50          # results on the search page; one more is asked for, to tell the page there are more
LABEL_VALUES = {"up": 1, "1": 1, "+1": 1, "down": -1, "-1": -1, "undo": 0, "0": 0, "clear": 0}
LABEL_WORDS = {1: "thumbs up", -1: "thumbs down", 0: "no label"}


def create_app(settings: Settings, *, read_only: bool | str = False, similar: Callable | None = corpus_similar,
               allowed_hosts: set[str] | None = None, secret: str | None = None,
               busy_timeout: float = BUSY_TIMEOUT, host_hint: str = HOST_HINT) -> "FastAPI":
    """The app over the settings' database (settings.db_path); search by meaning embeds the query with the
    prefilter's embedder (settings.prefilter: embedder, max_tokens). allowed_hosts: the Host names it answers to
    (None: any; the CLI passes the loopback names when it binds to loopback); a request for another is refused
    with those names and `host_hint` (how the owner allows one more: the CLI names its option), and each name
    refused is logged once. read_only: no feedback buttons, every POST is refused (403); a text is why, for
    the pages to say (True: the user asked for it).
    busy_timeout: how long a request waits for another process's write before the page says the database is
    busy (a person is waiting, not a cron job)."""
    from ..index import OpenIndexes
    from ..prefilter.embed import Embedder
    secret = secret or security.new_secret()
    indexes = OpenIndexes()              # each corpus index read from disk once, again only when it changes
    semantic = SemanticSearch(Embedder.from_settings(settings), indexes)
    if similar is corpus_similar:
        # the paper pages' similar papers from the configured embedder's index first, as search by meaning
        similar = functools.partial(corpus_similar, indexes=indexes, embedder=semantic.key)
    app = FastAPI(title="ranker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.secret = secret
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    web = _Web(app, settings.db_path, read_only, secret, busy_timeout)
    _error_pages(web)
    _guard(app, _Gate(allowed_hosts, bool(read_only), host_hint))
    _browse_routes(web, semantic, similar)
    _label_routes(web)
    _head_where_get(app)
    return app


def _head_where_get(app: "FastAPI") -> None:
    """Every route that answers GET answers HEAD too (link checkers, `curl -I`, a script checking /labels.json is
    there): FastAPI answers a GET route's HEAD with 405 (Starlette's own routes, the /static files', add it). Done
    once over all the routes, so a route added later cannot miss it, as /labels.json did (its HEAD was 405 while
    the pages' own decorator added HEAD)."""
    for route in app.routes:
        methods = getattr(route, "methods", None)
        if methods and "GET" in methods:
            methods.add("HEAD")


class _Web:
    """What every route of one app shares: the store it opens for each request, and its pages and refusals."""

    def __init__(self, app: "FastAPI", db, read_only: bool | str, secret: str, busy_timeout: float) -> None:
        self.app, self.db, self.read_only, self.secret, self.busy_timeout = app, db, read_only, secret, busy_timeout
        self.urls = ServeUrls()

    def open_store(self) -> Store:
        """The store, for one request. The database is opened, never made: one moved or deleted while the server
        runs was made anew and empty by the next page, which then showed an empty archive and "nothing stored"
        for every day as if the store held nothing (and left an empty file where the user's had been). A link
        whose file is gone is gone too (SQLite made the file it points to)."""
        if not os.path.exists(self.db):
            raise StoreError("is gone (moved or deleted since ranker serve started); put it back, or restart "
                             "the server to make a new one", where=str(self.db))
        # read-only (asked, or the store cannot be written): opened read-only, so a request writes nothing to it
        # (an older schema's upgrade, a dead run marked, the word index built): it was opened for writing
        return Store(self.db, busy_timeout=self.busy_timeout, read_only=bool(self.read_only))

    def page(self, template: str, status: int = 200, **ctx) -> HTMLResponse:
        html = render(template, urls=self.urls, can_label=not self.read_only, csrf=self.secret,
                      read_only=self.read_only, **ctx)
        return HTMLResponse(html, status_code=status)

    def not_found(self, what: str) -> HTMLResponse:
        return self.page("error.html", status=404, title="Not found", message=what)

    def refuse(self, request: Request, status: int, title: str, message: str, back: str = "") -> Response:
        """A refused or failed request in words: JSON for the page's script, a page for a plain form (back: the
        address of the page the form was on, linked from it)."""
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"error": message}, status_code=status)
        return self.page("error.html", status=status, title=title, message=message, back=back)


def _error_pages(web: _Web) -> None:
    """A page in words (JSON for the page's script) for an address no route has and for a store that fails."""
    app = web.app

    @app.exception_handler(StarletteHTTPException)
    async def no_such_page(request: Request, e: StarletteHTTPException) -> Response:
        """An address no route has (a mistyped /days/..., an old bookmark), a method a route does not take (a GET of
        /label), a file /static does not have: Starlette's bare {"detail": "Not Found"} as JSON, with no way back
        to the archive; a page in words, as the other refusals (JSON for the page's script)."""
        if e.status_code == 404:
            title, message = "Not found", f"No page at {request.url.path}."
        else:
            title = message = str(e.detail)
        answer = web.refuse(request, e.status_code, title, message)
        answer.headers.update(e.headers or {})              # a 405's Allow
        return answer

    @app.exception_handler(RankerError)
    async def store_failed(request: Request, e: RankerError) -> Response:
        """The store cannot be read or written (locked by a long run, not a ranker database, a full disk): said
        in words, never a bare 500; a lock is 503, the request may succeed later."""
        busy = getattr(e, "busy", False)
        return web.refuse(request, 503 if busy else 500, "The database is busy" if busy else "The store failed",
                          str(e))

    @app.exception_handler(sqlite3.DatabaseError)
    async def store_unreadable(request: Request, e: sqlite3.DatabaseError) -> Response:
        """A read SQLite refused: a damaged file ("database disk image is malformed") was a bare "Internal
        Server Error" on every page, its words in the log file only."""
        err = StoreError(describe_db_error(e), where=str(web.db))
        err.busy = "locked" in str(e).lower() or "busy" in str(e).lower()
        return await store_failed(request, err)


def _guard(app: "FastAPI", gate: "_Gate") -> None:
    """The middleware every request goes through: the gate's refusals, the security and cache headers."""

    @app.middleware("http")
    async def guard(request: Request, call_next):
        # every answer, the guard's own refusals too, carries the security headers: the 403s went without them
        # (no nosniff, no CSP, framable by any site)
        try:
            response = gate.refused(request) or await call_next(request)
        except Exception:
            # an unexpected failure of a page: answered here, in plain words, so it gets the headers too (Starlette's
            # own 500 is made outside this guard, and went without them); its traceback goes to the log
            log.exception("%s %s failed", request.method, request.url.path)
            response = Response("Internal Server Error: the failure is in the server's log\n", status_code=500,
                                media_type="text/plain")
        for k, v in security.HEADERS.items():
            response.headers.setdefault(k, v)
        # A page is never shown again from the browser's cache: Back to a day page showed the labels it had when
        # it was loaded (or left), not those given since on another page, and a click on a thumb that only looked
        # pressed took the label back. The static files are checked again (304) each time, so an upgrade's
        # app.js is never run by an older page's cache.
        response.headers.setdefault("Cache-Control", "no-cache" if request.url.path.startswith("/static/")
                                    else "no-store")
        return response


def _browse_routes(web: _Web, semantic: SemanticSearch, similar: Callable | None) -> None:
    """The pages that read: the archive, a month, a day, a paper, search, the labels."""
    pages, page, not_found, open_store = web.app.get, web.page, web.not_found, web.open_store

    @pages("/", response_class=HTMLResponse)
    def archive_page():
        with open_store() as store:
            groups = views.archive(store)
            up, down = store.count_labels()
        return page("archive.html", groups=groups, up=up, down=down)

    @pages("/month/{month}", response_class=HTMLResponse)
    def month(month: str):
        with open_store() as store:
            mp = views.month_page(store, month)
        return page("month.html", page=mp) if mp else not_found(f"No days in {month}.")

    @pages("/day/{day}", response_class=HTMLResponse)
    def day(day: str, topic: str = "", show: str = "all"):
        with open_store() as store, store.read_snapshot():      # its ranking, digest and scores of one state
            dp = views.day_page(store, day, topic=topic, show=show)
        return page("day.html", page=dp) if dp else not_found(f"Nothing stored for the day {day}.")

    def _similar_now(store: Store, paper_id: str) -> views.SimilarFn | None:
        """The paper's similar papers searched now, handed to paper_page as its `similar` (the error kept as
        the page's note, as paper_page says it)."""
        if similar is None:
            return None
        try:
            near = similar(store, paper_id, views.SIMILAR_K)
        except RankerError as e:
            failed = e

            def said(*_):
                raise failed
            return said
        return lambda *_: near

    @pages("/paper/{paper_id:path}", response_class=HTMLResponse)
    def paper(paper_id: str):
        with open_store() as store:
            # the similar papers first, outside the snapshot: inside it, a corpus index a run synced since the
            # snapshot began looks ahead of the store, and was rebuilt whole during the request (as site's _build)
            near = _similar_now(store, paper_id)
            with store.read_snapshot():      # its rankings, digests and scores of one state
                pp = views.paper_page(store, paper_id, similar=near)
                # an id as arXiv writes it (2505.07045v2, an abs link's tail) is its paper, as in search: the
                # store holds papers without their version, and the address pasted from arXiv was "No paper" (404)
                own = arxiv_id(paper_id) if pp is None else None
                if own and own != paper_id and store.get_paper(own) is not None:
                    return RedirectResponse(web.urls.paper(own), status_code=307)
        return page("paper.html", page=pp) if pp else not_found(f"No paper {paper_id} in the store.")

    @pages("/search", response_class=HTMLResponse)
    def search_page(q: str = "", mode: str = "auto"):
        mode = mode if mode in MODES else "auto"
        with open_store() as store:
            can_mean = semantic.available(store)
            used, rows, note, more = mode, [], "", False
            if q.strip():
                used, ids, note = search(store, q, mode, semantic, limit=SEARCH_LIMIT + 1)
                more = len(ids) > SEARCH_LIMIT
                rows = views.paper_rows(store, ids[:SEARCH_LIMIT])
        return page("search.html", q=q, mode=mode, used=used, rows=rows, more=more, semantic=can_mean,
                    embedder=semantic.key, note=note)

    @pages("/labels", response_class=HTMLResponse)
    def labels():
        with open_store() as store:
            rows, history = views.labels_page(store)
            up, down = store.count_labels()
        return page("labels.html", rows=rows, history=history, up=up, down=down)


def _label_routes(web: _Web) -> None:
    """The labels a page reads again (GET /labels.json) and the thumbs it sends (POST /label)."""
    app, open_store, refuse = web.app, web.open_store, web.refuse

    # A paper's label writes run one at a time, in the order their requests came (asyncio.Lock lets its waiters
    # in first come, first served). Side by side, two quick clicks on one paper while another process held the
    # database both waited in SQLite's busy handler, which polls the longer waiter less often: the earlier
    # click mostly took the lock last, and its label was the one kept.
    writing: dict[str, tuple[asyncio.Lock, list[int]]] = {}      # paper id -> its lock, how many hold or wait

    @asynccontextmanager
    async def in_turn(paper_id: str) -> AsyncIterator[None]:
        lock, users = writing.setdefault(paper_id, (asyncio.Lock(), [0]))
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del writing[paper_id]

    def set_label(paper_id: str, value: int, day: str, seen: int | None) -> tuple[str, int] | None:
        """store_label on a store of its own (in a worker thread: a busy database delays this request, not the
        server)."""
        with open_store() as store:
            return _store_label(store, paper_id, value, day, seen)

    @app.get("/labels.json")
    def current_labels():
        """Every current label, by paper id (a paper missing has none): a page shown again after a while (its tab
        or window brought back) asks for them once and shows what is stored, whatever was clicked elsewhere
        since. All of them, not the page's papers': a person's labels are a few thousand at most, while the ids
        of a day of 900 papers would not fit the address of a GET."""
        with open_store() as store:
            return JSONResponse({"labels": {pid: lb.label for pid, lb in store.get_labels().items()}})

    @app.post("/label")
    async def label(request: Request):
        try:
            if not await _body_within(request, MAX_FORM_BYTES):
                return refuse(request, 413, "Too large", f"A label's form is under {MAX_FORM_BYTES // 1024} KiB; "
                              "this request's body is larger, and was not read.")
            form = await request.form()
        except ClientDisconnect:
            # the client hung up while sending (a closed laptop, a killed script): nothing to store, no one to
            # answer; it left a traceback in the log
            return Response(status_code=400)
        # A refusal's page links back to the page the form was on: it told a browser without the script to reload
        # the page and click again, but the page on screen was the refusal, whose reload posted the same form again
        # and was refused again (the same token, the same label seen); the way back was the archive only
        back = security.safe_next(str(form.get("next") or ""), default="")
        token = form.get("csrf") or request.headers.get("x-csrf-token")
        if not security.token_ok(token, web.secret):
            return refuse(request, 403, "Out of date", "This page is out of date (the server was restarted since it "
                          "was loaded, or it came from elsewhere): reload it and click again.", back)
        asked = _label_request(form)
        if isinstance(asked, str):
            return refuse(request, 400, "Bad request", asked, back)
        paper_id, value, day, seen = asked
        async with in_turn(paper_id):
            # (a request cancelled meanwhile still waits for its thread: the next write never overtakes it)
            done = await run_in_threadpool(set_label, paper_id, value, day, seen)
        if done is None:
            return refuse(request, 404, "Not found", f"No paper {paper_id} in the store.", back)
        day, stored = done
        wants_json = "application/json" in request.headers.get("accept", "")
        if stored != value:
            message = (f"The label of {paper_id} was changed elsewhere (another tab or window) since this page "
                       f"showed it: it is {LABEL_WORDS[stored]} now. Nothing was changed; reload the page and "
                       f"click again if you still mean it.")
            if wants_json:
                return JSONResponse({"paper_id": paper_id, "label": stored, "stale": True, "error": message},
                                    status_code=409)
            return web.page("error.html", status=409, title="Changed elsewhere", message=message, back=back)
        if wants_json:
            return JSONResponse({"paper_id": paper_id, "label": value, "day": day})
        return RedirectResponse(back or "/", status_code=303)


class _Gate:
    """What the app does not let through: a Host it does not answer to (allowed_hosts; None: any), a change to a
    read-only store, a cross-site post."""

    def __init__(self, allowed_hosts: set[str] | None, read_only: bool, host_hint: str) -> None:
        self.allowed_hosts, self.read_only, self.host_hint = allowed_hosts, read_only, host_hint
        self.logged: set[str] = set()           # the Host names refused and logged (each once)

    def refused(self, request: Request) -> Response | None:
        """The answer to a request the app does not let through, or None."""
        host = request.headers.get("host", "")
        if not security.host_allowed(host, self.allowed_hosts):
            return self.refuse_host(host)
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if self.read_only:
                return Response("read-only: this server takes no changes\n", status_code=403,
                                media_type="text/plain")
            if not security.same_origin(request.headers.get("origin"), request.headers.get("referer"),
                                        request.url.scheme, host):
                return Response("cross-site request refused\n", status_code=403, media_type="text/plain")
        return None

    def refuse_host(self, host: str) -> Response:
        """A Host this server does not answer to (DNS rebinding; or a colleague's name for this machine, a fully
        qualified name getfqdn does not give): the bare "unknown Host header" left the one who opened it guessing,
        and the server's log held nothing. The answer says how more names are allowed; the log, for the owner,
        says each name refused (once) and the names served. Not the answer: a DNS-rebinding page reads it as its
        own, and would learn the machine's names and addresses and the proxies allowed."""
        name = security.host_name(host)
        if name not in self.logged and len(self.logged) <= HOSTS_LOGGED:
            self.logged.add(name)
            if len(self.logged) > HOSTS_LOGGED:
                log.warning("refused over %d Host names: further ones are not logged", HOSTS_LOGGED)
            else:
                log.warning("refused a request for the Host name %r: this server answers to %s; %s",
                            name[:200], ", ".join(sorted(self.allowed_hosts or ())), self.host_hint)
        return Response(f"unknown Host header {name[:200]!r}: this server does not answer to that name; "
                        f"{self.host_hint}\n", status_code=400, media_type="text/plain")


async def _body_within(request: Request, limit: int) -> bool:
    """Read the request's body if it is at most `limit` bytes (then request.form() parses what was read), or
    say it is not: one that says a larger Content-Length is refused unread, one sent in chunks as soon as it
    passes the limit. Any client that reaches the port (a local process, the network where --host binds to it)
    made the server hold as much as it sent: the form was parsed from the whole body, however large."""
    declared = request.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit:
        return False
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return False
        chunks.append(chunk)
    request._body = b"".join(chunks)        # what request.body() keeps: request.form() parses it from there
    return True


def _label_request(form) -> tuple[str, int, str, int | None] | str:
    """(paper id, label, day, seen) of a POST /label's form (its CSRF token checked before), or why it is a bad
    request, in words."""
    paper_id = str(form.get("paper_id") or "")
    # an id as arXiv writes it (2505.09572v2, arXiv:, an abs link) is its paper, as for the paper's page and in
    # `labels import`: a script's label on the id it read off arXiv was "No paper" (404)
    paper_id = arxiv_id(paper_id) or paper_id
    value = LABEL_VALUES.get(str(form.get("label") or ""))
    day = str(form.get("day") or "")
    if value is None:
        return "A label is up, down or undo."
    # seen: the label the page showed when it was clicked (1, -1, 0; the page's forms and its script send it).
    # Two tabs on one paper: A showed the thumbs up, B gave the thumbs down since, and A's click on the thumb
    # it showed pressed went out as an undo and took B's label away. A stored label other than the one seen
    # stays as it is (unless it is the one asked for: nothing to change) and is answered (409), for the page
    # to show. A request without seen (a script of the user's, curl, a page of an older version) is written
    # as it says, as before: its label is what it asks for, not a toggle of what it saw.
    seen = None
    if form.get("seen") not in (None, ""):
        seen = LABEL_VALUES.get(str(form.get("seen")))
        if seen is None:
            return "The label seen is 1, -1 or 0 (none)."
    if day and not (views.DAY_RE.match(day) and is_day_name(day)):
        # not a day this app wrote: the paper's own day is taken instead. A date that is none (2025-02-30,
        # from a script of the user's) was stored, and `labels export` wrote it into a file that `labels
        # import` refuses whole
        day = ""
    return paper_id, value, day, seen


def _store_label(store: Store, paper_id: str, value: int, day: str, seen: int | None) -> tuple[str, int] | None:
    """Store the label unless the store holds another one than `seen` (None: not checked); the digest day it is
    stored under and the label stored after it, or None when the store has no such paper and no label of it."""
    p = store.get_paper(paper_id)
    if p is None:
        # a label imported from another machine, on a paper this store does not hold (yet): it can still
        # be changed or taken back (and given again), under the digest day it was given on
        events = store.label_events(paper_id)
        if not events:
            return None
        given = store.get_labels([paper_id]).get(paper_id)
        day = day or (given.day if given else events[-1]["day"]) or ""
        return day, store.set_label(paper_id, value, day or None, expected=seen)
    if not day:
        # the page sends its own day; without one (a script, curl) the latest day the paper is listed on, the
        # one the user most likely saw it on (paper_days is oldest first)
        days = store.paper_days(paper_id)
        day = days[-1] if days else (p.date or "")
    return day, store.set_label(paper_id, value, day or None, expected=seen)
