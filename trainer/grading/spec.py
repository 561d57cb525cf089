"""Field declarations shared by validation and the rubric builder's forms.

Each grader type lists its fields once as `Field`s. The same list checks a grader dict
(`read_fields`) and becomes the machine-readable catalogue the web forms render
(`GRADER_TYPES`), so the form and the validator can never disagree about a field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .limits import MAX_LIST_ENTRIES
from .result import GraderValidationError

# Field kinds, i.e. which form widget renders them:
#   template  text that may contain {{item.x}} / {{sample.output_text}} chips
#   text      plain text (no templates), e.g. a regex pattern
#   choice    one of `choices`
#   number / integer / boolean
#   string_list  a list of strings (one per line in a form)
#   json      a JSON value (e.g. a JSON schema)
#   code      python source
#   messages  chat messages [{role, content}] whose contents are templates
#   range     two numbers [low, high]
#   graders   a map name -> grader (multi)
#   formula   a calculate_output formula
#   object    a small JSON object (e.g. sampling_params)
KINDS = frozenset(
    "template text choice number integer boolean string_list json code messages range graders formula object".split()
)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a grader type, as a form shows it and as validation reads it."""

    name: str
    label: str
    kind: str
    help: str = ""
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    minimum: float | None = None

    def describe(self) -> dict[str, Any]:
        """JSON-ready description for the web rubric builder."""
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "kind": self.kind,
            "required": self.required,
            "help": self.help,
        }
        if self.default is not None:
            out["default"] = self.default
        if self.choices:
            out["choices"] = list(self.choices)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        return out


def join_path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _got(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if value is None:
        return "nothing"
    return f"{value!r} ({type(value).__name__})"


def read_fields(
    raw: dict[str, Any], fields: tuple[Field, ...], prefix: str, *, ignored: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check `raw` against `fields`; return a new dict with defaults filled in.

    Unknown keys are refused (they are almost always typos, e.g. `referance`) except
    `ignored` ones, which OpenAI accepts but that mean nothing here (e.g. `image_tag`).
    """
    known = {f.name for f in fields} | {"type", "name", *ignored}
    for key in raw:
        if key not in known:
            allowed = ", ".join(sorted(known - {"type"}))
            raise GraderValidationError(
                f"unknown field; this grader type has: {allowed}", join_path(prefix, str(key))
            )
    out: dict[str, Any] = {}
    for field in fields:
        param = join_path(prefix, field.name)
        value = raw.get(field.name)
        if value is None:
            if field.required:
                raise GraderValidationError(f"is required ({field.label.lower()})", param)
            if field.default is not None:
                out[field.name] = _copy(field.default)
            continue
        out[field.name] = _check_kind(field, value, param)
    for key in ignored:
        if key in raw:
            out[key] = raw[key]
    return out


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list | tuple) else value


def _check_kind(field: Field, value: Any, param: str) -> Any:
    kind = field.kind
    if kind == "template" and isinstance(value, int | float) and not isinstance(value, bool):
        value = repr(value)  # a bare number where text is expected, e.g. "reference": 42
    if kind in ("template", "text", "code", "formula"):
        if not isinstance(value, str):
            raise GraderValidationError(f"must be text; got {_got(value)}", param)
    elif kind == "choice":
        if value not in field.choices:
            raise GraderValidationError(
                f"must be one of {', '.join(field.choices)}; got {_got(value)}", param
            )
    elif kind in ("number", "integer"):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise GraderValidationError(f"must be a number; got {_got(value)}", param)
        if kind == "integer" and not float(value).is_integer():
            raise GraderValidationError(f"must be a whole number; got {value}", param)
        if field.minimum is not None and value < field.minimum:
            raise GraderValidationError(f"must be at least {field.minimum:g}; got {value}", param)
        value = int(value) if kind == "integer" else value
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise GraderValidationError(f"must be true or false; got {_got(value)}", param)
    elif kind == "string_list":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise GraderValidationError(f"must be a list of texts; got {_got(value)}", param)
        if len(value) > MAX_LIST_ENTRIES:
            raise GraderValidationError(
                f"has {len(value):,} entries; the limit is {MAX_LIST_ENTRIES:,}", param
            )
        value = list(value)
    elif kind == "range":
        if (
            not isinstance(value, list | tuple)
            or len(value) != 2
            or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in value
            )
        ):
            raise GraderValidationError(
                f"must be two numbers [low, high]; got {_got(value)}", param
            )
        if not value[0] < value[1]:
            raise GraderValidationError(
                f"low must be below high; got [{value[0]}, {value[1]}]", param
            )
        value = [value[0], value[1]]
    elif kind in ("object", "graders"):
        if not isinstance(value, dict):
            raise GraderValidationError(f"must be an object; got {_got(value)}", param)
    elif kind == "messages":
        if not isinstance(value, list | str) or not value:
            raise GraderValidationError(
                f"must be a non-empty list of messages; got {_got(value)}", param
            )
    return value
