"""What a reader's caller asks for: papers of some categories and announce types, each id once; and the
user-given values those requests are made of (a category list, a day), validated.
"""
from __future__ import annotations

from datetime import date as _date
from typing import Iterable, Iterator

from ..errors import InputError
from ..records import ANNOUNCE_TYPES, Paper, category_problem
from .report import ReadReport

# When the same paper shows up twice, the stronger announcement wins.
_ANNOUNCE_RANK = {t: i for i, t in enumerate(ANNOUNCE_TYPES)}


def filter_papers(papers: Iterable[Paper], *, categories: list[str] | None = None, announce: list[str] | None = None,
           report: ReadReport | None = None, buffered: bool = False) -> Iterator[Paper]:
    """Filter by category and announce type, relabel announce types relative to `categories`, de-duplicate.
    `buffered=True` reads everything first, so a later duplicate's stronger announce type is merged into the
    first occurrence before it is yielded."""
    report = report if report is not None else ReadReport()
    cats = list(categories) if categories else None
    wanted = set(announce) if announce else None
    seen: dict[str, Paper | None] = {}
    out: list[Paper] = []
    for p in papers:
        if cats is not None:
            if not any(within(c, cats) for c in p.categories):
                report.filtered += 1
                continue
            p.announce_type = relative_announce(p, cats)
            for k, v in per_category(p, cats).items():
                p.extra.setdefault(k, v)
        if wanted is not None and (p.announce_type or "new") not in wanted:
            report.filtered += 1
            continue
        if p.id in seen:
            report.warn("duplicates", report.where or report.source, f"{p.id}: duplicate; first occurrence kept")
            first = seen[p.id]
            if first is not None:
                first.announce_type = stronger(first.announce_type, p.announce_type)
            continue
        if buffered:
            seen[p.id] = p
            out.append(p)
        else:
            seen[p.id] = None        # streaming: remember the id only, so memory stays flat
            report.kept += 1
            yield p
    for p in out:
        report.kept += 1
        yield p


def within(category: str, wanted: list[str]) -> bool:
    """Whether a paper's category is one of `wanted`, an archive among them holding its subject classes
    ("cs" holds cs.LG, "astro-ph" astro-ph.CO; "hep-th" is a category of its own)."""
    return any(category == w or category.startswith(w + ".") for w in wanted)


def relative_announce(paper: Paper, categories: list[str] | None) -> str | None:
    """The announce type as a feed of exactly `categories` would give it: a paper whose primary category is
    one of them is 'new' (or 'replace'), one only cross-listed into them is 'cross' (or 'replace-cross')."""
    base = paper.announce_type or "new"
    if not categories:
        return base
    if not any(within(c, categories) for c in paper.categories):
        return base
    replaced = base.startswith("replace")
    if within(paper.primary_category or "", categories):
        return "replace" if replaced else "new"
    return "replace-cross" if replaced else "cross"


def per_category(paper: Paper, categories: list[str]) -> dict[str, str | None]:
    """The listing.jsonl per-category keys: how the paper appears in each category's own feed."""
    replaced = (paper.announce_type or "").startswith("replace")
    out: dict[str, str | None] = {}
    for c in categories:
        if not any(within(pc, [c]) for pc in paper.categories):
            out[c] = None
        elif within(paper.primary_category or "", [c]):
            out[c] = "replace" if replaced else "new"
        else:
            out[c] = "replace-cross" if replaced else "cross"
    return out


def stronger(a: str | None, b: str | None) -> str | None:
    """Merge two announce types of one paper: new beats cross beats replace beats replace-cross."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _ANNOUNCE_RANK.get(a, 9) <= _ANNOUNCE_RANK.get(b, 9) else b


def parse_list(value: str | list[str] | None, *, key: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    """'cs.LG, cs.AI' -> ['cs.LG', 'cs.AI'], validated."""
    if value is None:
        return []
    items = value if isinstance(value, list) else value.split(",")
    out: list[str] = []
    for raw in items:
        for item in str(raw).split(","):
            item = item.strip()
            if not item:
                continue
            if allowed is not None and item not in allowed:
                raise InputError(f"unknown value {item!r}; expected one of {', '.join(allowed)}", key=key)
            problem = category_problem(item) if allowed is None else None
            if problem:
                raise InputError(problem, key=key)
            if item not in out:
                out.append(item)
    return out


def check_day(value: str, key: str = "date") -> str:
    """Validate a YYYY-MM-DD given by the user (`key`: the parameter it came in)."""
    try:
        return _date.fromisoformat(value.strip()).isoformat()
    except (ValueError, AttributeError):
        raise InputError(f"expected a day as YYYY-MM-DD, got {value!r}", key=key) from None

