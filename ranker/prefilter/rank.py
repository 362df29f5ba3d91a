"""The zero-shot prefilter score: how close a paper sits to what the prompt's topics ask for.

The query set is built from the prompt's topics file, so a user edits one place:
  - each topic's description ("Name: Relevant line"),
  - each item of a topic's Relevant line, prefixed by the topic's name ("Model Compression: pruning"),
  - each relevant keyword.
  - each application keyword ("Medical Imaging", "Time Series"): the prompt's "avoid purely application-driven
    work", a query that counts against a paper.
Each query fires for a paper by how far the paper's cosine to it sits above the day's 70th percentile for that
query; a paper's score is the mean firing over the topic and relevant-keyword queries, z-scored within the day,
less APPLICATION_WEIGHT times the (z-scored) mean firing of the application queries, plus TITLE_BONUS when one
of the prompt's relevant keywords appears in its title (the seed's scoring criteria tell GPT to score a paper
highest when its title carries a topic keyword). Chosen on all 50 shared days (every day is unseen by a score
that learns nothing; scripts/eval_walkforward.py prints the alternatives): against the median-centred mean
alone it lifts AUC 0.832 -> 0.837 and lowers keep95 0.591 -> 0.569; the category neighbourhood (each paper
nudged by how on-topic the day's papers of its primary category are) then 0.837 -> 0.843 and 0.569 -> 0.550,
and the application queries 0.843 -> 0.847 and 0.550 -> 0.532.
The max over queries or topics, topic-balanced means, power means, per-query z-scores, removing the day's mean
direction, TF-IDF overlap with the topics and a prior on the number of authors did not hold across the days.
The prompt's Irrelevant keywords (reinforcement learning, diffusion models ...) and Irrelevant lines as negative
queries did not hold (GPT still picks foundational work on those). Earlier, on five days: title vectors and
BM25 lowered recall.

Its best-matching topic is the topic whose own queries (description + items) it is closest to on average.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..prompts import PromptSet, Topic
from ..records import Paper

_EG = re.compile(r"\((?:e\.g\.|i\.e\.|like|such as)\s*,?\s*", re.I)


def _relevant_items(text: str) -> list[str]:
    """The comma-separated items of a Relevant line, with brackets' content kept with its item."""
    text = _EG.sub("(", text.strip().rstrip("."))
    parts, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if ch in ",;" and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    out = []
    for p in parts:
        p = re.sub(r"^\s*(?:and|or)\s+", "", p.strip(), flags=re.I)
        p = re.sub(r"\s*\(\s*\)", "", p).strip(" .")
        if p and p.lower() not in ("etc", "etc."):
            out.append(p)
    return out


# The quantile of the day's cosines to a query above which the query fires (0.5-0.8 all within 0.01 of keep95
# on the 50 shared days; 0.7 is the middle of that plateau).
FIRING_QUANTILE = 0.7
# Added to the day-z-scored firing score when a relevant keyword is in the title (0.25-1.0 measure the same).
TITLE_BONUS = 0.5
# The category neighbourhood: each paper also gets this weight times the (z-scored) mean score of the papers that
# share its primary category among those ranked, the mean shrunk towards the mean of all of them as if
# CATEGORY_PRIOR_PAPERS more papers of average score were in the category. On the 50 shared days every weight
# from 0.1 to 0.3 and every shrinkage from 0 to 20 papers lowers keep95 from 0.569 to 0.549-0.557 (mpnet: 0.546
# to 0.530); 0.2 and 5 sit in the middle.
CATEGORY_WEIGHT = 0.2
CATEGORY_PRIOR_PAPERS = 5.0
# Subtracted per unit of the (z-scored) mean firing of the application keywords. On the 50 shared days every
# weight from 0.05 to 0.2 lowers keep95 (0.550 -> 0.532-0.537; mpnet 0.530 -> 0.514-0.521) and raises recall@40;
# 0.1 is the middle. Applied before the category neighbourhood, which then reads the lowered scores.
APPLICATION_WEIGHT = 0.1
# topic_of's marks for the queries that belong to no topic
KEYWORD = -1
APPLICATION = -2


@dataclass
class QuerySet:
    texts: list[str]
    topic_of: list[int]                 # index into topic_names; KEYWORD, APPLICATION for the keyword lists
    topic_names: list[str] = field(default_factory=list)
    title_terms: list[str] = field(default_factory=list)   # relevant keywords, matched in titles

    def title_pattern(self) -> "re.Pattern | None":
        """The relevant keywords as one case-insensitive pattern: whole-word start, hyphens and spaces alike,
        any ending ("Foundation Model" matches "foundation models", "Low-rank" matches "low rank")."""
        alts = sorted({r"[\s-]+".join(re.escape(w) for w in re.split(r"[\s-]+", t.strip()) if w)
                       for t in self.title_terms if t.strip()}, key=len, reverse=True)
        return re.compile(r"\b(?:" + "|".join(alts) + ")", re.I) if alts else None

    def __len__(self) -> int:
        return len(self.texts)

    def digest(self) -> str:
        """A short hash of what the zero-shot score is measured against (the query texts and title keywords): a
        calibration records the one it was fit under."""
        import hashlib
        text = "\0".join(self.texts) + "\0\0" + "\0".join(self.title_terms)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def build_queries(prompts: PromptSet) -> QuerySet:
    topics: list[Topic] = prompts.topics
    if not topics:
        raise InputError("the topics file has no topics", where=prompts.source)
    texts: list[str] = []
    owner: list[int] = []
    for i, t in enumerate(topics):
        name = t.name.strip()
        if not name and not t.relevant.strip():
            raise InputError(f"topic {t.number} has no text", where=prompts.source)
        texts.append(t.description)
        owner.append(i)
        items = _relevant_items(t.relevant)
        if len(items) > 1:            # a one-item line is the description again
            for it in items:
                texts.append(f"{name}: {it}" if name else it)
                owner.append(i)
    terms: list[str] = []
    for kw in prompts.keywords.relevant:
        if kw.strip():
            texts.append(kw.strip())
            owner.append(KEYWORD)
            # "Mixture of Experts (MoE)" -> "Mixture of Experts", "MoE"; "Sparse/Sparsity" -> both
            terms += [part.strip() for part in re.split(r"[/()]", kw) if len(part.strip()) >= 2]
    for kw in prompts.keywords.application:
        if kw.strip() and kw.strip() not in texts:
            texts.append(kw.strip())
            owner.append(APPLICATION)
    names = [t.name.strip() or f"topic {t.number}" for t in topics]
    return QuerySet(texts=texts, topic_of=owner, topic_names=names, title_terms=list(dict.fromkeys(terms)))


