"""Writes for insights: findings as run events, difficulty profiles, re-grades of finished runs."""

from __future__ import annotations

import logging
from collections import defaultdict
from itertools import islice

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from webapp.datasets.models import Dataset, Task
from webapp.graders.judges import sync_judges
from webapp.graders.models import Grader
from webapp.graders.services import grading_scope
from webapp.projects.models import Project
from webapp.runs.models import FINISHED_STATUSES, Run, RunEvent

from .models import DifficultyProfile, JobStatus, Regrade
from .selectors import run_findings

log = logging.getLogger(__name__)

MAX_K, MAX_TASKS = 16, 500  # trainer.difficulty checks the same bounds (importing it loads torch)
REGRADE_CHUNK = 256


# --- findings ----------------------------------------------------------------------------------


@transaction.atomic
def run_findings_record(*, run_id: str, metric_rows: list[tuple[int, dict]] | None = None) -> list[str]:
    """Announce each finding once as a run event (level warning/error, `data.finding` = its
    code); returns the codes announced now. Called by the training hooks while the run is
    live, so the events log and `GET …/events` say what went wrong when it happened; they
    pass the (step, metrics) rows they keep, so the metrics are not re-read each time."""
    run = Run.objects.filter(pk=run_id).first()
    if run is None:
        return []
    if metric_rows is not None:
        run._metric_rows = metric_rows
    found = run_findings(run=run)
    if not found:
        return []
    announced = set(RunEvent.objects.filter(run=run, type="message", data__has_key="finding")
                    .values_list("data__finding", flat=True))
    new = [f for f in found if f.code not in announced]
    RunEvent.objects.bulk_create([
        RunEvent(run=run, level="error" if f.severity == "error" else "warning", type="message",
                 message=f"{f.title}: {f.message} Try: {f.what_to_try[0]}",
                 data={"finding": f.code, "severity": f.severity, "step": run.current_step,
                       "evidence": {k: v for k, v in f.evidence.items() if k != "samples_query"}})
        for f in new])
    return [f.code for f in new]


# --- difficulty profile ------------------------------------------------------------------------


@transaction.atomic
def difficulty_start(*, project: Project, dataset: Dataset, grader: Grader, base_model: str, k: int,
                     max_tasks: int, user) -> DifficultyProfile:
    """Record a difficulty profile and queue it for a worker (queue `default`)."""
    from webapp.runs.plan import base_model_resolve

    if dataset.project_id != project.pk or grader.project_id != project.pk:
        raise ValidationError("The dataset and the grader must belong to this project.")
    if not 1 <= k <= MAX_K:
        raise ValidationError({"k": f"Answers per task: from 1 to {MAX_K}."})
    if not 1 <= max_tasks <= MAX_TASKS:
        raise ValidationError({"max_tasks": f"Tasks: from 1 to {MAX_TASKS}."})
    base_model_resolve(base_model)  # a LaunchError (a ValidationError) names what is available
    n = dataset.tasks.filter(split="train").count()
    if not n:
        raise ValidationError({"dataset": "The dataset has no training tasks to profile."})
    profile = DifficultyProfile.objects.create(
        project=project, dataset=dataset, grader=grader, grader_spec=grader.spec, base_model=base_model, k=k,
        max_tasks=max_tasks, total_tasks=min(n, max_tasks), created_by=user)
    from .tasks import difficulty_task

    transaction.on_commit(lambda: difficulty_task.delay(profile.pk))
    return profile


def _save(obj, **fields) -> None:
    type(obj).objects.filter(pk=obj.pk).update(**fields)
    for name, value in fields.items():
        setattr(obj, name, value)


def difficulty_execute(*, profile_id: int) -> None:
    """Run `trainer.difficulty.difficulty_profile` and store the result; failures are stored."""
    from trainer.config import config_from_openai_hyperparameters
    from trainer.difficulty import difficulty_profile
    from webapp.runs.plan import base_model_resolve, training_device

    profile = DifficultyProfile.objects.select_related("dataset").get(pk=profile_id)
    if profile.is_finished:
        return
    _save(profile, status=JobStatus.RUNNING, progress="Starting…")
    sync_judges()
    try:
        rows = [{**data, "_id": pk} for pk, data in
                Task.objects.filter(dataset=profile.dataset, split="train").order_by("position")
                .values_list("pk", "data")]
        config = config_from_openai_hyperparameters(
            {}, base_model=base_model_resolve(profile.base_model), n_train_tasks=len(rows),
            device=training_device())

        def progress(message: str, done: int, total: int) -> None:
            _save(profile, progress=message[:200], done_tasks=done, total_tasks=total)

        results = difficulty_profile(config, rows, profile.grader_spec, k=profile.k, max_tasks=profile.max_tasks,
                                     on_progress=progress, scope=grading_scope(project_id=profile.project_id))
        results["max_completion_tokens"] = config.max_completion_tokens
    except Exception as exc:  # shown on the page as it is
        log.exception("difficulty profile %s failed", profile_id)
        _save(profile, status=JobStatus.FAILED, progress="", error=f"{type(exc).__name__}: {exc}",
              finished_at=timezone.now())
        return
    _save(profile, status=JobStatus.DONE, progress="", results=results, finished_at=timezone.now(),
          done_tasks=results["tasks_profiled"])


