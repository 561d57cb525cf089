"""OpenAI's model graders: `score_model` (a number) and `label_model` (a label).

The prompt is the grader's `input` messages with templates filled in, plus one line that
tells the judge how to answer (small local judges need it to produce parseable output).
Replies are parsed leniently (JSON, `Score: 7`, `7/10`, a bare number, a label inside a
sentence); what cannot be parsed scores 0 with `model_grader_parse_error`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from time import perf_counter
from typing import Any

from .base import CompiledGrader, GradingEnv, register
from .judges import JudgeReply, SamplingParams
from .result import (
    MODEL_GRADER_PARSE_ERROR,
    MODEL_GRADER_REFUSAL_ERROR,
    MODEL_GRADER_SERVER_ERROR,
    GradeResult,
    GraderValidationError,
    GradingError,
    failed_result,
)
from .spec import Field
from .structured_types import extract_last_number
from .templates import Sample, Template, compile_template

ROLES = ("user", "assistant", "system", "developer")
_SCORE_LABELED = re.compile(
    r"(?:score|rating|grade|result)\W{0,3}(?:is|of|=|:)?\W{0,3}(-?\d+(?:\.\d+)?)", re.I
)
_FRACTION = re.compile(r"(-?\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)")
_SAMPLING_KEYS = {"temperature", "top_p", "seed", "max_completions_tokens", "reasoning_effort"}


def parse_score(text: str, low: float, high: float) -> float | None:
    """The judge's number, or None. Tries JSON, `score: x`, `x/y`, then the last number."""
    stripped = text.strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
    if isinstance(data, int | float) and not isinstance(data, bool):
        return float(data)
    if isinstance(data, dict):
        for key in ("result", "score", "rating", "grade"):
            if isinstance(data.get(key), int | float) and not isinstance(data.get(key), bool):
                return float(data[key])
    labeled = _SCORE_LABELED.findall(stripped)
    if labeled:
        return float(labeled[-1])
    fraction = _FRACTION.search(stripped)
    if fraction:
        top, bottom = float(fraction.group(1)), float(fraction.group(2))
        if bottom == high or bottom == 0:
            return top
        return low + top / bottom * (high - low)
    return extract_last_number(stripped, percent_as_fraction=False)


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s-]", " ", text.casefold()).split())


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """Which of `labels` the judge chose, or None when it named none or several."""
    stripped = text.strip()
    try:
        data = json.loads(stripped)
    except ValueError:
        data = None
    if isinstance(data, dict):
        data = data.get("label", data.get("result"))
    if isinstance(data, str):
        stripped = data
    by_norm = {_norm(label): label for label in labels}
    if _norm(stripped) in by_norm:
        return by_norm[_norm(stripped)]
    answer = f" {_norm(stripped)} "
    named = {label for key, label in by_norm.items() if key and f" {key} " in answer}
    return named.pop() if len(named) == 1 else None


