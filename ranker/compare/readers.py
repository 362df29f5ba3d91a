"""The one reader of judgements: GPT's digests and a local model's scores, for `ranker compare` and for
calibration's history (ranker.prefilter.history). Paper listings and prefilter output are read by
ranker.sources.

One reader serves both sides. A score file is any of:

* the seed's Markdown digest ("## N. [Title](https://arxiv.org/abs/ID)" blocks with **ArXiv ID:**,
  **Comment:**, **Relevance:**, **Novelty:** lines; whatever follows the paper blocks, such as the
  "# Paper Selection Prompt" section, is not a paper);
* the seed's JSON output / a `ranker run` JSON digest: one object keyed by arXiv id whose values carry
  ARXIVID, RELEVANCE, NOVELTY, COMMENT, title, ...;
* JSONL, one judgement a line: ARXIVID (or `id` / `arxiv_id`), RELEVANCE, NOVELTY, COMMENT
  (`ranker score` output, or shared/data/days/*/gpt_scores.jsonl).

The format is detected from the content, not the file name. A path may be a file, a directory (every
recognised file in it, recursively) or a glob. Papers are matched by arXiv id with the version stripped.
Bad blocks and lines are skipped with a warning naming file:line; a missing file is an InputError.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..digest import AUTHOR_MATCH, md_unescape
from ..errors import InputError, keyed, where
from ..io import (STDIN, Warn, arxiv_id, expand_paths, ignore_warning, json_loads, read_text,
                  without_lone_surrogates)
from ..records import MIN_NOVELTY, MIN_RELEVANCE

_DATE_RE = re.compile(r"(\d{4}-\d{2}-\d{2})")

# Markdown digest patterns (the seed's layout; tolerant of spacing and of a missing "N." number).
_MD_HEADER = re.compile(r"^##\s+(?:\d+\.\s+)?\[(?P<title>.*)\]\((?P<url>[^)\s]+)\)")
_MD_FIELD = re.compile(r"^\*\*(?P<name>[A-Za-z][A-Za-z ]*?):\*\*\s*(?P<value>.*)$")
_MD_DAY = re.compile(r"^#\s+.*?(\d{4}-\d{2}-\d{2})")
_MD_DIGEST_TITLE = re.compile(r"#\s+Personalized Daily Arxiv Papers", re.IGNORECASE)   # the seed's, even empty
_MD_TOTAL = re.compile(r"^Total relevant papers:\s*(\d+)\s*$")
_NUMBER = re.compile(r"^[+-]?\d+(?:\.\d+)?")


_ID_KEYS = ("ARXIVID", "ARXIV_ID", "arxiv_id", "arxivid", "id", "ID")
KNOWN_FORMATS = ("expected the seed's Markdown digest, its JSON output, or JSONL judgements "
                 "(ARXIVID or id, RELEVANCE, NOVELTY)")
SCORE_SUFFIXES = (".md", ".markdown", ".txt", ".json", ".jsonl", ".ndjson")


@dataclass
class ScoreRow:
    """One paper's judgement as read from a file."""
    id: str
    relevance: float
    novelty: float
    comment: str = ""
    title: str = ""
    date: str = ""        # announcement day when the file says (row field, digest header or file name)
    source: str = ""      # file:line it came from
    author_match: bool = False   # in the digest for its authors ("Author match"), scored but not picked

    def picked(self, min_relevance: float = MIN_RELEVANCE, min_novelty: float = MIN_NOVELTY) -> bool:
        """Whether this judgement is a pick: scores at the cut-offs, and not in the digest for its authors."""
        return not self.author_match and self.relevance >= min_relevance and self.novelty >= min_novelty


@dataclass
class PrefilterRow:
    id: str
    score: float
    kept: bool
    date: str = ""


def date_from_path(path: Path) -> str:
    """The last YYYY-MM-DD in a path ('' when none): the day of a file named after it."""
    found = _DATE_RE.findall(str(path))
    return found[-1] if found else ""


