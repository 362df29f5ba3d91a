"""The report of one read: what a source held, and what the read skipped, repaired or dropped. Readers fill
it; the CLI prints notes() as warnings. A warning callback hears each problem as it happens."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ..io import Warn, counted, grouped

MAX_WARNINGS = 20         # warnings kept verbatim; the rest are only counted
ABSTRACT_CAP = 20_000     # characters; arXiv caps abstracts at 1,920, so anything longer is junk or an attack
TITLE_CAP = 1_000
# an author's name and a comment, cut as the abstract and title are: a feed's one author of 3 MB, or a comment of
# 3 MB, was stored, shown and put whole into every scoring prompt of the paper (the prompt cuts the abstract and
# the number of authors, not a name). The longest names of the shared history are ~80 characters (a
# collaboration's "for the ... Collaboration" included), its longest comment ~1,000.
AUTHOR_CAP = 1_000
COMMENT_CAP = 5_000
# The longest line a JSON-lines reader takes (jsonl.capped_lines): a paper's line is a few kB (one with a
# collaboration's 3,000 authors ~200 kB); a longer one is skipped, counted, read past a piece at a time. A file
# without newlines (or a small gzip bomb) had its one line read whole into memory: 1.2 MB of .gz held 2.5 GB.
LINE_CAP = 16 * 1024 * 1024
# The largest XML document read (it is parsed whole, its tree ~5 times its size): arXiv's RSS feed of every
# archive for a day is 2.8 MB, an API page of 2,000 entries ~5 MB. A bigger one (a gzip bomb: 1.5 MB of .gz
# made 1.5 GB, held in 4.8 GB) is refused before it is read whole. An API answer saved whole (30,000 results)
# is ~70 MiB: the cap is the download's (net.MAX_ANSWER), so whatever a fetch took can be read back.
XML_CAP = 256 * 1024 * 1024
# why a record was skipped (ReadReport.reasons), in words
SKIP_REASONS = {"not_json": "not valid JSON", "not_object": "not a JSON object", "no_id": "without a valid arXiv id",
                "no_title": "without a title",
                "bad_verdict": "with a missing or malformed prefilter verdict (prefilter_score, kept)",
                "not_found": "not found", "overlong": f"longer than any record ({LINE_CAP // 2**20} MiB)"}


@dataclass
class ReadReport:
    """What one read saw. Readers fill it; the CLI prints `notes()` (a summary line per kind of problem), or
