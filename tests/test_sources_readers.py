"""The readers on real arXiv fixtures and on the shared days, plus every kind of bad input."""
from __future__ import annotations

import gzip
import json
import re
import tracemalloc

import pytest

from ranker.errors import InputError, RankerError
from ranker.records import Paper, Ranked
from ranker.sources import ReadReport, detect_format, ranked_lines, read_papers, read_ranked, write_papers
from ranker.sources.filters import within
from ranker.sources.normalize import delatex, split_authors
from ranker.sources.report import ABSTRACT_CAP

from conftest import DAYS, FIXTURES, damaged_gz

RSS = FIXTURES / "arxiv_rss_all_2024-11-28.xml"
ATOM_QUERY = FIXTURES / "arxiv_api_atom_query_10.xml"
ATOM_IDS = FIXTURES / "arxiv_api_atom_id_list.xml"
LISTING = DAYS / "2025-05-15" / "listing.jsonl"
JSONL_BYTES = LISTING.read_bytes()


def listing_rows(day="2025-05-15", n=None):
    rows = [json.loads(line) for line in (DAYS / day / "listing.jsonl").open(encoding="utf-8")]
    return rows[:n] if n else rows


def rss_doc(items: list[str], pubdate="Thu, 28 Nov 2024 00:00:00 -0500") -> bytes:
    head = ('<?xml version="1.0" encoding="UTF-8"?>\n<rss xmlns:arxiv="http://arxiv.org/schemas/atom" '
            'xmlns:dc="http://purl.org/dc/elements/1.1/" version="2.0"><channel><title>t</title>'
            + (f"<pubDate>{pubdate}</pubDate>" if pubdate else ""))
    return (head + "".join(items) + "</channel></rss>").encode("utf-8")


def rss_item(pid="2411.00001", typ="new", cats=("cs.LG",), title="A title", abstract="Some abstract.",
             creator="Ann Author, Bob Builder") -> str:
    c = "".join(f"<category>{x}</category>" for x in cats)
    return (f"<item><title>{title}</title><link>https://arxiv.org/abs/{pid}</link>"
            f"<description>arXiv:{pid}v1 Announce Type: {typ} \nAbstract: {abstract}</description>"
            f'<guid isPermaLink="false">oai:arXiv.org:{pid}v1</guid>{c}'
            f"<arxiv:announce_type>{typ}</arxiv:announce_type><dc:creator>{creator}</dc:creator></item>")


# --------------------------------------------------------------------------- RSS
def test_rss_contract_207_unique_papers():
    report = ReadReport()
    papers = list(read_papers(RSS, categories=["cs.LG", "cs.AI"], announce=["new", "cross"], report=report))
    assert len(papers) == 207
    assert len({p.id for p in papers}) == 207
    assert report.seen == 1504 and report.kept == 207 and report.skipped == 0
    for p in papers:
        assert {"cs.LG", "cs.AI"} & set(p.categories)
        assert p.date == "2024-11-28"
        assert p.announce_type in ("new", "cross")
        assert p.primary_category == p.categories[0]
        assert re.fullmatch(r"\d{4}\.\d{5}", p.id) and p.version >= 1
        assert p.title and p.abstract and p.authors
        assert not p.abstract.lower().startswith(("abstract", "arxiv:"))
        assert "  " not in p.abstract and "\n" not in p.title
        # new = primary category is one of ours, cross = only cross-listed into them
        assert (p.announce_type == "new") == (p.primary_category in ("cs.LG", "cs.AI"))
        assert p.extra["cs.LG"] in (None, "new", "cross") and p.extra["cs.AI"] in (None, "new", "cross")


def test_rss_fields_of_one_item():
    papers = {p.id: p for p in read_papers(RSS, "cs.LG,cs.AI")}
    p = papers["2411.17702"]
    assert p.title.startswith('Finding "Good Views" of Electrocardiogram')
    assert p.abstract.startswith("Electrocardiograms (ECGs) are an established technique")
    assert p.authors == ["Hyewon Jeong", "Suyeol Yun", "Hammaad Adam"]
    assert p.categories == ["eess.SP", "cs.LG"] and p.primary_category == "eess.SP"
    assert p.announce_type == "cross" and p.extra == {"cs.LG": "cross", "cs.AI": None}
    assert p.version == 1 and p.comment is None


def test_rss_announce_filter_and_default():
    everything = list(read_papers(RSS))                      # a feed's default: new + cross
    assert len(everything) == 935 and {p.announce_type for p in everything} == {"new", "cross"}
    replaced = list(read_papers(RSS, announce="replace,replace-cross"))
    assert len(replaced) == 569 and all(p.announce_type.startswith("replace") for p in replaced)
    only_new = list(read_papers(RSS, categories="cs.LG,cs.AI", announce="new"))
    assert only_new and all(p.primary_category in ("cs.LG", "cs.AI") for p in only_new)


def test_rss_authors_tex_accents_and_affiliations():
    by_id = {p.id: p for p in read_papers(RSS, announce="new,cross,replace,replace-cross")}
    names = [a for p in by_id.values() for a in p.authors]
    assert "Przemysław Olbratowski" in names and "Jarosław Żygierewicz" in names
    assert "Benjamin Rémy" in names
    # an accent at the end of a given name keeps the space after it (33 authors of this feed)
    assert "José Reina-Valero" in names and "JoséReina-Valero" not in names
    assert delatex("Ren\\'e Steijl and Fran\\c{c}ois Roy, {\\'E}mile") == "René Steijl and François Roy, Émile"
    assert not any("(" in a or "\\" in a or "{" in a for a in names)
    assert split_authors("A. One (Univ A, Dept B), B. Two and C. Three") == ["A. One", "B. Two", "C. Three"]


