"""Reads for runs. Nothing here writes: a run whose worker vanished is marked lost by the
periodic `services.runs_detect_lost`, not by whoever happens to read it."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import TYPE_CHECKING

from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404

from webapp.datasets.importers import prompt_text
from webapp.datasets.models import Dataset, Split
from webapp.datasets.selectors import dataset_split_counts
from webapp.projects.models import Project

from .models import LocalBaseModel, Run, RunCheckpoint, RunMetric, RunPreflight, RunSample

if TYPE_CHECKING:
    from .plan import RunPlan

ESTIMATE_PROMPTS = 200


# --- runs ------------------------------------------------------------------------------------


def run_list(*, project: Project) -> QuerySet[Run]:
    return project.runs.select_related("dataset", "grader", "created_by")


def run_list_for_projects(*, projects: QuerySet[Project]) -> QuerySet[Run]:
    return Run.objects.filter(project__in=projects).select_related("project")


def run_get(*, project: Project, pk: str) -> Run:
    """A run of this project (404 otherwise)."""
    return get_object_or_404(Run.objects.select_related("dataset", "grader", "valid_dataset"), project=project, pk=pk)


def run_get_for_projects(*, projects: QuerySet[Project], pk: str) -> Run:
    """A run of one of `projects` (404 otherwise: others' runs do not exist for the caller)."""
    return get_object_or_404(Run.objects.select_related("project"), pk=pk, project__in=projects)


def run_feedback_counts(*, run: Run) -> dict[str, int]:
    """Disagreements per criterion ('' = the total) for the run page."""
    rows = (RunSample.objects.filter(run=run, feedback__isnull=False)
            .values("feedback__criterion").annotate(n=Count("feedback")))
    return {r["feedback__criterion"]: r["n"] for r in rows}


PRUNED_PREFIX = "Removed checkpoint"


def run_timeline(*, run: Run, limit: int = 50) -> tuple[list[dict], int]:
    """The run page's events, newest first: the run's messages and each progress check's
    validation score (with “best so far”), and how many pruned-checkpoint notes were left out
    (the API's events keep them all)."""
    messages = run.events.filter(type="message")
    pruned = messages.filter(message__startswith=PRUNED_PREFIX).count()
    path = (run.config or {}).get("base_model")
    hide_path = path if path and path != run.base_model and "/" in path else None

    def words(text: str) -> str:  # the trainer names the model folder; the page names the model
        return text.replace(hide_path, run.base_model) if hide_path else text

    items = [{"time": e.created_at, "level": e.level, "text": words(e.message), "kind": "message"}
             for e in messages.exclude(message__startswith=PRUNED_PREFIX).order_by("-id")[:limit]]
    checks = (RunMetric.objects.filter(run=run, data__has_key="valid/reward_mean").order_by("step")
              .values_list("step", "created_at", "data__valid/reward_mean", "data__valid/n_samples"))
    best = None
    for step, created, score, n in checks:
        if not isinstance(score, int | float):
            continue
        note = " (best so far)" if best is not None and score > best else ""
        best = score if best is None else max(best, score)
        tasks = f" on {n} validation tasks" if isinstance(n, int) else ""
        items.append({"time": created, "level": "info", "kind": "validation",
                      "text": f"Step {step}: validation score {score:.3f}{tasks}{note}"})
    items.sort(key=lambda i: i["time"], reverse=True)
    return items[:limit], pruned


def run_latest_checkpoint(*, run: Run) -> RunCheckpoint | None:
    """The newest checkpoint whose folder is still there (resume continues from it)."""
    for ckpt in run.checkpoints.order_by("-step"):
        if Path(ckpt.path).exists():
            return ckpt
    return None


# --- what a run trains on --------------------------------------------------------------------


def base_model_choices() -> list[tuple[str, str]]:
    """(value, label) for the launch form: the built-in models, then admin-registered folders."""
    from trainer.model_registry import BUILTIN_MODELS

    choices = [(name, f"{name} (built in)") for name in BUILTIN_MODELS]
    # the expert sees the admin's description, never a server path
    choices += [(m.name, f"{m.name} ({m.description or 'added by an admin'})") for m in LocalBaseModel.objects.all()]
    return choices


def task_rows(*, dataset: Dataset, split: str = Split.TRAIN) -> list[dict]:
    """One split's task rows, in order."""
    return [t.data for t in dataset.tasks.filter(split=split).order_by("position").iterator(chunk_size=2000)]


def run_task_counts(*, run: Run) -> tuple[int, int]:
    """(training, validation) task counts, as `run_training_rows` would return them; no rows loaded."""
    counts = dataset_split_counts(dataset=run.dataset)
    if run.valid_dataset_id:
        return counts[Split.TRAIN], sum(dataset_split_counts(dataset=run.valid_dataset).values())
    return counts[Split.TRAIN], counts[Split.VALID]


def run_training_rows(*, run: Run) -> tuple[list[dict], list[dict]]:
    """(training, validation) rows: the dataset's train split, and the validation dataset's
    tasks when one was given, else the dataset's own validation split."""
    train = task_rows(dataset=run.dataset)
    if run.valid_dataset_id:
        valid = task_rows(dataset=run.valid_dataset) + task_rows(dataset=run.valid_dataset, split=Split.VALID)
    else:
        valid = task_rows(dataset=run.dataset, split=Split.VALID)
    return train, valid


# --- before launch -----------------------------------------------------------------------------


def run_estimate(*, plan: RunPlan) -> dict:
    """Steps, tokens and time of a planned run, before it starts (instant: no model). The time
    is a range from measured step times of comparable runs (`timing`), the same rule the run
    page's “time left” follows."""
    from .timing import Shape, comparable_step_times, evals_in

    config, run = plan.config, plan.run
    steps = config.total_steps(plan.n_train)
    prompts = [prompt_text(row) for row in run.dataset.tasks.filter(split=Split.TRAIN).order_by("position")
               .values_list("data", flat=True)[:ESTIMATE_PROMPTS]]
    prompt_tokens = statistics.mean(len(p) / 4 + 20 for p in prompts) if prompts else 0
    completion_tokens = config.max_completion_tokens * 0.5  # completions usually stop early
    per_step = config.batch_size * config.group_size
    device = "cuda" if config.device == "cuda" else "cpu"
    times = comparable_step_times(base_model=run.base_model, device=device,
                                  shape=Shape.of_config(config.to_dict(), plan.n_valid))
    evals = evals_in(1, steps, config.eval_interval) if plan.n_valid else 0
    low, high = times.total(steps=steps, evals=evals)
    return {
        "steps": steps, "samples": steps * per_step, "evals": evals,
        "tokens": int(steps * per_step * (prompt_tokens + completion_tokens)),
        "seconds_low": low, "seconds_high": high, "step_seconds": round(times.mid, 1),
        "rate_source": times.source,
    }


def preflight_get(*, project: Project, pk: int) -> RunPreflight:
    return get_object_or_404(RunPreflight, project=project, pk=pk)
