"""The per-request JSON schema, and that xgrammar (the grammar engine behind vLLM and the transformers
backend) really enforces each of its constraints with a real tokenizer. No model is loaded."""
from __future__ import annotations

import json

import pytest

from ranker.backends.schema import check_answer, paper_schema, schema_ids

from conftest import MODELS

SMOL = MODELS / "smollm2-135m"


def obj(i, comment="fits", rel=5, nov=6):
    return {"ARXIVID": i, "COMMENT": comment, "RELEVANCE": rel, "NOVELTY": nov}


def compact(data) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def test_single_paper_schema_shape():
    s = paper_schema(["2506.16065"], 300)
    assert s["properties"]["ARXIVID"] == {"type": "string", "enum": ["2506.16065"]}
    assert s["properties"]["COMMENT"]["maxLength"] == 300
    for f in ("RELEVANCE", "NOVELTY"):
        assert s["properties"][f] == {"type": "integer", "minimum": 1, "maximum": 10}
    assert s["required"] == ["ARXIVID", "COMMENT", "RELEVANCE", "NOVELTY"]
    assert s["additionalProperties"] is False
    assert schema_ids(s) == ["2506.16065"]


def test_several_papers_schema_pins_each_position():
    ids = ["2506.00001", "2506.00002", "2506.00003"]
    s = paper_schema(ids, 120)
    arr = s["properties"]["papers"]
    assert arr["minItems"] == arr["maxItems"] == 3 and arr["items"] is False
    assert [o["properties"]["ARXIVID"]["enum"] for o in arr["prefixItems"]] == [[i] for i in ids]
    assert schema_ids(s) == ids
    with pytest.raises(ValueError):
        paper_schema([], 100)


def test_check_answer():
    assert check_answer(obj("a"), ["a"], 10) == [obj("a")]
    assert check_answer({"papers": [obj("a"), obj("b")]}, ["a", "b"], 10)
    for bad, ids in [(obj("b"), ["a"]), (obj("a", rel=0), ["a"]), (obj("a", nov=11), ["a"]),
                     (obj("a", rel=True), ["a"]), (obj("a", rel=5.0), ["a"]), (obj("a", "x" * 11), ["a"]),
                     ({**obj("a"), "EXTRA": 1}, ["a"]), ({"papers": [obj("a")]}, ["a", "b"]),
                     ({"papers": [obj("b"), obj("a")]}, ["a", "b"])]:
        with pytest.raises(ValueError):
            check_answer(bad, ids, 10)


@pytest.fixture(scope="module")
def compiler():
    xgr = pytest.importorskip("xgrammar")
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(SMOL)
    info = xgr.TokenizerInfo.from_huggingface(tok, vocab_size=49152)
    return tok, xgr, xgr.GrammarCompiler(info)


def accepts(compiler, schema, text) -> bool:
    """Feed the text's tokens through a grammar matcher, as an engine would; True if it is a full match."""
    tok, xgr, comp = compiler
    m = xgr.GrammarMatcher(comp.compile_json_schema(json.dumps(schema), any_whitespace=False,
                                                    separators=(",", ":")))
    for t in tok.encode(text, add_special_tokens=False):
        if not m.accept_token(t):
            return False
    return m.is_terminated() or m.accept_token(tok.eos_token_id)


def test_xgrammar_enforces_the_single_paper_schema(compiler):
    s = paper_schema(["2506.16065"], 40)
    assert accepts(compiler, s, compact(obj("2506.16065")))
    assert accepts(compiler, s, compact(obj("2506.16065", rel=10, nov=1)))
    assert not accepts(compiler, s, compact(obj("2506.16066")))            # the id is pinned
    for bad in (0, 11, -1, 100):
        assert not accepts(compiler, s, compact(obj("2506.16065", rel=bad)))
    assert not accepts(compiler, s, compact(obj("2506.16065")).replace('"RELEVANCE":5', '"RELEVANCE":05'))
    assert not accepts(compiler, s, compact(obj("2506.16065")).replace('"RELEVANCE":5', '"RELEVANCE":5.0'))
    assert accepts(compiler, s, compact(obj("2506.16065", "x" * 40)))
    assert not accepts(compiler, s, compact(obj("2506.16065", "x" * 41)))   # maxLength
    assert not accepts(compiler, s, compact({**obj("2506.16065"), "EXTRA": 1}))
    no_novelty = {k: v for k, v in obj("2506.16065").items() if k != "NOVELTY"}
    assert not accepts(compiler, s, compact(no_novelty))


def test_xgrammar_enforces_the_several_paper_schema(compiler):
    s = paper_schema(["1", "2"], 40)
    assert accepts(compiler, s, compact({"papers": [obj("1"), obj("2")]}))
    assert not accepts(compiler, s, compact({"papers": [obj("2"), obj("1")]}))   # order pinned
    assert not accepts(compiler, s, compact({"papers": [obj("1"), obj("1")]}))   # no repeats
    assert not accepts(compiler, s, compact({"papers": [obj("1")]}))             # none missing
    assert not accepts(compiler, s, compact({"papers": [obj("1"), obj("2"), obj("2")]}))


def test_one_validator_strict_for_engines_lenient_for_scoring():
    long, versioned, extra = obj("a", "x" * 11), obj("av3"), {**obj("a"), "EXTRA": 1}
    for bad in (long, versioned, extra):
        with pytest.raises(ValueError):
            check_answer(bad, ["a"], 10)
    assert check_answer(long, ["a"], 10, strict=False)[0]["COMMENT"] == "x" * 9 + "\u2026"   # one long word
    assert check_answer(versioned, ["a"], 10, strict=False)[0]["ARXIVID"] == "a"
    assert check_answer(extra, ["a"], 10, strict=False) == [obj("a")]
    assert check_answer(obj("a", "two   words\n"), ["a"], 20, strict=False)[0]["COMMENT"] == "two words"
    for bad in (obj("avEVIL"), obj("a", rel=11), {"ARXIVID": "a", "RELEVANCE": 5, "NOVELTY": 5}):
        with pytest.raises(ValueError):
            check_answer(bad, ["a"], 10, strict=False)


def test_lenient_scoring_takes_several_answers_in_any_order_when_each_id_is_answered_once():
    """A server that relaxed the schema's fixed order may answer [b, a]; scoring matches them by id. An id
    answered twice (or not at all) is still an error, naming the first place that disagrees."""
    a, b = obj("a", "about a"), obj("b", "about b")
    assert check_answer({"papers": [b, a]}, ["a", "b"], 20, strict=False) == [a, b]
    with pytest.raises(ValueError, match="ARXIVID 'b' is not 'a'"):
        check_answer({"papers": [b, a]}, ["a", "b"], 20)                     # an engine must keep the order
    with pytest.raises(ValueError, match="ARXIVID 'b' is not 'a'"):
        check_answer({"papers": [b, b]}, ["a", "b"], 20, strict=False)


def test_an_answer_for_a_paper_not_asked_is_refused_even_beside_every_one_asked():
    """Three answers to a request for two papers: the extra one is refused whether the schema is enforced or
    not (it is not an answer to this request)."""
    ids = ["2506.00001", "2506.00002"]
    data = {"papers": [obj(ids[0]), obj(ids[1]), obj("2506.00003")]}
    for strict in (True, False):
        with pytest.raises(ValueError, match="3 answers for 2 papers"):
            check_answer(data, ids, 300, strict=strict)