def _number(value: Any) -> float | None:
    """A score as a finite float, or None when it is not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        v = float(value)
    else:
        m = _NUMBER.match(str(value).strip())
        if not m:
            return None
        v = float(m.group(0))
    return v if math.isfinite(v) else None


def _ci_get(d: dict, name: str) -> Any:
    """d[name] trying NAME, name, Name."""
    for k in (name.upper(), name.lower(), name.capitalize()):
        if k in d:
            return d[k]
    return None


def is_author_match(comment: Any, names: Any = None) -> bool:
    """Whether a digest entry is there for its authors, not picked: the seed's COMMENT "Author match" (a
    `ranker run` JSON digest also lists the pinned names as `author_match`)."""
    return bool(names) or str(comment or "").strip().lower() == AUTHOR_MATCH.lower()


class _Counting:
    """A Warn that counts what it passed on, and keeps the first: a file that gave no row says so once only when
    something in it was skipped (a digest that picked nothing, or only author matches, is valid and says nothing)."""

    def __init__(self, warn: Warn):
        self.warn, self.n, self.first = warn, 0, ""

    def __call__(self, msg: str) -> None:
        self.n += 1
        self.first = self.first or msg
        self.warn(msg)


class _JsonNumber(float):
    """A JSON number with a fraction that keeps its text: an arXiv id written unquoted, 2506.16060, is that id,
    where str() of the float gives 2506.1606, another (valid-looking) id, and the judgement was silently lost."""

    def __new__(cls, text: str):
        number = super().__new__(cls, text)
        number.text = text
        return number


def _row_from_dict(d: dict, src: str, file_day: str, warn: Warn, key_id: str | None = None,
                   notice: Warn | None = None) -> ScoreRow | None:
    raw_id = next((d[k] for k in _ID_KEYS if d.get(k) not in (None, "")), None) or key_id
    raw_id = getattr(raw_id, "text", raw_id)
    if not raw_id:
        warn(f"{src}: skipped: no arXiv id (expected ARXIVID or id)")
        return None
    pid = arxiv_id(str(raw_id))
    if pid is None:
        warn(f"{src}: skipped: {str(raw_id)[:60]!r} is not an arXiv id")
        return None
    comment = d.get("COMMENT", d.get("Comment", ""))  # lowercase 'comment' is arXiv's own comment field
    author_match = is_author_match(comment, d.get("author_match"))
    raw_rel, raw_nov = _ci_get(d, "relevance"), _ci_get(d, "novelty")
    if author_match and raw_rel is None and raw_nov is None:
        return None              # an author match that was not scored: in the digest, not a judgement
    rel, nov = _number(raw_rel), _number(raw_nov)
    if rel is None or nov is None:
        missing = [n for n, v in (("RELEVANCE", rel), ("NOVELTY", nov)) if v is None]
        say = notice if notice is not None and raw_rel is None and raw_nov is None else warn   # unscored: no pick
        say(f"{src}: skipped {pid}: {' and '.join(missing)} missing or not a number")
        return None
    # a JSON "\ud800" escape stands for no character: report.html (UTF-8) could not be written with it, in
    # any text of the row that reaches it (its date too: a row of the per-day table)
    (comment, title, date), lone = without_lone_surrogates(["" if comment is None else str(comment),
                                                            str(d.get("title") or d.get("TITLE") or ""),
                                                            str(d.get("date") or file_day or "")])
    if lone:
        warn(f"{src}: a lone surrogate escape (\\ud800-\\udfff), no character, replaced with U+FFFD")
    return ScoreRow(id=pid, relevance=rel, novelty=nov, comment=comment, title=title,
                    date=date, source=src, author_match=author_match)


def _is_score_dict(d: Any) -> bool:
    return isinstance(d, dict) and any(k.lower() in ("relevance", "novelty") for k in d)


# ---------------------------------------------------------------------------------------- formats

def _lines(text: str) -> list[str]:
    """The text's lines, split at line feeds only (a CR before one is dropped): str.splitlines() also breaks at
    U+2028, U+2029, U+0085, VT and FF, which may sit inside a title or a JSON string, so a paper lost its
    block (its title went to the next) and a JSONL record was cut in two."""
    return [line.removesuffix("\r") for line in text.split("\n")]


def _parse_markdown(text: str, path: Path, warn: Warn, notice: Warn, name: str) -> tuple[list[ScoreRow], str]:
    lines = _lines(text)
    day = date_from_path(path)
    rows: list[ScoreRow] = []
    block: dict[str, Any] | None = None
    blocks = headings = 0
    total: int | None = None             # the digest's "Total relevant papers: N"

    def close(b: dict[str, Any] | None) -> None:
        if b is None:
            return
        src = where(name, b["line"])
        fields = b["fields"]
        pid = arxiv_id(fields.get("arxiv id") or b["url"])
        if not pid:
            warn(f"{src}: skipped paper block: no arXiv id (no **ArXiv ID:** line, no arxiv.org/abs link)")
            return
        comment = md_unescape(fields.get("comment", ""))
        author_match = is_author_match(comment)
        if author_match and fields.get("relevance") is None and fields.get("novelty") is None:
            return               # an author match that was not scored: in the digest, not a judgement
        rel, nov = _number(fields.get("relevance")), _number(fields.get("novelty"))
        if rel is None or nov is None:
            missing = [n for n, v in (("Relevance", rel), ("Novelty", nov)) if v is None]
            say = notice if fields.get("relevance") is None and fields.get("novelty") is None else warn
            say(f"{src}: skipped paper block {pid}: {' and '.join(missing)} missing or not a number")
            return
        rows.append(ScoreRow(id=pid, relevance=rel, novelty=nov, comment=comment, title=md_unescape(b["title"]),
                             date=day, source=src, author_match=author_match))

    current_field: str | None = None
    for i, line in enumerate(lines, start=1):
        if not blocks:
            m = _MD_DAY.match(line)
            if m:
                day = m.group(1)   # the digest's own "# ... 2025-06-23" heading beats the file name
            m = _MD_TOTAL.match(line.strip())
            if m:
                total = int(m.group(1))
        h = _MD_HEADER.match(line)
        if h:
            close(block)
            block = {"line": i, "title": h.group("title").strip(), "url": h.group("url"), "fields": {}}
            blocks += 1
            current_field = None
            continue
        if line.startswith("# ") or line.strip() == "#":
            # A top-level heading after the papers, or after the digest's title when it has no paper (e.g.
            # "# Paper Selection Prompt"), ends the paper list.
            headings += 1
            if blocks or headings > 1:
                close(block)
                block = None
                break
            continue
        if block is None:
            continue
        f = _MD_FIELD.match(line.strip())
        if f:
            current_field = f.group("name").strip().lower()
            block["fields"][current_field] = f.group("value").strip()
        elif line.strip() in ("", "---"):
            current_field = None
        elif current_field == "comment":
            block["fields"]["comment"] += " " + line.strip()
    close(block)
    picked_nothing = not blocks and bool(_MD_DIGEST_TITLE.match(text.lstrip())) and not total
    if not blocks and not picked_nothing:
        warn(f"{name}: no paper blocks found in this Markdown digest"
             + (f" (it says {total} relevant papers)" if total else ""))
    elif total and blocks < total:      # the seed counts its author matches in the total, ranker on their own line
        warn(f"{name}: {blocks} paper blocks found, but the digest says {total} relevant papers: is it cut short?")
    return rows, day


_PROMPT_HEADING = "# Paper Selection Prompt"
_PAPER_LIST = "[PAPER LIST HERE]"
_QUOTE = re.compile(r"^\s*> ?")


def digest_topics(text: str) -> str | None:
    """The topics a Markdown digest's model was asked to pick for, as the digest shows its prompt (the seed's
    layout, and `ranker run`'s): the user prompt's text after its "[PAPER LIST HERE]" placeholder, under the
    last "# Paper Selection Prompt" heading, unquoted, whitespace folded (so it compares with a paper_topics.txt
    as read). None when the digest shows no prompt."""
    lines = _lines(text)
    start = max((i for i, line in enumerate(lines) if line.strip() == _PROMPT_HEADING), default=None)
    if start is None:
        return None
    after = [_QUOTE.sub("", line) for line in lines[start + 1:]]
    at = next((i for i, line in enumerate(after) if line.strip() == _PAPER_LIST), None)
    if at is None:
        return None
    topics = " ".join(" ".join(after[at + 1:]).split())
    return topics or None


def _line_of(text: str, needle: str) -> int | None:
    idx = text.find(needle)
    return text.count("\n", 0, idx) + 1 if idx >= 0 else None


def _parse_json_digest(obj: Any, text: str, path: Path, warn: Warn, notice: Warn,
                       name: str) -> tuple[list[ScoreRow], str]:
    warn = _Counting(warn)
    day = date_from_path(path)
    rows: list[ScoreRow] = []
    items: Iterable[tuple[str | None, Any]]
    if isinstance(obj, dict):
        items = obj.items()
    else:  # a JSON list of judgements
        items = ((None, v) for v in obj)
    for n, (key, val) in enumerate(items):
        line = _line_of(text, json.dumps(key)) if key is not None else None
        src = where(name, line) if line else f"{name} (entry {key if key is not None else n})"
        if not isinstance(val, dict):
            warn(f"{src}: skipped entry {key if key is not None else n}: not an object")
            continue
        row = _row_from_dict(val, src, day, warn, key_id=key, notice=notice)
        if row:
            rows.append(row)
    if not rows and warn.n:
        warn(f"{name}: no papers in this JSON digest")
    return rows, day


def _parse_jsonl(text: str, path: Path, warn: Warn, notice: Warn, name: str) -> tuple[list[ScoreRow], str]:
    warn = _Counting(warn)
    day = date_from_path(path)
    rows: list[ScoreRow] = []
    for i, line in enumerate(_lines(text), start=1):
        s = line.strip()
        if not s:
            continue
        src = where(name, i)
        try:
            d = json_loads(s, parse_float=_JsonNumber)
        except json.JSONDecodeError as e:
            warn(f"{src}: skipped line: not valid JSON ({e.msg})")
            continue
        if not isinstance(d, dict):
            warn(f"{src}: skipped line: not a JSON object")
            continue
        row = _row_from_dict(d, src, day, warn, notice=notice)
        if row:
            rows.append(row)
    if not rows and warn.n:
        warn(f"{name}: no judgements in this JSONL file")
    return rows, day


def sniff(path: Path, text: str | None = None) -> str | None:
    """'markdown', 'json', 'jsonl' for a score file; 'papers' / 'prefilter' for listings; 'empty'; None if
    unknown. 'markdown' is any Markdown: is_markdown_digest() tells a digest."""
    if text is None:
        try:
            text = read_text(path, errors="replace")
        except InputError:
            return None
    s = text.lstrip()
    if not s:
        return "empty"
    if s.startswith("{") or s.startswith("["):
        try:
            obj = json_loads(s)
        except json.JSONDecodeError:
            obj = None
        if isinstance(obj, list) and any(_is_score_dict(v) for v in obj):
            return "json"
        if isinstance(obj, dict):
            if _is_score_dict(obj):
                return "jsonl"        # a one-line JSONL file
            vals = list(obj.values())
            if vals and all(isinstance(v, dict) for v in vals):
                # the seed's author matches carry no RELEVANCE / NOVELTY: a day of only those is a digest too
                return "json" if any(_is_score_dict(v) or is_author_match(v.get("COMMENT")) for v in vals) else None
            if not vals:
                return "json"
        # JSONL: look at the first few object lines
        for line in _lines(s)[:20]:
            try:
                d = json_loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(d, dict):
                if _is_score_dict(d):
                    return "jsonl"
                if "prefilter_score" in d:
                    return "prefilter"
                if "id" in d and ("title" in d or "abstract" in d):
                    return "papers"
        return None
    if "**Relevance:**" in s or _MD_HEADER.search(s) or s.startswith("#"):
        return "markdown"
    return None


# ---------------------------------------------------------------------------------------- paths

def file_kind(f: Path, text: str | None = None) -> str | None:
    """sniff() of a file, read once (or of its `text`, read already), with Markdown that is no digest (a folder's
    index.md, a README, notes) told apart as 'notes': 'markdown' is then a digest."""
    try:
        text = read_text(f, errors="replace") if text is None else text
    except InputError:
        return None
    kind = sniff(f, text)
    return "notes" if kind == "markdown" and not is_markdown_digest(text) else kind


def _found(f: Path, kinds: set[str]) -> bool:
    """Whether a file met in a folder or glob is one of `kinds` (Markdown: a digest, see file_kind)."""
    return f.suffix.lower() in SCORE_SUFFIXES and file_kind(f) in kinds


def is_markdown_digest(text: str) -> bool:
    """Whether Markdown is a digest: its paper blocks' fields or the seed's title (a digest that picked
    nothing has only the title), not a folder's index.md, a README or notes."""
    return "**Relevance:**" in text or "**ArXiv ID:**" in text or bool(_MD_DIGEST_TITLE.match(text.lstrip()))


