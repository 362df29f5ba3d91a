"""How the web pages scale: a store of many real days (the fake backend stands in for the LLM), then the time to
build the static site (cold and again), its size, and the time `ranker serve` takes to answer each kind of page.

    python scripts/bench_web.py --history ../shared/data/days --db /tmp/web-bench/ranker.sqlite3 \
        --vectors-from ../cache/history-embeddings.sqlite3 --site /tmp/web-bench/site

--vectors-from copies an existing store's MiniLM vectors first (read only), so no day is embedded again; without
it the days are embedded with MiniLM (minutes on a CPU).
"""
from __future__ import annotations

import sqlite3
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(1, str(Path(__file__).resolve().parent))      # script_cli
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)

from ranker.io import counted  # noqa: E402
from ranker.settings import resolve  # noqa: E402
from ranker.steps import fetch_day, run_day  # noqa: E402
from ranker.store import Store  # noqa: E402


def copy_vectors(src: Path, db: Path, embedder: str) -> int:
    c = sqlite3.connect(f"file:{src}?mode=ro", uri=True)         # the source is only read
    rows = c.execute("SELECT paper_id, embedder, text_hash, dim, vector FROM embeddings WHERE embedder=?",
                     (embedder,)).fetchall()
    c.close()
    with Store(db) as s:
        with s.transaction() as t:
            t.executemany("INSERT OR REPLACE INTO embeddings VALUES (?,?,?,?,?)", rows)
    return len(rows)


def timed(fn, n: int = 5) -> tuple[float, object]:
    ts, out = [], None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    ap.add_argument("--history", type=Path, required=True)
    ap.add_argument("--db", type=Path, required=True)
    ap.add_argument("--vectors-from", type=Path)
    ap.add_argument("--site", type=Path)
    ap.add_argument("--days", type=int, default=0, help="only the first N days (0: all)")
    a = ap.parse_args()
    a.db.parent.mkdir(parents=True, exist_ok=True)
    s = resolve(flags={"db": a.db, "backend": "fake", "model": "bench"})
    if a.vectors_from:
        print(f"vectors copied: {copy_vectors(a.vectors_from, a.db, s.prefilter.embedder)}")
    day_dirs = sorted(d for d in a.history.iterdir() if (d / "listing.jsonl").exists())
    if a.days:
        day_dirs = day_dirs[:a.days]
    t0 = time.perf_counter()
    n_papers = 0
    with Store(a.db) as store:
        for d in day_dirs:
            day = fetch_day(d / "listing.jsonl", s, store=store)
            n_papers += len(day.papers)
            run_day(day, a.db.parent / "out", s, store=store)       # the fake LLM: settings say so
    print(f"store: {counted(len(day_dirs), 'day')}, {counted(n_papers, 'paper')} through run_day (fake LLM) in "
          f"{time.perf_counter() - t0:.1f} s")

    from ranker.web.site import build_site
    if a.site:
        with Store(a.db) as store:
            t = time.perf_counter()
            r1 = build_site(store, a.site)
            cold = time.perf_counter() - t
            t = time.perf_counter()
            r2 = build_site(store, a.site)
            warm = time.perf_counter() - t
        size = sum(p.stat().st_size for p in a.site.rglob("*") if p.is_file())
        months = [p.stat().st_size for p in (a.site / "static" / "search").glob("????-??.js")]
        index = sum(months) + (a.site / "static" / "search" / "index.js").stat().st_size
        print(f"site: {r1.pages} files, {size / 1e6:.1f} MB (search index {index / 1e6:.1f} MB, {counted(len(months), 'month')},"
              f" the largest {max(months, default=0) / 1e6:.1f} MB); "
              f"built in {cold:.1f} s; rebuilt in {warm:.1f} s with {len(r2.written)} files written")

    from fastapi.testclient import TestClient
    from ranker.web.app import create_app
    client = TestClient(create_app(s), base_url="http://127.0.0.1")
    with Store(a.db) as store:
        days = store.days()
        biggest = max(store.day_summaries(), key=lambda d: d["papers"])
        pid = store.get_rankings(biggest["day"])[0].paper_id
    pages = [("archive", "/"), (f"month {days[-1][:7]}", f"/month/{days[-1][:7]}"),
             (f"day {biggest['day']} ({biggest['papers']} papers)", f"/day/{biggest['day']}"),
             ("paper", f"/paper/{pid}"), ("search by words", "/search?q=diffusion+model&mode=words"),
             ("labels", "/labels")]
    for name, path in pages:
        sec, resp = timed(lambda: client.get(path))
        assert resp.status_code == 200, (path, resp.status_code)
        print(f"serve {name}: {sec * 1000:.0f} ms, {len(resp.content) / 1e3:.0f} kB")
    t = time.perf_counter()
    resp = client.get("/search?q=robots+learning+to+grasp&mode=meaning")
    first = time.perf_counter() - t
    sec, resp = timed(lambda: client.get("/search?q=sparse+attention+for+long+context&mode=meaning"))
    assert "by meaning" in resp.text
    print(f"serve search by meaning: first {first:.1f} s (loads the embedder), then {sec * 1000:.0f} ms")


if __name__ == "__main__":
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main))   # a RankerError: one line, status 1