def test_a_generational_suffix_after_a_comma_stays_with_its_author():
    """arXiv writes 'John Smith, Jr.': the suffix is part of that author's name, not an author "Jr."."""
    assert split_authors("John Smith, Jr., Jane Doe") == ["John Smith, Jr.", "Jane Doe"]
    assert split_authors("Henry Ford, III and A. Sr\\'e, sr, B. King, IV.") == [
        "Henry Ford, III", "A. Sré, sr", "B. King, IV."]
    assert split_authors("J. Smith (MIT), Jr (Harvard), Jane Doe, and Jr. Jones") == [
        "J. Smith, Jr", "Jane Doe", "Jr. Jones"]
    # a suffix with no author before it is left as written; a name that only starts like one is a name
    assert split_authors("Jr., Jane Doe") == ["Jr.", "Jane Doe"]
    assert split_authors("Ivan Petrov, Iva Novak, Srinivas Rao") == ["Ivan Petrov", "Iva Novak", "Srinivas Rao"]
    # through a listing, and a pinned "John Smith" still finds him
    from ranker.prefilter.rules import AuthorPins, Pin, name_tokens
    paper, = read_papers(rss_doc([rss_item(creator="John Smith, Jr., Jane Doe")]))
    assert paper.authors == ["John Smith, Jr.", "Jane Doe"]
    pins = AuthorPins([Pin("John Smith", [name_tokens("John Smith")])])
    assert pins.match(paper) == ["John Smith"]


def test_an_announce_type_in_another_spelling_is_read_not_skipped(tmp_path):
    """"New", " CROSS " or "replace_cross" (a feed or a listing saved by another tool) are types ranker knows:
    since unknown types are skipped, the feed's "replace_cross" item was dropped as "none ranker knows", and a
    JSONL row's "replace_cross" was read as no type, i.e. new (a replacement entered the day as a new paper)."""
    every = "new,cross,replace,replace-cross"
    items = [rss_item("2411.00001", "New"), rss_item("2411.00002", " CROSS "),
             rss_item("2411.00003", "replace_cross"), rss_item("2411.00004", "Replace-Cross")]
    report = ReadReport()
    got = {p.id: p.announce_type for p in read_papers(rss_doc(items), announce=every, report=report)}
    assert got == {"2411.00001": "new", "2411.00002": "cross", "2411.00003": "replace-cross",
                   "2411.00004": "replace-cross"}, got
    assert report.unknown_type == 0 and report.kept == 4
    # an unknown type is still skipped, counted
    report = ReadReport()
    assert [p.id for p in read_papers(rss_doc(items[:1] + [rss_item("2411.00005", "errata")]), report=report)] \
        == ["2411.00001"] and report.unknown_type == 1
    rows = listing_rows(n=3)
    rows[0]["announce_type"], rows[1]["announce_type"], rows[2]["announce_type"] = "New", "replace_cross", "Cross"
    for r in rows:
        for k in [k for k in r if "." in k]:
            r[k] = None
    f = tmp_path / "saved.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    got = [p.announce_type for p in read_papers(f)]
    assert got == ["new", "replace-cross", "cross"], got
    # the per-category keys in another spelling too ("cs.LG": "Replace_Cross")
    rows[1]["announce_type"], rows[1]["cs.LG"] = None, "Replace_Cross"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert [p.announce_type for p in read_papers(f)] == ["new", "replace-cross", "cross"]


def test_a_jsonl_row_of_an_announce_type_ranker_does_not_know_is_skipped_and_counted_as_the_feeds_is(tmp_path):
    """The feed's item of a type arXiv may add later ("errata") is skipped and counted; the same type in a JSONL
    row was read as no type: the row's per-category key's type taken ("cs.LG": "cross"), or else "new", and the
    paper entered the day unasked. Now skipped, counted, said once with the first place (file:line)."""
    from conftest import ranker
    rows = listing_rows(n=4)
    for r in rows:
        for k in [k for k in r if "." in k]:
            r[k] = None
    rows[0]["announce_type"] = "new"
    rows[1]["announce_type"], rows[1]["cs.LG"] = "errata", "cross"
    rows[2]["announce_type"] = "Withdrawn"
    rows[3]["announce_type"] = None                       # none given: new, as before
    f = tmp_path / "saved.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = ReadReport()
    got = [(p.id, p.announce_type) for p in read_papers(f, report=report)]
    assert got == [(rows[0]["id"], "new"), (rows[3]["id"], None)], got
    assert report.unknown_type == 2 and report.first_where("unknown_type") == f"{f}:2"
    r = ranker("fetch", "--from", f, "--out", tmp_path / "o.jsonl", "--db", tmp_path / "db.sqlite3",
               env={"RANKER_HOME": tmp_path / "home"})
    assert r.returncode == 0, r.stderr
    said = [x for x in r.stderr.splitlines() if "announce type ranker does not know" in x]
    assert len(said) == 1 and "2 records" in said[0] and "saved.jsonl:2" in said[0], r.stderr
    assert [json.loads(x)["id"] for x in (tmp_path / "o.jsonl").read_text().splitlines()] == [
        rows[0]["id"], rows[3]["id"]]


