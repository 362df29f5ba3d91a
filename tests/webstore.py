"""A store for the web tests, filled by the real pipeline (run_day) with the fake backend on a real shared day.

The prefilter needs vectors; a fast test must load no model, so the vectors of the papers and of the topic queries
are put in the store beforehand (conftest.store_vectors), under an embedder name of their own ("test-vectors"):
run_day finds every vector cached and loads nothing. Their values are pseudo-random, so the ranking is arbitrary
but deterministic; the slow test uses the real MiniLM instead.
"""
from __future__ import annotations

from pathlib import Path

from ranker.backends.fake import FakeBackend
from ranker.records import Paper, Score
from ranker.settings import resolve
from ranker.sources import read_papers
from ranker.steps import fetch_day, run_day
from ranker.store import Store

from conftest import DAYS, store_vectors

EMBEDDER = "test-vectors"
DAY = "2025-05-15"
OTHER_DAY = "2025-07-02"
HOSTILE_TITLE = "<script>window.__pwned=1</script>Hostile <b>title</b>"
HOSTILE_IMG = '<img src=x onerror="window.__pwned=2">'
HOSTILE_ID = "2505.99001"


def seed_vectors(store: Store, papers: list[Paper]) -> None:
    store_vectors(store, papers, embedder=EMBEDDER, dim=16)


def hostile_papers(day: str = DAY) -> list[Paper]:
    return [Paper(id=HOSTILE_ID, title=HOSTILE_TITLE, abstract=f"An abstract with {HOSTILE_IMG} inside. Hostile.",
                  authors=["Mallory <script>window.__pwned=3</script>"], categories=["cs.LG"],
                  primary_category="cs.LG", date=day)]


def day_papers(day: str = DAY, n: int | None = None, hostile: bool = True) -> list[Paper]:
    papers = list(read_papers(DAYS / day / "listing.jsonl"))[:n]
    return papers + (hostile_papers(day) if hostile else [])


def fill_store(db: Path, out: Path, *, days=(DAY,), n: int | None = None, hostile: bool = True) -> dict:
    """Run each day through the steps (fetch_day + run_day; fake backend, pre-stored vectors); the hostile paper
    also gets a hostile comment under the day's digest model and prompt. Returns {day: DayResult}."""
    settings = resolve(flags={"embedder": EMBEDDER, "backend": "fake", "model": "test", "db": db})
    results = {}
    with Store(db) as store:
        for date in days:
            papers = day_papers(date, n, hostile and date == DAY)
            seed_vectors(store, papers)
            day = fetch_day(papers, settings, store=store)
            results[date] = run_day(day, out, settings, store=store, backend=FakeBackend("test"))
            if hostile and date == DAY:
                g = store.get_day_digest(date)
                store.put_score(Score(HOSTILE_ID, 9, 9, f"Comment {HOSTILE_IMG}<script>window.__pwned=4</script>"),
                                g.model, g.prompt_hash)
    return results
