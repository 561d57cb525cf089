"""Criteria in words, and why an answer lost marks, checked against the real grading engine."""

import pytest

from trainer.grading import run_grader
from webapp.graders.explain import criterion_reason, criterion_words, type_label

ANSWER = "{{sample.output_text}}"
CASES = [  # (criterion, answer, item, words, reason)
    ({"type": "string_check", "name": "s", "input": ANSWER, "reference": "{{item.reference_answer}}",
      "operation": "ilike"}, "It is b", {"reference_answer": "c"},
     "The answer contains (ignoring case) the task's “reference_answer”.",
     "“It is b” does not contain (even ignoring case) “c”."),
    ({"type": "length_bounds", "name": "l", "input": ANSWER, "unit": "words", "max": 1}, "two words", {},
     "The answer is at most 1 word long.", "It has 2 words; at most 1 allowed."),
    ({"type": "keywords", "name": "k", "input": ANSWER, "keywords": ["refund", "sorry"], "mode": "all",
      "case_sensitive": False, "whole_words": True, "partial_credit": False}, "Sorry about that", {},
     "The answer mentions all of “refund”, “sorry” (whole words only).", "Missing “refund”."),
    ({"type": "numeric_match", "name": "n", "input": ANSWER, "reference": "{{item.answer}}", "abs_tol": 0.5},
     "about 12", {"answer": "10"}, "The last number in the answer equals the task's “answer” (give or take 0.5).",
     "It says 12; the correct number is 10."),
    ({"type": "regex_match", "name": "r", "input": ANSWER, "pattern": "^[A-D]$", "mode": "search",
      "ignore_case": False}, "E", {}, "The answer matches the pattern “^[A-D]$” somewhere.",
     "“E” does not match the pattern “^[A-D]$”."),
]


@pytest.mark.parametrize(("spec", "answer", "item", "words", "reason"), CASES, ids=[c[0]["type"] for c in CASES])
def test_words_and_reasons(spec, answer, item, words, reason):
    result = run_grader(spec, answer, item)
    assert result.reward < 1
    assert criterion_words(spec) == words
    assert criterion_reason(spec, result, answer, item) == reason


def test_full_marks_need_no_reason_and_engine_errors_are_the_reason():
    spec = CASES[0][0]
    assert criterion_reason(spec, run_grader(spec, "C!", {"reference_answer": "c"}), "C!", {"reference_answer": "c"}) == ""
    broken = run_grader(spec, "x", {})  # no reference_answer in the task
    assert "reference_answer" in criterion_reason(spec, broken, "x", {})


def test_checks_are_named_in_plain_words():
    assert type_label("string_check") == "Text matches" and type_label("length_bounds") == "Length within limits"
