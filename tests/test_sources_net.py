"""Online fetching against a real HTTP server on 127.0.0.1 serving the arXiv fixtures."""
from __future__ import annotations

import gzip
import time

import pytest

from ranker.errors import FetchError
from ranker.sources import ReadReport, fetch_ids, fetch_today, fetch_window, read_papers
from ranker.io import retry_after_seconds as retry_after
from ranker.sources.net import NetPolicy, check_allowed, fetch_bytes, rss_feed_url, window_query

from conftest import FIXTURES
from fixture_server import NO_OPENSSL, FixtureServer, Reply, closed_port_url, self_signed, silent_server

RSS = (FIXTURES / "arxiv_rss_all_2024-11-28.xml").read_bytes()
ATOM_QUERY = (FIXTURES / "arxiv_api_atom_query_10.xml").read_bytes()
ATOM_IDS = (FIXTURES / "arxiv_api_atom_id_list.xml").read_bytes()
FEED_PATH = "/rss/cs.LG+cs.AI"
EMPTY_RSS = (b'<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>cs.LG updates</title>'
             b"<pubDate>Sat, 30 Nov 2024 00:00:00 -0500</pubDate></channel></rss>")


def fast(**kw) -> NetPolicy:
    return NetPolicy(**{"timeout": 2.0, "retries": 3, "backoff": 0.01, "max_wait": 5.0, "api_delay": 0.0, **kw})


@pytest.fixture
def server():
    with FixtureServer() as srv:
        yield srv


@pytest.fixture
def rss_env(server):
    """The fixture server, and a policy whose RSS base URL points at it."""
    server.policy = lambda **kw: fast(rss_url=server.url("/rss/"), **kw)
    return server


@pytest.fixture
def api_env(server):
    server.policy = lambda **kw: fast(api_url=server.url("/api/query"), **kw)
    return server


def test_today_from_the_rss_feed(rss_env):
    rss_env.route(FEED_PATH, Reply(200, RSS))
    report = ReadReport()
    papers = list(fetch_today(["cs.LG", "cs.AI"], report=report, policy=rss_env.policy()))
    assert len(papers) == 207 and report.feed_date == "2024-11-28"
    assert rss_env.hits(FEED_PATH) == 1
    assert rss_feed_url(["cs.LG", "cs.AI"], rss_env.url("/rss/")) == rss_env.url(FEED_PATH)
    assert rss_feed_url(["cs.LG"]) == "https://rss.arxiv.org/rss/cs.LG"


def test_429_then_success_retries_once(rss_env):
    rss_env.route(FEED_PATH, Reply(429, b"slow down", headers={"Retry-After": "0"}), Reply(200, RSS))
    notes = []
    papers = list(fetch_today(policy=rss_env.policy(), warn=notes.append))
    assert len(papers) == 207
    assert rss_env.hits(FEED_PATH) == 2
    assert len(notes) == 1 and "HTTP 429" in notes[0] and "retry 1/3" in notes[0]


def test_retry_after_is_honoured(rss_env):
    rss_env.route(FEED_PATH, Reply(503, headers={"Retry-After": "1"}), Reply(200, RSS))
    t0 = time.monotonic()
    assert len(list(fetch_today(policy=rss_env.policy()))) == 207
    gap = rss_env.log[1].at - rss_env.log[0].at
    assert gap >= 0.95 and time.monotonic() - t0 < 5


def test_503_storm_ends_in_a_clear_error(rss_env):
    rss_env.route(FEED_PATH, Reply(503, b"busy"))
    with pytest.raises(FetchError) as e:
        fetch_today(policy=rss_env.policy(retries=2))
    msg = str(e.value)
    assert "HTTP 503" in msg and "3 tries" in msg and "try again later" in msg and "\n" not in msg
    assert rss_env.hits(FEED_PATH) == 3


