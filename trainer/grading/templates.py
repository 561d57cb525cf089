"""`{{item.a.b}}` / `{{sample.output_text}}` / `{{sample.output_json.x}}` templates.

A template is parsed once into literal chunks and variable paths (`compile_template` is
cached, bounded by size), so grading a thousand samples does not re-scan the same string a thousand times.
Paths are dotted keys into the task row (`item`) or the model's answer (`sample`); a number
indexes a list (`{{item.choices.0}}`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .cache import SizedLRU
from .limits import MAX_TEMPLATE_CHARS, check_text_length
from .result import INVALID_VARIABLE_ERROR, SAMPLE_PARSE_ERROR, GraderValidationError, GradingError

_PATH_PART = re.compile(r"^[^\s.{}]+$")
_MISSING = object()


class Sample:
    """The model's answer, normalised from a plain string or OpenAI's sample dict.

    `output_json` is parsed from `output_text` lazily and only once, because most graders
    never look at it and a multi grader's sub-graders share one `Sample`.
    """

    __slots__ = ("output_text", "_data", "_json", "_json_error")

    def __init__(self, output_text: str, data: dict[str, Any] | None = None):
        self.output_text = output_text
        self._data = data
        self._json: Any = _MISSING
        self._json_error: str | None = None

    @property
    def data(self) -> dict[str, Any]:
        """All of the sample's fields (built on demand: most graders only read the text)."""
        if self._data is None:
            self._data = {"output_text": self.output_text}
        return self._data

    @classmethod
    def of(cls, sample: Any) -> Sample:
        """Accept a `Sample`, a string, or a dict with `output_text` (and maybe `output_json`)."""
        if isinstance(sample, Sample):
            return sample
        if isinstance(sample, str):
            return cls(sample)
        if isinstance(sample, dict):
            text = sample.get("output_text")
            if text is None:
                text = (
                    "" if sample.get("output_json") is None else json.dumps(sample["output_json"])
                )
            obj = cls(str(text), dict(sample))
            if sample.get("output_json") is not None:
                obj._json = sample["output_json"]
            return obj
        if sample is None:
            return cls("")
        raise GradingError(
            SAMPLE_PARSE_ERROR, f"sample must be a string or an object, got {type(sample).__name__}"
        )

    @property
    def output_json(self) -> Any:
        """The answer as JSON; raises a `sample_parse_error` when the text is not JSON."""
        if self._json is _MISSING and self._json_error is None:
            try:
                self._json = json.loads(_strip_code_fence(self.output_text))
            except (ValueError, RecursionError) as exc:
                self._json_error = f"the model's answer is not valid JSON ({exc})"
        if self._json_error is not None:
            raise GradingError(SAMPLE_PARSE_ERROR, self._json_error)
        return self._json

    def to_dict(self) -> dict[str, Any]:
        """The dict a python grader's `grade(sample, item)` receives."""
        out = dict(self.data)
        out["output_text"] = self.output_text
        if "output_json" not in out or out["output_json"] is None:
            try:
                out["output_json"] = self.output_json
            except GradingError:
                out["output_json"] = None
        return out


def _strip_code_fence(text: str) -> str:
    """Models often wrap JSON in ```json fences; accept that."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```") and len(stripped) >= 6:
        body = stripped[3:-3]
        newline = body.find("\n")
        return body[newline + 1 :] if newline != -1 else body
    return stripped


def stringify(value: Any) -> str:
    """How a non-string value appears inside a rendered template: as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return str(value)


@dataclass(frozen=True, slots=True)
class VariablePath:
    """`item.a.0.b` split into a root (`item` or `sample`) and keys."""

    text: str
    root: str
    keys: tuple[str, ...]

    def resolve(self, sample: Sample, item: dict[str, Any]) -> Any:
        if self.root == "item":
            value: Any = item
        elif self.keys and self.keys[0] == "output_text":
            value = sample.output_text
            return _walk(value, self.keys[1:], self.text)
        elif self.keys and self.keys[0] == "output_json":
            return _walk(sample.output_json, self.keys[1:], self.text)
        else:
            value = sample.data
        return _walk(value, self.keys, self.text)

    def getter(self) -> Callable[[Sample, dict[str, Any]], Any]:
        """`resolve`, specialised for the two commonest paths (they dominate grading time)."""
        if self.root == "sample" and self.keys == ("output_text",):
            return _output_text
        if self.root == "item" and len(self.keys) == 1:
            key, resolve = self.keys[0], self.resolve

            def item_field(sample: Sample, item: dict[str, Any]) -> Any:
                try:
                    return item[key]
                except (KeyError, TypeError):
                    return resolve(sample, item)  # raises the helpful error

            return item_field
        return self.resolve


def _output_text(sample: Sample, item: dict[str, Any]) -> str:
    return sample.output_text


def _walk(value: Any, keys: tuple[str, ...], text: str) -> Any:
    for key in keys:
        if isinstance(value, dict):
            found = value.get(key, _MISSING)
        elif isinstance(value, list) and key.lstrip("-").isdigit():
            index = int(key)
            found = value[index] if -len(value) <= index < len(value) else _MISSING
        else:
            found = _MISSING
        if found is _MISSING:
            raise GradingError(INVALID_VARIABLE_ERROR, _missing_message(text, key, value))
        value = found
    return value


