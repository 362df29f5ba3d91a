"""The user's own labels (thumbs up/down): moving them between machines, and turning them into training rows.

A labels file is JSONL, one label a line: {"id": "2505.09572", "label": 1, "time": "2025-05-15T09:12:03Z"}
(label +1 = thumbs up, -1 = thumbs down, 0 = a label taken back; "day", the digest day of the page it was given
on, YYYY-MM-DD, is written and read too). Importing is idempotent: for a paper labelled on both sides the later
verdict wins, a taking back included (an older thumb from another machine does not bring it back); at the same
second (a file's times are whole seconds) a taking back wins, then a thumb down, then a thumb up (Store._wins).

As training data (training_rows) a label overrides GPT's pick for that paper and weighs LABEL_WEIGHT times a
GPT row: the user's taste is the target, GPT's picks are the stand-in for it. `ranker calibrate` learns from the
stored labels (training_labels): a label on a paper of a history day overrides GPT's pick there; labelled papers
in no history day join the fit as days of their own (label_days), so labels alone train a calibration too once
there are MIN_LABELS_EACH of each kind.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from .errors import InputError
from .io import arxiv_id, atomic_write, json_loads, read_text
from .prefilter.history import LABEL_DAY_SUFFIX, is_day_name
from .records import Label, Paper

if TYPE_CHECKING:
    from .prefilter.history import HistoryDay
    from .store import Store

LABEL_WEIGHT = 3.0
# Labels alone (no GPT history) train a calibration once there are this many of each kind.
MIN_LABELS_EACH = 10
_WORDS = {"up": 1, "down": -1, "+1": 1, "-1": -1, "1": 1, "0": 0, "undo": 0}
_SAID = {1: "thumbs up", -1: "thumbs down", 0: "taken back"}
# How far past this machine's clock a label's time may be: another machine's clock running ahead, a local time
# written as UTC (up to 14 hours). A later one would win every merge with any verdict given before it.
CLOCK_SKEW = 24 * 3600


# --------------------------------------------------------------------------- files
def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(raw, where: str) -> float:
    """A label's time (seconds since 1970) from an ISO 8601 time or seconds; an InputError naming `where` for one
    that is none, or that is more than CLOCK_SKEW past this machine's clock."""
    at = _given_time(raw, where)
    now = time.time()
    if at > now + CLOCK_SKEW:
        raise InputError(f"'time' {_iso(at)} is later than this machine's clock ({_iso(now)}) by more than a day: "
                         "a label given in the future would win over every verdict given before it", where=where)
    return at


def _given_time(raw, where: str) -> float:
    if isinstance(raw, bool):
        raise InputError("'time' must be an ISO 8601 time or seconds since 1970", where=where)
    if isinstance(raw, (int, float)):
        try:
            _iso(raw)                 # a time the file can be written back with (not NaN, inf or year 10^6)
        except (ValueError, OverflowError, OSError):
            raise InputError(f"'time' is not a time: {raw!r} seconds since 1970", where=where) from None
        return float(raw)
    if isinstance(raw, str) and raw.strip():
        try:
            dt = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(f"'time' is not an ISO 8601 time: {raw!r}", where=where) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return dt.timestamp()
    raise InputError("missing 'time' (an ISO 8601 time, e.g. 2025-05-15T09:12:03Z)", where=where)


def _label(raw, where: str) -> int:
    if isinstance(raw, bool):
        raise InputError(f"'label' must be 1 (up), -1 (down) or 0 (taken back), got {json.dumps(raw)}", where=where)
    if isinstance(raw, (int, float)) and raw in (1, -1, 0):
        return int(raw)
    if isinstance(raw, str) and raw.strip().lower() in _WORDS:
        return _WORDS[raw.strip().lower()]
    raise InputError(f"'label' must be 1 (up), -1 (down) or 0 (taken back), got {json.dumps(raw)}", where=where)


