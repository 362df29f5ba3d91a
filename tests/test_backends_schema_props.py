"""check_answer, the one validator of a model's answer, against the JSON schema the engine enforces (read by
jsonschema): it accepts an answer exactly when the schema admits it (strict), for any JSON the fields may hold."""
from __future__ import annotations

import json

import jsonschema
from hypothesis import HealthCheck, given, settings, strategies as st

from ranker.backends.schema import KEYS, check_answer, load_answer, paper_schema

IDS = ["2506.00001", "2506.00002", "cs/0501001"]
VALUE = st.one_of(st.integers(-1, 12), st.sampled_from([True, False, None, 7.5, "7", ""]), st.text(max_size=8),
                  st.sampled_from(IDS + ["2506.00001v2", " 2506.00001"]), st.lists(st.integers(1, 3), max_size=2))


@st.composite
def _answer(draw, pid):
    """A valid answer, or one with a single key changed, added or taken away."""
    obj = {"ARXIVID": pid, "COMMENT": draw(st.text(max_size=12)), "RELEVANCE": draw(st.integers(1, 10)),
           "NOVELTY": draw(st.integers(1, 10))}
    how = draw(st.sampled_from(["keep", "change", "add", "drop"]))
    if how == "change":
        obj[draw(st.sampled_from(KEYS))] = draw(VALUE)
    elif how == "add":
        obj[draw(st.sampled_from(["x", "relevance", "papers"]))] = draw(VALUE)
    elif how == "drop":
        del obj[draw(st.sampled_from(KEYS))]
    return obj


@st.composite
def cases(draw):
    ids = IDS[:draw(st.integers(1, 3))]
    objs = [draw(_answer(i)) for i in ids]
    if len(ids) == 1:
        data = objs[0]
    else:
        objs = draw(st.permutations(objs)) if draw(st.booleans()) else objs
        data = {"papers": objs[:draw(st.integers(len(ids) - 1, len(ids)))]}
    return ids, data, draw(st.integers(0, 12))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
def test_an_answer_is_accepted_exactly_when_the_schema_admits_it(case):
    ids, data, chars = case
    admitted = jsonschema.Draft202012Validator(paper_schema(ids, chars)).is_valid(data)
    try:
        check_answer(load_answer(json.dumps(data)), ids, chars)
        accepted = True
    except ValueError:
        accepted = False
    assert accepted == admitted, (ids, chars, data)
