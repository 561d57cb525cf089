"""The multi grader's safe formula language."""

from __future__ import annotations

import math

import pytest

from trainer.grading import (
    GraderValidationError,
    GradingError,
    parse_formula,
    run_grader,
    weighted_mean_formula,
)


def value(source: str, **names: float) -> float:
    return parse_formula(source, names).evaluate(names)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("(1 + 2) * 3", 9),
        ("2 ^ 3 ^ 2", 512),
        ("-2 ^ 2", -4),
        ("2 ** -1", 0.5),
        ("10 / 4 - 1", 1.5),
        ("--3", 3),
        ("min(a, b, 0.5)", 0.25),
        ("max(a)", 1),
        ("abs(-a)", 1),
        ("floor(2.7) + ceil(2.1)", 5),
        ("sqrt(16) * exp(0)", 4),
        ("log(e_val)", 1),
        ("log(8, 2)", 3),
        ("1.5e1", 15),
        (".5 + a * b", 0.75),
    ],
)
def test_evaluates(source: str, expected: float) -> None:
    assert value(source, a=1.0, b=0.25, e_val=math.e) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("", "empty"),
        ("a +", "expected a number"),
        ("(a", "expected ')'"),
        ("a b", "unexpected 'b'"),
        ("pow(a, 2)", "unknown function 'pow'"),
        ("sqrt(1, 2)", "sqrt() takes 1"),
        ("a $ b", "unexpected character '$'"),
        ("__import__('os')", "unexpected character"),
        ("min", "min is a function"),
        ("c + 1", "unknown grader name 'c'"),
    ],
)
def test_rejects_with_a_clear_message(source: str, fragment: str) -> None:
    with pytest.raises(GraderValidationError) as info:
        parse_formula(source, {"a", "b"}, "calculate_output")
    assert fragment in info.value.message and info.value.flag == "formula_parse_error"
    assert info.value.param == "calculate_output"


def test_error_position_points_at_the_problem() -> None:
    with pytest.raises(GraderValidationError) as info:
        parse_formula("a + * b", {"a", "b"})
    assert info.value.position == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "source", ["a / b", "log(b)", "sqrt(a - 2)", "exp(1000)", "(-1) ^ 0.5", "b ^ -1"]
)
def test_runtime_math_errors_are_flagged(source: str) -> None:
    with pytest.raises(GradingError) as info:
        parse_formula(source, {"a", "b"}).evaluate({"a": 1.0, "b": 0.0})
    assert info.value.flag == "other_error"


def test_division_by_zero_in_a_multi_grader_scores_zero_with_a_flag() -> None:
    grader = {
        "type": "multi",
        "name": "m",
        "graders": {
            "a": {"type": "string_check", "input": "x", "reference": "y", "operation": "eq"}
        },
        "calculate_output": "1 / a",
    }
    result = run_grader(grader, "", {})
    assert result.reward == 0.0 and result.errors == {"other_error": True}
    assert "division by zero" in result.error_message


def test_weighted_mean_formula_with_gates() -> None:
    formula = weighted_mean_formula({"accuracy": 3, "style": 1}, gates=["safe"])
    parsed = parse_formula(formula, {"accuracy", "style", "safe"})
    assert parsed.evaluate({"accuracy": 1, "style": 0, "safe": 1}) == 0.75
    assert parsed.evaluate({"accuracy": 1, "style": 1, "safe": 0.9}) == 0.0
