"""`ranker fetch` end to end: a subprocess of the real command, a real SQLite store, a real local server."""
from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from pathlib import Path

import pytest

from conftest import DAYS, FIXTURES, first_papers, ranker
from fixture_server import FixtureServer, Reply

RSS = FIXTURES / "arxiv_rss_all_2024-11-28.xml"
FAST = {"RANKER_FETCH_BACKOFF": "0.01", "RANKER_API_DELAY": "0", "RANKER_FETCH_TIMEOUT": "5"}


def fetch_cli(*args, cwd=None, **env):
    """`ranker ...` with short network waits (and any more environment)."""
    return ranker(*args, cwd=cwd, env={**FAST, **env}, timeout=120)


def lines(path):
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


def count(db):
    with closing(sqlite3.connect(db)) as c:
        return c.execute("SELECT COUNT(*) FROM papers").fetchone()[0]

def _atom_10() -> bytes:
    """The API fixture's page of 10 entries, its total said to be those 10 (one page, no second asked)."""
    return (FIXTURES / "arxiv_api_atom_query_10.xml").read_bytes().replace(
        b"<opensearch:totalResults>214881", b"<opensearch:totalResults>10")


def _clock_at(monkeypatch, now: list) -> None:
    """datetime.datetime.now() is now[0] (an aware moment the test moves) for the code under test."""
    import datetime as dt

    class Clock(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return now[0].astimezone(tz) if tz else now[0].replace(tzinfo=None)

    monkeypatch.setattr(dt, "datetime", Clock)



def test_contract_207_papers(tmp_path):
    out, db = tmp_path / "papers.jsonl", tmp_path / "r.sqlite3"
    r = fetch_cli("fetch", "--from", RSS, "--category", "cs.LG,cs.AI", "--announce", "new,cross", "--out", out,
               "--db", db)
    assert r.returncode == 0, r.stderr
    rows = lines(out)
    assert len(rows) == 207 and len({x["id"] for x in rows}) == 207
    assert r.stderr.strip().splitlines()[-1] == f"207 papers (79 new, 128 cross) for 2024-11-28 -> {out}"
    assert r.stdout == ""
    assert count(db) == 207
    with closing(sqlite3.connect(db)) as c:
        assert c.execute("SELECT COUNT(*) FROM paper_days WHERE day='2024-11-28'").fetchone()[0] == 207


def test_out_dash_is_stdout_as_for_prefilter(tmp_path):
    r = fetch_cli("fetch", "--from", RSS, "--category", "cs.LG,cs.AI", "--announce", "new,cross", "--out", "-",
                  "--db", tmp_path / "r.sqlite3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(rows) == 207 and not (tmp_path / "-").exists()
    assert r.stderr.strip().splitlines()[-1] == "207 papers (79 new, 128 cross) for 2024-11-28 -> stdout"


def test_papers_seen_on_an_earlier_day_are_marked(tmp_path):
    db = tmp_path / "r.sqlite3"
    assert fetch_cli("fetch", "--from", RSS, "--category", "cs.AI", "--out", tmp_path / "a.jsonl",
                  "--db", db).returncode == 0
    r = fetch_cli("fetch", "--from", RSS, "--category", "cs.LG,cs.AI", "--date", "2024-11-29",
               "--out", tmp_path / "b.jsonl", "--db", db)
    assert r.returncode == 0, r.stderr
    rows = lines(tmp_path / "b.jsonl")
    first_ai = {x["id"] for x in lines(tmp_path / "a.jsonl")}
    marked = {x["id"] for x in rows if x.get("first_seen") == "2024-11-28"}
    assert marked == first_ai and all(x["date"] == "2024-11-29" for x in rows)
    assert f"; {len(first_ai)} seen on an earlier day" in r.stderr
    assert count(db) == 207


def test_a_papers_file_from_prefilter_output_holds_no_old_verdict(tmp_path):
    """`ranker fetch --from ranked.jsonl` (what prefilter or run wrote) carried the ranking's prefilter_score,
    kept, topic and rule into the papers file, where `ranker score --only-kept` took the old verdict for that
    file's own. The papers file holds the paper's fields and the user's own keys, not a verdict."""
    ranked = tmp_path / "ranked.jsonl"
    rows = lines(DAYS / "2025-05-15" / "listing.jsonl")[:4]
    ranked.write_text("".join(json.dumps({"id": r["id"], "prefilter_score": 0.9 - i / 10, "kept": i < 2,
                                          "topic": "Emerging Trends", "rule": "keep", "my_note": "read it",
                                          **{k: v for k, v in r.items() if k != "id"}}) + "\n"
                              for i, r in enumerate(rows)))
    out = tmp_path / "papers.jsonl"
    r = fetch_cli("fetch", "--from", ranked, "--out", out, "--db", tmp_path / "r.sqlite3")
    assert r.returncode == 0, r.stderr
    got = lines(out)
    assert [x["id"] for x in got] == [x["id"] for x in rows]
    assert all(x["my_note"] == "read it" and "gpt_selected" in x for x in got)          # the user's keys stay
    assert not [k for x in got for k in ("prefilter_score", "kept", "topic", "rule") if k in x]
    r = ranker("score", "--papers", out, "--only-kept", "--out", tmp_path / "s.jsonl", "--backend", "fake",
               "--db", tmp_path / "r.sqlite3")
    assert r.returncode == 1 and "prefilter" in r.stderr, r.stderr       # not taken for a ranking


def test_missing_file_is_one_line(tmp_path):
    r = fetch_cli("fetch", "--from", "missing.xml", "--out", tmp_path / "p.jsonl", cwd=tmp_path)
    assert r.returncode == 1
    assert r.stderr == "error: --from missing.xml: file not found\n"
    assert not (tmp_path / "p.jsonl").exists()


def test_bad_input_never_loses_stored_papers(tmp_path):
    db, out = tmp_path / "r.sqlite3", tmp_path / "p.jsonl"
    assert fetch_cli("fetch", "--from", RSS, "--out", out, "--db", db).returncode == 0
    before = out.read_bytes()
    cut = tmp_path / "cut.xml"
    cut.write_bytes(RSS.read_bytes()[:300_000])
    r = fetch_cli("fetch", "--from", cut, "--out", out, "--db", db)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith(f"error: --from {cut}:")
    assert "Traceback" not in r.stderr
    assert count(db) == 207 and out.read_bytes() == before
    # a JSONL that fails half-way (nothing valid) stores nothing either
    junk = tmp_path / "junk.jsonl"
    junk.write_text('{"id": "2501.00001", "title": \n{"broken\n')
    r = fetch_cli("fetch", "--from", junk, "--out", tmp_path / "j.jsonl", "--db", db)
    assert r.returncode == 1 and "no valid paper line" in r.stderr and f"{junk}:1" in r.stderr
    assert count(db) == 207 and not (tmp_path / "j.jsonl").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_paper_of_an_announce_type_ranker_does_not_know_is_skipped_and_counted(tmp_path):
    """The fixture's feed with one cs.LG paper's <arxiv:announce_type> changed to a type arXiv might add later: it
    was kept as "new" and entered the day (and the digest) unasked. It is skipped, with a warning naming it and a
    count in the summary line; the other 206 are read as before."""
    item = "<guid isPermaLink=\"false\">oai:arXiv.org:2411.17702v1</guid>"
    doc = RSS.read_text(encoding="utf-8")
    at = doc.index(item)
    end = doc.index("</item>", at)
    assert doc.count(item) == 1 and doc[at:end].count("<arxiv:announce_type>new<") == 1
    feed = tmp_path / "feed.xml"
    feed.write_text(doc[:at] + doc[at:end].replace("<arxiv:announce_type>new<", "<arxiv:announce_type>Errata<")
                    + doc[end:], encoding="utf-8")
    out, db = tmp_path / "papers.jsonl", tmp_path / "r.sqlite3"
    r = fetch_cli("fetch", "--from", feed, "--category", "cs.LG,cs.AI", "--announce", "new,cross", "--out", out,
                  "--db", db)
    assert r.returncode == 0, r.stderr
    rows = lines(out)
    assert len(rows) == 206 and "2411.17702" not in {x["id"] for x in rows}
    err = r.stderr.strip().splitlines()
    assert err[-1] == (f"206 papers (79 new, 127 cross) for 2024-11-28 -> {out}; 1 of an unknown announce type "
                       "skipped"), r.stderr
    assert any(e.startswith("warning: 1 record of an announce type ranker does not know skipped")
               and e.endswith(f"{feed}:{doc[:at].count(chr(10)) - 4}") for e in err), r.stderr
    assert count(db) == 206


def test_warnings_are_counted_lines(tmp_path):
    src = DAYS / "2025-05-15" / "listing.jsonl"
    data = src.read_text(encoding="utf-8").splitlines()
    data[5] = data[5][:30]                       # a truncated line
    data.append(data[0])                         # a duplicate
    path = tmp_path / "day.jsonl"
    path.write_text("\n".join(data) + "\n", encoding="utf-8")
    r = fetch_cli("fetch", "--from", path, "--out", tmp_path / "o.jsonl", "--db", tmp_path / "r.sqlite3")
    assert r.returncode == 0, r.stderr
    err = r.stderr.strip().splitlines()
    assert any(e.startswith("warning: 1 record skipped") and f"{path}:6" in e for e in err)
    assert any(e.startswith("warning: 1 duplicate id dropped") and e.endswith(f"{path}:{len(data)}") for e in err)
    assert err[-1].startswith("191 papers (") and "for 2025-05-15" in err[-1]


def test_empty_day_online_writes_an_empty_file(tmp_path):
    empty = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>x</title>'
             b"<pubDate>Sat, 30 Nov 2024 00:00:00 -0500</pubDate></channel></rss>")
    with FixtureServer() as srv:
        srv.route("/rss/cs.LG+cs.AI", Reply(200, empty))
        r = fetch_cli("fetch", "--out", tmp_path / "p.jsonl", "--db", tmp_path / "r.sqlite3",
                   RANKER_RSS_URL=srv.url("/rss/"))
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip().splitlines() == [
        f"nothing to do: no announcements on 2024-11-30 in {srv.url('/rss/cs.LG+cs.AI')} (a weekend or holiday?); "
        f"wrote an empty {tmp_path / 'p.jsonl'}"]
    assert (tmp_path / "p.jsonl").read_text() == ""


def test_online_today_with_a_429(tmp_path):
    with FixtureServer() as srv:
        srv.route("/rss/cs.LG+cs.AI", Reply(429, headers={"Retry-After": "0"}), Reply(200, RSS.read_bytes()))
        r = fetch_cli("fetch", "--out", tmp_path / "p.jsonl", "--db", tmp_path / "r.sqlite3", "--offline",
                   RANKER_RSS_URL=srv.url("/rss/"))
        assert srv.hits() == 2
    assert r.returncode == 0, r.stderr
    assert "HTTP 429; retry 1/" in r.stderr and len(lines(tmp_path / "p.jsonl")) == 207


def test_online_503_storm_is_one_line(tmp_path):
    with FixtureServer() as srv:
        srv.route("/rss/cs.LG+cs.AI", Reply(503))
        r = fetch_cli("fetch", "--out", tmp_path / "p.jsonl", RANKER_RSS_URL=srv.url("/rss/"),
                   RANKER_FETCH_RETRIES=2)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and "HTTP 503 to all 3 tries" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.timeout(90)
def test_online_trickling_feed_is_one_line(tmp_path):
    """A feed (a proxy, a captive portal) that sends a byte every 0.2 s never trips the timeout: `ranker fetch`
    from cron ran on for hours and never said why. Each try now ends at the download timeout, is retried, and the
    last is one line naming the host, the limit and the setting that sets it."""
    with FixtureServer() as srv:
        srv.route("/rss/cs.LG+cs.AI", Reply(200, b"<" * 1_000_000, trickle=0.2))
        r = ranker("fetch", "--out", tmp_path / "p.jsonl", "--db", tmp_path / "r.sqlite3", timeout=60,
                   env={**FAST, "RANKER_RSS_URL": srv.url("/rss/"), "RANKER_FETCH_TIMEOUT": "1",
                        "RANKER_FETCH_DOWNLOAD_TIMEOUT": "1.5", "RANKER_FETCH_RETRIES": "1"})
        assert srv.hits() == 2
    assert r.returncode == 1, r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {srv.url('/rss/cs.LG+cs.AI')}: 127.0.0.1:{srv.port} was still sending its answer after 1.5 s (2 "
        "tries; a proxy or a network that holds the connection open?); try again later, or on a very slow link "
        "raise RANKER_FETCH_DOWNLOAD_TIMEOUT")
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize("toml, env, line", [
    ("[fetch]\ndownload_timeout = 0\n", {}, "ranker.toml:2: fetch.download_timeout: must be more than 0 and at most 86400, got 0"),
    ("[fetch]\ndownload_timeout = inf\n", {}, "ranker.toml:2: fetch.download_timeout: Input should be a finite number"),
    ("", {"RANKER_FETCH_DOWNLOAD_TIMEOUT": "5min"}, "RANKER_FETCH_DOWNLOAD_TIMEOUT: expected a number, got '5min'"),
])
def test_a_bad_download_timeout_is_one_line_naming_it(tmp_path, toml, env, line):
    (tmp_path / "ranker.toml").write_text(toml)
    r = fetch_cli("fetch", "--out", tmp_path / "p.jsonl", "--db", tmp_path / "r.sqlite3", cwd=tmp_path,
                  RANKER_RSS_URL="http://127.0.0.1:9/rss/", **env)
    assert r.returncode == 1 and r.stderr.strip().splitlines() == ["error: " + line], r.stderr


def test_offline_refuses_arxiv_but_reads_files(tmp_path):
    r = fetch_cli("fetch", "--out", tmp_path / "p.jsonl", "--offline")
    assert r.returncode == 1 and "offline mode" in r.stderr and "--from FILE" in r.stderr
    r = fetch_cli("fetch", "--from", RSS, "--out", tmp_path / "p.jsonl", "--db", tmp_path / "r.sqlite3",
               RANKER_OFFLINE=1)
    assert r.returncode == 0, r.stderr


def test_ids_and_window_through_the_api(tmp_path):
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, (FIXTURES / "arxiv_api_atom_id_list.xml").read_bytes()))
        r = fetch_cli("fetch", "--ids", "1707.08567v1,0808.05394", "--out", tmp_path / "ids.jsonl",
                   "--db", tmp_path / "r.sqlite3", RANKER_API_URL=srv.url("/api/query"))
        assert r.returncode == 0, r.stderr
        assert [x["id"] for x in lines(tmp_path / "ids.jsonl")] == ["1707.08567"]
        assert "warning: 1 record skipped" in r.stderr
        page = _atom_10()
        srv.route("/api/query", Reply(200, page))
        r = fetch_cli("fetch", "--since", "2025-05-12", "--until", "2025-05-13", "--out", tmp_path / "w.jsonl",
                   "--db", tmp_path / "r.sqlite3", RANKER_API_URL=srv.url("/api/query"))
        assert r.returncode == 0, r.stderr
        assert "submittedDate:[202505120000 TO 202505132359]" in srv.log[-1].query["search_query"][0]
    assert lines(tmp_path / "w.jsonl")