class _ModelGrader(CompiledGrader):
    """Shared parts: compiling the messages, asking the judge, reporting tokens."""

    waits = True

    def setup(self, values: dict[str, Any]) -> None:
        raw_input = values["input"]
        if isinstance(raw_input, str):
            raw_input = [{"role": "user", "content": raw_input}]
            self.spec["input"] = raw_input
        self.messages = [
            self._compile_message(m, f"{self.param('input')}.{i}") for i, m in enumerate(raw_input)
        ]
        sampling = values.get("sampling_params") or {}
        unknown = set(sampling) - _SAMPLING_KEYS
        if unknown:
            raise GraderValidationError(
                f"unknown field {sorted(unknown)[0]!r}; allowed: {', '.join(sorted(_SAMPLING_KEYS))}",
                self.param("sampling_params"),
            )
        self.sampling = SamplingParams.of(sampling)
        self.model = values["model"]

    def _compile_message(self, message: Any, param: str) -> tuple[str, Any]:
        if not isinstance(message, dict):
            raise GraderValidationError("each message must be an object {role, content}", param)
        role = message.get("role")
        if role not in ROLES:
            raise GraderValidationError(
                f"must be one of {', '.join(ROLES)}; got {role!r}", f"{param}.role"
            )
        content = message.get("content")
        if isinstance(content, str):
            return role, compile_template(content, f"{param}.content")
        parts = content if isinstance(content, list) else [content]
        compiled = []
        for j, part in enumerate(parts):
            where = f"{param}.content.{j}"
            if isinstance(part, str):
                compiled.append(("input_text", compile_template(part, where)))
            elif isinstance(part, dict) and part.get("type") in (
                "input_text",
                "output_text",
                "text",
            ):
                compiled.append(("input_text", compile_template(part.get("text"), f"{where}.text")))
            elif isinstance(part, dict) and part.get("type") == "input_image":
                compiled.append(
                    ("input_image", compile_template(part.get("image_url"), f"{where}.image_url"))
                )
            else:
                raise GraderValidationError("content parts must be text or input_image", where)
        return role, compiled

    def instruction(self) -> str:
        raise NotImplementedError

    def render(self, sample: Sample, item: dict[str, Any]) -> list[dict[str, Any]]:
        rendered: list[dict[str, Any]] = []
        for role, content in self.messages:
            if isinstance(content, Template):
                rendered.append({"role": role, "content": content.render(sample, item)})
            else:
                parts = []
                for kind, template in content:
                    key = "image_url" if kind == "input_image" else "text"
                    parts.append({"type": kind, key: template.render(sample, item)})
                rendered.append({"role": role, "content": parts})
        rendered.append({"role": "user", "content": self.instruction()})
        return rendered

    def interpret(self, text: str) -> GradeResult:
        raise NotImplementedError

    def _result(self, reply: JudgeReply) -> GradeResult:
        if reply.error is not None:
            raise GradingError(
                MODEL_GRADER_SERVER_ERROR,
                f"the judge model could not be reached: {reply.error}",
                reply.error,
            )
        if reply.refusal:
            raise GradingError(
                MODEL_GRADER_REFUSAL_ERROR, f"the judge refused: {reply.refusal[:300]}"
            )
        result = self.interpret(reply.text or "")
        total = reply.prompt_tokens + reply.completion_tokens
        result.token_usage = total
        result.sampled_model_name = reply.model or self.model
        result.token_usage_per_model = {
            result.sampled_model_name: {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": total,
            }
        }
        return result

    def _ask(self, conversations: list[list[dict[str, Any]]], env: GradingEnv) -> list[JudgeReply]:
        try:
            judge = env.judge_registry().get(self.model)
            replies = []
            for start in range(0, len(conversations), judge.max_batch):
                replies.extend(
                    judge.complete(conversations[start : start + judge.max_batch], self.sampling)
                )
            return replies
        except GradingError:
            raise
        except Exception as exc:  # loading a model or a bad endpoint must not stop training
            message = f"judge {self.model!r}: {type(exc).__name__}: {exc}"
            return [JudgeReply(error=message, model=self.model) for _ in conversations]

    def evaluate(self, sample: Sample, item: dict[str, Any], env: GradingEnv) -> GradeResult:
        return self._result(self._ask([self.render(sample, item)], env)[0])

    def grade_many(
        self, samples: Sequence[Any], items: Sequence[dict[str, Any]], env: GradingEnv
    ) -> list[GradeResult]:
        """Render every prompt, ask the judge in batches, then parse each reply."""
        results: list[GradeResult | None] = [None] * len(samples)
        pending: list[tuple[int, list[dict[str, Any]]]] = []
        for index, (sample, item) in enumerate(zip(samples, items, strict=True)):
            try:
                pending.append((index, self.render(Sample.of(sample), item)))
            except GradingError as exc:
                results[index] = failed_result(exc, name=self.name, type_=self.type_name)
        if pending:
            start = perf_counter()
            replies = self._ask([conversation for _, conversation in pending], env)
            share = (perf_counter() - start) / len(pending)  # the judge's time, split evenly
            for (index, _), reply in zip(pending, replies, strict=True):
                result = self.guarded(lambda reply=reply: self._result(reply))
                result.execution_time += share
                results[index] = result
        return [r for r in results if r is not None]


