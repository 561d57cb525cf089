"""No-code graders for numbers and JSON answers.

Numbers are read the way people write them (`1,234.5`, `50%`, `-3`, `$12`); the LAST
number in the answer counts, because models tend to reason first and conclude last.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from time import monotonic
from typing import Any

import jsonschema
import referencing

from .base import CompiledGrader, GradingEnv, register
from .limits import MAX_SCHEMA_PATTERNS
from .result import (
    OTHER_ERROR,
    SAMPLE_PARSE_ERROR,
    GradeResult,
    GraderValidationError,
    GradingError,
)
from .spec import Field
from .templates import Sample, compile_template
from .text_types import REGEX_TIMEOUT_S, compile_user_regex, search_with_timeout

_NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[-+\u2212])?[ ]?[$\u20ac\u00a3\u00a5]?[ ]?"
    r"(?P<digits>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)"
    r"(?:[eE](?P<exp>[-+]?\d+))?(?P<percent>[ ]?%)?"
)


def extract_last_number(text: str, percent_as_fraction: bool = True) -> float | None:
    """The last number written in `text`, or None. `50%` is 0.5 unless told otherwise."""
    found = _NUMBER.findall(text)  # one C-level pass; tuples of (sign, digits, exp, percent)
    if not found:
        return None
    sign, digits, exp, percent = found[-1]
    value = float(digits.replace(",", ""))
    if exp:
        try:
            value *= 10.0 ** int(exp)
        except OverflowError:
            return None
    if not math.isfinite(value):
        return None  # 400 nines in a row: not a number anyone can compare
    if sign and sign != "+":
        value = -value
    if percent and percent_as_fraction:
        value /= 100.0
    return value


# References repeat (every sample of a GRPO group shares its task's), so parse each once;
# only short ones are kept, so the cache stays small whatever the tasks hold.
_cached_reference_number = lru_cache(maxsize=16384)(extract_last_number)


def _reference_number(text: str, percent_as_fraction: bool) -> float | None:
    if len(text) > 256:
        return extract_last_number(text, percent_as_fraction)
    return _cached_reference_number(text, percent_as_fraction)


@register
class NumericMatch(CompiledGrader):
    """`numeric_match`: the last number in the answer equals the reference, within tolerance.

    Fields: `input` (default the answer); `reference` (template or number, e.g.
    {{item.answer}}); `abs_tol` (allowed absolute difference); `rel_tol` (allowed
    difference as a fraction of the reference, 0.01 = 1%); `percent_as_fraction`:
    read `50%` as 0.5 (on both sides). Passes when |answer - reference| <= max(abs_tol,
    rel_tol * |reference|).
    """

    type_name = "numeric_match"
    label = "Number is correct"
    description = "Gives 1 when the last number in the answer equals the reference number, within a tolerance."
    fields = (
        Field(
            "input", "Text to read the number from", "template", default="{{sample.output_text}}"
        ),
        Field("reference", "Correct number", "template", "e.g. {{item.answer}}.", required=True),
        Field("abs_tol", "Allowed difference", "number", "e.g. 0.01.", default=0, minimum=0),
        Field(
            "rel_tol",
            "Allowed relative difference",
            "number",
            "0.01 means 1%.",
            default=1e-9,
            minimum=0,
        ),
        Field("percent_as_fraction", "Read 50% as 0.5", "boolean", default=True),
    )

    def setup(self, values: dict[str, Any]) -> None:
        raw_reference = values["reference"]
        self.input = compile_template(values["input"], self.param("input"))
        self.reference = compile_template(raw_reference, self.param("reference"))
        self.constant_reference = None if self.reference.variables else self._number(raw_reference)
        self.abs_tol = float(values["abs_tol"])
        self.rel_tol = float(values["rel_tol"])
        self.percent = values["percent_as_fraction"]

    def _number(self, value: str) -> float:
        number = extract_last_number(value, self.spec["percent_as_fraction"])
        if number is None:
            raise GraderValidationError(
                f"has no number in it: {str(value)[:80]!r}", self.param("reference")
            )
        return number

    def evaluate(self, sample: Sample, item: dict[str, Any], env: Any) -> GradeResult:
        if self.constant_reference is not None:
            reference = self.constant_reference
        else:
            value = self.reference.render_value(sample, item)
            if isinstance(value, int | float) and not isinstance(value, bool):
                reference = float(value)
            else:
                parsed = _reference_number(str(value), self.percent)
                if parsed is None:
                    raise GradingError(
                        OTHER_ERROR, f"the reference {str(value)[:80]!r} has no number in it"
                    )
                reference = parsed
        answer = extract_last_number(self.input.render(sample, item), self.percent)
        if answer is None:
            return GradeResult(0.0, self.name, self.type_name, scores={"extracted": None})
        close = abs(answer - reference) <= max(self.abs_tol, self.rel_tol * abs(reference))
        return GradeResult(
            1.0 if close else 0.0, self.name, self.type_name, scores={"extracted": answer}
        )


def _sample_json(template_value: Any) -> Any:
    """A template's value as JSON: objects pass through, text is parsed."""
    if isinstance(template_value, str):
        try:
            return Sample(template_value).output_json
        except GradingError as exc:
            raise GradingError(SAMPLE_PARSE_ERROR, exc.message) from None
    return template_value