def test_date_alone_rebuilds_that_day_instead_of_relabelling_todays_feed(tmp_path):
    """`ranker fetch --date D` without a source downloaded today's RSS feed and stored its papers as D's
    announcements (the database then says 2024-11-28's papers were announced on 2025-05-15: 'seen on an
    earlier day', re-uploads and the novelty context all read that). It rebuilds D through the arXiv API, as
    `ranker run --date` does."""
    db, out = tmp_path / "r.sqlite3", tmp_path / "day.jsonl"
    atom = _atom_10()
    with FixtureServer() as srv:
        srv.route("/rss/cs.LG+cs.AI", Reply(200, RSS.read_bytes()))
        srv.route("/api/query", Reply(200, atom))
        r = fetch_cli("fetch", "--date", "2025-05-15", "--out", out, "--db", db, RANKER_RSS_URL=srv.url("/rss/"),
                      RANKER_API_URL=srv.url("/api/query"))
        assert r.returncode == 0, r.stderr
        assert srv.hits("/rss/cs.LG+cs.AI") == 0 and srv.hits("/api/query") == 1
        # Thursday 2025-05-15 holds what was submitted Tuesday 14:00 to Wednesday 14:00 US Eastern
        assert "submittedDate:[202505131800 TO 202505141759]" in srv.log[-1].query["search_query"][0]
    from ranker.sources import read_papers
    rows = lines(out)
    rss_ids = {p.id for p in read_papers(RSS)}
    assert rows and {x["date"] for x in rows} == {"2025-05-15"} and not rss_ids & {x["id"] for x in rows}
    with closing(sqlite3.connect(db)) as c:
        stored = {i for (i,) in c.execute("SELECT paper_id FROM paper_days WHERE day='2025-05-15'")}
    assert stored == {x["id"] for x in rows}
    assert r.stderr.strip().splitlines()[-1].startswith(f"{len(rows)} paper") and "for 2025-05-15" in r.stderr

    # offline, the day is on arXiv's API server: one line, nothing asked
    r = fetch_cli("fetch", "--date", "2025-05-15", "--out", out, "--db", db, "--offline")
    assert r.returncode == 1 and "offline mode: the day's announcements are on arXiv's server" in r.stderr