def read_labels(path: str | Path, name: str | None = None) -> list[Label]:
    """Every label of a JSONL file; the first bad line is an InputError naming file:line. An id is kept
    without its version (2505.09572v2 labels 2505.09572); one that is not an arXiv id is a bad line (every
    paper the store holds has one, so such a label could never apply). Two verdicts on one paper at the same
    time are a bad line too: neither is the later one, and the import would keep whichever came first. `name`:
    what the errors call the file (the CLI's `stdin` for the /dev/stdin read for '-'), else its path."""
    name = name or str(path)
    out: list[Label] = []
    given: dict[tuple[str, float], tuple[int, int]] = {}       # (id, time) -> (label, line)
    for lineno, line in enumerate(read_text(path, name=name).splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{name}:{lineno}"
        try:
            d = json_loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON ({e.msg})", where=where) from None
        if not isinstance(d, dict):
            raise InputError("expected a JSON object with id, label, time", where=where)
        pid = d.get("id")
        if not isinstance(pid, str) or not pid.strip():
            raise InputError("missing 'id' (the arXiv id)", where=where)
        if arxiv_id(pid) is None:
            raise InputError(f"'id' is not an arXiv id: {pid.strip()[:60]!r}", where=where)
        day = d.get("day")
        if day is not None and day != "" and not (isinstance(day, str) and is_day_name(day)):
            raise InputError(f"'day' must be a day YYYY-MM-DD, got {json.dumps(day)[:40]}", where=where)
        lb = Label(paper_id=arxiv_id(pid), label=_label(d.get("label"), where), day=day or None,
                   created_at=_time(d.get("time"), where))
        label, first = given.setdefault((lb.paper_id, lb.created_at), (lb.label, lineno))
        if label != lb.label:
            raise InputError(f"{lb.paper_id} is {_SAID[lb.label]} here and {_SAID[label]} on line {first}, at the "
                             "same time: which one?", where=where)
        out.append(lb)
    return out


def label_lines(labels: Iterable[Label]) -> Iterator[str]:
    """The JSONL lines of a labels file: {"id", "label", "time"} and "day" when known."""
    for lb in labels:
        row = {"id": lb.paper_id, "label": lb.label, "time": _iso(lb.created_at)}
        if lb.day:
            row["day"] = lb.day
        yield json.dumps(row, ensure_ascii=False) + "\n"


def export_labels(store: "Store", path: str | Path) -> int:
    """Write the store's labels, and the labels taken back (label 0), oldest first, to a JSONL file,
    atomically (a killed export's temporary file removed first). Returns how many lines. A store without any
    leaves a file that holds something as it is: an empty or mistyped database (`export` typed for `import` on
    a new machine) must not wipe the labels file brought over from the old one. The labels and the undos are read as one state of the store: a thumb given
    (in `ranker serve`) on a paper taken back before, between the two reads, left the paper out of both."""
    with store.read_snapshot():
        labels = [*store.get_labels().values(), *store.taken_back()]
    labels.sort(key=lambda lb: (lb.created_at, lb.paper_id))
    if not labels and holds_something(path):
        return 0
    atomic_write(path, label_lines(labels), tidy=True)
    return len(labels)


def holds_something(path: str | Path) -> bool:
    """Whether `path` is a regular file (through a link) that is not empty."""
    try:
        return Path(path).expanduser().is_file() and Path(path).expanduser().stat().st_size > 0
    except OSError:
        return False


def import_labels(store: "Store", path: str | Path, name: str | None = None) -> dict[str, int]:
    """Read the whole file first (a bad line stores nothing), then merge it in one transaction. `name`: as
    read_labels'."""
    return store.import_labels(read_labels(path, name))


# --------------------------------------------------------------------------- training
def labels_needed(labels: Mapping[str, bool]) -> int:
    """How many more labels a calibration from labels alone needs (0: enough): MIN_LABELS_EACH of each kind."""
    up = sum(1 for v in labels.values() if v)
    down = len(labels) - up
    return max(0, MIN_LABELS_EACH - up) + max(0, MIN_LABELS_EACH - down)


class TrainingRows(NamedTuple):
    papers: list[Paper]
    y: np.ndarray            # bool: picked (GPT) or liked (the user)
    weights: np.ndarray      # 1 for a GPT row, LABEL_WEIGHT for a row the user labelled
    groups: list[str]        # each row's day, for the by-day folds of the fit


def training_rows(history_days: Sequence["HistoryDay"], labels: Mapping[str, bool], *,
                  label_papers: Mapping[str, Paper] | None = None, label_days: Mapping[str, str] | None = None,
                  label_weight: float = LABEL_WEIGHT) -> TrainingRows:
    """The rows a calibration learns from. Every paper of every history day, its target GPT's pick, unless the
    user labelled it: then the label is the target and the row weighs `label_weight`. Labelled papers in no
    history day join as rows of their own when `label_papers` holds them (grouped under `label_days[id]`, else the
    paper's date), so labels alone, with no GPT history, give a training set too."""
    papers: list[Paper] = []
    y: list[bool] = []
    w: list[float] = []
    groups: list[str] = []
    seen: set[str] = set()
    for day in history_days:
        for p in day.papers:
            seen.add(p.id)
            papers.append(p)
            groups.append(day.date)
            if p.id in labels:
                y.append(bool(labels[p.id]))
                w.append(label_weight)
            else:
                y.append(p.id in day.picks)
                w.append(1.0)
    for pid in sorted(labels):
        if pid in seen or label_papers is None or pid not in label_papers:
            continue
        p = label_papers[pid]
        papers.append(p)
        groups.append((label_days or {}).get(pid) or p.date or "labels")
        y.append(bool(labels[pid]))
        w.append(label_weight)
    return TrainingRows(papers, np.asarray(y, dtype=bool), np.asarray(w, dtype=np.float64), groups)


def store_training_rows(store: "Store", history_days: Iterable["HistoryDay"] = ()) -> TrainingRows:
    """training_rows() with the store's labels, and the store's papers for labels outside the history."""
    stored = store.get_labels()
    return training_rows(list(history_days), {pid: lb.liked for pid, lb in stored.items()},
                         label_papers=store.get_papers(stored),
                         label_days={pid: lb.day for pid, lb in stored.items() if lb.day})


class TrainingLabels(NamedTuple):
    labels: dict[str, bool]          # paper id -> liked, every stored label
    usable: dict[str, bool]          # those the fit can use: on a history day's paper or one the store holds
    days: list["HistoryDay"]         # the labelled papers in no history day, as days of their own
    on_history: int                  # labels on papers of the history days (each overrides GPT's pick)
    outside: int                     # labels on papers in no history day, used through `days`
    unknown: int                     # labels on papers the store does not hold (left out)
    dates: dict[str, str] | None = None   # paper id -> the day its label was given (given_on)

    @property
    def used(self) -> int:
        return len(self.usable)


def label_days(history_days: Sequence["HistoryDay"], labels: Mapping[str, bool], *,
               label_papers: Mapping[str, Paper], label_days_of: Mapping[str, str] | None = None,
               ) -> list["HistoryDay"]:
    """The labelled papers of `label_papers` that are in no history day, as HistoryDays (one per day the labels
    were given, else the paper's date; named "<day>+labels"), their picks the papers the user liked."""
    from .prefilter.history import HistoryDay
    seen = {p.id for d in history_days for p in d.papers}
    outside = {pid: v for pid, v in labels.items() if pid not in seen}
    rows = training_rows([], outside, label_papers=label_papers, label_days=label_days_of)
    by_day: dict[str, HistoryDay] = {}
    for p, liked, g in zip(rows.papers, rows.y, rows.groups):
        day = by_day.setdefault(g, HistoryDay(date=g + LABEL_DAY_SUFFIX, papers=[], picks=set(), source="labels"))
        day.papers.append(p)
        if liked:
            day.picks.add(p.id)
    return [by_day[g] for g in sorted(by_day)]


def training_labels(store: "Store", history_days: Sequence["HistoryDay"] = ()) -> TrainingLabels:
    """The store's labels as calibration input beside `history_days` (see label_days). The labelled papers
    outside the history join as the days their labels were given (given_on), not as their own dates: a
    walk-forward fit takes the days before its test day, which must hold only the labels given before it."""
    stored = store.get_labels()
    labels = {pid: lb.liked for pid, lb in stored.items()}
    seen = {p.id for d in history_days for p in d.papers}
    papers = store.get_papers([pid for pid in stored if pid not in seen])
    dates = {pid: given_on(lb) for pid, lb in stored.items()}
    days = label_days(history_days, labels, label_papers=papers, label_days_of=dates)
    held = seen | {p.id for d in days for p in d.papers}
    usable = {pid: v for pid, v in labels.items() if pid in held}
    on_history = sum(1 for pid in labels if pid in seen)
    return TrainingLabels(labels, usable, days, on_history, len(usable) - on_history, len(labels) - len(usable),
                          dates)


def given_on(label: Label) -> str:
    """The day a label was given: the later of its digest day and the local day of its time (this machine's
    clock, the one `ranker serve` ran on: in UTC a thumb clicked at 18:00 in California on the day's digest
    fell on the next day, and the walk-forward left it out of that next day's fit). The digest day is the day
    of the page it was clicked on, not when: a thumb given in December on a search result, a paper's page or an
    old day's page carries that old day, and counts from December (one clicked on the day's own digest that
    day stays that day)."""
    clicked = datetime.fromtimestamp(label.created_at).strftime("%Y-%m-%d")
    return max(label.day or "", clicked)