@register
class JsonSchema(CompiledGrader):
    """`json_schema`: 1 when the answer is JSON that satisfies a JSON Schema.

    Fields: `input` (default {{sample.output_json}}: the answer parsed as JSON);
    `schema` (a JSON Schema object). Answers that are not JSON get `sample_parse_error`.
    """

    type_name = "json_schema"
    label = "Answer has the right JSON shape"
    description = (
        "Gives 1 when the answer is JSON with the required fields and types (a JSON Schema)."
    )
    fields = (
        Field("input", "JSON to check", "template", default="{{sample.output_json}}"),
        Field(
            "schema",
            "JSON Schema",
            "json",
            'e.g. {"type": "object", "required": ["answer"]}.',
            required=True,
        ),
    )

    def setup(self, values: dict[str, Any]) -> None:
        self.input = compile_template(values["input"], self.param("input"))
        schema = values["schema"]
        if not isinstance(schema, dict | bool):
            raise GraderValidationError("must be a JSON Schema object", self.param("schema"))
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise GraderValidationError(
                f"is not a valid JSON Schema: {exc.message}", self.param("schema")
            ) from None
        except RecursionError:
            raise GraderValidationError("is nested too deeply", self.param("schema")) from None
        for ref in _schema_refs(schema):
            if not ref.startswith("#"):
                raise GraderValidationError(
                    f"refers to {ref[:80]!r}; only references inside the schema (#/...) are "
                    "allowed: the server fetches nothing from elsewhere",
                    self.param("schema"),
                )
        patterns = _SchemaPatterns(schema, self.param("schema"))
        self.cost = patterns.cost
        self.patterns = patterns
        # An empty registry: jsonschema would otherwise fetch remote `$ref`s over HTTP.
        self.validator = patterns.extend(cls)(schema, registry=referencing.Registry())

    def evaluate(self, sample: Sample, item: dict[str, Any], env: GradingEnv) -> GradeResult:
        document = _sample_json(self.input.render_value(sample, item))
        with self.patterns.time_limit(env):
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(document))
        if error is None:
            return GradeResult(1.0, self.name, self.type_name)
        where = "/".join(map(str, error.absolute_path)) or "(top level)"
        return GradeResult(
            0.0, self.name, self.type_name, scores={"violation": f"{where}: {error.message}"}
        )


class _SchemaPatterns:
    """The schema's `pattern` and `patternProperties` regexes, compiled once and bounded.

    jsonschema would run them with the standard `re` module, which has no time limit, so
    `{"pattern": "^(a+)+$"}` could hold a process for ever on one answer; here they are
    checked like the regex criterion's pattern and run on the `regex` engine with a timeout.
    """

    def __init__(self, schema: Any, param: str):
        self.compiled: dict[str, Any] = {}
        self.cost = 0
        self._timeout = threading.local()
        for pattern in _schema_patterns(schema):
            if pattern in self.compiled:
                continue
            if len(self.compiled) >= MAX_SCHEMA_PATTERNS:
                raise GraderValidationError(
                    f"has more than {MAX_SCHEMA_PATTERNS} different patterns", param
                )
            self.compiled[pattern], cost = compile_user_regex(pattern, f"{param} (pattern {pattern[:40]!r})")
            self.cost += cost

    @contextmanager
    def time_limit(self, env: GradingEnv) -> Iterator[None]:
        self._timeout.deadline = monotonic() + env.time_left(REGEX_TIMEOUT_S)
        try:
            yield
        finally:
            self._timeout.deadline = None

    def search(self, pattern: str, text: str) -> bool:
        compiled = self.compiled.get(pattern)
        if compiled is None:  # not found by the walk (e.g. behind a $ref): refuse, never `re`
            raise GradingError(OTHER_ERROR, f"the schema's pattern {pattern[:40]!r} was not checked")
        deadline = getattr(self._timeout, "deadline", None)
        left = REGEX_TIMEOUT_S if deadline is None else max(0.01, deadline - monotonic())
        return search_with_timeout(compiled.search, text, left) is not None

    def extend(self, cls: Any) -> Any:
        search = self.search

        def pattern(validator, patrn, instance, schema):
            if validator.is_type(instance, "string") and not search(patrn, instance):
                yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

        def pattern_properties(validator, pattern_properties, instance, schema):
            if not validator.is_type(instance, "object"):
                return
            for patrn, subschema in pattern_properties.items():
                for key, value in instance.items():
                    if search(patrn, key):
                        yield from validator.descend(
                            value, subschema, path=key, schema_path=patrn
                        )

        def additional_properties(validator, additional, instance, schema):
            if not validator.is_type(instance, "object"):
                return
            known = schema.get("properties", {})
            patterns = list(schema.get("patternProperties", {}))
            extras = [
                key
                for key in instance
                if key not in known and not any(search(p, key) for p in patterns)
            ]
            if validator.is_type(additional, "object"):
                for extra in extras:
                    yield from validator.descend(instance[extra], additional, path=extra)
            elif not additional and extras:
                listed = ", ".join(repr(extra) for extra in sorted(extras))
                yield jsonschema.ValidationError(f"Additional properties are not allowed ({listed})")

        return jsonschema.validators.extend(
            cls,
            {
                "pattern": pattern,
                "patternProperties": pattern_properties,
                "additionalProperties": additional_properties,
            },
        )


