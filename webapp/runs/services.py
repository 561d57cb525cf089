"""Writes for runs: launch, execute (in the worker), cancel / pause / resume, worker loss.

Statuses are OpenAI's. The life of a run:

    validating_files ─► queued ─► running ─► succeeded | failed | cancelled
                                     │  ▲
                              pause  ▼  │ resume (from the pause checkpoint)
                                   paused
    a worker that stops heart-beating: running ─► failed ("worker lost"), resumable
"""

from __future__ import annotations

import logging
import traceback
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from webapp.datasets.models import Dataset
from webapp.datasets.services import dataset_lock
from webapp.graders.judges import sync_judges
from webapp.graders.models import Grader
from webapp.graders.services import grader_lock
from webapp.projects.models import Project

from .models import FINISHED_STATUSES, Run, RunEvent, RunSample, RunStatus, SampleFeedback
from .plan import run_plan
from .selectors import run_latest_checkpoint, run_training_rows

log = logging.getLogger(__name__)


# --- launch --------------------------------------------------------------------------------


@transaction.atomic
def run_create(
    *, project: Project, user, dataset: Dataset, grader_spec: dict | None = None, grader: Grader | None = None,
    base_model: str, hyperparameters: dict | None = None, valid_dataset: Dataset | None = None,
    suffix: str = "", seed: int | None = None, metadata: dict | None = None, overrides: dict | None = None,
    training_file: str = "", validation_file: str = "", device: str | None = None,
) -> Run:
    """Validate everything (`run_plan`), freeze the configuration, lock the inputs and queue the run."""
    plan = run_plan(
        project=project, user=user, dataset=dataset, grader_spec=grader_spec, grader=grader,
        base_model=base_model, hyperparameters=hyperparameters, valid_dataset=valid_dataset, suffix=suffix,
        seed=seed, metadata=metadata, overrides=overrides, training_file=training_file,
        validation_file=validation_file, device=device,
    )
    run = plan.run
    run.save(force_insert=True)
    _event(run, "info", f"Validated {plan.n_train} training and {plan.n_valid} validation tasks.")

    # Said on the dataset and grader pages: the run's name when it has one, and its id (the API's).
    when = timezone.localtime(run.created_at)
    named = f"“{run.suffix}”" if run.suffix else f"launched {when:%-d %b %H:%M}"
    reason = f"used by run {named} ({run.pk})"
    for ds in filter(None, (dataset, valid_dataset)):
        dataset_lock(dataset=ds, reason=reason)
    if grader is not None:
        grader_lock(grader=grader, reason=reason)
    _enqueue(run)
    return run


def _event(run: Run, level: str, message: str, **data) -> None:
    RunEvent.objects.create(run=run, level=level, message=message, data=data)


def _enqueue(run: Run) -> None:
    from .tasks import run_train_task

    run.status = RunStatus.QUEUED
    run.save(update_fields=["status"])
    _event(run, "info", "Run queued; waiting for a training worker.")
    transaction.on_commit(lambda: run_train_task.apply_async(args=[run.pk], queue="training"))


# --- execution (in the worker) -------------------------------------------------------------


