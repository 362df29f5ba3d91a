"""A crash harness for the tests (not a product feature): run a real `ranker` command as a subprocess and kill -9
it at a chosen point of its own progress, counted the same way on every run, so a test that pins a point cannot
flake under load (no wall-clock timer decides where the kill lands).

The points are what a crash can fall between: before each SQLite COMMIT (the transaction is lost), before each
rename or removal of a file (os.replace, os.rename, os.unlink: an atomic write's last step, a clean-up), and
before each file opened for writing outside the database (a temporary file about to be made). The code in KILL
runs in the command's process before the CLI starts (conftest.ranker's `pre`): it counts those points, appends
each one's name to CRASH_TRACE when that is set, and sends itself SIGKILL just before point CRASH_KILL_AT.
A point's name is its kind and the file's name, the random part of a temporary file's name left out, so two
runs of one command on one starting state list the same points in the same order."""
from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

KILL = r'''
def _crash_points():
    import os, re, signal, sqlite3, sys
    at = int(os.environ.get("CRASH_KILL_AT") or 0)
    trace = os.environ.get("CRASH_TRACE")
    seen = [0]
    log = open(trace, "a", buffering=1) if trace else None

    def name(path):
        base = os.path.basename(os.fsdecode(path)) if isinstance(path, (str, bytes, os.PathLike)) else str(path)
        return re.sub(r"\.[0-9a-f]{8}\.(tmp|old)$", r".*.\1", base)

    def point(what):
        seen[0] += 1
        if log is not None:
            log.write(f"{seen[0]} {what}\n")
        if seen[0] == at:
            if log is not None:
                log.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    def hook(event, args):
        if event == "os.rename":
            point(f"rename {name(args[0])} -> {name(args[1])}")
        elif event == "os.remove":
            point(f"unlink {name(args[0])}")
        elif event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            writing = (mode is not None and any(c in mode for c in "wax+")) or \
                (mode is None and flags & (os.O_WRONLY | os.O_RDWR))
            if writing and not os.fsdecode(args[0]).startswith(("/dev/", "/proc/")) and \
                    not (trace and os.path.abspath(os.fsdecode(args[0])) == os.path.abspath(trace)):
                point(f"open {name(args[0])}")

    class Conn(sqlite3.Connection):
        def execute(self, sql, *a):
            if isinstance(sql, str) and sql.strip().upper() == "COMMIT":
                point("commit")
            return super().execute(sql, *a)

    real = sqlite3.connect

    def connect(*a, **kw):
        kw.setdefault("factory", Conn)
        return real(*a, **kw)
    sqlite3.connect = connect
    sys.addaudithook(hook)

_crash_points()
del _crash_points
'''

RANKER_CODE = "from ranker.cli import main; main()"


def command(*args) -> list[str]:
    """`ranker ARGS` as a process of this interpreter with the kill points in place."""
    return [sys.executable, "-c", f"{KILL}\n{RANKER_CODE}", *map(str, args)]


def environment(env: dict | None = None, **extra) -> dict:
    e = {k: v for k, v in os.environ.items() if k not in ("RANKER_DEBUG", "CRASH_KILL_AT", "CRASH_TRACE")}
    return {**e, **{k: str(v) for k, v in {**(env or {}), **extra}.items()}}


def trace(args, env: dict, trace_file: Path, cwd=None, timeout: float = 120) -> tuple[subprocess.CompletedProcess,
                                                                                         list[str]]:
    """Run the command to its end, listing its points: (the process, the points' names in order)."""
    trace_file.unlink(missing_ok=True)
    p = subprocess.run(command(*args), env=environment(env, CRASH_TRACE=trace_file), cwd=cwd, capture_output=True,
                       text=True, timeout=timeout)
    points = [line.split(" ", 1)[1] for line in trace_file.read_text().splitlines()] if trace_file.exists() else []
    return p, points


def kill_at(args, env: dict, n: int, cwd=None, timeout: float = 120, trace_file: Path | None = None
            ) -> subprocess.CompletedProcess:
    """Run the command and kill -9 it just before its point n; fail unless it died of that signal."""
    extra = {"CRASH_KILL_AT": n, **({"CRASH_TRACE": trace_file} if trace_file else {})}
    p = subprocess.run(command(*args), env=environment(env, **extra), cwd=cwd, capture_output=True, text=True,
                       timeout=timeout)
    assert p.returncode == -signal.SIGKILL, (f"point {n} of `ranker {' '.join(map(str, args))}` was never "
                                             f"reached (rc {p.returncode}): {p.stderr[-800:]}")
    return p


def pick(points: list[str], *wanted: str) -> list[int]:
    """The 1-based numbers of the points whose names hold any of `wanted` (all when none is given)."""
    return [i for i, x in enumerate(points, 1) if not wanted or any(w in x for w in wanted)]


def integrity(db: Path) -> str:
    c = sqlite3.connect(db)
    try:
        return c.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        c.close()


def rows(db: Path, sql: str, *args) -> list[tuple]:
    c = sqlite3.connect(db)
    try:
        return c.execute(sql, args).fetchall()
    finally:
        c.close()


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative name -> bytes): a folder's state to compare."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.exists() else {}


def fresh_copy(template: Path, to: Path) -> Path:
    """`to` made anew as a copy of `template` (a home prepared once, each kill starting from it)."""
    if to.exists():
        shutil.rmtree(to)
    shutil.copytree(template, to, symlinks=True)
    return to
