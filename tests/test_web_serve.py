"""`ranker serve` started for real on 127.0.0.1 (a subprocess) over a store filled by the pipeline, driven by a real
headless Chromium: archive -> day -> paper, thumbs up, reload, labels page; hostile text; cross-site posts;
read-only mode. Plain HTTP checks of the same server cover what a browser would not send."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from ranker.labels import LABEL_WEIGHT, store_training_rows
from ranker.prefilter.history import load_day
from ranker.records import Score
from ranker.store import Store

from conftest import DAYS, RANKER, as_at_a_terminal
from webstore import DAY, HOSTILE_ID, HOSTILE_TITLE, OTHER_DAY, fill_store
from webtools import browser_or_skip, needs_browser, read_only_copy, start_server, watched_page



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    db = tmp / "ranker.sqlite3"
    results = fill_store(db, tmp / "out", days=(DAY, OTHER_DAY))
    server = start_server(db, tmp / "serve.log")
    try:
        yield server, db, results
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium():
    with browser_or_skip() as b:
        yield b


def _get(url: str, headers: dict | None = None) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode("utf-8"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8"), dict(e.headers)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def _post(url: str, fields: dict, headers: dict | None = None) -> tuple[int, str, dict]:
    data = urllib.parse.urlencode(fields).encode()
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.read().decode("utf-8"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8"), dict(e.headers)


def _token(server) -> str:
    import re
    _, html, _ = _get(server.url + "/")
    return re.search(r'<meta name="csrf-token" content="([^"]+)"', html).group(1)


def _label_by_script(server, pid: str, label: str) -> int:
    """POST /label for `pid` as another tab or a script does (the page's token, the same origin): its status."""
    return _post(server.url + "/label", {"paper_id": pid, "label": label, "csrf": _token(server)},
                 {"Origin": server.url})[0]


def _day_ids(page) -> list[str]:
    """The ids of the papers on the page, in its order."""
    return [i[2:] for i in page.locator("article.paper").evaluate_all("els => els.map(e => e.id)")]


def _liked_paper_page(server, chromium, pid: str):
    """(a browser page on paper `pid`, liked through the server first; the page's script errors, as they come)."""
    assert _post(server.url + "/label", {"paper_id": pid, "label": "up", "csrf": _token(server)},
                 {"Origin": server.url, "Accept": "application/json"})[0] == 200
    page, errors = watched_page(chromium)
    page.goto(f"{server.url}/paper/{pid}")
    return page, errors


def _opened(server, db) -> int | None:
    """How many descriptors the server process holds on the database file `db` (it opens a store for a request,
    and closes it after); None where there is no /proc to tell."""
    fds = f"/proc/{server.proc.pid}/fd"
    if not os.path.isdir(fds):
        return None
    want, n = os.path.realpath(db), 0
    for fd in os.listdir(fds):
        try:
            n += os.readlink(os.path.join(fds, fd)) == want
        except OSError:                        # closed meanwhile
            pass
    return n


def _label(db, pid):
    c = sqlite3.connect(db)
    try:
        row = c.execute("SELECT label, day FROM labels WHERE paper_id=?", (pid,)).fetchone()
    finally:
        c.close()
    return row


# ------------------------------------------------------------------------------------------ HTTP

def test_pages_answer_and_unknown_ones_are_404(site):
    server, _, results = site
    for path in ("/", "/month/2025-05", f"/day/{DAY}", f"/paper/{HOSTILE_ID}", "/search?q=diffusion", "/labels",
                 "/static/style.css", "/static/app.js"):
        status, body, headers = _get(server.url + path)
        assert status == 200, (path, body[:300])
        assert "script-src 'self'" in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
    for path in ("/day/2025-01-01", "/day/not-a-day", "/paper/0000.00000", "/month/1999-01"):
        assert _get(server.url + path)[0] == 404, path
    # HEAD (link checkers, `curl -I`): the page's status and headers, no body (FastAPI said 405 to each), wherever
    # GET answers: the labels' JSON too (its HEAD was 405 while its GET worked)
    import http.client
    from urllib.parse import urlsplit
    u = urlsplit(server.url)
    for path, status in (("/", 200), (f"/day/{DAY}", 200), ("/search?q=diffusion", 200), ("/static/app.js", 200),
                         ("/labels.json", 200), ("/labels", 200), ("/month/2025-05", 200),
                         (f"/paper/{HOSTILE_ID}", 200), ("/day/2025-01-01", 404)):
        c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        c.request("HEAD", path)
        r = c.getresponse()
        assert (r.status, r.read()) == (status, b""), path
        assert r.getheader("x-frame-options") == "DENY"
        if path == "/labels.json":
            assert r.getheader("content-type") == "application/json"
        c.close()


def test_the_day_page_lists_the_digest_picks_first_in_the_digest_order(site):
    server, _, results = site
    import json
    import re
    digest = json.loads(results[OTHER_DAY].files["json"].read_text())     # the day's digest JSON, as written
    _, html, _ = _get(f"{server.url}/day/{OTHER_DAY}")
    picks = html.split('<section class="picks">')[1].split("</section>")[0]
    ids = re.findall(r'<article class="paper picked[^"]*" id="p-([^"]+)"', picks)
    assert ids == list(digest) and len(ids) >= 5
    rest = html.split('<section class="rest">')[1]
    n_rest = len(re.findall(r"<article ", rest))
    assert len(ids) + n_rest == results[OTHER_DAY].manifest["counts"]["papers"]
    # filters: picked only; one topic only
    _, html, _ = _get(f"{server.url}/day/{OTHER_DAY}?show=picked")
    assert len(re.findall(r"<article ", html)) == len(ids)
    _, html, _ = _get(f"{server.url}/day/{OTHER_DAY}?show=scored")
    assert len(re.findall(r"<article ", html)) == results[OTHER_DAY].manifest["counts"]["scored"]
    topic = re.search(r'<option value="([^"]+)">', html).group(1)
    _, html, _ = _get(f"{server.url}/day/{OTHER_DAY}?" + urllib.parse.urlencode({"topic": topic}))
    topics = set(re.findall(r'data-topic="([^"]*)"', html))
    assert topics == {topic}


def test_search_by_words(site):
    server, _, _ = site
    _, html, _ = _get(server.url + "/search?q=diffusion+policy")
    assert "by words in titles and abstracts" in html
    assert "Train a Multi-Task Diffusion Policy on RLBench-18" in html
    _, html, _ = _get(server.url + "/search?q=zzzzqqqq")
    assert "0 results" in html


def test_search_by_words_finds_a_name_whatever_letters_it_is_typed_in(tmp_path):
    """"Lukasz" found nothing where a title holds "Łukasz", nor "strasse" an abstract's "Straße": FTS5's unicode61
    removes diacritics but keeps ł, ß, ø, æ whole, while author pins fold them (sources.normalize.unaccented).
    The search folds them alike, and the page shows the paper's text as it is."""
    import re
    from ranker.records import Paper
    db = tmp_path / "ranker.sqlite3"
    with Store(db) as s:
        s.add_papers([Paper(id="1706.03762", title="Notes of Łukasz Kaiser on attention", authors=["Łukasz Kaiser"],
                            abstract="Taken down in a café on the Straße des 17. Juni.", date="2025-05-15"),
                      Paper(id="2505.00002", title="Attention in graphs", abstract="Lukas walks down the street.",
                            date="2025-05-15")])
    server = start_server(db, tmp_path / "serve.log")
    try:
        for q in ("Lukasz", "lukasz", "Łukasz", "strasse", "Straße", "lukasz kaiser strasse"):
            for mode in ("auto", "words"):
                _, html, _ = _get(server.url + "/search?" + urllib.parse.urlencode({"q": q, "mode": mode}))
                assert re.findall(r'<article class="[^"]*" id="p-([^"]+)"', html) == ["1706.03762"], (q, mode)
                status = re.search(r'id="search-status">([^<]*)<', html).group(1)
                assert status.startswith("1 result for") and "by words in titles and abstracts" in status, status
                assert "Notes of Łukasz Kaiser on attention" in html and "on the Straße des 17. Juni." in html
    finally:
        server.stop()


def test_a_search_for_an_arxiv_id_finds_its_paper(site):
    """An arXiv id typed or pasted into the search box (bare, with its version, arXiv:, its abs or pdf link) found
    nothing: "0 results", as no title or abstract holds it. It finds its paper, first and alone."""
    import re
    server, _, _ = site
    pid = "2505.09572"
    for q in (pid, f"{pid}v2", f"arXiv:{pid}", f"https://arxiv.org/abs/{pid}v1", f"https://arxiv.org/pdf/{pid}",
              f" {pid} "):
        for mode in ("auto", "words", "meaning"):
            _, html, _ = _get(server.url + "/search?" + urllib.parse.urlencode({"q": q, "mode": mode}))
            assert re.findall(r'<article class="[^"]*" id="p-([^"]+)"', html) == [pid], (q, mode)
            status = re.search(r'id="search-status">([^<]*)<', html).group(1)
            assert status.startswith("1 result for") and "by arXiv id" in status, status
    _, html, _ = _get(server.url + "/search?q=0000.00001")        # an id the store does not hold: said so
    assert "<article " not in html and "0 results" in html and "no paper 0000.00001 in the store" in html


def test_a_paper_address_with_its_version_is_its_paper(site):
    """/paper/2505.09572v2 (an arXiv address's id, pasted) said "No paper 2505.09572v2 in the store" (404): the
    store holds papers without their version. It leads to the paper's page; an id the store lacks is still 404."""
    server, _, _ = site
    status, _, headers = _get_no_redirect(server.url + "/paper/2505.09572v2")
    assert status == 307 and headers["location"] == "/paper/2505.09572"
    status, html, _ = _get(server.url + "/paper/2505.09572v2")
    assert status == 200 and "arXiv:2505.09572" in html
    assert _get(server.url + "/paper/0000.00001v1")[0] == 404


def _get_no_redirect(url: str) -> tuple[int, str, dict]:
    try:
        with urllib.request.build_opener(_NoRedirect).open(url, timeout=30) as r:
            return r.status, r.read().decode("utf-8"), {k.lower(): v for k, v in r.headers.items()}
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8"), {k.lower(): v for k, v in e.headers.items()}


def test_a_search_with_more_hits_than_shown_does_not_say_the_shown_ones_are_all(site):
    """The page showed the first 50 hits and said "50 results for “learning”" while over 200 papers of the
    store hold the word: the count it prints must not pass its cap off as the number of matches."""
    import re
    server, db, _ = site
    c = sqlite3.connect(db)
    try:
        holding = c.execute("SELECT COUNT(*) FROM papers WHERE title LIKE '%learning%' "
                            "OR abstract LIKE '%learning%'").fetchone()[0]
    finally:
        c.close()
    _, html, _ = _get(server.url + "/search?q=learning&mode=words")
    status = re.search(r'id="search-status">([^<]*)<', html).group(1)
    shown = len(re.findall(r"<article ", html))
    assert 0 < shown < holding
    assert status.startswith(f"more than {shown} results for") and f"the best {shown} shown" in status, status
    _, html, _ = _get(server.url + "/search?q=diffusion+policy&mode=words")     # all shown: the real count
    status = re.search(r'id="search-status">([^<]*)<', html).group(1)
    n = len(re.findall(r"<article ", html))
    assert 0 < n < shown and status.startswith(f"{n} result{'s' if n != 1 else ''} for"), status


def test_a_post_needs_the_token_the_own_origin_and_a_known_host(site):
    server, db, _ = site
    pid = "2505.09572"
    token = _token(server)
    own = {"Origin": server.url}
    assert _post(server.url + "/label", {"paper_id": pid, "label": "up"}, own)[0] == 403            # no token
    assert _post(server.url + "/label", {"paper_id": pid, "label": "up", "csrf": "guess"}, own)[0] == 403
    status, body, _ = _post(server.url + "/label", {"paper_id": pid, "label": "up", "csrf": token},
                            {"Origin": "http://evil.example"})
    assert status == 403 and "cross-site" in body
    status, _, _ = _post(server.url + "/label", {"paper_id": pid, "label": "up", "csrf": token},
                         {"Referer": "http://evil.example/page"})
    assert status == 403
    assert _post(server.url + "/label", {"paper_id": pid, "label": "up", "csrf": token},
                 {**own, "Host": "evil.example"})[0] == 400                                            # DNS rebinding
    assert _get(server.url + "/", {"Host": "rebound.example"})[0] == 400
    assert _label(db, pid) is None
    status, _, headers = _post(server.url + "/label", {"paper_id": pid, "label": "up", "csrf": token,
                                                        "next": "https://evil.example/"}, own)
    assert status == 303 and headers["location"] == "/"                 # never redirected off the app
    assert _label(db, pid) == (1, DAY)                                   # the day it was given on: the paper's
    status, _, _ = _post(server.url + "/label", {"paper_id": pid, "label": "down", "csrf": token,
                                                  "day": "2025-06-01\n"}, own)
    assert status == 303 and _label(db, pid) == (-1, DAY)             # no day with a line break (export breaks)
    status, _, _ = _post(server.url + "/label", {"paper_id": pid, "label": "undo", "csrf": token}, own)
    assert status == 303 and _label(db, pid) is None
    assert _post(server.url + "/label", {"paper_id": "nope", "label": "up", "csrf": token}, own)[0] == 404
    assert _post(server.url + "/label", {"paper_id": pid, "label": "sideways", "csrf": token}, own)[0] == 400


def _post_from(source: str, url: str, fields: dict, headers: dict) -> int:
    """POST `fields` to `url` from the loopback address `source` (127.0.0.2: a machine other than the
    server's own 127.0.0.1, as a proxy on a gateway is); the answer's status."""
    import http.client
    u = urllib.parse.urlsplit(url)
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30, source_address=(source, 0))
    try:
        c.request("POST", u.path, urllib.parse.urlencode(fields),
                  {"Content-Type": "application/x-www-form-urlencoded", **headers})
        return c.getresponse().status
    finally:
        c.close()