SAMPLING_HELP = "Optional: temperature, top_p, seed, max_completions_tokens."


# The fields both judge types share.
JUDGE_FIELDS = (
    Field("model", "Judge model", "text", "A configured judge or smollm2-135m-instruct.", required=True),
    Field("input", "Instructions to the judge", "messages", "Use {{sample.output_text}} and {{item.*}}.",
          required=True),
)


@register
class ScoreModel(_ModelGrader):
    """`score_model`: a judge model reads `input` and answers a number within `range`.

    Fields: `model` (a configured endpoint name, `smollm2-135m-instruct`, or a local model
    folder); `input` (chat messages; templates allowed); `range` ([low, high], default
    [0, 1]; the reward is the judge's number clipped to it); `sampling_params`.
    """

    type_name = "score_model"
    label = "AI judge gives a score"
    description = "Asks a judge model to rate the answer with a number, using your instructions."
    category = "openai"
    fields = (
        *JUDGE_FIELDS,
        Field("range", "Score range", "range", default=[0, 1]),
        Field("sampling_params", "Sampling", "object", SAMPLING_HELP),
    )
    ignored_fields = ("pass_threshold",)

    def setup(self, values: dict[str, Any]) -> None:
        super().setup(values)
        self.low, self.high = (float(v) for v in values["range"])
        self.output_range = (self.low, self.high)

    def instruction(self) -> str:
        return f"Reply with only a number from {self.low:g} to {self.high:g}."

    def interpret(self, text: str) -> GradeResult:
        score = parse_score(text, self.low, self.high)
        if score is None:
            raise GradingError(
                MODEL_GRADER_PARSE_ERROR, f"no score found in the judge's reply: {text[:200]!r}"
            )
        reward = min(self.high, max(self.low, score))
        return GradeResult(
            reward, self.name, self.type_name, scores={"judge_output": text[:2000], "score": score}
        )


@register
class LabelModel(_ModelGrader):
    """`label_model`: a judge model picks one of `labels`; 1 if it is in `passing_labels`.

    Fields: `model`, `input` (as for score_model), `labels`, `passing_labels` (a subset).
    """

    type_name = "label_model"
    label = "AI judge picks a label"
    description = "Asks a judge model to classify the answer (e.g. correct / incorrect); passing labels score 1."
    category = "openai"
    fields = (
        *JUDGE_FIELDS,
        Field("labels", "Labels", "string_list", "e.g. correct, incorrect.", required=True),
        Field(
            "passing_labels", "Passing labels", "string_list", "Labels that score 1.", required=True
        ),
        Field("sampling_params", "Sampling", "object", SAMPLING_HELP),
    )

    def setup(self, values: dict[str, Any]) -> None:
        super().setup(values)
        self.labels = values["labels"]
        if len(self.labels) < 2:
            raise GraderValidationError("needs at least two labels", self.param("labels"))
        outside = [label for label in values["passing_labels"] if label not in self.labels]
        if outside:
            raise GraderValidationError(
                f"{outside[0]!r} is not one of the labels", self.param("passing_labels")
            )
        if not values["passing_labels"]:
            raise GraderValidationError(
                "needs at least one passing label", self.param("passing_labels")
            )
        self.passing = set(values["passing_labels"])

    def instruction(self) -> str:
        return "Reply with only one of these labels: " + ", ".join(self.labels) + "."

    def interpret(self, text: str) -> GradeResult:
        label = parse_label(text, self.labels)
        if label is None:
            raise GradingError(
                MODEL_GRADER_PARSE_ERROR,
                f"no single label found in the judge's reply: {text[:200]!r}",
            )
        reward = 1.0 if label in self.passing else 0.0
        return GradeResult(
            reward, self.name, self.type_name, scores={"judge_output": text[:2000], "label": label}
        )
