"""Writes for evaluations: create (and queue), execute on a worker, cancel, and the two
evaluations every finished run gets (its base model and its best checkpoint, same settings).

Model work is the trainer's (`trainer.evaluation.evaluate`, the training loop's sampler and
grading); this module stores what it reports, a task at a time, so pages can show progress.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from webapp.datasets.models import Dataset, Split
from webapp.graders.judges import sync_judges
from webapp.graders.models import Grader
from webapp.graders.services import grader_validate_spec, grading_scope
from webapp.projects.models import Project
from webapp.runs.hooks import task_key
from webapp.runs.models import Run, RunEvent

from .models import EvalItem, EvalPurpose, EvalStatus, Evaluation
from .selectors import evaluation_task_rows, model_resolve, run_best_checkpoint

log = logging.getLogger(__name__)

MAX_EVAL_TASKS = 5000
SAMPLING_FIELDS = ("temperature", "top_p", "max_completion_tokens", "max_prompt_tokens", "n_samples", "seed")


def sampling_clean(sampling: dict | None) -> dict:
    """Checked sampling settings (the trainer's `SamplingSettings`); a ValidationError names the field."""
    from trainer.evaluation import SamplingSettings

    sampling = dict(sampling or {})
    unknown = sorted(set(sampling) - set(SAMPLING_FIELDS))
    if unknown:
        raise ValidationError({"sampling": f"Unknown sampling setting {unknown[0]!r}; "
                                           f"known: {', '.join(SAMPLING_FIELDS)}."})
    types = {"temperature": float, "top_p": float, "max_completion_tokens": int, "max_prompt_tokens": int,
             "n_samples": int, "seed": int}
    for name, value in sampling.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or (types[name] is int and value != int(value)):
            raise ValidationError({name: f"{name} must be a {'whole ' if types[name] is int else ''}number."})
        sampling[name] = types[name](value)
    try:
        SamplingSettings(**sampling)
    except ValueError as exc:
        field = next((f for f in SAMPLING_FIELDS if str(exc).startswith(f)), "sampling")
        raise ValidationError({field: str(exc)}) from None
    return sampling


@transaction.atomic
def evaluation_create(
    *, project: Project, user, model_name: str, dataset: Dataset, split: str = Split.VALID,
    grader: Grader | None = None, grader_spec: dict | None = None, sampling: dict | None = None,
    name: str = "", purpose: str = EvalPurpose.MANUAL, run: Run | None = None, metadata: dict | None = None,
) -> Evaluation:
    """Validate, record and queue an evaluation of one model on one task set with one grader."""
    ref = model_resolve(project=project, name=model_name)
    if ref is None:
        raise ValidationError({"model": f"No model {model_name!r} in this project: pick a base model, a "
                                        "succeeded run's trained model or one of its checkpoints."})
    if dataset.project_id != project.pk:
        raise ValidationError({"dataset": "The dataset belongs to another project."})
    if split not in ("train", "valid", "all"):
        raise ValidationError({"split": "split must be train, valid or all."})
    if grader is not None:
        if grader.project_id != project.pk:
            raise ValidationError({"grader": "The grader belongs to another project."})
        grader_spec = grader.spec
    if not grader_spec:
        raise ValidationError({"grader": "Pick a grader."})
    grader_spec = grader_validate_spec(grader_spec)
    sampling = sampling_clean(sampling)
    n = len(evaluation_task_rows(dataset=dataset, split=split))
    if n == 0:
        where = {"train": "training split", "valid": "validation split", "all": "dataset"}[split]
        raise ValidationError({"split": f"The {where} of {dataset.name} has no tasks to evaluate on."})
    if n > MAX_EVAL_TASKS:
        raise ValidationError({"split": f"{n} tasks is more than the {MAX_EVAL_TASKS} an evaluation takes."})
    evaluation = Evaluation.objects.create(
        project=project, name=name.strip()[:200], purpose=purpose, model_name=ref.name, base_model=ref.base_model,
        run=run or ref.run, checkpoint=ref.checkpoint, checkpoint_step=ref.checkpoint.step if ref.checkpoint else None,
        checkpoint_path=ref.checkpoint.path if ref.checkpoint else "", dataset=dataset, split=split,
        grader=grader, grader_spec=grader_spec, sampling=sampling, metadata=metadata or {},
        total_items=n, created_by=user,
    )
    _enqueue(evaluation)
    return evaluation


def _enqueue(evaluation: Evaluation) -> None:
    from .tasks import evaluation_task

    pk = evaluation.pk
    transaction.on_commit(lambda: evaluation_task.apply_async(args=[pk], queue=settings.STUDIO_EVAL_QUEUE))


@transaction.atomic
def evaluation_cancel(*, evaluation: Evaluation) -> Evaluation:
    evaluation = Evaluation.objects.select_for_update().get(pk=evaluation.pk)
    if evaluation.status == EvalStatus.QUEUED:
        evaluation.status, evaluation.finished_at = EvalStatus.CANCELED, timezone.now()
        evaluation.save(update_fields=["status", "finished_at"])
    elif evaluation.status == EvalStatus.IN_PROGRESS:
        evaluation.requested_cancel = True  # the worker stops before its next batch
        evaluation.save(update_fields=["requested_cancel"])
    else:
        raise ValidationError(f"Cannot cancel an evaluation that is {evaluation.get_status_display().lower()}.")
    return evaluation


# --- execution (in the worker) -----------------------------------------------------------------


def _item_row(evaluation: Evaluation, task_id: int, row: dict, result) -> EvalItem:
    from trainer.hooks import clean_json

    first = result.samples[0]
    return EvalItem(
        evaluation=evaluation, index=result.index, task_key=task_key(row["messages"]), task_id=task_id,
        prompt=clean_json(row["messages"]), item=clean_json({k: v for k, v in row.items() if k != "messages"}),
        samples=clean_json([{**s, "output_text": s["output_text"][:100_000]} for s in result.samples]),
        output_text=first["output_text"][:100_000], reward=result.reward, sub_rewards=clean_json(result.sub_rewards),
        errors=clean_json(first["errors"] or {}), has_error=any(s["has_error"] for s in result.samples),
        passed=any(s["reward"] >= 1.0 - 1e-9 for s in result.samples), prompt_tokens=result.prompt_tokens,
        completion_tokens=sum(s["completion_tokens"] for s in result.samples),
    )


def evaluation_claim(*, evaluation_id: str, progress: str) -> Evaluation | None:
    """Mark a queued evaluation in progress on this worker; None when it is not queued (gone,
    canceled, or taken by another delivery of the task)."""
    with transaction.atomic():
        evaluation = Evaluation.objects.select_for_update().filter(pk=evaluation_id).first()
        if evaluation is None or evaluation.status != EvalStatus.QUEUED:
            log.info("evaluation %s is not queued: nothing to do", evaluation_id)
            return None
        from celery import current_task

        evaluation.status, evaluation.started_at = EvalStatus.IN_PROGRESS, timezone.now()
        evaluation.worker_hostname = getattr(getattr(current_task, "request", None), "hostname", "") or ""
        evaluation.progress = progress
        evaluation.save()
    return evaluation


def evaluation_execute(*, evaluation_id: str, flush_seconds: float = 1.0) -> None:
    """Answer and grade every task; every outcome ends in completed, failed or canceled."""
    from trainer.evaluation import SamplingSettings, evaluate, load_for_inference

    evaluation = evaluation_claim(evaluation_id=evaluation_id, progress="Loading the model…")
    if evaluation is None:
        return
    sync_judges()
    EvalItem.objects.filter(evaluation=evaluation).delete()  # a retried task starts clean
    buffer: list[EvalItem] = []
    last_flush = [time.monotonic()]

    def flush() -> None:
        if buffer:
            EvalItem.objects.bulk_create(buffer)
            done = evaluation.items.count()
            Evaluation.objects.filter(pk=evaluation.pk).update(
                done_items=done, progress=f"Answered and graded {done} of {evaluation.total_items} tasks")
            buffer.clear()
        last_flush[0] = time.monotonic()

    try:
        pairs = evaluation_task_rows(dataset=evaluation.dataset, split=evaluation.split)
        if not pairs:
            raise ValueError("the task set has no tasks (was the dataset emptied?)")
        rows = [row for _, row in pairs]
        model = load_for_inference(evaluation.base_model, evaluation.checkpoint_path or None)
        Evaluation.objects.filter(pk=evaluation.pk).update(progress=f"Answering {len(rows)} tasks…",
                                                           total_items=len(rows))

        def on_item(result) -> None:
            buffer.append(_item_row(evaluation, pairs[result.index][0], rows[result.index], result))
            if time.monotonic() - last_flush[0] >= flush_seconds:
                flush()

        def should_stop() -> bool:
            flush()
            return Evaluation.objects.filter(pk=evaluation.pk, requested_cancel=True).exists()

        evaluate(model, rows, evaluation.grader_spec, SamplingSettings(**evaluation.sampling),
                 scope=grading_scope(project_id=evaluation.project_id), on_item=on_item, should_stop=should_stop)
        flush()
    except Exception as exc:  # every failure becomes a readable error on the evaluation
        log.exception("evaluation %s failed", evaluation_id)
        buffer.clear()
        Evaluation.objects.filter(pk=evaluation.pk).update(
            status=EvalStatus.FAILED, error=f"{type(exc).__name__}: {exc}"[:5000], progress="",
            finished_at=timezone.now())
        _run_event(evaluation, "error", f"Evaluation of {evaluation.model_name} failed: {exc}")
        return
    evaluation_summarise(evaluation=evaluation)


def evaluation_summarise(*, evaluation: Evaluation) -> Evaluation:
    """Write the summary numbers from the items; completed, or canceled when it stopped early."""
    evaluation.refresh_from_db()
    # only the numbers: the answers and prompts (up to 100,000 characters each) stay in the database
    items = list(evaluation.items.only("reward", "passed", "sub_rewards", "has_error", "prompt_tokens",
                                       "completion_tokens"))
    names = sorted({k for i in items for k in i.sub_rewards})
    n = len(items)
    evaluation.done_items = n
    evaluation.reward_mean = sum(i.reward for i in items) / n if n else None
    evaluation.pass_rate = sum(i.passed for i in items) / n if n else None
    evaluation.criteria_means = {k: sum(i.sub_rewards.get(k, 0.0) for i in items) / n for k in names} if n else {}
    evaluation.error_items = sum(i.has_error for i in items)
    evaluation.prompt_tokens = sum(i.prompt_tokens * evaluation.n_samples for i in items)
    evaluation.completion_tokens = sum(i.completion_tokens for i in items)
    stopped = evaluation.requested_cancel and n < evaluation.total_items
    evaluation.status = EvalStatus.CANCELED if stopped else EvalStatus.COMPLETED
    evaluation.progress, evaluation.finished_at = "", timezone.now()
    evaluation.save()
    if evaluation.status == EvalStatus.COMPLETED and evaluation.purpose != EvalPurpose.MANUAL:
        _run_event(evaluation, "info", f"Evaluated {evaluation.model_name} on {n} validation tasks: "
                                       f"mean reward {evaluation.reward_mean:.3f}.")
    return evaluation


def _run_event(evaluation: Evaluation, level: str, message: str) -> None:
    if evaluation.run_id:
        RunEvent.objects.create(run_id=evaluation.run_id, level=level, message=message[:10000],
                                data={"evaluation": evaluation.pk})


# --- after a run -------------------------------------------------------------------------------


def run_sampling(run: Run) -> dict:
    """The run's own validation settings: greedy like its validation, same lengths and seed."""
    config = run.config or {}
    sampling = {"temperature": float(config.get("eval_temperature", 0.0)), "n_samples": 1,
                "seed": int(config.get("seed", run.seed or 0)) % (2**63 - 1)}
    for key in ("top_p", "max_completion_tokens", "max_prompt_tokens"):
        if isinstance(config.get(key), int | float) and not isinstance(config.get(key), bool):
            sampling[key] = config[key]
    return sampling


@transaction.atomic
def run_evaluations_create(*, run: Run) -> list[Evaluation]:
    """Evaluate a finished run's base model and its best checkpoint on its validation tasks with
    its grader and the same settings. Nothing when it has no validation tasks or no checkpoint."""
    best = run_best_checkpoint(run=run)
    if run.valid_dataset_id:
        dataset, split = run.valid_dataset, "all"
    else:
        dataset, split = run.dataset, Split.VALID
    if best is None or not evaluation_task_rows(dataset=dataset, split=split):
        RunEvent.objects.create(run=run, level="info", message="No before/after evaluation: the run has "
                                "no validation tasks or no checkpoint.")
        return []
    from .selectors import checkpoint_name

    sampling = sampling_clean(run_sampling(run))
    common = {"project": run.project, "user": run.created_by, "dataset": dataset, "split": split,
              "grader_spec": run.grader_spec, "sampling": sampling, "run": run}
    base = evaluation_create(model_name=run.base_model, purpose=EvalPurpose.RUN_BASE,
                             name=f"{run.suffix or run.pk}: base model", **common)
    trained = evaluation_create(model_name=checkpoint_name(run, best.step), purpose=EvalPurpose.RUN_TRAINED,
                                name=f"{run.suffix or run.pk}: trained (step {best.step})", **common)
    from .exports import export_merged_request

    export_merged_request(checkpoint=best)  # the complete model: downloads and the chat engine load it
    RunEvent.objects.create(run=run, level="info", message=f"Queued evaluations of the base model and the best "
                            f"checkpoint (step {best.step}) on {base.total_items} validation tasks.")
    return [base, trained]
