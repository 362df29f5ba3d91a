"""Normalisation shared by every reader: readers turn one record of their format into a Paper through
`make_paper`, so every source ends up with the same shape: id without version, folded whitespace, an abstract
without a leading "Abstract:" and capped in length, authors as a list of clean names, categories as a list
with the primary first. Also the day formats the sources write (RFC 822, ISO).
"""
from __future__ import annotations

import re
import unicodedata
from datetime import date as _date
from email.utils import parsedate_to_datetime
from typing import Any

from ..io import clean_text, parse_arxiv_id
from ..records import ANNOUNCE_TYPES, Paper, announce_spelling, valid_category
from .report import ABSTRACT_CAP, AUTHOR_CAP, COMMENT_CAP, TITLE_CAP, ReadReport

MAX_AUTHORS = 5_000       # physics collaborations list ~3,000 names
_ABSTRACT_LABEL = re.compile(r"^\s*abstract\s*[:.]\s*", re.IGNORECASE)
_MOJIBAKE = re.compile("[\u00c2\u00c3][\u0080-\u00bf]")


def fold(text: Any) -> str:
    """Whitespace folded to single spaces, NUL, control and bidi-control characters dropped; None -> ''."""
    if text is None:
        return ""
    return " ".join(clean_text(str(text)).split())


def fix_mojibake(text: str) -> str:
    """Undo UTF-8 read as Latin-1 ("WÃ¼bben" -> "Wübben"), which some arXiv API answers carry.
    Only applied when the whole string round-trips; otherwise the text is returned unchanged."""
    if not _MOJIBAKE.search(text):
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


_ACCENTS = {"'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304",
            ".": "\u0307", "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328",
            "r": "\u030a"}
_LETTERS = {"l": "ł", "L": "Ł", "o": "ø", "O": "Ø", "ss": "ß", "aa": "å", "AA": "Å", "ae": "æ", "AE": "Æ",
            "oe": "œ", "OE": "Œ", "i": "ı", "j": "ȷ", "dh": "ð", "DH": "Ð", "th": "þ", "TH": "Þ",
            "dj": "đ", "DJ": "Đ", "ng": "ŋ", "NG": "Ŋ"}
# (the closing braces may follow spaces; spaces with no brace after them belong to the text: Jos\'e Reina)
_ACCENT_RE = re.compile(r"""\{?\\([`'^"~=.]|[uvHckr](?=[\s{]))\s*\{?\s*(\\?[A-Za-z])(?:\s*\})?\}?""")
_LETTER_RE = re.compile(r"\{\\(ss|aa|AA|ae|AE|oe|OE|dh|DH|th|TH|dj|DJ|ng|NG|l|L|o|O|i|j)\s*\}"
                        r"|\\(dh|DH|ss|aa|AA|ae|AE|oe|OE|th|TH|dj|DJ|ng|NG|l|L|o|O|i|j)(?:\s+|(?![a-z]))"
                        r"|\\(dh|DH)")


def delatex(text: str) -> str:
    """Turn the TeX accents arXiv keeps in author names (Przemys{\\l}aw, R\\'emy, \\.Zygierewicz) into Unicode."""
    if "\\" not in text:
        return text

    def accent(m: re.Match) -> str:
        base = m.group(2).lstrip("\\")
        base = {"i": "i", "j": "j"}.get(base, base)
        return unicodedata.normalize("NFC", base + _ACCENTS[m.group(1)])

    text = _ACCENT_RE.sub(accent, text)
    text = _LETTER_RE.sub(lambda m: _LETTERS[m.group(1) or m.group(2) or m.group(3)], text)
    # whatever TeX is left (an unknown macro) is not part of a name
    return re.sub(r"\\([A-Za-z]+|.)", r"\1", text).replace("{", "").replace("}", "")


