"""Reading arXiv over the network, politely.

- `fetch_bytes(url)`: one GET (the RSS feed) with a timeout and retries.
- `api_client()`: an `arxiv.Client` (the arXiv API through the `arxiv` package) pointed at policy.api_url
  and given our session, so it gets the same timeout and retries; an empty page is asked again as policy
  says too.

Every request goes through `PoliteAdapter`: a 429 or 5xx answer, a refused or reset connection (also one lost
in the middle of the body), a timeout and an answer still coming after `download_timeout` are retried
(ranker.io.retry: exponential backoff, the server's Retry-After honoured); when the retries are spent a
FetchError says what happened. arxiv 4.0.2's own client sets no timeout and retries without backoff, so its
retries are off: the HTTP side is ours, and so is the one case it knows best (a spuriously empty page, asked
again with the same backoff). The knobs are the [fetch] settings (NetPolicy.from_settings).

`timeout` bounds each wait for the server (the connect, then each silence between bytes), not the answer: a
server, proxy or captive portal that trickles a byte every few seconds never trips it. So the adapter reads the
body itself, a piece at a time as it arrives (_read_body), and a try whose answer has not ended
`download_timeout` seconds after the request is abandoned, a wait for the next bytes cut short there (the status
line and headers, read by urllib3 before the body, are bounded by `timeout` per wait alone). Both readers of
the network get it: fetch_bytes and arxiv's `_session.get`, neither of which streams (a stream=True caller
would read the body itself; none does).

An arXiv API page is checked to be whole (to end with its root's end tag) before arxiv parses it: its parser
recovers what it can from a broken document, so a page cut short (a body ended by the connection's close, a
proxy's truncation) gave its last entry half an abstract or none of its authors, stored as the paper, with no
word said. Such a page is retried like a connection lost mid-download.

In offline mode (ranker.netguard) any URL whose host is not loopback is refused before connecting, a
redirect's target too.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace

from .. import __version__
from ..errors import FetchError
from ..io import (RETRY_STATUS, RetryPolicy, Retryable, Warn, clean_text, is_loopback_url, retry, retry_after_seconds,
                  url_host)
from ..netguard import check_allowed
from ..settings import DEFAULT_API_URL, DEFAULT_RSS_URL, FetchSettings

USER_AGENT = f"ranker/{__version__} (local arXiv ranker; polite: >=3 s between API requests)"


# The largest answer read, as decoded (a gzip-encoded one counts what it unpacks to): a feed is a few MB, an API
# page less. Bodies are held whole, so an answer without end (a proxy's or a mirror's, a gzip bomb: 1.5 MB on
# the wire, 1.5 GB decoded) grew the process until the download timeout or the machine's memory ran out.
MAX_ANSWER = 256 * 1024 * 1024


@dataclass
class NetPolicy:
    timeout: float = 30.0     # seconds without an answer (connect, then between bytes)
    download_timeout: float = 300.0   # seconds one try may take in all, from the request to the body's last byte
    retries: int = 5          # retries after the first try
    backoff: float = 2.0      # seconds before the first retry; doubled each retry
    max_wait: float = 120.0   # the longest single wait; a longer Retry-After ends the fetch at once
    api_delay: float = 3.0    # seconds between two arXiv API requests (arXiv's terms of use)
    max_bytes: int = MAX_ANSWER   # the largest answer read (decoded), held whole in memory
    min_wait: float = 0.0     # no retry comes sooner (the API session sets it to api_delay)
    rss_url: str = DEFAULT_RSS_URL
    api_url: str = DEFAULT_API_URL

    @classmethod
    def from_settings(cls, fetch: FetchSettings) -> "NetPolicy":
        return cls(timeout=fetch.timeout, download_timeout=fetch.download_timeout, retries=fetch.retries,
                   backoff=fetch.backoff, api_delay=fetch.api_delay, rss_url=fetch.rss_url, api_url=fetch.api_url)

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(retries=self.retries, backoff=self.backoff, max_wait=self.max_wait, floor=self.min_wait)


# --------------------------------------------------------------------------- retries
def _make_adapter(policy: NetPolicy, warn: Warn | None, whole_xml: bool = False):
    import requests
    from requests.adapters import HTTPAdapter

    class PoliteAdapter(HTTPAdapter):
        """An HTTPAdapter that retries by itself (ranker.io.retry): backoff, a default timeout, Retry-After."""

        def send(self, request, **kwargs):
            # every request, each hop of a redirect included: offline, a redirect off loopback is refused here,
            # before a name lookup or a connect (and not retried as a network failure)
            check_allowed(request.url)
            # who we are, on every request: arxiv sends its own User-Agent with each API page, over the session's
            request.headers["User-Agent"] = USER_AGENT
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = policy.timeout
            url, host = request.url, url_host(request.url)

            def attempt():
                deadline = time.monotonic() + policy.download_timeout
                try:
                    resp = super(PoliteAdapter, self).send(request, **kwargs)
                except requests.exceptions.Timeout:
                    raise Retryable(f"no answer within {policy.timeout:g} s", kind="timeout") from None
                except requests.exceptions.SSLError as e:
                    if "CERTIFICATE_VERIFY_FAILED" in str(e):
                        # not retried: a certificate this machine does not trust is no passing trouble
                        raise _untrusted(e, url, host) from None
                    raise Retryable(reason_of(e), kind="connection") from None
                except requests.exceptions.ConnectionError as e:
                    raise Retryable(reason_of(e), kind="connection") from None
                if resp.status_code in RETRY_STATUS:
                    resp.close()
                    raise Retryable(f"HTTP {resp.status_code}", status=resp.status_code,
                                    retry_after=retry_after_seconds(resp.headers.get("Retry-After")))
                if not kwargs.get("stream"):
                    # the body is read here, so a connection lost half-way through it is retried too, and so is
                    # an answer that trickles on past the try's deadline
                    try:
                        whole = _read_body(resp, deadline, policy.max_bytes)
                    except _TooBig:
                        resp.close()
                        raise FetchError(f"{host} answered more than {policy.max_bytes / 2**20:g} MiB, more than "
                                         "any feed or API page (a wrong address, or a proxy or mirror sending "
                                         "without end?); a big file is better saved first and read from disk",
                                         where=url) from None
                    except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError):
                        resp.close()
                        raise Retryable("connection lost mid-download", kind="connection") from None
                    if not whole:
                        resp.close()
                        raise Retryable(f"the answer was still coming after {policy.download_timeout:g} s",
                                        kind="slow")
                    if resp.status_code == 200:
                        _not_a_web_page(resp.content, url, host)
                        if whole_xml and (short := _cut_short(resp.content)):
                            resp.close()
                            raise Retryable(short, kind="broken")
                return resp

            def retrying(n: int, e: Retryable, wait: float) -> None:
                if warn:
                    why = f"connection failed ({e.reason})" if e.kind == "connection" else e.reason
                    warn(f"{host}: {why}; retry {n}/{policy.retries} in {wait:.1f} s")

            try:
                return retry(attempt, policy.retry, retrying)
            except Retryable as e:
                raise _gave_up(e, url, host, policy) from None

    return PoliteAdapter()


_PIECE = 64 * 1024


class _TooBig(Exception):
    """An answer longer than the policy's max_bytes."""


