"""Templates: {{item.a.b}}, {{sample.output_text}}, {{sample.output_json.x}}."""

from __future__ import annotations

import pytest

from trainer.grading import GraderValidationError, run_grader, validate_grader
from trainer.grading.templates import Sample, compile_template


def check(input_template: str, reference: str = "yes") -> dict:
    return {
        "type": "string_check",
        "name": "t",
        "input": input_template,
        "reference": reference,
        "operation": "eq",
    }


def test_nested_item_paths_and_list_indices() -> None:
    item = {"a": {"b": ["x", {"c": "yes"}]}}
    assert run_grader(check("{{ item.a.b.1.c }}"), "", item).reward == 1.0
    assert (
        compile_template("n={{item.n}} ok={{item.ok}}").render(Sample(""), {"n": 3, "ok": True})
        == "n=3 ok=true"
    )


def test_missing_variable_is_invalid_variable_error() -> None:
    result = run_grader(check("{{item.missing}}"), "", {"answer": 1})
    assert result.reward == 0.0 and result.errors == {"invalid_variable_error": True}
    assert "missing" in result.error_message and "answer" in result.error_message


def test_output_json_from_text_and_from_sample_dict() -> None:
    grader = check("{{sample.output_json.verdict}}")
    assert run_grader(grader, '{"verdict": "yes"}', {}).reward == 1.0
    assert run_grader(grader, '```json\n{"verdict": "yes"}\n```', {}).reward == 1.0
    assert (
        run_grader(grader, {"output_text": "ignored", "output_json": {"verdict": "yes"}}, {}).reward
        == 1.0
    )


def test_unparseable_output_json_is_sample_parse_error() -> None:
    result = run_grader(check("{{sample.output_json.verdict}}"), "verdict: yes", {})
    assert result.reward == 0.0 and result.errors == {"sample_parse_error": True}


def test_bad_variable_root_fails_validation() -> None:
    with pytest.raises(GraderValidationError) as info:
        validate_grader(check("{{answer}}"))
    assert info.value.param == "input" and "{{item.<field>}}" in info.value.message


def test_templates_are_compiled_once() -> None:
    assert compile_template("{{item.x}}!") is compile_template("{{item.x}}!")
