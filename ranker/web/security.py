"""What keeps a local web app local: the Host allow-list (DNS rebinding), the Origin check and a CSRF token on
every state-changing request, and the response headers. Pure functions, so they are tested without a server."""
from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from ..io import is_loopback_host

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}

# Scripts and styles only from the app itself: even a page that failed to escape something could not run it.
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
# The static site's pages (`ranker site`) say theirs in a <meta>, a file server or GitHub Pages sending no header of
# ours: the site's own scripts (site.js, the search index's, which the search page adds) and stylesheet, nothing
# inline, no fetch (the index is scripts, which a page opened from disk may load). A <meta> cannot say
# frame-ancestors; 'self' is the site's folder opened from disk (file://) too.
SITE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
            "base-uri 'none'")


def is_loopback(host: str) -> bool:
    """Whether binding to `host` serves loopback only ([::1] as well as ::1; '' binds to every address)."""
    host = host.strip("[]")
    return bool(host) and is_loopback_host(host)


def new_secret() -> str:
    """The per-process CSRF secret: a page of this process carries it, a page of another site cannot read it."""
    return secrets.token_urlsafe(32)


def token_ok(given: str | None, secret: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode("utf-8"), secret.encode("utf-8"))


def host_name(host_header: str) -> str:
    """'127.0.0.1:8000' -> '127.0.0.1'; '[::1]:8000' -> '::1'. A header whose part after the name is no port
    ('127.0.0.1:80@evil.example', '[::1]x') is no name of ours: it is given back whole, and so never allowed. An
    empty port ('localhost:', '[::1]:') is one (RFC 3986), for either spelling alike."""
    h = (host_header or "").strip().lower()
    if h.startswith("["):
        end = h.find("]")
        if end < 0 or not _port_or_none(h[end + 1:]):
            return h
        return h[1:end]
    if h.count(":") != 1:
        return h
    name, port = h.rsplit(":", 1)
    return name if _port_or_none(":" + port) else h


def _port_or_none(rest: str) -> bool:
    """Whether what follows a Host header's name is nothing, or ':' and a port (ASCII digits, maybe none)."""
    return rest == "" or (rest.startswith(":") and (rest[1:] == "" or (rest[1:].isdigit() and rest[1:].isascii())))


def host_allowed(host_header: str, allowed: set[str] | None) -> bool:
    """None allows any Host (the app was bound to a non-loopback address on purpose)."""
    if allowed is None:
        return True
    return host_name(host_header) in allowed


def origin_of(url: str) -> str | None:
    try:
        p = urlsplit(url)
    except ValueError:
        return None
    if not p.scheme or not p.netloc:
        return None
    return f"{p.scheme}://{p.netloc}".lower()


def same_origin(origin: str | None, referer: str | None, scheme: str, host_header: str) -> bool:
    """A browser names the page a request comes from (Origin, or at least Referer): it must be this app. A client
    that names none (curl, a script) is let through here; the CSRF token still has to be right."""
    own = f"{scheme}://{host_header}".lower()
    if origin is not None:
        return origin.strip().lower() == own          # "null" (sandboxed frames, file://) never matches
    if referer:
        return origin_of(referer) == own
    return True


def safe_next(url: str | None, default: str = "/") -> str:
    """Where to send the browser after a form post: only a path of this app (no scheme, host or '//')."""
    if not url or not url.startswith("/") or url.startswith("//") or "\\" in url or any(ord(c) < 32 for c in url):
        return default
    return url
