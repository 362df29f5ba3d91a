"""The JSON schema a scoring answer must follow, built per request so the engine can enforce it.

One paper per request: an object with exactly the seed's four keys, the ArXiv id fixed to that paper,
integer scores in 1..10 and a comment of bounded length:

    {"ARXIVID": "2506.16065", "COMMENT": "...", "RELEVANCE": 7, "NOVELTY": 5}

Several papers per request: {"papers": [obj, obj, ...]} with one object per id, in the order given
(`prefixItems` pins each position's ARXIVID, `items: false` + minItems/maxItems pin the count), so the
engine cannot skip, repeat or invent a paper.

What the engines enforce (checked against xgrammar 0.2.8, which both vLLM and the transformers backend
use): enum on ARXIVID, the integer range (no 0, 11, -1, 05 or 5.0), maxLength on COMMENT, required keys
and their order, no extra keys, prefixItems/minItems/maxItems. A bounded string in xgrammar admits no
escape sequences, so a COMMENT can carry no '"', backslash or newline: the model writes around them.
"""
from __future__ import annotations

import re
from typing import Any

from ..io import clean_text, json_loads, same_paper_id
from .base import SCORE_FIELDS

SCORE_MIN, SCORE_MAX = 1, 10
KEYS = ("ARXIVID", "COMMENT", *SCORE_FIELDS)
# The default bound of a COMMENT, in characters: the 99th percentile of the 1,368 comments GPT-4o wrote in the
# fifty days of history (302.65; median 160, 95th percentile 256, longest 381), rounded. The prompt asks for it
# and the schema enforces it.
COMMENT_CHARS = 300
ELLIPSIS = "\u2026"
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)")


def fit_comment(text: str, limit: int) -> str:
    """A COMMENT folded to one line and, when it reached `limit` characters (an engine stops a bounded string
    there, mid-word) or went past it (a server that ignored the bound), cut back to its last whole sentence,
    or failing one that keeps half the room, its last whole word, followed by an ellipsis; never longer than
    `limit`. A comment that ended by itself within the bound is left as written."""
    reached = len(text) >= limit
    text = " ".join(text.split())
    if not reached or (len(text) <= limit and text.endswith((".", "!", "?"))):
        return text
    room = text[:limit]
    ends = [m.end() for m in _SENTENCE_END.finditer(room)]
    if ends and ends[-1] >= limit // 2:
        return room[:ends[-1]]
    cut = room[:limit - 1]
    if len(text) > limit - 1 and not text[limit - 1].isspace():   # the cut falls inside a word: drop that word
        cut = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return cut.rstrip(" ,;:-\u2013\u2014") + ELLIPSIS


def paper_object(arxiv_id: str, comment_chars: int = COMMENT_CHARS) -> dict[str, Any]:
    score = {"type": "integer", "minimum": SCORE_MIN, "maximum": SCORE_MAX}
    return {
        "type": "object",
        "properties": {
            "ARXIVID": {"type": "string", "enum": [arxiv_id]},
            "COMMENT": {"type": "string", "maxLength": int(comment_chars)},
            **{f: dict(score) for f in SCORE_FIELDS},
        },
        "required": list(KEYS),
        "additionalProperties": False,
    }


def paper_schema(ids: list[str], comment_chars: int = COMMENT_CHARS) -> dict[str, Any]:
    """The schema for one request scoring `ids` (one id: a bare object; several: {"papers": [...]})."""
    if not ids:
        raise ValueError("paper_schema needs at least one id")
    if len(ids) == 1:
        return paper_object(ids[0], comment_chars)
    n = len(ids)
    return {
        "type": "object",
        "properties": {
            "papers": {
                "type": "array",
                "prefixItems": [paper_object(i, comment_chars) for i in ids],
                "items": False,
                "minItems": n,
                "maxItems": n,
            }
        },
        "required": ["papers"],
        "additionalProperties": False,
    }