def test_a_named_proxy_on_another_machine_is_believed_for_https_and_no_one_else(tmp_path):
    """serve behind an HTTPS proxy on another machine (nginx on a gateway) refused every label post as cross-site:
    the browser's Origin is https://NAME, and X-Forwarded-Proto was believed from 127.0.0.1 only. A proxy named by
    --trusted-proxies (serve.trusted_proxies, RANKER_TRUSTED_PROXIES) is believed; any other address never."""
    db = tmp_path / "ranker.sqlite3"
    fill_store(db, tmp_path / "out", days=(DAY,), n=2, hostile=False)
    with Store(db) as s:
        pid = s.day_paper_ids(DAY)[0]
    for args, env in ((("--trusted-proxies", "127.0.0.2"), {}), ((), {"RANKER_TRUSTED_PROXIES": "127.0.0.0/30"})):
        server = start_server(db, tmp_path / "proxied.log", *args, env=env)
        try:
            host = urllib.parse.urlsplit(server.url).netloc
            # what nginx sends: the browser's Host and Origin (https), and the scheme it was reached by
            proxied = {"Host": host, "Origin": f"https://{host}", "X-Forwarded-Proto": "https",
                       "X-Forwarded-For": "192.0.2.7"}
            form = {"paper_id": pid, "label": "up", "csrf": _token(server)}
            assert _post_from("127.0.0.5", server.url + "/label", form, proxied) == 403      # not named: refused
            assert _label(db, pid) is None
            assert _post_from("127.0.0.2", server.url + "/label", form, proxied) == 303
            assert _label(db, pid) == (1, DAY)
            # the proxy's word is believed for the scheme, not for a page of another site
            assert _post_from("127.0.0.2", server.url + "/label", {**form, "label": "undo"},
                              {**proxied, "Origin": "https://evil.example"}) == 403
            assert _post_from("127.0.0.2", server.url + "/label", {**form, "label": "undo"}, proxied) == 303
            assert _label(db, pid) is None
        finally:
            server.stop()
    server = start_server(db, tmp_path / "plain.log")           # none named: as before, refused
    try:
        host = urllib.parse.urlsplit(server.url).netloc
        assert _post_from("127.0.0.2", server.url + "/label", {"paper_id": pid, "label": "up", "csrf": _token(server)},
                          {"Host": host, "Origin": f"https://{host}", "X-Forwarded-Proto": "https"}) == 403
    finally:
        server.stop()
    assert _label(db, pid) is None


def test_a_proxy_is_believed_from_ipv6_loopback_and_on_a_dual_stack_socket_and_no_variable_widens_it(tmp_path):
    """Naming a proxy on another machine stopped believing one on this machine reached at [::1] (uvicorn's own list
    has 127.0.0.1 and ::1; ranker's had 127.0.0.1 alone); on `--host ::` (one socket for both families) an IPv4
    proxy connects as ::ffff:127.0.0.2, which uvicorn did not match to 127.0.0.2: the named proxy's label posts
    were refused as cross-site; and FORWARDED_ALLOW_IPS=* in the environment (uvicorn's) believed anyone's."""
    import socket
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    db = tmp_path / "ranker.sqlite3"
    fill_store(db, tmp_path / "out", days=(DAY,), n=2, hostile=False)
    with Store(db) as s:
        pid = s.day_paper_ids(DAY)[0]

    def post(server, source: str, url: str) -> int:
        host = urllib.parse.urlsplit(url).netloc
        proxied = {"Host": host, "Origin": f"https://{host}", "X-Forwarded-Proto": "https"}
        status = _post_from(source, url + "/label", {"paper_id": pid, "label": "up", "csrf": _token(server)}, proxied)
        if status == 303:
            _post_from(source, url + "/label", {"paper_id": pid, "label": "undo", "csrf": _token(server)}, proxied)
        return status

    server = start_server(db, tmp_path / "v6.log", "--host", "::1", "--trusted-proxies", "10.0.0.5")
    try:
        assert post(server, "::1", server.url) == 303
    finally:
        server.stop()
    server = start_server(db, tmp_path / "dual.log", "--host", "::", "--trusted-proxies", "127.0.0.2",
                          env={"FORWARDED_ALLOW_IPS": "*"})
    try:
        port = urllib.parse.urlsplit(server.url).port
        v4 = f"http://127.0.0.1:{port}"
        assert post(server, "127.0.0.2", v4) == 303          # the named proxy, as ::ffff:127.0.0.2
        assert post(server, "127.0.0.1", v4) == 303          # this machine's, as ::ffff:127.0.0.1
        assert post(server, "127.0.0.5", v4) == 403          # anyone else, whatever FORWARDED_ALLOW_IPS says
    finally:
        server.stop()
    assert "FORWARDED_ALLOW_IPS is not read" in (tmp_path / "dual.log").read_text()
    assert _label(db, pid) is None


def test_a_trusted_proxy_that_is_not_an_address_is_one_line(tmp_path):
    r = subprocess.run([*RANKER, "serve", "--port", "0", "--trusted-proxies", "gateway.lab"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "RANKER_HOME": str(tmp_path / "home")})
    assert r.returncode == 1 and r.stderr.startswith("error: --trusted-proxies: 'gateway.lab' is not an IP address "
                                                     "or network"), r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_an_address_no_route_has_is_a_page_with_the_way_back(site):
    """A mistyped address (/days/..., an old bookmark) or a GET of /label was Starlette's bare JSON
    {"detail": "Not Found"}, no page and no link back: a page in words, the address as text; JSON for a script."""
    server, _, _ = site
    for path, status in (("/days/2025-05-15", 404), ("/nope%3Cb%3Ebold%3C/b%3E", 404), ("/static/nope.css", 404),
                         ("/label", 405)):
        got, body, headers = _get(server.url + path)
        headers = {k.lower(): v for k, v in headers.items()}
        assert got == status and headers["content-type"].startswith("text/html"), (path, body[:200])
        assert 'href="/">Back to the archive</a>' in body and "<b>bold" not in body, path
        assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "No page at /nope&lt;b&gt;bold&lt;/b&gt;." in _get(server.url + "/nope%3Cb%3Ebold%3C/b%3E")[1]
    assert {k.lower(): v for k, v in _get(server.url + "/label")[2].items()}["allow"] == "POST"
    status, body, _ = _get(server.url + "/days/x", {"Accept": "application/json"})
    assert status == 404 and json.loads(body) == {"error": "No page at /days/x."}


def test_a_host_name_refused_is_answered_with_how_to_allow_it_and_logged_once(site):
    """A colleague opening the server by a name it does not answer to (a fully qualified name getfqdn does not
    give) saw a bare "unknown Host header", and the server's log held nothing: the answer says how its owner
    allows another name; the log says the name refused and the names served, once however often it comes. The
    names served are not in the answer: a DNS-rebinding page reads it as its own."""
    server, _, _ = site
    for _ in range(3):
        status, body, headers = _get(server.url + "/", {"Host": "papers.colleague.example:8000"})
        assert status == 400, body
    assert "'papers.colleague.example'" in body and "localhost" not in body and "127.0.0.1" not in body, body
    headers = {k.lower(): v for k, v in headers.items()}
    assert "--allow-host NAME" in body and headers.get("x-content-type-options") == "nosniff"
    logged = [ln for ln in server.log.read_text().splitlines() if "papers.colleague.example" in ln]
    assert len(logged) == 1 and "refused" in logged[0] and "localhost" in logged[0], logged


