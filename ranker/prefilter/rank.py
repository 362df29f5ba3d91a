"""The zero-shot prefilter score: how close a paper sits to what the prompt's topics ask for.

The query set is built from the prompt's topics file, so a user edits one place:
  - each topic's description ("Name: Relevant line"),
  - each item of a topic's Relevant line, prefixed by the topic's name ("Model Compression: pruning"),
  - each relevant keyword.
A paper's score is its mean cosine similarity to all queries (equivalently: its cosine to the sum of the query
vectors). The mean rewards a paper close to several facets of the user's interests and is steadier from day to
day than the max over topics. Measured on five GPT-4o days (scripts/eval_prefilter.py), it beats max-cosine to
the topic descriptions; the Irrelevant lines, the irrelevant/application keywords (as negative queries),
title weighting and a BM25 signal all lowered recall of GPT's picks, so they are not used (see DESIGN notes in
scripts/eval_prefilter.py).

Its best-matching topic is the topic whose own queries (description + items) it is closest to on average.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..prompts import PromptSet, Topic

_EG = re.compile(r"\((?:e\.g\.|i\.e\.|like|such as)\s*,?\s*", re.I)


def _items(text: str) -> list[str]:
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


@dataclass
class QuerySet:
    texts: list[str]
    topic_of: list[int]                 # index into topic_names, -1 for a keyword
    topic_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.texts)


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
        items = _items(t.relevant)
        if len(items) > 1:            # a one-item line is the description again
            for it in items:
                texts.append(f"{name}: {it}" if name else it)
                owner.append(i)
    for kw in prompts.keywords.relevant:
        if kw.strip():
            texts.append(kw.strip())
            owner.append(-1)
    names = [t.name.strip() or f"topic {t.number}" for t in topics]
    return QuerySet(texts=texts, topic_of=owner, topic_names=names)


def zero_shot(paper_vecs: np.ndarray, query_vecs: np.ndarray, qs: QuerySet) -> tuple[np.ndarray, np.ndarray]:
    """(score per paper, best topic index per paper).

    Each query acts as a detector: it fires for a paper by how much the paper's cosine to it exceeds the
    median cosine of the papers being ranked (the day's typical paper), and not at all below that. A paper's
    score is the mean firing over all queries. Centring each query on the day removes what every paper shares
    with it (a broad query such as "Foundation Model" is close to half of cs.LG), and the floor at zero keeps
    a paper's distance from the facets it is not about from pulling down the facets it is about."""
    if len(paper_vecs) == 0:
        return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=int)
    sims = paper_vecs @ query_vecs.T                       # (papers, queries)
    firing = np.maximum(sims - np.median(sims, axis=0, keepdims=True), 0.0)
    # the plain mean cosine, scaled far below any firing difference, only orders papers that fire nowhere
    score = firing.mean(axis=1) + 1e-4 * sims.mean(axis=1)
    owner = np.asarray(qs.topic_of)
    per_topic = np.stack([sims[:, owner == i].mean(axis=1) for i in range(len(qs.topic_names))], axis=1)
    return score.astype(np.float32), per_topic.argmax(axis=1)