def test_a_window_fetch_leaves_the_database_writable_between_its_pages(tmp_path):
    """`fetch --since` pages through the arXiv API (minutes, 3 s apart). It held the write lock from its first
    page on, so meanwhile a thumb from `ranker serve` or any other write failed with "database is locked"; the
    pages are read first and stored in one short transaction, which still stores nothing when a page fails."""
    from ranker.store import Store
    query = (FIXTURES / "arxiv_api_atom_query_10.xml").read_bytes()
    page1 = query.replace(b"<opensearch:totalResults>214881", b"<opensearch:totalResults>20")
    n = iter(range(1, 11))
    page2 = re.sub(rb"<id>http://arxiv.org/abs/[^<]*</id>",
                   lambda m: b"<id>http://arxiv.org/abs/2505.%05dv1</id>" % next(n), page1)
    db, out = tmp_path / "r.sqlite3", tmp_path / "w.jsonl"
    Store(db).close()

    def window(srv, out):
        return fetch_cli("fetch", "--since", "2025-05-12", "--until", "2025-05-13", "--out", out, "--db", db,
                         RANKER_API_URL=srv.url("/api/query"), RANKER_FETCH_RETRIES=0)

    def between_pages(srv, fetching, paper_id, second_page, before=0):
        """Once the second page is asked for (the first one read), write to the store from here, then let the
        second page be answered (held till then: a delay of its answer raced this write on a loaded machine)."""
        try:
            while srv.hits() < before + 2 and not fetching.done():
                time.sleep(0.02)
            assert srv.hits() == before + 2 and not fetching.done()
            with Store(db, busy_timeout=0.5) as other:
                other.set_label(paper_id, 1)       # a StoreError "database is locked" when the fetch holds it
        finally:
            second_page.set()

    with FixtureServer() as srv, ThreadPoolExecutor(1) as pool:
        second_page = threading.Event()
        srv.route("/api/query", Reply(200, page1), Reply(200, page2, hold=second_page))
        fetching = pool.submit(window, srv, out)
        between_pages(srv, fetching, "2505.00001", second_page)
        r = fetching.result()
        assert r.returncode == 0, r.stderr
        ids = {x["id"] for x in lines(out)}
        assert "2505.00001" in ids and "2202.12139" in ids       # both pages, stored at once
        assert count(db) == len(ids)
        with Store(db) as s:
            assert s.get_labels()["2505.00001"].label == 1

        # the second page fails: the first page's papers are not stored, nor is a file written
        second_page = threading.Event()
        srv.route("/api/query", Reply(200, page1.replace(b"2202.12139", b"2505.00090")), Reply(503, hold=second_page))
        fetching = pool.submit(window, srv, tmp_path / "failed.jsonl")
        between_pages(srv, fetching, "2202.12139", second_page, before=2)
        r = fetching.result()
        assert r.returncode == 1 and "HTTP 503" in r.stderr, r.stderr
        assert count(db) == len(ids) and not (tmp_path / "failed.jsonl").exists()
        with closing(sqlite3.connect(db)) as c:
            assert c.execute("SELECT 1 FROM papers WHERE id='2505.00090'").fetchone() is None


