"""The shape every grader type shares, and the registry that maps `type` to a class.

A grader dict is compiled once into a `CompiledGrader` (validation, templates, regexes,
formulas, schemas all prepared up front); grading then only does the per-sample work.
That split is what makes tens of thousands of grades per second possible.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from time import monotonic, perf_counter
from typing import TYPE_CHECKING, Any, ClassVar

from .result import (
    OTHER_ERROR,
    UNRESPONSIVE_REWARD_ERROR,
    GradeResult,
    GraderValidationError,
    GradingError,
    failed_result,
)
from .spec import Field, join_path, read_fields
from .templates import Sample

if TYPE_CHECKING:
    from .judges import JudgeRegistry
    from .sandbox import SandboxPool


@dataclass
class GradingEnv:
    """What graders may need from outside: judge endpoints and the python sandbox pool.

    Deterministic graders ignore it. `sandbox=None` means the process-wide default pool,
    `judges=None` the process-wide default registry. `scope` names who is grading (a
    project, a training run): python workers are never shared between scopes.
    """

    judges: JudgeRegistry | None = None
    sandbox: SandboxPool | None = None
    max_workers: int | None = None
    scope: str | None = None

    # `time.monotonic()` after which no new grade starts (a web request's time budget).
    deadline: float | None = None

    def time_left(self, cap: float) -> float:
        """Seconds a bounded step (a regex match) may take: `cap`, or less near the deadline."""
        if self.deadline is None:
            return cap
        return max(0.01, min(cap, self.deadline - monotonic()))

    def check_deadline(self) -> None:
        if self.deadline is not None and monotonic() >= self.deadline:
            raise GradingError(
                UNRESPONSIVE_REWARD_ERROR,
                "not graded: grading ran out of the time this request may take "
                "(grade many tasks with the reference check, which runs on a worker)",
            )

    def judge_registry(self) -> JudgeRegistry:
        from .judges import default_judges

        return self.judges if self.judges is not None else default_judges

    def sandbox_pool(self) -> SandboxPool:
        from .sandbox import default_pool

        return self.sandbox if self.sandbox is not None else default_pool()


DEFAULT_ENV = GradingEnv()
UNIT_RANGE = (0.0, 1.0)  # what every reward leaving the engine lies in
REGISTRY: dict[str, type[CompiledGrader]] = {}


def register(cls: type[CompiledGrader]) -> type[CompiledGrader]:
    """Class decorator: make `cls` available under its `type_name`."""
    REGISTRY[cls.type_name] = cls
    return cls


class CompiledGrader:
    """Base class. Subclasses declare `fields` and implement `score` or `evaluate`."""

    type_name: ClassVar[str]
    label: ClassVar[str]
    description: ClassVar[str]
    category: ClassVar[str] = "extra"  # "openai" for OpenAI's own types
    fields: ClassVar[tuple[Field, ...]] = ()
    ignored_fields: ClassVar[tuple[str, ...]] = ()
    # True when grading one sample waits on something else (a process, a server), so a
    # batch gains from threads; False for pure-CPU graders, where threads only add cost.
    waits: ClassVar[bool] = False
    # Every reward this grader gives lies in this interval; anything else is an error.
    # Only score_model declares another (its `range`), see `engine` for the top level.
    output_range: tuple[float, float] = UNIT_RANGE
    # Bytes that compiling allocated beyond the spec (compiled regexes), for cache budgets.
    cost: int = 0

    def __init__(self, raw: dict[str, Any], prefix: str = "", default_name: str | None = None):
        name = raw.get("name", default_name or self.type_name)
        if not isinstance(name, str) or not name.strip():
            raise GraderValidationError("must be a non-empty text", join_path(prefix, "name"))
        self.name = name
        self.prefix = prefix
        values = read_fields(raw, self.fields, prefix, ignored=self.ignored_fields)
        self.spec: dict[str, Any] = {"type": self.type_name, "name": name, **values}
        self.setup(values)

    def param(self, field_name: str) -> str:
        """The path of one of this grader's fields, for error messages."""
        return join_path(self.prefix, field_name)

    def setup(self, values: dict[str, Any]) -> None:
        """Prepare per-grader state (compile templates, regexes...) from validated fields."""

    def score(self, sample: Sample, item: dict[str, Any]) -> float:
        raise NotImplementedError

    def evaluate(self, sample: Sample, item: dict[str, Any], env: GradingEnv) -> GradeResult:
        """One grade; raise `GradingError` for a flagged failure."""
        return GradeResult(self.score(sample, item), self.name, self.type_name)

    def grade(
        self, sample: Any, item: dict[str, Any], env: GradingEnv = DEFAULT_ENV
    ) -> GradeResult:
        """Grade one sample; never raises: failures become error flags and reward 0."""
        start = perf_counter()
        try:
            if env.deadline is not None:
                env.check_deadline()
            result = self.evaluate(
                sample if type(sample) is Sample else Sample.of(sample), item, env
            )
            low, high = self.output_range
            if not low <= result.reward <= high:  # the hot path is this one comparison
                result = self._checked(result)
        except Exception as exc:  # a bug or an odd input must not take the trainer down
            result = self._failure(exc)
        result.execution_time = perf_counter() - start
        return result

    def guarded(self, compute: Callable[[], GradeResult]) -> GradeResult:
        """Like `grade`, for a result computed some other way (e.g. a batched judge reply)."""
        start = perf_counter()
        try:
            result = self._checked(compute())
        except Exception as exc:
            result = self._failure(exc)
        result.execution_time = perf_counter() - start
        return result

    def _checked(self, result: GradeResult) -> GradeResult:
        """A reward must be a finite number within `output_range`; else the grade is an error.

        NaN or inf would poison the trainer's advantages, and a reward above the maximum
        would silently outweigh every other task, so neither is clipped into place: the
        grade scores 0 with `other_error` and a message saying what the grader gave.
        Rounding noise (1.0000000000000002 from a weighted mean) is clamped, not refused.
        """
        reward = result.reward
        low, high = self.output_range
        if low <= reward <= high:  # False for NaN
            return result
        if isinstance(reward, int | float) and math.isfinite(reward):
            slack = 1e-9 * max(1.0, high - low)
            if low - slack <= reward <= high + slack:
                result.reward = min(high, max(low, float(reward)))
                return result
            problem = "outside"
        else:
            problem = "not a finite number in"
        raise GradingError(
            OTHER_ERROR,
            f"{self.type_name} grader {self.name!r} gave {reward!r}, {problem} the allowed "
            f"range {low:g} to {high:g}; the grade counts as 0",
        )

    def _failure(self, exc: Exception) -> GradeResult:
        if isinstance(exc, GradingError):
            result = failed_result(exc, name=self.name, type_=self.type_name)
            result.logs = getattr(exc, "logs", None) or None
            return result
        message = f"{type(exc).__name__}: {exc}"
        return GradeResult(
            0.0, self.name, self.type_name, errors={OTHER_ERROR: True}, error_message=message
        )

    def grade_many(
        self, samples: Sequence[Any], items: Sequence[dict[str, Any]], env: GradingEnv
    ) -> list[GradeResult]:
        """Grade a batch. Waiting graders fan out over threads; the rest run in a loop."""
        pairs = list(zip(samples, items, strict=True))
        if not self.waits or len(pairs) < 2:
            return [self.grade(s, i, env) for s, i in pairs]
        workers = env.max_workers or self.batch_workers(env)
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(pairs)))) as executor:
            return list(executor.map(lambda pair: self.grade(pair[0], pair[1], env), pairs))

    def batch_workers(self, env: GradingEnv) -> int:
        """How many samples of this grader are worth grading at once."""
        return 8

    def contains(self, type_name: str) -> bool:
        """Whether this grader (or one nested in it) is of `type_name`."""
        return self.type_name == type_name


def compile_grader(raw: Any, prefix: str = "", default_name: str | None = None) -> CompiledGrader:
    """Validate `raw` and build its `CompiledGrader`; raise `GraderValidationError`."""
    if not isinstance(raw, dict):
        raise GraderValidationError(
            f"a grader must be an object; got {type(raw).__name__}", prefix or None
        )
    type_name = raw.get("type")
    cls = REGISTRY.get(type_name) if isinstance(type_name, str) else None
    if cls is None:
        known = ", ".join(sorted(REGISTRY))
        shown = f'"{type_name}"' if isinstance(type_name, str) else "nothing"
        raise GraderValidationError(
            f"must be one of {known}; got {shown}", join_path(prefix, "type")
        )
    return cls(raw, prefix, default_name)
