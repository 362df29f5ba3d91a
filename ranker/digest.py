"""Scores + papers -> the digest, in the seed system's Markdown and JSON formats.

The picks (RELEVANCE and NOVELTY at or above the cut-offs) come best first (SCORE, then RELEVANCE, as the seed
orders them), remaining ties in the prefilter's order, so a rerun writes the same digest. Papers by a pinned author that are not picks come first, marked as the seed
marks them ("Comment: Author match"; their scores shown when they were scored), and are counted on their own
line. The token table shows what the digest's scores cost when the model wrote them, reused ones included.

Everything in the Markdown that comes from outside (a paper's title, authors, abstract and id, the model's
comment and name) goes through `md_text`, so a digest published on GitHub Pages or any Markdown site shows
that text and nothing else: no HTML, no link, no image. Links are built only from validated arXiv ids.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from .io import clean_text, parse_arxiv_id
from .prompts import PromptSet, seed_user_prompt
from .records import MIN_NOVELTY, MIN_RELEVANCE, Paper, Score


AUTHOR_MATCH = "Author match"       # the seed's COMMENT for a paper in the digest for its authors


@dataclass
class Selected:
    """One entry of a digest: a paper and its Score, there as a pick, or for the pinned authors it matches
    (`author_match`); `reupload_of` when it is an earlier paper announced again."""
    paper: Paper
    score: Score | None                                  # None: an author match that was not scored
    author_match: list[str] = field(default_factory=list)   # the pinned authors it is there for (not a pick)
    pinned: list[str] = field(default_factory=list)         # a pick's pinned authors (it is there on merit)
    # the same paper announced earlier under another id: {"id", "date", "cosine"} and, when the store has
    # them for the same model and prompt, that paper's "RELEVANCE" and "NOVELTY"
    reupload_of: dict | None = None

    @property
    def comment(self) -> str:
        return AUTHOR_MATCH if self.author_match else (self.score.comment if self.score else "")


@dataclass
class TokenCost:
    """The tokens a digest's scores took and their price in US dollars (backends.pricing: $0 for a local
    model)."""
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    prompt_cost: float = 0.0
    completion_cost: float = 0.0


def ranking_key(s: Score) -> tuple:
    """RELEVANCE + NOVELTY first (the seed's SCORE), then RELEVANCE (the seed's digests order every tie so:
    48 of 48 tied pairs over the 50 shared days); the expected values, when known, break what is left."""
    exp = ((s.expected_relevance or s.relevance) + (s.expected_novelty or s.novelty))
    return (s.total, s.relevance, exp)


def pick_papers(scores: dict[str, Score], papers: dict[str, Paper], *, min_relevance: int = MIN_RELEVANCE,
                min_novelty: int = MIN_NOVELTY, order: list[str] | None = None) -> list[Selected]:
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


_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")           # &amp; &#60; ... would render as another character
_BACKTICKS = re.compile(r"`+")
_LINE_BREAK = re.compile(r"\r\n|[\r\n]")


def _punct(ch: str) -> bool:
    return bool(ch) and unicodedata.category(ch)[0] in "PS"


def _delimiters_that_act(text: str, c: str) -> bool:
    """Do runs of `c` (*, _ or ~) in `text` pair up into emphasis / strike-through? CommonMark's flanking
    rules: a run that can open followed later by one that can close."""
    opened = False
    for m in re.finditer(re.escape(c) + "+", text):
        before = text[m.start() - 1] if m.start() else " "
        after = text[m.end()] if m.end() < len(text) else " "
        left = not after.isspace() and (not _punct(after) or before.isspace() or _punct(before))
        right = not before.isspace() and (not _punct(before) or after.isspace() or _punct(after))
        if c == "_":          # no emphasis inside words
            can_open, can_close = left and (not right or _punct(before)), right and (not left or _punct(after))
        else:
            can_open, can_close = left, right
        if opened and can_close:
            return True
        opened = opened or can_open
    return False


_LINK_TAIL = re.compile(r"\][(\[:]")                    # [text](url), [text][ref], [ref]: url


def md_text(text: object, *, link_text: bool = False) -> str:
    """Text from outside as Markdown that renders as the same text, on one line. What could become markup is
    escaped: < and > (raw HTML, autolinks), an &-entity, [ and ] where a link or image could form (or always,
    with link_text, for text inside a link's brackets), and *, _, ~ or backticks where they would pair into
    emphasis, strike-through or code; a backslash before an escaped character stays a backslash. Line breaks
    become spaces; NUL, control and bidi-control characters are dropped. Ordinary text (a usual title,
    abstract with its [5] citations, or comment) comes back unchanged."""
    text = _LINE_BREAK.sub(" ", clean_text(str(text)))
    escaped = {c for c in "*_~" if c in text and _delimiters_that_act(text, c)}
    if link_text or _LINK_TAIL.search(text):
        escaped |= {"[", "]"}
    runs = [len(r) for r in _BACKTICKS.findall(text)]
    if runs and (link_text or any(runs.count(n) >= 2 for n in set(runs))):
        escaped.add("`")          # a link's text shares its paragraph: a lone ` could pair with one after it
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            out.append("\\\\" if nxt in escaped or nxt in "\\<>&" else ch)
        elif ch in escaped:
            out.append("\\" + ch)
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch == "&" and _ENTITY.match(text, i):
            out.append("&amp;")
        else:
            out.append(ch)
    return "".join(out)


_UNESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])|&(lt|gt|amp);")


def md_unescape(text: str) -> str:
    """The text a Markdown field shows: backslash escapes of punctuation and &lt; &gt; &amp; undone (the
    inverse of md_text, for readers of digests)."""
    return _UNESCAPE.sub(lambda m: m.group(1) or {"lt": "<", "gt": ">", "amp": "&"}[m.group(2)], text)


def paper_link(arxiv_id: str) -> str | None:
    """The paper's arXiv page, for a valid id (a bare one, as the store keeps them); None otherwise."""
    parsed = parse_arxiv_id(arxiv_id)
    if parsed is None or parsed[0] != arxiv_id:
        return None
    return f"https://arxiv.org/abs/{arxiv_id}"


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
    model = md_text(usage.model).replace("|", "\\|")
    out = [f"# Personalized Daily ArXiv Papers {day}", "",
           _table([[f"*[{model}]*", "Prompt", "Completion", "Total"],
                   ["**Token**", str(usage.prompt_tokens), str(usage.completion_tokens), str(total)],
                   ["**Cost**", f"${usage.prompt_cost:.2f}", f"${usage.completion_cost:.2f}", f"${cost:.2f}"]]),
           ""]
    if scores_shown:          # a comment: the rendered digest stays the seed's, the file says what the table is
        out += [f"<!-- Tokens and cost: what the {scores_shown} scores of this digest cost when the model wrote "
                "them (a rerun reuses stored scores and spends nothing). -->", ""]
    out += [f"Total arXiv papers: {total_papers}", "", f"Total scanned papers: {scanned_papers}", "",
            f"Total relevant papers: {picks}", ""]
    if author_matches is not None:
        out += [f"Total author matches: {author_matches}", ""]
    out += ["**Table of contents with paper titles:**", ""]
    for n, s in enumerate(selected, start=1):
        out += [f"{n}. [{md_text(s.paper.title, link_text=True)}](#user-content-link{n})",
                f"**Authors:** {md_text(', '.join(s.paper.authors))}", ""]
    out += ["---", ""]
    for n, s in enumerate(selected, start=1):
        title, link = md_text(s.paper.title, link_text=True), paper_link(s.paper.id)
        out += [f"## {n}. {f'[{title}]({link})' if link else title} <a id=\"link{n}\"></a>", "",
                f"**ArXiv ID:** {md_text(s.paper.id)}", "", *_reupload_lines(s),
                f"**Authors:** {md_text(', '.join(s.paper.authors))}", "",
                f"**Abstract:** {md_text(s.paper.abstract)}", "", f"**Comment:** {md_text(s.comment)}", ""]
        if s.score is not None:
            out += [f"**Relevance:** {s.score.relevance}", f"**Novelty:** {s.score.novelty}", ""]
        out += ["---", ""]
    out += ["# Paper Selection Prompt", "", "## System Prompt", "", _quote(prompts.system), "",
            "## User Prompt", "", _quote(seed_user_prompt(prompts))]
    return "\n".join(out) + "\n"


def _reupload_lines(s: Selected) -> list[str]:
    """The note under a re-upload: where the same paper was announced before (and its scores then), escaped
    like every other text of the digest."""
    r = s.reupload_of
    if not r:
        return []
    then = ""
    if r.get("RELEVANCE") is not None and r.get("NOVELTY") is not None:
        then = f" (scored then: Relevance {md_text(r['RELEVANCE'])}, Novelty {md_text(r['NOVELTY'])})"
    rid = str(r.get("id", ""))
    link = paper_link(rid)
    ref = f"[{md_text(rid, link_text=True)}]({link})" if link else md_text(rid)
    return [f"**Note:** also announced as {ref} on {md_text(r.get('date', ''))}{then}", ""]


def render_json(selected: list[Selected]) -> dict:
    """The seed's JSON output: an object keyed by arXiv id, in the digest's order. An author match carries
    COMMENT "Author match", the pinned names as `author_match`, and its scores when it was scored (else
    null); a pick by a pinned author carries the names as `pinned_authors`; a paper announced earlier under
    another id carries "reupload_of"."""
    out = {}
    for s in selected:
        sc = s.score
        entry = {"SCORE": sc.total if sc else None, "ARXIVID": s.paper.id, "COMMENT": s.comment,
                 "RELEVANCE": sc.relevance if sc else None, "NOVELTY": sc.novelty if sc else None,
                 "authors": s.paper.authors, "title": s.paper.title, "abstract": s.paper.abstract,
                 "arxiv_id": s.paper.id}
        if s.author_match:
            entry["author_match"] = list(s.author_match)
        if s.pinned:
            entry["pinned_authors"] = list(s.pinned)
        if s.reupload_of:
            entry["reupload_of"] = s.reupload_of
        out[s.paper.id] = entry
    return out
