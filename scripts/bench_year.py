"""A user a year in: how each command's cost grows with the days the store holds (50, 125, 250 days...).

The 50 shared days are replicated with shifted dates (14 weeks a cycle, so weekdays stay weekdays) and rewritten
ids, a year's worth of listings and GPT digests; a store is filled by the product's own steps (fetch_day +
run_day, the fake LLM, every digest written) over pre-stored pseudo-random 384-d vectors under the MiniLM key
(no model is loaded; search by meaning loads MiniLM for its query only). Then each command runs as its own
process, timed with its peak RSS as the kernel counts it (os.wait4, as /usr/bin/time -v):

    python scripts/bench_year.py make --from ../shared/data/days --out /tmp/year/days --cycles 5
    python scripts/bench_year.py fill --history /tmp/year/days --home /tmp/year/home --upto 49
    python scripts/bench_year.py measure --history /tmp/year/days --home /tmp/year/home --day 49

`measure --day N` times, over a store holding the days before day N (0-based): `ranker run` of day N, the
site rebuilt after it (a site of the days before is built first), `ranker serve`'s pages and a label POST (a
real server on 127.0.0.1), `ranker index status`, and with --eval / --calibrate `ranker eval` and `ranker
calibrate` over the first N days of history. Fill on to the next size and measure again to see the growth.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(Path(__file__).resolve().parent))      # script_cli
from script_cli import Parser  # noqa: E402  (a usage error: one line, status 1)

CYCLE_DAYS = 98          # 14 weeks: the 50 days span 13 weeks and a day


def new_id(pid: str, k: int) -> str:
    """The id of paper `pid` in copy k: its year moved on by k (a new-style id), else a suffix (old-style)."""
    if not k:
        return pid
    m = re.fullmatch(r"(\d\d)(\d\d)\.(\d{4,5})", pid)
    if m:
        return f"{int(m.group(1)) + k:02d}{m.group(2)}.{m.group(3)}"
    return f"{pid}{k}"


def make(src: Path, out: Path, cycles: int) -> None:
    days = sorted(d for d in src.iterdir() if (d / "listing.jsonl").is_file())
    seen: dict[str, tuple[int, str]] = {}
    n_days = n_papers = 0
    for k in range(cycles):
        for d in days:
            date = (dt.date.fromisoformat(d.name) + dt.timedelta(days=CYCLE_DAYS * k)).isoformat()
            (out / date).mkdir(parents=True, exist_ok=True)
            for name in ("listing.jsonl", "gpt_scores.jsonl"):
                if not (d / name).is_file():
                    continue
                lines = []
                for line in (d / name).read_text(encoding="utf-8").splitlines():
                    row = json.loads(line)
                    for key in ("id", "ARXIVID"):
                        if key in row:
                            nid = new_id(row[key], k)
                            if seen.setdefault(nid, (k, row[key])) != (k, row[key]):
                                raise SystemExit(f"id clash: {nid}")
                            row[key] = nid
                    if "date" in row:
                        row["date"] = date
                    lines.append(json.dumps(row, ensure_ascii=False))
                    n_papers += name == "listing.jsonl"
                (out / date / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
            n_days += 1
    print(f"made {n_days} days, {n_papers} listed papers, in {out}")


def settings_for(home: Path):
    from ranker.settings import resolve
    return resolve(flags={"backend": "fake", "model": "bench"}, env=bench_env(home))


def bench_env(home: Path) -> dict:
    return {**os.environ, "RANKER_HOME": str(home), "RANKER_OFFLINE": "1",
            "RANKER_MODELS_DIR": os.environ.get("RANKER_MODELS_DIR", str(REPO / "models"))}


def fill(history: Path, home: Path, upto: int, vectors_of: int | None = None) -> None:
    """Days [0, upto) through fetch_day + run_day; days whose digest is stored are skipped (resumable).
    vectors_of: also store the vectors of that day (0-based) without running it (its run is then measured
    without embedding: the model's cost does not grow with the store)."""
    import hashlib

    import numpy as np

    from ranker.backends.fake import FakeBackend
    from ranker.prefilter.embed import QUERY_PREFIX, Embedder, paper_text, text_hash
    from ranker.prefilter.rank import build_queries
    from ranker.prompts import load_prompts
    from ranker.sources import read_papers
    from ranker.steps import fetch_day, run_day
    from ranker.store import Store

    home.mkdir(parents=True, exist_ok=True)
    s = settings_for(home)
    key = Embedder.from_settings(s).key

    def vec(text: str) -> np.ndarray:
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
        v = rng.normal(size=384).astype(np.float32)
        return v / np.linalg.norm(v)

    days = sorted(d for d in history.iterdir() if (d / "listing.jsonl").is_file())[:upto]
    t0, done = time.perf_counter(), 0
    with Store(s.db_path) as store:
        rows = []
        for t in build_queries(load_prompts()).texts:
            t = " ".join(t.split())
            rows.append((QUERY_PREFIX + text_hash(t), text_hash(t), vec(t)))
        store.put_embeddings(rows, key)
        if vectors_of is not None:
            nxt = sorted(d for d in history.iterdir() if (d / "listing.jsonl").is_file())[vectors_of]
            store.put_embeddings([(p.id, text_hash(paper_text(p)), vec(p.id))
                                  for p in read_papers(nxt / "listing.jsonl")], key)
        for d in days:
            if store.get_day_digest(d.name) is not None:
                continue
            papers = list(read_papers(d / "listing.jsonl"))
            store.put_embeddings([(p.id, text_hash(paper_text(p)), vec(p.id)) for p in papers], key)
            day = fetch_day(papers, s, store=store)
            run_day(day, home / "digests", s, store=store, backend=FakeBackend("bench"))
            done += 1
        n = store.count_papers()
    print(f"fill: {done} days run in {time.perf_counter() - t0:.1f} s; the store holds {n} papers")


# A small process between the caller and the command: the kernel counts a process's peak RSS from before its exec
# too, and a command started straight from a large process (pytest at 3 GB) was credited with that process's size
_SPAWN = """import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status) % 256)
"""


def timed(cmd: list[str], env: dict, cwd: Path | None = None) -> tuple[float, float, int, str, str]:
    """(wall seconds, peak RSS in MB, exit status, stdout, stderr) of one command as its own process. The peak is
    the kernel's count (os.wait4: the largest of the process and the children it waited for), what /usr/bin/time
    -v reports, which a machine without Debian's `time` package lacks; like `time`, a small process starts the
    command and reads the figure (see _SPAWN)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r") as peak:
        t0 = time.perf_counter()
        p = subprocess.run([sys.executable, "-S", "-c", _SPAWN, peak.name, *map(str, cmd)], env=env, cwd=cwd,
                           stdout=out, stderr=err)
        secs = time.perf_counter() - t0
        kib = peak.read().strip()
        out.seek(0)
        err.seek(0)
        return (secs, int(kib) / 1024 if kib else float("nan"), p.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"))


def timed_cli(args: list[str], env: dict, label: str) -> dict:
    """One ranker command as its own process: wall seconds and peak RSS."""
    secs, mb, rc, stdout, stderr = timed([str(REPO / ".venv" / "bin" / "ranker"), *args], env)
    ok = "" if rc == 0 else f"  (exit {rc}: {stderr.strip().splitlines()[:1]})"
    own = stderr.strip().splitlines()
    said = f"  [{own[-1][:200]}]" if own else ""
    print(f"{label}: {secs:.2f} s, {mb:.0f} MB peak{ok}{said}", flush=True)
    return {"label": label, "seconds": secs, "rss_mb": mb, "rc": rc, "stdout": stdout, "stderr": stderr}


def get(url: str, data: bytes | None = None, headers: dict | None = None) -> tuple[float, bytes]:
    t = time.perf_counter()
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
        if e.code >= 400:
            raise SystemExit(f"{url}: {e.code}")
    return time.perf_counter() - t, body


def measure_serve(env: dict, day: str, paper: str, port: int) -> None:
    proc = subprocess.Popen([str(REPO / ".venv" / "bin" / "ranker"), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                get(base + "/labels.json")
                break
            except Exception:
                time.sleep(0.1)
        pages = [("archive", "/"), ("day", f"/day/{day}"), ("paper", f"/paper/{paper}"),
                 ("search words", "/search?q=diffusion+model&mode=words"),
                 ("search meaning", "/search?q=sparse+attention+for+long+context&mode=meaning"),
                 ("labels", "/labels")]
        for name, path in pages:
            first, body = get(base + path)
            ts = [get(base + path)[0] for _ in range(5)]
            print(f"serve {name}: first {first * 1000:.0f} ms, then median {statistics.median(ts) * 1000:.0f} ms, "
                  f"{len(body) / 1e3:.0f} kB", flush=True)
        _, html = get(base + f"/day/{day}")
        token = re.search(rb'name="csrf-token" content="([^"]+)"', html).group(1).decode()
        ts = []
        for i in range(6):
            data = urllib.parse.urlencode({"csrf": token, "paper_id": paper, "label": ("up", "down")[i % 2],
                                           "day": day}).encode()
            t, _ = get(base + "/label", data, {"Accept": "application/json", "Origin": base})
            ts.append(t)
        print(f"serve label POST: median {statistics.median(ts) * 1000:.0f} ms", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)


def measure(history: Path, home: Path, n: int, *, do_eval: bool, do_calibrate: bool, site: bool,
            port: int) -> None:
    from ranker.store import Store
    days = sorted(d for d in history.iterdir() if (d / "listing.jsonl").is_file())
    fill(history, home, n, vectors_of=n)
    env = bench_env(home)
    s = settings_for(home)
    with Store(s.db_path) as store:
        print(f"== {n} days before, {store.count_papers()} papers in the store; measuring day {days[n].name} ==",
              flush=True)
    if site:
        timed_cli(["site", "--out", str(home / "site")], env, f"site build over {n} days (before the new day)")
    timed_cli(["run", "--papers", str(days[n] / "listing.jsonl"), "--out", str(home / "digests"),
                   "--backend", "fake", "--model", "bench"], env, f"run of one new day ({days[n].name})")
    manifest = json.loads((home / "digests" / f"{days[n].name}-run.json").read_text())
    print(f"   its stages: {manifest.get('timings_s')}")
    if site:
        timed_cli(["site", "--out", str(home / "site")], env, "site rebuild after the new day")
    timed_cli(["index", "status"], env, "index status")
    with Store(s.db_path) as store:
        paper = store.get_rankings(days[n].name)[0].paper_id
    measure_serve(env, days[n].name, paper, port)
    sub = home / f"hist{n}"             # the first n days of history, for eval and calibrate alike
    if (do_eval or do_calibrate) and not sub.exists():
        sub.mkdir()
        for d in days[:n]:
            (sub / d.name).symlink_to(d)
    if do_eval:
        timed_cli(["eval", "--history", str(sub), "--out", str(home / f"eval{n}")], env,
                      f"eval over {n} days (zero-shot)")
    if do_calibrate:
        timed_cli(["calibrate", "--history", str(sub), "--out", str(home / f"calib{n}.json")], env,
                      f"calibrate over {n} days")


def home_arguments(ap: argparse.ArgumentParser) -> None:
    """The arguments of a bench run over a home `fill` made: the history, the home and the new day of it."""
    ap.add_argument("--history", type=Path, required=True)
    ap.add_argument("--home", type=Path, required=True)
    ap.add_argument("--day", type=int, required=True, help="the new day: its index in the history (0-based)")


def main() -> None:
    ap = Parser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--from", dest="src", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--cycles", type=int, default=5)
    f = sub.add_parser("fill")
    f.add_argument("--history", type=Path, required=True)
    f.add_argument("--home", type=Path, required=True)
    f.add_argument("--upto", type=int, required=True)
    me = sub.add_parser("measure")
    me.add_argument("--history", type=Path, required=True)
    me.add_argument("--home", type=Path, required=True)
    me.add_argument("--day", type=int, required=True)
    me.add_argument("--eval", action="store_true")
    me.add_argument("--calibrate", action="store_true")
    me.add_argument("--no-site", action="store_true")
    me.add_argument("--port", type=int, default=8765)
    sv = sub.add_parser("serve", help="only serve's pages and a label POST, on a day the store holds")
    sv.add_argument("--history", type=Path, required=True)
    sv.add_argument("--home", type=Path, required=True)
    sv.add_argument("--day", type=int, required=True)
    sv.add_argument("--port", type=int, default=8765)
    a = ap.parse_args()
    if a.cmd == "make":
        if a.out.exists():
            shutil.rmtree(a.out)
        make(a.src, a.out, a.cycles)
    elif a.cmd == "fill":
        fill(a.history, a.home, a.upto)
    elif a.cmd == "serve":
        from ranker.store import Store
        day = sorted(d for d in a.history.iterdir() if (d / "listing.jsonl").is_file())[a.day].name
        with Store(settings_for(a.home).db_path) as store:
            paper = store.get_rankings(day)[0].paper_id
            print(f"== serve over {len(store.days())} days, {store.count_papers()} papers; day {day} ==")
        measure_serve(bench_env(a.home), day, paper, a.port)
    else:
        measure(a.history, a.home, a.day, do_eval=a.eval, do_calibrate=a.calibrate, site=not a.no_site,
                port=a.port)


if __name__ == "__main__":
    from ranker.cli.app import script_main
    raise SystemExit(script_main(main))   # a RankerError: one line, status 1
