"""The rubric builder's rows of criteria <-> a `multi` grader spec the engine runs.

A rubric is a list of criteria (name, grader type, that type's fields, weight, gate) and a
way to combine them: the weighted mean (gates multiply it by `floor(gate)`, i.e. 0 unless
the gate gave full marks) or a custom formula over the criteria's names. It always
compiles to a `multi` grader, even with one criterion, so `sub_rewards` show each one.

The form posts flat fields per row: `row=<id>` (in order), then `c-<id>-name`, `-type`,
`-weight`, `-gate`, and `c-<id>-f-<field>` for the type's fields (`-lo`/`-hi` for a
range). The type's fields come from the engine's catalogue (`GRADER_TYPES`), so the form
offers exactly what the engine accepts. Pure functions: no database, no request.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, field
from typing import Any

from trainer.grading import (
    GRADER_TYPES,
    GraderValidationError,
    parse_formula,
    validate_grader,
    weighted_mean_formula,
)
from webapp.core import jsonsafe

# The builder's dropdown: every type but `multi` (the rubric itself is the multi).
CATALOGUE: dict[str, dict[str, Any]] = {k: v for k, v in GRADER_TYPES.items() if k != "multi"}
DEFAULT_TYPE = next(iter(CATALOGUE))
SAMPLE_CHIP = "{{sample.output_text}}"
MAX_CRITERIA = 30
_ROW_ID = re.compile(r"^[a-z0-9]{1,16}$")
WEIGHTED_MEAN, FORMULA = "weighted_mean", "formula"


def new_row_id() -> str:
    return secrets.token_hex(4)


def is_row_id(row: str) -> bool:
    """Whether `row` can be a rubric row's id (it ends up in form field names)."""
    return bool(_ROW_ID.match(row))


def item_chips(reference_fields: dict[str, Any] | None) -> list[str]:
    """The insertable template variables: the dataset's reference fields, then the answer."""
    chips = [f"{{{{item.{key}}}}}" for key in (reference_fields or {})]
    return [*chips, SAMPLE_CHIP]


def criterion_key(name: str, taken: set[str]) -> str:
    """The name a criterion has in formulas and `sub_rewards`: `Number is correct` ->
    `number_is_correct` (unique within the rubric)."""
    key = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40] or "criterion"
    if key[0].isdigit():
        key = "c_" + key
    candidate, n = key, 2
    while candidate in taken:
        candidate, n = f"{key}_{n}", n + 1
    taken.add(candidate)
    return candidate


@dataclass
class Criterion:
    row: str
    type: str = DEFAULT_TYPE
    name: str = ""
    weight: str = "1"
    gate: bool = False
    values: dict[str, Any] = field(default_factory=dict)  # as typed in the form
    errors: dict[str, str] = field(default_factory=dict)  # field name (or "" for the row) -> message
    key: str = ""

    @property
    def info(self) -> dict[str, Any]:
        return CATALOGUE[self.type]

    @property
    def row_error(self) -> str:
        return self.errors.get("", "")

    @property
    def display_name(self) -> str:
        return self.name.strip() or self.info["label"]

    def widgets(self, chips: list[str]) -> list[dict[str, Any]]:
        """What the template renders for this type's fields, with values and errors."""
        out = []
        for f in self.info["fields"]:
            if f["kind"] in ("graders", "formula"):
                continue
            out.append({
                "minimum": None, "default": None, **f, "html_name": f"c-{self.row}-f-{f['name']}", "value": self.values.get(f["name"], ""),
                "error": self.errors.get(f["name"], ""),
                "chips": chips if f["kind"] in ("template", "messages") else [],
            })
        return out


@dataclass
class Rubric:
    criteria: list[Criterion]
    combine: str = WEIGHTED_MEAN
    formula: str = ""
    errors: dict[str, str] = field(default_factory=dict)  # "formula", "criteria", "name"

    @property
    def has_errors(self) -> bool:
        return bool(self.errors) or any(c.errors for c in self.criteria)

    def assign_keys(self) -> None:
        taken: set[str] = set()
        for c in self.criteria:
            c.key = criterion_key(c.display_name, taken)

    def state(self) -> dict[str, Any]:
        """What `Grader.rubric` stores (the field values live in the spec)."""
        return {
            "combine": self.combine, "formula": self.formula,
            "criteria": [{"key": c.key, "name": c.display_name, "type": c.type, "weight": _number(c.weight),
                          "gate": c.gate} for c in self.criteria],
        }


def new_criterion(type_: str = DEFAULT_TYPE, *, row: str | None = None, chips: list[str] | None = None,
                  name: str = "", weight: str = "1", gate: bool = False) -> Criterion:
    """A fresh row of `type_` with the catalogue's defaults, the answer and reference prefilled."""
    type_ = type_ if type_ in CATALOGUE else DEFAULT_TYPE
    values: dict[str, Any] = {}
    for f in CATALOGUE[type_]["fields"]:
        if "default" in f:
            values[f["name"]] = _to_form(f, f["default"])
        elif f["kind"] == "template" and f["name"] == "input":
            values[f["name"]] = SAMPLE_CHIP
        elif f["kind"] == "template" and f["name"] == "reference" and "{{item.reference_answer}}" in (chips or []):
            values[f["name"]] = "{{item.reference_answer}}"
    return Criterion(row=row or new_row_id(), type=type_, name=name, weight=weight, gate=gate, values=values)


