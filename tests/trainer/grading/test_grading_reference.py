"""The reference-answer check: one rule for the grader page and the trainer's pre-flight."""

from trainer.grading import check_references, reference_sample

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
         "reference": "{{item.reference_answer}}", "operation": "eq"}
TOTAL = {"type": "json_field_equals", "name": "total", "field": "total", "reference": "{{item.total}}"}


def test_reference_sample_parses_json():
    assert reference_sample('{"total": 3}') == {"output_text": '{"total": 3}', "output_json": {"total": 3}}
    assert reference_sample("plain") == {"output_text": "plain"}
    assert reference_sample({"a": 1}) == {"output_text": '{"a": 1}', "output_json": {"a": 1}}


def test_full_marks_pass_and_the_rest_name_the_criteria():
    rubric = {"type": "multi", "name": "rubric", "calculate_output": "(exact + short) / 2", "graders": {
        "exact": EXACT,
        "short": {"type": "string_check", "name": "Short", "input": "{{sample.output_text}}", "reference": "4",
                  "operation": "eq"},
    }}
    grades = check_references(rubric, [{"reference_answer": "4"}, {"reference_answer": "5"}, {"question": "?"}])
    assert [g.passed for g in grades] == [True, False, False]
    assert grades[0].criteria == [] and grades[1].reward == 0.5
    assert grades[1].criteria == [{"key": "short", "name": "Short", "reward": 0.0, "error": ""}]
    assert [g.has_reference for g in grades] == [True, True, False]  # graded as the empty answer


def test_json_references_are_graded_as_output_json():
    """A grader reading {{sample.output_json}} sees the reference parsed (the old pre-flight did not)."""
    grades = check_references(TOTAL, [{"reference_answer": '{"total": 7}', "total": 7},
                                      {"reference_answer": {"total": 8}, "total": 8},
                                      {"reference_answer": "seven", "total": 7}])
    assert [g.passed for g in grades] == [True, True, False]


def test_a_criterion_that_errors_on_the_reference_is_named_with_its_error():
    rubric = {"type": "multi", "name": "rubric", "calculate_output": "max(exact, broken)", "graders": {
        "exact": EXACT,
        "broken": {"type": "string_check", "name": "broken", "input": "{{item.missing}}", "reference": "x",
                   "operation": "eq"},
    }}
    [grade] = check_references(rubric, [{"reference_answer": "4"}])
    assert not grade.passed and "no field 'missing'" in grade.error
    assert [c["key"] for c in grade.criteria] == ["broken"] and "no field 'missing'" in grade.criteria[0]["error"]
