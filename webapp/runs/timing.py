"""How long a run takes: one rule for the New run estimate and the run page's “time left”.

Both come from measured step times. Before launch, those of comparable runs: the same base
model on the same kind of worker, preferably with the same step shape (tasks per step,
answers per task, longest answer); runs of another shape are scaled by the answers each step
writes. A run that has started uses its own steps. Validation passes are timed apart from
training steps (the trainer reports `time/eval`), since they come every few steps and vary
with the validation set. The result is a range (the middle half of the measured step times,
never narrower than ±15 %), because a step's time depends on how long the answers get.

Reads only; no model, no write. Typical CPU/GPU numbers stand in where nothing was measured.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from .models import Run, RunMetric

HISTORY_STEPS = 400  # most recent steps of comparable runs looked at
OWN_STEPS_NEEDED = 3  # a running run trusts its own step times from this many steps on
MIN_SPREAD = 0.15  # the range is at least ± this fraction
# Seconds per answer token when nothing was measured (bench/grpo_vs_trl.py on the built-in
# 135M model: sampling, grading and the update together), and the start-up (model load).
TYPICAL_SECONDS_PER_TOKEN = {"cpu": 1 / 95, "cuda": 1 / 1900}
TYPICAL_STARTUP_S = {"cpu": 20.0, "cuda": 30.0}
ANSWER_FILL = 0.5  # answers usually stop at about half the longest allowed


@dataclass(frozen=True)
class Shape:
    """What a step costs, as far as time goes."""

    batch_size: int
    group_size: int
    max_completion_tokens: int
    eval_tasks: int  # validation tasks graded per progress check

    @property
    def answers(self) -> int:
        return self.batch_size * self.group_size

    @classmethod
    def of_config(cls, config: dict, n_valid: int | None = None) -> Shape:
        eval_tasks = config.get("eval_samples") or n_valid or 0
        return cls(int(config.get("batch_size") or 1), int(config.get("group_size") or 1),
                   int(config.get("max_completion_tokens") or 128), int(eval_tasks))


@dataclass(frozen=True)
class StepTimes:
    """Seconds per training step (low, typical, high), per validation pass, and the start-up."""

    low: float
    mid: float
    high: float
    eval_s: float
    startup_s: float
    source: str  # in words, for the page

    def total(self, *, steps: int, evals: int, startup: bool = True) -> tuple[int, int]:
        """(low, high) seconds for `steps` training steps and `evals` validation passes."""
        extra = evals * self.eval_s + (self.startup_s if startup else 0.0)
        return int(steps * self.low + extra), int(math.ceil(steps * self.high + extra))


def _spread(values: list[float]) -> tuple[float, float, float]:
    values = sorted(values)
    mid = statistics.median(values)
    if len(values) >= 4:
        q = statistics.quantiles(values, n=4)
        low, high = q[0], q[2]
    else:
        low, high = min(values), max(values)
    return min(low, mid * (1 - MIN_SPREAD)), mid, max(high, mid * (1 + MIN_SPREAD))


def _train_seconds(data: dict) -> float | None:
    step = data.get("time/step")
    if not isinstance(step, int | float) or step <= 0:
        return None
    return max(step - (data.get("time/eval") or 0.0), 1e-3)


def _measured(rows, shape: Shape, shapes: dict[str, Shape]) -> tuple[list[float], list[float]]:
    """Training-step seconds scaled to `shape`, and validation seconds per task scaled likewise."""
    steps, evals = [], []
    for run_id, data in rows:
        seconds = _train_seconds(data)
        if seconds is None:
            continue
        theirs = shapes[run_id]
        token_scale = shape.max_completion_tokens / theirs.max_completion_tokens
        steps.append(seconds * shape.answers / theirs.answers * token_scale)
        if data.get("time/eval") and theirs.eval_tasks:
            evals.append(data["time/eval"] / theirs.eval_tasks * token_scale)
    return steps, evals


def comparable_step_times(*, base_model: str, device: str, shape: Shape, exclude: str | None = None) -> StepTimes:
    """Step times for a run of `shape` on `base_model` and `device` (`cpu`/`cuda`), from the
    most recent steps of comparable runs (same shape first), else typical numbers."""
    runs = Run.objects.filter(base_model=base_model, config__device=device).exclude(pk=exclude or "")
    shapes = {r.pk: Shape.of_config(r.config) for r in runs.only("id", "config").order_by("-created_at")[:50]}
    same = [pk for pk, s in shapes.items()
            if (s.batch_size, s.group_size, s.max_completion_tokens)
            == (shape.batch_size, shape.group_size, shape.max_completion_tokens)]
    for run_ids, source in ((same, "earlier runs with the same step size"),
                            (list(shapes), "earlier runs of this model, scaled to this step size")):
        if not run_ids:
            continue
        rows = list(RunMetric.objects.filter(run_id__in=run_ids, step__gt=1)  # step 1 warms caches up
                    .order_by("-id").values_list("run_id", "data")[:HISTORY_STEPS])
        steps, evals = _measured(rows, shape, shapes)
        if steps:
            low, mid, high = _spread(steps)
            eval_s = statistics.median(evals) * shape.eval_tasks if evals else mid * 0.5
            return StepTimes(low, mid, high, eval_s, _startup(run_ids, device), source)
    per_token = TYPICAL_SECONDS_PER_TOKEN[device] * shape.max_completion_tokens * ANSWER_FILL
    mid = shape.answers * per_token
    eval_s = shape.eval_tasks * per_token
    kind = "GPU" if device == "cuda" else "CPU"
    return StepTimes(mid * 0.6, mid, mid * 2.0, eval_s, TYPICAL_STARTUP_S[device],
                     f"a typical {kind} worker (no earlier run of this model to measure)")


def _startup(run_ids: list[str], device: str) -> float:
    """Seconds from a run's start to the end of its first step, less that step: the model load."""
    firsts = (RunMetric.objects.filter(run_id__in=run_ids[:10], step=1, run__started_at__isnull=False)
              .values_list("created_at", "run__started_at", "data"))
    gaps = [(created - started).total_seconds() - (data.get("time/step") or 0) for created, started, data in firsts]
    gaps = [g for g in gaps if 0 <= g < 3600]
    return statistics.median(gaps) if gaps else TYPICAL_STARTUP_S[device]


