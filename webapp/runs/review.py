"""Reads for reviewing a run's graded samples: the one filter and sort (page and API), the
criteria, early-vs-late pairs."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from django.db.models import Count, FloatField, Max, Min, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import Http404
from django.shortcuts import get_object_or_404

from .models import Run, RunSample

ORDERS = {
    "-step": ("-step", "-id"),
    "step": ("step", "id"),
    "best": ("-reward", "-step", "id"),
    "worst": ("reward", "-step", "id"),
}
ORDER_LABELS = {"-step": "step, newest first", "step": "step, oldest first", "best": "best reward first",
                "worst": "worst reward first"}
DEFAULT_ORDER = "-step"
SPLITS = ("train", "valid")


@dataclass
class SampleFilters:
    """The one filter and sort of a run's samples, for the sample browser and for
    `GET /v1/fine_tuning/jobs/{id}/samples` alike (same parameter names, same orders):

    `split` (train | valid), `min_step`, `max_step`, `min_reward`, `max_reward`, `criterion`
    with `min_score` / `max_score` (that criterion's score), `errors=1` (grader errors only),
    `feedback=1` (marked “grader was wrong”), `order`: `-step` (newest first, the default),
    `step`, `best`, `worst` (by the chosen criterion's score when there is one).

    A value that cannot be used is left out and named in `problems` as (parameter, message):
    the page says so and shows the rest, the API answers 400.
    """

    min_step: int | None = None
    max_step: int | None = None
    split: str = ""
    min_reward: float | None = None
    max_reward: float | None = None
    criterion: str = ""
    min_score: float | None = None
    max_score: float | None = None
    errors_only: bool = False
    with_feedback: bool = False
    order: str = DEFAULT_ORDER
    problems: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def from_query(cls, params, criteria: list[str]) -> SampleFilters:
        f = cls()

        def number(name: str, kind: type):
            raw = str(params.get(name) or "").strip()
            if not raw:
                return None
            try:
                value = kind(raw)
            except ValueError:
                what = "a whole number" if kind is int else "a number"
                f.problems.append((name, f"{name} must be {what} (got “{raw[:40]}”)."))
                return None
            if not math.isfinite(value):
                f.problems.append((name, f"{name} must be a finite number."))
                return None
            return value

        f.min_step, f.max_step = number("min_step", int), number("max_step", int)
        f.min_reward, f.max_reward = number("min_reward", float), number("max_reward", float)
        f.min_score, f.max_score = number("min_score", float), number("max_score", float)
        split = params.get("split") or ""
        if split and split not in SPLITS:
            f.problems.append(("split", f"split must be train or valid (got “{split[:40]}”)."))
        f.split = split if split in SPLITS else ""
        order = params.get("order") or DEFAULT_ORDER
        if order not in ORDERS:
            f.problems.append(("order", f"order must be one of {', '.join(ORDERS)} (got “{order[:40]}”)."))
        f.order = order if order in ORDERS else DEFAULT_ORDER
        f.errors_only = params.get("errors") in ("1", "true")
        f.with_feedback = params.get("feedback") in ("1", "true")
        criterion = params.get("criterion") or ""
        if criterion and criterion not in criteria:
            f.problems.append(("criterion", f"This run has no criterion called “{criterion[:200]}”."))
        f.criterion = criterion if criterion in criteria else ""
        return f

    @property
    def messages(self) -> list[str]:
        return [message for _, message in self.problems]

    def apply(self, qs: QuerySet[RunSample]) -> QuerySet[RunSample]:
        if self.min_step is not None:
            qs = qs.filter(step__gte=self.min_step)
        if self.max_step is not None:
            qs = qs.filter(step__lte=self.max_step)
        if self.split:
            qs = qs.filter(split=self.split)
        if self.min_reward is not None:
            qs = qs.filter(reward__gte=self.min_reward)
        if self.max_reward is not None:
            qs = qs.filter(reward__lte=self.max_reward)
        if self.errors_only:
            qs = qs.exclude(errors={})
        if self.with_feedback:
            qs = qs.filter(feedback__isnull=False).distinct()
        order = ORDERS[self.order]
        if self.criterion:
            qs = qs.annotate(score=Cast(KeyTextTransform(self.criterion, "sub_rewards"), FloatField()))
            qs = qs.filter(score__isnull=False)
            if self.min_score is not None:
                qs = qs.filter(score__gte=self.min_score)
            if self.max_score is not None:
                qs = qs.filter(score__lte=self.max_score)
            if self.order in ("best", "worst"):  # sort by the chosen criterion's score
                order = ("-score" if self.order == "best" else "score", *order[1:])
        return qs.order_by(*order)


def sample_search(*, run: Run, params) -> tuple[QuerySet[RunSample], SampleFilters]:
    """A run's samples filtered and sorted as `params` (a QueryDict or a dict) ask."""
    filters = SampleFilters.from_query(params, sample_criteria(run=run))
    return filters.apply(RunSample.objects.filter(run=run)), filters


def sample_criteria(*, run: Run) -> list[str]:
    """The criteria names the run's samples carry (from the latest samples; cheap)."""
    names: set[str] = set()
    for sub in RunSample.objects.filter(run=run).order_by("-id").values_list("sub_rewards", flat=True)[:50]:
        names.update((sub or {}).keys())
    return sorted(names)


def sample_stats(*, run: Run) -> dict:
    return RunSample.objects.filter(run=run).aggregate(n=Count("id"), first=Min("step"), last=Max("step"))


def sample_get(*, run: Run, pk: int) -> RunSample:
    return get_object_or_404(RunSample, run=run, pk=pk)


def task_early_late(*, run: Run, task_key: str) -> tuple[list[RunSample], list[RunSample]]:
    """The same task's samples at its earliest and at its latest step (per split)."""
    qs = RunSample.objects.filter(run=run, task_key=task_key)
    bounds = qs.aggregate(first=Min("step"), last=Max("step"))
    if bounds["first"] is None:
        raise Http404("No samples of this task in this run.")
    early = list(qs.filter(step=bounds["first"]).prefetch_related("feedback"))
    late = (list(qs.filter(step=bounds["last"]).prefetch_related("feedback"))
            if bounds["last"] != bounds["first"] else [])
    return early, late


def error_flags(errors: dict) -> list[str]:
    """The set flags of a grade's errors, with a detail where the grader left one."""
    out = []
    for key, value in (errors or {}).items():
        if value is True:
            out.append(key.replace("_", " "))
        elif isinstance(value, str) and value:
            out.append(f"{key.replace('_', ' ')}: {value}")
    return out