@pytest.mark.parametrize("args, message", [
    (["--category", "cs LG"], "--category: 'cs LG' is not an arXiv category"),
    # not "did you mean 'lg'?": an archive's name in form, which matches no paper
    (["--category", "LG"], "--category: 'LG' is not an arXiv category like cs.LG"),
    (["--announce", "new,old"], "--announce: unknown value 'old'"),
    (["--date", "yesterday"], "--date: expected a day as YYYY-MM-DD"),
    (["--ids", "1234"], "--ids: '1234' is not an arXiv id"),
    (["--until", "2025-01-01"], "--until: --until needs --since"),
    (["--ids", "1707.08567", "--since", "2025-01-01"], "use only one of"),
])
def test_bad_flags_are_one_line(tmp_path, args, message):
    r = fetch_cli("fetch", "--from", RSS, *args, "--out", tmp_path / "p.jsonl") if args[0] not in ("--ids", "--until") \
        else fetch_cli("fetch", *args, "--out", tmp_path / "p.jsonl")
    assert r.returncode != 0
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_help_has_examples():
    r = fetch_cli("fetch", "--help")
    assert r.returncode == 0 and "ranker fetch --from" in r.stdout and "--since" in r.stdout


def test_filters_that_match_nothing_say_so(tmp_path):
    r = fetch_cli("fetch", "--from", DAYS / "2025-05-15" / "listing.jsonl", "--category", "q-bio.NC",
               "--out", tmp_path / "p.jsonl", "--db", tmp_path / "r.sqlite3")
    assert r.returncode == 0, r.stderr
    assert r.stderr.strip() == (f"nothing to do: 0 of 192 papers in {DAYS / '2025-05-15' / 'listing.jsonl'} match "
                                f"q-bio.NC / new,cross; wrote an empty {tmp_path / 'p.jsonl'}")
    assert (tmp_path / "p.jsonl").read_text() == ""