def _read_body(resp, deadline: float, limit: int | None = None) -> bool:
    """Read the body of `resp` (a requests.Response whose body is not read yet) into resp.content, as
    requests does, but a piece at a time as it arrives (urllib3's read1), and no later than the try's
    `deadline` (a time.monotonic() value): `resp.content` reads on as long as bytes keep coming. The clock is
    looked at after each piece, and a timer shuts the connection for reading at the deadline (urllib3's
    HTTPResponse.shutdown), which ends a wait for the next bytes there: `timeout` alone let one wait run on
    that long past it, and a read of urllib3's that waits several times before it returns (the size line of
    a chunk, a gzip header, each byte of them trickled) ran on without end. False when the deadline came
    first. A failed read raises what resp.content would; an answer of more than `limit` bytes (as decoded, or
    as its Content-Length says before any is read) raises _TooBig, what was read dropped."""
    import threading

    import requests
    from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

    if limit is not None:
        try:
            declared = int(resp.headers.get("Content-Length") or 0)
        except ValueError:
            declared = 0
        if declared > limit and "Content-Encoding" not in resp.headers:
            raise _TooBig()
    cut = threading.Event()

    def shut() -> None:
        cut.set()
        try:
            resp.raw.shutdown()
        except (ValueError, RuntimeError, OSError):
            pass                # no socket to shut: the body was read whole, its connection given back

    timer = threading.Timer(max(0.0, deadline - time.monotonic()), shut)
    timer.daemon = True
    timer.start()
    pieces, size = [], 0
    try:
        try:
            while piece := resp.raw.read1(_PIECE, decode_content=True):
                pieces.append(piece)
                size += len(piece)
                if limit is not None and size > limit:
                    pieces.clear()
                    raise _TooBig()
                if time.monotonic() > deadline:
                    return False
        except (ProtocolError, DecodeError, ReadTimeoutError, SSLError):
            if not cut.is_set():
                raise
        finally:
            timer.cancel()
            timer.join()
        if cut.is_set():
            return False        # whatever the read said then (a body without a length just ends there)
    # requests' own translation (Response.iter_content)
    except ProtocolError as e:
        raise requests.exceptions.ChunkedEncodingError(e) from None
    except DecodeError as e:
        raise requests.exceptions.ContentDecodingError(e) from None
    except ReadTimeoutError as e:
        raise requests.exceptions.ConnectionError(e) from None
    except SSLError as e:
        raise requests.exceptions.SSLError(e) from None
    resp._content, resp._content_consumed = b"".join(pieces), True
    return True


