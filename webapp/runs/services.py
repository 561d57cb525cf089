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
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from trainer.grading import GraderValidationError, validate_grader
from webapp.datasets.models import Dataset, Split
from webapp.datasets.selectors import dataset_split_counts
from webapp.datasets.services import dataset_lock
from webapp.graders.judges import sync_judges
from webapp.graders.models import Grader
from webapp.graders.services import grader_lock
from webapp.projects.models import Project

from .models import (
    FINISHED_STATUSES,
    LocalBaseModel,
    Run,
    RunCheckpoint,
    RunEvent,
    RunSample,
    RunStatus,
    SampleFeedback,
)

log = logging.getLogger(__name__)


class LaunchError(ValidationError):
    """A run that cannot start; `param` names the request field (OpenAI's error `param`)."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


# --- base models ---------------------------------------------------------------------------


def base_model_choices() -> list[tuple[str, str]]:
    """(value, label) for the launch form: the built-in models, then admin-registered folders."""
    from trainer.models import BUILTIN_MODELS

    choices = [(name, f"{name} (built in)") for name in BUILTIN_MODELS]
    choices += [(m.name, f"{m.name} ({m.path})") for m in LocalBaseModel.objects.all()]
    return choices


def base_model_resolve(name: str) -> str:
    """What the trainer loads for `name`: a built-in name or a registered folder's path."""
    from trainer.models import BUILTIN_MODELS

    if name in BUILTIN_MODELS:
        return name
    local = LocalBaseModel.objects.filter(name=name).first()
    if local is not None:
        return local.path
    available = ", ".join(v for v, _ in base_model_choices())
    raise LaunchError(f"Model {name!r} is not available here. Available: {available}.", param="model")


# --- launch --------------------------------------------------------------------------------


def task_rows(dataset: Dataset, split: str) -> list[dict]:
    return [t.data for t in dataset.tasks.filter(split=split).order_by("position").iterator(chunk_size=2000)]


def run_task_counts(run: Run) -> tuple[int, int]:
    """(training, validation) task counts, as `run_training_rows` would return them; no rows loaded."""
    counts = dataset_split_counts(dataset=run.dataset)
    if run.valid_dataset_id:
        return counts[Split.TRAIN], sum(dataset_split_counts(dataset=run.valid_dataset).values())
    return counts[Split.TRAIN], counts[Split.VALID]


def run_training_rows(run: Run) -> tuple[list[dict], list[dict]]:
    train = task_rows(run.dataset, Split.TRAIN)
    if run.valid_dataset_id:
        valid_ds = run.valid_dataset
        valid = task_rows(valid_ds, Split.TRAIN) + task_rows(valid_ds, Split.VALID)
    else:
        valid = task_rows(run.dataset, Split.VALID)
    return train, valid


def build_config(*, run: Run, n_train: int, n_valid: int, overrides: dict | None = None):
    from trainer.config import ConfigError, config_from_openai_hyperparameters

    try:
        return config_from_openai_hyperparameters(
            run.hyperparameters, base_model=base_model_resolve(run.base_model), n_train_tasks=n_train,
            n_valid_tasks=n_valid, seed=run.seed, output_dir=str(run_output_dir(run)), **(overrides or {}),
        )
    except ConfigError as exc:
        raise LaunchError(str(exc), param="hyperparameters") from None
    except TypeError as exc:  # an unknown advanced setting
        raise LaunchError(f"Unknown setting: {exc}", param="hyperparameters") from None


def run_output_dir(run: Run) -> Path:
    return settings.STUDIO_DATA_DIR / "runs" / run.pk