# Latin letters NFKD leaves whole (no base letter and accent to split them into), as the ASCII their names are
# also written in ("Łukasz" is "Lukasz" in many listings): every letter delatex writes is here, so a name in
# TeX folds as its Unicode form does. The Catalan middle dot (l·l, ŀl) goes: "Gal·la" is also written "Galla".
# (The static site's search folds its words with this table too, written into its index: web.site.)
PLAIN_LETTERS = {
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L",
    "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "TH", "ı": "i", "ȷ": "j", "ŋ": "ng", "Ŋ": "NG",
    "ħ": "h", "Ħ": "H", "ŧ": "t", "Ŧ": "T", "ə": "e", "Ə": "E", "\u00b7": ""}
_PLAIN_LETTERS = str.maketrans(PLAIN_LETTERS)


def unaccented(text: str) -> str:
    """A name without diacritics, the letters above in ASCII, its case kept: "Łukasz Kaiser" -> "Lukasz Kaiser",
    "Strauß" -> "Strauss". The one folding every match of author names builds on (author pins, the author
    features of a calibration), so that two spellings are one person to both or to neither; the store's word
    search folds titles, abstracts and queries with it too, so that a name found by one is found by the other."""
    if text.isascii():                       # nothing to fold (most titles and abstracts: the word index folds all)
        return text
    text = unicodedata.normalize("NFKD", text).translate(_PLAIN_LETTERS)     # after NFKD: "ǿ" is ø + accent
    return "".join(c for c in text if not unicodedata.combining(c))


_AUTHOR_SEP = re.compile(r"(\s*[,;]\s*(?:and\s+)?|\s+and\s+)")       # kept by split: names at even places
# A generational suffix arXiv writes after a comma ("John Smith, Jr.", "Henry Ford, III"): the name before it,
# never an author of its own; prefilter.rules.name_tokens leaves it out when matching a name
SUFFIX = re.compile(r"(?:jr|sr|ii|iii|iv)\.?", re.IGNORECASE)
_PARENS = re.compile(r"\([^()]*\)")


def split_authors(text: str) -> list[str]:
    """'A, B (Univ, Dept), C and D' -> ['A', 'B', 'C', 'D']: drop parenthesised affiliations, split on commas
    and ' and ', turn TeX accents into Unicode. A suffix after a comma stays with its name ('John Smith, Jr.')."""
    text = fold(text)
    if "(" in text or ")" in text:
        for _ in range(8):                       # nested parentheses, innermost first
            text, n = _PARENS.subn(" ", text)
            if not n:
                break
        text = re.sub(r"\([^)]*$", " ", text).replace(")", " ").replace("(", " ")
    names = []
    parts = _AUTHOR_SEP.split(text)
    for i in range(0, len(parts), 2):
        name = fold(parts[i])
        if name.lower().startswith("and "):
            name = name[4:].strip()
        if names and SUFFIX.fullmatch(name) and parts[i - 1].strip() == ",":
            names[-1] += f", {name}"
        elif name:
            names.append(fix_mojibake(delatex(name)))
            if len(names) >= MAX_AUTHORS:
                break
    return names