def _next_open_day() -> str:
    """The first weekday whose announcement's submission window has not closed yet."""
    from datetime import date, datetime, timedelta, timezone

    from ranker.sources.days import is_announcement_day, submission_window
    d = date.today() - timedelta(days=1)
    while not (is_announcement_day(d.isoformat()) and submission_window(d.isoformat())[1] > datetime.now(timezone.utc)):
        d += timedelta(days=1)
    return d.isoformat()


@pytest.mark.parametrize("day", [_next_open_day(), "2099-01-05"])
def test_a_day_not_announced_yet_is_refused_and_asks_nothing(tmp_path, day):
    """`--date` of the coming announcement (its submission window still open) stored what the API held so far
    as the whole day, and a day years ahead retried the API's empty answer and said 'try again later'. Both
    are one line naming --date, nothing asked, nothing stored."""
    db, out = tmp_path / "r.sqlite3", tmp_path / "day.jsonl"
    atom = _atom_10()
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, atom))
        r = fetch_cli("fetch", "--date", day, "--out", out, "--db", db, RANKER_API_URL=srv.url("/api/query"))
        assert srv.hits() == 0
    assert r.returncode == 1
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: --date: {day} is not announced yet: ")
    assert not out.exists() and (not db.exists() or count(db) == 0)


def test_a_day_whose_window_closed_is_refused_until_its_announcement(monkeypatch):
    """Between a window's 14:00 deadline and its announcement at 20:00 US Eastern the API holds none of the day's
    papers: the day was asked for all the same, its empty answer asked again for every retry, then 'try again
    later'. It is refused as not announced yet, nothing asked; once announced, it is asked for."""
    import datetime as dt

    from ranker.errors import InputError
    from ranker.sources.api import fetch_announced
    from ranker.sources.net import NetPolicy
    now = [dt.datetime(2025, 5, 14, 21, 0, tzinfo=dt.timezone.utc)]   # 17:00 EDT: Thursday's window closed at 14:00
    _clock_at(monkeypatch, now)
    atom = _atom_10()
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, atom))
        policy = NetPolicy(api_url=srv.url("/api/query"), retries=0, api_delay=0.0)
        with pytest.raises(InputError) as e:
            list(fetch_announced("2025-05-15", policy=policy))
        assert srv.hits() == 0 and e.value.key == "date"
        assert e.value.message == ("2025-05-15 is not announced yet: its announcement holds the submissions until "
                                   "2025-05-14 18:00 UTC (14:00 US Eastern), announced at 2025-05-15 00:00 UTC "
                                   "(20:00 US Eastern)")
        now[0] = dt.datetime(2025, 5, 15, 0, 1, tzinfo=dt.timezone.utc)        # 20:01 EDT: announced
        list(fetch_announced("2025-05-15", policy=policy))
        assert srv.hits() == 1


