"""Hostile or broken inputs the papers readers are handed: a line without end, gzip bombs, an answer without end.
Memory must stay bounded whatever a file or a server holds, and the refusal be one line naming the source."""
from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest

from ranker.backfill.plan import Filters, plan_splits, read_split
from ranker.errors import FetchError, InputError
from ranker.sources import ReadReport, read_papers
from ranker.sources.net import NetPolicy, fetch_bytes
from ranker.sources.report import LINE_CAP, XML_CAP

from fixture_server import FixtureServer, Reply

MiB = 1024 * 1024


def _line(pid: str, title: str = "A title") -> bytes:
    return json.dumps({"id": pid, "title": title, "abstract": "x", "categories": ["cs.LG"],
                       "date": "2024-11-28"}).encode() + b"\n"


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        return out, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _gz_with_a_long_line(path, size: int, newline: bool) -> None:
    """Papers JSONL, gzipped, whose second line is `size` bytes long (its title a run of 'a')."""
    with gzip.open(path, "wb", compresslevel=1) as g:
        g.write(_line("2411.00001"))
        g.write(b'{"id": "2411.00002", "title": "')
        chunk = b"a" * MiB
        for _ in range(size // MiB):
            g.write(chunk)
        if newline:
            g.write(b'"}\n')
            g.write(_line("2411.00003"))


def test_a_line_without_end_is_skipped_in_bounded_memory(tmp_path):
    """A file of one endless line (no newline; here 100 MiB from 100 kB of gzip) was read whole into memory, then
    decoded and parsed: twice its size and more. It is skipped, counted, the papers before it kept."""
    path = tmp_path / "bomb.jsonl.gz"
    _gz_with_a_long_line(path, 100 * MiB, newline=False)
    report = ReadReport()
    papers, peak = _peak(lambda: list(read_papers(path, date="2024-11-28", report=report)))
    assert peak < 5 * LINE_CAP, f"{peak / MiB:.0f} MiB held reading a file of one endless line"
    assert [p.id for p in papers] == ["2411.00001"]
    assert report.reasons == {"overlong": 1} and report.first_where("skipped") == f"{path}:2"


def test_a_long_line_is_skipped_and_the_lines_after_it_read(tmp_path):
    path = tmp_path / "long.jsonl"
    path.write_bytes(_line("2411.00001") + b'{"id": "2411.00002", "title": "' + b"a" * (LINE_CAP + 10) + b'"}\n'
                     + _line("2411.00003"))
    report = ReadReport()
    papers = list(read_papers(path, date="2024-11-28", report=report))
    assert [p.id for p in papers] == ["2411.00001", "2411.00003"]
    assert report.reasons == {"overlong": 1} and report.first_where("skipped") == f"{path}:2"
    # a line as long as the cap is still read
    path.write_bytes(_line("2411.00004", "b" * (LINE_CAP - 200)))
    assert [p.id for p in read_papers(path, date="2024-11-28")] == ["2411.00004"]


def test_a_first_line_without_end_is_skipped_in_bounded_memory(tmp_path):
    """The format sniffer read a first JSON line whole, however long."""
    path = tmp_path / "first.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as g:
        g.write(b'{"id": "2411.00002", "title": "')
        for _ in range(120):
            g.write(b"a" * MiB)
    report = ReadReport()

    def read():
        with pytest.raises(InputError) as e:
            list(read_papers(path, date="2024-11-28", report=report))
        return e.value

    err, peak = _peak(read)
    assert "no valid paper line" in err.message and report.reasons == {"overlong": 1}
    assert peak < 5 * LINE_CAP, f"{peak / MiB:.0f} MiB held"


def test_a_backfill_split_skips_an_overlong_line_and_keeps_its_place(tmp_path):
    """A backfill reads a big file in byte ranges, each line in exactly one: an overlong line is skipped there
    too (it was read whole), and the ranges after it still start and end where they should."""
    path = tmp_path / "listing.jsonl"
    lines = [_line(f"2411.{n:05d}") for n in range(1, 4)]
    path.write_bytes(lines[0] + b'{"id": "2411.09999", "date": "2024-11-28", "title": "' + b"a" * (LINE_CAP + 10)
                     + b'"}\n' + b"".join(lines[1:]))
    splits = plan_splits([path], split_bytes=4 * MiB)
    assert len(splits) > 2
    got = []
    for s in splits:
        got += [p.id for p in read_split(s, Filters())]
    assert got == ["2411.00001", "2411.00002", "2411.00003"]
    gz = tmp_path / "listing.jsonl.gz"
    gz.write_bytes(gzip.compress(path.read_bytes(), compresslevel=1))
    (split,) = plan_splits([gz])
    assert [p.id for p in read_split(split, Filters())] == ["2411.00001", "2411.00002", "2411.00003"]



def test_a_backfill_split_starting_inside_a_long_line_skips_it_in_bounded_memory(tmp_path):
    """A range that begins inside a line without newline for 40 MiB skipped the rest of it with one unbounded
    readline: the whole tail (36 MiB here, 137 MB for a 100 MiB line) held at once per task."""
    path = tmp_path / "listing.jsonl"
    with open(path, "wb") as f:
        f.write(_line("2411.00001"))
        f.write(b'{"id": "2411.09999", "title": "' + b"a" * (40 * MiB) + b'"}\n')
        f.write(_line("2411.00002"))
    splits = plan_splits([path], split_bytes=4 * MiB)
    got, peaks = [], []
    for s in splits:
        papers, peak = _peak(lambda: [p.id for p in read_split(s, Filters())])
        got += papers
        if s.start > 0:
            peaks.append(peak)
    assert got == ["2411.00001", "2411.00002"]
    assert max(peaks) < 4 * MiB, f"{max(peaks) / MiB:.0f} MiB held"

def _rss_bomb(size: int) -> bytes:
    """An RSS feed padded with `size` bytes of blanks, gzipped (about a thousandth of its size)."""
    head = (b'<?xml version="1.0"?><rss version="2.0"><channel>'
            b"<pubDate>Thu, 28 Nov 2024 00:00:00 -0500</pubDate>")
    return gzip.compress(head + b" " * size + b"</channel></rss>", compresslevel=1)


def test_whatever_a_fetch_takes_can_be_read_back():
    """A saved arXiv API answer of 30,000 results (~70 MiB) was refused by the 64 MiB XML cap, though the
    download that made it takes 256 MiB."""
    from ranker.sources.net import MAX_ANSWER
    assert XML_CAP >= MAX_ANSWER


def test_a_gzipped_xml_bomb_is_refused_before_it_is_read_whole(tmp_path):
    """1.5 MB of .gz unpacked to 1.5 GB and held in 4.8 GB before lxml said 'text node too long'."""
    bomb = _rss_bomb(XML_CAP + MiB)
    path = tmp_path / "feed.xml.gz"
    path.write_bytes(bomb)
    for source in (path, bomb):            # a file, and bytes (a download's body)
        with pytest.raises(InputError) as e:
            read_papers(source)
        assert "an XML feed larger than 256 MiB, the most read" in e.value.message, e.value
        assert e.value.where in (str(path), "<bytes>")
    # a gzipped feed of ordinary size is read as before
    small = tmp_path / "small.xml.gz"
    small.write_bytes(gzip.compress(gzip.decompress(_rss_bomb(0)).replace(
        b"</channel>", b"<item><title>T</title><guid>oai:arXiv.org:2411.00001v1</guid><category>cs.LG</category>"
        b"<description>arXiv:2411.00001v1 Announce Type: new Abstract: A.</description></item></channel>")))
    assert [p.id for p in read_papers(small)] == ["2411.00001"]


def test_gzipped_bytes_of_json_lines_are_read_as_they_unpack():
    """Bytes (a download) that are gzip were unpacked whole first: a small bomb of one line filled memory."""
    raw = gzip.compress(_line("2411.00001") + b'{"id": "2411.00002", "title": "' + b"a" * (120 * MiB),
                        compresslevel=1)
    report = ReadReport()
    papers, peak = _peak(lambda: list(read_papers(raw, date="2024-11-28", report=report)))
    assert [p.id for p in papers] == ["2411.00001"] and report.reasons == {"overlong": 1}
    assert peak < 5 * LINE_CAP, f"{peak / MiB:.0f} MiB held"


@pytest.fixture
def server():
    with FixtureServer() as srv:
        yield srv


def _policy(**kw) -> NetPolicy:
    return NetPolicy(**{"timeout": 2.0, "retries": 2, "backoff": 0.01, "max_wait": 5.0, "api_delay": 0.0, **kw})


@pytest.mark.parametrize("how", ["length", "chunked", "gzip"])
def test_an_answer_larger_than_the_cap_is_refused_not_read_on(server, how):
    """A proxy or mirror answering without end (or a gzip-encoded bomb: small on the wire) was read into memory
    until the download timeout: 1.5 GB held 3.2 GB. Past the policy's max_bytes it is one FetchError, not retried."""
    body = b"<rss>" + b" " * (3 * MiB) + b"</rss>"
    if how == "gzip":
        reply = Reply(200, gzip.compress(body, compresslevel=1), headers={"Content-Encoding": "gzip"})
    else:
        reply = Reply(200, body, chunked=how == "chunked", piece=256 * 1024, trickle=0.001 if how == "chunked" else 0)
    server.route("/feed", reply)
    with pytest.raises(FetchError) as e:
        fetch_bytes(server.url("/feed"), policy=_policy(max_bytes=MiB))
    assert "answered more than 1 MiB" in e.value.message and e.value.where == server.url("/feed")
    assert server.hits("/feed") == 1
    # within the cap it is read whole, as before
    assert fetch_bytes(server.url("/feed"), policy=_policy(max_bytes=4 * MiB)) == body
    assert NetPolicy().max_bytes >= 64 * MiB