def shown_as(f: Path, stdin_name: str | None) -> str:
    """What messages call `f`: `stdin_name` (the CLI's `stdin`) for the /dev/stdin read for '-', else its path."""
    return stdin_name if stdin_name and str(f) == STDIN else str(f)


def given_as(f: Path, stdin_name: str | None) -> str:
    """What metrics.json and report.html record `f` as: '-' for the /dev/stdin read for '-' (the value given, as
    the store's run records keep `--papers -`), else its path."""
    return "-" if stdin_name and str(f) == STDIN else str(f)


def score_files(specs, kinds: set[str], key: str) -> list[Path]:
    """Files named by specs (see ranker.io.expand_paths); from folders and globs only those of `kinds`."""
    what = " / ".join(sorted(kinds - {"empty"})) + " file"
    return expand_paths(specs, keep=lambda f: _found(f, kinds), what=what, key=key)


# ---------------------------------------------------------------------------------------- public API

class DayRows(dict):
    """Rows keyed by arXiv id, each paper once (its first row read), and `by_day`: every row that has a day, keyed
    by (day, id). A paper is announced again on a later day now and then (15 of the 14,691 papers of the shared
    history are listed on two days), and judged or ranked on each: the per-day figures count it on each day
    (`by_day`), the overall ones once (the id's row)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.by_day: dict[tuple[str, str], Any] = {}

    def add(self, pid: str, row: Any) -> None:
        """`row` of paper `pid`: the paper's row if it has none yet, and its day's if it has a day (row.date)."""
        self.setdefault(pid, row)
        if row.date:
            self.by_day.setdefault((row.date, pid), row)


class Judgements(DayRows):
    """ScoreRows keyed by arXiv id (a paper judged on several days: the first judgement read; each day's in
    `by_day`), and `empty_days`: the days a file judged without a single row (an empty gpt_scores.jsonl, a
    digest that picked nothing): judged, nothing picked. A day's rows say it was judged; such a file is the only
    word that a day with no row was judged at all."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.empty_days: set[str] = set()