def test_a_client_that_drops_mid_body_is_a_quiet_end(site):
    """A client that hung up while sending a label's POST (a closed laptop, a killed script) left a
    ClientDisconnect traceback in the serve log: it is the quiet end it is, and nothing is stored."""
    import socket
    import time
    server, db, _ = site
    pid = "2505.09572"
    before, logged = _label(db, pid), len(server.log.read_text())
    host, port = server.url.split("//", 1)[1].rsplit(":", 1)
    body = urllib.parse.urlencode({"paper_id": pid, "label": "down", "csrf": _token(server)}).encode()
    for _ in range(3):
        with socket.create_connection((host, int(port)), timeout=10) as c:
            c.sendall(b"POST /label HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                      b"Content-Length: %d\r\n\r\n" % (host.encode(), port.encode(), len(body) + 100) + body)
            time.sleep(0.2)
    time.sleep(0.5)
    assert _get(server.url + "/")[0] == 200                   # the server goes on
    log = server.log.read_text()[logged:]
    assert "Traceback" not in log and "ClientDisconnect" not in log, log[-3000:]
    assert _label(db, pid) == before


def test_a_label_posted_with_a_date_that_is_none_is_stored_under_the_papers_day(site, tmp_path):
    """A script's POST with day=2025-02-30 (the shape of a day, no date) stored that day, and `labels export` wrote
    it into a file that `labels import` refuses whole ("'day' must be a day"): the paper's own day is taken, as
    for any day this app never wrote."""
    from conftest import ranker
    server, db, _ = site
    pid = "2505.09027"
    status, _, _ = _post(server.url + "/label", {"paper_id": pid, "label": "down", "csrf": _token(server),
                                                  "day": "2025-02-30"}, {"Origin": server.url})
    try:
        assert status == 303 and _label(db, pid) == (-1, DAY)
        out = tmp_path / "labels.jsonl"
        assert ranker("labels", "export", out, "--db", db).returncode == 0
        Store(tmp_path / "other.sqlite3").close()
        r = ranker("labels", "import", out, "--db", tmp_path / "other.sqlite3")
        assert r.returncode == 0, r.stderr
    finally:
        _post(server.url + "/label", {"paper_id": pid, "label": "undo", "csrf": _token(server)}, {"Origin": server.url})


def test_a_label_posted_on_an_id_as_arxiv_writes_it_labels_its_paper(site):
    """A script's label on the id it read off arXiv (2505.09115v3, arXiv:2505.09115) was "No paper" (404), the
    store holding its papers without their version, though the paper's page and `labels import` take such an id
    as its paper: the label is its paper's, and the answer names the id stored."""
    server, db, _ = site
    pid, token = "2505.09115", _token(server)
    own = {"Origin": server.url, "Accept": "application/json"}
    status, body, _ = _post(server.url + "/label", {"paper_id": f"{pid}v3", "label": "up", "csrf": token}, own)
    assert status == 200 and json.loads(body) == {"paper_id": pid, "label": 1, "day": DAY}, body
    assert _label(db, pid) == (1, DAY) and _label(db, f"{pid}v3") is None
    status, body, _ = _post(server.url + "/label", {"paper_id": f"arXiv:{pid}", "label": "undo", "csrf": token}, own)
    assert status == 200 and _label(db, pid) is None


def test_read_only_mode_hides_the_buttons_and_refuses_posts(site, tmp_path):
    _, db, _ = site
    ro = start_server(db, tmp_path / "ro.log", "--read-only")
    try:
        _, html, _ = _get(f"{ro.url}/day/{DAY}")
        assert "<article " in html and 'class="thumbs"' not in html and "csrf-token" not in html
        assert "Read-only" in html
        status, body, _ = _post(ro.url + "/label", {"paper_id": "2505.09572", "label": "up", "csrf": "x"},
                                {"Origin": ro.url})
        assert status == 403 and "read-only" in body
    finally:
        ro.stop()
    assert _label(db, "2505.09572") is None


def _on_disk(db) -> dict:
    """The database's file and its write-ahead log, as bytes and modification time (what a write would change)."""
    files = (db, db.with_name(db.name + "-wal"))
    return {f.name: (f.read_bytes(), f.stat().st_mtime_ns) for f in files if f.exists()}


def test_read_only_serve_writes_nothing_to_an_older_store_it_can_read(tmp_path, monkeypatch):
    """`ranker serve --read-only` opened the store for writing, at start and for every page: an older store's
    schema was upgraded (migrations run), a dead process's run marked interrupted, the word index built by a
    search. Opened read-only, it writes nothing (here with another process holding the store open, its writes in
    the -wal): pages, labels and search by words (scanning the papers) are served from the store as it is."""
    from ranker.migrations import MIGRATIONS
    from ranker.store import HOST
    db = tmp_path / "ranker.sqlite3"
    before_m007 = [m.__name__ for m in MIGRATIONS].index("m007_word_index_folded")
    monkeypatch.setattr("ranker.store.MIGRATIONS", MIGRATIONS[:before_m007])  # the store a ranker before m007 left
    fill_store(db, tmp_path / "out", days=(DAY,), n=4, hostile=False)
    with Store(db) as s:
        pid = s.day_paper_ids(DAY)[0]
        title = s.get_paper(pid).title
        s.set_label(pid, 1, DAY)
        with s.transaction() as c:                        # a run whose process is gone: a writable open marks it
            c.execute("INSERT INTO runs (kind, started_at, status, pid, host) VALUES ('run', 1, 'running', ?, ?)",
                      (2 ** 22 + 12345, HOST))
    monkeypatch.undo()
    other = sqlite3.connect(db, isolation_level=None)     # a writer still at work: its write not checkpointed
    try:
        other.execute("PRAGMA wal_autocheckpoint=0")
        other.execute("UPDATE papers SET comment='in the log' WHERE id=?", (pid,))
        before = _on_disk(db)
        assert len(before[db.name + "-wal"][0]) > 0
        ro = start_server(db, tmp_path / "ro.log", "--read-only")
        try:
            status, html, _ = _get(f"{ro.url}/day/{DAY}")
            assert status == 200 and "<article " in html and "Read-only" in html
            status, html, _ = _get(f"{ro.url}/search?q={urllib.parse.quote(title.split()[0])}")
            assert status == 200 and f"/paper/{pid}" in html, html[-2000:]
            status, html, _ = _get(f"{ro.url}/paper/{pid}")
            assert status == 200 and "in the log" in html
            assert _get(f"{ro.url}/labels")[0] == 200
        finally:
            ro.stop()
        assert _on_disk(db) == before
        names = {r[0] for r in other.execute("SELECT name FROM _migrations")}
        assert "m007_word_index_folded" not in names
        assert other.execute("SELECT status FROM runs WHERE kind='run' AND started_at=1").fetchone() == ("running",)
        assert not other.execute("SELECT 1 FROM sqlite_master WHERE name LIKE 'papers_fts%'").fetchone()
    finally:
        other.close()


def _tree(folder) -> dict:
    """Every file under `folder` (the database's own and its -wal/-shm aside) with its bytes and modification time."""
    return {str(f.relative_to(folder)): (f.read_bytes(), f.stat().st_mtime_ns) for f in sorted(folder.rglob("*"))
            if f.is_file() and not f.name.startswith("ranker.sqlite3")}


def test_read_only_serve_writes_no_corpus_index_and_uses_one_that_is_current(tmp_path):
    """`ranker serve --read-only` built the FAISS corpus index beside the database on the first page that
    searched it (a paper's similar papers, a search by meaning). It writes nothing there now: without a current
    index the exact index is built in memory from the store (its pages said the index needs writing, and had no
    similar papers, where the server had them before), and once another command has brought the index up to
    the store, the read-only server uses it as it stands, its files untouched."""
    from ranker.index import CorpusIndex
    from webstore import EMBEDDER
    home = tmp_path / "home"
    home.mkdir()
    db = home / "ranker.sqlite3"
    fill_store(db, tmp_path / "out", days=(DAY,), n=6, hostile=False)
    with Store(db) as s:
        pid = s.day_paper_ids(DAY)[0]
        index_dir = CorpusIndex(s, EMBEDDER).dir
    for f in sorted(home.rglob("*"), reverse=True):       # the index the day's run built: gone
        if f.is_relative_to(index_dir.parent):
            f.rmdir() if f.is_dir() else f.unlink()
    before = _tree(home)
    ro = start_server(db, tmp_path / "ro.log", "--read-only", "--embedder", EMBEDDER,
                      env={"RANKER_HOME": str(tmp_path / "elsewhere")})
    try:
        status, html, _ = _get(f"{ro.url}/paper/{pid}")
        assert status == 200 and "<h2>Similar papers</h2>" in html and 'class="similar"' in html, html[-3000:]
        assert "needs writing" not in html
        assert _tree(home) == before and not index_dir.parent.exists()
        with Store(db) as s:                              # another command brings the index up to the store
            CorpusIndex(s, EMBEDDER).sync()
        built = _tree(home)
        status, html, _ = _get(f"{ro.url}/paper/{pid}")
        assert status == 200 and "<h2>Similar papers</h2>" in html and 'class="similar"' in html, html[-3000:]
        assert _tree(home) == built
    finally:
        ro.stop()


def test_read_only_serve_refuses_a_store_whose_schema_it_cannot_read_in_one_line(tmp_path):
    """A store from before m004 (the columns a score's page reads) cannot be served without an upgrade, which
    --read-only upgraded anyway: refused at start in one line saying how to upgrade it, nothing written."""
    from test_store import v1_database
    db = tmp_path / "ranker.sqlite3"
    v1_database(db, 3)
    c = sqlite3.connect(db)
    c.execute("PRAGMA journal_mode=WAL")                  # as every ranker left its database
    c.close()
    before = _on_disk(db)
    assert list(before) == [db.name]                      # (closed cleanly: no -wal)
    r = subprocess.run([*RANKER, "serve", "--read-only", "--port", "0", "--db", str(db)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and r.stdout == "", r.stderr
    assert r.stderr == (f"error: --db {db}: opened read-only, and its schema is older than this ranker's (it "
                        "lacks m004_score_cached_tokens, m005_run_owner, m006_score_text), which only an open that may "
                        "write upgrades: start ranker serve once without --read-only (or run any command that "
                        "writes to it) to upgrade it\n")
    after = _on_disk(db)
    # SQLite's reader may make the empty -wal (and -shm) a WAL database is read with, never more
    assert after[db.name] == before[db.name] and after.get(db.name + "-wal", (b"",))[0] == b""
    c = sqlite3.connect(db)
    assert c.execute("PRAGMA user_version").fetchone() == (3,)
    c.close()


def test_read_only_serve_makes_no_database(tmp_path):
    home = tmp_path / "home"
    r = subprocess.run([*RANKER, "serve", "--read-only", "--port", "0"], capture_output=True, text=True,
                       timeout=60, env={**os.environ, "RANKER_HOME": str(home)})
    assert r.returncode == 1 and "no database there, and --read-only makes none" in r.stderr, r.stderr
    assert not (home / "ranker.sqlite3").exists()


def test_the_guards_refusals_carry_the_security_headers_every_answer_does(site, tmp_path):
    """The guard's own 403s (a post to a read-only server, a cross-site post) were plain text without the headers
    every other answer carries (CSP, X-Frame-Options, nosniff, Referrer-Policy, CORP): as any page, over HTTP."""
    from ranker.web.security import HEADERS
    server, db, _ = site

    def carries_them(answer, why):
        status, body, headers = answer
        headers = {k.lower(): v for k, v in headers.items()}
        assert status == 403 and why in body, body
        assert {k: headers.get(k.lower()) for k in HEADERS} == HEADERS, why
        assert headers["cache-control"] == "no-store"

    carries_them(_post(server.url + "/label", {"paper_id": "2505.09572", "label": "up", "csrf": _token(server)},
                       {"Origin": "http://evil.example"}), "cross-site")
    ro = start_server(db, tmp_path / "ro.log", "--read-only")
    try:
        carries_them(_post(ro.url + "/label", {"paper_id": "2505.09572", "label": "up", "csrf": "x"},
                           {"Origin": ro.url}), "read-only")
    finally:
        ro.stop()
    assert _label(db, "2505.09572") is None


def test_a_store_on_read_only_media_is_served_read_only_and_says_why(site, tmp_path):
    """A store on read-only media (a tmpfs mounted read-only; for another user, a file and folder not writable)
    was served with its thumbs, and every click failed with "The store failed" (500): it is served read-only,
    the command's line and every page saying why, and a POST is refused as with --read-only; a paper's page lists
    its similar papers from an exact index built in memory (none can be written beside the store)."""
    server, db, _ = site
    media = tmp_path / "media"
    with read_only_copy(db, media):
        ro = start_server(media / "ranker.sqlite3", tmp_path / "ro.log")
        try:
            line = ro.log.read_text().splitlines()[0]
            assert line.startswith("serving http://") and f"(read-only: {media / 'ranker.sqlite3'} cannot be " \
                "written: " in line, line
            _, html, _ = _get(f"{ro.url}/day/{DAY}")
            assert "<article " in html and 'class="thumbs"' not in html and "csrf-token" not in html
            assert f"Read-only: feedback is off ({media / 'ranker.sqlite3'} cannot be written: " in html
            # its paper pages had no similar papers (the corpus index cannot be built beside the store): the
            # exact index is built in memory, nothing written
            _, html, _ = _get(f"{ro.url}/paper/{urllib.parse.quote(HOSTILE_ID)}")
            assert "<h2>Similar papers</h2>" in html and 'class="similar"' in html and "None shown" not in html
            assert not any(p.name.startswith("faiss") for p in media.iterdir())
            assert "<h2>Similar papers</h2>" in _get(f"{server.url}/paper/{urllib.parse.quote(HOSTILE_ID)}")[1]
            status, body, _ = _post(ro.url + "/label", {"paper_id": "2505.09572", "label": "up", "csrf": "x"},
                                    {"Origin": ro.url})
            assert status == 403 and "read-only" in body
        finally:
            ro.stop()


def test_a_damaged_store_is_said_in_words_on_every_page(site, tmp_path):
    """A database whose papers SQLite cannot read (a damaged file: "database disk image is malformed") opened
    at start, and every page showing papers was a bare "Internal Server Error", the words in the log file only:
    each says which file and what SQLite found, to the page and to the page's script, as any store failure is."""
    _, db, _ = site
    damaged = tmp_path / "damaged.sqlite3"
    with closing(sqlite3.connect(db)) as src, closing(sqlite3.connect(damaged)) as copy:
        src.backup(copy)
        root = copy.execute("SELECT rootpage FROM sqlite_master WHERE name = 'papers'").fetchone()[0]
        size = copy.execute("PRAGMA page_size").fetchone()[0]
    with open(damaged, "r+b") as f:                   # the papers table's first page, zeroed
        f.seek((root - 1) * size)
        f.write(bytes(size))
    srv = start_server(damaged, tmp_path / "damaged.log")
    try:
        said = f"{damaged}: not a usable ranker database (database disk image is malformed)"
        for path in (f"/day/{DAY}", "/paper/2505.09572", "/search?q=diffusion&mode=words"):
            status, body, _ = _get(srv.url + path)
            assert status == 500 and "<h1>The store failed</h1>" in body and said in body, (path, status, body[:300])
        status, body, _ = _get(f"{srv.url}/day/{DAY}", {"Accept": "application/json"})
        assert status == 500 and json.loads(body) == {"error": said}
    finally:
        srv.stop()


def test_a_busy_database_is_said_in_words_and_holds_up_only_its_own_request(site):
    """Another process holds the write lock (a long run's transaction): a thumb waits the app's busy timeout,
    then says so in words (503, JSON for the script, a page for a plain form), while every other page answers
    at once; the click stored nothing, and works once the lock is gone."""
    import time
    from ranker.web.app import BUSY_TIMEOUT
    server, db, _ = site
    pid, token = "2505.07363", _token(server)
    own = {"Origin": server.url, "Accept": "application/json"}
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        answers: dict = {}
        t = threading.Thread(target=lambda: answers.update(
            post=_post(server.url + "/label", {"paper_id": pid, "label": "down", "csrf": token}, own)))
        t.start()
        time.sleep(0.5)
        t0 = time.monotonic()
        assert _get(server.url + "/")[0] == 200
        assert time.monotonic() - t0 < BUSY_TIMEOUT / 2          # not queued behind the waiting write
        t.join(60)
        status, body, _ = answers["post"]
        assert status == 503 and "database is locked" in json.loads(body)["error"]
        status, body, _ = _post(server.url + "/label", {"paper_id": pid, "label": "down", "csrf": token},
                                {"Origin": server.url})
        assert status == 503 and "<h1>The database is busy</h1>" in body and "Traceback" not in body
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert _label(db, pid) is None
    assert _post(server.url + "/label", {"paper_id": pid, "label": "down", "csrf": token}, own)[0] == 200
    assert _label(db, pid)[0] == -1
    assert _post(server.url + "/label", {"paper_id": pid, "label": "undo", "csrf": token}, own)[0] == 200


def test_a_busy_database_with_a_run_recorded_as_running_does_not_say_that_run_holds_it(site):
    """With one run recorded as running (here: a live process's `ranker score`) and the write lock held by a
    command that records no run (`ranker prefilter`, a `labels import`, another program: here sqlite3), the 503
    said "held by ranker score, pid ...": which process holds a lock SQLite does not say. It names the run as the
    likely holder and says who else may hold it, in the one line every "database is locked" error has."""
    import socket
    import sys
    import time
    server, db, _ = site
    pid, token = "2505.07363", _token(server)
    run = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("INSERT INTO runs (kind, started_at, status, params, pid, host) VALUES ('score', ?, "
                       "'running', '{}', ?, ?)", (time.time(), run.pid, socket.gethostname()))
        holder.execute("BEGIN IMMEDIATE")
        status, body, _ = _post(server.url + "/label", {"paper_id": pid, "label": "down", "csrf": token},
                                {"Origin": server.url, "Accept": "application/json"})
        holder.execute("ROLLBACK")
    finally:
        if holder.in_transaction:
            holder.execute("ROLLBACK")
        holder.execute("DELETE FROM runs WHERE pid=?", (run.pid,))
        holder.close()
        run.stdin.close()
        run.wait()
    said = json.loads(body)["error"]
    assert status == 503 and "database is locked" in said and len(said.splitlines()) == 1, said
    assert "held by" not in said
    assert f"(probably ranker score, pid {run.pid}, running since " in said
    assert "the run recorded as running), or a command that records no run" in said
    assert "eval" in said.split("records no run")[1]           # it scores with no run recorded
    assert _label(db, pid) is None


def test_two_quick_thumbs_on_a_busy_database_keep_the_last_one(site):
    """Two thumbs on one paper while another process holds the write lock: both wait, and once the lock is
    gone the later click's label is the one stored. They used to wait side by side in SQLite's busy handler,
    which polls a waiter less often the longer it has waited, so the earlier click mostly took the lock last
    and its label stayed (five rounds: a race the later click sometimes wins by chance must not pass)."""
    import time
    server, db, _ = site
    pid, token = "2505.08792", _token(server)
    own = {"Origin": server.url, "Accept": "application/json"}
    answers: dict = {}

    def click(label):
        answers[label] = _post(server.url + "/label", {"paper_id": pid, "label": label, "csrf": token}, own)

    click("undo")                              # (no label yet: changes nothing; the server's first label post)
    for earlier, later, stays in (("down", "up", 1), ("undo", "down", -1), ("up", "down", -1), ("undo", "up", 1),
                                  ("down", "undo", 0)):
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            idle = _opened(server, db)
            first = threading.Thread(target=click, args=(earlier,))
            first.start()
            # the first click in its turn before the second is sent, however late a loaded machine sent it (1.5 s
            # late, a fixed 1 s wait sent the second first): the server opens the store only in a paper's turn
            deadline = time.monotonic() + 30
            while idle is not None and _opened(server, db) <= idle and first.is_alive() and \
                    time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(1.0)                    # the first click waits on the lock a while, the second one briefly
            second = threading.Thread(target=click, args=(later,))
            second.start()
            time.sleep(0.1)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        first.join(30)
        second.join(30)
        assert answers[earlier][0] == 200 and answers[later][0] == 200
        assert (_label(db, pid) or (0,))[0] == stays, (earlier, later)
    with Store(db) as s:                       # every click stored, in the order given
        assert [e["label"] for e in s.label_events(pid)] == [-1, 1, 0, -1, 1, -1, 0, 1, -1, 0]


def test_a_label_from_a_page_that_missed_a_change_made_elsewhere_is_refused_with_the_stored_one(site):
    """A post says the label its page showed (seen). One from a page that did not see a label given since
    elsewhere (another tab) is refused (409) with the label stored, nothing written: its undo took the other's
    label away, its thumb overwrote it. Without seen (a script, curl) a label is written as it says."""
    server, db, _ = site
    pid, token = "2505.08821", _token(server)
    own = {"Origin": server.url, "Accept": "application/json"}

    def click(label, seen=None, headers=own):
        fields = {"paper_id": pid, "label": label, "csrf": token, **({} if seen is None else {"seen": seen})}
        status, body, _ = _post(server.url + "/label", fields, headers)
        return status, (json.loads(body) if "json" in headers.get("Accept", "") else body)

    assert _label(db, pid) is None
    assert click("up", "0") == (200, {"paper_id": pid, "label": 1, "day": DAY})         # tab A: up
    assert click("down")[0] == 200 and _label(db, pid)[0] == -1                        # tab B (no seen): down
    status, d = click("undo", "1")                      # tab A, still showing up, clicks its pressed thumb
    assert status == 409 and d["stale"] is True and d["label"] == -1 and "thumbs down now" in d["error"]
    assert _label(db, pid)[0] == -1
    assert click("up", "0")[1]["label"] == -1 and _label(db, pid)[0] == -1      # nor overwritten by a thumb
    status, body = click("undo", "1", {"Origin": server.url})                    # a plain form: a page in words
    assert status == 409 and "<h1>Changed elsewhere</h1>" in body and "Nothing was changed" in body
    assert click("down", "1") == (200, {"paper_id": pid, "label": -1, "day": DAY})     # what it asks is stored
    with Store(db) as s:
        assert [e["label"] for e in s.label_events(pid)] == [1, -1]
    status, body, _ = _get(server.url + "/labels.json")
    assert status == 200 and json.loads(body)["labels"][pid] == -1
    assert click("up", "sideways")[0] == 400 and _label(db, pid)[0] == -1
    assert click("undo", "-1")[0] == 200 and _label(db, pid) is None
    assert pid not in json.loads(_get(server.url + "/labels.json")[1])["labels"]


def test_a_refused_plain_form_links_back_to_the_page_it_was_on(site):
    """A thumb refused without the page's script (changed elsewhere: 409; a server restarted since: 403) said to
    reload the page and click again, but the page on screen was the refusal: its reload posted the same form and
    was refused again, and its only link went to the archive. It links back to the page the form was on, which
    shows the label stored now; a `next` that is not this app's own path is not linked."""
    import re
    server, db, _ = site
    pid, token, here = "2505.08838", _token(server), f"/day/{DAY}?topic=&show=all#p-2505.08838"
    form = {"paper_id": pid, "csrf": token, "next": here}
    status, _, headers = _post(server.url + "/label", {**form, "label": "up"}, {"Origin": server.url})
    assert status == 303 and headers["location"] == here                 # taken: back to the page, as it was
    status, body, _ = _post(server.url + "/label", {**form, "label": "undo", "seen": "0"}, {"Origin": server.url})
    assert status == 409 and "<h1>Changed elsewhere</h1>" in body
    back = re.findall(r'<a href="([^"]+)">Back to the page</a>', body)
    assert [b.replace("&amp;", "&") for b in back] == [here]
    status, page, _ = _get(server.url + here.split("#")[0])
    assert status == 200 and f'data-paper="{pid}" data-label="1"' in page
    status, body, _ = _post(server.url + "/label", {**form, "label": "down", "csrf": "a-restarted-server-s"},
                            {"Origin": server.url})
    assert status == 403 and "Back to the page" in body and _label(db, pid)[0] == 1
    status, body, _ = _post(server.url + "/label", {**form, "label": "undo", "seen": "0", "next": "//evil.example/"},
                            {"Origin": server.url})
    assert status == 409 and "Back to the page" not in body and "evil" not in body


def _banner(server, day: str) -> str:
    import re
    status, html, _ = _get(f"{server.url}/day/{day}")
    assert status == 200
    m = re.search(r'<p class="banner run-[^"]*"[^>]*>(.*?)</p>', html, re.S)
    return m.group(1) if m else ""


def test_a_day_whose_latest_run_failed_is_running_or_was_stopped_says_so(site):
    """A day whose `ranker run` failed said only "not ranked yet" (or showed an older run's digest as the
    latest word), as if the store held its papers from a history: the day's page says how its latest run
    ended, with the error, while a run is under way, and nothing once a run has ended well."""
    server, db, _ = site
    assert _banner(server, OTHER_DAY) == ""
    with Store(db) as s:
        with pytest.raises(RuntimeError):
            with s.recording("run", {"day": OTHER_DAY}):
                raise RuntimeError("the scoring server went away <b>mid-day</b>")
    said = _banner(server, OTHER_DAY)
    assert "failed: the scoring server went away &lt;b&gt;mid-day&lt;/b&gt;" in said
    assert "This is the digest of an earlier run." in said
    assert _banner(server, DAY) == ""                           # another day's run is not this one's
    with Store(db) as s:
        with s.recording("run", {"day": OTHER_DAY}):          # this process lives: the run is under way
            assert "A run of this day is under way" in _banner(server, OTHER_DAY)
        with s.transaction() as c:                          # killed: its process is gone, the row says running
            c.execute("UPDATE runs SET status='running', pid=?, finished_at=NULL WHERE id=(SELECT MAX(id) FROM runs)",
                      (2 ** 22 + 12345,))
    assert "was stopped before it ended" in _banner(server, OTHER_DAY)
    with Store(db) as s:
        with s.recording("run", {"day": OTHER_DAY}):
            pass
    assert _banner(server, OTHER_DAY) == ""


def test_a_stale_page_is_told_to_reload(site):
    server, _, _ = site
    status, body, _ = _post(server.url + "/label", {"paper_id": "2505.07363", "label": "up", "csrf": "old-page"},
                            {"Origin": server.url, "Accept": "application/json"})
    assert status == 403 and "reload it" in json.loads(body)["error"]


def test_a_database_that_is_not_one_is_refused_at_start(tmp_path):
    bad = tmp_path / "notes.sqlite3"
    bad.write_text("my notes, not a database\n" * 50)
    r = subprocess.run([*RANKER, "serve", "--port", "0", "--db", str(bad)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1 and "serving" not in r.stderr
    (line,) = r.stderr.strip().splitlines()
    assert line.startswith("error: ") and str(bad) in line
    assert bad.read_text() == "my notes, not a database\n" * 50


def test_a_store_moved_away_while_serving_is_said_and_not_made_anew(tmp_path):
    """Each request opens the database; one moved or deleted meanwhile was made anew, empty, by the next page:
    the archive said the store held no day, every day was "Nothing stored" (404), and an empty file was left
    where the user's had been. Now each page says the database is gone, and answers again once it is back."""
    db = tmp_path / "ranker.sqlite3"
    fill_store(db, tmp_path / "out", n=5, hostile=False)
    server = start_server(db, tmp_path / "serve.log")
    try:
        token = _token(server)
        away = tmp_path / "elsewhere.sqlite3"
        db.rename(away)
        for path in ("/", f"/day/{DAY}", "/labels", "/search?q=learning"):
            status, html, _ = _get(server.url + path)
            assert status == 500 and "is gone" in html and str(db) in html, path
        status, body, _ = _post(server.url + "/label", {"paper_id": "2505.07363", "label": "up", "csrf": token},
                                {"Origin": server.url, "Accept": "application/json"})
        assert status == 500 and "is gone" in json.loads(body)["error"]
        assert not db.exists()
        away.rename(db)
        status, html, _ = _get(server.url + f"/day/{DAY}")
        assert status == 200 and "Papers of" in html
    finally:
        server.stop()


def test_a_store_linked_to_whose_file_moved_away_while_serving_is_said_and_not_made_anew(tmp_path):
    """The database a link (a synced folder's file linked into RANKER_HOME): its file moved away meanwhile, the
    link was still there, so the next page opened it and SQLite made a new, empty database where the link
    points (an empty archive, and an empty file in the user's synced folder). It says the database is gone."""
    real, db = tmp_path / "synced" / "ranker.sqlite3", tmp_path / "home" / "ranker.sqlite3"
    fill_store(real, tmp_path / "out", n=5, hostile=False)
    db.parent.mkdir()
    db.symlink_to(real)
    server = start_server(db, tmp_path / "serve.log")
    try:
        assert _get(server.url + f"/day/{DAY}")[0] == 200
        real.rename(tmp_path / "elsewhere.sqlite3")
        status, html, _ = _get(server.url + "/")
        assert status == 500 and "is gone" in html and str(db) in html
        assert not real.exists() and db.is_symlink()
    finally:
        server.stop()


def test_bound_beyond_loopback_it_answers_only_this_machines_names(site, tmp_path):
    """--host 0.0.0.0 used to answer any Host, so a page of another site could re-point a name of its own at
    this machine and read the store as the same origin (DNS rebinding)."""
    import socket
    _, db, _ = site
    srv = start_server(db, tmp_path / "lan.log", "--host", "0.0.0.0", "--allow-host", "ranker.lab.example")
    try:
        port = srv.url.rsplit(":", 1)[1]
        url = f"http://127.0.0.1:{port}"
        assert _get(url + "/", {"Host": f"evil.example:{port}"})[0] == 400
        for name in (socket.gethostname(), "ranker.lab.example", "127.0.0.1", "localhost"):
            assert _get(url + "/", {"Host": f"{name}:{port}"})[0] == 200, name
        assert "answers to the Host names" in srv.log.read_text()
    finally:
        srv.stop()


def test_bound_to_every_address_the_address_it_prints_answers(site, tmp_path):
    """`--host 0.0.0.0` printed "serving http://0.0.0.0:PORT/": opened as printed, that address reached the
    server, which refused it (400 "unknown Host header": the bind-all address is no name of this machine). The
    address printed is one the server answers, for IPv4 and IPv6 alike."""
    import socket
    _, db, _ = site
    for host in ("0.0.0.0", "::"):
        if host == "::":
            try:
                with socket.socket(socket.AF_INET6) as s6:
                    s6.bind(("::1", 0))
            except OSError:
                continue                                  # no IPv6 here
        srv = start_server(db, tmp_path / f"any{len(host)}.log", "--host", host)
        try:
            status, body, _ = _get(srv.url + "/")
            assert status == 200 and "<h1>Archive</h1>" in body, (host, srv.url, status, body[:200])
        finally:
            srv.stop()


def test_an_ipv6_host_written_as_in_a_url_is_listened_on(site, tmp_path):
    """`--host [::1]` (an IPv6 address as the address bar writes it, and as the loopback check and the Host names
    already took it) was "error: --host: cannot resolve '[::1]'"; it listens there, answers, and is loopback."""
    import socket
    _, db, _ = site
    try:
        with socket.socket(socket.AF_INET6) as s6:
            s6.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    srv = start_server(db, tmp_path / "v6.log", "--host", "[::1]")
    try:
        assert srv.url.startswith("http://[::1]:") and "warning" not in srv.log.read_text()
        status, body, _ = _get(srv.url + "/")
        assert status == 200 and "<h1>Archive</h1>" in body
    finally:
        srv.stop()


# ------------------------------------------------------------------------------------------ browser

@needs_browser
def test_label_changes_calibration_training_set(site, chromium):
    """Archive -> day -> paper in the browser; thumbs up on a paper GPT did not pick; reload shows it; the labels
    page lists it; and the rows the next calibration trains on now hold it as liked, weighing LABEL_WEIGHT."""
    from playwright.sync_api import expect
    server, db, _ = site
    history = load_day(DAYS / DAY)
    page, errors = watched_page(chromium)
    page.goto(server.url + "/")
    assert page.locator("h1").inner_text() == "Archive"
    page.click(f"a[href='/day/{DAY}']")
    assert page.locator("h1").inner_text() == f"Papers of {DAY}"
    rest = page.locator("section.rest article.paper")
    # the first paper of the rest that GPT did not pick
    ids = [a.get_attribute("id")[2:] for a in rest.all()[:40]]
    pid = next(i for i in ids if i not in history.picks and i != HOSTILE_ID)
    with Store(db) as s:
        before = store_training_rows(s, [history])
    i = [p.id for p in before.papers].index(pid)
    assert before.y[i] == False and before.weights[i] == 1.0          # noqa: E712

    page.click(f"article[id='p-{pid}'] h3 a")
    assert page.url.endswith(f"/paper/{pid}")
    assert page.locator(f"a[href='https://arxiv.org/abs/{pid}']").count() == 1
    assert page.locator(f"a[href='https://arxiv.org/pdf/{pid}']").count() == 1
    page.click("form.thumbs button.up")
    expect(page.locator("form.thumbs button.up")).to_have_attribute("aria-pressed", "true")
    page.reload()
    assert page.locator("form.thumbs button.up").get_attribute("aria-pressed") == "true"
    assert page.locator("form.thumbs button.undo").is_visible()
    assert _label(db, pid) == (1, DAY)

    page.click("a[href='/labels']")
    row = page.locator(f"tr[id='l-{pid}']")
    assert row.count() == 1 and "up" in row.locator("td.label").inner_text()

    with Store(db) as s:
        after = store_training_rows(s, [history])
    assert after.y[i] == True and after.weights[i] == LABEL_WEIGHT     # noqa: E712
    others = np.arange(len(after.y)) != i
    assert np.array_equal(after.y[others], before.y[others])

    # thumbs down on the same paper from the day page, then undo: the label goes, the training row is GPT's again
    page.goto(f"{server.url}/day/{DAY}#p-{pid}")
    form = page.locator(f"article[id='p-{pid}'] form.thumbs")
    assert form.locator("button.up").get_attribute("aria-pressed") == "true"
    # the thumbs are drawn once per page and used by name on every button: each draws its shape (about 14 x 14)
    assert page.content().count("Q8.6 1 9.6 1.6") == 2
    boxes = page.evaluate("() => [...document.querySelectorAll('form.thumbs button svg.icon use')].map("
                          "u => { const b = u.getBBox(); return [b.width, b.height]; })")
    assert len(boxes) >= 2 * 40 and all(13 < w < 15 and 13 < h < 15 for w, h in boxes)
    form.locator("button.down").click()
    expect(form.locator("button.down")).to_have_attribute("aria-pressed", "true")
    expect(form.locator("button.up")).to_have_attribute("aria-pressed", "false")
    assert _label(db, pid) == (-1, DAY)
    form.locator("button.undo").click()
    expect(form.locator("button.undo")).to_be_hidden()
    expect(form.locator(".state")).to_have_text("label taken back")     # said, not only seen
    assert _label(db, pid) is None
    with Store(db) as s:
        assert store_training_rows(s, [history]).weights[i] == 1.0
    assert errors == []
    page.close()


@needs_browser
def test_quick_thumbs_in_the_browser_on_a_busy_database_end_on_the_last_click(site, chromium):
    """On a liked paper, thumbs down then thumbs up, quickly, while another process holds the database: the page
    still showed the paper liked when the second click came, so it was sent as an undo (a click on a pressed
    thumb), and the two posts raced for the lock; the paper ends liked, as the last click says, in the store
    and on the page."""
    import time
    from playwright.sync_api import expect

    from ranker.web.app import BUSY_TIMEOUT
    server, db, _ = site
    pid = "2505.08793"
    page, errors = _liked_paper_page(server, chromium, pid)
    try:
        form = page.locator("form.thumbs")
        assert form.locator("button.up").get_attribute("aria-pressed") == "true"
        # every answer the page shows, in order (the last one only would also be the page before any answer)
        page.evaluate("""() => { window.said = []; const state = document.querySelector('form.thumbs .state');
            new MutationObserver((changes) => changes.forEach((c) => c.addedNodes.forEach((n) =>
                n.textContent === 'saving\u2026' || window.said.push(n.textContent))))
                .observe(state, {childList: true, characterData: true, subtree: true}); }""")
        # no wait between the clicks: the page sends one paper's clicks in turn, the second once the first is
        # answered; a wait here only ate into the server's busy timeout, which the lock held must stay under
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        t0 = time.monotonic()
        try:
            form.locator("button.down").click()
            form.locator("button.up").click()
            time.sleep(0.2)
            assert form.locator("button.up").get_attribute("aria-pressed") == "true"   # nothing answered yet
        finally:
            held = time.monotonic() - t0
            holder.execute("ROLLBACK")
            holder.close()
        page.wait_for_function("() => window.said.length >= 2", timeout=20000)
        said = page.evaluate("() => window.said")
        assert said == ["not for you", "you liked this"], \
            f"{said}: the database was held {held:.1f} s (the server waits {BUSY_TIMEOUT} s for it)"
        assert _label(db, pid)[0] == 1
        with Store(db) as s:
            assert [e["label"] for e in s.label_events(pid)] == [1, -1, 1]
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "true")
        expect(form.locator("button.down")).to_have_attribute("aria-pressed", "false")
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_hostile_text_renders_as_text_and_runs_no_script(site, chromium):
    """bypass_csp: the page's own Content-Security-Policy would stop an injected script anyway; with it off this
    checks the escaping itself."""
    server, _, _ = site
    ctx = chromium.new_context(bypass_csp=True)
    page = ctx.new_page()
    for path in (f"/day/{DAY}", f"/paper/{HOSTILE_ID}", "/search?q=hostile", "/month/2025-05"):
        page.goto(server.url + path)
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.__pwned") == "undefined", path
        assert page.evaluate("document.querySelectorAll('main script, main img').length") == 0, path
    page.goto(f"{server.url}/paper/{HOSTILE_ID}")
    assert page.locator("h1").inner_text() == HOSTILE_TITLE
    assert "onerror=" in page.locator("p.abstract").inner_text()
    assert page.title().startswith("<script>")
    ctx.close()


@needs_browser
def test_a_cross_site_form_post_from_the_browser_is_refused(site, chromium):
    """A page of another origin (another port on 127.0.0.1) posts a form to /label, even with the right token (as if
    it had leaked): the Origin check refuses it and nothing is stored."""
    server, db, _ = site
    token = _token(server)
    evil = (f'<!DOCTYPE html><html><body><form id="f" method="post" action="{server.url}/label">'
            f'<input name="csrf" value="{token}"><input name="paper_id" value="2505.07363">'
            '<input name="label" value="up"></form><script>document.getElementById("f").submit()</script>'
            "</body></html>").encode()

    class Evil(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(evil)

        def log_message(self, *a):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        page = chromium.new_page()
        responses = []
        page.on("response", lambda r: responses.append((r.url, r.status)) if r.url.endswith("/label") else None)
        page.goto(f"http://127.0.0.1:{httpd.server_address[1]}/")
        page.wait_for_url(f"{server.url}/label")
        assert responses and responses[-1][1] == 403
        assert "cross-site request refused" in page.content()
        page.close()
    finally:
        httpd.shutdown()
    assert _label(db, "2505.07363") is None


def test_the_labels_page_links_only_days_the_store_holds(tmp_path):
    """Labels imported from another machine carry the day they were given on there; a day this store never
    fetched was still a link, to "Nothing stored for the day" (404). Every link of the page must answer."""
    import re
    from ranker.labels import import_labels
    db = tmp_path / "ranker.sqlite3"
    fill_store(db, tmp_path / "out", n=30, hostile=False)
    with Store(db) as s:
        pid = s.day_paper_ids(DAY)[0]
    (tmp_path / "labels.jsonl").write_text(
        json.dumps({"id": pid, "label": 1, "time": "2025-06-01T08:00:00Z", "day": "2025-06-01"}) + "\n"
        + json.dumps({"id": "2505.00001", "label": -1, "time": "2025-06-02T08:00:00Z", "day": DAY}) + "\n")
    with Store(db) as s:
        assert import_labels(s, tmp_path / "labels.jsonl")["added"] == 2
    server = start_server(db, tmp_path / "serve.log")
    try:
        status, html, _ = _get(server.url + "/labels")
        assert status == 200
        table = html.split('<table class="labels">')[1].split("</table>")[0]
        assert "2025-06-01" in table                            # the day is still said, as text
        links = set(re.findall(r'href="([^"]+)"', table))
        assert f"/paper/{pid}" in links and f"/day/{DAY}" in links
        for link in links:
            assert _get(server.url + link)[0] == 200, link
    finally:
        server.stop()


@needs_browser
def test_a_thumb_on_the_labels_page_changes_what_its_row_says(site, chromium):
    """On the labels page a row's thumbs changed the label while the row's own column still said the old
    one ("up" beside a pressed thumbs down, "down" after the label was taken back) until a reload."""
    from playwright.sync_api import expect
    server, db, _ = site
    pid, token = "2507.00008", _token(server)
    assert _post(server.url + "/label", {"paper_id": pid, "label": "up", "csrf": token},
                 {"Origin": server.url, "Accept": "application/json"})[0] == 200
    page = chromium.new_page()
    try:
        page.goto(server.url + "/labels")
        row = page.locator(f"tr[id='l-{pid}']")
        said = row.locator("td.label")                      # what a reader sees of it
        assert said.inner_text().strip() == "up"
        row.locator("form.thumbs button.down").click()
        expect(row.locator("form.thumbs button.down")).to_have_attribute("aria-pressed", "true")
        assert said.inner_text().strip() == "down"
        assert _label(db, pid)[0] == -1
        row.locator("form.thumbs button.undo").click()
        expect(row.locator("form.thumbs button.undo")).to_be_hidden()
        assert said.inner_text().strip() == "taken back"
        assert _label(db, pid) is None
        page.reload()
        assert page.locator(f"tr[id='l-{pid}']").count() == 0
    finally:
        page.close()


def _counts(page) -> tuple[int, int] | None:
    """The page's count of your labels (up, down) as shown; None while it is hidden."""
    counts = page.locator(".label-counts")
    if not counts.is_visible():
        return None
    return tuple(int(counts.locator(f'[data-count="{v}"]').inner_text()) for v in ("1", "-1"))


@needs_browser
def test_the_counts_of_your_labels_follow_the_thumbs_given_on_the_page(site, chromium):
    """A day's "your labels: 1 up, 0 down" and the labels page's count kept the numbers the page was loaded
    with whatever was clicked since (and a day without labels never showed one) until a reload: each thumb
    given, changed or taken back moves them, to what a reload shows; the labels page and the archive, which
    count every label, count those given in another tab once looked at again."""
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{OTHER_DAY}")
        free = page.locator('form.thumbs[data-label="0"]')
        # papers of the day's end: the keys' tests take its first ones as never labelled
        pid, other = free.nth(-2).get_attribute("data-paper"), free.nth(-3).get_attribute("data-paper")
        form = page.locator(f'form.thumbs[data-paper="{pid}"]')
        before = _counts(page) or (0, 0)
        form.locator("button.up").click()
        expect(form).to_have_attribute("data-label", "1")
        assert _counts(page) == (before[0] + 1, before[1])
        form.locator("button.down").click()
        expect(form).to_have_attribute("data-label", "-1")
        assert _counts(page) == (before[0], before[1] + 1)
        page.reload()
        assert _counts(page) == (before[0], before[1] + 1)         # what the store holds
        page.goto(server.url + "/labels")
        shown = _counts(page)
        row = page.locator(f"tr[id='l-{pid}']")
        row.locator("form.thumbs button.undo").click()
        expect(row.locator("form.thumbs")).to_have_attribute("data-label", "0")
        assert _counts(page) == (shown[0], shown[1] - 1)
        assert _label(db, pid) is None
        page.reload()
        assert _counts(page) == (shown[0], shown[1] - 1)
        assert _label_by_script(server, other, "up") == 303                  # in another tab, or by a script
        page.evaluate("window.dispatchEvent(new Event('focus'))")         # this tab looked at again
        expect(page.locator('.label-counts [data-count="1"]')).to_have_text(str(shown[0] + 1))
        with Store(db) as s:
            assert _counts(page) == s.count_labels()
        page.goto(server.url + "/")                                     # the archive counts them all too
        assert _label_by_script(server, other, "undo") == 303
        page.evaluate("window.dispatchEvent(new Event('focus'))")
        expect(page.locator('.label-counts [data-count="1"]')).to_have_text(str(shown[0]))
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_the_labels_page_count_is_not_set_back_by_an_answer_older_than_its_own_click(site, chromium):
    """The labels page, looked at again, counts the labels of the store's answer; a click of its own answered while
    that answer was on its way is newer than it: the count keeps the click (and the label changed elsewhere that the
    answer brings), as the store holds them, instead of the numbers from before the click."""
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    with Store(db) as s:
        order = [r.paper_id for r in s.get_rankings(OTHER_DAY)] or s.day_paper_ids(OTHER_DAY)
        free = [pid for pid in order if pid not in s.get_labels()]
    mine, theirs = free[-4], free[-5]                      # the day's end: the keys' tests take its first papers
    form = {"csrf": _token(server)}
    try:
        for pid in (mine, theirs):
            assert _post(server.url + "/label", {**form, "paper_id": pid, "label": "up"},
                         {"Origin": server.url})[0] == 303
        page.goto(server.url + "/labels")
        assert _post(server.url + "/label", {**form, "paper_id": theirs, "label": "down", "seen": "1"},
                     {"Origin": server.url})[0] == 303                  # in another tab, before this one is looked at
        with Store(db) as s:
            answer = json.dumps({"labels": {pid: lb.label for pid, lb in s.get_labels().items()}})
        held = []
        page.route("**/labels.json", lambda route: held.append(route))   # the store's answer, slow to come
        with page.expect_request("**/labels.json"):
            page.evaluate("window.dispatchEvent(new Event('focus'))")
        mine_form = page.locator(f"tr[id='l-{mine}'] form.thumbs")
        mine_form.locator("button.down").click()                      # answered before the labels are
        expect(mine_form).to_have_attribute("data-label", "-1")
        assert held, "the page's request for the labels was not held"
        held[0].fulfill(status=200, content_type="application/json", body=answer)
        expect(page.locator(f"tr[id='l-{theirs}'] form.thumbs")).to_have_attribute("data-label", "-1")
        with Store(db) as s:
            assert _counts(page) == s.count_labels()
        assert errors == []
    finally:
        page.close()
        for pid in (mine, theirs):
            _post(server.url + "/label", {**form, "paper_id": pid, "label": "undo"}, {"Origin": server.url})


@needs_browser
def test_a_paper_the_day_dropped_is_not_scored_there_whatever_the_store_holds(tmp_path, chromium):
    """The store holds, under the day's digest model and prompt, a score of a paper the day's prefilter dropped
    (another day or run scored it): the day page showed it as scored (the LLM's verdict, the "scored" filter),
    though the day's run never sent it to the LLM and the page's own count said otherwise. A day shows what its
    run did; the paper's page still lists the stored score."""
    import re
    db = tmp_path / "ranker.sqlite3"
    results = fill_store(db, tmp_path / "out", n=40, hostile=False)
    scored = results[DAY].manifest["counts"]["scored"]
    with Store(db) as s:
        dropped = [r.paper_id for r in s.get_rankings(DAY) if not r.kept]
        g = s.get_day_digest(DAY)
        pid = dropped[0]
        s.put_score(Score(pid, 10, 10, "Judged on another day."), g.model, g.prompt_hash)
        title = s.get_paper(pid).title
    assert 0 < scored < 40 and dropped
    server = start_server(db, tmp_path / "serve.log")
    page = chromium.new_page()
    try:
        page.goto(f"{server.url}/day/{DAY}")
        assert f"{scored} scored" in page.locator("p.counts").inner_text()
        row = page.locator(f"article[id='p-{pid}']")
        assert row.get_attribute("data-status") == "ranked"
        assert row.locator(".llm").count() == 0 and "Judged on another day." not in row.inner_text()
        page.check("input[name=show][value=scored]")
        page.click("form.filters button[type=submit]")
        page.wait_for_url(re.compile(r"show=scored"))
        assert page.locator("article.paper").count() == scored
        assert page.locator(f"article[id='p-{pid}']").count() == 0
        # a search lists it as the day had it too
        page.goto(f"{server.url}/search?" + urllib.parse.urlencode({"q": title, "mode": "words"}))
        found = page.locator(f"article[id='p-{pid}']")
        assert found.get_attribute("data-status") == "ranked" and found.locator(".llm").count() == 0
        # its own page keeps every stored score
        page.goto(f"{server.url}/paper/{pid}")
        assert "Judged on another day." in page.locator("table.scores").inner_text()
    finally:
        page.close()
        server.stop()


@needs_browser
def test_going_back_to_a_page_shows_the_labels_given_since(site, chromium):
    """Thumbs up on a day page, then thumbs down on the paper's own page, then Back: the day page came back as
    the browser had kept it (no thumb, or the thumbs up) while the store held the thumbs down, and a click on the
    thumb that looked pressed took a label back instead of giving one. A page shown again (Back, Forward) says
    what the store holds now."""
    import re
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{OTHER_DAY}")
        pid = page.locator("section.rest article.paper").nth(5).get_attribute("id")[2:]
        assert _label(db, pid) is None
        form = page.locator(f"article[id='p-{pid}'] form.thumbs")
        form.locator("button.up").click()
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "true")
        page.click(f"article[id='p-{pid}'] h3 a")
        page.wait_for_url(f"{server.url}/paper/{pid}")
        expect(page.locator("form.thumbs button.up")).to_have_attribute("aria-pressed", "true")
        page.locator("form.thumbs button.down").click()
        expect(page.locator("form.thumbs button.down")).to_have_attribute("aria-pressed", "true")
        assert _label(db, pid)[0] == -1

        page.go_back()
        page.wait_for_url(f"{server.url}/day/{OTHER_DAY}")
        form = page.locator(f"article[id='p-{pid}'] form.thumbs")
        expect(form.locator("button.down")).to_have_attribute("aria-pressed", "true")
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "false")
        expect(page.locator(f"article[id='p-{pid}']")).to_have_class(re.compile(r"\bdisliked\b"))
        form.locator("button.up").click()                    # up, as the page now rightly shows it not pressed
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "true")
        assert _label(db, pid)[0] == 1

        page.go_forward()                                    # the paper's page said down when it was left
        page.wait_for_url(f"{server.url}/paper/{pid}")
        expect(page.locator("form.thumbs button.up")).to_have_attribute("aria-pressed", "true")
        expect(page.locator("form.thumbs button.down")).to_have_attribute("aria-pressed", "false")
        page.locator("form.thumbs button.undo").click()
        expect(page.locator("form.thumbs button.undo")).to_be_hidden()
        assert _label(db, pid) is None
        assert errors == []
    finally:
        page.close()
    assert _get(f"{server.url}/day/{OTHER_DAY}")[2]["cache-control"] == "no-store"
    assert _get(f"{server.url}/static/app.js")[2]["cache-control"] == "no-cache"     # checked again, not run stale


@needs_browser
def test_a_label_on_a_paper_the_store_does_not_hold_can_be_taken_back(site, chromium):
    """Labels imported on a new machine are on papers its store does not hold yet: the labels page listed them
    with no thumbs, and a post for one was "No paper ... in the store" (404), so a wrong one could never be taken
    back or changed. It can, keeping the day it was given on, and the undo travels with an export."""
    from playwright.sync_api import expect
    from ranker.labels import export_labels, read_labels
    from ranker.records import Label
    server, db, _ = site
    pid = "2505.00002"
    with Store(db) as s:
        assert s.get_paper(pid) is None
        s.import_labels([Label(pid, 1, "2025-05-01", 1747000000.0)])
    page, errors = watched_page(chromium)
    try:
        page.goto(server.url + "/labels")
        row = page.locator(f"tr[id='l-{pid}']")
        assert "not in this store" in row.inner_text()
        expect(row.locator("form.thumbs button.up")).to_have_attribute("aria-pressed", "true")
        row.locator("form.thumbs button.down").click()
        expect(row.locator("form.thumbs button.down")).to_have_attribute("aria-pressed", "true")
        assert _label(db, pid) == (-1, "2025-05-01")
        row.locator("form.thumbs button.undo").click()
        expect(row.locator("form.thumbs button.undo")).to_be_hidden()
        assert row.locator("td.label").inner_text().strip() == "taken back"
        expect(row.locator(".state")).to_have_text("label taken back")
        assert _label(db, pid) is None
        with Store(db) as s:
            export_labels(s, server.log.parent / "labels.jsonl")
        assert [(lb.label, lb.day) for lb in read_labels(server.log.parent / "labels.jsonl")
                if lb.paper_id == pid] == [(0, "2025-05-01")]
        row.locator("form.thumbs button.up").click()           # given again, before the page is reloaded
        expect(row.locator("form.thumbs button.up")).to_have_attribute("aria-pressed", "true")
        assert _label(db, pid) == (1, "2025-05-01")
        row.locator("form.thumbs button.undo").click()
        expect(row.locator("form.thumbs button.undo")).to_be_hidden()
        assert errors == []
    finally:
        page.close()
    token = _token(server)       # a paper neither held nor ever labelled here is still not found
    assert _post(server.url + "/label", {"paper_id": "2505.00003", "label": "up", "csrf": token},
                 {"Origin": server.url})[0] == 404


@needs_browser
def test_a_thumb_clicked_again_after_one_not_saved_is_what_was_clicked(site, chromium):
    """On a liked paper, thumbs down while another process holds the database past the app's busy timeout, and
    (the page saying nothing meanwhile) thumbs down again: the first was not saved (503), yet the second went out
    as an undo, toggled against the label the first had only asked for, and took the thumbs up away. A click
    says it is being saved, and is sent as what it means against the label the store answered last; with the
    server out of reach it says it was not saved and leaves the buttons as they were."""
    import time
    from playwright.sync_api import expect
    from ranker.web.app import BUSY_TIMEOUT
    server, db, _ = site
    pid = "2505.08795"
    page, errors = _liked_paper_page(server, chromium, pid)
    try:
        form = page.locator("form.thumbs")
        state = form.locator(".state")
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            form.locator("button.down").click()
            expect(state).to_have_text("saving…")
            time.sleep(1.0)
            form.locator("button.down").click()
            page.wait_for_function("() => document.querySelector('form.thumbs .state').textContent"
                                   ".startsWith('not saved')", timeout=(BUSY_TIMEOUT + 10) * 1000)
        finally:
            holder.execute("ROLLBACK")               # the second click's post now goes through
            holder.close()
        expect(state).to_have_text("not for you", timeout=(BUSY_TIMEOUT + 10) * 1000)
        expect(form.locator("button.down")).to_have_attribute("aria-pressed", "true")
        assert _label(db, pid)[0] == -1
        with Store(db) as s:
            assert [e["label"] for e in s.label_events(pid)] == [1, -1]

        page.context.set_offline(True)                  # the server out of reach: said, nothing pressed
        try:
            form.locator("button.up").click()
            expect(state).to_have_text("not saved: the server did not answer (is ranker serve running?)")
            expect(form.locator("button.up")).to_have_attribute("aria-pressed", "false")
            expect(form.locator("button.down")).to_have_attribute("aria-pressed", "true")
        finally:
            page.context.set_offline(False)
        form.locator("button.down").click()             # the pressed thumb takes it back, as the store had it
        expect(state).to_have_text("label taken back")
        assert _label(db, pid) is None
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_a_click_in_a_tab_that_missed_a_label_given_in_another_shows_that_label(site, chromium):
    """Two tabs on one paper: A shows the thumbs up, B gives the thumbs down, and back in A a click on the thumb
    A still showed pressed went out as an undo and erased B's label. The click is refused (A's page did not
    see the stored label): the store keeps the thumbs down, and A shows it and says why; A's next click is
    made against it. (A's own look at the labels when it is shown again is held back here: the click must hold
    even when it comes first.)"""
    import re
    from playwright.sync_api import expect
    server, db, _ = site
    pid = "2505.08822"
    assert _label(db, pid) is None
    a, a_errors = watched_page(chromium)
    b, b_errors = watched_page(chromium)
    try:
        a.route("**/labels.json", lambda route: route.abort())
        a.goto(f"{server.url}/paper/{pid}")
        a.locator("form.thumbs button.up").click()
        expect(a.locator("form.thumbs .state")).to_have_text("you liked this")
        b.goto(f"{server.url}/paper/{pid}")
        expect(b.locator("form.thumbs button.up")).to_have_attribute("aria-pressed", "true")
        b.locator("form.thumbs button.down").click()
        expect(b.locator("form.thumbs .state")).to_have_text("not for you")
        assert _label(db, pid)[0] == -1

        form = a.locator("form.thumbs")
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "true")       # A has not seen it
        form.locator("button.up").click()
        expect(form.locator(".state")).not_to_have_text("saving…")                     # answered
        assert _label(db, pid) == (-1, DAY)                                             # B's label stays
        expect(form.locator(".state")).to_have_text("changed elsewhere meanwhile: not for you")
        expect(form.locator("button.down")).to_have_attribute("aria-pressed", "true")
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "false")
        expect(a.locator("article.paper-page")).to_have_class(re.compile(r"\bdisliked\b"))
        with Store(db) as s:
            assert [e["label"] for e in s.label_events(pid)] == [1, -1]
        form.locator("button.up").click()                   # now a thumbs up, against the label it shows
        expect(form.locator(".state")).to_have_text("you liked this")
        assert _label(db, pid)[0] == 1
        assert a_errors == [] and b_errors == []
    finally:
        a.close()
        b.close()