@pytest.mark.parametrize("monday, sunday_evening, window", [
    # EDT: Sunday 20:00 is 00:00 UTC Monday; Thursday and Friday 14:00 EDT are 18:00 UTC
    ("2025-05-19", (2025, 5, 19, 0, 0), "202505151800 TO 202505161759"),
    # summer time began that Sunday at 02:00: announced 20:00 EDT, the window's deadlines still EST
    ("2025-03-10", (2025, 3, 10, 0, 0), "202503061900 TO 202503071859"),
    # summer time ended that Sunday at 02:00: announced 20:00 EST, the window's deadlines still EDT
    ("2025-11-03", (2025, 11, 3, 1, 0), "202510301800 TO 202510311759"),
])
def test_a_monday_is_announced_on_sunday_evening_not_friday(monkeypatch, monday, sunday_evening, window):
    """Monday's listing (Thursday 14:00 to Friday 14:00) is announced on Sunday at 20:00 US Eastern; it was
    taken for announced on Friday at 20:00, so `--date MONDAY` on a Saturday asked the API, which holds none of
    those papers before Sunday evening, retried its empty answer and said 'try again later' (exit 1 in a
    weekend cron job) instead of 'not announced yet', and the line named Friday as the announcement."""
    import datetime as dt

    from ranker.errors import InputError
    from ranker.sources.api import fetch_announced
    from ranker.sources.days import announced_at
    from ranker.sources.net import NetPolicy
    announced = dt.datetime(*sunday_evening, tzinfo=dt.timezone.utc)
    assert announced_at(monday) == announced
    now = [announced - dt.timedelta(days=1, hours=6)]             # Saturday afternoon, US Eastern
    _clock_at(monkeypatch, now)
    atom = _atom_10()
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, atom))
        policy = NetPolicy(api_url=srv.url("/api/query"), retries=0, api_delay=0.0)
        for at in (now[0], announced - dt.timedelta(minutes=1)):     # Saturday, and Sunday 19:59 Eastern
            now[0] = at
            with pytest.raises(InputError) as e:
                list(fetch_announced(monday, policy=policy))
            assert srv.hits() == 0 and e.value.key == "date"
            assert f"announced at {announced:%Y-%m-%d %H:%M} UTC (20:00 US Eastern)" in e.value.message
        now[0] = announced + dt.timedelta(minutes=1)
        list(fetch_announced(monday, policy=policy))
        assert srv.hits() == 1
        assert srv.log[-1].query["search_query"][0].endswith(f"submittedDate:[{window}]")


def test_a_window_from_a_day_to_come_names_since_not_an_until_never_given(tmp_path):
    """Without --until a window ends today; one starting after today was refused as '--until: <today> is before
    the first day', sending the user after a flag they had not used. Nothing is asked."""
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, (FIXTURES / "arxiv_api_atom_query_10.xml").read_bytes()))
        r = fetch_cli("fetch", "--since", "2099-01-05", "--out", tmp_path / "p.jsonl", "--db", tmp_path / "r.sqlite3",
                      RANKER_API_URL=srv.url("/api/query"))
        assert srv.hits() == 0
    assert r.returncode == 1
    assert re.fullmatch(r"error: --since: 2099-01-05 is after today \(\d{4}-\d\d-\d\d\): nothing submitted then can "
                        r"be asked for yet", r.stderr.strip()), r.stderr


@pytest.mark.parametrize("tz, utc, today", [
    ("America/Los_Angeles", (2025, 5, 16, 1, 0), "2025-05-16"),     # 18:00 on the 15th there: UTC's day is later
    ("Asia/Tokyo", (2025, 5, 15, 20, 0), "2025-05-16"),             # 05:00 on the 16th there: its own is later
    ("Pacific/Kiritimati", (2025, 5, 15, 12, 0), "2025-05-16"),     # UTC+14
    ("UTC", (2025, 5, 15, 23, 59), "2025-05-15"),
])
def test_today_of_a_submission_window_is_the_later_of_the_machine_s_and_utc_s(monkeypatch, tz, utc, today):
    import time
    from datetime import datetime, timezone

    from ranker.sources.days import today as window_today
    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        assert window_today(datetime(*utc, tzinfo=timezone.utc)) == today
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_window_flags_say_their_days_are_utc_s():
    """`fetch --since D --until D` asks the API for D 00:00 to 23:59 GMT and labels each paper with its UTC
    submission day: in Tokyo, 09:00 on D to 09:00 the day after. The help said "submission day" and "default:
    today" without a zone, as if the machine's days were meant."""
    import typer

    from ranker.cli.app import app
    params = {p.name: p.help for p in typer.main.get_command(app).commands["fetch"].params}
    assert "in UTC" in params["since"] and "in UTC" in params["until"], params
    assert "the later of this machine's day and UTC's" in params["until"]