def test_a_long_retry_after_gives_up_at_once(rss_env):
    rss_env.route(FEED_PATH, Reply(429, headers={"Retry-After": "3600"}))
    with pytest.raises(FetchError, match="wait 3600 s"):
        fetch_today(policy=rss_env.policy())
    assert rss_env.hits(FEED_PATH) == 1


def test_server_that_never_answers_times_out():
    with silent_server() as base:
        t0 = time.monotonic()
        with pytest.raises(FetchError, match=r"no answer .* within 0.3 s \(2 tries\)"):
            fetch_today(policy=fast(timeout=0.3, retries=1, rss_url=base + "/rss/"))
        assert time.monotonic() - t0 < 3


def test_connection_refused():
    with closed_port_url() as url, pytest.raises(FetchError, match="cannot connect .*connection refused"):
        fetch_today(policy=fast(retries=1, rss_url=url + "/rss/"))


def test_a_certificate_not_trusted_is_said_in_words_and_not_retried(tmp_path):
    """A server whose certificate this machine does not trust (self-signed here; on a company network, the
    proxy's that re-signs HTTPS) was a connection failure like any other: retried for a minute by default, then
    'cannot connect to HOST (SSLError) after 6 tries; ... try again later', an exception's name and advice that
    cannot help. It is one line at once, saying what is wrong and how to trust the certificate."""
    tls = self_signed(tmp_path)
    if tls is None:
        pytest.skip(NO_OPENSSL)
    with FixtureServer(tls=tls) as srv:
        srv.route(FEED_PATH, Reply(200, RSS))
        srv.route("/api/query", Reply(200, ATOM_IDS))
        notes = []
        with pytest.raises(FetchError) as e:
            fetch_today(policy=fast(rss_url=srv.url("/rss/")), warn=notes.append)
        assert str(e.value) == (f"{srv.url(FEED_PATH)}: 127.0.0.1:{srv.port}'s certificate is not trusted "
                                "(self-signed certificate): on a network that inspects HTTPS (a company proxy), "
                                "set REQUESTS_CA_BUNDLE to the file of its certificate authority")
        with pytest.raises(FetchError, match="certificate is not trusted"):
            fetch_ids(["1707.08567"], policy=fast(api_url=srv.url("/api/query")), warn=notes.append)
        assert notes == [] and srv.hits() == 0


def test_other_failures_of_a_request_are_said_in_words_not_by_the_exception(rss_env):
    """An https URL to a server that speaks plain HTTP, and a redirect loop: 'cannot connect to HOST (SSLError)'
    and 'request failed (TooManyRedirects)' named an exception."""
    with pytest.raises(FetchError) as e:
        fetch_today(policy=fast(rss_url=f"https://127.0.0.1:{rss_env.port}/rss/", retries=1))
    assert "(the secure connection failed: wrong version number) after 2 tries" in str(e.value)
    rss_env.route(FEED_PATH, Reply(302, headers={"Location": FEED_PATH}))
    with pytest.raises(FetchError) as e:
        fetch_today(policy=rss_env.policy())
    assert str(e.value) == f"{rss_env.url(FEED_PATH)}: request failed (exceeded 30 redirects: a redirect loop)"


def test_404_names_the_url(rss_env):
    with pytest.raises(FetchError, match="HTTP 404") as e:
        fetch_today(["cs.XX"], policy=rss_env.policy())
    assert rss_env.url("/rss/cs.XX") in str(e.value)


def test_empty_feed_is_an_empty_day(rss_env):
    rss_env.route(FEED_PATH, Reply(200, EMPTY_RSS))
    report = ReadReport()
    assert list(fetch_today(report=report, policy=rss_env.policy())) == []
    assert report.seen == 0 and report.feed_date == "2024-11-30"


