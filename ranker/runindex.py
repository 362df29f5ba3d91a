"""The index of a digest folder: every day `ranker run` wrote there, newest first, with its counts.

    write_index("digests/")     # digests/index.md and digests/index.json, rebuilt from the days' manifests

The index is rebuilt from the <date>-run.json manifests each time (a day rerun, or one deleted by hand, shows
as it now is), and each file is written atomically, so a reader never sees half of it.
"""
from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .io import finish_sets, json_loads, lock_exclusive, read_regular, remove_leftovers, write_together

_MANIFEST = re.compile(r"^(\d{4}-\d{2}-\d{2})-run\.json$")
COLUMNS = ("papers", "kept", "scored", "selected", "author_matches")


def read_days(out_dir: str | Path, ended: Callable[[int, str], str | None] | None = None) -> list[dict]:
    """One row per day with a readable manifest (a regular file or a link to one) in `out_dir`, newest first;
    its `digest` the day's Markdown file, None when the day has none (a first run that failed or was stopped).
    `ended(run_id, day)`: the status the store recorded for a run that is no longer running (None when it knows
    no such run, or it runs)."""
    rows = []
    for f in Path(out_dir).iterdir():
        m = _MANIFEST.match(f.name)
        if not m:
            continue
        try:
            # a FIFO in a manifest's place (or a link to one), whose read waited for a writer forever (every later
            # run of the folder hung writing its index), is not one; a link to a manifest is
            data = json_loads(read_regular(f).decode("utf-8"))
        except (OSError, ValueError):
            continue                          # unreadable: left out, as a damaged manifest is
        if not isinstance(data, dict):
            continue                          # not a run's manifest (edited by hand, another program's file)
        counts = data.get("counts")
        counts = {k: v for k, v in counts.items() if type(v) is int} if isinstance(counts, dict) else {}
        if counts.get("scored") is not None or counts.get("reused") is not None:
            # the day's papers with a score: a rerun reuses the stored ones (its own run scored none)
            counts["scored"] = (counts.get("scored") or 0) + (counts.get("reused") or 0)
        status = data.get("status")
        status = status if isinstance(status, str) and status else "unknown"
        if status == "running" and ended is not None and type(data.get("run_id")) is int:
            # a run killed (kill -9, a power cut) left its manifest saying so for good; the store was told
            # since, by the next command that opened it
            status = ended(data["run_id"], m.group(1)) or status
        digest = f"{m.group(1)}-output.md"
        # a run that failed or was stopped leaves the earlier run's digest whole beside its manifest: still linked
        linked = status in ("ok", "partial") or (f.parent / digest).is_file()
        model = data.get("model")
        shown = data.get("shown_run")
        if status not in ("ok", "partial") and linked and isinstance(shown, dict):
            model = shown.get("model")        # the linked digest's model, not the failed run's
        row = {"day": m.group(1), "status": status, **{k: counts.get(k) for k in COLUMNS},
               "model": model, "digest": digest if linked else None}
        rows.append(row)
    rows.sort(key=lambda r: r["day"], reverse=True)
    return rows


def render_index(rows: list[dict]) -> str:
    out = ["# Daily digests", "", "| day | status | papers | kept | scored | selected | author matches |",
           "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        cells = ["-" if r.get(k) is None else str(r[k]) for k in COLUMNS]
        link = f"[{r['day']}]({r['digest']})" if r.get("digest") else r["day"]
        out.append(f"| {link} | {r['status']} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_index(out_dir: str | Path, ended: Callable[[int, str], str | None] | None = None) -> dict[str, Path]:
    """Rewrite out_dir/index.md and out_dir/index.json from the days' manifests (`ended`: as read_days');
    returns both paths. Two runs of other days into one folder (a cron job's, one by hand) take turns, from
    reading the manifests to writing the index: the one that read first could write last, its index saying
    running, linking no digest, a day the other had just finished."""
    out = Path(out_dir)
    files = {"index_md": out / "index.md", "index_json": out / "index.json"}
    with _one_at_a_time(out) as alone:
        if alone:                          # no other run writes the index now: what a killed one left goes
            finish_sets(out)
            remove_leftovers(files.values())
        rows = read_days(out, ended)
        # as one set: a failure to write either (a full disk) leaves the two of before, never a Markdown index
        # that disagrees with the JSON one beside it
        write_together({files["index_json"]: [json.dumps({"days": rows}, indent=2, ensure_ascii=False) + "\n"],
                        files["index_md"]: [render_index(rows)]})
    return files


@contextmanager
def _one_at_a_time(out: Path) -> Iterator[bool]:
    """An exclusive lock on the folder itself (no file of its own in the user's folder), held for a few
    milliseconds, so nothing is said while it is waited for; released when the process ends, however it ends.
    Unlocked where the folder cannot be opened or locked (not POSIX, NFS without flock on folders): the index is
    rewritten by every run. Yields whether it holds the lock."""
    try:
        fd = os.open(out, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        fd = None
    alone = False
    try:
        if fd is not None and os.name == "posix":
            try:
                lock_exclusive(fd, lambda: None)
                alone = True
            except OSError:                # no locks here: rewritten unlocked, as before
                pass
        yield alone
    finally:
        if fd is not None:
            os.close(fd)