@pytest.mark.parametrize("day", ["0001-01-01", "1985-03-04"])
def test_a_day_before_arxiv_is_refused_and_asks_nothing(tmp_path, day):
    """A day before arXiv's first announcement has nothing to rebuild: 0001-01-01 failed as 'unexpected failure:
    date value out of range' and 1985 asked the API, retried its empty answer and said 'try again later'."""
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, (FIXTURES / "arxiv_api_atom_query_10.xml").read_bytes()))
        r = fetch_cli("fetch", "--date", day, "--out", tmp_path / "p.jsonl", "--db", tmp_path / "r.sqlite3",
                      RANKER_API_URL=srv.url("/api/query"), RANKER_FETCH_RETRIES="0")
        assert srv.hits() == 0
    assert r.returncode == 1
    assert r.stderr.strip() == (f"error: --date: {day} is before arXiv's first announcement (1991-08-14): there "
                                "is no day to rebuild"), r.stderr
    assert not (tmp_path / "p.jsonl").exists()


@pytest.mark.parametrize("args", [["--ids", "2505.09343"], ["--since", "2025-05-12", "--until", "2025-05-13"]])
def test_offline_an_api_fetch_names_where_offline_mode_came_from(tmp_path, args):
    """Offline, `fetch --ids` and `fetch --since` failed on the connection with the URL and no word of what made
    the command offline ("error: https://export.arxiv.org/api/query: offline mode: will not connect to ..."),
    where `fetch` and `fetch --date` name it (`--offline`, `RANKER_OFFLINE`, `ranker.toml:1: offline`) and say
    what to do instead; and the failed fetch was recorded as a run in the database first."""
    db = tmp_path / "db.sqlite3"
    r = fetch_cli("fetch", *args, "--out", tmp_path / "x.jsonl", "--db", db, "--offline")
    flag = args[0]
    assert r.returncode == 1 and r.stderr.strip() == (
        f"error: --offline: offline mode: {flag} asks arXiv's API server; read a saved file with --from FILE "
        "instead"), r.stderr
    r = fetch_cli("fetch", *args, "--out", tmp_path / "x.jsonl", "--db", db, RANKER_OFFLINE="1")
    assert r.returncode == 1 and r.stderr.strip().startswith("error: RANKER_OFFLINE: offline mode: "), r.stderr
    assert not db.exists() and not (tmp_path / "x.jsonl").exists()


def test_a_date_far_ahead_labelling_papers_read_is_one_warning_naming_date(tmp_path):
    """`fetch --from F --date 2999-01-01` (and --ids, --since) stored the papers under a day no listing will carry
    without a word; now one warning naming --date, as `run --papers`, the papers stored under it all the same."""
    papers = first_papers(tmp_path)
    out, db = tmp_path / "p.jsonl", tmp_path / "r.sqlite3"

    def warnings(r):
        assert r.returncode == 0, r.stderr
        return [x for x in r.stderr.splitlines() if x.startswith("warning:")]

    r = fetch_cli("fetch", "--from", papers, "--date", "2999-01-01", "--out", out, "--db", db)
    w = warnings(r)
    assert len(w) == 1 and w[0].startswith("warning: --date: 2999-01-01 is ") and "days after today" in w[0], r.stderr
    assert {x["date"] for x in lines(out)} == {"2999-01-01"} and "for 2999-01-01" in r.stderr
    assert warnings(fetch_cli("fetch", "--from", papers, "--date", "2025-05-15", "--out", out, "--db", db)) == []
    with FixtureServer() as srv:
        srv.route("/api/query", Reply(200, (FIXTURES / "arxiv_api_atom_id_list.xml").read_bytes()))
        r = fetch_cli("fetch", "--ids", "1707.08567", "--date", "2999-01-01", "--out", out, "--db", db,
                      RANKER_API_URL=srv.url("/api/query"))
    assert [x for x in warnings(r) if x.startswith("warning: --date: 2999-01-01 is ")] and \
        {x["date"] for x in lines(out)} == {"2999-01-01"}, r.stderr


