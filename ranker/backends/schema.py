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

from typing import Any

from .base import SCORE_FIELDS

SCORE_MIN, SCORE_MAX = 1, 10
KEYS = ("ARXIVID", "COMMENT", *SCORE_FIELDS)


def paper_object(arxiv_id: str, comment_chars: int = 300) -> dict[str, Any]:
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


def paper_schema(ids: list[str], comment_chars: int = 300) -> dict[str, Any]:
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


def check_answer(data: Any, ids: list[str], comment_chars: int) -> list[dict[str, Any]]:
    """Validate a parsed answer against what paper_schema(ids, comment_chars) demands and return the
    paper objects in order. Raises ValueError naming the first problem (for tests and for callers that
    cannot trust the engine, e.g. a server that ignores the schema)."""
    if len(ids) == 1:
        objs = [data]
    else:
        if not isinstance(data, dict) or set(data) != {"papers"} or not isinstance(data["papers"], list):
            raise ValueError('expected an object {"papers": [...]}')
        objs = data["papers"]
        if len(objs) != len(ids):
            raise ValueError(f"expected {len(ids)} papers, got {len(objs)}")
    for want, obj in zip(ids, objs):
        if not isinstance(obj, dict):
            raise ValueError("a paper entry is not an object")
        if set(obj) != set(KEYS):
            raise ValueError(f"keys {sorted(obj)} differ from {list(KEYS)}")
        if obj["ARXIVID"] != want:
            raise ValueError(f"ARXIVID {obj['ARXIVID']!r} where {want!r} was asked")
        if not isinstance(obj["COMMENT"], str) or len(obj["COMMENT"]) > comment_chars:
            raise ValueError(f"COMMENT is not a string of at most {comment_chars} characters")
        for f in SCORE_FIELDS:
            v = obj[f]
            if not isinstance(v, int) or isinstance(v, bool) or not SCORE_MIN <= v <= SCORE_MAX:
                raise ValueError(f"{f}={v!r} is not an integer in {SCORE_MIN}..{SCORE_MAX}")
    return objs
