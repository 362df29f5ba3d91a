"""Reading a user's history of GPT digests, for calibration.

A history directory holds one folder per day:
  <date>/listing.jsonl   every paper announced that day (the papers JSONL layout)
and GPT's picks for that day, in the first of these that is present:
  <date>/gpt_scores.jsonl   one JSON object a line with the paper's "id" (or "ARXIVID")
  <date>/*.json             the digest's JSON output: an object keyed by arXiv id ({"2506.16065": {"SCORE": ...}})
  <date>/*.md, *.txt        the digest as published in Markdown (paper blocks carry "**ArXiv ID:** ...")
  the listing's own "gpt_selected": true flags
Only ids matter here; they are read by the one reader of GPT digests, ranker.compare.readers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..compare.readers import read_scores, sniff
from ..errors import InputError
from ..io import Warn, ignore_warning
from ..records import Paper
from ..sources import ReadReport, read_papers



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


def read_listing(path: Path, warn: Warn = ignore_warning) -> list[Paper]:
    """The day's papers through the shared reader: a bad line is skipped, and what the read skipped or cut
    is reported through `warn`, one line per kind with the count and the first place, as everywhere."""
    report = ReadReport()
    papers = list(read_papers(path, report=report))
    for note in report.notes():
        warn(note)
    return papers


# --------------------------------------------------------------------------- GPT's picks
def _find_picks(day_dir: Path, papers: list[Paper], warn: Warn) -> tuple[list[str], str]:
    """The ids GPT picked that day, through the one reader of GPT digests (ranker.compare.readers)."""
    f = day_dir / "gpt_scores.jsonl"
    if f.exists():
        return list(read_scores(f, warn=warn)), f.name
    for f in sorted(day_dir.glob("*.json")):
        return list(read_scores(f, warn=warn)), f.name
    for f in sorted(list(day_dir.glob("*.md")) + list(day_dir.glob("*.txt"))):
        ids = list(read_scores(f, warn=warn)) if sniff(f) == "markdown" else []
        if ids:
            return ids, f.name
    if any("gpt_selected" in p.extra for p in papers):
        return [p.id for p in papers if p.extra.get("gpt_selected") is True], "listing.jsonl (gpt_selected)"
    raise InputError("no GPT picks for this day: expected gpt_scores.jsonl, a digest .json / .md, or "
                     "'gpt_selected' flags in listing.jsonl", where=str(day_dir))


def load_day(day_dir: Path, warn: Warn = ignore_warning) -> HistoryDay:
    listing = day_dir / "listing.jsonl"
    if not listing.exists():
        raise InputError("missing listing.jsonl (every paper announced that day)", where=str(day_dir))
    papers = read_listing(listing, warn)
    ids, source = _find_picks(day_dir, papers, warn)
    present = {p.id for p in papers}
    picks = {i for i in ids if i in present}
    missing = sorted({i for i in ids if i not in present})
    date = day_dir.name
    return HistoryDay(date=date, papers=papers, picks=picks, missing=missing, source=source)


def load_history(directory: str | Path, warn: Warn = ignore_warning) -> list[HistoryDay]:
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
        day = load_day(dd, warn)
        if day.missing:
            warn(f"{dd}: {len(day.missing)} of {len(day.missing) + len(day.picks)} GPT picks "
                 f"(from {day.source}) are not in listing.jsonl; they are left out")
        if not day.papers:
            warn(f"{dd}: listing.jsonl has no papers; day skipped")
            continue
        if not day.picks:
            warn(f"{dd}: none of GPT's picks is in listing.jsonl; day skipped")
            continue
        days.append(day)
    return days