def evals_in(first: int, last: int, eval_interval: int) -> int:
    """Validation passes in steps first..last (every `eval_interval` steps and at the end)."""
    if last < first:
        return 0
    n = last // eval_interval - (first - 1) // eval_interval
    return n + (0 if last % eval_interval == 0 else 1)


def run_time_left(*, run: Run) -> tuple[int, int] | None:
    """(low, high) seconds until `run` finishes, or None when it is not going to run on.

    Until it has a few steps of its own, the same numbers the New run page estimated from
    (so the page agrees with the estimate); then its own step times."""
    if not run.is_active or not run.total_steps:
        return None
    config = run.config or {}
    device = "cuda" if config.get("device") == "cuda" else "cpu"
    shape = Shape.of_config(config)
    read = getattr(run, "_metric_rows", None)  # the run page's charts read them already (in step order)
    if read is not None:
        own = [data or {} for step, data in reversed(read) if step > 1][:HISTORY_STEPS]
    else:
        own = list(run.metrics.filter(step__gt=1).order_by("-step").values_list("data", flat=True)[:HISTORY_STEPS])
    steps = [s for s in (_train_seconds(d) for d in own) if s is not None]
    evals = [d["time/eval"] for d in own if d.get("time/eval")]
    if len(steps) >= OWN_STEPS_NEEDED and evals:  # the page polls this: no need to look further
        times = StepTimes(*_spread(steps), statistics.median(evals), 0.0, "this run")
    else:
        prior = comparable_step_times(base_model=run.base_model, device=device, shape=shape, exclude=run.pk)
        times = prior
        if len(steps) >= OWN_STEPS_NEEDED:
            times = StepTimes(*_spread(steps), prior.eval_s, 0.0, "this run")
    remaining = run.total_steps - run.current_step
    interval = int(config.get("eval_interval") or 10)
    return times.total(steps=remaining, evals=evals_in(run.current_step + 1, run.total_steps, interval),
                       startup=run.current_step == 0)
