"""Readers of `ranker compare`: every GPT/local format, several days at once, and bad input."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ranker.compare import read_listing_files, read_prefilter_files, read_score_files, read_scores
from ranker.errors import InputError, RankerError

from conftest import DAYS, SEED_DIGEST as SEED, ranker



def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _seed_ids_in_order() -> list[str]:
    """The seed digest's ids, read independently of the reader: the '**ArXiv ID:**' lines before the prompt."""
    text = SEED.read_text().split("# Paper Selection Prompt")[0]
    return [line.split("**ArXiv ID:**")[1].strip() for line in text.splitlines() if line.startswith("**ArXiv ID:**")]


def test_seed_markdown_digest_gives_every_paper_and_no_prompt_section():
    warnings: list[str] = []
    rows = read_scores(SEED, warn=warnings.append)
    assert warnings == []
    assert list(rows) == _seed_ids_in_order()
    assert len(rows) == 47
    first = rows["2506.16065"]
    assert (first.relevance, first.novelty) == (9, 9)
    assert first.title == "Floating-Point Neural Networks Are Provably Robust Universal Approximators"
    assert first.comment.startswith("The paper introduces a new IUA theorem")
    assert first.date == "2025-06-23"            # from the digest's heading, not the file name
    assert first.source == f"{SEED}:159"
    # nothing from the "# Paper Selection Prompt" section (its "## Instructions" etc.) became a paper
    assert all(r.title and r.id[:4] == "2506" for r in rows.values())


def test_seed_digest_agrees_with_the_days_gpt_scores_jsonl():
    md = read_scores(SEED)
    jl = read_scores(DAYS / "2025-06-23" / "gpt_scores.jsonl")    # JSONL with the `id` key
    assert set(md) == set(jl)
    for pid, row in md.items():
        assert (row.relevance, row.novelty) == (jl[pid].relevance, jl[pid].novelty)
        assert row.comment == jl[pid].comment


def test_gpt_scores_jsonl_with_id_key_every_day():
    for day_dir in sorted(DAYS.iterdir()):
        src = _jsonl(day_dir / "gpt_scores.jsonl")
        rows = read_scores(day_dir / "gpt_scores.jsonl")
        assert len(rows) == len(src)
        for d in src:
            r = rows[d["id"]]
            assert (r.relevance, r.novelty, r.comment, r.title) == (d["RELEVANCE"], d["NOVELTY"], d["COMMENT"],
                                                                     d["title"])
            assert r.date == day_dir.name


def test_json_digest_keyed_by_id(tmp_path):
    """The seed's JSON output: one object keyed by id; values with SCORE, ARXIVID, ..., arxiv_id."""
    src = _jsonl(DAYS / "2025-05-15" / "gpt_scores.jsonl")
    digest = {d["id"]: {"SCORE": d["RELEVANCE"] + d["NOVELTY"], "ARXIVID": d["id"], "COMMENT": d["COMMENT"],
                        "RELEVANCE": d["RELEVANCE"], "NOVELTY": d["NOVELTY"], "authors": d["authors"],
                        "title": d["title"], "abstract": d["abstract"], "arxiv_id": d["id"]} for d in src}
    path = tmp_path / "2025-05-15_output.json"
    path.write_text(json.dumps(digest, indent=2))
    rows = read_scores(path)
    assert set(rows) == set(digest)
    for pid, v in digest.items():
        assert (rows[pid].relevance, rows[pid].novelty, rows[pid].title) == (v["RELEVANCE"], v["NOVELTY"], v["title"])
        assert rows[pid].date == "2025-05-15"    # from the file name
        assert rows[pid].source.startswith(f"{path}:")


def test_ranker_score_jsonl_and_version_stripping(tmp_path):
    path = tmp_path / "scores.jsonl"
    path.write_text('{"ARXIVID": "2506.16065v3", "COMMENT": "c1", "RELEVANCE": 7, "NOVELTY": 6}\n'
                    '\n'
                    '{"ARXIVID": "arXiv:2506.16406", "COMMENT": "c2", "RELEVANCE": "9", "NOVELTY": 8}\n')
    rows = read_scores(path)
    assert list(rows) == ["2506.16065", "2506.16406"]
    assert (rows["2506.16406"].relevance, rows["2506.16406"].novelty) == (9, 8)
    # a one-line JSONL file is not mistaken for a JSON digest
    one = tmp_path / "one.jsonl"
    one.write_text('{"ARXIVID": "2506.16065", "COMMENT": "c", "RELEVANCE": 7, "NOVELTY": 6}')
    assert list(read_scores(one)) == ["2506.16065"]


def test_directory_and_glob_read_several_days(tmp_path):
    rows, files = read_score_files(DAYS, key="gpt")
    # the directory also holds listing.jsonl files: only the judgement files are read
    assert sorted(f.name for f in files) == ["gpt_scores.jsonl"] * 5
    total = sum(len(_jsonl(d / "gpt_scores.jsonl")) for d in DAYS.iterdir())
    assert len(rows) == total == 146
    assert {r.date for r in rows.values()} == {d.name for d in DAYS.iterdir()}

    rows_glob, files_glob = read_score_files(str(DAYS / "*" / "gpt_scores.jsonl"))
    assert set(rows_glob) == set(rows) and len(files_glob) == 5

    # a mix: a Markdown digest in a nested folder + a JSONL file, given as a list
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    shutil.copy(SEED, nested / "digest.md")
    shutil.copy(DAYS / "2025-07-02" / "gpt_scores.jsonl", tmp_path / "2025-07-02.jsonl")
    (tmp_path / "notes.txt").write_text("just some notes, not a digest\n")
    # what `ranker run` writes beside its digests, and any other Markdown, is not a digest: passed over quietly
    (tmp_path / "index.md").write_text("# Daily digests\n\n| day | status |\n| --- | --- |\n")
    (tmp_path / "README.md").write_text("# My digests\n\nSome notes.\n")
    (tmp_path / "empty-day.md").write_text("# Personalized Daily ArXiv Papers 2025-07-03\n\nNo papers.\n")
    w: list[str] = []
    mixed, mixed_files = read_score_files(tmp_path, warn=w.append)
    assert sorted(f.name for f in mixed_files) == ["2025-07-02.jsonl", "digest.md", "empty-day.md"]
    assert len(mixed) == 47 + 21 and not [x for x in w if "index.md" in x or "README.md" in x]


