"""Plain records that flow through the pipeline. No I/O here."""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Mapping

# Fields a paper line carries in the papers JSONL (the layout of shared/data/days/*/listing.jsonl).
PAPER_FIELDS = ("id", "date", "title", "abstract", "authors", "categories", "primary_category",
                "comment", "announce_type", "version")
# How a paper appears in a day's announcements, strongest first.
ANNOUNCE_TYPES = ("new", "cross", "replace", "replace-cross")


def announce_spelling(value: Any) -> str | None:
    """An announce type as a feed or a saved listing may write it (" New", "replace_cross", "Replace Cross") in
    ranker's spelling ("new", "replace-cross"); None for no type (not a string, or blank). A type ranker does not
    know comes back in that spelling too, for the reader to judge (ANNOUNCE_TYPES)."""
    if not isinstance(value, str):
        return None
    return re.sub(r"[\s_-]+", "-", value.strip().lower()) or None


# A pick: RELEVANCE and NOVELTY at or above these (the seed's cut-offs): the digest's defaults, compare's, and
# what the history reader counts as GPT's picks.
MIN_RELEVANCE = 8
MIN_NOVELTY = 7
# the database's file name in RANKER_HOME (settings); its FAISS indexes are faiss/ beside it (store)
DB_FILE = "ranker.sqlite3"
_CATEGORY = re.compile(r"^[a-z][a-z\-]*(?:\.[A-Za-z][A-Za-z\-]*)?\Z")


# archives whose subject classes arXiv writes in capitals (cs.LG, math.GT), and in lower case (cond-mat.soft)
_CAPITAL_CLASSES = frozenset({"cs", "math", "stat", "eess", "econ", "q-bio", "q-fin", "nlin", "astro-ph"})
_LOWER_CLASSES = frozenset({"physics", "cond-mat"})
# every archive arXiv has had (those of a snapshot's old papers too): a name offered back in lower case must be one
# ('LG' was answered "did you mean 'lg'?", which matches nothing, every day)
_ARCHIVES = _CAPITAL_CLASSES | _LOWER_CLASSES | frozenset({
    "gr-qc", "hep-ex", "hep-lat", "hep-ph", "hep-th", "math-ph", "nucl-ex", "nucl-th", "quant-ph", "acc-phys",
    "adap-org", "alg-geom", "ao-sci", "atom-ph", "bayes-an", "chao-dyn", "chem-ph", "cmp-lg", "comp-gas", "dg-ga",
    "funct-an", "mtrl-th", "patt-sol", "plasm-ph", "q-alg", "solv-int", "supr-con"})


# arXiv's subject classes, by archive (its category taxonomy as of 2025: the codes a paper's categories carry);
# an archive not here has none (hep-th, quant-ph). A class not here is kept with a warning (category_note):
# arXiv adds classes
_CLASSES: dict[str, frozenset[str]] = {archive: frozenset(codes.split()) for archive, codes in {
    "cs": "AI AR CC CE CG CL CR CV CY DB DC DL DM DS ET FL GL GR GT HC IR IT LG LO MA MM MS NA NE NI OH OS PF PL RO "
          "SC SD SE SI SY",
    "math": "AC AG AP AT CA CO CT CV DG DS FA GM GN GR GT HO IT KT LO MG MP NA NT OA OC PR QA RA RT SG SP ST",
    "stat": "AP CO ME ML OT TH",
    "eess": "AS IV SP SY",
    "econ": "EM GN TH",
    "q-bio": "BM CB GN MN NC OT PE QM SC TO",
    "q-fin": "CP EC GN MF PM PR RM ST TR",
    "nlin": "AO CD CG PS SI",
    "astro-ph": "CO EP GA HE IM SR",
    "cond-mat": "dis-nn mes-hall mtrl-sci other quant-gas soft stat-mech str-el supr-con",
    "physics": "acc-ph ao-ph app-ph atm-clus atom-ph bio-ph chem-ph class-ph comp-ph data-an ed-ph flu-dyn gen-ph "
               "geo-ph hist-ph ins-det med-ph optics plasm-ph pop-ph soc-ph space-ph",
}.items()}


def valid_category(cat: str) -> bool:
    """An arXiv category name such as cs.LG, stat.ML or hep-th."""
    return isinstance(cat, str) and bool(_CATEGORY.match(cat))


