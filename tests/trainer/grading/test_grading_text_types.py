"""string_check and the no-code text graders."""

from __future__ import annotations

import pytest

from trainer.grading import GraderValidationError, run_grader, text_types, validate_grader


def grade(grader: dict, text: str, item: dict | None = None) -> float:
    result = run_grader(grader, text, item or {})
    assert result.ok, result.errors
    return result.reward


@pytest.mark.parametrize(
    ("operation", "text", "reference", "expected"),
    [
        ("eq", "Paris", "Paris", 1),
        ("eq", "paris", "Paris", 0),
        ("ne", "Lyon", "Paris", 1),
        ("ne", "Paris", "Paris", 0),
        ("like", "It is Paris.", "Paris", 1),
        ("like", "It is paris.", "Paris", 0),
        ("ilike", "It is PARIS.", "paris", 1),
        ("ilike", "Lyon", "paris", 0),
    ],
)
def test_string_check(operation: str, text: str, reference: str, expected: float) -> None:
    grader = {
        "type": "string_check",
        "name": "s",
        "input": "{{sample.output_text}}",
        "reference": "{{item.r}}",
        "operation": operation,
    }
    assert grade(grader, text, {"r": reference}) == expected


def test_regex_match_modes_and_case() -> None:
    date = {"type": "regex_match", "pattern": r"\d{4}-\d{2}-\d{2}"}
    assert grade(date, "Due 2024-05-01.") == 1
    assert grade({**date, "mode": "full"}, "Due 2024-05-01.") == 0
    assert grade({**date, "mode": "full"}, "2024-05-01") == 1
    assert grade({"type": "regex_match", "pattern": "^yes$", "ignore_case": True}, "YES") == 1
    with pytest.raises(GraderValidationError) as info:
        validate_grader({"type": "regex_match", "pattern": "(unclosed"})
    assert info.value.param == "pattern"


def test_regex_catastrophic_backtracking_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text_types, "REGEX_TIMEOUT_S", 0.05)
    result = run_grader({"type": "regex_match", "pattern": r"(a|aa)+$"}, "a" * 40 + "b", {})
    assert result.reward == 0 and result.errors == {"other_error": True}


def test_keywords_all_any_case_words_and_item_lists() -> None:
    base = {"type": "keywords", "keywords": ["refund", "14 days"]}
    assert grade(base, "A REFUND within 14 days.") == 1
    assert grade(base, "A refund soon.") == 0
    assert grade({**base, "partial_credit": True}, "A refund soon.") == 0.5
    assert grade({**base, "mode": "any"}, "within 14 days") == 1
    assert grade({**base, "case_sensitive": True}, "A REFUND within 14 days.") == 0
    assert grade({"type": "keywords", "keywords": ["cat"], "whole_words": True}, "category") == 0
    assert (
        grade(
            {"type": "keywords", "keywords": ["{{item.must}}"]},
            "red and blue",
            {"must": ["red", "blue"]},
        )
        == 1
    )


def test_length_bounds() -> None:
    assert grade({"type": "length_bounds", "min": 2, "max": 3}, "one two three") == 1
    assert grade({"type": "length_bounds", "max": 2}, "one two three") == 0
    assert grade({"type": "length_bounds", "unit": "characters", "max": 5}, "  hello  ") == 1
    with pytest.raises(GraderValidationError):
        validate_grader({"type": "length_bounds"})
    with pytest.raises(GraderValidationError):
        validate_grader({"type": "length_bounds", "min": 5, "max": 2})


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("B", 1),
        ("(b).", 1),
        ("Answer: B", 1),
        ("I think it is B", 1),
        ("A or B", 0),
        ("C", 0),
        ("none", 0),
    ],
)
def test_choice_match_with_options(answer: str, expected: float) -> None:
    grader = {
        "type": "choice_match",
        "reference": "{{item.answer}}",
        "options": ["{{item.options}}"],
    }
    assert grade(grader, answer, {"answer": "B", "options": ["A", "B", "C", "D"]}) == expected


def test_choice_match_without_options_normalises() -> None:
    grader = {"type": "choice_match", "reference": "{{item.answer}}"}
    assert grade(grader, ' "Mitral  Valve". ', {"answer": "mitral valve"}) == 1
    assert grade(grader, "aortic valve", {"answer": "mitral valve"}) == 0
