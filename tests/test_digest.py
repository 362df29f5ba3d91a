import json

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


def test_json_has_the_seed_shape():
    papers, scores = _gpt_day("2025-05-15")
    out = render_json(pick_papers(scores, papers))
    assert len(out) == len(scores)
    v = next(iter(out.values()))
    assert set(v) == {"SCORE", "ARXIVID", "COMMENT", "RELEVANCE", "NOVELTY", "authors", "title", "abstract",
                      "arxiv_id"}
    assert v["SCORE"] == v["RELEVANCE"] + v["NOVELTY"]