def run_execute(*, run_id: str, worker_hostname: str = "") -> None:
    """Train. Called by the Celery task (or torchrun's process 0, which names the Celery worker
    that started it); every outcome ends in a final or paused status."""
    from trainer import Tasks, train

    from .hooks import DbHooks, Heartbeat

    with transaction.atomic():
        run = Run.objects.select_for_update().filter(pk=run_id).first()
        if run is None:
            log.warning("run %s no longer exists: nothing to do", run_id)
            return
        if run.status != RunStatus.QUEUED:
            log.info("run %s is %s, not queued: nothing to do", run_id, run.status)
            return
        if run.requested_action == "cancel":
            _finish(run, RunStatus.CANCELLED, "Cancelled before it started.")
            return
        from celery import current_task

        run.status, run.started_at = RunStatus.RUNNING, run.started_at or timezone.now()
        run.heartbeat_at = timezone.now()
        run.worker_hostname = worker_hostname or getattr(getattr(current_task, "request", None), "hostname", "") or ""
        run.requested_action = ""
        run.save()
    _event(run, "info", f"Started on worker {run.worker_hostname or 'inline'}.")

    from .distributed import run_train_config

    hooks = DbHooks(run)
    sync_judges()
    try:
        config = run_train_config(run)  # the worker's STUDIO_SHARDING applied
        train_rows, valid_rows = run_training_rows(run=run)
        with Heartbeat(run.pk, settings.STUDIO_HEARTBEAT_SECONDS):
            result = train(config, Tasks(train=train_rows, valid=valid_rows), run.grader_spec, hooks,
                           resume_from=run.resume_from or None)
    except Exception as exc:  # every failure becomes a readable error on the run
        hooks.flush()
        hooks.diagnose()
        code = {"ModelLoadError": "model_load_error", "ConfigError": "invalid_config",
                "TaskError": "invalid_training_file"}.get(type(exc).__name__, "training_error")
        log.exception("run %s failed", run_id)
        _event(run, "error", f"Training failed: {exc}", traceback=traceback.format_exc(limit=8)[-4000:])
        run.refresh_from_db()
        _fail(run, code=code, message=str(exc) or type(exc).__name__)
        return
    hooks.flush()
    hooks.diagnose()
    run.refresh_from_db()
    if result.status == "paused":
        run.status, run.requested_action = RunStatus.PAUSED, ""
        run.save(update_fields=["status", "requested_action"])
        _event(run, "info", f"Paused at step {result.step}; resume continues from its checkpoint.")
    elif result.status == "cancelled":
        _finish(run, RunStatus.CANCELLED, f"Cancelled at step {result.step}.")
    else:
        suffix = f":{run.suffix}" if run.suffix else ""
        run.fine_tuned_model = f"ft:{run.base_model}{suffix}:{run.pk}"
        _finish(run, RunStatus.SUCCEEDED, f"Finished {result.step} steps.")
        _after_success(run)


def _after_success(run: Run) -> None:
    """Queue the before/after evaluations (base model vs best checkpoint); never fails the run."""
    from webapp.evals.services import run_evaluations_create

    try:
        run_evaluations_create(run=run)
    except Exception as exc:  # noqa: BLE001 - the run itself succeeded
        log.exception("run %s: queueing its evaluations failed", run.pk)
        _event(run, "warning", f"Could not queue the before/after evaluation: {exc}")


def _finish(run: Run, status: str, message: str) -> None:
    run.status, run.finished_at, run.requested_action = status, timezone.now(), ""
    run.estimated_finish = None
    run.save()
    _event(run, "info", message)


def _fail(run: Run, *, code: str, message: str) -> None:
    run.error = {"code": code, "message": message, "param": None}
    _finish(run, RunStatus.FAILED, f"Failed: {message}")


# --- control ---------------------------------------------------------------------------------


def _refuse(run: Run, action: str) -> None:
    raise ValidationError(f"Cannot {action} a run that is {run.get_status_display().lower()}.")


@transaction.atomic
def run_cancel(*, run: Run) -> Run:
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status in FINISHED_STATUSES:
        _refuse(run, "cancel")
    if run.status == RunStatus.RUNNING:
        run.requested_action = "cancel"  # the worker stops before its next step
        run.save(update_fields=["requested_action"])
        _event(run, "info", "Cancel requested; the worker stops before the next step.")
    else:
        _finish(run, RunStatus.CANCELLED, "Cancelled.")
    return run


@transaction.atomic
def run_pause(*, run: Run) -> Run:
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.status == RunStatus.RUNNING:
        run.requested_action = "pause"
        run.save(update_fields=["requested_action"])
        _event(run, "info", "Pause requested; the worker saves a checkpoint and stops.")
    elif run.status in (RunStatus.QUEUED, RunStatus.VALIDATING_FILES):
        run.status, run.requested_action = RunStatus.PAUSED, ""
        run.save(update_fields=["status", "requested_action"])
        _event(run, "info", "Paused before it started.")
    else:
        _refuse(run, "pause")
    return run