def test_a_date_the_source_contradicts_is_one_warning_naming_date_and_what_says_otherwise(tmp_path):
    """`fetch --from FEED --date 2025-01-02` stored the feed of 2024-11-28's 207 papers under 2025-01-02 without a
    word. Now one warning naming --date and the source, one CLI call per shape: a feed's channel day that is not
    --date; papers submitted on or after --date (an API answer, a snapshot: a paper's submission day is always
    before its announcement's); a listing's rows dated after --date (rows are dated by announcement or, written
    from the API or a snapshot, by submission: a row dated the day before --date is no contradiction, the false
    warning of `fetch --from one.jsonl --date 2017-07-28` for a row submitted 2017-07-27). --date still wins."""
    from ranker.sources import ReadReport, read_papers, write_papers
    out, db = tmp_path / "p.jsonl", tmp_path / "r.sqlite3"

    def warnings(*args):
        r = fetch_cli("fetch", "--from", *args, "--out", out, "--db", db, "--offline")
        assert r.returncode == 0, r.stderr
        return [x for x in r.stderr.splitlines() if x.startswith("warning:")]

    w = warnings(RSS, "--date", "2025-01-02")
    assert w == [f"warning: --date: {RSS} is the announcement of 2024-11-28, not 2025-01-02; the papers are "
                 "labelled 2025-01-02 all the same"]
    assert {x["date"] for x in lines(out)} == {"2025-01-02"} and len(lines(out)) == 207

    atom = FIXTURES / "arxiv_api_atom_query_10.xml"        # first versions 2012-02-21 .. 2025-02-11, 2025-03-07
    w = warnings(atom, "--category", "cs.SE,cs.AR", "--date", "2025-02-11")
    assert w == [f"warning: --date: 2 papers in {atom} were submitted on or after 2025-02-11 (up to 2025-03-07) "
                 "and cannot be in that day's announcement; the papers are labelled 2025-02-11 all the same"], w

    one = tmp_path / "one.jsonl"                            # as `fetch --from` the API answer writes it
    write_papers(read_papers(FIXTURES / "arxiv_api_atom_id_list.xml"), one)
    assert [x["date"] for x in lines(one)] == ["2017-07-27"]            # its submission day
    assert warnings(one, "--category", "cs.IT", "--date", "2017-07-28") == [] and lines(out)[0]["date"] == "2017-07-28"
    assert warnings(one, "--category", "cs.IT", "--date", "2017-07-26") == [
        f"warning: --date: 1 row of {one} is dated after 2017-07-26 (up to 2017-07-27); the papers are labelled "
        "2017-07-26 all the same"]

    def note(source, day, at=None):               # the library returns the note, names no flag
        report = ReadReport()
        assert {p.date for p in read_papers(source, date=day, report=report)} <= {day}
        return report.date_note(at or day)

    assert note(RSS, "2024-11-28") is None and note(RSS, "2025-01-02").startswith(f"{RSS} is the announcement of")
    assert note(atom, "2025-03-08") is None
    assert note(atom, "2025-03-08", at="2025-03-07").startswith(f"1 paper in {atom} was submitted on or after")
    assert note(FIXTURES / "arxiv_api_atom_id_list.xml", "2017-07-28") is None
    snap = tmp_path / "snap.json"                           # first versions 2025-05-13 and 2025-05-14 (v2 later)
    snap.write_text("".join(json.dumps({"id": f"2505.0000{i}", "title": "A title", "abstract": "An abstract.",
                                        "authors": "A. Author", "categories": "cs.LG", "versions": v}) + "\n"
                            for i, v in enumerate([[{"version": "v1", "created": "Tue, 13 May 2025 10:00:00 GMT"}],
                                                   [{"version": "v1", "created": "Wed, 14 May 2025 17:59:00 GMT"},
                                                    {"version": "v2", "created": "Mon, 2 Jun 2025 10:00:00 GMT"}]])),
                    encoding="utf-8")
    assert note(snap, "2025-05-15") is None
    assert note(snap, "2025-05-15", at="2025-05-14") == (
        f"1 paper in {snap} was submitted on or after 2025-05-14 (up to 2025-05-14) and cannot be in that day's "
        "announcement; the papers are labelled 2025-05-14 all the same")
    assert note(snap, "2025-05-15", at="2025-05-13").startswith(f"2 papers in {snap} were submitted")
    two = tmp_path / "two.jsonl"                            # rows of two days
    two.write_text(lines_of(DAYS / "2025-05-15" / "listing.jsonl", 2) + lines_of(DAYS / "2025-05-13" /
                                                                                 "listing.jsonl", 1), encoding="utf-8")
    assert note(two, "2025-05-15") is None and note(two, "2025-05-16") is None
    assert note(two, "2025-05-14") == (f"2 rows of {two} are dated after 2025-05-14 (up to 2025-05-15); the papers "
                                       "are labelled 2025-05-14 all the same")
    undated = tmp_path / "undated.jsonl"
    undated.write_text("".join(json.dumps({k: v for k, v in x.items() if k != "date"}) + "\n"
                               for x in lines(two)), encoding="utf-8")
    assert note(undated, "2025-05-01") is None
    for listing in sorted(DAYS.glob("*/listing.jsonl")):     # every day's listing read with its own day: no note
        assert note(listing, listing.parent.name) is None, listing


def lines_of(path, n):
    with open(path, encoding="utf-8") as f:
        return "".join(line for line, _ in zip(f, range(n)))
