"""The three entry points: `validate_grader`, `run_grader` and `grade_batch`.

Callers pass the same grader dict for every sample, so compiled graders are cached: first
by the dict's identity (checked against a snapshot, so a dict edited in place is
recompiled), then by its canonical JSON. A cache hit costs a dict comparison, which is
what keeps `run_grader` in the tens of thousands of calls per second.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .base import CompiledGrader, GradingEnv, compile_grader
from .result import OTHER_ERROR, GradeResult, GraderValidationError, GradingError, failed_result

if TYPE_CHECKING:
    from .judges import JudgeRegistry
    from .sandbox import SandboxPool

_CACHE_SIZE = 512
_lock = threading.Lock()
_by_id: OrderedDict[
    int, tuple[dict[str, Any], dict[str, Any], CompiledGrader | GraderValidationError]
] = OrderedDict()
_by_json: OrderedDict[str, CompiledGrader | GraderValidationError] = OrderedDict()


def _compile_cached(grader: Any) -> CompiledGrader | GraderValidationError:
    """The compiled grader, or the validation error it raised (errors are cached too)."""
    if not isinstance(grader, dict):
        return GraderValidationError(f"a grader must be an object; got {type(grader).__name__}")
    key = id(grader)
    entry = _by_id.get(key)
    if entry is not None and entry[0] is grader and entry[1] == grader:
        return entry[2]
    try:
        canonical = json.dumps(grader, sort_keys=True, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        return GraderValidationError(f"a grader must be plain JSON: {exc}")
    with _lock:
        compiled = _by_json.get(canonical)
        if compiled is not None:
            _by_json.move_to_end(canonical)
    if compiled is None:
        try:
            compiled = compile_grader(grader)
        except GraderValidationError as exc:
            compiled = exc
        except RecursionError:
            compiled = GraderValidationError("the grader is nested too deeply")
    with _lock:
        _by_json[canonical] = compiled
        _by_id[key] = (grader, copy.deepcopy(grader), compiled)
        for cache in (_by_json, _by_id):
            while len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
    return compiled


def validate_grader(grader: Any) -> dict[str, Any]:
    """Check a grader and return it normalised (defaults filled in).

    Raises `GraderValidationError(message, param)` naming the field path, e.g.
    `graders.accuracy.operation: must be one of eq, ne, like, ilike; got "equals"`.
    """
    compiled = _compile_cached(grader)
    if isinstance(compiled, GraderValidationError):
        raise compiled
    return copy.deepcopy(compiled.spec)


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
    scope: str | None = None,
) -> GradingEnv:
    return GradingEnv(judges=judges, sandbox=sandbox, max_workers=max_workers, scope=scope)


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
    scope: str | None = None,
) -> GradeResult:
    """Grade one sample. Never raises: problems become error flags and reward 0.

    `sample` is the model's text or `{"output_text", "output_json"?}`; `item` is the task
    row whose fields templates reach as `{{item.x}}`. `judges` supplies model-grader
    endpoints (default: the process-wide registry); `sandbox` a python pool (default: the
    shared one); `scope` who grades (e.g. "project:12"): python graders of different scopes
    never share a worker process, so pass it whenever code of several projects may run.
    """
    compiled = _compile_cached(grader)
    if isinstance(compiled, GraderValidationError):
        return _invalid(grader, compiled)
    if item is None:
        item = {}
    elif not isinstance(item, dict):
        error = GradingError(OTHER_ERROR, f"item must be an object, got {type(item).__name__}")
        return failed_result(error, name=compiled.name, type_=compiled.type_name)
    if judges is None and sandbox is None and scope is None:
        return compiled.grade(sample, item)
    return compiled.grade(sample, item, _env(judges, sandbox, scope=scope))


def grade_batch(
    grader: dict[str, Any],
    samples: Sequence[Any],
    items: Sequence[dict[str, Any] | None],
    *,
    max_workers: int | None = None,
    judges: JudgeRegistry | None = None,
    sandbox: SandboxPool | None = None,
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
    results = compiled.grade_many(list(samples), clean_items, _env(judges, sandbox, max_workers, scope))
    for index, item in enumerate(items):
        if item is not None and not isinstance(item, dict):
            error = GradingError(OTHER_ERROR, f"item must be an object, got {type(item).__name__}")
            results[index] = failed_result(error, name=compiled.name, type_=compiled.type_name)
    return results
