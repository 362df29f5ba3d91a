"""Expected-score extraction on hand-made token streams: the tokenizer cases the engines meet."""
from __future__ import annotations

import math

import pytest

from ranker.backends.probs import Step, expected_value, extension_share, locate_values, score_distributions


def stream(pieces: list[str]) -> tuple[str, list[int]]:
    text, starts = "", []
    for p in pieces:
        starts.append(len(text))
        text += p
    return text, starts


def test_locate_values_single_and_nested():
    t = '{"ARXIVID":"1","COMMENT":"says \\"RELEVANCE\\":9 here","RELEVANCE":7,"NOVELTY":10}'
    found = locate_values(t)
    assert [(a, f, t[s:e]) for a, f, s, e in found] == [("1", "RELEVANCE", "7"), ("1", "NOVELTY", "10")]
    t2 = '{"papers":[{"ARXIVID":"a","COMMENT":"","RELEVANCE":3,"NOVELTY":4},' \
         '{"ARXIVID":"b","COMMENT":"}","RELEVANCE":5,"NOVELTY":6}]}'
    assert [(a, f, t2[s:e]) for a, f, s, e in locate_values(t2)] == [
        ("a", "RELEVANCE", "3"), ("a", "NOVELTY", "4"), ("b", "RELEVANCE", "5"), ("b", "NOVELTY", "6")]
    # with whitespace, and cut off in the middle
    t3 = '{ "ARXIVID": "x", "COMMENT": "c", "RELEVANCE": 8, "NOV'
    assert [(a, f, t3[s:e]) for a, f, s, e in locate_values(t3)] == [("x", "RELEVANCE", "8")]


def test_single_digit_tokens_and_the_ambiguous_one():
    # digits are single tokens (SmolLM2, Qwen): '1' may be 1 or the start of 10
    pieces = ['{"', 'ARXIVID', '":"', 'x', '","', 'COMMENT', '":"', 'ok', '","', 'RELEVANCE', '":',
              '1', '0', ',"', 'NOVELTY', '":', '7', '}']
    text, starts = stream(pieces)
    steps = [Step(p, [(p, p, 1.0)]) for p in pieces]
    rel_i = pieces.index("RELEVANCE") + 2
    steps[rel_i] = Step("1", [("1", "1", 0.5), ("9", "9", 0.3), ("5", "5", 0.2)])
    steps[rel_i + 1] = Step("0", [("0", "0", 0.8), (",", ",", 0.2)])    # after '1': 10 with 0.8
    nov_i = pieces.index("NOVELTY") + 2
    steps[nov_i] = Step("7", [("7", "7", 0.6), ("1", "1", 0.4)])
    asked = []

    def ask(pos, tok):
        asked.append((pos, tok))
        return [("0", "0", 0.25), ("}", "}", 0.75)]

    d = score_distributions(text, starts, steps, ask=ask)
    assert d["RELEVANCE"][10] == pytest.approx(0.4) and d["RELEVANCE"][1] == pytest.approx(0.1)
    assert d["RELEVANCE"][9] == pytest.approx(0.3) and d["RELEVANCE"][5] == pytest.approx(0.2)
    # the model wrote 7; the '1' candidate's continuation was asked for: 0.4 * 0.25 -> 10
    assert asked == [(nov_i, "1")]
    assert d["NOVELTY"][10] == pytest.approx(0.1) and d["NOVELTY"][1] == pytest.approx(0.3)
    assert d["NOVELTY"][7] == pytest.approx(0.6)
    for dist in d.values():
        assert sum(dist.values()) == pytest.approx(1.0) and set(dist) == set(range(1, 11))
    assert expected_value({1: 0.5, 3: 0.5}) == pytest.approx(2.0)


def test_without_an_answer_the_one_stays_one():
    pieces = ['{"RELEVANCE":', '3', ',"NOVELTY":', '2', '}']
    text, starts = stream(pieces)
    steps = [Step(p, [(p, p, 1.0)]) for p in pieces]
    steps[1] = Step("3", [("3", "3", 0.5), ("1", "1", 0.5)])
    d = score_distributions(text, starts, steps, ask=None)
    assert d["RELEVANCE"][1] == pytest.approx(0.5) and d["RELEVANCE"][10] == 0


def test_lead_text_multi_digit_tokens_and_whitespace():
    # a vocabulary with '":' glued to the digits and a single '10' token; whitespace may precede
    pieces = ['{"ARXIVID":"x","COMMENT":"c","RELEVANCE', '":8', ',"NOVELTY":', ' 10', '}']
    text, starts = stream(pieces)
    steps = [Step(p, [(p, p, 1.0)]) for p in pieces]
    steps[1] = Step('":8', [('":8', '":8', 0.5), ('":10', '":10', 0.2), ('":9,', '":9,', 0.1),
                             ('": ', '": ', 0.15), ("x", "x", 0.05)])
    steps[3] = Step(" 10", [(" 10", " 10", 0.7), (" 3", " 3", 0.2), (" ", " ", 0.1)])
    d = score_distributions(text, starts, steps)
    # '": ' (more whitespace) and 'x' lead to no number: dropped, the rest renormalised
    assert d["RELEVANCE"][8] == pytest.approx(0.5 / 0.8)
    assert d["RELEVANCE"][10] == pytest.approx(0.2 / 0.8)
    assert d["RELEVANCE"][9] == pytest.approx(0.1 / 0.8)
    assert d["NOVELTY"][10] == pytest.approx(0.7 / 0.9) and d["NOVELTY"][3] == pytest.approx(0.2 / 0.9)


def test_several_papers_keyed_by_id():
    pieces = ['{"papers":[{"ARXIVID":"a","COMMENT":"","RELEVANCE":', '4', ',"NOVELTY":', '5',
              '},{"ARXIVID":"b","COMMENT":"","RELEVANCE":', '6', ',"NOVELTY":', '2', '}]}']
    text, starts = stream(pieces)
    steps = [Step(p, [(p, p, 1.0)]) for p in pieces]
    d = score_distributions(text, starts, steps)
    assert set(d) == {"a/RELEVANCE", "a/NOVELTY", "b/RELEVANCE", "b/NOVELTY"}
    assert d["b/RELEVANCE"][6] == 1.0


def test_extension_share_and_nothing_found():
    assert extension_share([("0", "0", 0.3), (",", ",", 0.1), ("5", "5", 0.6)]) == pytest.approx(0.75)
    assert extension_share([("05", "05", 1.0)]) is None
    assert score_distributions('{"COMMENT":"x"}', [0], [Step("x")]) is None
    assert score_distributions("", [], []) is None
    assert not math.isnan(expected_value({k: 0.1 for k in range(1, 11)}))


def test_expected_value_is_the_one_scoring_stores():
    """One expectation for the probes and for scoring's stored expected_relevance/novelty: a distribution whose
    mass is short of 1 is normalised (not a mean pulled toward 0), one without mass has none."""
    assert expected_value({9: 0.3, 10: 0.3}) == pytest.approx(9.5)
    assert expected_value({1: 1 / 3, 2: 2 / 3}) == 1.6667                  # rounded as stored
    assert expected_value({5: 0.0}) is None and expected_value({}) is None and expected_value(None) is None