a caller that wants every problem as it happens passes `on_warning` (a ranker.io.Warn: "file:line: what").

    seen:        records in the source (items, entries, lines with a paper)
    kept:        papers yielded after filters and de-duplication
    filtered:    records dropped by the category / announce-type filter
    duplicates:  records whose id was already yielded (the first occurrence wins)
    unknown_type: records of an announce type ranker does not know (a type arXiv added later), left out
    skipped:     records that could not be used (bad JSON, no id, no title), each a counted warning
    reasons:     the skipped records by reason (a key of SKIP_REASONS)
    no_abstract: papers kept with an empty abstract
    truncated:   papers whose abstract (or title) was cut to the cap
    bad_bytes:   records (lines) whose invalid UTF-8 or lone \\ud800-\\udfff escapes were replaced with U+FFFD
    own_days:    with a day given for every paper: the announcement day a feed's channel gives, counted by item,
                 for date_note
    submitted_days: with a day given: the first-version submission days of the records (the API's <published>,
                 a snapshot's v1), counted, for date_note
    row_days:    with a day given: the days a ranker JSONL's rows carry (an announcement day for rows from a feed,
                 a submission day for rows from the API or a snapshot), counted, for date_note
    """
    source: str = ""
    seen: int = 0
    kept: int = 0
    filtered: int = 0
    duplicates: int = 0
    unknown_type: int = 0
    skipped: int = 0
    no_abstract: int = 0
    truncated: int = 0
    bad_bytes: int = 0
    feed_date: str = ""          # the channel's announcement day, when the source has one
    own_days: Counter = field(default_factory=Counter)
    submitted_days: Counter = field(default_factory=Counter)
    row_days: Counter = field(default_factory=Counter)
    where: str = ""              # the place of the record read last ("file:line"), for the filters' warnings
    reasons: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    on_warning: Warn | None = None
    _first: dict[str, str] = field(default_factory=dict)

    def warn(self, kind: str, where: str, msg: str, reason: str | None = None) -> None:
        """Count one problem of `kind` (and its reason, for a skipped record); keep the first few messages (and
        the first place of each kind)."""
        setattr(self, kind, getattr(self, kind) + 1)
        if reason is not None:
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        self._first.setdefault(kind, where)
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(f"{where}: {msg}")
        if self.on_warning is not None:
            self.on_warning(f"{where}: {msg}")

    def submitted(self, day: str | None) -> None:
        """A record's first version was submitted on `day` (YYYY-MM-DD; None: not known)."""
        if day:
            self.submitted_days[day] += 1

    def date_note(self, day: str) -> str | None:
        """Why labelling the papers read with the announcement day `day` (YYYY-MM-DD) contradicts the source, in
        words; else None (the source agrees, or has no day to compare). A feed's channel gives its announcement
        day and `day` is not it; papers were submitted on or after `day` (a paper's submission day, in UTC, is
        always before its announcement's: the window for D closes 14:00 ET the weekday before D), so they cannot
        be in that day's announcement; a listing's rows, dated by announcement or by submission, carry a day after
        `day` (true of either kind). Rows dated before `day` say nothing: a submission day is always earlier."""
        labelled = f"the papers are labelled {day} all the same"
        own = sorted(self.own_days)
        if len(own) == 1 and own[0] != day:
            return f"{self.source} is the announcement of {own[0]}, not {day}; {labelled}"
        if len(own) > 1 and day not in own:
            return (f"{self.source} gives {len(own):,} announcement days ({own[0]} to {own[-1]}), none of them "
                    f"{day}; {labelled}")
        late = sorted(d for d in self.submitted_days if d >= day)
        if late:
            n = sum(self.submitted_days[d] for d in late)
            return (f"{counted(n, 'paper')} in {self.source} {'was' if n == 1 else 'were'} submitted on or after "
                    f"{day} (up to {late[-1]}) and cannot be in that day's announcement; {labelled}")
        after = sorted(d for d in self.row_days if d > day)
        if after:
            n = sum(self.row_days[d] for d in after)
            return (f"{counted(n, 'row')} of {self.source} {'is' if n == 1 else 'are'} dated after {day} "
                    f"(up to {after[-1]}); {labelled}")
        return None

    def first_where(self, kind: str) -> str | None:
        return self._first.get(kind)

    def take(self, kinds: tuple[str, ...]) -> "ReadReport":
        """A report of only these kinds of problem, moved out of this one (a caller that treats them
        differently: the history reader skips a day for unreadable records, never for an empty abstract)."""
        out = ReadReport(source=self.source)
        for kind in kinds:
            setattr(out, kind, getattr(self, kind))
            setattr(self, kind, 0)
            if kind in self._first:
                out._first[kind] = self._first.pop(kind)
        if "skipped" in kinds:
            out.reasons, self.reasons = self.reasons, {}
        return out

    def notes(self) -> list[str]:
        """One line per kind of problem (the CLI prints them as warnings)."""
        out = []
        caps = f"{grouped(ABSTRACT_CAP)}/{grouped(TITLE_CAP)}/{grouped(AUTHOR_CAP)}/{grouped(COMMENT_CAP)}"
        labels = {                   # what one is, what several are (it said "1 records skipped")
            "skipped": ("record skipped", "records skipped", " (unreadable or without id/title)"),
            "bad_bytes": ("record", "records", " with invalid UTF-8 or a lone surrogate escape (replaced with U+FFFD)"),
            "duplicates": ("duplicate id dropped", "duplicate ids dropped", " (first occurrence kept)"),
            "unknown_type": ("record", "records", " of an announce type ranker does not know skipped (not new, cross, "
                             "replace or replace-cross)"),
            "no_abstract": ("paper", "papers", " without an abstract (kept with an empty abstract)"),
            "truncated": ("overlong abstract/title/author/comment", "overlong abstracts/titles/authors/comments",
                          f" cut to {caps} characters"),
        }
        for kind, (one, many, rest) in labels.items():
            n = getattr(self, kind)
            if n:
                out.append(f"{counted(n, one, many)}{rest}; first at {self._first.get(kind, self.source)}")
        return out

