"""The memory of a user's commands as the home grows: peak RSS of each command a workstation user runs, for each
ranker source tree given (the one here by default; an older checkout's to compare, in the same run), over one
store, and `ranker serve`'s resident memory after its start, after every page kind and over rounds of many pages
and searches (a server that grows round after round holds what it should let go).

    python scripts/bench_year.py make --from ../shared/data/days --out /tmp/year/days --cycles 5
    python scripts/bench_year.py fill --history /tmp/year/days --home /tmp/year/home --upto 49
    python scripts/bench_memory.py --history /tmp/year/days --home /tmp/year/home --day 49 /tmp/old .

Day --day of the history (0-based) is the new day `ranker run` ranks: fill it with its vectors stored first
(bench_year.py measure does; `fill --upto N` stores the days before N only, and the run then loads MiniLM to
embed it). The store in --home is copied for each tree, so every tree starts from the same store. Each command
is its own process (its peak RSS as the kernel counts it, os.wait4, as /usr/bin/time -v: the largest process of its
tree); serve's figures are read from /proc (VmRSS now, VmHWM its peak) of the server and its children.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import bench_year
from script_cli import Parser, one_line    # a usage error, a path given that cannot be read: one line, status 1

REPO = Path(__file__).resolve().parent.parent

COMMANDS = ("run", "site", "site again", "index status", "index rebuild", "similar id", "similar text", "eval",
            "calibrate", "serve")


def peak_of(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, int, str]:
    """(peak RSS in MB, wall seconds, exit status, the last line it wrote to stderr) of one command."""
    secs, mb, rc, _, stderr = bench_year.timed(cmd, env, cwd)
    own = stderr.strip().splitlines()
    return mb, secs, rc, (own[-1] if own else "")


def proc_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MB of a process and its children, summed (a child's figures are its own)."""
    import psutil
    now = peak = 0.0
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan"), float("nan")
    for p in procs:
        try:
            status = Path(f"/proc/{p.pid}/status").read_text()
        except OSError:
            continue
        now += int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        peak += int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024
    return now, peak


def _get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=300) as r:
            return r.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{url}: {e.code}") from None