_HTML = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)\b",
                   re.IGNORECASE | re.DOTALL)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)


def _not_a_web_page(body: bytes, url: str, host: str) -> None:
    """A FetchError for an HTML page answered with 200 where a feed or a file was asked for (arXiv's
    maintenance page, a network's login page, a proxy's error page). Read as a feed it was 'not well-formed
    XML; a truncated download?', and from the arXiv API an answer with no entry: an empty listing."""
    head = body[:8192]
    if not _HTML.match(head):
        return
    m = _TITLE.search(head)
    title = clean_text(" ".join(m.group(1).decode("utf-8", "replace").split()))[:100] if m else ""
    raise FetchError(f"{host} answered a web page{f' ({title!r})' if title else ''} instead of a feed (a "
                     "maintenance page, or a network that wants a login first?): try again later", where=url)


# an XML document's root element: its name, after a byte-order mark, the declaration, comments and a doctype
_ROOT = re.compile(rb"^(?:\xef\xbb\xbf)?\s*(?:<\?[^>]*\?>\s*|<!--.*?-->\s*|<![^>]*>\s*)*<([A-Za-z_][\w.:\-]*)",
                   re.DOTALL)


def _cut_short(body: bytes) -> str | None:
    """What is wrong with `body`, an answer that should be an XML document, when it is not whole: an answer that
    is not XML, or one that does not end with its root element's end tag (a page cut short); None when it is
    whole. Only its ends are looked at: a character XML forbids inside an abstract is no reason to ask again
    (arxiv's parser reads it)."""
    m = _ROOT.match(body[:4096])
    if m is None:
        return "an answer that is not XML"
    end = b"</" + m.group(1) + b">"
    if not body.rstrip().endswith(end):
        return f"a page cut short (it stops before its closing {end.decode('ascii', 'replace')})"
    return None


def _gave_up(e: Retryable, url: str, host: str, policy: NetPolicy) -> FetchError:
    if e.too_long:
        return FetchError(f"{host} answered HTTP {e.status} and asks us to wait {e.retry_after:.0f} s; "
                          "try again later", where=url)
    if e.kind == "timeout":
        return FetchError(f"no answer from {host} within {policy.timeout:g} s ({e.attempts} tries); the server "
                          "may be down, try again later", where=url)
    if e.kind == "slow":
        return FetchError(f"{host} was still sending its answer after {policy.download_timeout:g} s "
                          f"({e.attempts} tries; a proxy or a network that holds the connection open?); try again "
                          "later, or on a very slow link raise {key:fetch.download_timeout}", where=url)
    if e.kind == "connection":
        return FetchError(f"cannot connect to {host} ({e.reason}) after {e.attempts} tries; check the network "
                          "or try again later", where=url)
    if e.kind == "broken":
        return FetchError(f"{host} answered {e.reason} to all {e.attempts} tries; try again later", where=url)
    return FetchError(f"{host} answered HTTP {e.status} to all {e.attempts} tries (arXiv overloaded or rate "
                      "limiting); try again later", where=url)


