"""Reads for the sample browser: filter and sort a run's graded samples, early-vs-late pairs."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, FloatField, Max, Min, QuerySet
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from .models import Run, RunSample

SORTS = {
    "step": ("step", "id"),
    "-step": ("-step", "-id"),
    "best": ("-reward", "-step", "id"),
    "worst": ("reward", "-step", "id"),
}
SORT_LABELS = {"step": "step, oldest first", "-step": "step, newest first", "best": "best reward first",
               "worst": "worst reward first"}


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw not in (None, "") else None
    except ValueError:
        return None


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None


@dataclass
class SampleFilters:
    """What the filter form asks for; anything unparsable is ignored, not an error."""

    step_min: int | None = None
    step_max: int | None = None
    split: str = ""
    reward_min: float | None = None
    reward_max: float | None = None
    criterion: str = ""
    score_min: float | None = None
    score_max: float | None = None
    errors_only: bool = False
    with_feedback: bool = False
    sort: str = "-step"
    problems: list[str] = field(default_factory=list)

    @classmethod
    def from_query(cls, params, criteria: list[str]) -> SampleFilters:
        f = cls(
            step_min=_int(params.get("step_min")), step_max=_int(params.get("step_max")),
            split=params.get("split", "") if params.get("split") in ("train", "valid") else "",
            reward_min=_float(params.get("reward_min")), reward_max=_float(params.get("reward_max")),
            criterion=params.get("criterion", ""), score_min=_float(params.get("score_min")),
            score_max=_float(params.get("score_max")), errors_only=params.get("errors") == "1",
            with_feedback=params.get("feedback") == "1",
            sort=params.get("sort") if params.get("sort") in SORTS else "-step",
        )
        if f.criterion and f.criterion not in criteria:
            f.problems.append(f"This run has no criterion called “{f.criterion}”.")
            f.criterion = ""
        return f

    def apply(self, qs: QuerySet[RunSample]) -> QuerySet[RunSample]:
        if self.step_min is not None:
            qs = qs.filter(step__gte=self.step_min)
        if self.step_max is not None:
            qs = qs.filter(step__lte=self.step_max)
        if self.split:
            qs = qs.filter(split=self.split)
        if self.reward_min is not None:
            qs = qs.filter(reward__gte=self.reward_min)
        if self.reward_max is not None:
            qs = qs.filter(reward__lte=self.reward_max)
        if self.errors_only:
            qs = qs.exclude(errors={})
        if self.with_feedback:
            qs = qs.filter(feedback__isnull=False).distinct()
        order = SORTS[self.sort]
        if self.criterion:
            qs = qs.annotate(score=Cast(KeyTextTransform(self.criterion, "sub_rewards"), FloatField()))
            qs = qs.filter(score__isnull=False)
            if self.score_min is not None:
                qs = qs.filter(score__gte=self.score_min)
            if self.score_max is not None:
                qs = qs.filter(score__lte=self.score_max)
            if self.sort in ("best", "worst"):  # sort by the chosen criterion's score
                order = ("-score" if self.sort == "best" else "score", *order[1:])
        return qs.order_by(*order)


def sample_criteria(run: Run) -> list[str]:
    """The criteria names the run's samples carry (from the latest samples; cheap)."""
    names: set[str] = set()
    for sub in RunSample.objects.filter(run=run).order_by("-id").values_list("sub_rewards", flat=True)[:50]:
        names.update((sub or {}).keys())
    return sorted(names)


def sample_stats(run: Run) -> dict:
    return RunSample.objects.filter(run=run).aggregate(n=Count("id"), first=Min("step"), last=Max("step"))


def sample_get(run: Run, pk: int) -> RunSample:
    from django.shortcuts import get_object_or_404

    return get_object_or_404(RunSample, run=run, pk=pk)


def task_early_late(run: Run, task_key: str) -> tuple[list[RunSample], list[RunSample]]:
    """The same task's samples at its earliest and at its latest step (per split)."""
    from django.http import Http404

    qs = RunSample.objects.filter(run=run, task_key=task_key)
    bounds = qs.aggregate(first=Min("step"), last=Max("step"))
    if bounds["first"] is None:
        raise Http404("No samples of this task in this run.")
    early = list(qs.filter(step=bounds["first"]).prefetch_related("feedback"))
    late = list(qs.filter(step=bounds["last"]).prefetch_related("feedback")) if bounds["last"] != bounds["first"] else []
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
