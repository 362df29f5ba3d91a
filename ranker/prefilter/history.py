"""Reading a user's history of GPT digests, for calibration.

A history directory holds one folder per day:
  <date>/listing.jsonl   every paper announced that day (the papers JSONL layout)
and GPT's picks for that day, in the first of these that is present:
  <date>/gpt_scores.jsonl   one JSON object a line with the paper's "id" (or "ARXIVID")
  <date>/*.json             the digest's JSON output: an object keyed by arXiv id ({"2506.16065": {"SCORE": ...}})
  <date>/*.md, *.txt        the digest as published in Markdown (paper blocks carry "**ArXiv ID:** ...")
  the listing's own "gpt_selected": true flags
Only ids matter here; a fuller reader of GPT digests (for `ranker compare`) lives elsewhere.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from ..io import arxiv_id
from ..records import Paper
from ..sources import read_papers

_MD_ID = re.compile(r"\*\*\s*ArXiv\s+ID\s*:?\s*\*\*\s*:?\s*(?:arXiv:)?(\S+)", re.I)


@dataclass
class HistoryDay:
    date: str
    papers: list[Paper]
    picks: set[str]                      # GPT's picks that are in the listing
    missing: list[str] = field(default_factory=list)   # GPT's picks absent from the listing
    source: str = ""                     # which file the picks came from

    @property
    def labels(self) -> list[bool]:
        return [p.id in self.picks for p in self.papers]


def read_listing(path: Path) -> list[Paper]:
    """The day's papers through the shared reader (a bad line is skipped and counted, as everywhere)."""
    return list(read_papers(path))


# --------------------------------------------------------------------------- GPT digests: ids only
def picks_from_jsonl(path: Path) -> list[str]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(f"not valid JSON ({e.msg})", where=f"{path}:{lineno}") from None
            raw = d.get("id") or d.get("ARXIVID") or d.get("arxiv_id") if isinstance(d, dict) else None
            pid = arxiv_id(raw) if raw else None
            if pid is None:
                raise InputError("a GPT score line without an arXiv id ('id' or 'ARXIVID')",
                                 where=f"{path}:{lineno}")
            out.append(pid)
    return out


def picks_from_json(path: Path) -> list[str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg})", where=f"{path}:{e.lineno}") from None
    entries = data.items() if isinstance(data, dict) else enumerate(data if isinstance(data, list) else [])
    out = []
    for key, val in entries:
        raw = key if isinstance(key, str) else None
        if isinstance(val, dict):
            raw = val.get("ARXIVID") or val.get("arxiv_id") or val.get("id") or raw
        pid = arxiv_id(raw) if raw else None
        if pid is None:
            raise InputError(f"entry {key!r} has no arXiv id", where=str(path))
        out.append(pid)
    if not out and not isinstance(data, (dict, list)):
        raise InputError("expected a JSON object keyed by arXiv id", where=str(path))
    return out


def picks_from_markdown(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace")
    # The seed's file ends with the prompt; only the digest part above it holds papers.
    out = [pid for pid in (arxiv_id(m.group(1)) for m in _MD_ID.finditer(text)) if pid]
    return list(dict.fromkeys(out))


def _find_picks(day_dir: Path, papers: list[Paper]) -> tuple[list[str], str]:
    f = day_dir / "gpt_scores.jsonl"
    if f.exists():
        return picks_from_jsonl(f), f.name
    for f in sorted(day_dir.glob("*.json")):
        return picks_from_json(f), f.name
    for f in sorted(list(day_dir.glob("*.md")) + list(day_dir.glob("*.txt"))):
        ids = picks_from_markdown(f)
        if ids:
            return ids, f.name
    if any("gpt_selected" in p.extra for p in papers):
        return [p.id for p in papers if p.extra.get("gpt_selected") is True], "listing.jsonl (gpt_selected)"
    raise InputError("no GPT picks for this day: expected gpt_scores.jsonl, a digest .json / .md, or "
                     "'gpt_selected' flags in listing.jsonl", where=str(day_dir))


def load_day(day_dir: Path) -> HistoryDay:
    listing = day_dir / "listing.jsonl"
    if not listing.exists():
        raise InputError("missing listing.jsonl (every paper announced that day)", where=str(day_dir))
    papers = read_listing(listing)
    ids, source = _find_picks(day_dir, papers)
    present = {p.id for p in papers}
    picks = {i for i in ids if i in present}
    missing = sorted({i for i in ids if i not in present})
    date = day_dir.name
    return HistoryDay(date=date, papers=papers, picks=picks, missing=missing, source=source)


def load_history(directory: str | Path, warn=lambda msg: None) -> list[HistoryDay]:
    """Every usable day under `directory`, oldest first. A day some of whose GPT picks are missing from its
    listing is used with the picks that are there, and reported; a day with no pick in its listing (or no
    paper) is skipped, and reported."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError("history directory not found", where=str(d))
    day_dirs = sorted(p for p in d.iterdir() if p.is_dir() and (p / "listing.jsonl").exists())
    if not day_dirs:
        raise InputError("no day folders with a listing.jsonl (expected <date>/listing.jsonl and "
                         "<date>/gpt_scores.jsonl)", where=str(d))
    days: list[HistoryDay] = []
    for dd in day_dirs:
        day = load_day(dd)
        if day.missing:
            warn(f"warning: {dd}: {len(day.missing)} of {len(day.missing) + len(day.picks)} GPT picks "
                 f"(from {day.source}) are not in listing.jsonl; they are left out")
        if not day.papers:
            warn(f"warning: {dd}: listing.jsonl has no papers; day skipped")
            continue
        if not day.picks:
            warn(f"warning: {dd}: none of GPT's picks is in listing.jsonl; day skipped")
            continue
        days.append(day)
    return days