def _missing_message(text: str, key: str, parent: Any) -> str:
    if isinstance(parent, dict):
        known = ", ".join(sorted(map(str, parent))[:12]) or "none"
        return f"{{{{{text}}}}}: no field {key!r} here (fields: {known})"
    if isinstance(parent, list):
        return f"{{{{{text}}}}}: no element {key} in a list of {len(parent)}"
    return f"{{{{{text}}}}}: cannot look up {key!r} inside a {type(parent).__name__}"


def parse_path(text: str, param: str | None = None) -> VariablePath:
    """Parse `item.a.b`; raise `GraderValidationError` for anything else."""
    parts = text.split(".")
    root = parts[0]
    if root not in ("item", "sample") or not all(_PATH_PART.match(p) for p in parts):
        raise GraderValidationError(
            f"{{{{{text}}}}} is not a valid variable; use {{{{item.<field>}}}}, "
            "{{sample.output_text}} or {{sample.output_json.<field>}}",
            param,
            flag=INVALID_VARIABLE_ERROR,
        )
    return VariablePath(text, root, tuple(parts[1:]))


class Template:
    """A compiled template: literal chunks interleaved with variables.

    `render(sample, item) -> str` fills every variable in (non-strings as JSON);
    `render_value(sample, item)` is the same except that a template made of exactly one
    variable keeps that value's JSON type. Both are closures specialised at compile time.
    """

    __slots__ = ("source", "chunks", "render", "render_value")

    def __init__(self, source: str, chunks: tuple[str | VariablePath, ...]):
        self.source = source
        self.chunks = chunks
        self.render: Callable[[Sample, dict[str, Any]], str]
        self.render_value: Callable[[Sample, dict[str, Any]], Any]
        self.render, self.render_value = _specialise(chunks)

    @property
    def variables(self) -> tuple[VariablePath, ...]:
        return tuple(c for c in self.chunks if isinstance(c, VariablePath))


def _specialise(
    chunks: tuple[str | VariablePath, ...],
) -> tuple[Callable[..., str], Callable[..., Any]]:
    if len(chunks) == 1 and isinstance(chunks[0], str):
        literal = chunks[0]

        def constant(sample: Sample, item: dict[str, Any]) -> str:
            return literal

        return constant, constant
    if len(chunks) == 1:
        get = chunks[0].getter()

        def single(sample: Sample, item: dict[str, Any]) -> str:
            value = get(sample, item)
            return value if type(value) is str else stringify(value)

        return single, get
    parts = tuple(c if isinstance(c, str) else c.getter() for c in chunks)

    def joined(sample: Sample, item: dict[str, Any]) -> str:
        return "".join(p if type(p) is str else stringify(p(sample, item)) for p in parts)

    return joined, joined


def _scan(source: str) -> list[str | VariablePath]:
    """Split `source` into literal chunks and `{{ path }}` variables in one linear pass.

    A variable runs from `{{` to the first `}}` after it; whitespace around the path is
    ignored. Content that spans lines (`{{ a` newline `b }}`) is not a variable but plain
    text, as before. The scan never backtracks: each character is looked at a bounded
    number of times, so a stray `{{` followed by megabytes of text costs milliseconds (a
    regular expression with `\\s*(.*?)\\s*` took seconds on a few thousand spaces).
    """
    chunks: list[str | VariablePath] = []
    position = 0
    close = -1  # the `}}` found for an earlier `{{`; reused while it lies ahead
    start = source.find("{{")
    while start != -1:
        if close < start + 2:
            close = source.find("}}", start + 2)
            if close == -1:
                break
        inner = source[start + 2 : close]
        body = inner.strip()
        if "\n" in body:
            # Not a variable. A `{{` that opens before the last text ahead of the body's
            # last newline would contain that newline too: skip them (keeps the scan linear).
            lead = len(inner) - len(inner.lstrip())
            newline = inner.rfind("\n", 0, lead + len(body))
            last_before = len(inner[:newline].rstrip())  # end of the text before that line
            start = source.find("{{", max(start + 1, start + last_before))
            continue
        if start > position:
            chunks.append(source[position:start])
        chunks.append(parse_path(body))
        position = close + 2
        start = source.find("{{", position)
    if position < len(source) or not chunks:
        chunks.append(source[position:])
    return chunks


# Templates repeat across graders and requests; bounded by their total size, not only count.
_compiled: SizedLRU[Template] = SizedLRU(max_entries=4096, max_cost=16 * 1024 * 1024)


def _compile(source: str) -> Template:
    template = _compiled.get(source)
    if template is None:
        template = Template(source, tuple(_scan(source)))
        _compiled.put(source, template, 2 * len(source) + 200)
    return template  # type: ignore[return-value]


def compile_template(source: Any, param: str | None = None) -> Template:
    """Compile (and cache) `source`; errors name the grader field `param`."""
    if not isinstance(source, str):
        raise GraderValidationError(f"must be a string, got {type(source).__name__}", param)
    check_text_length(source, MAX_TEMPLATE_CHARS, param, "template")
    try:
        return _compile(source)
    except GraderValidationError as exc:
        raise GraderValidationError(exc.message, param, flag=exc.flag) from None