def _schema_refs(schema: Any) -> Iterator[str]:
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key in ("$ref", "$dynamicRef", "$recursiveRef"):
                if isinstance(node.get(key), str):
                    yield node[key]
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _schema_patterns(schema: Any) -> Iterator[str]:
    """Every `pattern` value and `patternProperties` key anywhere in a schema (iteratively)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("pattern"), str):
                yield node["pattern"]
            if isinstance(node.get("patternProperties"), dict):
                yield from (k for k in node["patternProperties"] if isinstance(k, str))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace(",", ""))
        except ValueError:
            return None
    return None


def values_equal(answer: Any, reference: Any, case_sensitive: bool) -> bool:
    """JSON equality that treats 3, 3.0 and "3" alike and optionally ignores case."""
    if answer == reference and type(answer) is type(reference):
        return True
    a, b = _as_number(answer), _as_number(reference)
    if a is not None and b is not None:
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(answer, str) and isinstance(reference, str):
        a_text, b_text = " ".join(answer.split()), " ".join(reference.split())
        return a_text == b_text if case_sensitive else a_text.casefold() == b_text.casefold()
    return answer == reference


@register
class JsonFieldEquals(CompiledGrader):
    """`json_field_equals`: one field of the JSON answer equals the reference.

    Fields: `field` (dotted path into the answer, e.g. `result.total` or `items.0.id`);
    `reference` (template; `{{item.x}}` alone keeps x's JSON type); `case_sensitive`.
    Numbers compare by value (3 == 3.0 == "3"); text ignores extra spaces.
    """

    type_name = "json_field_equals"
    label = "JSON field is correct"
    description = "Gives 1 when a named field of the JSON answer equals the reference value."
    fields = (
        Field(
            "field", "Field in the answer", "text", "Dotted path, e.g. result.total.", required=True
        ),
        Field(
            "reference",
            "Correct value",
            "json",
            "A value, or a template such as {{item.total}}.",
            required=True,
        ),
        Field("case_sensitive", "Upper/lower case matters", "boolean", default=True),
    )

    def setup(self, values: dict[str, Any]) -> None:
        reference = values["reference"]
        self.path = tuple(p for p in values["field"].strip().split(".") if p)
        if not self.path:
            raise GraderValidationError("must name a field", self.param("field"))
        # A text reference is a template; any other JSON value is taken literally.
        self.reference = (
            compile_template(reference, self.param("reference"))
            if isinstance(reference, str)
            else None
        )
        self.constant = reference
        self.case_sensitive = values["case_sensitive"]

    def evaluate(self, sample: Sample, item: dict[str, Any], env: Any) -> GradeResult:
        value: Any = sample.output_json
        for key in self.path:
            if isinstance(value, dict) and key in value:
                value = value[key]
            elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
                value = value[int(key)]
            else:
                return GradeResult(
                    0.0, self.name, self.type_name, scores={"missing_field": ".".join(self.path)}
                )
        reference = self.reference.render_value(sample, item) if self.reference else self.constant
        reward = 1.0 if values_equal(value, reference, self.case_sensitive) else 0.0
        return GradeResult(reward, self.name, self.type_name)
