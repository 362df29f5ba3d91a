"""Corrupted inputs for every reader: truncations, byte flips, random insertions. The only acceptable outcomes
are papers (well-formed ones), counted skips, or a RankerError whose message is one line naming the file."""
from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings, strategies as st

from ranker.errors import RankerError
from ranker.records import Paper
from ranker.sources import ReadReport, read_papers
from ranker.sources.report import ABSTRACT_CAP, TITLE_CAP

from conftest import DAYS, FIXTURES

_rss = (FIXTURES / "arxiv_rss_all_2024-11-28.xml").read_text(encoding="utf-8")
# the channel head and the first 12 items: enough structure, fast to parse a few hundred times
_cut = [m.end() for m in re.finditer(r"</item>", _rss)][11]
RSS = (_rss[:_cut] + "\n  </channel>\n</rss>\n").encode("utf-8")
ATOM = (FIXTURES / "arxiv_api_atom_query_10.xml").read_bytes()
_rows = [json.loads(line) for line in (DAYS / "2025-05-15" / "listing.jsonl").open(encoding="utf-8")][:8]
JSONL = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _rows).encode("utf-8")
SNAPSHOT = "".join(json.dumps({
    "id": r["id"], "authors": ", ".join(r["authors"]), "title": r["title"], "comments": r["comment"],
    "categories": " ".join(r["categories"]), "abstract": r["abstract"], "update_date": "2025-05-20",
    "versions": [{"version": "v1", "created": "Wed, 14 May 2025 10:00:00 GMT"}]}, ensure_ascii=False) + "\n"
    for r in _rows).encode("utf-8")

DOCS = {"rss": RSS, "atom": ATOM, "jsonl": JSONL, "snapshot": SNAPSHOT}
FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


@st.composite
def corrupted(draw, doc: bytes) -> bytes:
    data = bytearray(doc)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if not data:
            break
        pos = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[pos:]
        elif kind == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "insert":
            data[pos:pos] = draw(st.one_of(
                st.binary(min_size=1, max_size=16),
                st.sampled_from([b"<", b">", b"&", b"]]>", b"<item>", b"</channel>", b"\n", b'"', b"{", b"}",
                                 b"\\u", b"\xff", b"\xc3", b"\x00", b"&amp;", b"<!--", b"Abstract: "])))
        else:
            del data[pos:pos + draw(st.integers(1, 64))]
    return bytes(data)


def check(tmp_path, name: str, data: bytes, fmt: str | None) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    report = ReadReport()
    try:
        papers = list(read_papers(path, fmt=fmt, report=report, announce="new,cross,replace,replace-cross"))
    except RankerError as e:
        msg = str(e)
        assert "\n" not in msg and msg.startswith(str(path)), msg
        return
    for p in papers:
        assert isinstance(p, Paper)
        assert p.id and p.title and isinstance(p.abstract, str)
        assert len(p.abstract) <= ABSTRACT_CAP and len(p.title) <= TITLE_CAP
        assert all(isinstance(a, str) and a for a in p.authors)
        json.dumps(p.to_dict())          # always writable
    assert len({p.id for p in papers}) == len(papers)
    assert report.kept == len(papers)
    assert all(":" in w for w in report.warnings)


def _fuzz(fmt: str):
    @FUZZ
    @given(data=corrupted(DOCS[fmt]), sniff=st.booleans())
    def test(tmp_path, data, sniff):
        check(tmp_path, f"in.{fmt}", data, None if sniff else fmt)
    test.__name__ = f"test_fuzz_{fmt}"
    return test


test_fuzz_rss = _fuzz("rss")
test_fuzz_atom = _fuzz("atom")
test_fuzz_jsonl = _fuzz("jsonl")
test_fuzz_snapshot = _fuzz("snapshot")


def test_uncorrupted_documents_read_cleanly(tmp_path):
    for fmt, doc in DOCS.items():
        report = ReadReport()
        path = tmp_path / f"ok.{fmt}"
        path.write_bytes(doc)
        papers = list(read_papers(path, report=report, announce="new,cross,replace,replace-cross"))
        assert papers and report.skipped == 0 and report.bad_bytes == 0, fmt


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(tmp_path, data):
    check(tmp_path, "random.bin", data, None)
