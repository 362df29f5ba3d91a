"""`ranker serve` on a store filled the way `make run` fills it (the bundled day, the real MiniLM prefilter; the fake
backend stands in for the LLM, which `make run` runs for minutes): the bundled day is there, search goes by
meaning with MiniLM, and the README's screenshot of the day page is taken here."""
from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request

import pytest

from ranker.records import DayDigest, Score
from ranker.store import Store

from conftest import REPO, ranker
from webtools import browser, chromium_path, have_playwright, start_server

pytestmark = pytest.mark.slow
DAY = "2025-05-15"
BUNDLED = REPO / "ranker" / "data" / DAY
SCREENSHOT = REPO / "docs" / "day-page.png"   # the README's picture: rewritten only with RANKER_SCREENSHOT=1


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=120) as r:
        return r.read().decode("utf-8")


def test_serve_shows_the_bundled_day_searches_by_meaning_and_takes_the_screenshot(tmp_path):
    db = tmp_path / "ranker.sqlite3"
    r = ranker("run", "--papers", BUNDLED / "listing.jsonl", "--out", tmp_path / "out", "--offline",
               "--backend", "fake", "--db", db)
    assert r.returncode == 0, r.stderr[-2000:]
    manifest = json.loads((tmp_path / "out" / f"{DAY}-run.json").read_text())
    digest = json.loads((tmp_path / "out" / f"{DAY}-output.json").read_text())

    server = start_server(db, tmp_path / "serve.log")
    try:
        home = _get(server.url + "/")
        assert f'href="/day/{DAY}"' in home and "May 2025" in home
        day = _get(f"{server.url}/day/{DAY}")
        assert f"{manifest['counts']['papers']} papers" in day
        assert f"<b>{len(digest)} digest picks</b>" in day
        for pid in digest:
            assert f'id="p-{pid}"' in day
        # by meaning: MiniLM's vectors are in the store, so the query is embedded and compared with them
        found = _get(server.url + "/search?q=robots+learning+to+grasp+objects")
        assert "by meaning (minilm embeddings)" in found
        # ...through the corpus index, which `ranker run` built: a paper's own title finds it first
        assert (db.parent / "faiss" / "minilm").is_dir()
        paper = json.loads((BUNDLED / "listing.jsonl").read_text().splitlines()[7])
        found = _get(server.url + "/search?" + urllib.parse.urlencode({"q": paper["title"]}))
        first = found.index('href="/paper/')
        assert found[first:].startswith(f'href="/paper/{paper["id"]}"'), found[first:first + 80]
        words = _get(server.url + "/search?q=robots+learning+to+grasp+objects&mode=words")
        assert "by words" in words

        # The README's screenshot: the day's digest shown with GPT-4o's published scores of the bundled day (what a
        # run with `--backend openai --model gpt-4o` stores), over MiniLM's real ranking, and one thumbs up.
        with Store(db) as s:
            g = s.get_day_digest(DAY)
            for line in (BUNDLED / "gpt_scores.jsonl").read_text().splitlines():
                d = json.loads(line)
                s.put_score(Score(d["id"], d["RELEVANCE"], d["NOVELTY"], d["COMMENT"]), "gpt-4o", g.prompt_hash)
            s.put_day_digest(DayDigest(DAY, "gpt-4o", g.prompt_hash, 8, 7))
        if chromium_path() is None or not have_playwright():
            pytest.skip("no chromium/playwright: no screenshot")
        with browser() as b:
            page = b.new_page(viewport={"width": 1100, "height": 1500})
            page.goto(f"{server.url}/day/{DAY}")
            first = page.locator("section.picks article.paper").nth(1)
            first.locator("button.up").click()
            from playwright.sync_api import expect
            expect(first.locator("button.up")).to_have_attribute("aria-pressed", "true")
            page.reload()
            assert page.locator("section.picks article.paper").count() >= 5
            shot = SCREENSHOT if os.environ.get("RANKER_SCREENSHOT") == "1" else tmp_path / "day-page.png"
            shot.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(shot))
        assert shot.stat().st_size > 50_000
    finally:
        server.stop()