def test_same_paper_in_two_files_with_different_scores_warns(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"ARXIVID": "2506.16065", "COMMENT": "", "RELEVANCE": 7, "NOVELTY": 6}\n')
    b.write_text('{"ARXIVID": "2506.16065v2", "COMMENT": "", "RELEVANCE": 9, "NOVELTY": 6}\n')
    w: list[str] = []
    rows, _ = read_score_files([a, b], warn=w.append)
    assert rows["2506.16065"].relevance == 7
    assert len(w) == 1 and f"{b}:1" in w[0] and f"{a}:1" in w[0]


def test_a_paper_judged_and_listed_on_two_days_keeps_each_days_row(tmp_path):
    """A paper listed again on a later day is judged again there, maybe otherwise: that is no clash to warn of,
    and each day's judgement is kept by (day, id) beside the paper's first; the same day judged twice otherwise
    still warns. One file with both days' rows (a `date` field each) keeps both too, and so do the listing and
    prefilter readers."""
    a, b = tmp_path / "2025-06-23" / "gpt_scores.jsonl", tmp_path / "2025-07-02" / "gpt_scores.jsonl"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text('{"ARXIVID": "2506.16065", "COMMENT": "", "RELEVANCE": 6, "NOVELTY": 6}\n')
    b.write_text('{"ARXIVID": "2506.16065", "COMMENT": "", "RELEVANCE": 9, "NOVELTY": 8}\n')
    w: list[str] = []
    rows, _ = read_score_files(tmp_path, warn=w.append)
    assert w == [] and list(rows) == ["2506.16065"] and rows["2506.16065"].relevance == 6
    assert {k: (r.relevance, r.date) for k, r in rows.by_day.items()} == {
        ("2025-06-23", "2506.16065"): (6, "2025-06-23"), ("2025-07-02", "2506.16065"): (9, "2025-07-02")}
    again = tmp_path / "again-2025-07-02.jsonl"
    again.write_text('{"ARXIVID": "2506.16065", "COMMENT": "", "RELEVANCE": 5, "NOVELTY": 8}\n')
    rows, _ = read_score_files(tmp_path, warn=w.append)
    assert len(w) == 1 and f"{again}:1" in w[0] and f"{b}:1" in w[0] and "keeping the first" in w[0]
    assert rows.by_day[("2025-07-02", "2506.16065")].relevance == 9
    one = tmp_path / "one.jsonl"
    one.write_text('{"id": "2506.16065", "date": "2025-06-23", "RELEVANCE": 6, "NOVELTY": 6}\n'
                   '{"id": "2506.16065", "date": "2025-07-02", "RELEVANCE": 9, "NOVELTY": 8}\n')
    w = []
    rows = read_scores(one, warn=w.append)
    assert w == [] and sorted(rows.by_day) == [("2025-06-23", "2506.16065"), ("2025-07-02", "2506.16065")]

    paper = next(d for d in _jsonl(DAYS / "2025-06-23" / "listing.jsonl") if d["id"] == "2506.16065")
    later = tmp_path / "listing-2025-07-02.jsonl"
    later.write_text(json.dumps({**paper, "date": "2025-07-02"}) + "\n")
    papers, _ = read_listing_files([DAYS / "2025-06-23" / "listing.jsonl", later])
    assert len(papers) == 380 and papers["2506.16065"].date == "2025-06-23"
    assert [k for k in papers.by_day if k[1] == "2506.16065"] == [("2025-06-23", "2506.16065"),
                                                                   ("2025-07-02", "2506.16065")]
    ranked = []
    for day, score in (("2025-06-23", 0.2), ("2025-07-02", 0.9)):
        f = tmp_path / f"ranked-{day}.jsonl"
        f.write_text(json.dumps({**paper, "date": day, "prefilter_score": score, "kept": score > 0.5}) + "\n")
        ranked.append(f)
    pf, _ = read_prefilter_files(ranked)
    assert pf["2506.16065"].score == 0.2
    assert {k: (r.score, r.kept) for k, r in pf.by_day.items()} == {("2025-06-23", "2506.16065"): (0.2, False),
                                                                   ("2025-07-02", "2506.16065"): (0.9, True)}


def test_a_judgement_without_a_day_repeated_on_a_day_is_kept_for_that_day_too(tmp_path):
    """A file without a day (`ranker score` output) judged a paper that a day's file judges again otherwise: the
    warning says the first is kept, and the overall figures keep it; the per-day figures read `by_day`, which
    held the second, so the two tables counted different verdicts of one paper."""
    undated = tmp_path / "local.jsonl"
    day = tmp_path / "2025-07-02" / "scores.jsonl"
    day.parent.mkdir()
    undated.write_text('{"ARXIVID": "2506.16065", "COMMENT": "", "RELEVANCE": 6, "NOVELTY": 6}\n')
    day.write_text('{"ARXIVID": "2506.16065", "COMMENT": "", "RELEVANCE": 9, "NOVELTY": 8}\n')
    w: list[str] = []
    rows, _ = read_score_files([undated, day], warn=w.append)
    assert len(w) == 1 and "keeping the first" in w[0]
    assert rows["2506.16065"].relevance == 6 and rows["2506.16065"].date == "2025-07-02"
    assert {k: r.relevance for k, r in rows.by_day.items()} == {("2025-07-02", "2506.16065"): 6}


def test_papers_and_prefilter_readers(tmp_path):
    papers, files = read_listing_files(DAYS)
    assert sorted(f.name for f in files) == ["listing.jsonl"] * 5
    assert len(papers) == 1445
    assert papers["2506.16065"].date == "2025-06-23"
    pf = tmp_path / "ranked.jsonl"
    pf.write_text('{"id": "2506.16065v1", "prefilter_score": 0.8, "kept": true, "topic": "t", "title": "A", "abstract": "a", '
                  '"date": "2025-06-23"}\n'
                  '{"id": "2506.16406", "prefilter_score": "oops", "kept": false, "title": "B", "abstract": "b"}\n'
                  'not json\n')
    w: list[str] = []
    rows, _ = read_prefilter_files(pf, warn=w.append)
    assert list(rows) == ["2506.16065"] and rows["2506.16065"].kept is True
    assert len(w) == 2 and f"{pf}:2" in w[0] and f"{pf}:3" in w[1]


# ------------------------------------------------------------------------------------------ bad input

def test_an_empty_file_is_no_papers_and_its_day_judged_with_nothing_picked(tmp_path):
    for name, text in (("empty.md", ""), ("empty.jsonl", "\n\n"), ("blank.txt", "  \n")):
        p = tmp_path / "2025-07-03" / name
        p.parent.mkdir(exist_ok=True)
        p.write_text(text)
        w: list[str] = []
        rows = read_scores(p, warn=w.append)
        assert rows == {} and w == [] and rows.empty_days == {"2025-07-03"}, (name, w)
    undated = tmp_path / "empty.jsonl"
    undated.write_text("")
    assert read_scores(undated).empty_days == set()