def category_problem(cat: str) -> str | None:
    """Why a category a user gave cannot be one of arXiv's (a paper's categories are matched exactly, so
    'cs.lg' would match nothing; its archive, the part before any dot, must be one of _ARCHIVES; a known class
    with a character more, 'cs.LGG', is that class mistyped), or None when it can be (a class _CLASSES lacks
    too: category_note's warning)."""
    archive, dot, subject = cat.partition(".")
    right = archive.lower() + dot + (subject.upper() if archive.lower() in _CAPITAL_CLASSES
                                     else subject.lower() if archive.lower() in _LOWER_CLASSES else subject)
    if archive.lower() not in _ARCHIVES:       # 'lg' or 'xx.LG' passed the shape and matched no paper
        return f"{cat!r} is not an arXiv category like cs.LG"
    known = _CLASSES.get(archive.lower(), frozenset())
    fixed = right.partition(".")[2]
    if dot and fixed not in known:
        # a stray or doubled key: 'cs.LGG' passed (its archive is arXiv's) and matched no paper, every day
        # every class it may be ('cs.AIR': cs.AI, cs.AR or cs.IR): one named was a guess among them
        typos = sorted({c for i in range(len(fixed)) if (c := fixed[:i] + fixed[i + 1:]) in known})
        if typos:
            return (f"{cat!r} is not an arXiv category; did you mean "
                    f"{_either([repr(archive.lower() + '.' + t) for t in typos])}?")
    if valid_category(cat) and right == cat:
        return None
    if valid_category(right):
        return f"{cat!r} is not an arXiv category; did you mean {right!r}?"
    return f"{cat!r} is not an arXiv category like cs.LG"


def category_note(cat: str) -> str | None:
    """For a category category_problem lets through whose subject class arXiv's taxonomy (_CLASSES) lacks
    ('cs.XX'), why it may match no paper, with the closest classes there are; None for a known one or an
    archive alone. Kept, not refused: arXiv adds classes."""
    import difflib
    archive, dot, subject = cat.partition(".")
    known = _CLASSES.get(archive, frozenset())
    if not dot or subject in known:
        return None
    close = difflib.get_close_matches(subject.lower(), [k.lower() for k in known], n=3, cutoff=0.5)
    by_lower = {k.lower(): k for k in known}
    named = [repr(f"{archive}.{by_lower[c]}") for c in close]
    said = f"{cat!r} is no subject class of arXiv's taxonomy that ranker knows (a new one?): no paper may match it"
    return said + (f"; did you mean {_either(named)}?" if named else "")


def _either(named: list[str]) -> str:
    """'a', 'a or b', 'a, b or c'."""
    return " or ".join(filter(None, [", ".join(named[:-1]), named[-1]]))


# the keys of a prefilter output line that are the verdict (Ranked's own), not the paper's
VERDICT_KEYS = ("prefilter_score", "kept", "topic", "rule", "reupload_of")


def has_verdict(line: Mapping[str, Any]) -> bool:
    """Whether a line's keys carry a prefilter verdict (prefilter output), not only a paper (a listing, whose
    "topic" or "rule" is then a key of the user's own)."""
    return "prefilter_score" in line or "kept" in line


@dataclass
class Paper:
    """One arXiv paper as every source gives it (a listing, a feed, the API, a snapshot), normalised: the
    line of a papers JSONL file (to_dict / from_dict, the fields not modelled kept in `extra`)."""
    id: str                       # arXiv id without version, e.g. "2506.16065"
    title: str
    abstract: str
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)   # primary first
    primary_category: str = ""
    date: str = ""                # announcement day, YYYY-MM-DD
    comment: str | None = None
    announce_type: str | None = None  # new / cross / replace / replace-cross
    version: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)   # fields we do not model, kept round-trip

    def to_dict(self) -> dict[str, Any]:
        """The papers JSONL line: the paper's fields, then the fields of its source that we do not model (a
        user's own), but not a ranking's verdict (VERDICT_KEYS) that a paper read from prefilter output
        carries in `extra`: a papers file written from it (`ranker fetch --from ranked.jsonl`) is not that
        ranking's, and `ranker score --only-kept` would take the old verdict for one of it. A paper read from
        a listing (no verdict) keeps every key, a "topic" of the user's own included."""
        d = {k: v for k, v in asdict(self).items() if k != "extra"}
        verdict = has_verdict(self.extra)
        for k, v in self.extra.items():
            if not (verdict and k in VERDICT_KEYS):
                d.setdefault(k, v)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Paper":
        known = {k: d[k] for k in PAPER_FIELDS if k in d}
        extra = {k: v for k, v in d.items() if k not in PAPER_FIELDS}
        return cls(**known, extra=extra)

    @property
    def url(self) -> str:
        return f"https://arxiv.org/abs/{self.id}"

    @property
    def primary(self) -> str:
        """The primary arXiv category: primary_category, else the first category, else ""."""
        return self.primary_category or (self.categories[0] if self.categories else "")

    @property
    def scored_text(self) -> str:
        """A short hash of the text the scoring prompt is made from (title, every author, abstract; spaces
        folded; the prompt may show a cut of it: the abstract's first tokens, a long author list's ends): a
        stored score judged other text when it differs (a replacement that rewrote the abstract)."""
        parts = (self.title or "", " and ".join(self.authors), self.abstract or "")
        text = "\0".join(" ".join(x.split()) for x in parts)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass
class Ranked:
    """A paper with its prefilter verdict. `rule` says what decided it: the keep rule ("top", "keep", "recall",
    "recall-prior", "min_keep"), "pin" (a pinned author's paper, kept whatever its score), or
    "exclude:<the rule>" (never sent to the LLM)."""
    paper: Paper
    prefilter_score: float
    kept: bool
    topic: str = ""
    rule: str = ""
    reupload_of: dict[str, Any] | None = None   # {"id", "date", "cosine"}: the same paper announced earlier

    def to_dict(self) -> dict[str, Any]:
        """The prefilter output's line: id, prefilter_score, kept, topic, (rule,) then the paper's fields."""
        d = {"id": self.paper.id, "prefilter_score": round(float(self.prefilter_score), 6),
             "kept": self.kept, "topic": self.topic}
        if self.rule:
            d["rule"] = self.rule
        if self.reupload_of:
            d["reupload_of"] = self.reupload_of
        for k, v in self.paper.to_dict().items():
            if k not in VERDICT_KEYS:    # the line's verdict is this ranking's: a listing's own "reupload_of"
                d.setdefault(k, v)       # (Paper.to_dict keeps it) was read back as a re-upload it never found
        return d

    @classmethod
    def from_paper(cls, paper: Paper) -> "Ranked | None":
        """The verdict a paper read from prefilter output carries in its extra fields (which it leaves),
        or None when it carries none or a malformed one (a score that is not a finite number: JSON's NaN,
        Infinity)."""
        extra = paper.extra
        score = extra.get("prefilter_score")
        if not isinstance(extra.get("kept"), bool) or isinstance(score, bool) or not isinstance(score, (int, float)) \
                or not math.isfinite(score):
            return None
        rest = {k: v for k, v in extra.items() if k not in VERDICT_KEYS}
        reupload = extra.get("reupload_of")
        return cls(paper=replace(paper, extra=rest), prefilter_score=float(score), kept=extra["kept"],
                   topic=str(extra.get("topic") or ""), rule=str(extra.get("rule") or ""),
                   reupload_of=reupload if isinstance(reupload, dict) else None)


@dataclass
class Score:
    """One paper's judgement, the seed's JSONL record plus what we know of how it was made."""
    arxiv_id: str
    relevance: int
    novelty: int
    comment: str
    expected_relevance: float | None = None   # probability-weighted mean (score-mode expected)
    expected_novelty: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    def to_jsonl(self) -> dict[str, Any]:
        """Exactly the seed's keys: a drop-in for GPT's JSONL."""
        return {"ARXIVID": self.arxiv_id, "COMMENT": self.comment,
                "RELEVANCE": self.relevance, "NOVELTY": self.novelty}

    @property
    def total(self) -> int:
        return self.relevance + self.novelty


@dataclass
class Failure:
    """A paper the backend could not score (after its retry)."""
    arxiv_id: str
    reason: str
    raw: str = ""


@dataclass
class Usage:
    """Tokens a backend spent: prompt (of which cached) and completion; add() sums another's in."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0

    def add(self, other: "Usage") -> None:
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_prompt_tokens += other.cached_prompt_tokens


@dataclass
class RankingRow:
    """One row of the store's rankings table, read back for the web pages: a paper's place in one day's stored
    ranking, by id (the paper itself is read separately), with the day, embedder and run it came from. Not a
    second Ranked: Ranked carries the Paper through the steps and out to the prefilter JSONL; Store.put_rankings
    turns Ranked records into these rows."""
    day: str
    paper_id: str
    prefilter_score: float
    kept: bool
    topic: str = ""
    rule: str | None = None       # None, or the user rule that decided it: "pin" / "exclude:<the rule>" (Ranked.rule)
    embedder: str | None = None
    run_id: int | None = None


@dataclass
class DayDigest:
    """Which scores make a day's digest: those of (model, prompt_hash), picked under the cut-offs."""
    day: str
    model: str
    prompt_hash: str
    min_relevance: int
    min_novelty: int
    run_id: int | None = None
    created_at: float = 0.0


@dataclass
class Label:
    """The user's own verdict on a paper: +1 (thumbs up) or -1 (thumbs down)."""
    paper_id: str
    label: int
    day: str | None = None        # the digest day of the page it was given on (not when: see created_at)
    created_at: float = 0.0

    @property
    def liked(self) -> bool:
        return self.label > 0