def test_env_knobs_make_the_policy(tmp_path):
    from ranker.settings import FetchSettings, resolve
    cfg = tmp_path / "ranker.toml"
    cfg.write_text("[fetch]\ntimeout = 9\nretries = 2\ndownload_timeout = 60\n")
    s = resolve(cfg, env={"RANKER_FETCH_TIMEOUT": "1.5", "RANKER_FETCH_RETRIES": "7", "RANKER_FETCH_BACKOFF": "0.01",
                          "RANKER_API_DELAY": "0", "RANKER_RSS_URL": "http://127.0.0.1:9/rss/"})
    p = NetPolicy.from_settings(s.fetch)
    assert (p.timeout, p.retries, p.backoff, p.api_delay) == (1.5, 7, 0.01, 0.0)     # the environment wins
    assert p.rss_url == "http://127.0.0.1:9/rss/" and p.api_url == "https://export.arxiv.org/api/query"
    assert p.download_timeout == 60.0
    s = resolve(cfg, env={"RANKER_FETCH_DOWNLOAD_TIMEOUT": "2.5"})
    assert NetPolicy.from_settings(s.fetch).download_timeout == 2.5
    assert NetPolicy.from_settings(FetchSettings()).download_timeout == NetPolicy().download_timeout == 300.0


def test_retry_after_forms():
    assert retry_after("2") == 2.0 and retry_after(None) is None and retry_after("soon") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# --------------------------------------------------------------------------- offline
def test_offline_refuses_non_loopback(offline):
    with pytest.raises(FetchError, match="offline mode: .* rss.arxiv.org"):
        fetch_bytes("https://rss.arxiv.org/rss/cs.LG")
    with pytest.raises(FetchError, match="offline"):
        fetch_ids(["2411.17700"])        # the default API URL is arXiv's
    check_allowed("http://127.0.0.1:9/x")                  # loopback is fine


def test_offline_is_switched_off_again():
    check_allowed("https://export.arxiv.org/api/query")     # the fixture of the test above cleaned up


def test_offline_allows_loopback(rss_env, offline):
    rss_env.route(FEED_PATH, Reply(200, RSS))
    assert len(list(fetch_today(policy=rss_env.policy()))) == 207


def test_offline_refuses_a_redirect_off_loopback(rss_env, offline):
    """A loopback feed (a mirror, a proxy) that redirects to arXiv: offline, the redirect's target is refused
    before any name lookup or connect, in one line naming it. It was followed: a DNS query for rss.arxiv.org
    from the air-gapped machine, retried as a network failure, then 'check the network'."""
    rss_env.route(FEED_PATH, Reply(302, headers={"Location": "https://rss.arxiv.org/rss/cs.LG+cs.AI"}))
    notes = []
    with pytest.raises(FetchError) as e:
        fetch_today(policy=rss_env.policy(), warn=notes.append)
    assert "offline mode: will not connect to rss.arxiv.org" in str(e.value), str(e.value)
    assert notes == [] and rss_env.hits(FEED_PATH) == 1


def test_read_papers_from_a_url(server):
    server.route("/saved.xml", Reply(200, RSS))
    assert len(list(read_papers(server.url("/saved.xml"), "cs.LG,cs.AI", policy=fast()))) == 207


# --------------------------------------------------------------------------- arXiv API (through `arxiv`)
def test_fetch_ids_through_the_arxiv_package(api_env):
    api_env.route("/api/query", Reply(200, ATOM_IDS))
    report = ReadReport()
    papers = fetch_ids(["0808.05394", "1707.08567v1"], report=report, policy=api_env.policy())
    assert [p.id for p in papers] == ["1707.08567"]
    p = papers[0]
    assert p.title.startswith("Proceedings of Workshop AEW10") and "Dirk Wübben" in p.authors
    assert p.date == "2017-07-27" and p.primary_category == "cs.IT"
    assert report.skipped == 1 and "0808.05394" in report.warnings[0]
    (hit,) = api_env.log
    assert hit.query["id_list"] == ["0808.05394,1707.08567"]