def read_scores(path: str | Path, *, warn: Warn | None = None, notice: Warn | None = None) -> Judgements:
    """Judgements in one file, keyed by arXiv id (no version), and by (day, id) where a judgement has a day.
    Format detected from the content. A file that holds no row and had nothing skipped (empty, or a digest that
    picked nothing) adds its day (the digest's heading, else the last YYYY-MM-DD of its path) to `empty_days`.

    warn: what is skipped as damaged (a line that is not JSON, an entry without an id, a score that is not a
    number); notice (default: warn): an entry listed without any score, which is no judgement and so no pick
    (an author match without scores is skipped silently)."""
    out = Judgements()
    _read_into(out, path, warn=warn, notice=notice)
    return out


def _read_into(out: Judgements, path: str | Path, *, warn: Warn | None,
               notice: Warn | None = None, name: str | None = None) -> InputError | None:
    """read_scores() of one file, merged into `out` (which may hold other files' judgements). Returns, for a file
    that gave no judgement and had something skipped as damaged, the error it is (naming its first problem), else
    None. name: what its warnings and errors call the file (default: its path)."""
    warn = _Counting(warn or ignore_warning)
    noticed = _Counting(notice or warn.warn)     # a paper listed without scores: no pick, nothing damaged
    path = Path(path).expanduser()
    name = name or str(path)
    if path.is_dir():
        raise InputError("is a directory; use read_score_files() for directories and globs", where=name)
    text = read_text(path, errors="replace", name=name)
    kind = sniff(path, text)
    if kind == "empty":                      # nothing picked: said once by whoever finds no judgement at all
        rows, day = [], date_from_path(path)
    elif kind == "markdown" and is_markdown_digest(text):
        rows, day = _parse_markdown(text, path, warn, noticed, name)
    elif kind == "json":
        rows, day = _parse_json_digest(json_loads(text, parse_float=_JsonNumber), text, path, warn, noticed, name)
    elif kind == "jsonl":
        rows, day = _parse_jsonl(text, path, warn, noticed, name)
    elif kind in ("papers", "prefilter"):
        raise InputError(f"this is a {'paper listing' if kind == 'papers' else 'prefilter output'}, "
                         "not judgements (no RELEVANCE/NOVELTY); pass it as "
                         f"{{key:{'papers' if kind == 'papers' else 'prefilter'}}}", where=name)
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        rows, day = _parse_jsonl(text, path, warn, noticed, name)  # every line bad: each reported (read_score_files)
    elif path.suffix.lower() == ".json":
        raise InputError("not a JSON digest (an object keyed by arXiv id) nor JSONL judgements",
                         where=name)
    else:   # a CSV, an HTML page, Markdown without a digest's title or paper blocks, plain text
        raise InputError(f"not a digest: {KNOWN_FORMATS}", where=name)
    for r in rows:
        _merge(out, r, warn)
    if not rows and not warn.n and not (noticed.n and notice is None) and day:
        out.empty_days.add(day)
    if rows or not warn.n:
        return None
    first = warn.first.removeprefix(name)          # ":3: skipped line: ..." -> "line 3: ..."
    first = re.sub(r"^:(\d+): (skipped(?: line)?: )?", r"line \1: ", first).removeprefix(": ")
    return InputError(f"holds no judgement (the first problem: {first})", where=name)


