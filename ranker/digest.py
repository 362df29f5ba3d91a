"""Scores + papers -> the digest, in the seed system's Markdown and JSON formats."""
from __future__ import annotations

from dataclasses import dataclass

from .prompts import PromptSet, seed_user_prompt
from .records import Paper, Score


@dataclass
class Selected:
    paper: Paper
    score: Score
    # the same paper announced earlier under another id: {"id", "date", "cosine"} and, when the store has
    # them for the same model and prompt, that paper's "RELEVANCE" and "NOVELTY"
    reupload_of: dict | None = None


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
                min_novelty: int = 7) -> list[Selected]:
    """Keep RELEVANCE >= min_relevance and NOVELTY >= min_novelty; best first."""
    keep = [Selected(papers[i], s) for i, s in scores.items()
            if i in papers and s.relevance >= min_relevance and s.novelty >= min_novelty]
    keep.sort(key=lambda x: ranking_key(x.score), reverse=True)
    return keep


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
                    scanned_papers: int, prompts: PromptSet) -> str:
    total = usage.prompt_tokens + usage.completion_tokens
    cost = usage.prompt_cost + usage.completion_cost
    out = [f"# Personalized Daily ArXiv Papers {day}", "",
           _table([[f"*[{usage.model}]*", "Prompt", "Completion", "Total"],
                   ["**Token**", str(usage.prompt_tokens), str(usage.completion_tokens), str(total)],
                   ["**Cost**", f"${usage.prompt_cost:.2f}", f"${usage.completion_cost:.2f}", f"${cost:.2f}"]]),
           "", f"Total arXiv papers: {total_papers}", "", f"Total scanned papers: {scanned_papers}", "",
           f"Total relevant papers: {len(selected)}", "", "**Table of contents with paper titles:**", ""]
    for n, s in enumerate(selected, start=1):
        out += [f"{n}. [{s.paper.title}](#user-content-link{n})", f"**Authors:** {', '.join(s.paper.authors)}", ""]
    out += ["---", ""]
    for n, s in enumerate(selected, start=1):
        out += [f"## {n}. [{s.paper.title}]({s.paper.url}) <a id=\"link{n}\"></a>", "",
                f"**ArXiv ID:** {s.paper.id}", "", *_reupload_lines(s),
                f"**Authors:** {', '.join(s.paper.authors)}", "",
                f"**Abstract:** {s.paper.abstract}", "", f"**Comment:** {s.score.comment}", "",
                f"**Relevance:** {s.score.relevance}", f"**Novelty:** {s.score.novelty}", "", "---", ""]
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
    """The seed's JSON output: an object keyed by arXiv id, best first (plus "reupload_of" for a paper
    announced earlier under another id)."""
    out = {}
    for s in selected:
        out[s.paper.id] = {"SCORE": s.score.total, "ARXIVID": s.paper.id, "COMMENT": s.score.comment,
                           "RELEVANCE": s.score.relevance, "NOVELTY": s.score.novelty,
                           "authors": s.paper.authors, "title": s.paper.title, "abstract": s.paper.abstract,
                           "arxiv_id": s.paper.id}
        if s.reupload_of:
            out[s.paper.id]["reupload_of"] = s.reupload_of
    return out
