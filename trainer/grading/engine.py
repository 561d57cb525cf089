"""The three entry points: `validate_grader`, `run_grader` and `grade_batch`.

Callers pass the same grader dict for every sample, so compiled graders are cached: first
by the dict's identity (checked against a snapshot, so a dict edited in place is
recompiled), then by its canonical JSON. A cache hit costs a dict comparison, which is
what keeps `run_grader` in the tens of thousands of calls per second. Both caches are
bounded by an estimate of their memory as well as by count (graders come from users).

Rewards leaving the engine are finite numbers from 0 to 1. A grader that gives anything
else (NaN, inf, 1.5 from python code or a formula) gets `other_error` and reward 0. The one
grader that declares another scale is `score_model` with a `range` such as [0, 10]:
inside a multi grader its formula sees the judge's number on that scale, as on OpenAI (so
imported formulas like `judge / 10` keep working); used on its own, its reward is
rescaled to 0..1 so that every reward means the same to the trainer and the charts.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from time import monotonic
from typing import TYPE_CHECKING, Any

from .base import UNIT_RANGE, CompiledGrader, GradingEnv, compile_grader
from .cache import SizedLRU
from .limits import MAX_GRADER_BYTES, MAX_GRADER_DEPTH, MAX_GRADERS_TOTAL, json_depth_exceeds
from .result import OTHER_ERROR, GradeResult, GraderValidationError, GradingError, failed_result

if TYPE_CHECKING:
    from .judges import JudgeRegistry
    from .sandbox import SandboxPool

_CACHE_SIZE = 512
_CACHE_BYTES = 64 * 1024 * 1024
_Compiled = CompiledGrader | GraderValidationError
_by_id: SizedLRU[tuple[dict[str, Any], dict[str, Any], _Compiled]] = SizedLRU(
    max_entries=_CACHE_SIZE, max_cost=_CACHE_BYTES
)
_by_json: SizedLRU[_Compiled] = SizedLRU(max_entries=_CACHE_SIZE, max_cost=_CACHE_BYTES)


def _canonical(grader: dict[str, Any]) -> str | GraderValidationError:
    """The grader's canonical JSON, or why it is not an acceptable grader at all."""
    if json_depth_exceeds(grader, MAX_GRADER_DEPTH):
        return GraderValidationError(
            f"the grader is nested more than {MAX_GRADER_DEPTH} levels deep"
        )
    try:
        canonical = json.dumps(grader, sort_keys=True, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:  # NaN/inf cannot be stored or sent as JSON
        return GraderValidationError(f"a grader must be plain JSON (no NaN or infinity): {exc}")
    size = len(canonical.encode("utf-8", "surrogatepass"))
    if size > MAX_GRADER_BYTES:
        return GraderValidationError(
            f"the grader is {size / 1024:,.0f} kB as JSON; the limit is {MAX_GRADER_BYTES // 1024} kB"
        )
    return canonical


def _count(compiled: CompiledGrader) -> int:
    children = getattr(compiled, "graders", None)
    if isinstance(children, dict):
        return 1 + sum(_count(child) for child in children.values())
    return 1


def _compile(grader: dict[str, Any]) -> _Compiled:
    try:
        compiled = compile_grader(grader)
    except GraderValidationError as exc:
        return exc
    except RecursionError:
        return GraderValidationError("the grader is nested too deeply")
    if _count(compiled) > MAX_GRADERS_TOTAL:
        return GraderValidationError(
            f"the grader has {_count(compiled)} graders in all; the limit is {MAX_GRADERS_TOTAL}"
        )
    return compiled


def _compile_cached(grader: Any) -> _Compiled:
    """The compiled grader, or the validation error it raised (errors are cached too)."""
    if not isinstance(grader, dict):
        return GraderValidationError(f"a grader must be an object; got {type(grader).__name__}")
    key = id(grader)
    entry = _by_id.peek(key)
    if entry is not None and entry[0] is grader and entry[1] == grader:
        return entry[2]
    canonical = _canonical(grader)
    if isinstance(canonical, GraderValidationError):
        return canonical  # not cached: refusing it again is as cheap as a lookup
    compiled = _by_json.get(canonical)
    if compiled is None:
        compiled = _compile(grader)
    # The spec is held about three times (canonical text, the caller's dict and a snapshot),
    # plus whatever compiling allocated (regexes).
    cost = 3 * len(canonical) + getattr(compiled, "cost", 0) + 1024
    _by_json.put(canonical, compiled, cost)
    _by_id.put(key, (grader, copy.deepcopy(grader), compiled), cost)
    return compiled


def validate_grader(grader: Any, *, judges: JudgeRegistry | None = None) -> dict[str, Any]:
    """Check a grader and return it normalised (defaults filled in).

    Raises `GraderValidationError(message, param)` naming the field path, e.g.
    `graders.accuracy.operation: must be one of eq, ne, like, ilike; got "equals"`.
    Model graders must name a judge that `judges` (default: the process-wide registry)
    knows; that check is made on every call, since judges come and go.
    """
    compiled = get_compiled_grader(grader)
    _check_judges(compiled, judges)
    return copy.deepcopy(compiled.spec)


def _check_judges(compiled: CompiledGrader, judges: JudgeRegistry | None) -> None:
    from .judges import default_judges

    registry = judges if judges is not None else default_judges
    stack = [compiled]
    while stack:
        node = stack.pop()
        children = getattr(node, "graders", None)
        if isinstance(children, dict):
            stack.extend(children.values())
        model = getattr(node, "model", None)
        if isinstance(model, str) and node.type_name in ("score_model", "label_model"):
            problem = registry.unknown(model)
            if problem:
                raise GraderValidationError(problem, node.param("model"))


def get_compiled_grader(grader: Any) -> CompiledGrader:
    """The cached `CompiledGrader` for a grader dict (validate once, grade many)."""
    compiled = _compile_cached(grader)
    if isinstance(compiled, GraderValidationError):
        raise compiled
    return compiled


def _env(
    judges: JudgeRegistry | None,
    sandbox: SandboxPool | None,
    max_workers: int | None = None,
    time_budget: float | None = None,
    scope: str | None = None,
) -> GradingEnv:
    deadline = None if time_budget is None else monotonic() + time_budget
    return GradingEnv(judges=judges, sandbox=sandbox, max_workers=max_workers, deadline=deadline,
                      scope=scope)


def _top_level(compiled: CompiledGrader, result: GradeResult) -> GradeResult:
    """The reward as training sees it: from 0 to 1 (see the module docstring)."""
    if compiled.output_range is UNIT_RANGE:
        return result  # `CompiledGrader.grade` already held the reward to 0..1
    low, high = compiled.output_range
    if result.ok:
        result.scores.setdefault("score", result.reward)
        result.reward = (result.reward - low) / (high - low)
    if not (math.isfinite(result.reward) and 0.0 <= result.reward <= 1.0):  # defensive
        error = GradingError(OTHER_ERROR, f"the grader gave {result.reward!r}, not a number from 0 to 1")
        return failed_result(error, name=compiled.name, type_=compiled.type_name)
    return result


def _invalid(grader: Any, error: GraderValidationError) -> GradeResult:
    name = grader.get("name") if isinstance(grader, dict) else None
    type_ = grader.get("type") if isinstance(grader, dict) else None
    return failed_result(error, name=str(name or ""), type_=str(type_ or ""))


def run_grader(
    grader: dict[str, Any],
    sample: Any,
    item: dict[str, Any] | None,
    *,
    judges: JudgeRegistry | None = None,
    sandbox: SandboxPool | None = None,
    time_budget: float | None = None,
    scope: str | None = None,
) -> GradeResult:
    """Grade one sample. Never raises: problems become error flags and reward 0.

    `sample` is the model's text or `{"output_text", "output_json"?}`; `item` is the task
    row whose fields templates reach as `{{item.x}}`. `judges` supplies model-grader
    endpoints (default: the process-wide registry); `sandbox` a python pool (default: the
    shared one). With `time_budget` (seconds), no criterion starts after it has run out
    (it is flagged `unresponsive_reward_error`) and regex matches shrink their timeouts,
    so a web request waits at most the budget plus one criterion's own limit. `scope` names
    who grades (e.g. "project:12"): python graders of different scopes never share a worker
    process, so pass it whenever code of several projects may run.
    """
    compiled = _compile_cached(grader)
    if isinstance(compiled, GraderValidationError):
        return _invalid(grader, compiled)
    if item is None:
        item = {}
    elif not isinstance(item, dict):
        error = GradingError(OTHER_ERROR, f"item must be an object, got {type(item).__name__}")
        return failed_result(error, name=compiled.name, type_=compiled.type_name)
    if judges is None and sandbox is None and time_budget is None and scope is None:
        return _top_level(compiled, compiled.grade(sample, item))
    env = _env(judges, sandbox, None, time_budget, scope)
    return _top_level(compiled, compiled.grade(sample, item, env))


def grade_batch(
    grader: dict[str, Any],
    samples: Sequence[Any],
    items: Sequence[dict[str, Any] | None],
    *,
    max_workers: int | None = None,
    judges: JudgeRegistry | None = None,
    sandbox: SandboxPool | None = None,
    time_budget: float | None = None,
    scope: str | None = None,
) -> list[GradeResult]:
    """Grade many samples (one item per sample), in the order given.

    Cheap deterministic graders run in a plain loop; python graders fan out over the
    sandbox pool; model judges get their prompts in batches (local model) or concurrent
    requests (endpoint). `max_workers` caps the threads used for fanning out; `scope` as in
    `run_grader`.
    """
    if len(samples) != len(items):
        raise ValueError(f"got {len(samples)} samples but {len(items)} items")
    compiled = _compile_cached(grader)
    if isinstance(compiled, GraderValidationError):
        return [_invalid(grader, compiled) for _ in samples]
    clean_items = [item if isinstance(item, dict) else {} for item in items]
    env = _env(judges, sandbox, max_workers, time_budget, scope)
    results = compiled.grade_many(list(samples), clean_items, env)
    for index, item in enumerate(items):
        if item is not None and not isinstance(item, dict):
            error = GradingError(OTHER_ERROR, f"item must be an object, got {type(item).__name__}")
            results[index] = failed_result(error, name=compiled.name, type_=compiled.type_name)
    return [_top_level(compiled, result) for result in results]
