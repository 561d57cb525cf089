"""numeric_match, json_schema, json_field_equals."""

from __future__ import annotations

import pytest

from trainer.grading import GraderValidationError, run_grader, validate_grader
from trainer.grading.structured_types import extract_last_number


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("The total is 1,234.5 dollars", 1234.5),
        ("about 50%", 0.5),
        ("it fell to -3", -3),
        ("cost: $12", 12),
        ("-$12.50 refund", -12.5),
        ("first 3 then 4", 4),
        ("x = 2.5e3", 2500),
        ("1,2,3", 3),
        ("none here", None),
        ("answer: .5", 0.5),
        ("version 2024-01-05", 5),
    ],
)
def test_extract_last_number(text: str, number: float | None) -> None:
    assert extract_last_number(text) == number


def test_numeric_match_tolerances() -> None:
    grader = {"type": "numeric_match", "reference": "{{item.answer}}"}
    assert run_grader(grader, "So it is 1,234.50", {"answer": 1234.5}).reward == 1
    assert run_grader(grader, "So it is 1,234.51", {"answer": "1234.5"}).reward == 0
    assert run_grader({**grader, "abs_tol": 0.05}, "1234.51", {"answer": 1234.5}).reward == 1
    assert run_grader({**grader, "rel_tol": 0.01}, "101", {"answer": 100}).reward == 1
    assert run_grader(grader, "half, i.e. 50%", {"answer": 0.5}).reward == 1
    assert run_grader({**grader, "percent_as_fraction": False}, "50%", {"answer": 50}).reward == 1
    no_number = run_grader(grader, "I do not know", {"answer": 1})
    assert no_number.reward == 0 and no_number.ok and no_number.scores == {"extracted": None}
    assert run_grader({"type": "numeric_match", "reference": 42}, "42", {}).reward == 1


def test_numeric_match_reference_without_a_number() -> None:
    with pytest.raises(GraderValidationError):
        validate_grader({"type": "numeric_match", "reference": "forty"})
    result = run_grader({"type": "numeric_match", "reference": "{{item.a}}"}, "4", {"a": "four"})
    assert result.errors == {"other_error": True}


SCHEMA = {"type": "object", "required": ["answer"], "properties": {"answer": {"type": "integer"}}}


def test_json_schema() -> None:
    grader = {"type": "json_schema", "schema": SCHEMA}
    assert run_grader(grader, '{"answer": 4}', {}).reward == 1
    wrong = run_grader(grader, '{"answer": "4"}', {})
    assert wrong.reward == 0 and "answer" in wrong.scores["violation"]
    assert run_grader(grader, "four", {}).errors == {"sample_parse_error": True}
    with pytest.raises(GraderValidationError) as info:
        validate_grader({"type": "json_schema", "schema": {"type": "nonsense"}})
    assert info.value.param == "schema"


def test_json_field_equals() -> None:
    grader = {"type": "json_field_equals", "field": "result.total", "reference": "{{item.total}}"}
    assert run_grader(grader, '{"result": {"total": 12.0}}', {"total": 12}).reward == 1
    assert run_grader(grader, '{"result": {"total": "12"}}', {"total": 12}).reward == 1
    assert run_grader(grader, '{"result": {"total": 13}}', {"total": 12}).reward == 0
    assert run_grader(grader, '{"result": {}}', {"total": 12}).scores == {
        "missing_field": "result.total"
    }
    named = {
        "type": "json_field_equals",
        "field": "city",
        "reference": "paris",
        "case_sensitive": False,
    }
    assert run_grader(named, '{"city": " Paris "}', {}).reward == 1
    assert (
        run_grader(
            {"type": "json_field_equals", "field": "ok", "reference": True}, '{"ok": true}', {}
        ).reward
        == 1
    )
