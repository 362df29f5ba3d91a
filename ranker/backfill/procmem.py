"""Peak memory of a process and all its descendants (Linux /proc), sampled while they run: a Ray session
started by this process (GCS, raylet, every worker and actor) is a tree of its children, and an actor's peak
RSS (VmHWM) is gone once Ray ends it, so a sampler thread records each process's high-water mark as it goes.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path


def _status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _name(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
        text = raw.decode(errors="replace")
    except OSError:
        text = ""
    if not text:
        try:
            text = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            text = "?"
    return text[:90]


def descendants(root: int) -> list[int]:
    """root and every process below it."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class PeakSampler:
    """Records the peak RSS of `root` and its descendants every `interval` seconds until stopped."""

    def __init__(self, root: int | None = None, interval: float = 0.5):
        self.root = root or os.getpid()
        self.interval = interval
        self.peaks: dict[int, dict] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="peak-rss", daemon=True)

    def sample(self) -> None:
        for pid in descendants(self.root):
            kb = _status_kb(pid, "VmHWM")
            if kb is None:
                continue
            rec = self.peaks.setdefault(pid, {"pid": pid, "names": [], "peak_kb": 0})
            name = _name(pid)                   # a Ray worker renames itself after the task or actor it runs
            if name not in rec["names"] and not (rec["names"] and name.startswith("ray::IDLE")):
                rec["names"].append(name)
            rec["peak_kb"] = max(rec["peak_kb"], kb)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> "PeakSampler":
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        self.sample()
        return self.report()

    def report(self) -> list[dict]:
        rows = sorted(self.peaks.values(), key=lambda r: -r["peak_kb"])
        return [{"pid": r["pid"], "name": "driver" if r["pid"] == self.root else _label(r["names"]),
                 "peak_rss_mb": round(r["peak_kb"] / 1024, 1)} for r in rows]


def _label(names: list[str]) -> str:
    """What a process did: the Ray tasks and actors it ran (a worker renames itself "ray::<what>"), else
    its program (a Ray service: gcs_server, raylet, dashboard ...)."""
    ray_names = []
    for n in names:
        if n.startswith("ray::") and not n.startswith("ray::IDLE") and n not in ray_names:
            ray_names.append(n)
    if ray_names:
        return " | ".join(ray_names)
    words = names[0].split() if names else ["?"]
    prog = next((w for w in words[1:] if w.endswith(".py")), words[0])
    return prog.rsplit("/", 1)[-1] + (" (idle Ray worker)" if any(n.startswith("ray::IDLE") for n in names) else "")