def test_each_file_says_its_day_even_without_a_row(tmp_path):
    """A file read for a day records that day when it has no row (GPT picked nothing): the digest's heading,
    else the file's name or folder. A file whose rows were all bad records nothing: that day is not known
    to be judged."""
    from ranker.digest import TokenCost, render_json, render_markdown
    from ranker.prompts import load_prompts
    md = tmp_path / "digest.md"        # undated name: the heading says the day
    md.write_text(render_markdown("2025-07-02", [], usage=TokenCost(model="gpt-4o"), total_papers=244,
                                  scanned_papers=0, prompts=load_prompts()))
    js = tmp_path / "2025-07-03-output.json"
    js.write_text(json.dumps(render_json([])))
    folder = tmp_path / "2025-07-04"
    folder.mkdir()
    (folder / "gpt_scores.jsonl").write_text("")
    broken = tmp_path / "2025-07-07.jsonl"
    broken.write_text('{"ARXIVID": "2507.00001", "RELEVANCE": 9}\n')
    full = tmp_path / "2025-06-23.jsonl"
    full.write_text((DAYS / "2025-06-23" / "gpt_scores.jsonl").read_text())
    assert read_scores(md).empty_days == {"2025-07-02"}
    assert read_scores(js).empty_days == {"2025-07-03"}
    assert read_scores(full).empty_days == set() and len(read_scores(full)) == 47
    w: list[str] = []
    assert read_scores(broken, warn=w.append).empty_days == set() and len(w) == 2
    rows, files = read_score_files(tmp_path, key="gpt")
    assert len(files) == 5 and len(rows) == 47
    assert rows.empty_days == {"2025-07-02", "2025-07-03", "2025-07-04"}


def test_a_digest_that_lists_no_paper_says_so_only_when_it_is_not_a_valid_one(tmp_path):
    """The seed's title and "Total relevant papers: 0" (or an empty JSON digest) is a day that picked nothing:
    no warning. Markdown with paper fields but no block, or a count the blocks do not bear out, is."""
    for name, text in (("heading_only.md", "# Personalized Daily ArXiv Papers 2025-06-23\n\n"
                                           "Total relevant papers: 0\n"),
                       ("2025-06-23-output.json", "{}")):
        p = tmp_path / name
        p.write_text(text)
        w: list[str] = []
        assert read_scores(p, warn=w.append) == {} and w == [], (name, w)
    p = tmp_path / "cut.md"
    p.write_text("# Personalized Daily ArXiv Papers 2025-06-23\n\nTotal relevant papers: 12\n\n"
                 "**Table of contents with paper titles:**\n\n")
    w = []
    assert read_scores(p, warn=w.append) == {}
    assert w == [f"{p}: no paper blocks found in this Markdown digest (it says 12 relevant papers)"]


def _ranker_digests(tmp_path, selected, day="2025-07-02"):
    """What `ranker run` writes for `selected`: its Markdown and its JSON digest (named as run names it)."""
    from ranker.digest import TokenCost, render_json, render_markdown
    from ranker.prompts import load_prompts
    md = tmp_path / "digest.md"
    md.write_text(render_markdown(day, selected, usage=TokenCost(model="local"), total_papers=244,
                                  scanned_papers=6, prompts=load_prompts(),
                                  author_matches=sum(1 for s in selected if s.author_match)))
    js = tmp_path / f"{day}-output.json"
    js.write_text(json.dumps(render_json(selected), indent=2))
    return md, js


def test_ranker_own_digest_author_matches_and_zero_picks_read_without_a_warning(tmp_path):
    """`ranker run`'s digest is valid input: an author match without scores is no judgement (skipped quietly),
    one with scores is read and marked; a day that picked nothing is no papers and no warning."""
    from ranker.digest import Selected
    from ranker.records import Paper, Score

    papers = [Paper.from_dict(d) for d in _jsonl(DAYS / "2025-07-02" / "listing.jsonl")[:4]]
    sel = [Selected(papers[0], None, author_match=["A. Author"]),                       # pinned, not scored
           Selected(papers[1], Score(arxiv_id=papers[1].id, relevance=3, novelty=2, comment="meh"),
                    author_match=["B. Author"]),                                        # pinned, scored low
           Selected(papers[2], Score(arxiv_id=papers[2].id, relevance=9, novelty=8, comment="good")),
           Selected(papers[3], Score(arxiv_id=papers[3].id, relevance=8, novelty=7, comment="fine"))]
    for path in _ranker_digests(tmp_path, sel):
        w: list[str] = []
        rows = read_scores(path, warn=w.append)
        assert w == [], (path, w)
        assert list(rows) == [p.id for p in papers[1:]], path
        assert [r.author_match for r in rows.values()] == [True, False, False]
        assert (rows[papers[1].id].relevance, rows[papers[1].id].novelty) == (3, 2)

    empty = tmp_path / "empty"
    empty.mkdir()
    for path in _ranker_digests(empty, []):
        w = []
        assert read_scores(path, warn=w.append) == {} and w == [], (path, w)
    only_pins = tmp_path / "pins"
    only_pins.mkdir()
    for path in _ranker_digests(only_pins, sel[:1]):
        w = []
        assert read_scores(path, warn=w.append) == {} and w == [], (path, w)


def test_malformed_markdown_block_is_skipped_with_file_and_line(tmp_path):
    text = SEED.read_text()
    # break paper 2's Relevance and drop paper 3's Novelty line
    text = text.replace("**Relevance:** 9\n**Novelty:** 8\n\n---\n\n## 3.", "**Relevance:** high\n**Novelty:** 8\n\n"
                        "---\n\n## 3.", 1)
    lines = text.splitlines(keepends=True)
    start3 = next(i for i, l in enumerate(lines) if l.startswith("## 3. "))
    nov3 = next(i for i in range(start3, len(lines)) if lines[i].startswith("**Novelty:**"))
    del lines[nov3]
    p = tmp_path / "broken.md"
    p.write_text("".join(lines))
    w: list[str] = []
    rows = read_scores(p, warn=w.append)
    assert len(rows) == 45
    assert "2506.16406" not in rows and "2506.15963" not in rows
    assert len(w) == 2
    assert f"{p}:174" in w[0] and "Relevance" in w[0]
    assert f"{p}:{start3 + 1}" in w[1] and "Novelty" in w[1]


