"""Our own papers JSONL: the layout of shared/data/days/*/listing.jsonl and of `ranker fetch --out`.

Also reads `ranker prefilter` output, whose rows carry extra keys (prefilter_score, kept, topic, ...): every
key we do not model is kept in Paper.extra, and a key of the user's own is written back unchanged; the verdict
(records.VERDICT_KEYS) is read_ranked's, which turns it into Ranked records, and is not written into a papers
file (Paper.to_dict). A row with a malformed verdict is skipped, counted. The per-category keys of a listing
("cs.LG": "new" | "cross" | null) give the announce type when the row has none.
"""
from __future__ import annotations

from typing import Iterable, Iterator

from ..errors import InputError
from ..io import SURROGATE_ESCAPE, json_loads, without_lone_surrogates
from ..records import ANNOUNCE_TYPES, PAPER_FIELDS, Paper, Ranked, announce_spelling, has_verdict
from .filters import stronger
from .normalize import clean_categories, iso_day, make_paper
from .report import LINE_CAP, SKIP_REASONS, ReadReport

_KNOWN = set(PAPER_FIELDS)


class Overlong(bytes):
    """In place of a line longer than LINE_CAP (its bytes never held): `size`, how long it was."""
    size: int = 0


def capped_lines(f, cap: int = LINE_CAP) -> Iterator[bytes]:
    """The lines of a binary stream, as iterating it gives them, except that a line longer than `cap` bytes
    comes as an empty Overlong whose `size` says its length (newline included): memory stays bounded whatever
    the stream holds."""
    while line := f.readline(cap + 1):
        if len(line) <= cap or line.endswith(b"\n"):
            yield line
            continue
        over = Overlong()
        over.size = len(line) + rest_of_line(f)
        yield over


def rest_of_line(f) -> int:
    """Read a binary stream past the end of the line it stands in, in bounded pieces; how many bytes that was
    (its newline included)."""
    n = 0
    while more := f.readline(1 << 20):
        n += len(more)
        if more.endswith(b"\n"):
            break
    return n


def _announce(d: dict) -> str | None:
    """The row's announce type: its `announce_type` as given, for make_paper to judge (a type ranker does not
    know is skipped, counted, as the feed's is: it was read as not given, the row's per-category keys' type
    taken, or else "new", and the paper entered the day's digest unasked); else the strongest of its
    per-category keys ("cs.LG": "new"); else, for make_paper to judge alike, the first per-category key of one
    of the row's own categories that gives a type ranker does not know ("cs.LG": "errata": read as no type, it
    was "new"); else None. A key of the user's with a dot ("my.note": "Errata") that names none of the row's
    categories is no announce type."""
    given = d.get("announce_type")
    if announce_spelling(given) is not None:              # "New", "replace_cross" as "new", "replace-cross"
        return given
    found = unknown = None
    own = None                                            # the row's categories, read at the first need
    for k, v in d.items():
        if "." not in k or (spelled := announce_spelling(v)) is None:
            continue
        if spelled in ANNOUNCE_TYPES:                     # "cs.LG": "new"
            found = stronger(found, spelled)
        elif unknown is None:
            own = own if own is not None else clean_categories(d.get("categories"), d.get("primary_category"))
            if k in own:
                unknown = v
    return found if found is not None else unknown


def iter_jsonl(lines: Iterable[bytes], source: str, report: ReadReport | None = None, *,
               date: str | None = None, part: bool = False) -> Iterator[Paper]:
    """The papers of our JSON lines; `part` as for snapshot.iter_snapshot."""
    report = report if report is not None else ReadReport(source=source)
    good = 0
    for where, d in json_lines(lines, source, report):
        version = d.get("version")
        if date and (own := iso_day(d.get("date"))):
            report.row_days[own] += 1
        paper = make_paper(report, where, raw_id=d.get("id"), title=d.get("title"), abstract=d.get("abstract"),
                           authors=d.get("authors"), categories=d.get("categories"),
                           primary=d.get("primary_category"),
                           date=date or iso_day(d.get("date")) or "", comment=d.get("comment"),
                           announce_type=_announce(d),
                           version=version if isinstance(version, int) and not isinstance(version, bool) else None,
                           extra={k: v for k, v in d.items() if k not in _KNOWN})
        if paper is None:
            continue
        if has_verdict(d) and Ranked.from_paper(paper) is None:
            report.warn("skipped", where, f"{paper.id}: prefilter_score or kept missing or malformed; skipped",
                        "bad_verdict")
            continue
        good += 1
        yield paper
    if good == 0 and report.skipped and not part:
        raise no_valid_records(report, "paper")


def json_lines(lines, source: str, report: ReadReport):
    """Yield (where, object) for each non-blank line of a JSON-lines byte stream, a byte-order mark ignored
    (an Overlong line, from capped_lines, is skipped with a counted warning). Invalid UTF-8 is replaced (counted); a line that is not a JSON object is skipped with a counted warning
    naming file:line."""
    for lineno, raw in enumerate(lines, start=1):
        if isinstance(raw, Overlong):
            report.seen += 1
            report.warn("skipped", f"{source}:{lineno}", f"a line of {raw.size:,} bytes, longer than any record "
                        f"({LINE_CAP // 2**20} MiB at most): skipped", "overlong")
            continue
        raw = raw.removeprefix(b"\xef\xbb\xbf")      # a byte-order mark (an editor's, or a file's of several)
        if not raw.strip():
            continue
        where = f"{source}:{lineno}"
        bad = False
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text, bad = raw.decode("utf-8", errors="replace"), True
            report.warn("bad_bytes", where, "invalid UTF-8 bytes replaced with U+FFFD")
        try:
            obj = json_loads(text)
        except ValueError as e:
            report.seen += 1
            msg = str(e).splitlines()[0][:80] if str(e) else "syntax error"
            report.warn("skipped", where, f"not valid JSON ({msg}); a truncated line? skipped", "not_json")
            continue
        report.seen += 1
        if SURROGATE_ESCAPE.search(text):
            try:
                obj, n = without_lone_surrogates(obj)
            except RecursionError:
                report.warn("skipped", where, "nested too deeply; skipped", "not_object")
                continue
            if n and not bad:                        # bad_bytes counts lines: this one is counted already
                report.warn("bad_bytes", where, "a lone surrogate escape (\\ud800-\\udfff), no character, "
                            "replaced with U+FFFD")
        if not isinstance(obj, dict):
            report.warn("skipped", where, f"expected a JSON object, got {type(obj).__name__}; skipped", "not_object")
            continue
        yield where, obj


def no_valid_records(report: ReadReport, kind: str) -> InputError:
    """Every record was skipped: how many, why (a prefilter row without its `kept` is no unreadable line), and
    where the first one is."""
    first = report.first_where("skipped") or report.source
    why = ", ".join(f"{n} {SKIP_REASONS.get(r, r)}" for r, n in sorted(report.reasons.items(), key=lambda x: -x[1]))
    return InputError(f"no valid {kind} line ({report.skipped} skipped{': ' + why if why else ''}; first at {first})",
                      where=report.source)

