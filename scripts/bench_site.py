"""`ranker site` as a daily user runs it: after each day's run, over a store of many days. Prints, for each ranker
source tree given (the one here by default; an older checkout's to compare), the seconds of a site built from
scratch, of a rebuild with nothing changed and of the rebuild after one new day, with the pages rendered and the
files written by each; with two trees, whether their sites are byte for byte the same.

    python scripts/bench_year.py make --from ../shared/data/days --out /tmp/year/days --cycles 2
    python scripts/bench_year.py fill --history /tmp/year/days --home /tmp/year/home --upto 60
    python scripts/bench_site.py --history /tmp/year/days --home /tmp/year/home --day 60 /tmp/old .

The store in --home is copied for each tree (the new day, day --day of the history, 0-based, is run into the
copy: fetch_day + run_day with the fake LLM, its vectors stored first, so no model is loaded), so every tree
starts from the same store. Each build is its own process (a cold start, as `ranker site`).
"""
from __future__ import annotations

import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_year
from script_cli import Parser    # a usage error: one line, status 1

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

_BUILD = """
import json, sys, time
from ranker.store import Store
from ranker.web.site import build_site
t = time.perf_counter()
with Store(sys.argv[1]) as s:
    r = build_site(s, sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - t, "written": len(r.written), "unchanged": r.unchanged,
                  "rendered": getattr(r, "rendered", r.days + r.papers), "days": r.days, "papers": r.papers}))
"""

_RUN_DAY = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[4])
import bench_year
bench_year.fill(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) + 1, vectors_of=int(sys.argv[3]))
"""


def _py(code: Path, script: str, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(code), "RANKER_OFFLINE": "1"}
    # run in a folder of its own: `python -c` puts the working folder first on sys.path, before PYTHONPATH, so
    # the ranker there (this checkout's, when run from it) was imported whatever tree was asked for
    with tempfile.TemporaryDirectory(prefix="bench-site-cwd-") as cwd:
        p = subprocess.run([sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, cwd=cwd)
    if p.returncode:
        raise SystemExit(f"{code}: {p.stderr.strip()[-2000:]}")
    return p.stdout


def build(code: Path, db: Path, out: Path, label: str) -> dict:
    r = json.loads(_py(code, _BUILD, str(db), str(out)).strip().splitlines()[-1])
    print(f"  {label:<34} {r['seconds']:7.2f} s  {r['rendered']:6d} pages rendered  {r['written']:6d} files written"
          f"  ({r['days']} days, {r['papers']} papers)", flush=True)
    return r


def bench(code: Path, history: Path, home: Path, day: int, work: Path) -> Path:
    copy = work / "home"
    shutil.copytree(home, copy, symlinks=True)
    db = copy / "ranker.sqlite3"
    site = work / "site"
    print(f"{code}:", flush=True)
    build(code, db, site, "site from scratch")
    build(code, db, site, "rebuild, nothing changed")
    _py(REPO, _RUN_DAY, str(history), str(copy), str(day), str(Path(__file__).resolve().parent))
    build(code, db, site, "rebuild after one new day")
    build(code, db, site, "rebuild after it, nothing changed")
    return site


def same(a: Path, b: Path) -> list[str]:
    """The files that differ between two sites (the build state of each left out)."""
    differ = []
    cmp = filecmp.dircmp(a, b, ignore=[".ranker-site-pages"])
    stack = [("", cmp)]
    while stack:
        rel, c = stack.pop()
        differ += [f"{rel}{n}" for n in c.left_only + c.right_only + c.diff_files + c.funny_files]
        stack += [(f"{rel}{n}/", sub) for n, sub in c.subdirs.items()]
    return differ


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    bench_year.home_arguments(ap)
    ap.add_argument("code", type=Path, nargs="*", default=[REPO], help="ranker source trees (default: this one)")
    a = ap.parse_args()
    sites = []
    with tempfile.TemporaryDirectory(prefix="bench-site-") as tmp:
        for i, code in enumerate(a.code):
            work = Path(tmp) / str(i)
            work.mkdir()
            sites.append(bench(code.resolve(), a.history, a.home, a.day, work))
        if len(sites) == 2:
            differ = same(*sites)
            print(f"the two sites: {'identical' if not differ else f'{len(differ)} files differ, e.g. {differ[:5]}'}")


if __name__ == "__main__":
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main))   # a RankerError: one line, status 1