def test_malformed_jsonl_lines_are_counted_with_file_and_line(tmp_path):
    p = tmp_path / "scores.jsonl"
    p.write_text('{"ARXIVID": "2506.16065", "COMMENT": "", "RELEVANCE": 7, "NOVELTY": 6}\n'
                 '{"ARXIVID": "2506.16406", "COMMENT": "", "RELEVANCE": 7\n'        # truncated JSON
                 '{"ARXIVID": "2506.15963", "COMMENT": "", "RELEVANCE": 7}\n'        # no NOVELTY
                 '[1, 2]\n'
                 '{"COMMENT": "", "RELEVANCE": 7, "NOVELTY": 5}\n'                   # no id
                 '{"ARXIVID": "2506.16332", "COMMENT": "", "RELEVANCE": true, "NOVELTY": 5}\n')
    w: list[str] = []
    rows = read_scores(p, warn=w.append)
    assert list(rows) == ["2506.16065"]
    assert [x.split(": ")[0] for x in w] == [f"{p}:{i}" for i in (2, 3, 4, 5, 6)]
    assert "NOVELTY" in w[1] and "id" in w[3] and "RELEVANCE" in w[4]


def test_missing_file_is_one_line_ranker_error(tmp_path):
    with pytest.raises(RankerError) as e:
        read_score_files(tmp_path / "nope.jsonl", key="local")
    assert e.value.key == "local" and "nope.jsonl" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(InputError, match="no matching file"):
        read_score_files(str(tmp_path / "*.jsonl"))
    with pytest.raises(InputError, match="file not found"):
        read_scores(tmp_path / "nope.md")


def test_listing_given_as_scores_says_which_flag_to_use():
    with pytest.raises(InputError, match="pass it as papers$") as e:
        read_scores(DAYS / "2025-06-23" / "listing.jsonl")
    assert "listing.jsonl" in str(e.value)
    assert e.value.render(name_mention=lambda key: f"--{key}").endswith("pass it as --papers")


def test_ranker_digest_writers_round_trip(tmp_path):
    """What `ranker run` writes (ranker.digest's Markdown and JSON) reads back with the same scores."""
    from ranker.digest import Selected, TokenCost, render_json, render_markdown
    from ranker.prompts import load_prompts
    from ranker.records import Paper, Score

    listing = _jsonl(DAYS / "2025-07-02" / "listing.jsonl")[:6]
    sel = [Selected(Paper.from_dict(d), Score(arxiv_id=d["id"], relevance=10 - k, novelty=9 - k % 3,
                                              comment=f"why {k} <b>")) for k, d in enumerate(listing)]
    md = tmp_path / "digest.md"
    md.write_text(render_markdown("2025-07-02", sel, usage=TokenCost(model="local"), total_papers=244,
                                  scanned_papers=6, prompts=load_prompts()))
    js = tmp_path / "2025-07-02-output.json"               # named as `ranker run` names it
    js.write_text(json.dumps(render_json(sel), indent=2))
    want = {s.paper.id: (s.score.relevance, s.score.novelty, s.score.comment, s.paper.title) for s in sel}
    for path in (md, js):
        w: list[str] = []
        rows = read_scores(path, warn=w.append)
        assert w == [] and list(rows) == list(want)
        assert {i: (r.relevance, r.novelty, r.comment, r.title) for i, r in rows.items()} == want
        # the Markdown's day comes from its heading, the JSON's (which holds none) from the file name
        assert [r.date for r in rows.values()] == ["2025-07-02"] * len(want), path
    # a run directory holding both digests (plus a manifest) reads as one set, without conflicts
    (tmp_path / "manifest.json").write_text(json.dumps({"day": "2025-07-02", "model": "x", "counts": {"a": 1}}))
    w = []
    rows, files = read_score_files(tmp_path, key="local", warn=w.append)
    assert sorted(f.name for f in files) == ["2025-07-02-output.json", "digest.md"] and w == [] and len(rows) == 6
    undated = tmp_path / "undated" / "digest.json"         # a JSON digest named without its day has none
    undated.parent.mkdir()
    undated.write_text(js.read_text())
    assert {r.date for r in read_scores(undated).values()} == {""}


def test_unicode_line_separators_inside_a_title_or_comment_split_nothing(tmp_path):
    """Lines end at a line feed only: a U+2028 in a title (or U+2029, U+0085, VT, FF in a JSON string) is text,
    not a line break that loses the paper's block and hands its title to the next paper."""
    text = SEED.read_text()
    old = "## 2. [Drag-and-Drop LLMs: Zero-Shot Prompt-to-Weights]"
    assert old in text
    md = tmp_path / "digest.md"
    md.write_text(text.replace(old, "## 2. [Drag-and-Drop\u2028LLMs: Zero-Shot\x0cPrompt-to-Weights]"))
    w: list[str] = []
    rows = read_scores(md, warn=w.append)
    assert w == [] and list(rows) == _seed_ids_in_order()
    assert rows["2506.16406"].title == "Drag-and-Drop\u2028LLMs: Zero-Shot\x0cPrompt-to-Weights"
    assert rows["2506.16065"].title.startswith("Floating-Point Neural Networks")

    jl = tmp_path / "scores.jsonl"
    jl.write_text("".join(json.dumps({"ARXIVID": pid, "RELEVANCE": 9, "NOVELTY": 8, "COMMENT": f"one\u2028two\u2029"
                                      f"three\x85four\x0bfive {pid}"}, ensure_ascii=False) + "\r\n"
                          for pid in ("2506.16065", "2506.16406")))
    w = []
    rows = read_scores(jl, warn=w.append)
    assert w == [] and list(rows) == ["2506.16065", "2506.16406"]
    assert rows["2506.16406"].comment == "one\u2028two\u2029three\x85four\x0bfive 2506.16406"
    assert rows["2506.16406"].source == f"{jl}:2"


@pytest.mark.parametrize("name, text", [
    ("gpt.csv", "id,relevance,novelty\n2506.16065,9,8\n"),
    ("gpt.html", "<html><body><h2>Digest</h2><p>2506.16065: 9/8</p></body></html>\n"),
    ("notes.md", "# Some notes\n\nnothing here but 2506.16065\n"),
    ("gpt.txt", "hello world\nnot a digest\n"),
])
def test_a_file_in_an_unknown_format_is_an_error_naming_it(tmp_path, name, text):
    """Named directly, a file that is no digest (a CSV, HTML, Markdown without a digest's title or paper
    blocks) is refused, not parsed as Markdown into nothing with a warning."""
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(InputError) as e:
        read_scores(p)
    assert e.value.where == str(p) and e.value.message.startswith("not a digest: expected the seed's Markdown")
    with pytest.raises(InputError, match="not a digest"):
        read_score_files(p, key="gpt")


