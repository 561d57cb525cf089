"""Writes for the pre-flight checks: record a request, and run it on a worker.

The checks themselves (reference answers, prompt lengths, the base model's first answers)
are the trainer's `trainer.preflight`; this module stores what it reports, phase by phase,
so the launch page can poll the row. The instant estimate is `selectors.run_estimate`.
"""

from __future__ import annotations

import logging

from django.db import transaction

from webapp.graders.judges import sync_judges
from webapp.graders.services import grading_scope
from webapp.projects.models import Project

from .models import PreflightStatus, RunPreflight
from .plan import RunPlan

log = logging.getLogger(__name__)


@transaction.atomic
def preflight_create(*, project: Project, user, plan: RunPlan) -> RunPreflight:
    """Record pre-flight checks of a planned run and queue them for a worker (queue `default`)."""
    from .tasks import preflight_task

    pre = RunPreflight.objects.create(project=project, created_by=user, dataset=plan.run.dataset,
                                      grader_spec=plan.run.grader_spec, config=plan.config.to_dict())
    transaction.on_commit(lambda: preflight_task.delay(pre.pk))
    return pre


def _save(pre: RunPreflight, **fields) -> None:
    for name, value in fields.items():
        setattr(pre, name, value)
    pre.save(update_fields=list(fields))


def preflight_execute(*, preflight_id: int) -> None:
    """Run `trainer.preflight` and store its results; a failure is stored, never raised (the
    launch page shows it and launching stays possible)."""
    from trainer import Tasks, TrainConfig, preflight

    from .selectors import task_rows

    pre = RunPreflight.objects.select_related("dataset").get(pk=preflight_id)
    sync_judges()
    results: dict = {}

    def progress(message: str, so_far: dict) -> None:
        results.update(so_far)
        _save(pre, status=PreflightStatus.RUNNING, progress=message, results=dict(results))

    try:
        rows = task_rows(dataset=pre.dataset)
        results = preflight(TrainConfig.from_dict(pre.config), Tasks(train=rows), pre.grader_spec,
                            on_progress=progress, scope=grading_scope(project_id=pre.project_id))
    except Exception as exc:  # shown on the launch page as it is
        log.exception("pre-flight %s failed", preflight_id)
        _save(pre, status=PreflightStatus.FAILED, progress="", results=results, error=f"{type(exc).__name__}: {exc}")
        return
    _save(pre, status=PreflightStatus.DONE, progress="", results=results)
