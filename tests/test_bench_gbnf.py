"""The scoring schema as a GBNF grammar (scripts/gbnf.py: what the benchmark's llama.cpp engines enforce). The
grammar's behaviour with llama.cpp's own matcher is tested in test_bench_llamacpp.py; here its text and its
refusals."""
from __future__ import annotations

import re
import sys

import pytest

from conftest import REPO
from ranker.backends.schema import paper_schema

sys.path.insert(0, str(REPO / "scripts"))
from gbnf import schema_to_gbnf  # noqa: E402


def rules(text: str) -> dict[str, str]:
    out = {}
    for line in text.strip().splitlines():
        name, body = line.split(" ::= ", 1)
        assert name not in out, f"rule {name} defined twice"
        out[name] = body
    return out


def test_one_paper_keys_in_order_compact_and_bounded():
    r = rules(schema_to_gbnf(paper_schema(["2506.16065"], 300)))
    root = r["root"]
    keys = ['"\\"ARXIVID\\":"', '"\\"COMMENT\\":"', '"\\"RELEVANCE\\":"', '"\\"NOVELTY\\":"']
    assert [root.index(k) for k in keys] == sorted(root.index(k) for k in keys)
    literals = re.findall(r'"((?:\\.|[^"\\])*)"', root)
    assert literals and not any(c.isspace() for lit in literals for c in lit)   # no whitespace, as xgrammar
    assert "space" not in root and "ws" not in r
    assert r["root-arxivid"] == '"\\"2506.16065\\""'               # the id is fixed
    assert r["root-relevance"] == " | ".join(f'"{v}"' for v in range(1, 11))   # 1..10, nothing else
    assert "{0,300}" in r["root-comment"]
    assert r["char"] == '[^"\\\\\\x00-\\x1f]'                      # no quote, backslash or control char


def test_several_papers_pin_count_order_and_ids():
    ids = ["2506.00001", "2506.00002", "2506.00003"]
    r = rules(schema_to_gbnf(paper_schema(ids, 60)))
    assert r["root"] == '"{" "\\"papers\\":" root-papers "}"'
    assert r["root-papers"] == '"[" root-papers-0 "," root-papers-1 "," root-papers-2 "]"'
    for i, pid in enumerate(ids):
        assert r[f"root-papers-{i}-arxivid"] == f'"\\"{pid}\\""'
        assert "{0,60}" in r[f"root-papers-{i}-comment"]


def test_literal_escaping():
    g = schema_to_gbnf({"type": "object", "properties": {"a": {"enum": ['x"y\\z\n']}}, "required": ["a"],
                        "additionalProperties": False})
    assert r'"\"x\\\"y\\\\z\\n\""' in g


@pytest.mark.parametrize("schema", [
    {"type": "integer"},                                                     # unbounded integer
    {"type": "integer", "minimum": 0, "maximum": 10**6},                     # too wide to enumerate
    {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": ["a"]},   # extra keys allowed
    {"type": "object", "properties": {"a": {"type": "boolean"}}, "required": [], "additionalProperties": False},
    {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 2}},
    {"type": "string", "pattern": "[a-z]+"},
    {"type": "number"},
    {"enum": []},
])
def test_what_it_cannot_express_exactly_is_refused(schema):
    with pytest.raises(ValueError):
        schema_to_gbnf(schema)