def test_cli_a_csv_given_as_gpt_is_one_error_line(tmp_path):
    from conftest import ranker
    p = tmp_path / "gpt.csv"
    p.write_text("id,relevance,novelty\n2506.16065,9,8\n")
    res = ranker("compare", "--gpt", p, "--local", DAYS / "2025-06-23" / "gpt_scores.jsonl", "--out", tmp_path / "o")
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: --gpt {p}: not a digest: expected the seed's Markdown digest, its JSON output, or JSONL judgements "
        "(ARXIVID or id, RELEVANCE, NOVELTY)"]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flag, said", [
    ("--gpt", "not a digest"), ("--local", "not a digest"),
    ("--papers", "unrecognised format"), ("--prefilter", "unrecognised format")])
def test_a_file_that_is_no_input_of_its_kind_names_the_flag_it_was_given_to(tmp_path, flag, said):
    """`error: notes.csv: not a digest` named no flag where `--gpt nope.csv: no such file` and `--papers x:
    holds judgements ... pass it as --gpt` did: a glob or folder swapped between --gpt and --local said which?"""
    from conftest import ranker
    gpt = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    p = tmp_path / "notes.csv"
    p.write_text("id,relevance,novelty\n2506.16065,9,8\n")
    given = {"--gpt": gpt, "--local": gpt, flag: p}
    res = ranker("compare", *[x for kv in given.items() for x in kv], "--out", tmp_path / "o")
    assert res.returncode == 1 and res.stderr.startswith(f"error: {flag} {p}: {said}"), res.stderr
    assert len(res.stderr.splitlines()) == 1 and not (tmp_path / "o").exists()


@pytest.mark.parametrize("read, key", [(read_score_files, "gpt"), (read_listing_files, "papers"),
                                       (read_prefilter_files, "prefilter")])
def test_the_library_keys_a_file_of_the_wrong_kind_by_its_parameter(tmp_path, read, key):
    """The readers themselves key the error by the parameter the file came in (the CLI's option naming of a
    file it was given would hide their keying; a library call has only theirs)."""
    p = tmp_path / "notes.csv"
    p.write_text("id,relevance,novelty\n2506.16065,9,8\n")
    with pytest.raises(InputError) as e:
        read([str(p)], key=key) if read is read_score_files else read([str(p)])
    assert e.value.key == key and "no such file" not in str(e.value), (e.value, e.value.key)


def test_a_prefilter_score_that_is_not_finite_is_a_skipped_row(tmp_path):
    """JSON's NaN / Infinity as prefilter_score: the row is skipped with file:line, like a RELEVANCE that is not
    a number, and compare measures the rest instead of failing ("Input contains NaN")."""
    from ranker.compare import run_compare
    pf = tmp_path / "ranked.jsonl"
    rows = [("2506.16065", "0.9"), ("2506.16406", "NaN"), ("2506.15655", "0.1"), ("2506.16332", "Infinity"),
            ("2506.15682", "-Infinity"), ("2506.15686", "0.5")]
    pf.write_text("".join(f'{{"id": "{i}", "prefilter_score": {s}, "kept": true, "title": "T", "abstract": "a", '
                          f'"date": "2025-06-23"}}\n' for i, s in rows))
    w: list[str] = []
    got, _ = read_prefilter_files(pf, warn=w.append)
    assert list(got) == ["2506.16065", "2506.15655", "2506.15686"]
    assert [x.split(": ")[0] for x in w] == [f"{pf}:2", f"{pf}:4", f"{pf}:5"]
    w = []
    m = run_compare(SEED, DAYS / "2025-06-23" / "gpt_scores.jsonl", tmp_path / "out", prefilter=pf, warn=w.append)
    assert len(w) == 3 and m["prefilter"]["n"] == 3 and m["prefilter"]["gpt_picks"] == 1   # 2506.16065
    assert m["prefilter"]["roc_auc"] == 1.0


def test_judgements_given_as_the_listing_are_refused(tmp_path):
    """gpt_scores.jsonl (or a digest) named as the listing would make GPT's picks the whole day: refused with
    one line naming it, as a listing given as judgements is."""
    from conftest import ranker
    jl = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    for f in (jl, SEED):
        with pytest.raises(InputError) as e:
            read_listing_files([DAYS / "2025-06-23" / "listing.jsonl", f])
        assert e.value.key == "papers" and e.value.where == str(f)
        assert e.value.render(name_mention=lambda key: f"--{key}").endswith(
            "not a paper listing (every paper of the day); pass it as --gpt or --local")
    res = ranker("compare", "--gpt", jl, "--local", jl, "--papers", jl, "--out", tmp_path / "o")
    assert res.returncode == 1 and res.stderr.splitlines() == [
        f"error: --papers {jl}: holds judgements (RELEVANCE, NOVELTY), not a paper listing (every paper of the day); "
        "pass it as --gpt or --local"], res.stderr
    assert not (tmp_path / "o").exists()
    # the listing folder itself still reads (its gpt_scores.jsonl files are not listings and are passed over)
    assert len(read_listing_files(DAYS)[0]) == 1445


def test_a_prefilter_file_at_fault_is_named_as_the_option_not_the_settings_section(tmp_path):
    """compare's --prefilter shares its name with the [prefilter] settings: a missing file was said as
    "prefilter nothere.jsonl: ...", or with a ranker.toml that has a [prefilter] table, blamed on that file's
    line ("ranker.toml:1: prefilter nothere.jsonl")."""
    from conftest import ranker
    jl = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    (tmp_path / "ranker.toml").write_text("[prefilter]\ntop = 8\n")
    for spec, problem in (("nothere.jsonl", "no such file or directory"), ("nothere*.jsonl", "no matching file")):
        res = ranker("compare", "--gpt", jl, "--local", jl, "--prefilter", spec, "--out", tmp_path / "o",
                     cwd=tmp_path)
        assert res.returncode == 1 and res.stderr.splitlines() == [f"error: --prefilter {spec}: {problem}"], \
            res.stderr
    # the section itself is still blamed on its line
    (tmp_path / "ranker.toml").write_text("prefilter = 3\n")
    res = ranker("compare", "--gpt", jl, "--local", jl, "--prefilter", "x.jsonl", "--out", tmp_path / "o",
                 cwd=tmp_path)
    assert res.returncode == 1 and res.stderr.startswith("error: ranker.toml:1: prefilter: "), res.stderr