def serve_rounds(cmd: list[str], env: dict, cwd: Path, port: int, days: list[str], papers: list[str],
                 words: list[str], rounds: int) -> list[tuple[str, float, float]]:
    """[(stage, RSS MB, peak MB), ...] of one server: started, every page kind once, then `rounds` rounds of 100
    paper pages, 30 day pages and 40 searches (words, meaning and both), each round other pages and queries."""
    proc = subprocess.Popen([*cmd, "serve", "--port", str(port)], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    out = []
    try:
        for _ in range(1200):
            try:
                _get(base + "/labels.json")
                break
            except Exception:
                if proc.poll() is not None:
                    raise SystemExit(f"serve ended ({proc.returncode}) before it answered")
                time.sleep(0.1)
        out.append(("started", *proc_mb(proc.pid)))
        for path in ("/", f"/month/{days[-1][:7]}", f"/day/{days[-1]}", f"/paper/{papers[0]}", "/labels",
                     "/labels.json", "/search?q=diffusion+model&mode=words",
                     "/search?q=sparse+attention+for+long+context&mode=meaning", "/search?q=graph+neural+networks"):
            _get(base + path)
        out.append(("every page kind once", *proc_mb(proc.pid)))
        for r in range(rounds):
            for pid in papers[r * 100:(r + 1) * 100]:
                _get(base + f"/paper/{urllib.parse.quote(pid)}")
            for day in days[r * 30:(r + 1) * 30]:
                _get(base + f"/day/{day}")
            for i in range(40):
                q = " ".join(words[(r * 40 + i) * 3:(r * 40 + i) * 3 + 3])
                _get(base + "/search?" + urllib.parse.urlencode({"q": q, "mode": ("words", "meaning", "auto")[i % 3]}))
            out.append((f"after round {r + 1} (100 papers, 30 days, 40 searches)", *proc_mb(proc.pid)))
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return out


def bench(code: Path, history: Path, home: Path, day: int, work: Path, skip: set[str], rounds: int,
          port: int) -> dict[str, float]:
    import json
    import sqlite3
    copy = work / "home"
    shutil.copytree(home, copy, symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(code), "RANKER_HOME": str(copy), "RANKER_OFFLINE": "1",
           "RANKER_MODELS_DIR": os.environ.get("RANKER_MODELS_DIR", str(REPO / "models"))}
    cmd = [sys.executable, "-m", "ranker"]
    alldays = sorted(d for d in history.iterdir() if (d / "listing.jsonl").is_file())
    sub = work / "history"               # the days before the new one, for eval and calibrate
    sub.mkdir()
    for d in alldays[:day]:
        (sub / d.name).symlink_to(d.resolve())
    try:
        db = sqlite3.connect(f"file:{copy / 'ranker.sqlite3'}?mode=ro", uri=True)
        papers = [r[0] for r in db.execute("SELECT paper_id FROM rankings ORDER BY day DESC, prefilter_score DESC")]
        days = [r[0] for r in db.execute("SELECT DISTINCT day FROM rankings ORDER BY day DESC")]
        titles = [r[0] for r in db.execute("SELECT title FROM papers ORDER BY id LIMIT 2000")]
        db.close()
    except sqlite3.Error as e:          # not a store `bench_year.py fill` made
        sys.exit(f"error: {home / 'ranker.sqlite3'}: {e} (bench_year.py fill makes the home)")
    words = [w for t in titles for w in re.findall(r"[a-z]{5,}", t.lower())]
    papers = list(dict.fromkeys(papers[::7]))
    args = {"run": ["run", "--papers", str(alldays[day] / "listing.jsonl"), "--out", str(copy / "digests"),
                    "--backend", "fake", "--model", "bench"],
            "site": ["site", "--out", str(work / "site")], "site again": ["site", "--out", str(work / "site")],
            "index status": ["index", "status"], "index rebuild": ["index", "rebuild"],
            "similar id": ["similar", papers[0], "--k", "10"],
            "similar text": ["similar", "sparse attention for long context", "--k", "10"],
            "eval": ["eval", "--history", str(sub), "--out", str(work / "eval")],
            "calibrate": ["calibrate", "--history", str(sub), "--out", str(work / "calibration.json")]}
    got: dict[str, float] = {}
    print(f"{code}: {len(days)} days ranked in the store", flush=True)
    for name in COMMANDS:
        if name in skip:
            continue
        if name == "serve":
            for stage, now, peak in serve_rounds(cmd, env, work, port, days, papers, words, rounds):
                print(f"  serve {stage:<52} {now:7.0f} MB  (peak {peak:.0f} MB)", flush=True)
                got[f"serve {stage}"] = now
                got["serve peak"] = peak
            continue
        mb, secs, rc, last = peak_of([*cmd, *args[name]], env, work)
        failed = f"  exit {rc}: {last[:200]}" if rc else ""
        print(f"  {name:<58} {mb:7.0f} MB peak  {secs:7.1f} s{failed}", flush=True)
        got[name] = mb
    (work / "figures.json").write_text(json.dumps(got))
    return got


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    bench_year.home_arguments(ap)
    ap.add_argument("--skip", action="append", default=[], choices=COMMANDS, help="a command not to measure")
    ap.add_argument("--rounds", type=int, default=5, help="serve's rounds of pages and searches")
    ap.add_argument("--port", type=int, default=8791)
    ap.add_argument("--work", type=Path, default=None, help="where the copies go (default: a temporary folder)")
    ap.add_argument("code", type=Path, nargs="*", default=[REPO], help="ranker source trees (default: this one)")
    a = ap.parse_args()
    days = [d for d in a.history.iterdir() if (d / "listing.jsonl").is_file()]
    if not 0 <= a.day < len(days):
        ap.error(f"--day {a.day}: {a.history} has {len(days)} days (0 to {len(days) - 1})")
    if not (a.home / "ranker.sqlite3").is_file():
        ap.error(f"--home {a.home}: no ranker.sqlite3 there (bench_year.py fill makes the home)")
    if a.work is not None:
        # the home is copied into --work: inside the home, the copy copied itself until a RecursionError traceback
        # of 190 kB (the home inside --work is fine: the copy goes beside it)
        if a.home.resolve() in (w := a.work.resolve(), *w.parents):
            ap.error(f"--work {a.work} is inside --home {a.home}, which is copied into it: give a folder outside "
                     "the home")
        if a.work.exists() and not a.work.is_dir():
            ap.error(f"--work {a.work}: not a folder")
        a.work.mkdir(parents=True, exist_ok=True)   # was "<work>/bench-memory-x1y2: no such file or directory"
    figures = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-", dir=a.work) as tmp:
        for i, code in enumerate(a.code):
            work = Path(tmp) / str(i)
            work.mkdir()
            figures.append(bench(code.resolve(), a.history, a.home, a.day, work, set(a.skip), a.rounds, a.port))
    if len(figures) == 2:
        print("MB, first tree -> second:")
        for name in figures[0]:
            print(f"  {name:<58} {figures[0][name]:7.0f} -> {figures[1].get(name, float('nan')):7.0f}")


if __name__ == "__main__":
    sys.exit(one_line(main))
