"""JSON nested deeper than the parser's recursion allows ('[[[[...'), from a file handed over or a model's answer:
one bad line or one failed answer, said as such, never RecursionError ('unexpected failure')."""
from __future__ import annotations

import json

import pytest

from ranker.backends.base import Result
from ranker.compare.readers import read_scores
from ranker.errors import InputError
from ranker.io import json_loads
from ranker.labels import read_labels
from ranker.prefilter.calibrate import Calibration
from ranker.scoring import parse_result

DEEP = "[" * 100_000 + "]" * 100_000
GOOD = '{"ARXIVID": "2411.00001", "RELEVANCE": 9, "NOVELTY": 8, "COMMENT": "ok"}'


def test_json_loads_says_nested_too_deeply_as_bad_json():
    with pytest.raises(json.JSONDecodeError, match="nested too deeply"):
        json_loads(DEEP)
    assert json_loads('{"a": [1, 2.5]}') == {"a": [1, 2.5]}


def test_a_judgement_line_nested_too_deeply_is_a_skipped_line(tmp_path):
    """`ranker compare` on GPT judgements with such a line died 'unexpected failure: maximum recursion depth'."""
    for name, text in (("deep.jsonl", GOOD + "\n" + DEEP + "\n"),
                       ("inner.jsonl", GOOD + "\n" + GOOD[:-1] + ', "x": ' + DEEP + "}\n")):
        path = tmp_path / name
        path.write_text(text)
        warnings = []
        rows = read_scores(path, warn=warnings.append)
        assert list(rows) == ["2411.00001"], name
        assert len(warnings) == 1 and f"{path}:2: skipped line: not valid JSON (nested too deeply)" in warnings[0]


def test_a_json_digest_nested_too_deeply_is_refused_in_one_line(tmp_path):
    path = tmp_path / "digest.json"
    path.write_text(DEEP)
    with pytest.raises(InputError) as e:
        read_scores(path, warn=lambda m: None)
    assert e.value.where == str(path)


def test_a_labels_file_nested_too_deeply_names_its_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text('{"id": "2411.00001", "label": 1, "time": 1700000000}\n' + DEEP + "\n")
    with pytest.raises(InputError) as e:
        read_labels(path)
    assert e.value.where == f"{path}:2" and "nested too deeply" in e.value.message


def test_a_calibration_file_nested_too_deeply_is_not_a_calibration(tmp_path):
    path = tmp_path / "calib.json"
    path.write_text(DEEP)
    with pytest.raises(InputError) as e:
        Calibration.load(path)
    assert e.value.where == str(path) and "not a calibration file" in e.value.message


def test_a_model_answer_nested_too_deeply_is_a_failed_answer_not_a_crash():
    """A model led on by a paper's text (or an engine ignoring the schema) answering '[[[[...' crashed the whole
    scoring run with RecursionError; it is one answer that is not JSON, retried or counted like any other."""
    with pytest.raises(ValueError, match="not JSON.*nested too deeply"):
        parse_result(Result(key="k", text=DEEP), ["2411.00001"], 400)
