"""Templates (package data under ranker/web/templates/) rendered with Jinja2, autoescape always on: every field
from papers and models reaches the page as text. Links come from a Urls object, so the same templates serve
the live app (absolute paths) and the static site (relative file paths that also work from file://)."""
from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlencode

from ..errors import MissingDependency
from .security import SITE_CSP

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
_SAFE = re.compile(r"[^A-Za-z0-9.\-]")


def paper_file(paper_id: str) -> str:
    """A file name for a paper's static page: the id with '/' as '_' (old-style ids), and a short hash when
    anything else had to change, so two ids never share a file and no id escapes the folder."""
    name = _SAFE.sub("_", paper_id)
    if name != paper_id.replace("/", "_") or name.startswith(".") or not name:
        name = f"{name.lstrip('.')}-{hashlib.sha1(paper_id.encode('utf-8')).hexdigest()[:10]}"
    return name + ".html"


class ServeUrls:
    """Links of the live app."""
    static_site = False

    def archive(self) -> str:
        return "/"

    def month(self, month: str) -> str:
        return f"/month/{quote(month)}"

    def day(self, day: str, **query) -> str:
        q = {k: v for k, v in query.items() if v}
        return f"/day/{quote(day)}" + (f"?{urlencode(q)}" if q else "")

    def paper(self, paper_id: str) -> str:
        return "/paper/" + quote(paper_id, safe="/")

    def search(self, q: str = "", mode: str = "") -> str:
        query = {k: v for k, v in (("q", q), ("mode", mode)) if v}
        return "/search" + (f"?{urlencode(query)}" if query else "")

    def labels(self) -> str:
        return "/labels"

    def static(self, name: str) -> str:
        return f"/static/{name}"


class SiteUrls:
    """Links of the static site, relative to a page `depth` folders below the site's root."""
    static_site = True
    csp = SITE_CSP          # the pages' Content-Security-Policy, in a <meta> (serve's is a header)

    def __init__(self, depth: int = 0):
        self.up = "../" * depth

    def archive(self) -> str:
        return self.up + "index.html"

    def month(self, month: str) -> str:
        return f"{self.up}months/{quote(month)}.html"

    def day(self, day: str, **_query) -> str:
        return f"{self.up}days/{quote(day)}.html"

    def paper(self, paper_id: str) -> str:
        return f"{self.up}papers/{quote(paper_file(paper_id))}"

    def search(self, q: str = "", mode: str = "") -> str:
        return f"{self.up}search.html" + (f"?{urlencode({'q': q})}" if q else "")

    def labels(self) -> str:
        return ""

    def static(self, name: str) -> str:
        return f"{self.up}static/{name}"


def _when(t: float | None) -> str:
    if not t:
        return ""
    return datetime.fromtimestamp(float(t), tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _score(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _short(text: str | None, n: int = 240) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "…"


_LOCAL_PATH = re.compile(r"^(?:[/~\\]|[A-Za-z]:[\\/])")


def public_name(key: str | None) -> str:
    """A model's or embedder's name as a published page shows it: one loaded from a folder is stored under the
    folder's absolute path (/home/alice/models/Qwen2.5-7B-Instruct), which named the user's account and folders
    on every page of a site put on the web; the folder's own name stands for it. Any other name (a preset, a
    Hugging Face id, a server's model) is shown as it is."""
    key = key or ""
    if not _LOCAL_PATH.match(key):
        return key
    return re.split(r"[/\\]", key.rstrip("/\\"))[-1] or key


def _authors(authors, n: int = 6) -> str:
    authors = list(authors or [])
    return ", ".join(authors) if len(authors) <= n else ", ".join(authors[:n]) + f" and {len(authors) - n} more"


def _model(context, key: str | None) -> str:
    """`model` filter: a model's or embedder's name, as public_name gives it on the static site's pages (serve's
    are the user's own: the full name)."""
    return public_name(key) if context["urls"].static_site else (key or "")


_ENV = None


def environment():
    """The one Jinja2 environment (autoescape on for every template, whatever its name)."""
    global _ENV
    if _ENV is None:
        try:
            import jinja2
        except ImportError:
            raise MissingDependency("jinja2", "web", "the web pages") from None
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                                 undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        env.filters.update(when=_when, score=_score, short=_short, authors=_authors,
                           model=jinja2.pass_context(_model))
        _ENV = env
    return _ENV


def markup(svg: str):
    """Mark a plot (built from escaped parts in plots.py) as safe to embed."""
    from markupsafe import Markup
    return Markup(svg)


def render(template: str, *, urls, **context) -> str:
    """Render a page. Every template sees `urls`, `can_label` (feedback buttons), `csrf` and `read_only`."""
    context.setdefault("can_label", False)
    context.setdefault("csrf", "")
    context.setdefault("read_only", False)
    context.setdefault("semantic", False)
    return environment().get_template(template).render(urls=urls, markup=markup, **context)
