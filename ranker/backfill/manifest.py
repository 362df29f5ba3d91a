"""OUT/manifest.json: what a backfill folder holds and how it was made, and the lock that keeps two runs apart.

The prefilter settings are pinned by the first run that ranks papers (a day's ranking depends on every one
of them, and on which papers compete that day): a later run into the same folder must use the same ones, or
another output folder. The model and prompt may change from run to run: score rows are kept per (model, prompt hash).
"""
from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import InputError, RankerError
from ..io import atomic_write, open_lock_file, read_text, redact, special_kind

FORMAT = "ranker-backfill"
VERSION = 1
NAME = "manifest.json"
# pinned value -> the setting (or run_backfill parameter) a user changes to get it, for the error's key
KEEP_RULE = ("top", "keep", "recall")          # pinned as the rule applies (prefilter.recall.effective_rule)
PIN_KEYS = {"embed": "embed", "embedder": "prefilter.embedder", "keep": "prefilter.keep", "top": "prefilter.top",
            "recall": "prefilter.recall", "min_keep": "prefilter.min_keep", "calibration": "prefilter.calibration",
            "queries": "scoring.prompts", "exclude": "prefilter.exclude", "authors": "digest.authors",
            "categories": "fetch.categories", "announce": "announce"}


def load(out: Path) -> dict:
    path = Path(out) / NAME
    if not path.exists():
        return {"format": FORMAT, "version": VERSION, "pinned": None, "ranked_sources": [], "runs": []}
    kind = special_kind(path)           # a FIFO's read waited for a writer for good: said, as a shard's (shards)
    if kind:
        raise InputError(f"{kind} named as the backfill manifest, not a file ranker wrote; remove it", where=str(path))
    try:
        d = json.loads(read_text(path, "backfill manifest"))
    except ValueError as e:
        raise InputError(f"unreadable backfill manifest ({e})", where=str(path)) from None
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise InputError("not a backfill manifest (expected the manifest.json `ranker backfill` writes)",
                         where=str(path))
    if d.get("version") != VERSION:
        raise InputError(f"backfill manifest version {d.get('version')} is not supported (this ranker writes "
                         f"version {VERSION})", where=str(path))
    d.setdefault("ranked_sources", [])
    d.setdefault("runs", [])
    return d


def load_folder(out: str | Path) -> dict:
    """The manifest of a folder `ranker backfill` wrote (what `ranker import` reads); a folder without one is an
    InputError naming the folder."""
    out = Path(out).expanduser()
    if not (out / NAME).exists():
        raise InputError("not a backfill folder (no manifest.json)", where=str(out))
    return load(out)


def save(out: Path, manifest: dict) -> Path:
    path = Path(out) / NAME
    atomic_write(path, json.dumps(manifest, indent=2, ensure_ascii=False, default=str) + "\n", tidy=True,
                 own_name=True)
    return path


def error_text(e: BaseException) -> str:
    """A failed run's error as its record says it: the error's own line (with the exception type for one that
    is not the ranker's), without any secret (ranker.io.redact), as every stored error text is: the manifest
    does not count on each source of an error having filtered it."""
    return redact(str(e) if isinstance(e, RankerError) else f"{type(e).__name__}: {e}")


def check_pins(manifest: dict, pins: dict, out: Path) -> None:
    """Raise if this run's prefilter settings differ from the ones the folder was ranked with."""
    old = manifest.get("pinned")
    if not old:
        return
    if "top" in old and "keep" in old:
        # a folder an older ranker ranked pinned the rule as given (top and keep, None for the default; recall
        # only when set), not as it applied: filled in here as that ranker applied it (the same order and
        # defaults), so the same settings resume it and another rule is still refused
        from ..prefilter.recall import effective_rule
        top, keep, recall = effective_rule(top=old["top"], keep=old["keep"], recall=old.get("recall"),
                                           calibrated=old.get("calibration") is not None)
        old = {**old, "top": top, "keep": keep, "recall": recall}
    rule = [k for k in KEEP_RULE if k in old and k in pins]
    if any(old[k] != pins[k] for k in rule):
        def said(d):
            return ", ".join(f"{k} = {d[k]!r}" for k in rule if d[k] is not None) or "the default"
        key = next(k for k in rule if pins[k] is not None or old[k] is not None)
        raise InputError(f"{out} was kept by {said(old)}, this run asks for {said(pins)}; use the same keep rule or "
                         "another output folder", key=PIN_KEYS.get(key, key))
    for key, value in pins.items():
        if key == "queries" and key in old and old[key] != value:
            # a digest of the topics as read from the prompts: the prompts edited, or the same prompts read into
            # other topics by a newer ranker (an upgrade that reads a prompt's topics otherwise), which no setting
            # of the user's puts back
            raise InputError(f"{out} was ranked with other prefilter topics than this run reads from the prompts "
                             f"({old[key]}, now {value}): the prompts were edited, or the ranker that ranked it "
                             "read them otherwise; rank with those prompts and that ranker, or into another output "
                             "folder", key=PIN_KEYS[key])
        if key in old and old[key] != value:
            raise InputError(f"{out} was ranked with {key} = {old[key]!r}, this run asks for {value!r}; use the "
                             "same setting or another output folder", key=PIN_KEYS.get(key, key))


def covers(manifest: dict, fingerprint: list, since: str | None, until: str | None) -> bool:
    """True when an earlier run ranked this very source (same files, sizes, times) over a window that
    contains this one."""
    for e in manifest.get("ranked_sources", []):
        if e.get("files") != fingerprint:
            continue
        s, u = e.get("since"), e.get("until")
        if (s is None or (since is not None and s <= since)) and (u is None or (until is not None and u >= until)):
            return True
    return False


@contextmanager
def locked(out: Path) -> Iterator[None]:
    """One backfill at a time per output folder (an advisory lock on OUT/.lock, opened without waiting: see
    open_lock_file)."""
    import fcntl
    out.mkdir(parents=True, exist_ok=True)
    try:
        fd = open_lock_file(out / ".lock")
    except OSError as e:
        raise InputError(f"cannot open its lock file ({e.strerror})", where=str(out / ".lock")) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError("another backfill is writing this folder", where=str(out)) from None
        yield
    finally:
        os.close(fd)