# --- the form's POST <-> criteria -------------------------------------------------------------


def rubric_from_post(post) -> Rubric:
    """The rubric as typed in the form (values still strings; nothing validated yet)."""
    criteria = []
    for row in post.getlist("row")[:MAX_CRITERIA]:
        if not is_row_id(row):
            continue
        criteria.append(criterion_from_post(post, row))
    combine = post.get("combine", WEIGHTED_MEAN)
    return Rubric(criteria=criteria, combine=combine if combine in (WEIGHTED_MEAN, FORMULA) else WEIGHTED_MEAN,
                  formula=post.get("formula", "").strip())


def criterion_from_post(post, row: str) -> Criterion:
    p = f"c-{row}-"
    type_ = post.get(p + "type", DEFAULT_TYPE)
    type_ = type_ if type_ in CATALOGUE else DEFAULT_TYPE
    values: dict[str, Any] = {}
    for f in CATALOGUE[type_]["fields"]:
        name = f"{p}f-{f['name']}"
        if f["kind"] == "boolean":
            values[f["name"]] = name in post
        elif f["kind"] == "range":
            values[f["name"]] = {"lo": post.get(name + "-lo", "").strip(), "hi": post.get(name + "-hi", "").strip()}
        elif name in post:
            values[f["name"]] = post.get(name, "")
    return Criterion(row=row, type=type_, name=post.get(p + "name", "").strip()[:200],
                     weight=post.get(p + "weight", "1").strip(), gate=(p + "gate") in post, values=values)


def _to_form(f: dict[str, Any], value: Any) -> Any:
    """A spec value as the form shows it."""
    kind = f["kind"]
    if kind == "boolean":
        return bool(value)
    if kind == "range":
        return {"lo": _fmt(value[0]), "hi": _fmt(value[1])} if isinstance(value, list | tuple) else {"lo": "", "hi": ""}
    if kind in ("number", "integer"):
        return _fmt(value)
    if kind == "string_list":
        return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)
    if kind == "messages":
        if (isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict)
                and value[0].get("role") == "user" and isinstance(value[0].get("content"), str)
                and set(value[0]) <= {"role", "content", "type"}):
            return value[0]["content"]
        return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    if kind in ("json", "object"):
        return value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    return "" if value is None else str(value)


def _from_form(f: dict[str, Any], raw: Any) -> tuple[Any, str]:
    """(spec value or None to leave it out, error message)."""
    kind = f["kind"]
    if kind == "boolean":
        return bool(raw), ""
    if kind == "range":
        lo, hi = (raw or {}).get("lo", ""), (raw or {}).get("hi", "")
        if not lo and not hi:
            return None, ""
        try:
            return [_parse_number(lo), _parse_number(hi)], ""
        except ValueError:
            return None, "Give two numbers, low and high."
    text = raw if isinstance(raw, str) else ""
    if kind not in ("code",):
        text = text.strip()
    if not text.strip():
        return None, ""
    if kind in ("number", "integer"):
        try:
            number = _parse_number(text)
        except ValueError:
            return None, f"“{text[:40]}” is not a number."
        if kind == "integer":
            if not float(number).is_integer():
                return None, "Give a whole number."
            number = int(number)
        return number, ""
    if kind == "string_list":
        return [line.strip() for line in text.splitlines() if line.strip()], ""
    if kind == "messages":
        if text.startswith("["):
            try:
                return jsonsafe.loads(text), ""
            except ValueError as exc:
                return None, f"Not valid JSON messages: {exc}."
        return [{"role": "user", "content": text}], ""
    if kind in ("json", "object"):
        if kind == "json" and text.startswith("{{") and text.endswith("}}"):
            return text, ""  # a template standing for a value, e.g. {{item.total}}
        try:
            value = jsonsafe.loads(text)
        except ValueError as exc:
            return None, f"Not valid JSON: {exc}."
        if kind == "object" and not isinstance(value, dict):
            return None, "Give a JSON object, e.g. {\"temperature\": 0}."
        return value, ""
    return text, ""


def _parse_number(text: str) -> float:
    value = float(text.replace(",", "")) if text else float("nan")
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 1.0


# --- criteria -> grader spec ------------------------------------------------------------------


