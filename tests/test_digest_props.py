"""Properties of the digest as its readers see it: whatever a paper's title, authors, abstract or the model's
comment carry (Markdown's own characters, backslashes, line breaks, pipes, unicode), a digest written by
render_markdown / render_json reads back (ranker.compare.readers) as the same papers with the same scores."""
from __future__ import annotations

import json
import re

from hypothesis import HealthCheck, given, settings, strategies as st

from ranker.compare.readers import read_scores
from ranker.io import clean_text
from ranker.digest import Selected, TokenCost, render_json, render_markdown
from ranker.prompts import load_prompts
from ranker.records import Paper, Score

PROPS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
PROMPTS = load_prompts()

# what outside text is made of: Markdown's and HTML's characters, backslashes, line breaks of every kind, a
# field's own label, and any unicode
_PIECES = st.sampled_from(["*", "_", "~", "`", "[", "]", "(", ")", "<", ">", "&", "#", "!", "|", "\\", "$", "%",
                           "{", "}", ":", "\n", "\r\n", "\r", "\u2028", "\u0085", "\x0c", "\t", " ", "---", "## ",
                           "# ", "**Relevance:** 1", "**ArXiv ID:** 2501.00001", "](https://arxiv.org/abs/2501.00002)",
                           "<a id=\"x\">", "&amp;", "Author match", "1. ", "> ", "é", "\u202e", "\x00"])
TEXT = st.lists(st.one_of(_PIECES, st.text(max_size=6)), max_size=12).map("".join)
NEW_ID = st.builds(lambda y, m, n: f"{y:02d}{m:02d}.{n:05d}", st.integers(15, 29), st.integers(1, 12),
                   st.integers(0, 99999))
OLD_ID = st.builds(lambda a, n: f"{a}/{n:07d}", st.sampled_from(["cs", "math.GT", "hep-th", "cond-mat.stat-mech"]),
                   st.integers(0, 9999999))


@st.composite
def digests(draw):
    ids = draw(st.lists(st.one_of(NEW_ID, OLD_ID), min_size=1, max_size=5, unique=True))
    selected = []
    for pid in ids:
        paper = Paper(id=pid, title=draw(TEXT), abstract=draw(TEXT), authors=draw(st.lists(TEXT, max_size=3)))
        match = draw(st.lists(TEXT.filter(bool), max_size=2))
        scored = not match or draw(st.booleans())
        score = Score(pid, draw(st.integers(0, 10)), draw(st.integers(0, 10)), draw(TEXT)) if scored else None
        selected.append(Selected(paper, score, author_match=match))
    return selected


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _shown(text):
    return re.sub(r"\r\n|[\r\n]", " ", clean_text(text)).strip()


def _expected(selected):
    return {s.paper.id: (s.score.relevance, s.score.novelty, bool(s.author_match))
            for s in selected if s.score is not None}


@PROPS
@given(selected=digests())
def test_a_markdown_digest_reads_back_as_its_papers_and_scores(tmp_path, selected):
    md = render_markdown("2025-06-23", selected, usage=TokenCost("local|model"), total_papers=len(selected),
                         scanned_papers=len(selected), prompts=PROMPTS,
                         author_matches=sum(1 for s in selected if s.author_match))
    warnings = []
    rows = read_scores(_write(tmp_path, "2025-06-23-output.md", md), warn=warnings.append)
    assert {i: (r.relevance, r.novelty, r.author_match) for i, r in rows.items()} == _expected(selected), md
    assert not warnings, warnings
    assert all(r.date == "2025-06-23" for r in rows.values())
    for s in selected:       # the text the digest shows: one line, controls dropped (a backslash may escape)
        if s.score is not None and "\\" not in s.comment + s.paper.title:
            assert rows[s.paper.id].comment == _shown(s.comment) and rows[s.paper.id].title == _shown(s.paper.title)


@PROPS
@given(selected=digests())
def test_a_json_digest_reads_back_as_its_papers_scores_comments_and_titles(tmp_path, selected):
    text = json.dumps(render_json(selected), indent=2, ensure_ascii=False) + "\n"     # as steps.py writes it
    warnings = []
    rows = read_scores(_write(tmp_path, "2025-06-23-output.json", text), warn=warnings.append)
    assert {i: (r.relevance, r.novelty, r.author_match) for i, r in rows.items()} == _expected(selected)
    assert not warnings, warnings
    for s in selected:
        if s.score is not None:
            assert rows[s.paper.id].comment == s.comment and rows[s.paper.id].title == s.paper.title