def _z(v: np.ndarray) -> np.ndarray:
    """v z-scored; zeros when every value is the same (nothing to tell apart)."""
    sd = v.std()
    return (v - v.mean()) / sd if sd > 1e-12 else np.zeros(len(v))


def category_neighbourhood(score: np.ndarray, primary: Sequence[str],
                           prior_papers: float = CATEGORY_PRIOR_PAPERS) -> np.ndarray:
    """Per paper: the mean `score` of the papers sharing its primary category, shrunk towards the mean of all
    the papers by `prior_papers`, then z-scored over the papers; zeros when every paper gets the same."""
    keys = np.unique(np.asarray([c or "" for c in primary]), return_inverse=True)[1]
    sums = np.bincount(keys, weights=np.asarray(score, dtype=np.float64) - float(np.mean(score)))
    counts = np.bincount(keys)
    return _z((sums / (counts + prior_papers))[keys])


def query_firing(paper_vecs: np.ndarray, query_vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cosines, firing), each (papers, queries): how far each paper's cosine to each query sits above the
    FIRING_QUANTILE of that query's cosines over these papers, zero below it. In float64, so a day's figures do
    not depend on the order its papers come in."""
    sims = np.asarray(paper_vecs, dtype=np.float64) @ np.asarray(query_vecs, dtype=np.float64).T
    return sims, np.maximum(sims - np.quantile(sims, FIRING_QUANTILE, axis=0, keepdims=True), 0.0)


def zero_shot(paper_vecs: np.ndarray, query_vecs: np.ndarray, qs: QuerySet,
              titles: Sequence[str] | None = None,
              primary: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(score per paper, best topic index per paper).

    Each query acts as a detector: it fires for a paper by how much the paper's cosine to it exceeds the
    day's FIRING_QUANTILE cosine for it (a typical paper of the papers being ranked), and not at all below
    that. A paper's score is the mean firing over the topic and relevant-keyword queries. Centring each query
    on the day removes what every paper shares with it (a broad query such as "Foundation Model" is close to
    half of cs.LG), and the floor at zero keeps a paper's distance from the facets it is not about from pulling
    down the facets it is about. The mean is z-scored within the papers being ranked; the application queries'
    mean firing, z-scored too, takes away APPLICATION_WEIGHT times itself (a medical-imaging paper sinks a
    little); a title holding a relevant keyword adds TITLE_BONUS (no titles given: no bonus). With `primary`
    (each paper's primary arXiv category), the score adds CATEGORY_WEIGHT times its category neighbourhood: a
    paper from a category whose papers sit on the topics today (cs.LG for most ML topics) rises a little, one
    from a category that is off-topic today sinks.
    It needs no labels, so it follows whatever topics the user wrote."""
    if len(paper_vecs) == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=int)
    owner = np.asarray(qs.topic_of)
    sims, firing = query_firing(paper_vecs, query_vecs)
    on = owner != APPLICATION
    # the plain mean cosine, scaled far below any firing difference, only orders papers that fire nowhere
    score = _z(firing[:, on].mean(axis=1) + 1e-4 * sims[:, on].mean(axis=1))
    if (~on).any():
        score = score - APPLICATION_WEIGHT * _z(firing[:, ~on].mean(axis=1))
    pattern = qs.title_pattern() if titles is not None else None
    if pattern is not None:
        score = score + TITLE_BONUS * np.array([1.0 if pattern.search(t or "") else 0.0 for t in titles])
    if primary is not None:
        score = score + CATEGORY_WEIGHT * category_neighbourhood(score, primary)
    per_topic = np.stack([sims[:, owner == i].mean(axis=1) for i in range(len(qs.topic_names))], axis=1)
    return score.astype(np.float32), per_topic.argmax(axis=1)


def zero_shot_papers(paper_vecs: np.ndarray, query_vecs: np.ndarray, qs: QuerySet,
                     papers: Sequence[Paper]) -> tuple[np.ndarray, np.ndarray]:
    """zero_shot of one day's papers with everything it reads of them (titles, primary categories): how the
    prefilter, calibration and the backfill score a day."""
    return zero_shot(paper_vecs, query_vecs, qs, [p.title for p in papers], [p.primary for p in papers])