def compile_rubric(rubric: Rubric, *, name: str) -> dict[str, Any] | None:
    """The `multi` grader for the rubric, validated by the engine; or None with the errors
    written onto the rubric (next to the row and field they concern)."""
    rubric.assign_keys()
    if not rubric.criteria:
        rubric.errors["criteria"] = "Add at least one criterion."
        return None
    graders: dict[str, dict[str, Any]] = {}
    weights: dict[str, float] = {}
    gates: list[str] = []
    for c in rubric.criteria:
        spec: dict[str, Any] = {"type": c.type, "name": c.display_name}
        for f in c.info["fields"]:
            if f["kind"] in ("graders", "formula"):
                continue
            value, error = _from_form(f, c.values.get(f["name"]))
            if error:
                c.errors[f["name"]] = error
            elif value is not None:
                spec[f["name"]] = value
        try:
            weight = float(c.weight or "0")
            if not weight >= 0 or weight == float("inf"):
                raise ValueError
        except ValueError:
            c.errors["weight"] = "The weight must be a number of 0 or more."
            weight = 0.0
        graders[c.key], weights[c.key] = spec, weight
        if c.gate:
            gates.append(c.key)
    formula = _combination(rubric, weights, gates)
    if rubric.has_errors:
        return None
    spec = {"type": "multi", "name": name.strip() or "rubric", "graders": graders, "calculate_output": formula}
    try:
        return validate_grader(spec)
    except GraderValidationError as exc:
        _place_error(rubric, exc)
        return None


def _combination(rubric: Rubric, weights: dict[str, float], gates: list[str]) -> str:
    if rubric.combine == FORMULA:
        error = formula_error(rubric.formula, [c.key for c in rubric.criteria])
        if error:
            rubric.errors["formula"] = error
            return ""
        return " * ".join([f"({rubric.formula})", *(f"floor({g})" for g in gates)]) if gates else rubric.formula
    try:
        return weighted_mean_formula(weights, gates)
    except ValueError:
        rubric.errors["criteria"] = "Give at least one criterion a weight above 0 (gates may weigh 0)."
        return ""


def formula_error(formula: str, keys: list[str]) -> str:
    """'' when `formula` parses and only names criteria; else the engine's message."""
    if not formula.strip():
        return "Write a formula, e.g. " + (" + ".join(keys[:2]) or "accuracy") + "."
    try:
        parse_formula(formula, keys)
    except GraderValidationError as exc:
        return exc.message
    return ""


def _place_error(rubric: Rubric, exc: GraderValidationError) -> None:
    """Put an engine error (param like `graders.<key>.<field>`) next to its row and field."""
    parts = (exc.param or "").split(".")
    if parts[0] == "graders" and len(parts) >= 2:
        for c in rubric.criteria:
            if c.key == parts[1]:
                field_name = parts[2] if len(parts) > 2 else ""
                known = {f["name"] for f in c.info["fields"]}
                if field_name in known:
                    c.errors[field_name] = exc.message
                else:
                    c.errors[""] = f"{'.'.join(parts[2:]) + ': ' if len(parts) > 2 else ''}{exc.message}"
                return
    if parts[0] == "calculate_output":
        rubric.errors["formula"] = exc.message
        return
    rubric.errors["criteria"] = str(exc)


# --- a saved grader -> the builder's rows ---------------------------------------------------


def rubric_from_grader(spec: dict[str, Any], state: dict[str, Any] | None) -> Rubric | None:
    """The builder's rows for a saved grader, or None when it cannot be shown as rows
    (e.g. a multi nested in a multi): such graders are edited as JSON."""
    if spec.get("type") != "multi":
        if spec.get("type") not in CATALOGUE:
            return None
        key = criterion_key(str(spec.get("name") or spec["type"]), set())
        spec = {"type": "multi", "graders": {key: spec}, "calculate_output": key}
    subs = spec.get("graders") or {}
    if not isinstance(subs, dict) or any(not isinstance(g, dict) or g.get("type") not in CATALOGUE for g in subs.values()):
        return None
    rows = (state or {}).get("criteria") or [{"key": k, "name": g.get("name", k), "type": g["type"]} for k, g in subs.items()]
    criteria = []
    for meta in rows:
        sub = subs.get(meta.get("key"))
        if sub is None:
            return None
        info = CATALOGUE[sub["type"]]
        values = {f["name"]: _to_form(f, sub[f["name"]]) for f in info["fields"] if f["name"] in sub}
        for f in info["fields"]:
            if f["kind"] == "boolean":
                values.setdefault(f["name"], False)
        name = str(sub.get("name") or meta.get("name") or "")
        if not state and criterion_key(name, set()) != meta["key"]:
            name = meta["key"]  # imported: keep the names its formula uses
        criteria.append(Criterion(
            row=new_row_id(), type=sub["type"], name=name,
            weight=_fmt(meta.get("weight", 1)), gate=bool(meta.get("gate")), values=values, key=meta.get("key", ""),
        ))
    if state:
        return Rubric(criteria=criteria, combine=state.get("combine", WEIGHTED_MEAN), formula=state.get("formula", ""))
    return Rubric(criteria=criteria, combine=FORMULA, formula=str(spec.get("calculate_output", "")))
