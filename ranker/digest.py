"""Scores + papers -> the digest, in the seed system's Markdown and JSON formats.

The picks (RELEVANCE and NOVELTY at or above the cut-offs) come best first, ties in the prefilter's order, so
a rerun writes the same digest. Papers by a pinned author that are not picks come first, marked as the seed
marks them ("Comment: Author match"; their scores shown when they were scored), and are counted on their own
line. The token table shows what the digest's scores cost when the model wrote them, reused ones included.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .prompts import PromptSet, seed_user_prompt
from .records import Paper, Score


AUTHOR_MATCH = "Author match"       # the seed's COMMENT for a paper in the digest for its authors


@dataclass
class Selected:
    paper: Paper
    score: Score | None                                  # None: an author match that was not scored
    author_match: list[str] = field(default_factory=list)   # the pinned authors it is there for (not a pick)
    # the same paper announced earlier under another id: {"id", "date", "cosine"} and, when the store has
    # them for the same model and prompt, that paper's "RELEVANCE" and "NOVELTY"
    reupload_of: dict | None = None

    @property
    def comment(self) -> str:
        return AUTHOR_MATCH if self.author_match else (self.score.comment if self.score else "")


@dataclass
class TokenCost:
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_cost: float = 0.0
    completion_cost: float = 0.0


def ranking_key(s: Score) -> tuple:
    """RELEVANCE + NOVELTY first (the seed's SCORE); the expected values, when known, break ties finely."""
    exp = ((s.expected_relevance or s.relevance) + (s.expected_novelty or s.novelty))
    return (s.total, exp, s.relevance)


def pick_papers(scores: dict[str, Score], papers: dict[str, Paper], *, min_relevance: int = 8,
                min_novelty: int = 7, order: list[str] | None = None) -> list[Selected]:
    """Keep RELEVANCE >= min_relevance and NOVELTY >= min_novelty; best first, ties in `order` (the
    prefilter's: best first; by default the scores' own order), so the same scores always give the same
    digest."""
    pos = {i: n for n, i in enumerate(order if order is not None else scores)}
    keep = [Selected(papers[i], s) for i, s in scores.items()
            if i in papers and s.relevance >= min_relevance and s.novelty >= min_novelty]
    keep.sort(key=lambda x: (tuple(-v for v in ranking_key(x.score)), pos.get(x.paper.id, len(pos)), x.paper.id))
    return keep


def author_matches(pinned: dict[str, list[str]], picks: list[Selected], scores: dict[str, Score],
                   papers: dict[str, Paper], order: list[str] | None = None) -> list[Selected]:
    """The pinned authors' papers that are not picks, in `order` (the prefilter's), each marked with the
    pinned names it is there for."""
    picked = {s.paper.id for s in picks}
    pos = {i: n for n, i in enumerate(order or [])}
    ids = sorted((i for i in pinned if i in papers and i not in picked), key=lambda i: (pos.get(i, len(pos)), i))
    return [Selected(papers[i], scores.get(i), author_match=list(pinned[i])) for i in ids]


def _table(rows: list[list[str]]) -> str:
    """A centred pipe table laid out like the seed's (pandas/tabulate 'pipe' style)."""
    widths = [max(len(r[c]) for r in rows) + 2 for c in range(len(rows[0]))]
    def line(r):
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(r, widths)) + " |"
    sep = "|" + "|".join(":" + "-" * w + ":" for w in widths) + "|"
    return "\n".join([line(rows[0]), sep] + [line(r) for r in rows[1:]])


def _quote(text: str) -> str:
    return "\n".join("> " + line for line in text.splitlines())


def render_markdown(day: str, selected: list[Selected], *, usage: TokenCost, total_papers: int,
                    scanned_papers: int, prompts: PromptSet, scores_shown: int | None = None,
                    author_matches: int | None = None) -> str:
    """The seed's Markdown. `scores_shown`: how many scores the token table counts (a line under the table
    says what the figures are); `author_matches`: the count of author-match entries (its line is shown when
    the user has pinned authors)."""
    total = usage.prompt_tokens + usage.completion_tokens
    cost = usage.prompt_cost + usage.completion_cost
    picks = sum(1 for s in selected if not s.author_match)
    out = [f"# Personalized Daily ArXiv Papers {day}", "",
           _table([[f"*[{usage.model}]*", "Prompt", "Completion", "Total"],
                   ["**Token**", str(usage.prompt_tokens), str(usage.completion_tokens), str(total)],
                   ["**Cost**", f"${usage.prompt_cost:.2f}", f"${usage.completion_cost:.2f}", f"${cost:.2f}"]]),
           ""]
    if scores_shown:
        out += [f"Tokens and cost: what the {scores_shown} scores of this digest cost when the model wrote them "
                "(a rerun reuses stored scores and spends nothing).", ""]
    out += [f"Total arXiv papers: {total_papers}", "", f"Total scanned papers: {scanned_papers}", "",
            f"Total relevant papers: {picks}", ""]
    if author_matches is not None:
        out += [f"Total author matches: {author_matches}", ""]
    out += ["**Table of contents with paper titles:**", ""]
    for n, s in enumerate(selected, start=1):
        out += [f"{n}. [{s.paper.title}](#user-content-link{n})", f"**Authors:** {', '.join(s.paper.authors)}", ""]
    out += ["---", ""]
    for n, s in enumerate(selected, start=1):
        out += [f"## {n}. [{s.paper.title}]({s.paper.url}) <a id=\"link{n}\"></a>", "",
                f"**ArXiv ID:** {s.paper.id}", "", *_reupload_lines(s),
                f"**Authors:** {', '.join(s.paper.authors)}", "",
                f"**Abstract:** {s.paper.abstract}", "", f"**Comment:** {s.comment}", ""]
        if s.score is not None:
            out += [f"**Relevance:** {s.score.relevance}", f"**Novelty:** {s.score.novelty}", ""]
        out += ["---", ""]
    out += ["# Paper Selection Prompt", "", "## System Prompt", "", _quote(prompts.system), "",
            "## User Prompt", "", _quote(seed_user_prompt(prompts))]
    return "\n".join(out) + "\n"


def _reupload_lines(s: Selected) -> list[str]:
    r = s.reupload_of
    if not r:
        return []
    then = ""
    if r.get("RELEVANCE") is not None and r.get("NOVELTY") is not None:
        then = f" (scored then: Relevance {r['RELEVANCE']}, Novelty {r['NOVELTY']})"
    return [f"**Note:** also announced as [{r['id']}](https://arxiv.org/abs/{r['id']}) on {r['date']}{then}", ""]


def render_json(selected: list[Selected]) -> dict:
    """The seed's JSON output: an object keyed by arXiv id, in the digest's order. An author match carries
    COMMENT "Author match", the pinned names as `author_match`, and its scores when it was scored (else
    null); a paper announced earlier under another id carries "reupload_of"."""
    out = {}
    for s in selected:
        sc = s.score
        entry = {"SCORE": sc.total if sc else None, "ARXIVID": s.paper.id, "COMMENT": s.comment,
                 "RELEVANCE": sc.relevance if sc else None, "NOVELTY": sc.novelty if sc else None,
                 "authors": s.paper.authors, "title": s.paper.title, "abstract": s.paper.abstract,
                 "arxiv_id": s.paper.id}
        if s.author_match:
            entry["author_match"] = list(s.author_match)
        if s.reupload_of:
            entry["reupload_of"] = s.reupload_of
        out[s.paper.id] = entry
    return out