@transaction.atomic
def difficulty_apply(*, profile: DifficultyProfile, action: str, bands: list[str], user) -> Dataset:
    """A new version of the dataset without the tasks of `bands` (action "exclude"), or with
    them in the validation split ("to_valid"). Tasks the profile did not sample stay as they are."""
    if profile.status != JobStatus.DONE:
        raise ValidationError("The profile is not finished.")
    if action not in ("exclude", "to_valid"):
        raise ValidationError({"action": "Choose “exclude” or “move to validation”."})
    bands = [b for b in bands if b in ("always", "never", "between")]
    if not bands:
        raise ValidationError({"bands": "Choose which tasks: always solved, never solved or both."})
    chosen = {t["id"] for t in profile.results.get("tasks", []) if t["band"] in bands and t.get("id") is not None}
    if not chosen:
        raise ValidationError("No profiled task is in those groups: nothing to change.")
    source = profile.dataset
    latest = source.project.datasets.filter(name=source.name).order_by("-version").first()
    words = {"exclude": "without", "to_valid": "validation gets"}[action]
    copy = Dataset.objects.create(
        project=source.project, name=source.name, description=source.description, version=latest.version + 1,
        parent=source, created_by=user,
        source=f"v{source.version} {words} the {' and '.join(bands)}-solved tasks ({len(chosen)})"[:500])
    rows = []
    position = 0
    for t in source.tasks.order_by("position").iterator(chunk_size=2000):
        if t.pk in chosen and action == "exclude":
            continue
        split = "valid" if t.pk in chosen else t.split
        rows.append(Task(dataset=copy, split=split, position=position, data=t.data, search_text=t.search_text))
        position += 1
    Task.objects.bulk_create(rows, batch_size=2000)
    return copy


# --- re-grade a finished run -------------------------------------------------------------------


@transaction.atomic
def regrade_start(*, run: Run, grader: Grader, user) -> Regrade:
    """Score a finished run's stored answers with `grader` on a worker (queue `default`)."""
    if grader.project_id != run.project_id:
        raise ValidationError({"grader": "That grader belongs to another project."})
    if run.status not in FINISHED_STATUSES and run.status != "paused":
        raise ValidationError("Re-grade a run once it has finished (or is paused).")
    total = run.samples.count()
    if not total:
        raise ValidationError("This run kept no answers to re-grade.")
    regrade = Regrade.objects.create(run=run, grader=grader, grader_spec=grader.spec, total=total, created_by=user,
                                     label=f"{grader.name} v{grader.version}")
    from .tasks import regrade_task

    transaction.on_commit(lambda: regrade_task.delay(regrade.pk))
    return regrade


def _curve(sums: dict[tuple[str, int], list[float]]) -> dict[str, dict[str, list]]:
    out: dict[str, dict[str, list]] = {}
    for (split, step), (total, n) in sorted(sums.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        s = out.setdefault(split, {"x": [], "y": []})
        s["x"].append(step)
        s["y"].append(round(total / n, 4))
    return out


def regrade_execute(*, regrade_id: int) -> None:
    """Grade every stored answer of the run with the regrade's spec; save the per-step curves
    (re-graded and original, over the same answers) as it goes."""
    from trainer.grading import run_grader

    regrade = Regrade.objects.select_related("run").get(pk=regrade_id)
    if regrade.is_finished:
        return
    _save(regrade, status=JobStatus.RUNNING)
    sync_judges()
    scope = grading_scope(project_id=regrade.run.project_id)
    new: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0])
    old: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0])
    done = 0
    try:
        samples = (regrade.run.samples.order_by("step", "pk")
                   .values_list("split", "step", "output_text", "item", "reward").iterator(chunk_size=REGRADE_CHUNK))
        while chunk := list(islice(samples, REGRADE_CHUNK)):
            for split, step, text, item, reward in chunk:
                grade = run_grader(regrade.grader_spec, text, item, scope=scope)
                for sums, value in ((new, grade.reward), (old, reward)):
                    sums[(split, step)][0] += value
                    sums[(split, step)][1] += 1
            done += len(chunk)
            _save(regrade, done=done)
    except Exception as exc:
        log.exception("re-grade %s failed", regrade_id)
        _save(regrade, status=JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now())
        return
    _save(regrade, status=JobStatus.DONE, done=done, curve={"regraded": _curve(new), "original": _curve(old)},
          finished_at=timezone.now())
