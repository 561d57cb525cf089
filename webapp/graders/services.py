"""Writes for graders. A grader a run has used is frozen: editing it makes a new version."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from itertools import islice
from time import monotonic
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from trainer.grading import GraderValidationError, check_references, validate_grader
from webapp.datasets.importers import prompt_text
from webapp.datasets.models import Dataset, Task
from webapp.projects.models import Project

from .judges import sync_judges
from .models import CheckStatus, Grader, GraderCheck

log = logging.getLogger(__name__)


def grading_scope(*, project_id: int | None = None, user_id: int | None = None) -> str:
    """Who is grading, for the python sandbox: workers never serve two scopes, so one
    project's grader code never sees state left by another project's."""
    return f"project:{project_id}" if project_id is not None else f"user:{user_id}"


def grader_validate_spec(spec) -> dict:
    """The normalised grader JSON, or a ValidationError naming the field path."""
    sync_judges()  # judges an admin configured are valid `model`s
    try:
        return validate_grader(spec)
    except GraderValidationError as exc:
        raise ValidationError({"spec": str(exc)}) from None


@transaction.atomic
def grader_create(
    *, project: Project, name: str, spec: dict, user, rubric: dict | None = None,
    description: str = "", dataset: Dataset | None = None,
) -> Grader:
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the grader a name."})
    if dataset is not None and dataset.project_id != project.pk:
        raise ValidationError({"dataset": "The dataset belongs to another project."})
    grader_validate_spec(spec)
    return Grader.objects.create(
        project=project, name=name[:200], spec=spec, rubric=rubric, description=description,
        dataset=dataset, created_by=user,
    )


class _Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()  # "leave as it is", where None would mean "clear it"


@transaction.atomic
def grader_update(
    *, grader: Grader, user, spec: dict, rubric: dict | None = None, name: str | None = None,
    description: str | None = None, dataset: Dataset | None = KEEP,
) -> Grader:
    """Save changes; a locked grader (used by a run) gets a new version instead.

    `dataset`: a dataset of the project, None to clear it, or `KEEP` (the default) to leave it.
    """
    grader_validate_spec(spec)
    if dataset is KEEP:
        dataset = grader.dataset
    elif dataset is not None and dataset.project_id != grader.project_id:
        raise ValidationError({"dataset": "The dataset belongs to another project."})
    if grader.is_locked:
        latest = grader.project.graders.filter(name=grader.name).order_by("-version").first()
        return Grader.objects.create(
            project=grader.project, name=(name or grader.name).strip()[:200], spec=spec, rubric=rubric,
            description=grader.description if description is None else description,
            dataset=dataset, version=latest.version + 1, parent=grader, created_by=user,
        )
    grader.spec, grader.rubric, grader.dataset = spec, rubric, dataset
    if name is not None and name.strip():
        grader.name = name.strip()[:200]
    if description is not None:
        grader.description = description
    grader.save()
    return grader


@transaction.atomic
def grader_lock(*, grader: Grader, reason: str) -> Grader:
    if not grader.locked_reason:
        grader.locked_reason = reason[:300]
        grader.save(update_fields=["locked_reason"])
    return grader


@transaction.atomic
def grader_delete(*, grader: Grader) -> None:
    if grader.is_locked:
        raise ValidationError(f"This grader cannot be deleted: {grader.locked_reason}.")
    grader.delete()


# --- check against references ---------------------------------------------------------------

# Grader types whose grades wait on a process, a model or an embedding: too slow to run over a
# whole dataset inside a web request, so their checks go to a Celery worker (queue "default").
SLOW_TYPES = frozenset({"python", "score_model", "label_model"})
MAX_FAILING_LISTED = 500
CHECK_CHUNK = 256


def _types_in(spec: Any) -> Iterator[str]:
    if isinstance(spec, dict):
        yield str(spec.get("type"))
        if spec.get("type") == "text_similarity" and spec.get("evaluation_metric") == "cosine":
            yield "cosine"
        graders = spec.get("graders")
        if isinstance(graders, dict):
            children = [graders] if isinstance(graders.get("type"), str) else graders.values()
            for child in children:
                yield from _types_in(child)


def grader_needs_worker(spec: dict) -> bool:
    """Whether grading a whole dataset with `spec` is too slow for a web request."""
    return any(t in SLOW_TYPES or t == "cosine" for t in _types_in(spec))


@transaction.atomic
def grader_check_start(*, grader: Grader, user) -> GraderCheck:
    """Record a check of `grader` against its dataset's reference answers.

    Slow graders are queued for a worker; the caller runs cheap ones at once with
    `grader_check_run` (deterministic graders do tens of thousands of grades a second).
    """
    if grader.dataset is None:
        raise ValidationError("Choose a dataset for this grader first: its tasks' reference answers are checked.")
    check = GraderCheck.objects.create(
        grader=grader, dataset=grader.dataset, created_by=user, total=grader.dataset.tasks.count(),
    )
    if grader_needs_worker(grader.spec):
        from .tasks import grader_check_task

        transaction.on_commit(lambda: grader_check_task.delay(check.pk))
    return check


def _chunks(iterable, size: int):
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def grader_check_run(*, check: GraderCheck, time_budget: float | None = None) -> GraderCheck:
    """Grade every task's reference answer (the engine's `check_references`, the same rule as
    pre-flight); save totals, failures and progress as it goes. A task without a
    `reference_answer` is graded as the empty answer, so it is listed as failing.

    Not one transaction: progress is written per chunk so the page can poll it. With
    `time_budget` (a web request's few seconds), a check that is not done by then is
    handed to a worker, which continues where this one stopped (a regex over 50,000 long
    answers must not hold a web process for minutes).
    """
    deadline = None if time_budget is None else monotonic() + time_budget
    GraderCheck.objects.filter(pk=check.pk).update(status=CheckStatus.RUNNING)
    sync_judges()
    spec = check.grader.spec
    scope = grading_scope(project_id=check.grader.project_id)
    rewards: list[float] = list(check.rewards or [])  # a check handed over resumes
    failing: list[dict] = list(check.failing or [])
    full = check.full_marks if rewards else 0
    tasks = Task.objects.filter(dataset_id=check.dataset_id).order_by("position", "pk")
    try:
        rows = tasks.values_list("pk", "position", "split", "data")[len(rewards):].iterator(chunk_size=2000)
        for chunk in _chunks(rows, CHECK_CHUNK if deadline is None else CHECK_CHUNK // 8):
            left = None if deadline is None else deadline - monotonic()
            grades = check_references(spec, [data for _, _, _, data in chunk], time_budget=left, scope=scope)
            if deadline is not None and monotonic() >= deadline:
                # This chunk may hold grades cut short by the budget: the worker redoes it.
                return _check_hand_over(check, rewards=rewards, failing=failing, full=full)
            for (pk, position, split, data), grade in zip(chunk, grades, strict=True):
                rewards.append(round(grade.reward, 4))
                if grade.passed:
                    full += 1
                elif len(failing) < MAX_FAILING_LISTED:
                    failing.append({
                        "task": pk, "position": position, "split": split,
                        "prompt": prompt_text(data)[:200],
                        "reference": str(data.get("reference_answer", "(no reference_answer field)"))[:200],
                        "reward": round(grade.reward, 4), "error": grade.error,
                        "criteria": grade.criteria,
                    })
            GraderCheck.objects.filter(pk=check.pk).update(checked=len(rewards))
    except Exception as exc:  # grades never raise; this is the database or the machine
        log.exception("reference check %s failed", check.pk)
        GraderCheck.objects.filter(pk=check.pk).update(
            status=CheckStatus.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now())
    else:
        GraderCheck.objects.filter(pk=check.pk).update(
            status=CheckStatus.DONE, checked=len(rewards), total=len(rewards), full_marks=full,
            rewards=rewards, failing=failing, finished_at=timezone.now())
    check.refresh_from_db()
    return check


def _check_hand_over(check: GraderCheck, *, rewards: list, failing: list, full: int) -> GraderCheck:
    from .tasks import grader_check_task

    GraderCheck.objects.filter(pk=check.pk).update(
        status=CheckStatus.QUEUED, checked=len(rewards), rewards=rewards, failing=failing, full_marks=full)
    transaction.on_commit(lambda: grader_check_task.delay(check.pk))
    check.refresh_from_db()
    return check