def _merge(out: Judgements, r: ScoreRow, warn: Warn) -> None:
    first = out.get(r.id)
    same_day = out.by_day.get((r.date, r.id)) if r.date else None
    # the judgement this one repeats: the same day's, else one of unknown day; a judgement of another day is one
    # of its own (a paper listed again, judged again), not a repeat
    old = same_day or (first if first is not None and not (r.date and first.date) else None)
    if old is None:
        out.add(r.id, r)
        return
    if (old.relevance, old.novelty) != (r.relevance, r.novelty):
        warn(f"{r.source}: {r.id} already judged at {old.source} with different scores "
             f"({old.relevance:g}/{old.novelty:g} vs {r.relevance:g}/{r.novelty:g}); keeping the first")
    if not old.date and r.date:
        old.date = r.date
        out.by_day[(r.date, r.id)] = old          # the first is kept for that day too, as the warning says
    if not old.title and r.title:
        old.title = r.title


def read_score_files(specs: str | Path | Iterable[str | Path], *, key: str = "gpt",
                     warn: Warn | None = None, stdin_name: str | None = None) -> tuple[Judgements, list[Path]]:
    """Judgements from files, directories or globs (several days at once), merged by arXiv id and, where a
    judgement has a day, by (day, id); `empty_days` gathers the files' (see read_scores). No judgement read nor
    judged day, and a file whose every line or entry was skipped as damaged: an InputError naming that file, said
    alone (its warnings held back). `--gpt garbage.jsonl` was a warning a line then "nothing to do" (status 0),
    where the same lines on stdin were refused; a damaged file beside files that were read, or beside a day
    judged with nothing picked, stays a warning. stdin_name: what messages call the /dev/stdin read for '-'
    (see shown_as)."""
    warn = warn or ignore_warning
    files = score_files(specs, kinds={"markdown", "json", "jsonl", "empty"}, key=key)
    out = Judgements()
    held: list[str] = []
    try:
        bad = [p for f in files if (p := _read_into(out, f, warn=held.append, name=shown_as(f, stdin_name)))]
    except InputError as e:     # "x.csv: not a digest" named no flag where "--gpt x.csv: no such file" did
        raise keyed(e, key)
    if bad and not out and not out.empty_days:      # a day judged with nothing picked is a judgement too
        raise keyed(bad[0], key)
    for m in held:
        warn(m)
    return out, files
