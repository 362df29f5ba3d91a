import json

import pytest

from ranker.digest import TokenCost, pick_papers, render_json, render_markdown
from ranker.prompts import load_prompts
from ranker.records import Paper, Score

from conftest import DAYS, SEED_DIGEST


def _gpt_day(day):
    rows = [json.loads(line) for line in (DAYS / day / "gpt_scores.jsonl").open()]
    papers = {r["id"]: Paper(id=r["id"], title=r["title"], abstract=r["abstract"], authors=r["authors"])
              for r in rows}
    scores = {r["id"]: Score(r["id"], r["RELEVANCE"], r["NOVELTY"], r["COMMENT"]) for r in rows}
    return papers, scores


def test_markdown_reproduces_the_seed_digest_from_gpts_scores():
    papers, scores = _gpt_day("2025-06-23")
    md = render_markdown("2025-06-23", pick_papers(scores, papers),
                         usage=TokenCost("gpt-4o", 46938, 6268, 0.12, 0.06), total_papers=809,
                         scanned_papers=496, prompts=load_prompts())
    assert md.rstrip("\n") == SEED_DIGEST.read_text().rstrip("\n")


def test_cutoffs_and_order():
    papers = {i: Paper(id=i, title=i, abstract="", authors=[]) for i in "abcd"}
    scores = {"a": Score("a", 8, 7, ""), "b": Score("b", 10, 9, ""), "c": Score("c", 9, 6, ""),
              "d": Score("d", 7, 10, "")}
    assert [s.paper.id for s in pick_papers(scores, papers)] == ["b", "a"]
    assert [s.paper.id for s in pick_papers(scores, papers, min_relevance=7, min_novelty=6)] == ["b", "d", "c", "a"]
    # the expected value breaks ties between equal integer sums
    scores["a2"] = Score("a2", 8, 7, "", expected_relevance=8.4, expected_novelty=7.2)
    papers["a2"] = Paper(id="a2", title="", abstract="", authors=[])
    assert [s.paper.id for s in pick_papers(scores, papers)] == ["b", "a2", "a"]


def test_a_tie_in_score_goes_to_relevance_before_the_expected_values():
    """The seed orders equal SCOREs by RELEVANCE (every tied pair of the 50 shared days); a score mode with
    expected values kept that order only when they happened to agree."""
    papers = {i: Paper(id=i, title=i, abstract="", authors=[]) for i in ("8-8", "9-7")}
    scores = {"8-8": Score("8-8", 8, 8, "", expected_relevance=8.3, expected_novelty=7.6),
              "9-7": Score("9-7", 9, 7, "", expected_relevance=8.7, expected_novelty=6.9)}
    assert [s.paper.id for s in pick_papers(scores, papers)] == ["9-7", "8-8"]
    seen = 0
    for day in sorted(p.name for p in DAYS.iterdir() if (p / "gpt_scores.jsonl").exists()):
        ps, sc = _gpt_day(day)
        rows = [json.loads(line) for line in (DAYS / day / "gpt_scores.jsonl").open()]
        for a, b in zip(rows, rows[1:]):
            if a["SCORE"] == b["SCORE"]:
                assert a["RELEVANCE"] >= b["RELEVANCE"], (day, a["id"], b["id"])
                seen += 1
    assert seen


def test_json_has_the_seed_shape():
    papers, scores = _gpt_day("2025-05-15")
    out = render_json(pick_papers(scores, papers))
    assert len(out) == len(scores)
    v = next(iter(out.values()))
    assert set(v) == {"SCORE", "ARXIVID", "COMMENT", "RELEVANCE", "NOVELTY", "authors", "title", "abstract",
                      "arxiv_id"}
    assert v["SCORE"] == v["RELEVANCE"] + v["NOVELTY"]


# --------------------------------------------------------------------------- outside text in the digest
# What a title, an author list, an abstract or a model's comment might carry into a Markdown site. Each must
# render as the very text it is: no HTML, no link, no image, no emphasis or code it did not have.
ATTACKS = {
    "script": "<script>alert(1)</script>",
    "img onerror": '<img src=x onerror="alert(1)">',
    "svg onload": "<svg onload=alert(1)>",
    "iframe": '<iframe src="javascript:alert(1)"></iframe>',
    "link": "[Click](javascript:alert(1))",
    "link to a site": "[Log in again](https://evil.example/login)",
    "image": "![x](https://evil.example/x.png)",
    "autolink": "<javascript:alert(1)>",
    "autolink to a site": "<https://evil.example/login>",
    "reference": "[a]: https://evil.example and [a]",
    "closing the title's link": "x](javascript:alert(1)) [y",
    "entity": "&#60;script&#62;alert(1)&lt;/script&gt;",
    "emphasis": "a *b* and __c__ and ~~d~~",
    "code": "`rm -rf` and ``x``",
    "a lone backtick": "Learning with `torch.compile",
    "backslash before a bracket": "\\[Click\\](javascript:alert(1))",
    "new block": "line one\n# Heading\n<div>x</div>",
}


def _render(md: str):
    from markdown_it import MarkdownIt
    return MarkdownIt("commonmark", {"html": True}).enable("strikethrough").parse(md)


def _inline(tokens):
    for t in tokens:
        yield t
        yield from _inline(t.children or [])


def _digest_of(title, authors, abstract, comment, pid="2506.00001"):
    from ranker.digest import Selected
    sel = [Selected(Paper(id=pid, title=title, abstract=abstract, authors=authors), Score(pid, 9, 8, comment))]
    return render_markdown("2025-06-23", sel, usage=TokenCost("local"), total_papers=1, scanned_papers=1,
                           prompts=load_prompts())