@transaction.atomic
def run_create(
    *, project: Project, user, dataset: Dataset, grader_spec: dict | None = None, grader: Grader | None = None,
    base_model: str, hyperparameters: dict | None = None, valid_dataset: Dataset | None = None,
    suffix: str = "", seed: int | None = None, metadata: dict | None = None, overrides: dict | None = None,
    training_file: str = "", validation_file: str = "",
) -> Run:
    """Validate everything, freeze the configuration, lock the inputs and queue the run."""
    for ds, param in ((dataset, "training_file"), (valid_dataset, "validation_file")):
        if ds is not None and ds.project_id != project.pk:
            raise LaunchError("That dataset belongs to another project.", param=param)
    if grader is not None:
        if grader.project_id != project.pk:
            raise LaunchError("That grader belongs to another project.", param="grader")
        grader_spec = grader.spec
    if grader_spec is None:
        raise LaunchError("A run needs a grader.", param="grader")
    sync_judges()
    try:
        validate_grader(grader_spec)
    except GraderValidationError as exc:
        raise LaunchError(f"Invalid grader: {exc}", param="method.reinforcement.grader") from None
    if len(suffix) > 64:
        raise LaunchError("suffix can be at most 64 characters.", param="suffix")

    run = Run(
        project=project, created_by=user, dataset=dataset, valid_dataset=valid_dataset, grader=grader,
        grader_spec=grader_spec, base_model=base_model, hyperparameters=dict(hyperparameters or {}),
        suffix=suffix, seed=seed if seed is not None else 42, metadata=metadata or {},
        training_file=training_file, validation_file=validation_file, status=RunStatus.VALIDATING_FILES,
    )
    n_train, n_valid = run_task_counts(run)
    if not n_train:
        raise LaunchError(f"The training dataset “{dataset.name}” has no training tasks.", param="training_file")
    config = build_config(run=run, n_train=n_train, n_valid=n_valid, overrides=overrides)
    run.config = config.to_dict()
    run.total_steps = config.total_steps(n_train)
    run.save(force_insert=True)
    _event(run, "info", f"Validated {n_train} training and {n_valid} validation tasks.")

    reason = f"used by run {run.pk}"
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


def run_execute(*, run_id: str) -> None:
    """Train. Called by the Celery task; every outcome ends in a final or paused status."""
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
        run.worker_hostname = getattr(getattr(current_task, "request", None), "hostname", "") or ""
        run.requested_action = ""
        run.save()
    _event(run, "info", f"Started on worker {run.worker_hostname or 'inline'}.")

    from trainer.config import TrainConfig

    hooks = DbHooks(run)
    sync_judges()
    try:
        config = TrainConfig.from_dict(run.config)
        train_rows, valid_rows = run_training_rows(run)
        with Heartbeat(run.pk, settings.STUDIO_HEARTBEAT_SECONDS):
            result = train(config, Tasks(train=train_rows, valid=valid_rows), run.grader_spec, hooks,
                           resume_from=run.resume_from or None)
    except Exception as exc:  # every failure becomes a readable error on the run
        hooks.flush()
        code = {"ModelLoadError": "model_load_error", "ConfigError": "invalid_config",
                "TaskError": "invalid_training_file"}.get(type(exc).__name__, "training_error")
        log.exception("run %s failed", run_id)
        _event(run, "error", f"Training failed: {exc}", traceback=traceback.format_exc(limit=8)[-4000:])
        run.refresh_from_db()
        _fail(run, code=code, message=str(exc) or type(exc).__name__)
        return
    hooks.flush()
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


def run_latest_checkpoint(run: Run) -> RunCheckpoint | None:
    for ckpt in run.checkpoints.order_by("-step"):
        if Path(ckpt.path).exists():
            return ckpt
    return None


@transaction.atomic
def run_resume(*, run: Run) -> Run:
    """Continue a paused run, or a failed one whose worker was lost, from its last checkpoint."""
    run = Run.objects.select_for_update().get(pk=run.pk)
    lost = run.status == RunStatus.FAILED and (run.error or {}).get("code") == "worker_lost"
    if run.status != RunStatus.PAUSED and not lost:
        _refuse(run, "resume")
    ckpt = run_latest_checkpoint(run)
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
    ckpt = run_latest_checkpoint(run)
    where = f" Resume continues from the checkpoint at step {ckpt.step}." if ckpt else ""
    _fail(run, code="worker_lost", message=f"worker lost: {why}.{where}")


def _heartbeat_limit():
    return timezone.now() - timedelta(seconds=settings.STUDIO_WORKER_LOST_SECONDS)


def _is_stale(run: Run, limit) -> bool:
    return run.status == RunStatus.RUNNING and not (run.heartbeat_at and run.heartbeat_at >= limit)


def run_detect_lost(*, run: Run) -> bool:
    """Fail a running run whose worker stopped heart-beating. Called on reads, so the usual
    case (a fresh heartbeat, or a run that is not running) costs nothing and takes no lock."""
    limit = _heartbeat_limit()
    if not _is_stale(run, limit):
        return False
    with transaction.atomic():
        run = Run.objects.select_for_update().get(pk=run.pk)
        if not _is_stale(run, limit):  # a beat arrived meanwhile
            return False
        since = run.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S UTC") if run.heartbeat_at else "its start"
        _mark_lost(run, f"no heartbeat from {run.worker_hostname or 'the worker'} since {since}")
    return True


def runs_detect_lost(*, runs) -> int:
    """Check only the stale candidates among `runs` (one query, usually empty)."""
    limit = _heartbeat_limit()
    stale = runs.filter(status=RunStatus.RUNNING).exclude(heartbeat_at__gte=limit)
    return sum(run_detect_lost(run=run) for run in stale)


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