def test_a_jsonl_row_whose_category_key_gives_an_unknown_type_is_skipped_as_one_whose_announce_type_does(tmp_path):
    """A listing row without `announce_type` whose per-category key gives a type arXiv may add later
    ("cs.AI": "errata") was read as no type (new) and entered the day unasked, where the same type in
    `announce_type` is skipped and counted. Now skipped and counted alike. A known type under another category
    key still wins ("cs.LG": "new"), and a key of the user's with a dot that names none of the row's categories
    ("my.note": "Errata") is no announce type: that row is read as before."""
    rows = listing_rows(n=4)
    for r in rows:
        for k in [k for k in r if "." in k]:
            r[k] = None
        r.pop("announce_type", None)
        r["categories"], r["primary_category"] = ["cs.LG", "cs.AI"], "cs.LG"
    rows[0]["cs.AI"] = "errata"                                    # the row's own category: an unknown type
    rows[1]["cs.LG"], rows[1]["cs.AI"] = "new", "errata"           # a known one beside it: that one
    rows[2]["my.note"] = "Errata"                                  # the user's key: no type
    rows[3]["stat.ML"] = "errata"                                  # no category of the row's: no type
    f = tmp_path / "saved.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = ReadReport()
    got = [(p.id, p.announce_type) for p in read_papers(f, report=report)]
    assert got == [(rows[1]["id"], "new"), (rows[2]["id"], None), (rows[3]["id"], None)], got
    assert report.unknown_type == 1 and report.first_where("unknown_type") == f"{f}:1"
    assert [p.extra["my.note"] for p in read_papers(f) if "my.note" in p.extra] == ["Errata"]   # kept as given


def test_an_rss_item_without_its_announce_type_element_takes_the_description_s():
    """An item whose feed has no <arxiv:announce_type> (a feed saved by another tool, an older layout) says its type
    in the description ("Announce Type: cross"): a cross-list read as a paper of no type."""
    item = rss_item("2411.00009", "cross", ("cs.CV", "cs.LG")).replace(
        "<arxiv:announce_type>cross</arxiv:announce_type>", "")
    assert "announce_type>" not in item
    paper, = read_papers(rss_doc([item]), announce="new,cross")
    assert paper.announce_type == "cross"


def test_rss_duplicates_across_categories_new_beats_cross():
    doc = rss_doc([rss_item("2411.00001", "cross", ("cs.CV", "cs.LG")),
                   rss_item("2411.00002", "new", ("cs.LG",)),
                   rss_item("2411.00001", "new", ("cs.CV", "cs.LG"))])
    report = ReadReport()
    papers = list(read_papers(doc, report=report))
    assert [p.id for p in papers] == ["2411.00001", "2411.00002"]
    assert papers[0].announce_type == "new"
    assert report.duplicates == 1


def test_rss_empty_day_is_not_an_error():
    report = ReadReport()
    assert list(read_papers(rss_doc([]), report=report)) == []
    assert report.seen == 0 and report.feed_date == "2024-11-28"


def test_an_empty_feed_read_with_another_day_has_no_date_note():
    """An empty feed (a weekend's: no items) of 2024-11-28 read with date 2024-11-29 was said to be 'the announcement
    of 2024-11-28 ... the papers are labelled 2024-11-29 all the same' about no papers; a feed with items still is."""
    report = ReadReport(source="feed.xml")
    assert list(read_papers(rss_doc([]), date="2024-11-29", report=report)) == []
    assert report.date_note("2024-11-29") is None
    report = ReadReport(source="feed.xml")
    assert len(list(read_papers(rss_doc([rss_item()]), date="2024-11-29", report=report))) == 1
    assert report.date_note("2024-11-29") == ("feed.xml is the announcement of 2024-11-28, not 2024-11-29; the "
                                              "papers are labelled 2024-11-29 all the same")


def test_rss_without_pubdate_needs_a_date():
    doc = rss_doc([rss_item()], pubdate=None)
    with pytest.raises(InputError, match="pass date YYYY-MM-DD"):
        list(read_papers(doc))
    (p,) = read_papers(doc, date="2024-12-02")
    assert p.date == "2024-12-02"


def test_date_override():
    papers = list(read_papers(RSS, "cs.LG", date="2024-12-01"))
    assert {p.date for p in papers} == {"2024-12-01"}
    with pytest.raises(InputError, match="YYYY-MM-DD"):
        read_papers(RSS, date="28/11/2024")


# --------------------------------------------------------------------------- Atom
def test_atom_query_fields():
    papers = list(read_papers(ATOM_QUERY))
    assert len(papers) == 10
    p = papers[0]
    assert p.id == "2202.12139" and p.version == 1
    assert p.title == "Testing Deep Learning Models: A First Comparative Study of Multiple Testing Techniques"
    assert p.abstract.startswith("Deep Learning (DL) has revolutionized")
    assert p.authors == ["Mohit Kumar Ahuja", "Arnaud Gotlieb", "Helge Spieker"]
    assert p.categories == ["cs.SE", "cs.LG"] and p.primary_category == "cs.SE"
    assert p.comment == "Artificial Intelligence in Software Testing 2022 workshop @ ICST 2022"
    assert p.date == "2022-02-24" and p.announce_type == "new"
    assert all(p.primary_category == p.categories[0] for p in papers)
    assert detect_format(ATOM_QUERY.read_bytes()[:4096]) == "atom"


def test_atom_id_list_repairs_mojibake():
    (p,) = read_papers(ATOM_IDS)
    assert p.id == "1707.08567" and len(p.authors) == 34
    assert "Dirk Wübben" in p.authors
    assert p.comment.startswith("44 pages")


def test_atom_api_error_feed():
    doc = (b'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><entry>'
           b"<id>http://arxiv.org/api/errors#incorrect_id_format_for_1234</id><title>Error</title>"
           b"<summary>incorrect id format for 1234</summary></entry></feed>")
    with pytest.raises(InputError, match="incorrect id format"):
        read_papers(doc)


# --------------------------------------------------------------------------- snapshot
def to_snapshot(row: dict) -> dict:
    return {"id": row["id"], "submitter": "Someone", "authors": ", ".join(row["authors"][:-1])
            + (" and " if len(row["authors"]) > 1 else "") + row["authors"][-1],
            "title": "  " + row["title"].replace(" ", "\n  ", 2), "comments": row["comment"],
            "journal-ref": None, "doi": None, "report-no": None, "categories": " ".join(row["categories"]),
            "license": None, "abstract": "  " + row["abstract"] + "\n",
            "versions": [{"version": "v1", "created": "Tue, 13 May 2025 17:59:01 GMT"},
                         {"version": "v2", "created": "Wed, 21 May 2025 09:00:00 GMT"}],
            "update_date": "2025-05-21", "authors_parsed": [[a, "", ""] for a in row["authors"]]}


