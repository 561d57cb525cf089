"""The reference-answer check: does the grader give a task's own reference answer full marks?

A grader that punishes the correct answer teaches the model to avoid it, so this is the first
thing to check about a grader. One rule, used by the grader page's check over a whole dataset
and by the trainer's pre-flight before a run:

- a task's `reference_answer` is graded as if the model had written it, as `output_text` and,
  when it parses as JSON, also as `output_json` (so `{{sample.output_json.x}}` templates work);
- it passes when the reward is full marks (1, within rounding) and no error flag is set (a
  grader that errors on the reference is as broken as one that scores it low);
- the criteria responsible for a failure are the sub-graders below full marks or in error.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .engine import grade_batch
from .result import GradeResult

REFERENCE_FIELD = "reference_answer"
FULL_MARKS = 1.0
_TOLERANCE = 1e-9


def reference_sample(reference: Any) -> dict[str, Any]:
    """A task's reference answer dressed as a model sample (`output_json` when it is JSON)."""
    if isinstance(reference, str):
        sample: dict[str, Any] = {"output_text": reference}
        try:
            sample["output_json"] = json.loads(reference)
        except ValueError:
            pass
        return sample
    return {"output_text": json.dumps(reference, ensure_ascii=False), "output_json": reference}


@dataclass(frozen=True)
class ReferenceGrade:
    """The grade of one task's reference answer."""

    reward: float
    passed: bool
    has_reference: bool
    error: str = ""
    criteria: list[dict[str, Any]] = field(default_factory=list)
    """The criteria responsible when it did not pass: `{key, name, reward, error}` each."""


def has_reference(item: Any) -> bool:
    return isinstance(item, dict) and REFERENCE_FIELD in item


def _responsible(result: GradeResult) -> list[dict[str, Any]]:
    subs = result.sub_results or {result.name or "grader": result}
    return [
        {"key": key, "name": sub.name or key, "reward": round(sub.reward, 4), "error": sub.error_message or ""}
        for key, sub in subs.items()
        if sub.reward < FULL_MARKS - _TOLERANCE or not sub.ok
    ]


def check_references(grader: dict[str, Any], items: Sequence[dict[str, Any]], *,
                     max_workers: int | None = None, scope: str | None = None,
                     time_budget: float | None = None) -> list[ReferenceGrade]:
    """Grade every item's own reference answer with `grader`, in order. Never raises.

    An item without a `reference_answer` is graded as the empty answer and marked
    `has_reference=False`: callers decide whether such tasks count (the grader page lists
    them as failing, pre-flight leaves them out). `scope` and `time_budget` as in `run_grader`.
    """
    samples = [reference_sample(item.get(REFERENCE_FIELD, "") if isinstance(item, dict) else "")
               for item in items]
    results = grade_batch(grader, samples, list(items), max_workers=max_workers, scope=scope,
                          time_budget=time_budget)
    out = []
    for item, result in zip(items, results, strict=True):
        passed = result.reward >= FULL_MARKS - _TOLERANCE and result.ok
        out.append(ReferenceGrade(
            reward=result.reward, passed=passed, has_reference=has_reference(item),
            error=result.error_message or "", criteria=[] if passed else _responsible(result)))
    return out
