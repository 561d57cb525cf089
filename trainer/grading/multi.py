"""OpenAI's `multi` grader: several named graders combined by a formula.

Any sub-grader error makes the total 0 (with the sub-grader's flags raised on the total),
because a criterion that could not be judged must not be silently counted as passed or
failed inside a weighted sum.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .base import CompiledGrader, GradingEnv, compile_grader, register
from .formula import parse_formula
from .limits import MAX_CRITERIA
from .result import GradeResult, GraderValidationError, GradingError
from .spec import Field
from .templates import Sample

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@register
class Multi(CompiledGrader):
    """`multi`: `graders` (a map name -> grader) combined by `calculate_output`.

    The formula may use the names, numbers, `+ - * / ^`, parentheses and the functions
    min max abs floor ceil exp sqrt log, e.g. `0.7 * accuracy + 0.3 * format`.
    `sub_rewards` reports each named grader's reward.
    """

    type_name = "multi"
    label = "Combine criteria"
    description = (
        "Combines several criteria into one score with a formula, e.g. a weighted average."
    )
    category = "openai"
    fields = (
        Field(
            "graders",
            "Criteria",
            "graders",
            "Each criterion has a short name used in the formula.",
            required=True,
        ),
        Field(
            "calculate_output",
            "Formula",
            "formula",
            "e.g. 0.7 * accuracy + 0.3 * format.",
            required=True,
        ),
    )

    def setup(self, values: dict[str, Any]) -> None:
        raw_graders = values["graders"]
        if isinstance(raw_graders.get("type"), str):
            # The SDK's type allows one bare grader instead of a map; name it by its name.
            single = raw_graders
            raw_graders = {str(single.get("name") or single["type"]): single}
        if not raw_graders:
            raise GraderValidationError("needs at least one grader", self.param("graders"))
        if len(raw_graders) > MAX_CRITERIA:
            raise GraderValidationError(
                f"has {len(raw_graders)} graders; the limit is {MAX_CRITERIA}", self.param("graders")
            )
        self.graders: dict[str, CompiledGrader] = {}
        for key, raw in raw_graders.items():
            prefix = self.param(f"graders.{key}")
            if not isinstance(key, str) or not _NAME.match(key):
                raise GraderValidationError(
                    "grader names must start with a letter and use only letters, digits and _ "
                    "(they appear in the formula)",
                    prefix,
                )
            self.graders[key] = compile_grader(raw, prefix, default_name=key)
        self.formula = parse_formula(
            values["calculate_output"], self.graders, self.param("calculate_output")
        )
        self.spec["graders"] = {key: grader.spec for key, grader in self.graders.items()}
        self.waits = any(g.waits for g in self.graders.values())
        self.cost = sum(g.cost for g in self.graders.values())

    def contains(self, type_name: str) -> bool:
        return type_name == self.type_name or any(
            g.contains(type_name) for g in self.graders.values()
        )

    def evaluate(self, sample: Sample, item: dict[str, Any], env: GradingEnv) -> GradeResult:
        results = {key: grader.grade(sample, item, env) for key, grader in self.graders.items()}
        return self.combine(results)

    def combine(self, results: dict[str, GradeResult]) -> GradeResult:
        """The formula over the sub-results, with their flags and token usage merged."""
        sub_rewards: dict[str, float] = {}
        scores: dict[str, Any] = {}
        eventful = False  # errors or model usage to merge: rare, so kept off the fast path
        for key, result in results.items():
            sub_rewards[key] = result.reward
            if result.scores:
                scores[key] = result.scores
            if result.errors or result.token_usage_per_model:
                eventful = True
        combined = GradeResult(
            0.0, self.name, self.type_name, sub_rewards, scores=scores, sub_results=results
        )
        if eventful and self._merge(combined, results):
            return combined
        try:
            combined.reward = self.formula.evaluate(sub_rewards)
        except GradingError as exc:
            combined.errors[exc.flag] = True
            combined.error_message = exc.message
        return combined

    @staticmethod
    def _merge(combined: GradeResult, results: dict[str, GradeResult]) -> bool:
        """Merge flags and token usage into `combined`; True when a sub-grader failed."""
        messages = []
        for key, result in results.items():
            for flag, value in result.errors.items():
                if isinstance(value, str) and flag in combined.errors:
                    combined.errors[flag] = f"{combined.errors[flag]}; {key}: {value}"
                elif value:
                    combined.errors[flag] = f"{key}: {value}" if isinstance(value, str) else value
            if result.error_message:
                messages.append(f"{key}: {result.error_message}")
            if result.token_usage:
                combined.token_usage = (combined.token_usage or 0) + result.token_usage
            for model, usage in result.token_usage_per_model.items():
                total = combined.token_usage_per_model.setdefault(model, {})
                for k, v in usage.items():
                    total[k] = total.get(k, 0) + v
            combined.sampled_model_name = combined.sampled_model_name or result.sampled_model_name
        if messages:
            combined.error_message = "; ".join(messages)
        return bool(messages) or any(v is True for v in combined.errors.values())

    def grade_many(
        self, samples: Sequence[Any], items: Sequence[dict[str, Any]], env: GradingEnv
    ) -> list[GradeResult]:
        """Each criterion grades the whole batch (so judges batch and python fans out).

        When no criterion waits on anything, a plain per-sample loop is faster.
        """
        if len(samples) != len(items):
            raise ValueError("samples and items must have the same length")
        if not self.waits:
            return [self.grade(s, i, env) for s, i in zip(samples, items, strict=True)]
        shared = [s if isinstance(s, Sample) else _safe_sample(s) for s in samples]
        columns = {
            key: grader.grade_many(shared, items, env) for key, grader in self.graders.items()
        }
        out = []
        for index in range(len(shared)):
            results = {key: column[index] for key, column in columns.items()}
            combined = self.combine(results)
            combined.execution_time = sum(r.execution_time for r in results.values())
            out.append(combined)
        return out


def _safe_sample(sample: Any) -> Any:
    """A `Sample` when possible; otherwise the raw value, so each grader reports the error."""
    try:
        return Sample.of(sample)
    except GradingError:
        return sample