@transaction.atomic
def run_resume(*, run: Run) -> Run:
    """Continue a paused run, or a failed one whose worker was lost, from its last checkpoint."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    lost = run.status == RunStatus.FAILED and (run.error or {}).get("code") == "worker_lost"
    if run.status != RunStatus.PAUSED and not lost:
        _refuse(run, "resume")
    ckpt = run_latest_checkpoint(run=run)
    run.resume_from = ckpt.path if ckpt else ""
    # Steps after the checkpoint will be trained again: drop what the interrupted attempt wrote.
    after = ckpt.step if ckpt else 0
    run.metrics.filter(step__gt=after).delete()
    run.samples.filter(step__gt=after).delete()
    run.current_step = after
    run.error, run.finished_at, run.requested_action = None, None, ""
    run.save()
    _event(run, "info", f"Resuming from the checkpoint at step {ckpt.step}." if ckpt
           else "Resuming from the start (no checkpoint was saved yet).")
    _enqueue(run)
    return run


# --- worker loss -----------------------------------------------------------------------------


def _mark_lost(run: Run, why: str) -> None:
    ckpt = run_latest_checkpoint(run=run)
    where = f" Resume continues from the checkpoint at step {ckpt.step}." if ckpt else ""
    log.warning("run %s: worker lost (%s)", run.pk, why)
    _fail(run, code="worker_lost", message=f"worker lost: {why}.{where}")


def _is_stale(run: Run, limit) -> bool:
    return run.status == RunStatus.RUNNING and not (run.heartbeat_at and run.heartbeat_at >= limit)


def runs_detect_lost() -> int:
    """Fail every running run whose worker stopped heart-beating; returns how many.

    Runs periodically (Celery beat: `runs_detect_lost_task` every `STUDIO_LOST_CHECK_SECONDS`),
    never on a read. Each candidate is re-checked under its row lock, so a heartbeat that
    arrives in the meantime wins.
    """
    limit = timezone.now() - timedelta(seconds=settings.STUDIO_WORKER_LOST_SECONDS)
    candidates = (Run.objects.filter(status=RunStatus.RUNNING).exclude(heartbeat_at__gte=limit)
                  .values_list("pk", flat=True))
    lost = 0
    for pk in list(candidates):
        with transaction.atomic():
            run = Run.objects.select_for_update().get(pk=pk)
            if not _is_stale(run, limit):
                continue
            since = run.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S UTC") if run.heartbeat_at else "its start"
            _mark_lost(run, f"no heartbeat from {run.worker_hostname or 'the worker'} since {since}")
            lost += 1
    return lost


@transaction.atomic
def run_reap_lost_on_worker_start(*, hostname: str) -> int:
    """A worker that starts runs nothing yet: runs it had were interrupted (killed, rebooted)."""
    runs = list(Run.objects.select_for_update().filter(status=RunStatus.RUNNING, worker_hostname=hostname))
    for run in runs:
        _mark_lost(run, f"worker {hostname} restarted while the run was going")
    return len(runs)


# --- review ----------------------------------------------------------------------------------


@transaction.atomic
def sample_feedback_create(*, sample: RunSample, user, criterion: str = "", comment: str = "") -> SampleFeedback:
    """An expert marks a graded sample “the grader was wrong”, optionally for one criterion."""
    criterion = criterion.strip()
    if criterion and criterion not in (sample.sub_rewards or {}):
        raise ValidationError({"criterion": f"This sample has no criterion called “{criterion}”."})
    return SampleFeedback.objects.create(sample=sample, user=user, criterion=criterion, comment=comment.strip()[:5000])


def sample_feedback_delete(*, feedback: SampleFeedback, user, may_remove_others: bool) -> None:
    """Undo a “grader was wrong” flag. Its author may; others only with `may_remove_others`
    (project editors, who curate the reviews). Anyone else gets PermissionDenied (a 403)."""
    if feedback.user_id != getattr(user, "pk", None) and not may_remove_others:
        raise PermissionDenied("Only the person who flagged this sample, or an editor, can take the flag back.")
    feedback.delete()
