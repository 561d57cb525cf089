"""Text graders: OpenAI's `string_check` and our no-code checks on plain text.

Patterns and templates are compiled in `setup`, once per grader, never per sample.
User regexes run on the `regex` engine with a time limit, because a pattern like `(a+)+$`
can otherwise freeze the trainer on one unlucky answer.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

import regex

from .base import CompiledGrader, GradingEnv, register
from .limits import BYTES_PER_PATTERN_ATOM, check_pattern
from .result import OTHER_ERROR, GradeResult, GraderValidationError, GradingError
from .spec import Field
from .templates import Sample, Template, compile_template

OUTPUT_TEXT = "{{sample.output_text}}"
REGEX_TIMEOUT_S = 1.0

INPUT_FIELD = Field(
    "input",
    "Text to check",
    "template",
    "Usually the model's answer, {{sample.output_text}}.",
    default=OUTPUT_TEXT,
)


@register
class StringCheck(CompiledGrader):
    """OpenAI `string_check`: compare `input` with `reference`.

    Fields: `input` and `reference` (templates); `operation`: `eq` equal, `ne` not equal,
    `like` input contains reference, `ilike` the same ignoring case. Reward 1 or 0.
    """

    type_name = "string_check"
    label = "Text matches"
    description = "Gives 1 when the answer equals, differs from, or contains the reference text."
    category = "openai"
    fields = (
        Field(
            "input", "Text to check", "template", "Usually {{sample.output_text}}.", required=True
        ),
        Field(
            "reference",
            "Reference",
            "template",
            "What to compare with, e.g. {{item.answer}}.",
            required=True,
        ),
        Field(
            "operation",
            "Comparison",
            "choice",
            "eq: equal; ne: not equal; like: contains; ilike: contains, ignoring case.",
            required=True,
            choices=("eq", "ne", "like", "ilike"),
        ),
    )

    def setup(self, values: dict[str, Any]) -> None:
        self.input = compile_template(values["input"], self.param("input"))
        self.reference = compile_template(values["reference"], self.param("reference"))
        self.operation = values["operation"]

    def score(self, sample: Sample, item: dict[str, Any]) -> float:
        text = self.input.render(sample, item)
        reference = self.reference.render(sample, item)
        operation = self.operation
        if operation == "eq":
            return 1.0 if text == reference else 0.0
        if operation == "ne":
            return 1.0 if text != reference else 0.0
        if operation == "like":
            return 1.0 if reference in text else 0.0
        return 1.0 if reference.casefold() in text.casefold() else 0.0


@register
class RegexMatch(CompiledGrader):
    """`regex_match`: 1 when the regular expression `pattern` matches `input`.

    Fields: `input` (template, default the answer); `pattern` (a Python-style regex);
    `ignore_case`; `mode`: `search` (anywhere in the text) or `full` (the whole text).
    """

    type_name = "regex_match"
    label = "Matches a pattern"
    description = "Gives 1 when the answer matches a regular expression (a text pattern)."
    fields = (
        INPUT_FIELD,
        Field(
            "pattern",
            "Pattern",
            "text",
            "A regular expression, e.g. ^\\d{4}-\\d{2}-\\d{2}$.",
            required=True,
        ),
        Field("ignore_case", "Ignore upper/lower case", "boolean", default=False),
        Field(
            "mode",
            "Where it must match",
            "choice",
            "search: anywhere; full: the whole text.",
            default="search",
            choices=("search", "full"),
        ),
    )

    def setup(self, values: dict[str, Any]) -> None:
        self.input = compile_template(values["input"], self.param("input"))
        flags = regex.IGNORECASE if values["ignore_case"] else 0
        compiled, self.cost = compile_user_regex(values["pattern"], self.param("pattern"), flags)
        self.match = compiled.fullmatch if values["mode"] == "full" else compiled.search

    def evaluate(self, sample: Sample, item: dict[str, Any], env: GradingEnv) -> GradeResult:
        text = self.input.render(sample, item)
        matched = search_with_timeout(self.match, text, env.time_left(REGEX_TIMEOUT_S))
        return GradeResult(1.0 if matched else 0.0, self.name, self.type_name)


def compile_user_regex(pattern: str, param: str, flags: int = 0) -> tuple[Any, int]:
    """`(compiled pattern, bytes it holds)` for a user's pattern, refused first if it would
    be huge to compile (see `limits.check_pattern`)."""
    size = check_pattern(pattern, param)
    try:
        compiled = regex.compile(pattern, flags | regex.V0)
    except regex.error as exc:
        raise GraderValidationError(f"is not a valid regular expression: {exc}", param) from None
    except (OverflowError, RecursionError, MemoryError) as exc:
        raise GraderValidationError(f"cannot be compiled: {type(exc).__name__}", param) from None
    return compiled, size * BYTES_PER_PATTERN_ATOM


def search_with_timeout(match: Callable[..., Any], text: str, timeout: float) -> Any:
    """Run a compiled user pattern with a time limit (a pattern like `(a+)+$` can otherwise
    take longer than the universe on one unlucky answer)."""
    try:
        return match(text, timeout=timeout)
    except TimeoutError:
        raise GradingError(
            OTHER_ERROR, f"the pattern took over {timeout:.2g}s on this answer"
        ) from None


def _expand_list(templates: list[Template], sample: Sample, item: dict[str, Any]) -> list[str]:
    """Render list entries; an entry that is one variable holding a list adds each element."""
    out: list[str] = []
    for template in templates:
        value = template.render_value(sample, item)
        if isinstance(value, list):
            out.extend(v if isinstance(v, str) else str(v) for v in value)
        else:
            out.append(value if isinstance(value, str) else str(value))
    return out


@register
class Keywords(CompiledGrader):
    """`keywords`: does the answer mention all (or any) of a list of words or phrases?

    Fields: `input`; `keywords` (texts; an entry like {{item.keywords}} may hold a list);
    `mode`: `all` or `any`; `case_sensitive`; `whole_words` (so "cat" does not match
    "category"); `partial_credit`: with `all`, score the fraction found instead of 0/1.
    """

    type_name = "keywords"
    label = "Mentions keywords"
    description = "Gives 1 when the answer contains all (or any) of the listed words or phrases."
    fields = (
        INPUT_FIELD,
        Field("keywords", "Keywords", "string_list", "One word or phrase per line.", required=True),
        Field(
            "mode",
            "Must contain",
            "choice",
            "all of them or any one.",
            default="all",
            choices=("all", "any"),
        ),
        Field("case_sensitive", "Upper/lower case matters", "boolean", default=False),
        Field("whole_words", "Whole words only", "boolean", default=False),
        Field(
            "partial_credit",
            "Partial credit",
            "boolean",
            "With 'all': score = share found.",
            default=False,
        ),
    )

    def setup(self, values: dict[str, Any]) -> None:
        if not values["keywords"]:
            raise GraderValidationError("needs at least one keyword", self.param("keywords"))
        self.input = compile_template(values["input"], self.param("input"))
        self.keywords = [
            compile_template(k, f"{self.param('keywords')}.{i}")
            for i, k in enumerate(values["keywords"])
        ]
        self.constant = all(len(k.variables) == 0 for k in self.keywords)
        self.values = values
        self._patterns = self._compile([k.source for k in self.keywords]) if self.constant else None

    def _compile(self, words: list[str]) -> list[re.Pattern[str]]:
        flags = 0 if self.values["case_sensitive"] else re.IGNORECASE
        if self.values["whole_words"]:
            return [re.compile(rf"(?<!\w){re.escape(w)}(?!\w)", flags) for w in words]
        return [re.compile(re.escape(w), flags) for w in words]

    def score(self, sample: Sample, item: dict[str, Any]) -> float:
        text = self.input.render(sample, item)
        patterns = self._patterns or self._compile(_expand_list(self.keywords, sample, item))
        if not patterns:
            raise GradingError(OTHER_ERROR, "the keyword list is empty for this task")
        found = sum(1 for p in patterns if p.search(text))
        if self.values["mode"] == "any":
            return 1.0 if found else 0.0
        if self.values["partial_credit"]:
            return found / len(patterns)
        return 1.0 if found == len(patterns) else 0.0


_WORD = re.compile(r"\S+")


@register
class LengthBounds(CompiledGrader):
    """`length_bounds`: 1 when the answer's length is within [`min`, `max`].

    Fields: `input`; `unit`: `words` or `characters`; `min` and/or `max` (inclusive).
    """

    type_name = "length_bounds"
    label = "Length within limits"
    description = (
        "Gives 1 when the answer is not shorter than the minimum nor longer than the maximum."
    )
    fields = (
        INPUT_FIELD,
        Field("unit", "Count", "choice", default="words", choices=("words", "characters")),
        Field("min", "At least", "integer", "Leave empty for no minimum.", minimum=0),
        Field("max", "At most", "integer", "Leave empty for no maximum.", minimum=0),
    )

    def setup(self, values: dict[str, Any]) -> None:
        self.input = compile_template(values["input"], self.param("input"))
        self.low = values.get("min")
        self.high = values.get("max")
        if self.low is None and self.high is None:
            raise GraderValidationError("set min, max or both", self.param("max"))
        if self.low is not None and self.high is not None and self.low > self.high:
            raise GraderValidationError(f"must not be below min ({self.low})", self.param("max"))
        self.words = values["unit"] == "words"

    def score(self, sample: Sample, item: dict[str, Any]) -> float:
        text = self.input.render(sample, item)
        size = len(_WORD.findall(text)) if self.words else len(text.strip())
        if self.low is not None and size < self.low:
            return 0.0
        if self.high is not None and size > self.high:
            return 0.0
        return 1.0


_EDGE_NOISE = " \t\r\n.,;:!?\"'`()[]{}*_<>"
_ANSWER_PREFIX = re.compile(
    r"^(?:the\s+)?(?:final\s+)?(?:answer|choice|option)\s*(?:is)?\s*[:=-]?\s*", re.I
)


def normalise_choice(text: str, case_sensitive: bool = False) -> str:
    """`"  (B). "` -> `b`; `Answer: B` -> `b`; collapses inner whitespace."""
    text = unicodedata.normalize("NFKC", text).strip(_EDGE_NOISE)
    text = _ANSWER_PREFIX.sub("", text).strip(_EDGE_NOISE)
    text = " ".join(text.split())
    return text if case_sensitive else text.casefold()


@register
class ChoiceMatch(CompiledGrader):
    """`choice_match`: the answer picks exactly one option, and it is the reference.

    Fields: `input`; `reference` (template, e.g. {{item.answer}}); `options` (optional
    texts, or {{item.options}}): with options, the answer may be a sentence that names
    exactly one of them ("I think it's B"); naming two scores 0. `case_sensitive`.
    Comparison ignores surrounding punctuation, quotes, brackets and `Answer:`.
    """

    type_name = "choice_match"
    label = "Picks the right option"
    description = "Gives 1 when the answer picks exactly one of the allowed options and it is the correct one."
    fields = (
        INPUT_FIELD,
        Field("reference", "Correct option", "template", "e.g. {{item.answer}}.", required=True),
        Field(
            "options",
            "Allowed options",
            "string_list",
            "Optional; e.g. A, B, C, D or {{item.options}}.",
        ),
        Field("case_sensitive", "Upper/lower case matters", "boolean", default=False),
    )

    def setup(self, values: dict[str, Any]) -> None:
        self.input = compile_template(values["input"], self.param("input"))
        self.reference = compile_template(values["reference"], self.param("reference"))
        self.options = [
            compile_template(o, f"{self.param('options')}.{i}")
            for i, o in enumerate(values.get("options") or [])
        ]
        self.case_sensitive = values["case_sensitive"]

    def evaluate(self, sample: Sample, item: dict[str, Any], env: Any) -> GradeResult:
        norm = self.case_sensitive
        answer = normalise_choice(self.input.render(sample, item), norm)
        reference = normalise_choice(self.reference.render(sample, item), norm)
        chosen: str | None = answer
        if self.options:
            options = [normalise_choice(o, norm) for o in _expand_list(self.options, sample, item)]
            if answer not in options:
                flags = 0 if norm else re.IGNORECASE
                named = [
                    o
                    for o in options
                    if o and re.search(rf"(?<!\w){re.escape(o)}(?!\w)", answer, flags)
                ]
                chosen = named[0] if len(named) == 1 else None
        reward = 1.0 if chosen is not None and chosen == reference else 0.0
        return GradeResult(reward, self.name, self.type_name, scores={"choice": chosen})