def test_snapshot_from_listing_rows(tmp_path):
    rows = listing_rows(n=8)
    path = tmp_path / "snap.json"
    path.write_text("".join(json.dumps(to_snapshot(r)) + "\n" for r in rows), encoding="utf-8")
    report = ReadReport()
    papers = list(read_papers(path, report=report))
    assert len(papers) == 8 and report.skipped == 0
    for row, p in zip(rows, papers):
        assert (p.id, p.title, p.abstract) == (row["id"], row["title"], row["abstract"])
        assert p.authors == row["authors"]
        assert p.categories == row["categories"] and p.primary_category == row["primary_category"]
        assert p.comment == (" ".join(row["comment"].split()) if row["comment"] else None)
        assert p.date == "2025-05-13" and p.version == 2
    assert {p.date for p in read_papers(path, date="2025-05-14")} == {"2025-05-14"}
    kept = list(read_papers(path, categories="cs.LG"))
    assert kept and all("cs.LG" in p.categories for p in kept)


def test_a_snapshot_row_with_parsed_authors_only_names_them_first_name_first(tmp_path):
    """A snapshot row whose "authors" text is empty gives its authors as authors_parsed ([last, first, suffix]):
    each is the name as written, "Jane Q. Doe", as the pins and the author features match it ("Doe Jane Q." is
    another person to them)."""
    row = to_snapshot(listing_rows(n=1)[0])
    row.update(authors="", authors_parsed=[["Doe", "Jane Q.", ""], ["Ford", "Henry", "III"]])
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    paper, = read_papers(path)
    assert paper.authors == ["Jane Q. Doe", "Henry Ford III"]


def test_snapshot_streams_in_bounded_memory(tmp_path):
    rows = listing_rows("2025-05-13")
    path = tmp_path / "big.json"
    with path.open("w", encoding="utf-8") as f:
        for i in range(2000):
            d = to_snapshot(rows[i % len(rows)])
            d["id"] = f"2501.{i:05d}"
            f.write(json.dumps(d) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    n = 0
    for _ in read_papers(path):
        n += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert n == 2000
    assert peak < size / 8, (peak, size)      # a 4 MB file; well under 0.5 MB held at once


def test_gzipped_snapshot(tmp_path):
    rows = listing_rows(n=3)
    path = tmp_path / "snap.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(to_snapshot(r)) + "\n")
    assert [p.id for p in read_papers(path)] == [r["id"] for r in rows]


# --------------------------------------------------------------------------- our JSONL
def test_listing_jsonl_round_trip(tmp_path):
    rows = listing_rows()
    papers = list(read_papers(LISTING))
    assert len(papers) == len(rows) == 192
    for row, p in zip(rows, papers):
        assert p.id == row["id"] and p.title == row["title"] and p.authors == row["authors"]
        assert p.extra["gpt_selected"] == row["gpt_selected"]
        assert p.extra["cs.LG"] == row["cs.LG"] and p.extra["cs.AI"] == row["cs.AI"]
        # the announce type comes from the per-category keys
        assert p.announce_type == ("new" if "new" in (row["cs.LG"], row["cs.AI"]) else "cross")
    out = tmp_path / "again.jsonl"
    assert write_papers(papers, out) == 192
    again = list(read_papers(out))
    assert [p.to_dict() for p in again] == [p.to_dict() for p in papers]


def test_prefilter_output_keeps_unknown_keys(tmp_path):
    """A key of the user's own is written back; the verdict is read (read_ranked takes it from extra), but a
    papers line written from such a paper does not carry it (it is not that file's ranking)."""
    rows = listing_rows(n=3)
    path = tmp_path / "pre.jsonl"
    with path.open("w") as f:
        for i, r in enumerate(rows):
            f.write(json.dumps({"id": r["id"], "prefilter_score": 0.5 - i / 10, "kept": i < 2, "topic": "t1",
                                "rule": "keep", "my_note": f"note {i}",
                                **{k: v for k, v in r.items() if k != "id"}}) + "\n")
    papers = list(read_papers(path))
    assert [p.extra["prefilter_score"] for p in papers] == [0.5, 0.4, 0.3]
    assert [p.extra["kept"] for p in papers] == [True, True, False]
    line = papers[0].to_dict()
    assert line["my_note"] == "note 0" and line["gpt_selected"] == rows[0]["gpt_selected"]
    assert not {"prefilter_score", "kept", "topic", "rule"} & set(line)


def test_a_listing_s_own_topic_and_rule_keys_are_written_back(tmp_path):
    """A plain listing (no prefilter_score, no kept) whose rows carry a "topic" or "rule" of the user's own: those
    are not a ranking's verdict, and a papers line written from such a paper (`ranker fetch --from`) keeps them
    (they were dropped with the verdict keys of prefilter output)."""
    rows = listing_rows(n=2)
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({**r, "topic": "reading group", "rule": "from Anna"}) + "\n" for r in rows))
    line = list(read_papers(path))[0].to_dict()
    assert line["topic"] == "reading group" and line["rule"] == "from Anna"


