"""Writes for graders. A grader a run has used is frozen: editing it makes a new version."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from trainer.grading import GraderValidationError, validate_grader
from webapp.datasets.models import Dataset
from webapp.projects.models import Project

from .models import Grader


def grader_validate_spec(spec) -> dict:
    """The normalised grader JSON, or a ValidationError naming the field path."""
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


@transaction.atomic
def grader_update(
    *, grader: Grader, user, spec: dict, rubric: dict | None = None, name: str | None = None,
    description: str | None = None, dataset: Dataset | None = None,
) -> Grader:
    """Save changes; a locked grader (used by a run) gets a new version instead."""
    grader_validate_spec(spec)
    if dataset is not None and dataset.project_id != grader.project_id:
        raise ValidationError({"dataset": "The dataset belongs to another project."})
    if grader.is_locked:
        latest = grader.project.graders.filter(name=grader.name).order_by("-version").first()
        return Grader.objects.create(
            project=grader.project, name=(name or grader.name).strip()[:200], spec=spec, rubric=rubric,
            description=grader.description if description is None else description,
            dataset=dataset or grader.dataset, version=latest.version + 1, parent=grader, created_by=user,
        )
    grader.spec, grader.rubric = spec, rubric
    if name is not None and name.strip():
        grader.name = name.strip()[:200]
    if description is not None:
        grader.description = description
    if dataset is not None:
        grader.dataset = dataset
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
