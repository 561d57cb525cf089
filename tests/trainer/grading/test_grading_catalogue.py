"""GRADER_TYPES: the catalogue the rubric builder renders."""

from __future__ import annotations

import json

from trainer.grading import GRADER_TYPES, validate_grader
from trainer.grading.spec import KINDS

OPENAI_TYPES = {"string_check", "text_similarity", "score_model", "label_model", "python", "multi"}
EXTRA_TYPES = {
    "numeric_match",
    "regex_match",
    "json_schema",
    "json_field_equals",
    "keywords",
    "length_bounds",
    "choice_match",
}


def test_every_type_is_described() -> None:
    assert set(GRADER_TYPES) == OPENAI_TYPES | EXTRA_TYPES
    json.dumps(GRADER_TYPES)  # JSON-ready for the web forms
    for name, entry in GRADER_TYPES.items():
        assert entry["type"] == name and entry["label"] and entry["description"]
        assert entry["category"] == ("openai" if name in OPENAI_TYPES else "extra")
        for field in entry["fields"]:
            assert field["kind"] in KINDS and field["label"]
            if field["kind"] == "choice":
                assert field["choices"]


def test_a_form_filled_from_the_catalogue_validates() -> None:
    """Filling required fields with sample values by kind yields a valid grader for simple types."""
    samples = {
        "template": "{{item.answer}}",
        "text": "x",
        "number": 1,
        "integer": 3,
        "boolean": True,
        "string_list": ["a", "b"],
    }
    for name in (
        "string_check",
        "numeric_match",
        "keywords",
        "regex_match",
        "choice_match",
        "json_field_equals",
    ):
        grader = {"type": name, "name": name}
        for field in GRADER_TYPES[name]["fields"]:
            if field["required"]:
                grader[field["name"]] = (
                    field["choices"][0]
                    if field["kind"] == "choice"
                    else samples.get(field["kind"], "{{item.answer}}")
                )
        assert validate_grader(grader)["type"] == name