def test_a_ranking_of_a_listing_with_such_keys_writes_only_its_own_verdict(tmp_path):
    """The prefilter output of that listing: its verdict keys are the ranking's. A listing's own "reupload_of"
    (kept in a papers line, above) went into the ranking's line where the ranking found no re-upload, and
    read_ranked took it for one."""
    rows = listing_rows(n=2)
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps({**r, "reupload_of": {"id": "2401.00001", "date": "2024-01-02"},
                                        "my_note": "n"}) + "\n" for r in rows))
    ranked = [Ranked(paper=p, prefilter_score=0.5, kept=True, topic="t1", rule="top") for p in read_papers(path)]
    out = tmp_path / "ranked.jsonl"
    out.write_text("".join(ranked_lines(ranked)))
    back = read_ranked(out)
    assert [r.reupload_of for r in back] == [None, None]
    assert [r.paper.extra.get("my_note") for r in back] == ["n", "n"]


def test_categories_filter_on_jsonl():
    papers = list(read_papers(DAYS / "2025-05-13" / "listing.jsonl", categories="cs.AI", announce="new"))
    assert papers and all(p.primary_category == "cs.AI" for p in papers)


def test_an_archive_holds_its_subject_classes():
    """--category cs is every cs.* paper (it matched none: names were compared whole); hep-th stays itself."""
    every = list(read_papers(RSS, announce="new,cross"))
    cs = list(read_papers(RSS, categories="cs", announce="new,cross"))
    assert cs and {p.id for p in cs} == {p.id for p in every if any(c.startswith("cs.") for c in p.categories)}
    assert all(p.announce_type == ("new" if p.primary_category.startswith("cs.") else "cross") for p in cs)
    assert {p.id for p in read_papers(RSS, categories="cs.LG,cs.AI")} <= {p.id for p in cs}
    assert within("astro-ph.CO", ["astro-ph"]) and within("hep-th", ["hep-th"])
    assert not within("hep-ph", ["hep-th"]) and not within("astro-ph", ["astro-ph.CO"]) and not within("csx.LG", ["cs"])


