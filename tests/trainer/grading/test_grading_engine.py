"""run_grader / grade_batch / validate_grader: the contract other components rely on."""

from __future__ import annotations

import pytest

from trainer.grading import (
    BOOLEAN_FLAGS,
    GradeResult,
    GraderValidationError,
    grade_batch,
    run_grader,
    validate_grader,
)

EQ = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}


def test_run_grader_string_and_dict_samples() -> None:
    assert run_grader(EQ, "Paris", {"answer": "Paris"}).reward == 1.0
    assert run_grader(EQ, {"output_text": "Lyon"}, {"answer": "Paris"}).reward == 0.0
    result = run_grader(EQ, {"output_text": "Paris", "output_json": None}, {"answer": "Paris"})
    assert (result.reward, result.name, result.type, result.errors) == (
        1.0,
        "exact",
        "string_check",
        {},
    )
    assert result.execution_time >= 0


def test_to_openai_has_exactly_openais_shape() -> None:
    body = run_grader(EQ, "Paris", {"answer": "Paris"}).to_openai()
    assert set(body) == {"reward", "sub_rewards", "metadata", "model_grader_token_usage_per_model"}
    metadata = body["metadata"]
    assert {
        "name",
        "type",
        "errors",
        "execution_time",
        "scores",
        "token_usage",
        "sampled_model_name",
    } <= set(metadata)
    assert set(BOOLEAN_FLAGS) <= set(metadata["errors"])
    assert all(metadata["errors"][flag] is False for flag in BOOLEAN_FLAGS)
    assert metadata["errors"]["python_grader_runtime_error_details"] is None
    assert (metadata["name"], metadata["type"]) == ("exact", "string_check")


def test_to_openai_validates_with_the_official_sdk_model() -> None:
    openai_types = pytest.importorskip("openai.types.fine_tuning.alpha")
    bad = run_grader(EQ, "Paris", {})
    parsed = openai_types.GraderRunResponse.model_validate(bad.to_openai())
    assert parsed.reward == 0.0 and parsed.metadata.errors.invalid_variable_error is True


def test_invalid_grader_is_a_flagged_zero_not_a_crash() -> None:
    result = run_grader(
        {
            "type": "string_check",
            "name": "x",
            "input": "a",
            "reference": "a",
            "operation": "equals",
        },
        "a",
        {},
    )
    assert result.reward == 0.0 and result.errors["other_error"] is True
    assert 'operation: must be one of eq, ne, like, ilike; got "equals"' in result.error_message
    assert run_grader("not a grader", "a", {}).errors["other_error"] is True  # type: ignore[arg-type]
    bad_formula = {"type": "multi", "name": "m", "graders": {"a": EQ}, "calculate_output": "a +"}
    assert run_grader(bad_formula, "x", {"answer": "x"}).errors["formula_parse_error"] is True


def test_bad_item_and_sample_do_not_crash() -> None:
    assert run_grader(EQ, "Paris", "oops").errors["other_error"] is True  # type: ignore[arg-type]
    assert run_grader(EQ, 42, {"answer": "Paris"}).errors["sample_parse_error"] is True
    assert run_grader(EQ, None, {"answer": ""}).reward == 1.0  # no output at all is the empty text


def test_grader_dict_edited_in_place_is_recompiled() -> None:
    grader = dict(EQ)
    assert run_grader(grader, "Paris", {"answer": "paris"}).reward == 0.0
    grader["operation"] = "ilike"
    assert run_grader(grader, "Paris", {"answer": "paris"}).reward == 1.0


def test_validate_grader_normalises_and_names_the_path() -> None:
    normalised = validate_grader({"type": "numeric_match", "name": "n", "reference": "{{item.x}}"})
    assert normalised["input"] == "{{sample.output_text}}" and normalised["abs_tol"] == 0
    with pytest.raises(GraderValidationError) as info:
        validate_grader(
            {
                "type": "multi",
                "name": "m",
                "graders": {"accuracy": {**EQ, "operation": "equals"}},
                "calculate_output": "accuracy",
            }
        )
    assert (
        str(info.value)
        == 'graders.accuracy.operation: must be one of eq, ne, like, ilike; got "equals"'
    )
    assert info.value.param == "graders.accuracy.operation"


def test_grade_batch_keeps_order_and_flags_bad_items() -> None:
    results = grade_batch(EQ, ["a", "b", "c"], [{"answer": "a"}, {"answer": "x"}, None])
    assert [r.reward for r in results] == [1.0, 0.0, 0.0]
    assert results[2].errors == {"invalid_variable_error": True}
    assert all(isinstance(r, GradeResult) for r in results)
    with pytest.raises(ValueError):
        grade_batch(EQ, ["a"], [])


def test_grade_batch_of_multi_shares_sub_results() -> None:
    grader = {
        "type": "multi",
        "name": "rubric",
        "graders": {"exact": EQ, "short": {"type": "length_bounds", "max": 3}},
        "calculate_output": "0.5 * exact + 0.5 * short",
    }
    results = grade_batch(
        grader, ["Paris", "it is Paris I think"], [{"answer": "Paris"}, {"answer": "Paris"}]
    )
    assert [r.reward for r in results] == [1.0, 0.0]
    assert results[0].sub_rewards == {"exact": 1.0, "short": 1.0}
    assert set(results[1].sub_results) == {"exact", "short"}
