#!/usr/bin/env python
"""Write an arXiv-metadata-snapshot-format file (JSON lines) of N synthetic papers, for load benchmarks.

The text comes from the shared announcement days: each synthetic paper takes the title of one real paper, an
abstract spliced from the first half of one real abstract and the second half of another, authors drawn from
the real author pool and the categories of a real paper, under a new id (2601.00001, 2601.00002, ...) that no
real day uses. The output is deterministic for a given --seed.

    .venv/bin/python scripts/make_snapshot.py --n 30000 --out /tmp/snapshot.json
    .venv/bin/ranker fetch --from /tmp/snapshot.json --category cs.LG,cs.AI --out /tmp/papers.jsonl
"""
from __future__ import annotations

import contextlib
import json
import random
import re
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

from script_cli import Parser, one_line    # beside this file: `python scripts/make_snapshot.py` finds it

REPO = Path(__file__).resolve().parent.parent
# the shared days beside the checkout, or two levels up from a worktree at work/wt/NAME (as wf_common.DATA): else a
# worktree's snapshots were spliced from the tests' five days, not the fifty the load figures are measured on
DAY_DIRS = [REPO.parent / "shared" / "data" / "days", REPO.parents[1] / "shared" / "data" / "days",
            REPO / "tests" / "data" / "days", REPO / "ranker" / "data"]
ROW_KEYS = ("title", "abstract", "authors", "categories")     # what a synthetic paper takes from a real one
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def load_rows(days_dir: Path | None) -> list[dict]:
    dirs = [days_dir] if days_dir else DAY_DIRS
    for d in dirs:
        files = sorted(d.glob("*/listing.jsonl")) if d and d.is_dir() else []
        if files:
            rows = []
            for f in files:
                # bytes, decoded line by line: a text stream decodes ahead, so an undecodable byte was said at a
                # wrong line (or before the first, n unbound)
                with f.open("rb") as lines:
                    for n, raw in enumerate(lines, 1):
                        if not raw.strip():
                            continue
                        try:
                            row = json.loads(raw.decode("utf-8"))
                        except ValueError as e:     # not JSON, not UTF-8
                            sys.exit(f"error: {f}:{n}: not a JSON line ({e})")
                        missing = [k for k in ROW_KEYS if not isinstance(row, dict) or k not in row]
                        if missing:
                            sys.exit(f"error: {f}:{n}: no {missing[0]!r} in the row")
                        rows.append(row)
            return rows
    sys.exit(f"error: no */listing.jsonl under {', '.join(str(d) for d in dirs if d)}")


def splice(a: str, b: str) -> str:
    sa, sb = _SENTENCE.split(a), _SENTENCE.split(b)
    head = sa[: max(1, len(sa) // 2)]
    tail = sb[len(sb) // 2:] if len(sb) > 1 else sb
    return " ".join(head + tail)


def authors_string(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def snapshot(args: list[str], env: dict[str, str]) -> None:
    """Write a snapshot with this script as its own process (bench_load.py, bench_backfill.py: what they time
    next starts from a cold file); a failure ends the caller with this script's own error line and status 1, not a
    CalledProcessError traceback with the reason thrown away."""
    p = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(p.stderr.strip() or f"error: make_snapshot.py {' '.join(args)}: exit status {p.returncode}")


def main(argv: list[str] | None = None) -> int:
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=30_000, help="number of papers (default 30000)")
    ap.add_argument("--out", type=Path, required=True, help="output file (JSON lines)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--days", type=Path, default=None, help="folder of <day>/listing.jsonl (default: shared data)")
    ap.add_argument("--start", default="2026-01-05", help="submission day of the first paper (YYYY-MM-DD)")
    ap.add_argument("--per-day", type=int, default=1000, help="papers per submission day (default 1000)")
    args = ap.parse_args(argv)
    if args.n < 0 or args.per_day < 1:
        ap.error("--n must be >= 0 and --per-day >= 1")
    try:
        start = date.fromisoformat(args.start)
    except ValueError:
        ap.error(f"--start {args.start}: not a date (YYYY-MM-DD)")
    if args.out.is_dir():
        ap.error(f"--out {args.out}: is a folder (name the file to write)")
    if args.out.exists() and not args.out.is_file():    # /dev/full: the snapshot is renamed over it (as root too)
        ap.error(f"--out {args.out}: not a regular file (the snapshot is written beside it and renamed over it)")

    rows = load_rows(args.days)
    rng = random.Random(args.seed)
    authors = sorted({a for r in rows for a in r["authors"]})
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as e:        # a file on the way: /etc/passwd/x.json
        sys.exit(f"error: {e.filename}: not a folder (--out {args.out})")
    tmp = args.out.with_name(args.out.name + ".tmp")
    try:
        with tmp.open("w", encoding="utf-8") as f:
            for i in range(args.n):
                t, a, b, c = (rng.choice(rows) for _ in range(4))
                day = start + timedelta(days=i // args.per_day)
                created = datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60),
                                   rng.randrange(60), tzinfo=timezone.utc)
                versions = [{"version": "v1", "created": format_datetime(created, usegmt=True)}]
                last = created
                if rng.random() < 0.2:
                    last = created + timedelta(days=rng.randrange(1, 30))
                    versions.append({"version": "v2", "created": format_datetime(last, usegmt=True)})
                names = rng.sample(authors, k=min(len(authors), max(1, len(t["authors"]))))
                paper = {
                    "id": f"2601.{i + 1:05d}",
                    "submitter": names[0],
                    "authors": authors_string(names),
                    "title": t["title"],
                    "comments": c.get("comment"),
                    "journal-ref": None,
                    "doi": None,
                    "report-no": None,
                    "categories": " ".join(c["categories"]),
                    "license": "http://creativecommons.org/licenses/by/4.0/",
                    "abstract": "  " + splice(a["abstract"], b["abstract"]) + "\n",
                    "versions": versions,
                    "update_date": last.date().isoformat(),
                    "authors_parsed": [[n.split()[-1], " ".join(n.split()[:-1]), ""] for n in names],
                }
                f.write(json.dumps(paper, ensure_ascii=False) + "\n")
        tmp.replace(args.out)
    except OSError as e:                # named as given, not as the temporary file beside it
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OSError(e.errno, e.strerror, str(args.out)) from e
    print(f"{args.n} papers -> {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(one_line(main))