@needs_browser
def test_a_tab_shown_again_shows_the_labels_given_in_another_meanwhile(site, chromium):
    """A day page left open in one tab while labels change in another: shown again (its tab or window brought
    back), it asks for the stored labels and shows them, before any click of its own."""
    import re
    from playwright.sync_api import expect
    server, db, _ = site
    liked, disliked = "2505.08823", "2505.08825"
    assert _label(db, liked) is None and _label(db, disliked) is None
    a, errors = watched_page(chromium)
    b = chromium.new_page()
    try:
        a.goto(f"{server.url}/day/{DAY}")
        b.goto(f"{server.url}/day/{DAY}")
        b.locator(f"article[id='p-{liked}'] form.thumbs button.up").click()
        b.locator(f"article[id='p-{disliked}'] form.thumbs button.down").click()
        expect(b.locator(f"article[id='p-{disliked}'] form.thumbs .state")).to_have_text("not for you")
        assert _label(db, liked)[0] == 1 and _label(db, disliked)[0] == -1
        up = a.locator(f"article[id='p-{liked}'] form.thumbs")
        down = a.locator(f"article[id='p-{disliked}'] form.thumbs")
        expect(up.locator("button.up")).to_have_attribute("aria-pressed", "false")
        a.evaluate("() => window.dispatchEvent(new Event('focus'))")        # as when its window is brought back
        expect(up.locator("button.up")).to_have_attribute("aria-pressed", "true")
        expect(up.locator(".state")).to_have_text("you liked this")
        expect(down.locator("button.down")).to_have_attribute("aria-pressed", "true")
        expect(a.locator(f"article[id='p-{disliked}']")).to_have_class(re.compile(r"\bdisliked\b"))
        b.locator(f"article[id='p-{liked}'] form.thumbs button.undo").click()
        expect(b.locator(f"article[id='p-{liked}'] form.thumbs button.undo")).to_be_hidden()
        a.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")     # a tab brought back
        expect(up.locator("button.up")).to_have_attribute("aria-pressed", "false")
        expect(up.locator("button.undo")).to_be_hidden()
        down.locator("button.down").click()                 # the pressed thumb takes the stored label back
        expect(down.locator("button.undo")).to_be_hidden()
        assert _label(db, disliked) is None and _label(db, liked) is None
        assert errors == []
    finally:
        a.close()
        b.close()