def clean_authors(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return split_authors(value)
    if isinstance(value, (list, tuple)):
        out = []
        for a in value[:MAX_AUTHORS]:
            if isinstance(a, str):
                name = fold(a)
            elif isinstance(a, (list, tuple)) and a and all(isinstance(x, str) for x in a):
                # the snapshot's authors_parsed: [last, first, suffix]
                last, first = a[0], a[1] if len(a) > 1 else ""
                suffix = a[2] if len(a) > 2 else ""
                name = fold(f"{first} {last} {suffix}")
            else:
                continue
            if name:
                out.append(fix_mojibake(delatex(name)))
        return out
    return []


def clean_categories(value: Any, primary: Any = None) -> list[str]:
    if isinstance(value, str):
        cats = value.split()
    elif isinstance(value, (list, tuple)):
        cats = [c.strip() for c in value if isinstance(c, str)]
    else:
        cats = []
    out: list[str] = []
    if isinstance(primary, str) and primary.strip():
        out.append(primary.strip())
    for c in cats:
        if c and c not in out:
            out.append(c)
    return out


def rfc822_day(text: str | None) -> str | None:
    """'Thu, 28 Nov 2024 00:00:00 -0500' -> '2024-11-28' (the day in the sender's own time zone)."""
    if not text:
        return None
    try:
        dt = parsedate_to_datetime(text.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None:
        return None
    return dt.date().isoformat()


def iso_day(text: Any) -> str | None:
    """'2024-11-28T10:00:00Z' or '2024-11-28' -> '2024-11-28'; anything else -> None."""
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        return _date.fromisoformat(text.strip()[:10]).isoformat()
    except ValueError:
        return None


def make_paper(report: ReadReport, where: str, *, raw_id: Any, title: Any, abstract: Any, authors: Any,
               categories: Any, primary: Any = None, date: str | None = "", comment: Any = None,
               announce_type: str | None = None, version: int | None = None,
               extra: dict[str, Any] | None = None) -> Paper | None:
    """Build a normalised Paper, or count a skip (returns None) when the record has no usable id or title."""
    report.where = where
    parsed = parse_arxiv_id(raw_id)
    if parsed is None:
        shown = raw_id if isinstance(raw_id, str) else type(raw_id).__name__
        report.warn("skipped", where, f"no valid arXiv id ({str(shown)[:60]!r}); skipped", "no_id")
        return None
    pid, id_version = parsed
    title_s = fix_mojibake(fold(title)) if isinstance(title, str) else ""
    if not title_s:
        report.warn("skipped", where, f"{pid}: no title; skipped", "no_title")
        return None
    if announce_type is not None:
        # "New", "replace_cross": ranker's spelling ("new", "replace-cross"), not a type it does not know
        given, announce_type = str(announce_type).strip(), announce_spelling(announce_type)
        if announce_type is not None and announce_type not in ANNOUNCE_TYPES:
            # a type arXiv adds later (neither new, cross, replace nor replace-cross) was kept as "new" and entered
            # the digest unasked: skipped, counted (the read's notes, fetch's summary line), as a filter of types
            # the user did not ask for would; a feed that gives no type is still taken for new
            report.warn("unknown_type", where, f"{pid}: announce type {given[:40]!r} is none ranker knows "
                        f"({', '.join(ANNOUNCE_TYPES)}); skipped")
            return None
    abstract_s = fix_mojibake(fold(abstract)) if isinstance(abstract, str) else ""
    abstract_s = _ABSTRACT_LABEL.sub("", abstract_s, count=1)
    cut = False
    if len(abstract_s) > ABSTRACT_CAP:
        abstract_s, cut = abstract_s[:ABSTRACT_CAP], True
    if len(title_s) > TITLE_CAP:
        title_s, cut = title_s[:TITLE_CAP], True
    authors_l = clean_authors(authors)
    if any(len(a) > AUTHOR_CAP for a in authors_l):
        authors_l, cut = [a[:AUTHOR_CAP] for a in authors_l], True
    com = fold(comment) if isinstance(comment, str) else None
    if com and len(com) > COMMENT_CAP:
        com, cut = com[:COMMENT_CAP], True
    if cut:
        report.warn("truncated", where, f"{pid}: overlong text cut to the cap")
    if not abstract_s:
        report.warn("no_abstract", where, f"{pid}: no abstract; kept with an empty one")
    cats = [c for c in clean_categories(categories, primary) if valid_category(c)]
    if version is None:
        version = id_version
    return Paper(id=pid, title=title_s, abstract=abstract_s, authors=authors_l, categories=cats,
                 primary_category=cats[0] if cats else "", date=date or "", comment=com or None,
                 announce_type=announce_type, version=version if isinstance(version, int) else None,
                 extra=dict(extra or {}))

