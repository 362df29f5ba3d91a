"""Reading a user's history of GPT digests, for calibration.

A history directory holds one folder per day (directly, or in folders that group them: a month's, a year's,
2025-05/2025-05-28/, each day once):
  <date>/listing.jsonl   every paper announced that day (the papers JSONL layout)
and GPT's picks for that day (its judgements at the digest's cut-offs, RELEVANCE >= 8 and NOVELTY >= 7 unless the
caller passes the user's own ([digest] min_relevance / min_novelty, as compare does), that are not author matches),
in the first of these that is present:
  <date>/gpt_scores.jsonl   one JSON object a line with the paper's "id" (or "ARXIVID")
  <date>/*.json             the digest's JSON output: an object keyed by arXiv id ({"2506.16065": {"SCORE": ...}})
  <date>/*.md, *.txt        the digest as published in Markdown (paper blocks carry "**ArXiv ID:** ...")
  the listing's own "gpt_selected": true flags
Only which papers are picks matters here; they are read by the one reader of GPT digests, ranker.compare.readers.

read_history() is the one reader of a history directory (calibration and `ranker eval` use it): a day that
cannot be trusted (a folder name that is not a YYYY-MM-DD day, an entry so named that is no folder, no GPT picks
file, picks missing from its listing, a line that is not valid JSON in either file, a digest in an unknown format,
no paper, most of its papers listed on one earlier day: a copy of that day) is skipped with one line naming the
day and the problem, counted in History.skipped, and the other days are used.
A day whose digest is there but picked nothing (an empty gpt_scores.jsonl, a digest with no paper, none at the
cut-offs) is a real day, not a bad one: it is used, with no picks, and every paper of it is a paper GPT did not
pick (an eval counts what the local pipeline picks on it against it; a calibration learns from its papers).
What leaves every paper of a listing there (an empty abstract, a duplicate line, an abstract cut to the cap)
is said once and the day is used, as is a paper a digest lists without scores (no pick; an author match
without scores is not even said).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..compare.readers import digest_topics, file_kind, read_scores
from ..errors import InputError
from ..io import Warn, counted, day_span, ignore_warning, read_text
from ..records import MIN_NOVELTY, MIN_RELEVANCE, Paper
from ..sources import ReadReport, read_papers
from ..sources.filters import check_day


# Labelled papers outside the history are grouped into days named "<day>+labels" (ranker.labels): they sort
# right after that day's GPT history (before the next day), so a walk-forward fit for a day never sees the
# labels given on it. They are not whole days: nothing that measures a day's ranking reads them as one.
LABEL_DAY_SUFFIX = "+labels"

# Advice a reader's error gives a command ("...; pass it as {key:papers}"): meaningless for a history day.
_ADVICE = re.compile(r";[^;]*\{key:[^}]*\}[^;]*")


@dataclass
class HistoryDay:
    date: str
    papers: list[Paper]
    picks: set[str]                      # GPT's picks that are in the listing (none: GPT picked nothing that day)
    missing: list[str] = field(default_factory=list)   # GPT's picks absent from the listing
    source: str = ""                     # which file the picks came from
    topics: str | None = None            # the topics its GPT was asked about, when its digest shows the prompt
    folder: Path | None = None           # the day's folder (in a month's folder, say)

    @property
    def labels(self) -> list[bool]:
        return [p.id in self.picks for p in self.papers]


@dataclass
class History:
    days: list[HistoryDay]                                 # the usable days, oldest first
    skipped: list[dict] = field(default_factory=list)      # {"day": folder name, "problem": why}, in order


# What a read may report about a listing without making the day untrustworthy: the papers are all there
# (an empty abstract, a duplicate line, an overlong abstract cut, invalid UTF-8 replaced).
_HARMLESS = ("no_abstract", "duplicates", "truncated", "bad_bytes")


def is_day_name(name: str) -> bool:
    """Whether a folder name is a day written as YYYY-MM-DD (so that names sort in time order)."""
    try:
        return check_day(name) == name
    except InputError:
        return False


def read_listing(path: Path, warn: Warn = ignore_warning, notice: Warn = ignore_warning) -> list[Paper]:
    """The day's papers through the shared reader, one line per kind of problem with the count and the first
    place, as everywhere: records it could not read (a truncated or invalid line, no id or title) go to
    `warn`, the harmless kinds (_HARMLESS) to `notice`."""
    report = ReadReport()
    papers = list(read_papers(path, report=report))
    harmless = report.take(_HARMLESS)
    for note in report.notes():
        warn(note)
    for note in harmless.notes():
        notice(note)
    return papers


# --------------------------------------------------------------------------- GPT's picks
def _is_digest(f: Path) -> bool:
    """A Markdown digest, not notes or a README beside it."""
    return file_kind(f) == "markdown"


def _find_picks(day_dir: Path, papers: list[Paper], warn: Warn, notice: Warn = ignore_warning, *,
                min_relevance: float = MIN_RELEVANCE, min_novelty: float = MIN_NOVELTY) -> tuple[list[str], str]:
    """The ids GPT picked that day, through the one reader of GPT digests (ranker.compare.readers): its
    judgements that are picks as compare counts them (ScoreRow.picked: the cut-offs, no author match; a user
    whose digest kept RELEVANCE >= 7 passes 7, or the digest's RELEVANCE 7 papers would be read as not picked).
    `warn`: what the reader skipped as damaged (the day is not to be trusted); `notice`: a paper listed
    without scores, which is simply no pick."""
    def picks(f: Path) -> list[str]:
        rows = read_scores(f, warn=warn, notice=notice)
        return [i for i, r in rows.items() if r.picked(min_relevance, min_novelty)]

    f = day_dir / "gpt_scores.jsonl"
    if f.is_file():                                  # a FIFO's read waited for a writer forever: a digest then
        return picks(f), f.name
    first: InputError | None = None
    # files only (is_file): a FIFO met here (a.json, notes.md) was read, and the read waited for a writer forever
    for f in sorted(f for f in day_dir.glob("*.json") if f.is_file()):  # the first digest (other .json may sit there)
        try:
            return picks(f), f.name
        except InputError as e:
            first = first or e
    if first is not None:
        raise first
    for f in sorted(f for f in [*day_dir.glob("*.md"), *day_dir.glob("*.txt")] if f.is_file()):
        if _is_digest(f):
            return picks(f), f.name
    if any("gpt_selected" in p.extra for p in papers):
        return [p.id for p in papers if p.extra.get("gpt_selected") is True], "listing.jsonl (gpt_selected)"
    raise InputError("no GPT picks for this day: expected gpt_scores.jsonl, a digest .json / .md, or "
                     "'gpt_selected' flags in listing.jsonl", where=str(day_dir))


def load_day(day_dir: Path, warn: Warn = ignore_warning, notice: Warn = ignore_warning, *,
             min_relevance: float = MIN_RELEVANCE, min_novelty: float = MIN_NOVELTY) -> HistoryDay:
    """One day folder. `warn`: what makes the day untrustworthy; `notice`: what does not (see read_listing and
    _find_picks); min_relevance / min_novelty: the cut-offs a judgement of GPT's is a pick at."""
    listing = day_dir / "listing.jsonl"
    if not listing.is_file():                        # a FIFO's read waited for a writer forever
        what = "not a file: listing.jsonl" if listing.exists() else "missing listing.jsonl"
        raise InputError(f"{what} (every paper announced that day)", where=str(day_dir))
    papers = read_listing(listing, warn, notice)
    ids, source = _find_picks(day_dir, papers, warn, notice, min_relevance=min_relevance, min_novelty=min_novelty)
    present = {p.id for p in papers}
    picks = {i for i in ids if i in present}
    missing = sorted({i for i in ids if i not in present})
    topics = None
    if source.endswith((".md", ".txt")):                 # a Markdown digest shows the prompt it was picked under
        topics = digest_topics(read_text(day_dir / source, errors="replace"))
    return HistoryDay(date=day_dir.name, papers=papers, picks=picks, missing=missing, source=source,
                      topics=topics, folder=day_dir)


def history_folder(directory: str | Path) -> Path:
    """The history's folder, or an InputError naming it: not there, or not a folder (a day's file given for
    it). Cheap, so a command says it before it opens the database or loads a model."""
    d = Path(directory)
    if not d.is_dir():
        if d.exists():
            raise InputError("not a folder (a history is a folder of <date>/ day folders)", where=str(d))
        raise InputError("history directory not found", where=str(d))
    return d


def read_history(directory: str | Path, warn: Warn = ignore_warning, leave_out: Path | None = None, *,
                 min_relevance: float = MIN_RELEVANCE, min_novelty: float = MIN_NOVELTY) -> History:
    """Every day folder under `directory`, oldest first: the usable ones as HistoryDays, the others skipped
    (see the module's docstring), each with one line to `warn`: "<day folder>: day skipped: <problem>".
    `leave_out`: a folder that is no day and not to be said either (the caller's own output folder, when the
    user puts it inside the history). min_relevance / min_novelty: the cut-offs a judgement of GPT's is a pick
    at (the user's [digest] ones). An InputError when the directory is missing or no day is usable."""
    d = history_folder(directory)
    own = leave_out.resolve() if leave_out is not None else None
    day_dirs = sorted(_entries(d, own, {d.resolve()}), key=lambda p: (p.name, str(p)))
    if not day_dirs:
        raise InputError("no day folders (expected <date>/listing.jsonl and <date>/gpt_scores.jsonl)", where=str(d))
    out = History(days=[])
    first_day: dict[str, str] = {}          # paper id -> the first usable day that lists it
    used: dict[str, Path] = {}              # day -> the folder it was read from
    for dd in day_dirs:
        problems: list[str] = []
        day = None
        why = ""
        if not is_day_name(dd.name):
            # walk-forward orders days by their folder names: "2025-5-9" would sort after "2025-05-13"
            why = "the folder's name is not a day as YYYY-MM-DD"
        elif not dd.is_dir():
            why = "not a folder" + (" (a link to nothing)" if dd.is_symlink() else "")
        elif dd.name in used:
            # two folders of one day (in two month folders): one day of the walk-forward, read once
            why = f"this day was read from {used[dd.name]} already"
        if why:
            out.skipped.append({"day": dd.name, "problem": why})
            warn(f"{dd}: day skipped: {why}")
            continue
        try:
            day = load_day(dd, problems.append, warn, min_relevance=min_relevance, min_novelty=min_novelty)
        except InputError as e:
            inside = e.where and Path(e.where) != dd and Path(e.where).parent == dd
            message = _ADVICE.sub("", e.message)
            problems.insert(0, f"{Path(e.where).name}: {message}" if inside else message)
        except (OSError, UnicodeError, ValueError) as e:       # an unreadable file
            problems.insert(0, f"unreadable ({e})")
        # what damaged the files comes first, then an empty listing: either leaves GPT's picks "missing" from
        # the listing, and the user is to mend the cause (a line cut short), not look for the picks
        if day is not None and not problems and not day.papers:
            problems.append("listing.jsonl has no papers")
        if day is not None and day.missing:
            problems.append(f"{len(day.missing)} of {len(day.missing) + len(day.picks)} GPT picks (from "
                            f"{day.source}) are not in listing.jsonl ({', '.join(day.missing[:3])}"
                            f"{' ...' if len(day.missing) > 3 else ''})")
        if day is not None and not problems:
            # another day's papers under this date (a copy, a link): counted twice, and walk-forward would rank
            # it by a fit that learned these very papers; a few papers listed again on a later day are no copy
            earlier = Counter(first_day[p.id] for p in day.papers if p.id in first_day)
            if earlier and 2 * max(earlier.values()) > len(day.papers):
                same, n = earlier.most_common(1)[0]
                problems.append(f"{n} of its {len(day.papers)} papers are listed on {same} too: a copy of that day?")
        if problems:
            why = problems[0].removeprefix(f"{dd}: ").removeprefix(f"{dd}/")
            out.skipped.append({"day": dd.name, "problem": why})
            warn(f"{dd}: day skipped: {why}")
            continue
        out.days.append(day)
        used[day.date] = dd
        for p in day.papers:
            first_day.setdefault(p.id, day.date)
    if not out.days:
        raise InputError(f"no usable day in the history ({len(out.skipped)} skipped; each day needs "
                         "<date>/listing.jsonl and GPT's picks, e.g. <date>/gpt_scores.jsonl)", where=str(d))
    return out


def topics_note(days: list[HistoryDay], topics_text: str, where: str = "the prompt's paper_topics.txt") -> str | None:
    """A line when GPT picked some days under other topics than `topics_text` (the prompt set's, where the
    user's topics are now), as their Markdown digests show the prompt: the user changed topics mid-history, or
    never passed theirs. GPT's picks of those days are for the other topics, and a calibration learns them as
    the user's; eval measures against them. None when every digest that shows its prompt agrees (JSON and JSONL
    show none). The advice mentions the setting as {key:scoring.prompts} (errors.mentions names it)."""
    mine = " ".join(topics_text.split())
    shown = [d for d in days if d.topics is not None]
    other = [d.date for d in shown if d.topics != mine]
    if not other:
        return None
    kinds = len({d.topics for d in shown if d.topics != mine})
    return (f"GPT picked {counted(len(other), 'day')} of the history ({day_span(other)}) under other topics than "
            f"{where}, as {'its digest shows' if len(other) == 1 else 'their digests show'} the prompt"
            f"{f' ({kinds} sets of topics)' if kinds > 1 else ''}: GPT's picks there are for those topics, yet are "
            "measured against and learnt as picks for these (pass your topics with {key:scoring.prompts}, or leave "
            "those days out)")


def _entries(d: Path, own: Path | None, seen: set[Path]) -> list[Path]:
    """The entries of `d` that are days or are to be said (read_history): day folders, entries named as days that
    are no folder (a dangling link is said, not passed over), other folders; a folder that is no day but holds
    days (a month's, a year's) gives its own entries instead of itself. Hidden entries, the caller's own output
    folder and a folder met twice (a link back up) are left out."""
    out: list[Path] = []
    for p in d.iterdir():
        if p.name.startswith(".") or not (p.is_dir() or is_day_name(p.name)) or (own is not None and p.resolve() == own):
            continue
        if p.is_dir() and not is_day_name(p.name):
            where = p.resolve()
            if where in seen:
                continue
            inner = _entries(p, own, seen | {where})
            if any(is_day_name(x.name) for x in inner):
                out += inner
                continue
        out.append(p)
    return out


def load_history(directory: str | Path, warn: Warn = ignore_warning) -> list[HistoryDay]:
    """The usable days of read_history(directory, warn)."""
    return read_history(directory, warn).days
