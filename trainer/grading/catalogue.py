"""`GRADER_TYPES`: every grader type in plain language, for the rubric builder's forms.

Built from the same `Field` declarations that validation uses, so a form always offers
exactly the fields the engine accepts. Shape (JSON-ready):

    GRADER_TYPES["numeric_match"] == {
        "type": "numeric_match",
        "label": "Number is correct",
        "description": "Gives 1 when the last number in the answer equals ...",
        "category": "extra",            # "openai" for OpenAI's own types
        "fields": [{"name": "reference", "label": "Correct number", "kind": "template",
                    "required": True, "help": "e.g. {{item.answer}}."}, ...],
    }

Field kinds are listed in `spec.KINDS`; `choice` fields carry `choices`, fields with a
default carry `default`, numeric fields may carry `minimum`.
"""

from __future__ import annotations

from typing import Any

from .base import REGISTRY

# Order in the rubric builder's dropdown: the no-code checks first, then OpenAI's.
_ORDER = (
    "string_check",
    "choice_match",
    "numeric_match",
    "keywords",
    "regex_match",
    "length_bounds",
    "json_schema",
    "json_field_equals",
    "text_similarity",
    "score_model",
    "label_model",
    "python",
    "multi",
)


def build_catalogue() -> dict[str, dict[str, Any]]:
    names = [n for n in _ORDER if n in REGISTRY] + sorted(set(REGISTRY) - set(_ORDER))
    return {
        name: {
            "type": name,
            "label": REGISTRY[name].label,
            "description": REGISTRY[name].description,
            "category": REGISTRY[name].category,
            "fields": [field.describe() for field in REGISTRY[name].fields],
        }
        for name in names
    }