def test_judgements_given_as_the_prefilter_output_are_refused_in_one_line(tmp_path):
    """`ranker score` output named as --prefilter was read as papers: a warning for each of its lines (no id),
    twenty of them, then the error. One line naming it, as for --papers."""
    from conftest import ranker
    jl = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    scores = tmp_path / "scores.jsonl"                     # as `ranker score` writes it: no id, no title
    scores.write_text("".join(json.dumps({"ARXIVID": d["id"], "COMMENT": "c", "RELEVANCE": d["RELEVANCE"],
                                          "NOVELTY": d["NOVELTY"]}) + "\n" for d in _jsonl(jl)))
    for f in (jl, SEED, scores):
        with pytest.raises(InputError) as e:
            read_prefilter_files(f)
        assert e.value.key == "prefilter" and e.value.where == str(f)
        res = ranker("compare", "--gpt", jl, "--local", jl, "--prefilter", f, "--out", tmp_path / "o")
        assert res.returncode == 1 and res.stderr.splitlines() == [
            f"error: --prefilter {f}: holds judgements (RELEVANCE, NOVELTY), not prefilter output; pass it as "
            "--gpt or --local"], res.stderr
    assert not (tmp_path / "o").exists()


def test_a_byte_order_mark_changes_nothing(tmp_path):
    """A GPT digest saved as "UTF-8 with BOM" (Notepad, Excel) reads as the same judgements: the BOM cost the
    JSONL file its first line, made the JSON digest an error and hid the Markdown digest's dated heading."""
    day = DAYS / "2025-06-23"
    digest = {d["id"]: {"SCORE": d["RELEVANCE"] + d["NOVELTY"], "ARXIVID": d["id"], "COMMENT": d["COMMENT"],
                        "RELEVANCE": d["RELEVANCE"], "NOVELTY": d["NOVELTY"], "title": d["title"]}
              for d in _jsonl(day / "gpt_scores.jsonl")}
    plain = {"gpt_scores.jsonl": (day / "gpt_scores.jsonl").read_bytes(), "digest.md": SEED.read_bytes(),
             "output.json": json.dumps(digest, indent=2).encode()}
    bom = tmp_path / "with-bom"               # no date in the path: the Markdown's day is its heading's
    bom.mkdir()
    for name, data in plain.items():
        (bom / name).write_bytes(b"\xef\xbb\xbf" + data)
    expected = {pid: (r.relevance, r.novelty, r.comment) for pid, r in read_scores(SEED).items()}
    for name in plain:
        warnings: list[str] = []
        rows = read_scores(bom / name, warn=warnings.append)
        assert warnings == [], name
        assert {pid: (r.relevance, r.novelty, r.comment) for pid, r in rows.items()} == expected, name
    assert {r.date for r in read_scores(bom / "digest.md").values()} == {"2025-06-23"}
    rows, files = read_score_files(bom, key="gpt")            # a folder finds all three
    assert sorted(f.name for f in files) == sorted(plain) and set(rows) == set(expected)


def test_an_arxiv_id_written_as_a_json_number_keeps_its_digits(tmp_path):
    """JSONL from a tool that wrote ids unquoted (pandas from a CSV, a model's answer): 2506.16370 is that
    paper, not 2506.1637 (the float's shortest form, a valid-looking id of no paper), for one id in ten."""
    src = _jsonl(DAYS / "2025-06-23" / "gpt_scores.jsonl")
    ids = [d["id"] for d in src]
    assert sum(i.endswith("0") for i in ids) >= 3
    lines = ['{"ARXIVID": %s, "RELEVANCE": %d, "NOVELTY": %d, "COMMENT": %s}'
             % (d["id"], d["RELEVANCE"], d["NOVELTY"], json.dumps(d["COMMENT"])) for d in src]
    unquoted = tmp_path / "2025-06-23-scores.jsonl"
    unquoted.write_text("\n".join(lines) + "\n")
    digest = tmp_path / "2025-06-23-output.json"        # the JSON digest's ARXIVID, its keys being strings
    digest.write_text("{" + ", ".join(f'"{d["id"]}": {line}' for d, line in zip(src, lines)) + "}")
    for path in (unquoted, digest):
        warnings: list[str] = []
        rows = read_scores(path, warn=warnings.append)
        assert warnings == [] and list(rows) == ids, path.name
        assert all((rows[d["id"]].relevance, rows[d["id"]].novelty) == (d["RELEVANCE"], d["NOVELTY"]) for d in src)


def test_a_markdown_digest_cut_short_says_so(tmp_path):
    """A digest that ends between two paper blocks (a download or a copy cut short) lost GPT's later picks
    without a word: they then counted as papers GPT did not pick."""
    text = SEED.read_text()
    cut = tmp_path / "2025-06-23-output.md"
    cut.write_text(text[:text.index("## 31. [")])
    warnings: list[str] = []
    rows = read_scores(cut, warn=warnings.append)
    assert list(rows) == _seed_ids_in_order()[:30]
    assert warnings == [f"{cut}: 30 paper blocks found, but the digest says 47 relevant papers: is it cut short?"]
    said: list[str] = []
    read_scores(SEED, warn=said.append)           # the whole digest says nothing
    assert said == []


def test_a_seed_json_digest_of_only_author_matches_is_a_day_that_picked_nothing(tmp_path):
    """The seed writes an author match as the paper plus COMMENT "Author match" (no RELEVANCE / NOVELTY). A
    day whose JSON digest held only those was 'not a JSON digest', an error, where its Markdown reads as
    a day judged with nothing picked."""
    d = _jsonl(DAYS / "2025-06-23" / "gpt_scores.jsonl")[0]
    entry = {"authors": d["authors"], "title": d["title"], "abstract": d["abstract"], "arxiv_id": d["id"],
             "COMMENT": "Author match", "SCORE": 20.0}
    path = tmp_path / "2025-06-23_output.json"
    path.write_text(json.dumps({d["id"]: entry}, indent=4))
    warnings: list[str] = []
    rows = read_scores(path, warn=warnings.append)
    assert dict(rows) == {} and rows.empty_days == {"2025-06-23"} and warnings == []
    beside = {d["id"]: entry, "2506.16406": {**entry, "arxiv_id": "2506.16406", "COMMENT": "c",
                                             "RELEVANCE": 9, "NOVELTY": 8}}
    path.write_text(json.dumps(beside))                     # beside a pick, as before: the pick only
    assert list(read_scores(path)) == ["2506.16406"]