def test_ctrl_c_stops_serve_with_a_line_that_fits_a_server(tmp_path):
    """Ctrl-C is how serve is stopped (it says so when it starts): not an interrupted step with something to
    resume, but one line saying it stopped and where the labels are, and status 0."""
    import os
    import re
    import signal
    import time
    db = tmp_path / "r.sqlite3"
    with Store(db):
        pass
    env = {k: v for k, v in os.environ.items() if k != "RANKER_DEBUG"}      # as a user runs it
    proc = subprocess.Popen([*RANKER, "serve", "--port", "0", "--db", str(db)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            preexec_fn=as_at_a_terminal)
    try:
        first = proc.stdout.readline()
        url = re.search(r"serving (http://\S+?)/?;", first).group(1)
        assert _get(url + "/")[0] == 200
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, rest
    assert rest.splitlines() == [f"stopped; your labels are kept in {db}"]


@needs_browser
def test_undo_from_the_keyboard_leaves_the_focus_on_the_paper_s_thumbs(site, chromium):
    """Undo hides itself once the label is taken back; pressed from the keyboard, it took the focus with it (to
    the page's body), so the next Enter did nothing. The focus goes to the thumb just taken back, and the
    keyboard carries on from there."""
    from playwright.sync_api import expect
    server, db, _ = site
    page = chromium.new_page()
    try:
        page.goto(f"{server.url}/day/{OTHER_DAY}")
        pid = page.locator("section.rest article.paper").nth(9).get_attribute("id")[2:]
        form = page.locator(f"article[id='p-{pid}'] form.thumbs")
        form.locator("button.down").focus()
        page.keyboard.press("Enter")
        expect(form).to_have_attribute("data-label", "-1")
        page.keyboard.press("Tab")                                  # down -> undo
        expect(form.locator("button.undo")).to_be_focused()
        page.keyboard.press("Enter")
        expect(form).to_have_attribute("data-label", "0")
        expect(form.locator("button.down")).to_be_focused()
        assert _label(db, pid) is None
        page.keyboard.press("Enter")                                # the keyboard goes on: thumbs down again
        expect(form).to_have_attribute("data-label", "-1")
        assert _label(db, pid)[0] == -1
    finally:
        page.close()


@needs_browser
def test_a_double_click_on_a_thumb_gives_the_label_once(site, chromium):
    """A thumb double-clicked (as many click buttons) was two clicks: the second went out as a click on the
    thumb the first had just pressed, an undo, and the paper ended with no label, the store's events [1, 0]. A
    double (or triple) click gives the label once; single clicks later still take it back."""
    import time
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{OTHER_DAY}")
        rows = page.locator("section.rest article.paper")
        pid, other = (rows.nth(i).get_attribute("id")[2:] for i in (12, 13))
        assert _label(db, pid) is None and _label(db, other) is None
        form = page.locator(f"article[id='p-{pid}'] form.thumbs")
        form.locator("button.up").dblclick()
        expect(form.locator(".state")).to_have_text("you liked this")
        time.sleep(1.0)                                  # a second post, if any, is answered by now
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "true")
        assert _label(db, pid)[0] == 1
        form.locator("button.up").click()                # a click of its own, later: takes it back
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "false")
        assert _label(db, pid) is None
        form2 = page.locator(f"article[id='p-{other}'] form.thumbs")
        form2.locator("button.down").click(click_count=3)
        expect(form2.locator(".state")).to_have_text("not for you")
        time.sleep(1.0)
        expect(form2.locator("button.down")).to_have_attribute("aria-pressed", "true")
        with Store(db) as s:
            assert [e["label"] for e in s.label_events(pid)] == [1, 0]
            assert [e["label"] for e in s.label_events(other)] == [-1]
        form2.locator("button.undo").click()
        expect(form2.locator("button.undo")).to_be_hidden()
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_every_kind_of_page_fits_a_phone_screen_without_sideways_scrolling(site, chromium):
    """At a phone's 390 CSS pixels (serve --host on a home network): the page is as wide as the screen; a wide
    table or plot scrolls inside itself, not the whole page."""
    server, db, _ = site
    with Store(db) as st:
        pid = st.day_paper_ids(DAY)[0]
    page = chromium.new_page(viewport={"width": 390, "height": 800})
    wide = {}
    for path in ("/", f"/day/{DAY}", f"/month/{DAY[:7]}", f"/paper/{pid}", "/labels",
                 "/search?" + urllib.parse.urlencode({"q": "learning", "mode": "words"})):
        page.goto(server.url + path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        if width > 390:
            wide[path] = width
    page.close()
    assert wide == {}


def _focused_paper(page) -> str | None:
    """The id of the paper entry holding the focus itself (j / k focus the entry, not a control in it)."""
    return page.evaluate("() => { var a = document.activeElement;"
                         " return a && a.matches('article.paper') ? a.id.slice(2) : null; }")


def _undo_by_key(page, form, db, pid) -> None:
    """z takes the paper's label back: the undo hides itself and the store holds no label."""
    from playwright.sync_api import expect
    page.keyboard.press("z")
    expect(form.locator("button.undo")).to_be_hidden()
    assert _label(db, pid) is None


@needs_browser
def test_j_and_k_move_the_focus_through_the_papers_in_order(site, chromium):
    """A morning's triage from the keyboard: j / k go to the next / previous paper of the day in the page's order
    (the digest's picks, then the rest), its entry taking the focus (with a visible outline) and coming into view;
    on a search's results as well, where o opens the paper's page and, there, u / z label it and o does nothing
    (it opened the day of the page's Prefilter table, the first link in a table cell of the paper's entry)."""
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{DAY}")
        ids = _day_ids(page)
        assert len(ids) > 12
        seen = []
        for _ in range(12):
            page.keyboard.press("j")
            seen.append(_focused_paper(page))
        assert seen == ids[:12]
        page.keyboard.press("k")
        page.keyboard.press("k")
        assert _focused_paper(page) == ids[9]
        entry = page.locator(f"article[id='p-{ids[9]}']")
        expect(entry).to_be_in_viewport()
        assert entry.evaluate("e => getComputedStyle(e).outlineStyle") != "none"
        for _ in range(3):
            page.keyboard.press("k")
        assert _focused_paper(page) == ids[6]
        with Store(db) as s:
            assert all(s.get_labels([i]) == {} for i in ids[:12])      # moving labels nothing

        pid = page.locator("section.rest article.paper").nth(21).get_attribute("id")[2:]
        page.goto(f"{server.url}/search?" + urllib.parse.urlencode({"q": pid}))
        page.keyboard.press("j")                               # (the box keeps no focus once it found some)
        assert _focused_paper(page) == pid
        page.keyboard.press("o")
        page.wait_for_url(f"{server.url}/paper/{pid}")
        form = page.locator("form.thumbs")
        page.keyboard.press("u")                               # a paper's own page: its paper, no j needed
        expect(form.locator(".state")).to_have_text("you liked this")
        assert _label(db, pid)[0] == 1
        _undo_by_key(page, form, db, pid)
        page.keyboard.press("o")                               # its own page: nothing to open (it opened a day)
        page.wait_for_timeout(500)
        assert page.url == f"{server.url}/paper/{pid}"
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_keys_label_the_current_paper_as_its_thumbs_do(site, chromium):
    """u then d then d on the paper j went to: thumbs up, thumbs down, then none, in the store as on the page; + /
    - and z the same. A key presses the paper's thumb, so it goes the click's way: sent with the label the page
    shows, and refused with the stored label when another tab changed it meanwhile."""
    import re
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.route("**/labels.json", lambda route: route.abort())   # the page does not look again on its own
        page.goto(f"{server.url}/day/{OTHER_DAY}")
        rows = page.locator("section.rest article.paper")
        before, pid = (rows.nth(i).get_attribute("id")[2:] for i in (19, 20))
        assert _label(db, pid) is None and _label(db, before) is None
        rows.nth(19).focus()
        page.keyboard.press("j")
        assert _focused_paper(page) == pid
        form = page.locator(f"article[id='p-{pid}'] form.thumbs")
        page.keyboard.press("u")
        expect(form.locator(".state")).to_have_text("you liked this")
        assert _label(db, pid)[0] == 1
        expect(page.locator(f"article[id='p-{pid}']")).to_have_class(re.compile(r"\bliked\b"))
        page.keyboard.press("d")
        expect(form.locator(".state")).to_have_text("not for you")
        assert _label(db, pid)[0] == -1
        page.keyboard.press("d")                                     # the same again: taken back
        expect(form.locator("button.undo")).to_be_hidden()
        expect(form).to_have_attribute("data-label", "0")
        assert _label(db, pid) is None
        page.keyboard.press("+")
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "true")
        assert _label(db, pid)[0] == 1
        _undo_by_key(page, form, db, pid)
        with Store(db) as s:
            assert [e["label"] for e in s.label_events(pid)] == [1, -1, 0, 1, 0]
        assert _label(db, before) is None
        assert _focused_paper(page) == pid                           # the focus stays on the paper

        # another tab gives the thumbs up meanwhile: - from this page (which shows none) is refused
        assert _post(server.url + "/label", {"paper_id": pid, "label": "up", "seen": "0", "csrf": _token(server)},
                     {"Origin": server.url, "Accept": "application/json"})[0] == 200
        page.keyboard.press("-")
        expect(form.locator(".state")).to_have_text("changed elsewhere meanwhile: you liked this")
        expect(form.locator("button.up")).to_have_attribute("aria-pressed", "true")
        assert _label(db, pid)[0] == 1
        _undo_by_key(page, form, db, pid)
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_keys_typed_into_a_field_or_with_ctrl_label_nothing(site, chromium):
    """u typed into the search box is a letter of the search, not a thumbs up on the paper focused just before;
    so is a key held with Ctrl (the browser's own shortcuts). Outside the field, u labels the paper."""
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{OTHER_DAY}")
        entry = page.locator("section.rest article.paper").nth(22)
        pid = entry.get_attribute("id")[2:]
        assert _label(db, pid) is None
        entry.focus()
        page.keyboard.press("Control+d")
        box = page.locator("header input[type=search]")
        box.focus()
        page.keyboard.type("ud+-zj")
        expect(box).to_have_value("ud+-zj")
        page.locator("select[name=topic]").focus()
        page.keyboard.press("d")
        entry.locator("button.up").focus()
        page.keyboard.press("Alt+u")
        form = entry.locator("form.thumbs")
        expect(form.locator(".state")).to_have_text("")
        with Store(db) as s:
            assert s.label_events(pid) == []
        page.keyboard.press("u")                                     # the focus in its entry: labelled
        expect(form.locator(".state")).to_have_text("you liked this")
        assert _label(db, pid)[0] == 1
        page.keyboard.press("u")
        expect(form.locator("button.undo")).to_be_hidden()
        assert _label(db, pid) is None

        page.goto(f"{server.url}/paper/{pid}")                      # its one paper takes the keys wherever the focus
        page.locator("header input[type=search]").focus()
        page.keyboard.type("u")
        page.keyboard.press("Control+d")
        expect(page.locator("header input[type=search]")).to_have_value("u")
        page.locator("header input[type=search]").blur()
        page.keyboard.press("d")
        expect(page.locator("form.thumbs .state")).to_have_text("not for you")
        with Store(db) as s:
            assert [e["label"] for e in s.label_events(pid)] == [1, 0, -1]
        _undo_by_key(page, page.locator("form.thumbs"), db, pid)
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_question_mark_opens_the_keys_as_a_dialog_that_gives_the_focus_back(site, chromium):
    """? opens the list of keys as a modal dialog, named "Keys" to a screen reader: it takes the focus, Tab stays
    in it and no key reaches the papers under it; ? again or Esc closes it and the focus is back on the paper it
    was on, so j goes on from there. It was a box shown beside the page: the focus stayed on the page, and a
    screen reader was not told it had opened. The thumbs and title links name their keys (aria-keyshortcuts)."""
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{DAY}")
        ids = _day_ids(page)
        keys = page.get_by_role("dialog", name="Keys")
        expect(keys).to_be_hidden()
        for _ in range(3):
            page.keyboard.press("j")
        page.keyboard.press("?")
        expect(keys).to_be_visible()
        expect(keys).to_be_in_viewport()
        text = keys.inner_text()
        for k in ("j", "k", "u", "d", "z", "o", "Enter", "?", "Esc"):
            assert k in text
        inside = "() => document.getElementById('keys').contains(document.activeElement)"
        assert page.evaluate(inside)
        for _ in range(3):                  # Tab stays in the dialog (or the browser's own bar), never the page
            page.keyboard.press("Tab")
            assert page.evaluate(inside + " || document.activeElement === document.body")
        page.keyboard.press("j")                                # the papers under it are out of reach
        expect(keys).to_be_visible()
        page.keyboard.press("?")
        expect(keys).to_be_hidden()
        assert _focused_paper(page) == ids[2]                   # back where it was
        page.keyboard.press("j")
        assert _focused_paper(page) == ids[3]
        page.keyboard.press("?")
        page.keyboard.press("Escape")
        expect(keys).to_be_hidden()
        assert _focused_paper(page) == ids[3]
        entry = page.locator(f"article[id='p-{ids[3]}']")
        assert entry.locator("button.up").get_attribute("aria-keyshortcuts") == "U Plus"
        assert entry.locator("button.down").get_attribute("aria-keyshortcuts") == "D -"
        assert entry.locator("button.undo").get_attribute("aria-keyshortcuts") == "Z"
        assert entry.locator("h3 a").get_attribute("aria-keyshortcuts") == "O"

        with Store(db) as s:
            before = s.label_events(ids[3])
        page.goto(f"{server.url}/paper/{ids[3]}")               # a paper's page takes u wherever the focus...
        state = page.locator("form.thumbs .state").inner_text()
        page.keyboard.press("?")
        page.keyboard.press("u")                                # ...but not from under the dialog
        page.keyboard.press("Escape")
        expect(keys).to_be_hidden()
        assert page.locator("form.thumbs .state").inner_text() == state      # nothing sent ("saving...")
        with Store(db) as s:
            assert s.label_events(ids[3]) == before
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_esc_in_a_field_hands_the_keys_back_to_the_paper_it_left(site, chromium):
    """Esc in the search box leaves it, what was typed kept, and the focus goes back to the paper it was on, so
    j / k / u work again: only Tab did (Esc kept the focus in the box, and Chrome emptied it). The same from the
    day's topic filter; with no paper visited yet, the focus goes to the page and j starts at the first paper."""
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{OTHER_DAY}")
        ids = _day_ids(page)
        box = page.locator("header input[type=search]")
        box.focus()
        page.keyboard.type("jk")
        page.keyboard.press("Escape")
        expect(box).to_have_value("jk")
        expect(box).not_to_be_focused()
        page.keyboard.press("j")
        assert _focused_paper(page) == ids[0]
        page.keyboard.press("j")
        box.focus()
        page.keyboard.type("u")
        page.keyboard.press("Escape")
        expect(box).to_have_value("jku")
        assert _focused_paper(page) == ids[1]
        outline = "e => getComputedStyle(e).outlineStyle"
        assert page.locator(f"article[id='p-{ids[1]}']").evaluate(outline) != "none"     # seen to be there
        page.locator("select[name=topic]").focus()
        page.keyboard.press("Escape")
        assert _focused_paper(page) == ids[1]
        page.keyboard.press("j")
        assert _focused_paper(page) == ids[2]
        # a paper scrolled out of sight since: Esc brings it into view with the keys, not a thumb on one unseen
        far = page.locator(f"article[id='p-{ids[-1]}']")
        far.focus()
        page.evaluate("window.scrollTo(0, 0)")
        in_view = "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight + 1; }"
        assert not far.evaluate(in_view)
        box.focus()
        page.keyboard.press("Escape")
        assert _focused_paper(page) == ids[-1] and far.evaluate(in_view)
        with Store(db) as s:
            assert all(s.label_events(i) == [] for i in ids[:3])
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_back_from_a_paper_opened_with_o_gives_the_focus_to_its_entry_again(site, chromium):
    """o opens the paper the keys are on; Back loads the day again (never kept: no-store), and its focus was on the
    page's body, so the next j began again at the first paper in view: the entry opened takes the focus again, in
    view, and j goes on from it. The same with Enter on the entry."""
    from playwright.sync_api import expect
    server, _, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{DAY}")
        ids = _day_ids(page)
        for _ in range(12):
            page.keyboard.press("j")
        assert _focused_paper(page) == ids[11]
        page.keyboard.press("o")
        page.wait_for_url(f"{server.url}/paper/{ids[11]}")
        page.go_back()
        page.wait_for_url(f"{server.url}/day/{DAY}")
        page.wait_for_load_state("load")
        expect(page.locator(f"article[id='p-{ids[11]}']")).to_be_focused()
        expect(page.locator(f"article[id='p-{ids[11]}']")).to_be_in_viewport()
        page.keyboard.press("j")
        assert _focused_paper(page) == ids[12]
        page.keyboard.press("Enter")
        page.wait_for_url(f"{server.url}/paper/{ids[12]}")
        page.go_back()
        page.wait_for_url(f"{server.url}/day/{DAY}")
        expect(page.locator(f"article[id='p-{ids[12]}']")).to_be_focused()
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_a_day_filtered_by_topic_counts_a_label_given_elsewhere_on_a_paper_it_hides(site, chromium):
    """A day shown for one topic counts your labels on all its papers; one given in another tab on a paper the
    filter hides moved the count only on a reload (a shown paper's form moved it when looked at again): looked at
    again, the page counts what a reload shows."""
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{DAY}")
        topic = page.locator("select[name=topic] option").nth(1).get_attribute("value")
        hidden = page.locator(f"article.paper:not([data-topic='{topic}'])")
        ids = [i[2:] for i in hidden.evaluate_all("els => els.map(e => e.id)")]
        free = [i for i in ids[-8:] if _label(db, i) is None][-2:]
        assert len(free) == 2
        page.goto(f"{server.url}/day/{DAY}?" + urllib.parse.urlencode({"topic": topic}))
        assert page.locator(f"article[id='p-{free[0]}']").count() == 0          # filtered out
        before = _counts(page) or (0, 0)
        try:
            for pid, label, after in ((free[0], "up", (before[0] + 1, before[1])),
                                      (free[1], "down", (before[0] + 1, before[1] + 1)),
                                      (free[0], "undo", (before[0], before[1] + 1))):
                assert _label_by_script(server, pid, label) == 303              # in another tab, or by a script
                page.evaluate("window.dispatchEvent(new Event('focus'))")     # this tab looked at again
                expect(page.locator('.label-counts [data-count="1"]')).to_have_text(str(after[0]))
                expect(page.locator('.label-counts [data-count="-1"]')).to_have_text(str(after[1]))
                expect(page.locator(".label-counts")).to_be_visible()
            page.reload()
            assert _counts(page) == (before[0], before[1] + 1)                # what a reload shows
        finally:
            for pid in free:
                _label_by_script(server, pid, "undo")
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_a_look_while_the_labels_are_being_read_again_reads_them_once_more(site, chromium):
    """A page looked at again (focus) while its request for the stored labels is on its way: that look was dropped,
    so a label given elsewhere between the two was shown only at the next look. It asks again once the first is
    answered: the label given meanwhile is shown."""
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    held = []

    def hold_the_first(route):
        if held:
            route.continue_()
        else:
            held.append(route)

    try:
        page.goto(f"{server.url}/day/{OTHER_DAY}")
        ids = _day_ids(page)
        pid = [i for i in ids[-12:-4] if _label(db, i) is None][-1]
        form = page.locator(f"article[id='p-{pid}'] form.thumbs")
        page.route("**/labels.json", hold_the_first)
        page.evaluate("window.dispatchEvent(new Event('focus'))")
        for _ in range(100):
            if held:
                break
            page.wait_for_timeout(50)
        answer = held[0].fetch()                                  # the labels as they were: none on pid
        try:
            assert _label_by_script(server, pid, "up") == 303             # given in another tab meanwhile
            page.evaluate("window.dispatchEvent(new Event('focus'))")   # looked at again, the first on its way
            held[0].fulfill(response=answer)
            expect(form).to_have_attribute("data-label", "1")
            expect(form.locator("button.up")).to_have_attribute("aria-pressed", "true")
        finally:
            _label_by_script(server, pid, "undo")
        assert errors == []
    finally:
        page.close()