# what OpenSSL says went wrong, in requests' message: "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)"
_SSL_SAYS = re.compile(r"\[SSL(?:: [A-Z0-9_]+)?\] ([^()]+?)\s*\(_ssl\.c")


def _untrusted(e: Exception, url: str, host: str) -> FetchError:
    """A FetchError for a certificate the machine does not trust (self-signed, another host's, a company
    proxy's that re-signs HTTPS): said in words, with the way to trust it; retrying it only waited a minute."""
    m = re.search(r"certificate verify failed: ([^()]+?)\s*\(_ssl\.c", str(e))
    why = f" ({m.group(1)})" if m else ""
    return FetchError(f"{host}'s certificate is not trusted{why}: on a network that inspects HTTPS (a company "
                      "proxy), set REQUESTS_CA_BUNDLE to the file of its certificate authority", where=url)


def reason_of(e: Exception) -> str:
    """Why a request failed, in words (never the exception's name where its text says more)."""
    import requests

    text = str(e)
    for key in ("Connection refused", "Connection reset", "Name or service not known", "Temporary failure",
                "Network is unreachable", "test guard", "offline mode", "Remote end closed"):
        if key in text:
            return key.lower()
    if m := _SSL_SAYS.search(text):
        return f"the secure connection failed: {m.group(1)}"
    if isinstance(e, requests.exceptions.TooManyRedirects):
        return f"{text.rstrip('.').lower()}: a redirect loop"          # "exceeded 30 redirects"
    return type(e).__name__


def make_session(policy: NetPolicy, url: str, warn: Warn | None = None, *, whole_xml: bool = False):
    """A requests.Session whose every request is retried politely. For a loopback URL the environment's
    proxy settings are ignored (a proxy cannot reach our own loopback). `whole_xml`: a 200 answer that is an
    XML document cut short is retried too (for a reader that would take what it could of it)."""
    import requests

    s = requests.Session()
    adapter = _make_adapter(policy, warn, whole_xml)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    s.headers["User-Agent"] = USER_AGENT
    if is_loopback_url(url):
        s.trust_env = False
    return s


def fetch_bytes(url: str, *, policy: NetPolicy | None = None, warn: Warn | None = None) -> bytes:
    """GET a URL and return the body, or raise FetchError (one line, naming the URL)."""
    import requests

    check_allowed(url)
    policy = policy or NetPolicy()
    session = make_session(policy, url, warn)
    try:
        resp = session.get(url, timeout=policy.timeout)
    except FetchError:
        raise
    except requests.exceptions.RequestException as e:
        raise FetchError(f"request failed ({reason_of(e)})", where=url) from None
    finally:
        session.close()
    if resp.status_code == 404:
        raise FetchError("not found (HTTP 404); check the category names", where=url)
    if resp.status_code != 200:
        raise FetchError(f"HTTP {resp.status_code} {resp.reason or ''}".rstrip(), where=url)
    return resp.content


# --------------------------------------------------------------------------- URLs
def rss_feed_url(categories: list[str], base: str = DEFAULT_RSS_URL) -> str:
    """https://rss.arxiv.org/rss/cs.LG+cs.AI for ['cs.LG', 'cs.AI'] (base: NetPolicy.rss_url)."""
    return base.rstrip("/") + "/" + "+".join(categories)


def window_query(since: str, until: str, categories: list[str]) -> str:
    """The arXiv API query for papers in `categories` submitted between two days (inclusive)."""
    s, u = since.replace("-", ""), until.replace("-", "")
    cats = " OR ".join(f"cat:{c}" for c in categories)
    return f"({cats}) AND submittedDate:[{s}0000 TO {u}2359]"