def test_fetch_ids_with_a_day_counts_the_submissions_for_the_date_note(api_env):
    """`fetch --ids 1707.08567 --date 2017-07-27` (a paper submitted that day, announced the next) labelled it with
    a day it cannot be in without a word: the API's papers never reached ReadReport.submitted, as a saved API answer
    read with --from does. Now date_note says so; the next day says nothing."""
    api_env.route("/api/query", Reply(200, ATOM_IDS))
    report = ReadReport(source="arXiv API")
    assert [p.date for p in fetch_ids(["1707.08567"], date="2017-07-27", report=report,
                                      policy=api_env.policy())] == ["2017-07-27"]
    assert report.date_note("2017-07-27") == (
        "1 paper in arXiv API was submitted on or after 2017-07-27 (up to 2017-07-27) and cannot be in that day's "
        "announcement; the papers are labelled 2017-07-27 all the same")
    assert report.date_note("2017-07-28") is None


def test_an_id_given_twice_is_fetched_and_written_once(api_env):
    """`ranker fetch --ids 1707.08567,1707.08567v1` (an id pasted twice, once with its version): one paper, asked
    for once (the list of ids it asks the API for holds it once, and so does the list it returns)."""
    api_env.route("/api/query", Reply(200, ATOM_IDS))
    papers = fetch_ids(["1707.08567", "arXiv:1707.08567v1", " 1707.08567 "], policy=api_env.policy())
    assert [p.id for p in papers] == ["1707.08567"]
    (hit,) = api_env.log
    assert hit.query["id_list"] == ["1707.08567"]


def test_fetch_ids_retries_then_fails_clearly(api_env):
    api_env.route("/api/query", Reply(503))
    with pytest.raises(FetchError, match="HTTP 503 to all 3 tries"):
        fetch_ids(["1707.08567"], policy=api_env.policy(retries=2))
    assert api_env.hits() == 3


def test_fetch_ids_429_then_success(api_env):
    api_env.route("/api/query", Reply(429, headers={"Retry-After": "0"}), Reply(200, ATOM_IDS))
    assert [p.id for p in fetch_ids(["1707.08567"], policy=api_env.policy())] == ["1707.08567"]
    assert api_env.hits() == 2


def test_an_api_retry_waits_at_least_the_api_delay(api_env):
    """arXiv asks for 3 s between two API requests; a retry is a request too, so the backoff (2 s by
    default) may not bring the second try sooner than the API delay."""
    api_env.route("/api/query", Reply(503), Reply(200, ATOM_IDS))
    assert [p.id for p in fetch_ids(["1707.08567"], policy=api_env.policy(api_delay=0.6))] == ["1707.08567"]
    first, second = api_env.log
    assert second.at - first.at >= 0.6


def test_fetch_window(api_env):
    page = ATOM_QUERY.replace(b"<opensearch:totalResults>214881", b"<opensearch:totalResults>10")
    api_env.route("/api/query", Reply(200, page))
    report = ReadReport()
    papers = list(fetch_window("2025-05-12", "2025-05-13", ["cs.LG", "cs.AI"], report=report, policy=api_env.policy()))
    assert papers and all({"cs.LG", "cs.AI"} & set(p.categories) for p in papers)
    assert report.seen == 10 and report.filtered == 10 - len(papers)
    (hit,) = api_env.log
    assert hit.query["search_query"] == [window_query("2025-05-12", "2025-05-13", ["cs.LG", "cs.AI"])]
    assert "submittedDate:[202505120000 TO 202505132359]" in hit.query["search_query"][0]
    assert hit.query["sortBy"] == ["submittedDate"]


def test_api_timeout():
    with silent_server() as base:
        with pytest.raises(FetchError, match="no answer"):
            fetch_ids(["1707.08567"], policy=fast(timeout=0.3, retries=0, api_url=base + "/api/query"))