def test_compare_reads_judgements_from_stdin_and_from_a_shells_pipe(tmp_path):
    """`zcat gpt.jsonl.gz | ranker compare --gpt - ...` and `--gpt <(zcat gpt.jsonl.gz)` (/dev/fd/63, a pipe):
    both were "no such file or directory"; stdin given twice is one line saying it can be read once."""
    import gzip
    import subprocess
    from conftest import RANKER, ranker
    gpt = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    data = gpt.read_bytes()
    gz = tmp_path / "gpt.jsonl.gz"
    gz.write_bytes(gzip.compress(data))
    want = ranker("compare", "--gpt", gpt, "--local", gpt, "--out", tmp_path / "file")
    assert want.returncode == 0, want.stderr
    metrics = json.loads((tmp_path / "file" / "metrics.json").read_text())
    piped = subprocess.run(f"zcat {gz} | {' '.join(RANKER)} compare --gpt - --local {gpt} --out {tmp_path / 'dash'}",
                           shell=True, capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stdout == want.stdout, piped.stderr
    got = json.loads((tmp_path / "dash" / "metrics.json").read_text())
    assert got["gpt_files"] == ["-"]        # what was given, as the store records `--papers -` (not /dev/stdin)
    # report.html says stdin: a bare '-' reads as "none", as in the run index (metrics.json keeps the value given)
    assert "<b>GPT</b>: <code>-</code> (stdin)</p>" in (tmp_path / "dash" / "report.html").read_text()
    assert "(stdin)" not in (tmp_path / "file" / "report.html").read_text()
    assert {k: v for k, v in got.items() if k != "gpt_files"} == {k: v for k, v in metrics.items() if k != "gpt_files"}
    subst = subprocess.run(["bash", "-c", f"{' '.join(RANKER)} compare --gpt <(zcat {gz}) --local {gpt} "
                            f"--out {tmp_path / 'subst'}"], capture_output=True, text=True)
    assert subst.returncode == 0 and subst.stdout == want.stdout, subst.stderr
    twice = subprocess.run([*RANKER, "compare", "--gpt", "-", "--local", "-", "--out", tmp_path / "twice"],
                           input=data, capture_output=True)
    assert twice.returncode == 1 and twice.stderr.decode() == (
        "error: '-' (stdin) is given to --gpt and --local; stdin can be read once: give files for the "
        "others\n")
    assert not (tmp_path / "twice").exists()


def test_the_library_reads_dash_as_stdin_as_its_advice_says(tmp_path):
    """expand_paths advised "'-' for stdin" but only `ranker compare` mapped '-' to /dev/stdin: the library's
    read_score_files(['-']) said "-: no such file or directory"."""
    import subprocess
    import sys
    gpt = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    code = ("import json; from ranker.compare import read_score_files; rows, files = read_score_files(['-']); "
            "print(json.dumps([sorted(rows), [str(f) for f in files]]))")
    r = subprocess.run([sys.executable, "-c", code], input=gpt.read_bytes(), capture_output=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    ids, files = json.loads(r.stdout)
    assert ids == sorted(read_score_files(gpt)[0]) and ids and files == ["/dev/stdin"]


def test_a_listing_and_prefilter_output_from_stdin_or_a_shells_pipe_are_read_whole(tmp_path):
    """`--papers -` and `--prefilter <(zcat ranked.jsonl.gz)`: the check that the file holds no judgements read
    the pipe, and its reader then found it empty ("no papers in this listing", every figure over the listing
    gone, exit 0)."""
    import subprocess
    from conftest import RANKER, ranker
    day = DAYS / "2025-06-23"
    gpt, listing = day / "gpt_scores.jsonl", day / "listing.jsonl"
    ranked = tmp_path / "ranked.jsonl"
    rows = [json.loads(line) for line in listing.read_text().splitlines() if line.strip()]
    ranked.write_text("".join(json.dumps({**r, "prefilter_score": 1 - i / len(rows), "kept": i < len(rows) // 3})
                              + "\n" for i, r in enumerate(rows)))
    want = ranker("compare", "--gpt", gpt, "--local", gpt, "--papers", listing, "--prefilter", ranked,
                  "--out", tmp_path / "file")
    assert want.returncode == 0 and "warning" not in want.stderr, want.stderr
    piped = subprocess.run(["bash", "-c", f"{' '.join(RANKER)} compare --gpt {gpt} --local {gpt} --papers - "
                            f"--prefilter <(cat {ranked}) --out {tmp_path / 'piped'} < <(cat {listing})"],
                           capture_output=True, text=True)
    assert piped.returncode == 0 and "warning" not in piped.stderr, piped.stderr
    assert piped.stdout == want.stdout
    files = ("papers_files", "prefilter_files")
    a, b = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("file", "piped"))
    assert b["papers_files"] == ["-"] and b["prefilter_files"][0].startswith("/dev/fd/")
    assert {k: v for k, v in a.items() if k not in files} == {k: v for k, v in b.items() if k not in files}
    # a pipe of judgements given as the listing is still refused, naming it
    wrong = subprocess.run([*RANKER, "compare", "--gpt", gpt, "--local", gpt, "--papers", "-", "--out",
                            tmp_path / "wrong"], input=gpt.read_bytes(), capture_output=True)
    assert wrong.returncode == 1 and wrong.stderr.decode() == (
        "error: --papers stdin: holds judgements (RELEVANCE, NOVELTY), not a paper listing (every paper of the "
        "day); pass it as --gpt or --local\n")


def test_stdin_by_any_of_its_names_given_twice_is_refused(tmp_path):
    """`--gpt /dev/stdin --local -`: only '-' was counted, so stdin was read twice and the second side found
    empty ("the local side holds no judgement: nothing to compare", exit 0)."""
    import subprocess
    from conftest import RANKER
    gpt = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    for first in ("/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"):
        r = subprocess.run([*RANKER, "compare", "--gpt", first, "--local", "-", "--out", tmp_path / "twice"],
                           input=gpt.read_bytes(), capture_output=True)
        assert r.returncode == 1 and r.stderr.decode() == (
            "error: '-' (stdin) is given to --gpt and --local; stdin can be read once: give files for the "
            "others\n"), (first, r.stderr)
        assert not (tmp_path / "twice").exists()
    # the line named --gpt twice ("--gpt: ... given to --gpt and --local"); one flag given '-' twice leads with it
    r = subprocess.run([*RANKER, "compare", "--gpt", "-", "--gpt", "-", "--local", gpt, "--out", tmp_path / "twice"],
                       input=gpt.read_bytes(), capture_output=True)
    assert r.returncode == 1 and r.stderr.decode() == (
        "error: --gpt: '-' (stdin) is given 2 times; stdin can be read once: give files for the others\n")


def test_compare_names_stdin_what_it_read_and_nothing_else(tmp_path):
    """'-' given, the CLI rewrote every "/dev/stdin" in its lines to "stdin": a file at "my /dev/stdin" was named
    "my stdin", an id holding the words was changed, while the listing's "first at /dev/stdin:1" was missed. The
    readers now take the name: only the file read for '-' is stdin; metrics.json's warnings name it alike, its
    gpt_files record '-', the value given (it was /dev/stdin, named nowhere else)."""
    import subprocess
    from conftest import RANKER
    gpt = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    (tmp_path / "my " / "dev").mkdir(parents=True)
    (tmp_path / "my " / "dev" / "stdin").write_text("hello\n")
    r = subprocess.run([*RANKER, "compare", "--gpt", "my /dev/stdin", "--local", gpt, "--papers", "-", "--out", "c"],
                       input=b"", capture_output=True, cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.decode().startswith("error: --gpt my /dev/stdin: not a digest"), r.stderr
    judged = b'{"ARXIVID": "2506.00001", "RELEVANCE": 5, "NOVELTY": 5}\n{"ARXIVID": "see /dev/stdin now"}\n'
    r = subprocess.run([*RANKER, "compare", "--gpt", "-", "--local", gpt, "--out", "c"], input=judged,
                       capture_output=True, cwd=tmp_path)
    said = "stdin:2: skipped: 'see /dev/stdin now' is not an arXiv id"
    assert r.returncode == 0 and f"warning: {said}\n" in r.stderr.decode(), r.stderr
    metrics = json.loads((tmp_path / "c" / "metrics.json").read_text())
    assert metrics["warnings"] == [said] and metrics["gpt_files"] == ["-"]


@pytest.mark.parametrize("flag", ["--gpt", "--local", "--papers", "--prefilter"])
def test_an_empty_path_is_one_line_naming_the_flag_not_the_current_folder(tmp_path, flag):
    # `--gpt "$F"` with F unset was read as the current folder: every judgement file under it compared, status 0
    day = tmp_path / "2025-06-23"
    shutil.copytree(DAYS / "2025-06-23", day)
    jl = day / "gpt_scores.jsonl"
    res = ranker("compare", "--gpt", jl, "--local", jl, flag, "", "--out", tmp_path / "o", cwd=tmp_path)
    assert res.returncode == 1 and res.stderr == f"error: {flag}: empty; give a value or leave the option out\n", \
        res.stderr
    assert not (tmp_path / "o").exists()


def test_a_named_pipe_or_a_device_is_said_to_be_one_not_missing(tmp_path):
    """A named pipe (mkfifo) or /dev/null given as --gpt was "no such file or directory": it is there. It is
    refused as what it is, without being opened (a named pipe no writer opened would hang the command)."""
    import os
    import subprocess
    from conftest import RANKER
    fifo = tmp_path / "gpt.pipe"
    os.mkfifo(fifo)
    local = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    for given, kind in ((fifo, "a named pipe"), ("/dev/null", "a device")):
        r = subprocess.run([*RANKER, "compare", "--gpt", str(given), "--local", str(local), "--out", "cmp"],
                           capture_output=True, cwd=tmp_path, stdin=subprocess.DEVNULL, timeout=60)
        assert r.returncode == 1 and r.stderr.decode() == (
            f"error: --gpt {given}: not a regular file or a folder but {kind}; give a file, a folder, '-' for stdin "
            "or a shell's pipe (<(command))\n"), r.stderr
        assert not (tmp_path / "cmp").exists()
    with pytest.raises(InputError, match="a named pipe"):
        read_score_files([fifo])


def test_a_judgement_file_none_of_whose_lines_is_one_is_refused_in_one_line_as_on_stdin(tmp_path):
    """`--gpt garbage.jsonl`: a warning a line, then "nothing to do" (status 0), where the same lines through
    `--gpt -` were an error (status 1). Bad input either way: one line naming it, nothing written. An empty file
    (a day judged, nothing picked) stays "nothing to do"; a damaged file beside one that is read, a warning."""
    import subprocess
    from conftest import RANKER
    local = DAYS / "2025-06-23" / "gpt_scores.jsonl"
    garbage = tmp_path / "gpt_scores.jsonl"
    garbage.write_text('garbage\n{"x": 1}\nnot json\n')
    out = tmp_path / "out"
    r = ranker("compare", "--gpt", garbage, "--local", local, "--out", out)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"error: --gpt {garbage}: holds no judgement (the first problem: line 1: not valid "
        "JSON (Expecting value))"], r.stderr
    r = subprocess.run([*RANKER, "compare", "--gpt", "-", "--local", local, "--out", out],
                       input=garbage.read_bytes(), capture_output=True)
    assert r.returncode == 1 and len(r.stderr.decode().splitlines()) == 1 and \
        r.stderr.decode().startswith("error: --gpt stdin: "), r.stderr
    assert not out.exists()
    (tmp_path / "ids.jsonl").write_text('{"x": 1}\n')
    with pytest.raises(InputError, match="the first problem: line 1: no arXiv id"):
        read_score_files(tmp_path / "ids.jsonl", warn=pytest.fail)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = ranker("compare", "--gpt", empty, "--local", local, "--out", out)
    assert r.returncode == 0 and r.stderr.startswith("nothing to do: the GPT side") and not out.exists()
    with pytest.raises(InputError):                 # nothing read beside it, not even a day (no date in its path)
        read_score_files([empty, garbage])
    dated = tmp_path / "2025-06-24" / "gpt_scores.jsonl"    # a day judged, nothing picked: stays in, as README says
    dated.parent.mkdir()
    dated.write_text("")
    said: list[str] = []
    rows, _ = read_score_files([dated, garbage], warn=said.append)
    assert not rows and rows.empty_days == {"2025-06-24"}
    assert said[0] == f"{garbage}:1: skipped line: not valid JSON (Expecting value)", said
    cut = tmp_path / "cut.md"          # a digest cut short before its papers: nothing was skipped, so no "skipped"
    cut.write_text("Total relevant papers: 3\n\n")
    with pytest.raises(InputError) as e:
        read_score_files(cut)
    assert "skipped" not in str(e.value), str(e.value)
    warned: list[str] = []
    rows, _ = read_score_files([garbage, local], warn=warned.append)
    assert len(rows) == 47 and warned[0] == f"{garbage}:1: skipped line: not valid JSON (Expecting value)"