def schema_ids(schema: dict[str, Any]) -> list[str]:
    """The ArXiv ids a schema built by paper_schema asks for, in order."""
    props = schema.get("properties", {})
    if "papers" in props:
        return [o["properties"]["ARXIVID"]["enum"][0] for o in props["papers"]["prefixItems"]]
    return [props["ARXIVID"]["enum"][0]]


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"the key {k!r} appears twice in one object")
        out[k] = v
    return out


def load_answer(text: str) -> Any:
    """An answer's JSON text as data. A key given twice in one object is refused (JSON parsers keep the last
    one, so a forged second "RELEVANCE" would win); other problems (nesting too deep too) raise
    json.JSONDecodeError."""
    return json_loads(text, object_pairs_hook=_no_duplicate_keys)


def _in_order_of(objs: list, ids: list[str]) -> list:
    """The answers in the order of `ids` when each id has exactly one answer naming it (a server that relaxed
    the schema's fixed order may answer in another); otherwise as given, for the checks to name the fault."""
    ordered = []
    for want in ids:
        hits = [o for o in objs if isinstance(o, dict) and same_paper_id(o.get("ARXIVID"), want)]
        if len(hits) != 1:
            return objs
        ordered.append(hits[0])
    return ordered


def check_answer(data: Any, ids: list[str], comment_chars: int, *, strict: bool = True) -> list[dict[str, Any]]:
    """The one validator of an answer to paper_schema(ids, comment_chars): the paper objects in order, each
    with ARXIVID set to the id asked and COMMENT's whitespace folded. Raises ValueError naming the first
    problem.

    What makes a score is always checked: one object per id in order, the four keys, ARXIVID the id asked
    (a version suffix vN allowed), RELEVANCE and NOVELTY integers in 1..10, COMMENT a string.
    strict=True (does an engine enforce the schema? tests and benchmarks) also refuses what is cosmetic:
    other keys, a versioned id, a COMMENT over comment_chars. strict=False (scoring: a server that ignores
    part of the schema still gives usable scores) ignores other keys, cuts the COMMENT to comment_chars and
    takes several papers' answers in any order when each id is answered exactly once."""
    if len(ids) == 1:
        objs = [data]
    else:
        if not isinstance(data, dict) or not isinstance(data.get("papers"), list) or (strict and set(data) != {"papers"}):
            raise ValueError('expected an object {"papers": [...]}')
        objs = data["papers"]
        if len(objs) != len(ids):
            raise ValueError(f"{len(objs)} answers for {len(ids)} papers")
        if not strict:
            objs = _in_order_of(objs, ids)
    out = []
    for want, obj in zip(ids, objs):
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        missing = set(KEYS) - obj.keys()
        if missing:
            raise ValueError(f"missing {', '.join(sorted(missing))}")
        if strict and set(obj) != set(KEYS):
            raise ValueError(f"keys {sorted(obj)} differ from {list(KEYS)}")
        aid = obj["ARXIVID"]
        if not (aid == want if strict else same_paper_id(aid, want)):
            raise ValueError(f"ARXIVID {aid!r} is not {want!r}")
        for f in SCORE_FIELDS:
            v = obj[f]
            if not isinstance(v, int) or isinstance(v, bool) or not SCORE_MIN <= v <= SCORE_MAX:
                raise ValueError(f"{f} {v!r} is not an integer in {SCORE_MIN}..{SCORE_MAX}")
        comment = obj["COMMENT"]
        if not isinstance(comment, str):
            raise ValueError("COMMENT is not a string")
        if strict and len(comment) > comment_chars:
            raise ValueError(f"COMMENT is longer than {comment_chars} characters")
        comment = clean_text(comment)
        comment = " ".join(comment.split()) if strict else fit_comment(comment, comment_chars)
        out.append({"ARXIVID": want, "COMMENT": comment,
                    **{f: obj[f] for f in SCORE_FIELDS}})
    return out