def test_a_connection_lost_mid_download_is_retried(rss_env):
    """A feed whose connection drops half-way through the body is asked again, like a reset before it."""
    rss_env.route(FEED_PATH, Reply(200, RSS, cut=len(RSS) // 2), Reply(200, RSS))
    notes = []
    assert len(list(fetch_today(policy=rss_env.policy(), warn=notes.append))) == 207
    assert rss_env.hits(FEED_PATH) == 2 and len(notes) == 1 and "retry 1/3" in notes[0]


def test_a_connection_lost_mid_download_every_time_is_one_line(rss_env):
    rss_env.route(FEED_PATH, Reply(200, RSS, cut=100))
    with pytest.raises(FetchError) as e:
        fetch_today(policy=rss_env.policy(retries=1))
    assert "2 tries" in str(e.value) and rss_env.hits(FEED_PATH) == 2


def test_an_api_page_cut_short_is_retried(api_env):
    api_env.route("/api/query", Reply(200, ATOM_IDS, cut=200), Reply(200, ATOM_IDS))
    assert [p.id for p in fetch_ids(["1707.08567"], policy=api_env.policy())] == ["1707.08567"]
    assert api_env.hits() == 2


def test_an_api_page_whose_xml_is_cut_short_is_retried_not_half_read(api_env):
    """A page whose HTTP answer is whole but whose XML stops half-way (a body ended by the connection's close, a
    proxy's truncation): arxiv's parser recovers what it can, so the paper cut inside its author list came back
    with one author of several, stored as it was, with no word said. It is asked again like a page cut short,
    and a page that stays broken is one line, with nothing half read given back."""
    cut = ATOM_IDS[:ATOM_IDS.index(b"<author>") + len(b"<author><name>Some")]
    api_env.route("/api/query", Reply(200, cut), Reply(200, ATOM_IDS))
    notes = []
    papers = fetch_ids(["1707.08567"], policy=api_env.policy(), warn=notes.append)
    assert [len(p.authors) for p in papers] == [ATOM_IDS.count(b"<author>")] and api_env.hits() == 2
    assert len(notes) == 1 and "a page cut short (it stops before its closing </feed>)" in notes[0]
    assert "retry 1/3" in notes[0]
    api_env.route("/api/query", Reply(200, cut))
    with pytest.raises(FetchError, match=r"answered a page cut short \(it stops before its closing </feed>\) to all 2 "
                                         r"tries; try again later$"):
        fetch_ids(["1707.08567"], policy=api_env.policy(retries=1))
    assert api_env.hits() == 4
    # a byte that is not UTF-8, or a character XML forbids, in a whole page is no reason to ask again
    api_env.route("/api/query", Reply(200, ATOM_IDS.replace(b"The 10th Asia-Europe", b"The 10th\x0c Asia\xff-Europe")))
    papers = fetch_ids(["1707.08567"], policy=api_env.policy())
    assert papers[0].abstract.startswith("The 10th Asia\ufffd-Europe") and api_env.hits() == 5


def test_fetch_ids_finds_an_old_id_given_with_its_subject_class(api_env):
    """math.GT/0309136 is math/0309136 (an old id's subject class is not part of it): the API answers with the
    archive's id, and the paper is found, not reported missing."""
    old = ATOM_IDS.replace(b"1707.08567", b"math/0309136")
    api_env.route("/api/query", Reply(200, old))
    report = ReadReport()
    papers = fetch_ids(["math.GT/0309136v1"], report=report, policy=api_env.policy())
    assert [p.id for p in papers] == ["math/0309136"] and report.skipped == 0


# --------------------------------------------------------------------------- answers that trickle
FOREVER = b"<" * 1_000_000          # a byte every 0.2 s: 55 hours
# each silence (0.2 s) well under the timeout, each try's answer cut off at the download timeout
TRICKLING = {"timeout": 1.0, "download_timeout": 1.5}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
def test_a_feed_that_trickles_forever_is_abandoned_at_the_download_timeout(rss_env, chunked):
    """`timeout` bounds each silence, not the answer: a server (a proxy, a captive portal) that sent a byte every
    0.2 s never tripped it, and a cron `ranker fetch` ran on for hours without a word. Each try ends once its
    answer is still coming `download_timeout` after the request, is retried like a timeout, and the last is one
    line naming the host and the limit."""
    rss_env.route(FEED_PATH, Reply(200, FOREVER, trickle=0.2, chunked=chunked))
    notes = []
    t0 = time.monotonic()
    with pytest.raises(FetchError) as e:
        fetch_today(policy=rss_env.policy(retries=1, **TRICKLING), warn=notes.append)
    took = time.monotonic() - t0
    host = f"127.0.0.1:{rss_env.port}"
    assert str(e.value) == (f"{rss_env.url(FEED_PATH)}: {host} was still sending its answer after 1.5 s (2 tries; a "
                            "proxy or a network that holds the connection open?); try again later, or on a very "
                            "slow link raise fetch.download_timeout")
    assert rss_env.hits(FEED_PATH) == 2
    assert notes == [f"{host}: the answer was still coming after 1.5 s; retry 1/1 in 0.0 s"]
    assert 2 * 1.5 <= took < 2 * (1.5 + 1.0) + 1.5


@pytest.mark.timeout(30)
@pytest.mark.parametrize("reply", [
    Reply(200, FOREVER, trickle=3.0),
    Reply(200, FOREVER, trickle=3.0, chunked=True),
    Reply(200, gzip.compress(FOREVER), headers={"Content-Encoding": "gzip"}, trickle=3.0),
], ids=["length", "chunked", "gzip"])
def test_a_try_ends_at_the_download_timeout_not_a_socket_timeout_after_it(server, reply):
    """The clock was looked at only between pieces of the body: a wait for the next piece ran on past the
    download timeout for up to the socket `timeout` (a piece every 3 s, under a timeout of 5 s, ended a try
    of 1 s at 3 s), and a gzip body trickled was not cut at all (urllib3 reads on, each wait under `timeout`,
    until its header gives a decoded byte). Each wait now ends at the try's deadline."""
    server.route("/feed.xml", reply)
    t0 = time.monotonic()
    with pytest.raises(FetchError, match=r"was still sending its answer after 1 s \(1 tries;"):
        fetch_bytes(server.url("/feed.xml"), policy=fast(timeout=5.0, download_timeout=1.0, retries=0))
    took = time.monotonic() - t0
    # (the next piece came at 3 s: well short of it, whatever else a loaded machine runs)
    assert server.hits() == 1 and 1.0 <= took < 2.5, took


@pytest.mark.timeout(30)
def test_an_api_page_that_trickles_forever_is_abandoned_at_the_download_timeout(api_env):
    """The arXiv API's pages come through arxiv's Client and its `_session`, which is ours: the same limit."""
    api_env.route("/api/query", Reply(200, FOREVER, trickle=0.2))
    t0 = time.monotonic()
    with pytest.raises(FetchError, match=r"was still sending its answer after 1.5 s \(3 tries;"):
        fetch_ids(["1707.08567"], policy=api_env.policy(retries=2, **TRICKLING))
    assert api_env.hits() == 3 and time.monotonic() - t0 < 3 * (1.5 + 1.0) + 1.5


@pytest.mark.timeout(30)
def test_a_trickling_answer_is_retried_like_a_timeout(rss_env):
    rss_env.route(FEED_PATH, Reply(200, FOREVER, trickle=0.2), Reply(200, RSS))
    notes = []
    assert len(list(fetch_today(policy=rss_env.policy(**TRICKLING), warn=notes.append))) == 207
    assert rss_env.hits(FEED_PATH) == 2 and len(notes) == 1 and "still coming after 1.5 s; retry 1/3" in notes[0]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("reply", [
    Reply(200, RSS, trickle=0.03, piece=64 * 1024),
    Reply(200, RSS, trickle=0.03, piece=64 * 1024, chunked=True),
    Reply(200, gzip.compress(RSS), headers={"Content-Encoding": "gzip"}, trickle=0.03, piece=16 * 1024),
], ids=["length", "chunked", "gzip"])
def test_a_slow_answer_within_the_download_timeout_is_read_whole(server, reply):
    """The body is read a piece at a time as it arrives (to look at the clock between pieces): a slow answer that
    ends in time is the same bytes as a fast one, whatever its framing or compression."""
    server.route("/feed.xml", reply)
    t0 = time.monotonic()
    assert fetch_bytes(server.url("/feed.xml"), policy=fast(timeout=1.0, download_timeout=4.0)) == RSS
    assert server.hits() == 1 and time.monotonic() - t0 >= 0.5


@pytest.mark.timeout(30)
def test_a_slow_api_page_within_the_download_timeout_is_read_whole(api_env):
    api_env.route("/api/query", Reply(200, ATOM_IDS, trickle=0.05, piece=256))
    t0 = time.monotonic()
    assert [p.id for p in fetch_ids(["1707.08567"], policy=api_env.policy(timeout=1.0, download_timeout=3.0))] == [
        "1707.08567"]
    assert api_env.hits() == 1 and time.monotonic() - t0 >= 0.7


# --------------------------------------------------------------------------- the API's empty pages
EMPTY_ATOM = (b'<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom" '
              b'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"><title>ArXiv Query</title><id>x</id>'
              b'<opensearch:totalResults>0</opensearch:totalResults><opensearch:startIndex>0</opensearch:startIndex>'
              b'<opensearch:itemsPerPage>500</opensearch:itemsPerPage></feed>')


def two_pages() -> tuple[bytes, bytes]:
    """The 10-entry API answer as the first page of 20 results, and a second page of 10 other ids."""
    import re
    first = ATOM_QUERY.replace(b"<opensearch:totalResults>214881", b"<opensearch:totalResults>20")
    n = iter(range(1, 11))
    second = re.sub(rb"<id>http://arxiv.org/abs/[^<]*</id>",
                    lambda m: b"<id>http://arxiv.org/abs/2505.%05dv1</id>" % next(n), first)
    return first, second


def test_an_empty_page_in_the_middle_of_a_listing_is_asked_again_politely(api_env):
    """The API answers a page with no entry for a while, in the middle of a listing whose totalResults says
    more. arxiv's own two quick tries (3 s apart) failed the whole window (or `run --date`'s day) where the
    same quirk on the first page was ridden out: the page is asked again as the policy says, each try at least
    the API's delay after the one before, and the listing is whole."""
    first, second = two_pages()
    api_env.route("/api/query", Reply(200, first), Reply(200, EMPTY_ATOM), Reply(200, EMPTY_ATOM),
                  Reply(200, EMPTY_ATOM), Reply(200, second))
    report, notes = ReadReport(), []
    papers = list(fetch_window("2025-05-12", "2025-05-13", ["cs.LG", "cs.AI"], report=report, warn=notes.append,
                               policy=api_env.policy(retries=3, api_delay=0.3)))
    assert report.seen == 20 and {p.id for p in papers} & {f"2505.{i:05d}" for i in range(1, 11)}
    assert [h.query["start"] for h in api_env.log] == [["0"], ["10"], ["10"], ["10"], ["10"]]
    assert all(b.at - a.at >= 0.3 for a, b in zip(api_env.log, api_env.log[1:]))
    assert len(notes) == 3 and "empty page" in notes[0] and "retry 1/3" in notes[0]


def test_a_middle_page_that_stays_empty_is_an_error_not_a_short_listing(api_env):
    first, _ = two_pages()
    api_env.route("/api/query", Reply(200, first), Reply(200, EMPTY_ATOM))
    with pytest.raises(FetchError) as e:
        list(fetch_window("2025-05-12", "2025-05-13", ["cs.LG", "cs.AI"], policy=api_env.policy(retries=2)))
    msg = str(e.value)
    assert "empty page 3 times in the middle of the listing (from result 10 on" in msg and "\n" not in msg
    assert api_env.hits() == 4


def test_an_empty_first_answer_is_asked_again_before_it_is_believed(api_env):
    """An empty first page was believed at once: `fetch --ids` of papers that exist reported every id 'not
    found', and a window of weekdays was 'nothing to do' (exit 0). It is asked again first; one that stays
    empty is believed (unknown ids, a window nobody submitted to)."""
    api_env.route("/api/query", Reply(200, EMPTY_ATOM), Reply(200, ATOM_IDS))
    report = ReadReport()
    assert [p.id for p in fetch_ids(["1707.08567"], report=report, policy=api_env.policy())] == ["1707.08567"]
    assert report.skipped == 0 and api_env.hits() == 2

    page = ATOM_QUERY.replace(b"<opensearch:totalResults>214881", b"<opensearch:totalResults>10")
    api_env.route("/api/query", Reply(200, EMPTY_ATOM), Reply(200, page))
    report = ReadReport()
    assert list(fetch_window("2025-05-12", "2025-05-13", report=report, policy=api_env.policy()))
    assert report.seen == 10 and api_env.hits() == 4

    api_env.route("/api/query", Reply(200, EMPTY_ATOM))
    report = ReadReport()
    assert fetch_ids(["2505.99999"], report=report, policy=api_env.policy(retries=2)) == []
    assert report.skipped == 1 and api_env.hits() == 7


def test_every_request_says_it_is_ranker(server):
    """arxiv sent its own User-Agent ('arxiv.py/4.0.2') with every API page, over ours: the API's operators
    saw a generic library, not ranker and its promise of 3 s between requests."""
    from ranker.sources.net import USER_AGENT
    server.route("/api/query", Reply(200, ATOM_IDS))
    server.route(FEED_PATH, Reply(200, RSS))
    fetch_ids(["1707.08567"], policy=fast(api_url=server.url("/api/query")))
    fetch_today(policy=fast(rss_url=server.url("/rss/")))
    assert [h.headers.get("User-Agent") for h in server.log] == [USER_AGENT, USER_AGENT]
    assert USER_AGENT.startswith("ranker/")


MAINTENANCE = (b"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>\n<title>arXiv is down for\n maintenance"
               b"</title></head><body><p>Back soon<br>The arXiv team</p></body></html>")


def test_a_web_page_answered_with_200_is_said_so(rss_env, api_env):
    """arXiv's maintenance page (or a network's login page) answered with 200: for the feed it read 'not
    well-formed XML (Opening and ending tag mismatch: meta ...); a truncated or corrupted download?', and from
    the API it parsed as an answer with no entry, so a window or a list of ids came back empty (exit 0,
    'nothing to do'). Either way it is one line saying a web page came, with its title, and asks nothing more."""
    rss_env.route(FEED_PATH, Reply(200, MAINTENANCE, content_type="text/html; charset=utf-8"))
    api_env.route("/api/query", Reply(200, MAINTENANCE, content_type="text/html; charset=utf-8"))
    with pytest.raises(FetchError) as e:
        fetch_today(policy=fast(rss_url=rss_env.url("/rss/")))
    assert str(e.value) == (f"{rss_env.url(FEED_PATH)}: 127.0.0.1:{rss_env.port} answered a web page ('arXiv is "
                            "down for maintenance') instead of a feed (a maintenance page, or a network that "
                            "wants a login first?): try again later")
    with pytest.raises(FetchError, match="answered a web page"):
        list(fetch_window("2025-05-12", "2025-05-13", policy=fast(api_url=api_env.url("/api/query"))))
    with pytest.raises(FetchError, match="answered a web page"):
        fetch_ids(["1707.08567"], policy=fast(api_url=api_env.url("/api/query")))
    assert rss_env.hits(FEED_PATH) == 1 and api_env.hits("/api/query") == 2
