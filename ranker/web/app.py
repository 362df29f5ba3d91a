"""`ranker serve`: the FastAPI application over the store.

Pages: / (archive of days by month), /month/YYYY-MM, /day/YYYY-MM-DD, /paper/ID, /search, /labels.
Feedback: POST /label (paper_id, label = up | down | undo, day, next) with the page's CSRF token, answered with a
redirect for a plain form and with JSON for the page's script. Each request opens the store for itself (SQLite
connections stay in their thread).
"""
from __future__ import annotations

import functools
from typing import Callable

from ..errors import MissingDependency
from ..settings import Settings
from ..store import Store
from . import security, views
from .render import STATIC, ServeUrls, render
from .search import MODES, SemanticSearch, corpus_similar, search

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from fastapi.staticfiles import StaticFiles
except ImportError:                                             # pragma: no cover - the extra is missing
    raise MissingDependency("fastapi", "web", "ranker serve") from None

LABEL_VALUES = {"up": 1, "1": 1, "+1": 1, "down": -1, "-1": -1, "undo": 0, "0": 0, "clear": 0}


def create_app(settings: Settings, *, read_only: bool = False, similar: Callable | None = corpus_similar,
               allowed_hosts: set[str] | None = None, secret: str | None = None) -> "FastAPI":
    """The app over the settings' database (settings.db_path); search by meaning embeds the query with the
    prefilter's embedder (settings.prefilter: embedder, max_tokens). allowed_hosts: the Host names it answers to
    (None: any; the CLI passes the loopback names when it binds to loopback). read_only: no feedback buttons,
    every POST is refused (403)."""
    from ..prefilter.embed import Embedder
    db = settings.db_path
    secret = secret or security.new_secret()
    urls = ServeUrls()
    from ..index import OpenIndexes
    indexes = OpenIndexes()              # each corpus index read from disk once, again only when it changes
    semantic = SemanticSearch(Embedder.from_settings(settings), indexes)
    if similar is corpus_similar:
        similar = functools.partial(corpus_similar, indexes=indexes)
    app = FastAPI(title="ranker", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.secret = secret
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    def page(template: str, status: int = 200, **ctx) -> HTMLResponse:
        html = render(template, urls=urls, can_label=not read_only, csrf=secret, read_only=read_only, **ctx)
        return HTMLResponse(html, status_code=status)

    def not_found(what: str) -> HTMLResponse:
        return page("error.html", status=404, title="Not found", message=what)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = request.headers.get("host", "")
        if not security.host_allowed(host, allowed_hosts):
            return Response("unknown Host header\n", status_code=400, media_type="text/plain")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            if read_only:
                return Response("read-only: this server takes no changes\n", status_code=403,
                                media_type="text/plain")
            if not security.same_origin(request.headers.get("origin"), request.headers.get("referer"),
                                        request.url.scheme, host):
                return Response("cross-site request refused\n", status_code=403, media_type="text/plain")
        response = await call_next(request)
        for k, v in security.HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    @app.get("/", response_class=HTMLResponse)
    def archive_page():
        with Store(db) as store:
            groups = views.archive(store)
            up, down = store.count_labels()
        return page("archive.html", groups=groups, up=up, down=down)

    @app.get("/month/{month}", response_class=HTMLResponse)
    def month(month: str):
        with Store(db) as store:
            mp = views.month_page(store, month)
        return page("month.html", page=mp) if mp else not_found(f"No days in {month}.")

    @app.get("/day/{day}", response_class=HTMLResponse)
    def day(day: str, topic: str = "", show: str = "all"):
        with Store(db) as store:
            dp = views.day_page(store, day, topic=topic, show=show)
        return page("day.html", page=dp) if dp else not_found(f"Nothing stored for the day {day}.")

    @app.get("/paper/{paper_id:path}", response_class=HTMLResponse)
    def paper(paper_id: str):
        with Store(db) as store:
            pp = views.paper_page(store, paper_id, similar=similar)
        return page("paper.html", page=pp) if pp else not_found(f"No paper {paper_id} in the store.")

    @app.get("/search", response_class=HTMLResponse)
    def search_page(q: str = "", mode: str = "auto"):
        mode = mode if mode in MODES else "auto"
        with Store(db) as store:
            can_mean = semantic.available(store)
            used, rows, note = mode, [], ""
            if q.strip():
                used, ids, note = search(store, q, mode, semantic)
                rows = views.paper_rows(store, ids)
        return page("search.html", q=q, mode=mode, used=used, rows=rows, semantic=can_mean,
                    embedder=semantic.key, note=note)

    @app.get("/labels", response_class=HTMLResponse)
    def labels():
        with Store(db) as store:
            rows, history = views.labels_page(store)
            up, down = store.count_labels()
        return page("labels.html", rows=rows, history=history, up=up, down=down)

    @app.post("/label")
    async def label(request: Request):
        form = await request.form()
        token = form.get("csrf") or request.headers.get("x-csrf-token")
        if not security.token_ok(token, secret):
            return Response("missing or wrong CSRF token\n", status_code=403, media_type="text/plain")
        paper_id = str(form.get("paper_id") or "")
        value = LABEL_VALUES.get(str(form.get("label") or ""))
        day = str(form.get("day") or "")
        if value is None or (day and not views.DAY_RE.match(day)):
            return Response("label must be up, down or undo; day YYYY-MM-DD\n", status_code=400,
                            media_type="text/plain")
        with Store(db) as store:
            p = store.get_paper(paper_id)
            if p is None:
                return Response("no such paper\n", status_code=404, media_type="text/plain")
            if not day:
                days = store.paper_days(paper_id)
                day = days[-1] if days else (p.date or "")
            store.set_label(paper_id, value, day or None)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse({"paper_id": paper_id, "label": value, "day": day})
        return RedirectResponse(security.safe_next(str(form.get("next") or "")), status_code=303)

    return app
