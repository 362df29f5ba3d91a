"""The user's two rules over a day's papers, applied before and beside the prefilter's score, offline:

  exclusions   phrases or patterns whose papers never reach the LLM ([prefilter] exclude in ranker.toml, and
               exclude.txt beside the prompts): a plain phrase matches the title or abstract case-insensitively
               as whole words (the last word also in its plural, whitespace, hyphens and dashes alike: "diffusion
               model" matches "Diffusion-Models"; other punctuation between two words must be there too: "GPT-3.5",
               "A/B testing"); `re:PATTERN` is a Python regular expression (case-insensitive).
  author pins  an authors file (authors.txt beside the prompts, or [digest] authors = FILE): one author a line,
               aliases separated by `|` ("Jane Q. Doe | J. Doe"), `#` starts a comment, "Doe, Jane" works too.
               A pinned author's papers are kept by the prefilter (rule "pin") and always enter the digest.

Names are matched on a normal form: TeX accents ({\\"o}, \\'e) and diacritics dropped, letters without one
in ASCII (Ł as L, ß as ss: sources.normalize.unaccented, as the author features match names), case folded, initials
matching the names they start ("J. Smith" is "John Smith"); the family name (last word) must be equal, and
every given name both sides write must agree ("John A. Smith" is not "John B. Smith", "Jane Smith" is not
"John Smith", a name written in the other order is another name). Particles (van, der, de, ...) are ignored
among given names, unless every given name is one ("Y. LeCun", "Le Song"); one written in lower case in a name
with capitals is never a given name ("de Gaulle" is a family name alone, which pins only itself, not "D.
Gaulle"). An initial is ambiguous by nature: pin the full name when a colleague shares it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from .. import REPO_DAY
from ..errors import ConfigError, InputError
from ..io import read_text
from ..records import Paper
from ..sources.normalize import SUFFIX, unaccented

EXCLUDE_FILE = "exclude.txt"
AUTHORS_FILE = "authors.txt"

# --------------------------------------------------------------------------- names
_TEX_LETTERS = {r"\ss": "ss", r"\ae": "ae", r"\AE": "AE", r"\oe": "oe", r"\OE": "OE", r"\aa": "a", r"\AA": "A",
                r"\o": "o", r"\O": "O", r"\l": "l", r"\L": "L", r"\i": "i", r"\j": "j"}
_TEX_LETTER = re.compile(r"\\(ss|ae|AE|oe|OE|aa|AA|o|O|l|L|i|j)(?![A-Za-z])")
_TEX_ACCENT = re.compile(r"\\(?:[\"'`^~=.]|[uvHckrdb](?=[\s{]))\s*")
# Generational suffixes written after the family name ("Jr" and "Sr" are dropped wherever they stand).
_NUMERALS = ("ii", "iii", "iv")
PARTICLES = {"van", "von", "der", "den", "de", "del", "della", "di", "da", "dos", "das", "du", "la", "le", "ten",
             "ter", "bin", "al", "el", "y", "zu"}


def _unaccented(text: str) -> str:
    """A name without TeX accents or diacritics, its case kept."""
    text = _TEX_LETTER.sub(lambda m: _TEX_LETTERS["\\" + m.group(1)], text)
    text = _TEX_ACCENT.sub("", text).replace("{", "").replace("}", "")
    return unaccented(text)


class _Particle(str):
    """A particle's word written in lower case in a name with capitals ("de" of "Charles de Gaulle"): part of
    the family name, never a given name, even the only word before it. Equal to its text as any token."""


def name_tokens(name: str) -> list[str]:
    """A person's name as words in the order written, case folded; "Last, First" is turned around, a generational
    suffix (Jr, Sr, II, III, IV) left out. Apostrophes join (O'Brien -> obrien); hyphens, dots and other marks
    separate. A particle written in lower case among capitals is a _Particle."""
    text = _unaccented(name)
    parts = text.split(",")
    given = [p for p in parts[1:] if not SUFFIX.fullmatch(p.strip())]
    if len(parts) == 3 and len(given) == 1:       # "Ford, Henry, III", "King, Jr., Martin": the suffix goes
        text = f"{parts[0]},{given[0]}"
    if text.count(",") == 1:
        last, first = text.split(",")
        if first.strip() and not SUFFIX.fullmatch(first.strip()):
            text = f"{first} {last}"
    text = re.sub(r"['’`]", "", text)
    cased = any(c.isupper() for c in text)       # all in one case ("DE GAULLE", "le song"), the case tells nothing
    words = [(w, w.casefold()) for w in re.findall(r"[^\W\d_]+", text)]
    words = [(w, f) for w, f in words if f not in ("jr", "sr")]
    if len(words) > 2:
        # "Henry Ford III" (as the arXiv snapshot writes a suffix: first last suffix), "Ford, Henry III": the
        # family name is Ford, and III no given name
        words = words[:1] + [(w, f) for w, f in words[1:] if f not in _NUMERALS]
    return [_Particle(f) if cased and w.islower() and f in PARTICLES else f for w, f in words]


def _agree(a: str, b: str) -> bool:
    """Two given names agree: equal, or one is an initial of the other."""
    return a == b or (len(a) == 1 and b.startswith(a)) or (len(b) == 1 and a.startswith(b))


def _given(tokens: list[str]) -> list[str]:
    """The given names of a name's tokens, particles left out; when every one is a particle's word ("Y. LeCun",
    "Le Song", "Bin-Bin Gao") they are the given names themselves, unless written in lower case as particles
    ("de Gaulle": no given name)."""
    given = [t for t in tokens[:-1] if t not in PARTICLES]
    return given or [t for t in tokens[:-1] if not isinstance(t, _Particle)]


def same_person(pin: list[str], author: list[str]) -> bool:
    """Whether an author's name tokens may be the pinned name's (see the module doc for the rules)."""
    if not pin or not author or pin[-1] != author[-1]:
        return False
    given_p, given_a = _given(pin), _given(author)
    if not given_p or not given_a:
        return pin == author                    # a mononym, or a bare family name: only the same words
    return all(_agree(x, y) for x, y in zip(given_p, given_a))


@dataclass
class Pin:
    name: str                                   # the first spelling of the line, as written
    forms: list[list[str]] = field(default_factory=list)


@dataclass
class AuthorPins:
    pins: list[Pin] = field(default_factory=list)
    source: str = ""

    def __post_init__(self):
        self._by_family: dict[str, list[tuple[Pin, list[str]]]] = {}
        for pin in self.pins:
            for form in pin.forms:
                self._by_family.setdefault(form[-1], []).append((pin, form))

    def __bool__(self) -> bool:
        return bool(self.pins)

    def match(self, paper: Paper) -> list[str]:
        """The pinned names (as the authors file writes them) among the paper's authors, in file order."""
        found: list[str] = []
        for author in paper.authors:
            toks = name_tokens(author)
            for pin, form in self._by_family.get(toks[-1] if toks else "", ()):
                if pin.name not in found and same_person(form, toks):
                    found.append(pin.name)
        return [p.name for p in self.pins if p.name in found]

    @classmethod
    def read(cls, path: str | Path) -> "AuthorPins":
        """Read an authors file (see the module doc); a missing file is an InputError naming it."""
        p = Path(path)
        text = read_text(p, "authors file")
        pins = []
        for n, line in enumerate(text.splitlines(), start=1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            names = [x.strip() for x in line.split("|") if x.strip()]
            forms = [name_tokens(x) for x in names]
            if not names or not all(forms):
                raise InputError("expected an author's name (aliases separated by |)", where=f"{p}:{n}")
            pins.append(Pin(names[0], forms))
        return cls(pins, str(p))


# --------------------------------------------------------------------------- exclusions
@dataclass
class Rule:
    text: str                    # as the user wrote it: "diffusion model", "re:^quantum"
    pattern: re.Pattern
    origin: str                  # where it was written: "exclude.txt:3" or the config key


def compile_rule(text: str, origin: str, *, key: str | None = None) -> Rule:
    """One exclusion rule; a bad pattern is an error naming where it was written."""
    raw = text.strip()
    if raw.lower().startswith("re:"):
        try:
            pattern = re.compile(raw[3:].strip(), re.IGNORECASE)
        except re.error as e:
            err = ConfigError if key else InputError
            raise err(f"not a valid regular expression in {raw!r}: {e}", key=key,
                      where=None if key else origin) from None
        why = _matches_anything(pattern)
        if why:
            # `re:` alone, `re:x*`, `re:^`: a pattern an empty text matches matches every paper, and the day was
            # excluded whole ("kept 0 of 192 papers", exit 0) for a line left unfinished; `re:.`, `re:\w`
            # need a text, but every paper has one
            err = ConfigError if key else InputError
            raise err(f"{raw!r} matches every paper ({why}); give what a title or abstract must contain", key=key,
                      where=None if key else origin)
    else:
        # words, each with the + or # that may end it (C++, C#, F#: without them "C++" banned every "C")
        spans = list(re.finditer(r"\w+[+#]*", raw))
        words = [m.group() for m in spans]
        if not words:
            err = ConfigError if key else InputError
            raise err(f"an exclusion needs at least one word, got {raw!r}", key=key, where=None if key else origin)
        last = re.escape(words[-1])
        if re.search(r"\w$", words[-1]):
            last += r"(?:e?s)?"
        if re.search(r"[^aeiou]y$", words[-1], re.IGNORECASE):      # study -> studies, ontology -> ontologies
            last = f"(?:{last}|{re.escape(words[-1][:-1])}ies)"
        body = "".join(re.escape(w) + _between(raw[a.end():b.start()])
                       for w, a, b in zip(words, spans, spans[1:])) + last
        pattern = re.compile(r"(?<!\w)" + body + r"(?!\w)", re.IGNORECASE)
    return Rule(raw, pattern, origin)


# Hyphens and dashes, which a phrase copied from a web page or a PDF writes as often as "-": U+2010 hyphen to
# U+2015 horizontal bar (en and em dashes among them) and the minus sign
_DASHES = "\\-\u2010-\u2015\u2212"
_SPACES = f"[\\s{_DASHES}]"


def _matches_anything(pattern: re.Pattern) -> str | None:
    r"""Why a pattern would match every paper, or None: it matches the empty text and every text tried here too
    (its own source, its words (the text it names) and a neutral "a"), or every real paper of a day (the day
    bundled with ranker, the text an exclusion reads of each) and the words it names, where it names any.
    One that matches an empty text may still need something missing, and is no unfinished line: `^(?!.*\bllm\b)`
    (every paper that does not name LLMs, the topic filter written as an exclusion) or `(?m)^$` (an empty
    abstract) do not match the words they name, `withdrawn|^$` matches its own source but not "a" (it was
    refused); `x*`, `^` or `(?!quantum)` match any text. `.`, `\w`, `\b` or `[a-z]` match no empty text, but
    any title (they excluded the whole day, exit 0), and so does `[aeiou]`, which names letters, not a word."""
    words = " ".join(re.findall(r"\w+", re.sub(r"\\[A-Za-z]", " ", pattern.pattern)))     # \b, \d: not words
    if pattern.search("") is not None and all(pattern.search(t) is not None for t in (pattern.pattern, words, "a")):
        return "it matches an empty text"
    texts = _real_texts()
    if texts and all(pattern.search(t) is not None for t in texts) and (not words or pattern.search(words)):
        return f"it matches each of the {len(texts)} papers of a real day, {REPO_DAY.parent.name}"
    return None


@lru_cache(maxsize=1)
def _real_texts() -> tuple[str, ...]:
    """The text an exclusion reads (Exclusions.match) of each paper of the day bundled with ranker: titles and
    abstracts of every kind of cs.LG / cs.AI paper; none when the package was installed without its data."""
    import json
    try:
        lines = REPO_DAY.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ()
    rows = [json.loads(x) for x in lines if x.strip()]
    return tuple(_text(r.get("title") or "", r.get("abstract") or "") for r in rows)


def _text(title: str, abstract: str) -> str:
    """What an exclusion is matched against: the title and the abstract."""
    return f"{title}\n{abstract}"


def _between(gap: str) -> str:
    """What separates two words of a phrase in the text: spaces, hyphens and dashes alike when the phrase puts only
    those there; punctuation it puts there ("GPT-3.5", "A/B testing", "Alzheimer's") must be there too, spaces
    around it optional (without it the phrase never matched the very text it was copied from)."""
    marks = re.sub(_SPACES + "+", "", gap)
    if not marks:
        return _SPACES + "+"
    around = _SPACES + "*"
    return around + around.join("['’`]" if c in "'’`" else re.escape(c) for c in marks) + around


# A rule matching more than this share of the bundled real day's papers is said (not refused: one matching all
# of them is): the stop words "a" or "the" written as a phrase exclude 190 of its 192, the day all but gone
BROAD_SHARE = 0.9


def broad_match(rule: Rule) -> tuple[int, int] | None:
    """(papers matched, papers) of the day bundled with ranker when the rule matches more than BROAD_SHARE of
    them, else None (and None when the package was installed without that day). A pattern that matches an empty
    text (`re:(?s)^(?!.*\\bllm\\b)`: every paper that does not name LLMs) is None: it is the topic filter written
    as an exclusion, excluding most of a day by design (_matches_anything keeps it a rule), and the warning was
    noise on each day that used it; `re:\\bthe\\b` needs a word, and is said as the phrase `the` is."""
    texts = _real_texts()
    if not texts or (rule.text[:3].lower() == "re:" and rule.pattern.search("") is not None):
        return None
    n = sum(1 for t in texts if rule.pattern.search(t))
    return (n, len(texts)) if n > BROAD_SHARE * len(texts) else None


@dataclass
class Exclusions:
    rules: list[Rule] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.rules)

    def broad(self) -> list[str]:
        """One line for each rule that matches nearly every paper of a real day (broad_match): a warning, as such a
        rule is almost surely a slip (a stop word, a pattern too loose); one that matches every paper is refused
        when compiled."""
        out = []
        for rule in self.rules:
            hit = broad_match(rule)
            if hit:
                out.append(f"{rule.origin}: the exclusion {rule.text!r} matches {hit[0]} of the {hit[1]} papers of a "
                           f"real day ({REPO_DAY.parent.name}): nearly every paper would be excluded (applied as "
                           "written; a phrase names what a title or abstract must contain to be left out)")
        return out

    def match(self, paper: Paper) -> Rule | None:
        """The first rule the paper's title or abstract matches, or None."""
        text = _text(paper.title, paper.abstract)
        for rule in self.rules:
            if rule.pattern.search(text):
                return rule
        return None

    @classmethod
    def build(cls, phrases: Iterable[str] = (), file: str | Path | None = None, *,
              key: str = "prefilter.exclude") -> "Exclusions":
        """The rules of the config (`phrases`, named by `key` when wrong) and of a file (one a line, `#`
        comments), config first."""
        rules = [compile_rule(t, key, key=key) for t in phrases]
        if file is not None:
            p = Path(file)
            text = read_text(p, "exclusions file")
            for n, line in enumerate(text.splitlines(), start=1):
                line = re.split(r"\s#", line, maxsplit=1)[0].strip() if not line.lstrip().startswith("#") else ""
                if line:
                    rules.append(compile_rule(line, f"{p}:{n}"))
        return cls(rules)


# --------------------------------------------------------------------------- both, for a day
@dataclass
class DayRules:
    exclusions: Exclusions = field(default_factory=Exclusions)
    pins: AuthorPins = field(default_factory=AuthorPins)


def load_rules(prompts_dir: str | Path | None, exclude: Iterable[str] = (),
               authors: str | Path | None = None) -> DayRules:
    """The exclusions (config phrases + exclude.txt beside the prompts, when there is one) and the author
    pins (`authors`, else authors.txt beside the prompts, when there is one)."""
    folder = Path(prompts_dir) if prompts_dir else None
    ex_file = folder / EXCLUDE_FILE if folder is not None and (folder / EXCLUDE_FILE).is_file() else None
    if authors is None and folder is not None and (folder / AUTHORS_FILE).is_file():
        authors = folder / AUTHORS_FILE
    pins = AuthorPins.read(Path(authors).expanduser()) if authors else AuthorPins()
    return DayRules(Exclusions.build(exclude, ex_file), pins)