def _field_text(tokens, label: str) -> str:
    """The text a field renders as: the inline content after '**Label:**'."""
    for t in tokens:
        if t.type == "inline" and t.content.startswith(f"**{label}:**"):
            kids = t.children
            i = next(k for k, c in enumerate(kids) if c.type == "strong_close")
            return "".join(c.content if c.type in ("text", "code_inline") else " " if c.type == "softbreak" else ""
                           for c in kids[i + 1:]).strip()
    raise AssertionError(f"no {label} field")


@pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))
def test_outside_text_renders_as_itself(attack):
    text = f"Safe {attack} end"
    md = _digest_of(text, [f"Eve {attack}", "Bob"], text, text)
    papers = md[md.index("**Table of contents"):md.index("# Paper Selection Prompt")]   # the outside text's part
    tokens = _render(papers)
    kinds = {t.type for t in _inline(tokens)}
    assert not kinds & {"html_block", "image", "em_open", "s_open", "code_inline", "code_block"}, md
    html = [t.content for t in _inline(tokens) if t.type == "html_inline"]
    assert html == ['<a id="link1">', "</a>"]                 # only the digest's own anchor
    links = [t.attrs.get("href") for t in _inline(tokens) if t.type == "link_open"]
    assert links == ["#user-content-link1", "https://arxiv.org/abs/2506.00001"]   # only the digest's own
    shown = " ".join(text.split())                        # one line: a line break shows as a space
    assert _field_text(tokens, "Abstract") == shown and _field_text(tokens, "Comment") == shown
    assert _field_text(tokens, "Authors") == " ".join(f"Eve {attack}, Bob".split())
    title = [t for t in _inline(tokens) if t.type == "text" and t.content.startswith("Safe")]
    assert len(title) == 2 and all(t.content.strip() == shown for t in title), md


def test_links_are_built_only_from_valid_ids():
    for pid in ("javascript:alert(1)", "2506.00001vEVIL", "../../etc/passwd", "2506.00001)(x"):
        md = _digest_of("T", ["A"], "x", "y", pid=pid)
        hrefs = [t.attrs.get("href") for t in _inline(_render(md)) if t.type == "link_open"]
        assert hrefs == ["#user-content-link1"], (pid, md)
    md = _digest_of("T", ["A"], "x", "y", pid="cs/0501001")
    assert "(https://arxiv.org/abs/cs/0501001)" in md


def test_nul_and_bidi_controls_never_reach_the_store_or_the_digest(tmp_path):
    from ranker.sources import read_papers
    from ranker.store import Store
    evil = "Good\u202eevil\u2066x\u2069 paper\x00 title"
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"id": "2506.00001", "title": evil, "abstract": f"A {evil}",
                             "authors": [f"Eve{chr(0x202d)} X"], "categories": ["cs.LG"]}) + "\n")
    p = next(read_papers(f))
    assert p.title == "Goodevilx paper title" and p.authors == ["Eve X"]
    with Store(tmp_path / "db.sqlite3") as s:
        s.add_papers([Paper(id="2506.00002", title=evil, abstract=evil, authors=[evil])])     # given directly
        stored = s.get_paper("2506.00002")
    assert stored.title == stored.abstract == stored.authors[0] == "Goodevilx paper title"
    md = _digest_of(evil, [evil], evil, evil)
    assert not any(c in md for c in "\x00\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def test_ordinary_text_is_unchanged():
    """Titles, abstracts and GPT's comments of the shared days: the escaping touches only what would act."""
    from ranker.digest import md_text
    rows = [json.loads(line) for day in ("2025-06-23", "2025-07-02") for line in (DAYS / day / "gpt_scores.jsonl").open()]
    plain = [r[k] for r in rows for k in ("title", "abstract", "COMMENT") if not set(r[k]) & set("<>&\n")]
    assert len(plain) > 100
    changed = [t for t in plain if md_text(t) != t]
    assert len(changed) <= len(plain) // 50, changed[:3]


def test_a_pinned_authors_pick_is_listed_once_and_author_matches_are_not_counted_as_relevant():
    """A pick by a pinned author is there on merit, once; a pinned author's paper that is no pick is an author
    match: the 'Total relevant papers' line counts the picks alone, the matches have their own line."""
    from ranker.digest import author_matches
    papers = {i: Paper(id=i, title=f"T {i}", abstract="", authors=["Ada"]) for i in ("2506.00001", "2506.00002")}
    scores = {"2506.00001": Score("2506.00001", 9, 8, "good"), "2506.00002": Score("2506.00002", 3, 3, "meh")}
    picks = pick_papers(scores, papers)
    matches = author_matches({i: ["Ada"] for i in papers}, picks, scores, papers)
    assert [s.paper.id for s in picks] == ["2506.00001"]
    assert [(s.paper.id, s.comment) for s in matches] == [("2506.00002", "Author match")]
    md = render_markdown("2025-06-23", matches + picks, usage=TokenCost("local"), total_papers=2,
                         scanned_papers=2, prompts=load_prompts(), author_matches=len(matches))
    assert "Total relevant papers: 1\n" in md and "Total author matches: 1\n" in md


def test_an_id_given_as_a_link_or_with_a_prefix_gets_no_link():
    """Only a bare id is linked: an id still carrying 'arXiv:' or a whole URL would make a link to
    arxiv.org/abs/arXiv:... or arxiv.org/abs/https://..., built from text the digest did not validate as an id."""
    for pid in ("arXiv:2506.00001", "https://arxiv.org/abs/2506.00001", "https://arxiv.org/abs/2506.00001?x=](y)"):
        md = _digest_of("T", ["A"], "x", "y", pid=pid)
        hrefs = [t.attrs.get("href") for t in _inline(_render(md)) if t.type == "link_open"]
        assert hrefs == ["#user-content-link1"], (pid, md)