def window_query_utc(start, end, categories: list[str]) -> str:
    """The arXiv API query for papers in `categories` submitted from `start` up to (not including) `end`,
    two UTC datetimes (the API takes minutes, GMT, both ends included)."""
    from datetime import timedelta
    last = end - timedelta(minutes=1)
    cats = " OR ".join(f"cat:{c}" for c in categories)
    return f"({cats}) AND submittedDate:[{start:%Y%m%d%H%M} TO {last:%Y%m%d%H%M}]"


def api_client(*, policy: NetPolicy | None = None, warn: Warn | None = None, page_size: int = 200):
    """An arxiv.Client talking to policy.api_url through a polite session.

    arxiv 4.0.2 builds request URLs from the class attribute `Client.query_url_format` (set here per
    instance), keeps its requests.Session in `_session` (replaced by ours: timeout, backoff, Retry-After),
    sleeps `delay_seconds` between requests and asks an empty page again `num_retries` times, 3 s apart,
    from `_parse_feed` (overridden here: see _polite_client)."""
    try:
        client_class = _polite_client()
    except ImportError:
        from ..errors import MissingDependency
        raise MissingDependency("arxiv", "", "fetching from the arXiv API") from None
    policy = policy or NetPolicy()
    base = policy.api_url
    check_allowed(base)
    client = client_class(policy, warn, page_size=page_size, delay_seconds=policy.api_delay, num_retries=0)
    client.query_url_format = base + ("&{}" if "?" in base else "?{}")
    # A retry is an API request too: no retry comes sooner than the API's delay. arxiv's parser recovers what it
    # can of a broken page (a truncated one: its last entry without its authors), so a page must be whole.
    client._session = make_session(replace(policy, min_wait=policy.api_delay), base, warn, whole_xml=True)
    return client


def _polite_client():
    import arxiv

    class PoliteClient(arxiv.Client):
        """An arxiv.Client whose empty pages are asked again as the policy says (its retries, its backoff, at
        least the API's delay apart): the API is known to answer a page with no entry for a while, in the
        middle of a listing whose totalResults says more as well as on its first page. arxiv's own two tries,
        6 s in all, ended a listing of several pages with an error where the first page's quirk was ridden
        out, and an empty first page was believed at once (`fetch --ids` reported every id not found, a
        window was 'nothing to do').

        A middle page that stays empty is a FetchError, never a listing ended short. A first page that stays
        empty is believed (nothing matches); `empty_tries` then says how many times it was asked, for a
        caller that knows the answer cannot be empty (a weekday's announcements)."""

        def __init__(self, policy: NetPolicy, warn: Warn | None, **kwargs):
            super().__init__(**kwargs)
            self._policy, self._warn = policy, warn
            self.empty_tries = 0

        def _parse_feed(self, url, first_page=True, _try_index=0):
            empty = []

            def attempt():
                try:
                    # as a later page, so that arxiv raises on an empty first page too (num_retries is 0)
                    return super(PoliteClient, self)._parse_feed(url, first_page=False, _try_index=_try_index)
                except arxiv.UnexpectedEmptyPageError as e:
                    empty[:] = [e.raw_feed]
                    raise Retryable("an empty page (the arXiv API answers none at times)", kind="empty") from None

            def retrying(n: int, e: Retryable, wait: float) -> None:
                if self._warn:
                    self._warn(f"{url_host(url)}: {e.reason}; retry {n}/{self._policy.retries} in {wait:.1f} s")

            rules = self._policy.retry
            rules.backoff = rules.floor = max(rules.backoff, self._policy.api_delay)
            try:
                return retry(attempt, rules, retrying)
            except Retryable as e:
                self.empty_tries = e.attempts
                if first_page:
                    return empty[0]
                raise FetchError(f"the arXiv API answered an empty page {e.attempts} times in the middle of the "
                                 f"listing (from result {_start_of(url)} on; it sometimes does for a while): try "
                                 "again later", where=url) from None

    return PoliteClient


def _start_of(url: str) -> str:
    from urllib.parse import parse_qs, urlsplit
    return (parse_qs(urlsplit(url).query).get("start") or ["?"])[0]
