"""A store for the web tests, filled by the real pipeline (run_day) with the fake backend on a real shared day.

The prefilter needs vectors; a fast test must load no model, so the vectors of the papers and of the topic queries
are put in the store beforehand, under an embedder name of their own ("test-vectors"), the way the embedder's
cache keeps them: run_day finds every vector cached and loads nothing. Their values are pseudo-random (from a
hash of the text), so the ranking is arbitrary but deterministic; the slow test uses the real MiniLM instead.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ranker.backends.fake import FakeBackend
from ranker.config import Config
from ranker.pipeline import run_day
from ranker.prefilter.embed import QUERY_PREFIX, paper_text, text_hash
from ranker.prefilter.rank import build_queries
from ranker.prompts import load_prompts
from ranker.records import Paper, Score
from ranker.sources import read_papers
from ranker.store import Store

from conftest import DAYS

EMBEDDER = "test-vectors"
DAY = "2025-05-15"
HOSTILE_TITLE = "<script>window.__pwned=1</script>Hostile <b>title</b>"
HOSTILE_IMG = '<img src=x onerror="window.__pwned=2">'
HOSTILE_ID = "2505.99001"


def _vec(text: str, dim: int = 16) -> np.ndarray:
    h = hashlib.sha256(text.encode("utf-8")).digest()
    v = np.frombuffer(h[:dim * 2], dtype=np.int16).astype(np.float32)
    return v / (np.linalg.norm(v) or 1.0)


def seed_vectors(store: Store, papers: list[Paper]) -> None:
    qs = build_queries(load_prompts())
    rows = []
    for t in qs.texts:
        t = " ".join(t.split())
        rows.append((QUERY_PREFIX + text_hash(t), text_hash(t), _vec(t)))
    for p in papers:
        t = paper_text(p)
        rows.append((p.id, text_hash(t), _vec(t)))
    store.put_embeddings(rows, EMBEDDER)


def hostile_papers(day: str = DAY) -> list[Paper]:
    return [Paper(id=HOSTILE_ID, title=HOSTILE_TITLE, abstract=f"An abstract with {HOSTILE_IMG} inside. Hostile.",
                  authors=["Mallory <script>window.__pwned=3</script>"], categories=["cs.LG"],
                  primary_category="cs.LG", date=day)]


def day_papers(day: str = DAY, n: int | None = None, hostile: bool = True) -> list[Paper]:
    papers = list(read_papers(DAYS / day / "listing.jsonl"))[:n]
    return papers + (hostile_papers(day) if hostile else [])


def fill_store(db: Path, out: Path, *, days=(DAY,), n: int | None = None, hostile: bool = True) -> dict:
    """Run the pipeline on each day (fake backend, pre-stored vectors); the hostile paper also gets a hostile
    comment under the day's digest model and prompt. Returns {day: DayResult}."""
    cfg = Config()
    cfg.prefilter.embedder = EMBEDDER
    results = {}
    with Store(db) as store:
        for day in days:
            papers = day_papers(day, n, hostile and day == DAY)
            seed_vectors(store, papers)
            results[day] = run_day(papers, out, cfg, store=store, backend=FakeBackend("test"))
            if hostile and day == DAY:
                g = store.get_day_digest(day)
                store.put_score(Score(HOSTILE_ID, 9, 9, f"Comment {HOSTILE_IMG}<script>window.__pwned=4</script>"),
                                g.model, g.prompt_hash)
    return results