@needs_browser
def test_back_gives_the_focus_to_the_entry_opened_with_o_once_only(site, chromium):
    """The entry opened with o takes the focus again on Back, once: kept in the page's history entry, it took the
    focus again on every later return, after a paper opened by a click on its title too, and the page (scrolled
    back where that paper was) had its keys on a paper far from it, which d then labelled."""
    from playwright.sync_api import expect
    server, db, _ = site
    page, errors = watched_page(chromium)
    try:
        page.goto(f"{server.url}/day/{DAY}")
        ids = _day_ids(page)
        at = next(i for i in range(2, 12) if _label(db, ids[i]) is None)
        first, far = ids[at], ids[-3]
        for _ in range(at + 1):
            page.keyboard.press("j")
        assert _focused_paper(page) == first
        page.keyboard.press("o")
        page.wait_for_url(f"{server.url}/paper/{first}")
        page.go_back()
        page.wait_for_url(f"{server.url}/day/{DAY}")
        expect(page.locator(f"article[id='p-{first}']")).to_be_focused()
        page.locator(f"article[id='p-{far}'] h3 a").click()                   # the mouse this time
        page.wait_for_url(f"{server.url}/paper/{far}")
        page.go_back()
        page.wait_for_url(f"{server.url}/day/{DAY}")
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)
        assert _label(db, first) is None
        try:
            page.keyboard.press("d")
            page.wait_for_timeout(500)
            assert _label(db, first) is None             # the keys were on it, far out of view (above)
            assert _focused_paper(page) != first
        finally:
            _label_by_script(server, first, "undo")
        assert errors == []
    finally:
        page.close()