def test_write_papers_is_atomic(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")

    def boom():
        yield Paper(id="2411.00001", title="t", abstract="a")
        raise InputError("reader failed", where="x")

    with pytest.raises(InputError):
        write_papers(boom(), out)
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


# --------------------------------------------------------------------------- bad input
def test_missing_file():
    with pytest.raises(InputError) as e:
        read_papers("missing.xml")
    assert str(e.value) == "missing.xml: file not found"


def test_a_directory_is_not_a_file(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        read_papers(tmp_path)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "snap.json.gz"
    path.write_bytes(gzip.compress(JSONL_BYTES)[:40])
    with pytest.raises(InputError) as e:
        list(read_papers(path))
    assert str(e.value).startswith(f"{path}: cannot read")


@pytest.mark.parametrize("damage", ["short", "cut", "corrupt"])
def test_a_damaged_gz_is_one_error_naming_the_file(tmp_path, damage):
    """A .gz cut short or with a damaged block (zlib's own error, neither OSError nor EOFError, which came out
    as an unexpected failure naming nothing) is one InputError naming the file, read as a file or as XML."""
    path = damaged_gz(tmp_path)[damage]
    with pytest.raises(InputError) as e:
        list(read_papers(path))
    assert str(e.value).startswith(f"{path}: cannot read") and "\n" not in str(e.value)
    xml = tmp_path / "feed.xml.gz"
    data = gzip.compress(RSS.read_bytes())
    xml.write_bytes(data[:len(data) // 2] + bytes(b ^ 0xFF for b in data[len(data) // 2:len(data) // 2 + 50])
                    + data[len(data) // 2 + 50:])
    with pytest.raises(InputError) as e:
        list(read_papers(xml))
    assert str(e.value).startswith(f"{xml}: ")


def test_truncated_xml_names_file_and_line(tmp_path):
    path = tmp_path / "cut.xml"
    data = RSS.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as e:
        read_papers(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:") and "not well-formed XML" in msg and "\n" not in msg


def test_truncated_jsonl_line_is_skipped_with_a_count(tmp_path):
    lines = LISTING.read_text(encoding="utf-8").splitlines()
    lines[3] = lines[3][:40]
    path = tmp_path / "day.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = ReadReport()
    papers = list(read_papers(path, report=report))
    assert len(papers) == 191 and report.skipped == 1
    assert report.first_where("skipped") == f"{path}:4"
    assert any(f"{path}:4" in n for n in report.notes())


def test_nothing_valid_is_an_error(tmp_path):
    path = tmp_path / "junk.jsonl"
    path.write_text('{"id": "2411.0\n{"title"\n', encoding="utf-8")
    with pytest.raises(InputError, match=rf"no valid paper line .*{re.escape(str(path))}:1"):
        list(read_papers(path))


def test_empty_jsonl_is_an_empty_day(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert list(read_papers(path)) == []


def test_paper_without_abstract_is_kept_and_counted(tmp_path):
    row = listing_rows(n=1)[0]
    del row["abstract"]
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(row) + "\n")
    report = ReadReport()
    (p,) = read_papers(path, report=report)
    assert p.abstract == "" and report.no_abstract == 1
    (p,) = read_papers(rss_doc([rss_item(abstract="")]), report=(r2 := ReadReport()))
    assert p.abstract == "" and r2.no_abstract == 1


def test_non_utf8_bytes_are_replaced_with_a_warning(tmp_path):
    rows = listing_rows(n=3)
    raw = b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)
    raw = raw.replace(rows[1]["title"][:5].encode(), b"\xff\xfe" + rows[1]["title"][2:5].encode(), 1)
    path = tmp_path / "bad.jsonl"
    path.write_bytes(raw)
    report = ReadReport()
    papers = list(read_papers(path, report=report))
    assert len(papers) == 3 and report.bad_bytes == 1 and report.first_where("bad_bytes") == f"{path}:2"
    assert "\ufffd" in papers[1].title
    xml = rss_doc([rss_item(title="Caf\u00e9")]).replace("Café".encode(), b"Caf\xe9")
    report = ReadReport()
    (p,) = read_papers(xml, report=report)
    assert p.title == "Caf\ufffd" and report.bad_bytes == 1


def test_duplicate_ids_in_jsonl_are_counted(tmp_path):
    rows = listing_rows(n=3)
    path = tmp_path / "dup.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows + rows[:2]))
    report = ReadReport()
    assert len(list(read_papers(path, report=report))) == 3
    assert report.duplicates == 2
    # each duplicate is named by its own line, as every other warning of a read is (not the bare file name)
    assert report.first_where("duplicates") == f"{path}:4"
    assert [w.split(": ")[0] for w in report.warnings] == [f"{path}:4", f"{path}:5"]


def test_lone_surrogate_escapes_in_jsonl_are_replaced_not_fatal(tmp_path):
    """A JSON "\\ud800" escape is valid JSON but no Unicode text: it reached the store (and the output
    file) as a str UTF-8 cannot encode, and `ranker fetch` / `run` died with an unexpected failure."""
    from ranker.store import Store
    rows = listing_rows(n=2)
    lines = [json.dumps(r) for r in rows]
    lines.insert(1, '{"id": "2505.99999", "title": "Lone \\ud800 surrogate and a pair \\ud83d\\ude80", '
                    '"abstract": "abs \\udfff", "authors": ["A \\ud800 B"], "categories": ["cs.LG"], '
                    '"note": "\\udc00"}')
    path = tmp_path / "sur.jsonl"
    path.write_text("\n".join(lines) + "\n")
    report = ReadReport()
    papers = list(read_papers(path, report=report))
    assert len(papers) == 3
    odd = papers[1]
    assert odd.title == "Lone \ufffd surrogate and a pair \U0001f680" and odd.abstract == "abs \ufffd"
    assert odd.authors == ["A \ufffd B"] and odd.extra["note"] == "\ufffd"
    assert report.bad_bytes == 1 and report.first_where("bad_bytes") == f"{path}:2"
    with Store(tmp_path / "db.sqlite3") as st:
        st.add_papers(papers)
        assert st.get_paper("2505.99999").title == odd.title
    write_papers(papers, tmp_path / "out.jsonl")
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8").count("\n") == 3


def test_huge_abstract_is_capped(tmp_path):
    row = listing_rows(n=1)[0]
    row["abstract"] = "word " * 200_000                 # 1 MB
    path = tmp_path / "huge.jsonl"
    path.write_text(json.dumps(row) + "\n")
    report = ReadReport()
    (p,) = read_papers(path, report=report)
    assert len(p.abstract) == ABSTRACT_CAP and report.truncated == 1


def test_rows_without_id_or_title_are_skipped(tmp_path):
    good = listing_rows(n=1)[0]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join([json.dumps({"title": "no id"}), json.dumps({"id": "not an id", "title": "x"}),
                               json.dumps({"id": "2411.00001"}), "[1, 2]", json.dumps(good)]) + "\n")
    report = ReadReport()
    assert [p.id for p in read_papers(path, report=report)] == [good["id"]]
    assert report.skipped == 4


def test_unrecognised_format(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"\x00\x01binary junk")
    with pytest.raises(InputError, match="unrecognised format"):
        read_papers(path)
    html = tmp_path / "page.html"
    html.write_text("<html><body>502 Bad Gateway</body></html>")
    with pytest.raises(RankerError, match="unrecognised format"):
        read_papers(html)


@pytest.mark.parametrize("lead", [b"\xef\xbb\xbf", b"\n", b"  \r\n\n", b"\xef\xbb\xbf\n"])
def test_a_bom_or_blank_first_line_loses_nothing(tmp_path, lead):
    """A file saved by an editor with a byte-order mark, or with a blank line on top, is the same file: a
    snapshot is still read as a snapshot (days, comments, versions) and no first row is lost."""
    rows = listing_rows(n=3)
    snap = tmp_path / "snap.json"
    snap.write_bytes(lead + "".join(json.dumps(to_snapshot(r)) + "\n" for r in rows).encode("utf-8"))
    report = ReadReport()
    papers = list(read_papers(snap, report=report))
    assert [p.id for p in papers] == [r["id"] for r in rows] and report.skipped == 0
    assert {p.date for p in papers} == {"2025-05-13"} and {p.version for p in papers} == {2}
    assert "versions" not in papers[0].extra
    listing = tmp_path / "listing.jsonl"
    listing.write_bytes(lead + JSONL_BYTES)
    report = ReadReport()
    assert len(list(read_papers(listing, report=report))) == 192 and report.skipped == 0
    report = ReadReport()
    assert len(list(read_papers(lead + JSONL_BYTES, report=report))) == 192 and report.skipped == 0


def test_a_bom_inside_concatenated_files_is_not_a_bad_row(tmp_path):
    two = tmp_path / "two.jsonl"
    rows = listing_rows(n=2)
    two.write_bytes(b"\xef\xbb\xbf" + (json.dumps(rows[0]) + "\n").encode() + b"\xef\xbb\xbf"
                    + (json.dumps(rows[1]) + "\n").encode())
    report = ReadReport()
    assert [p.id for p in read_papers(two, report=report)] == [r["id"] for r in rows] and report.skipped == 0


@pytest.mark.parametrize("lead", [b"\n", b"\r\n\n  ", b"\xef\xbb\xbf\n"])
def test_a_feed_with_blank_lines_before_its_declaration_is_read(tmp_path, lead):
    """A feed saved with a blank line on top (a script that printed a newline first) is the same feed, as
    for JSON lines: the parser refuses an XML declaration not at the start, and used to call it a truncated
    download. A problem is still named at its own line of the file."""
    rss = tmp_path / "feed.xml"
    rss.write_bytes(lead + RSS.read_bytes())
    assert len(list(read_papers(rss, categories="cs.LG,cs.AI"))) == 207
    atom = tmp_path / "api.xml"
    atom.write_bytes(lead + ATOM_QUERY.read_bytes())
    assert len(list(read_papers(atom))) == 10
    doc = lead + rss_doc([rss_item("2411.00001"), "\n" + rss_item("not-an-id"), rss_item("2411.00003")])
    report = ReadReport()
    assert [p.id for p in read_papers(doc, report=report)] == ["2411.00001", "2411.00003"]
    line = doc.split(b"not-an-id")[0].count(b"\n") + 1
    assert report.skipped == 1 and report.first_where("skipped") == f"<bytes>:{line}"


def test_a_damaged_first_line_does_not_hide_a_snapshot(tmp_path):
    """A snapshot whose first line is cut (a file cut at its start, debris of a download) is still a
    snapshot: the first line that is JSON decides, so the papers keep their first version's day and their
    version, the damaged line counted."""
    rows = listing_rows(n=3)
    body = "".join(json.dumps(to_snapshot(r)) + "\n" for r in rows).encode("utf-8")
    snap = tmp_path / "snap.json"
    snap.write_bytes(b'{"id": "2505.0999' + b"\n" + body)
    for source in (snap, snap.read_bytes(), gzip.compress(snap.read_bytes())):
        report = ReadReport()
        papers = list(read_papers(source, report=report))
        assert [p.id for p in papers] == [r["id"] for r in rows]
        assert {p.date for p in papers} == {"2025-05-13"} and {p.version for p in papers} == {2}
        assert report.skipped == 1 and report.first_where("skipped").endswith(":1")


# --------------------------------------------------------------------------- pipes and stdin
def _snapshot_bytes(n: int) -> bytes:
    rows = listing_rows("2025-05-13")
    out = []
    for i in range(n):
        d = to_snapshot(rows[i % len(rows)])
        d["id"] = f"2501.{i:05d}"
        out.append(json.dumps(d) + "\n")
    return "".join(out).encode("utf-8")


def _feed(fd: int, data: bytes):
    """Write `data` into a pipe from a thread (as `zcat snapshot.gz |` would)."""
    import os
    import threading

    def run():
        with os.fdopen(fd, "wb") as w:
            view = memoryview(data)
            for i in range(0, len(data), 1 << 16):
                w.write(view[i:i + (1 << 16)])
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize("gz", [False, True])
def test_a_named_pipe_is_read_as_a_stream(tmp_path, gz):
    """`--from <(zcat snapshot.gz)` or a FIFO: a stream that cannot seek back is sniffed and read once."""
    import os
    data = _snapshot_bytes(300)
    fifo = tmp_path / "snap.fifo"
    os.mkfifo(fifo)
    t = _feed(os.open(fifo, os.O_RDWR), gzip.compress(data) if gz else data)
    papers = list(read_papers(fifo, categories="cs.LG,cs.AI"))
    t.join(5)
    assert len(papers) == sum(1 for r in (json.loads(x) for x in data.splitlines())
                              if {"cs.LG", "cs.AI"} & set(r["categories"].split()))
    assert papers[0].date == "2025-05-13" and papers[0].version == 2


def test_stdin_is_streamed_not_read_whole(monkeypatch):
    """A snapshot piped into `--from -` is read a line at a time, like a file: memory stays flat."""
    import io
    import os
    import sys
    data = _snapshot_bytes(2000)
    r, w = os.pipe()
    stdin = io.TextIOWrapper(open(r, "rb"))
    monkeypatch.setattr(sys, "stdin", stdin)
    t = _feed(w, data)
    tracemalloc.start()
    n = 0
    for p in read_papers("-"):
        n += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    t.join(5)
    assert n == 2000 and p.version == 2
    assert peak < len(data) / 8, (peak, len(data))
    stdin.close()


def test_a_category_in_the_wrong_case_is_refused_with_the_right_one():
    from ranker.sources.filters import parse_list
    assert parse_list("cs.LG, stat.ML,physics.optics, hep-th, astro-ph.CO, q-bio.NC", key="categories") == \
        ["cs.LG", "stat.ML", "physics.optics", "hep-th", "astro-ph.CO", "q-bio.NC"]
    for given, right in (("cs.lg", "cs.LG"), ("Stat.ml", "stat.ML"), ("physics.Optics", "physics.optics"),
                         ("HEP-TH", "hep-th")):
        with pytest.raises(InputError) as e:
            parse_list(f"cs.AI,{given}", key="categories")
        assert e.value.key == "categories" and f"did you mean {right!r}?" in str(e.value)
    with pytest.raises(InputError):
        list(read_papers(LISTING, categories="cs.lg"))


# --------------------------------------------------------------------------- the announcement calendar
def test_the_windows_are_right_without_a_time_zone_database(monkeypatch):
    """Without tz data (no tzdata package, no /usr/share/zoneinfo) the 14:00 Eastern deadline still follows
    US daylight saving time: EST in winter, EDT from the second Sunday of March to the first of November."""
    import zoneinfo
    from datetime import datetime, timezone

    from ranker.sources import days
    want = {d: days.submission_window(d) for d in ("2025-01-15", "2025-03-10", "2025-03-11", "2025-05-20",
                                                   "2025-11-03", "2025-11-04", "2024-11-04", "2024-12-31")}

    def no_data(key):
        raise zoneinfo.ZoneInfoNotFoundError(key)
    monkeypatch.setattr(zoneinfo, "ZoneInfo", no_data)
    assert {d: days.submission_window(d) for d in want} == want
    assert days.submission_window("2025-01-15")[1] == datetime(2025, 1, 14, 19, tzinfo=timezone.utc)


def test_a_line_with_bad_bytes_and_a_lone_surrogate_is_one_record_repaired(tmp_path):
    """bad_bytes counts records (lines): a line with invalid UTF-8 and a lone \\ud800 escape both was counted
    twice ('2 records with invalid UTF-8' for one), and the note named invalid UTF-8 for a file of none."""
    rows = [json.dumps(r).encode() for r in listing_rows(n=3)]
    rows[0] = rows[0].replace(b'"title": "', b'"title": "\xff \\ud800 ', 1)
    rows[2] = rows[2].replace(b'"title": "', b'"title": "\\udc00 ', 1)
    path = tmp_path / "odd.jsonl"
    path.write_bytes(b"\n".join(rows) + b"\n")
    report = ReadReport()
    papers = list(read_papers(path, report=report))
    assert len(papers) == 3 and papers[0].title.startswith("\ufffd \ufffd ") and papers[2].title.startswith("\ufffd ")
    assert report.bad_bytes == 2, report.warnings
    assert report.notes() == [f"2 records with invalid UTF-8 or a lone surrogate escape (replaced with U+FFFD); "
                              f"first at {path}:1"]


_BAD = b'{"id": "2505.09572", "title": "t", "abstract": "a"}\n{"id": "x"}\n'     # line 2: no arXiv id
_JUDGED = b'{"ARXIVID": "2506.00001", "RELEVANCE": 5, "NOVELTY": 5}\n{"x": 1}\n'
_NO_ID_LINE = b'{"id": "x"}\n'
_NO_ID = "error: stdin: no valid paper line (1 skipped: 1 without a valid arXiv id; first at stdin:1)"
_NO_ID_PAPERS = _NO_ID.replace("error: ", "error: --papers ")
_SKIPPED = "warning: 1 record skipped (unreadable or without id/title); first at stdin:2"
_GPT = str(DAYS / "2025-06-23" / "gpt_scores.jsonl")
_STDIN_CASES = {  # a command's args (run in tmp_path), then input -> a line said of it (status 1 for an error, else 0)
    "fetch": (["fetch", "--from", "-", "--out", "f.jsonl"],
              {b"": "nothing to do: no announcements in stdin (a weekend or holiday?); wrote an empty",
               b"x\n": "error: --from stdin: unrecognised format", _BAD: _SKIPPED}),
    "prefilter": (["prefilter", "--papers", "-", "--out", "p.jsonl"],
                  {b"": "nothing to do: no papers in stdin (wrote an empty", _NO_ID_LINE: _NO_ID_PAPERS}),
    "score": (["score", "--papers", "-", "--backend", "fake", "--out", "s.jsonl"],
              {b"": "nothing to do: no papers in stdin (wrote an empty", _NO_ID_LINE: _NO_ID_PAPERS}),
    "score-only-kept": (["score", "--papers", "-", "--only-kept", "--backend", "fake", "--out", "s.jsonl"],
                        {b"": "nothing to do: no kept papers in stdin (wrote",
                         _BAD: "error: --papers stdin: 2505.09572: no prefilter verdict"}),
    "run": (["run", "--papers", "-", "--backend", "fake", "--out", "run"],
            {b"": "nothing to do: no announcements in stdin (a weekend or holiday?)", _BAD: _SKIPPED}),
    "labels-import": (["labels", "import", "-"],
                      {b"": "nothing to do: no labels in stdin", b"x\n": "error: stdin:1: not valid JSON",
                       b"\xff\n": "error: stdin: not UTF-8 text"}),
    "compare-gpt": (["compare", "--gpt", "-", "--local", _GPT, "--out", "c"],
                    {b"": "nothing to do: the GPT side (stdin) holds no judgement",
                     b"x\n": "error: --gpt stdin: not a digest", _JUDGED: "warning: stdin:2: skipped: no arXiv id"}),
    "compare-papers": (["compare", "--gpt", _GPT, "--local", _GPT, "--papers", "-", "--out", "c"],
                       {b"": "warning: stdin: no papers in this listing",
                        _NO_ID_LINE: _NO_ID_PAPERS}),
    "compare-prefilter": (["compare", "--gpt", _GPT, "--local", _GPT, "--prefilter", "-", "--out", "c"],
                          {b"": "warning: stdin: no rows in this prefilter output",
                           _NO_ID_LINE: _NO_ID.replace("error: ", "error: --prefilter ")}),
}


@pytest.mark.parametrize("command", _STDIN_CASES)
def test_stdin_is_named_alike_by_every_command_that_reads_it(tmp_path, command):
    """`prefilter --papers -` and `fetch --from -` called stdin "<stdin>" where `labels import -` and
    `compare --gpt -` said /dev/stdin (the descriptor read), and the nothing-to-do lines said "-" ("no papers in
    -"): every line, bad input or empty, names '-' read `stdin`, as `--out -` is `stdout` (cli.common.in_shown).
    What is recorded keeps what was given: compare's metrics.json lists '-'. An error names the flag of the
    file at fault, as every command's does (`--gpt stdin: not a digest`, `--from stdin: unrecognised format`);
    `labels import -` takes one file, as its argument, and names none. (`--papers -`
    given judgements: test_compare_readers, a listing ... from stdin.)"""
    import os
    import subprocess
    from conftest import RANKER
    env = {**os.environ, "RANKER_HOME": str(tmp_path / "home")}
    env.pop("RANKER_DEBUG", None)
    args, said = _STDIN_CASES[command]
    for given, want in said.items():
        r = subprocess.run([*RANKER, *args], input=given, capture_output=True, env=env, cwd=tmp_path)
        err = r.stderr.decode()
        assert want in err and "/dev/stdin" not in err and not re.search(r"\bin -|^-:", err, re.M), (given, err)
        assert r.returncode == (1 if want.startswith("error") else 0), (given, err)
