"""Writes for grader calibration: add answers to review, record expert scores, re-score.

Grading goes through the grading engine (`trainer.grading.run_grader`) with the project's
sandbox scope, so a python criterion runs only in the sandbox, as everywhere else.
"""

from __future__ import annotations

import logging
import math
from time import monotonic

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from webapp.datasets.models import Task
from webapp.graders.judges import sync_judges
from webapp.graders.models import Grader
from webapp.graders.services import grader_needs_worker, grading_scope
from webapp.runs.hooks import task_key
from webapp.runs.models import Run, RunSample

from .models import GraderSpecSeen, ItemGrade, Rescore, RescoreStatus, Review, ReviewItem, Source
from .selectors import family_flags, grader_criteria, item_hash, spec_hash

log = logging.getLogger(__name__)

MAX_ADD = 200  # answers added to a queue at once
MAX_OUTPUT_CHARS = 100_000
INLINE_RESCORE_SECONDS = 5.0
MAX_NOTE_CHARS = 5000
MAX_ITEM_CHARS = 1_000_000  # a task's reference fields, as JSON
MAX_ITEM_DEPTH = 20


def _depth(value, limit: int) -> int:
    """How deeply lists and objects nest in `value` (stops counting past `limit`)."""
    stack, deepest = [(value, 1)], 0
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict | list):
            deepest = max(deepest, d)
            if deepest > limit:
                return deepest
            stack.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def _check_item(data: dict) -> None:
    import json

    if _depth(data, MAX_ITEM_DEPTH) > MAX_ITEM_DEPTH:
        raise ValidationError({"item": f"The task nests lists and objects more than {MAX_ITEM_DEPTH} levels deep."})
    if len(json.dumps(data, ensure_ascii=False)) > MAX_ITEM_CHARS:
        raise ValidationError({"item": f"The task is larger than {MAX_ITEM_CHARS:,} characters."})


# --- answers to review -----------------------------------------------------------------------


def _task_index(dataset) -> dict[str, int]:
    """task_key(messages) -> task pk, to link a run's answer to the task whose reference it used."""
    if dataset is None:
        return {}
    return {task_key(data.get("messages") or []): pk
            for pk, data in Task.objects.filter(dataset=dataset).values_list("pk", "data").iterator(chunk_size=2000)}


def _seen(grader_like_spec: dict, *, project, grader_name: str, label: str) -> None:
    GraderSpecSeen.objects.get_or_create(project=project, grader_name=grader_name, spec_hash=spec_hash(grader_like_spec),
                                         defaults={"spec": grader_like_spec, "label": label[:250]})


def _item_from_sample(*, grader: Grader, sample: RunSample, source: str, user, tasks: dict[str, int]) -> ReviewItem:
    item, created = ReviewItem.objects.get_or_create(
        project=grader.project, grader_name=grader.name, sample=sample,
        defaults={"source": source, "dataset": sample.run.dataset, "task_id": tasks.get(sample.task_key),
                  "prompt": sample.prompt, "item": sample.item, "output_text": sample.output_text, "created_by": user})
    if created:  # what the run's grader gave it is that spec's grade
        ItemGrade.objects.get_or_create(item=item, spec_hash=spec_hash(sample.run.grader_spec), defaults={
            "item_hash": item_hash(item.output_text, item.item), "reward": sample.reward,
            "sub_rewards": sample.sub_rewards or {}})
        _seen(sample.run.grader_spec, project=grader.project, grader_name=grader.name,
              label=f"as run {sample.run.suffix or sample.run.pk} graded")
    return item


@transaction.atomic
def review_items_add_from_run(*, grader: Grader, run: Run, count: int, user, split: str = "") -> list[ReviewItem]:
    """Add up to `count` of a run's answers, spread over its steps and tasks (new ones only)."""
    if run.project_id != grader.project_id:
        raise ValidationError({"run": "That run belongs to another project."})
    if not 1 <= count <= MAX_ADD:
        raise ValidationError({"count": f"Add between 1 and {MAX_ADD} answers at a time."})
    taken = set(ReviewItem.objects.filter(project=grader.project, grader_name=grader.name, sample__run=run)
                .values_list("sample_id", flat=True))
    samples = run.samples.order_by("step", "pk")
    if split:
        samples = samples.filter(split=split)
    candidates = [s for s in samples.only("pk", "task_key", "step") if s.pk not in taken]
    if not candidates:
        raise ValidationError({"run": "This run has no answers left that are not already in the review queue."})
    # One answer per task first (spread over the run), then more answers, evenly spaced.
    first_per_task: dict[str, RunSample] = {}
    rest = []
    for s in candidates:
        if s.task_key in first_per_task:
            rest.append(s)
        else:
            first_per_task[s.task_key] = s
    firsts = list(first_per_task.values())
    picked = _evenly(firsts, count) if len(firsts) >= count else firsts + _evenly(rest, count - len(firsts))
    picked_ids = [s.pk for s in picked]
    tasks = _task_index(run.dataset)
    return [_item_from_sample(grader=grader, sample=s, source=Source.RUN_SAMPLE, user=user, tasks=tasks)
            for s in RunSample.objects.filter(pk__in=picked_ids).select_related("run__dataset").order_by("pk")]


def _evenly(seq: list, k: int) -> list:
    return list(seq) if len(seq) <= k else [seq[i * len(seq) // k] for i in range(k)]


def _grade(grader: Grader, item: ReviewItem, *, time_budget: float | None = None) -> ItemGrade:
    from trainer.grading import run_grader

    result = run_grader(grader.spec, item.output_text, item.item, time_budget=time_budget,
                        scope=grading_scope(project_id=grader.project_id))
    h = spec_hash(grader.spec)
    grade, _ = ItemGrade.objects.update_or_create(item=item, spec_hash=h, defaults={
        "item_hash": item_hash(item.output_text, item.item), "reward": result.reward,
        "sub_rewards": dict(result.sub_rewards or {}), "error": result.error_message or ""})
    return grade


def _version_label(grader: Grader) -> str:
    return f"v{grader.version}, {timezone.localtime().strftime('%Y-%m-%d %H:%M')}"


@transaction.atomic
def review_item_add_answer(*, grader: Grader, output_text: str, user, task: Task | None = None,
                           item: dict | None = None, source: str = Source.PASTED) -> ReviewItem:
    """Add one answer (pasted, or sampled from the base model) to a task, graded at once."""
    if not isinstance(output_text, str) or (source == Source.PASTED and not output_text.strip()):
        raise ValidationError({"output_text": "Paste the answer to review."})
    if len(output_text) > MAX_OUTPUT_CHARS:
        raise ValidationError({"output_text": f"The answer is longer than {MAX_OUTPUT_CHARS:,} characters."})
    if task is not None:
        if task.dataset.project_id != grader.project_id:
            raise ValidationError({"task": "That task belongs to another project."})
        data = task.data
    elif isinstance(item, dict):
        _check_item(item)
        data = item
    else:
        raise ValidationError({"item": "Choose the task the answer is for."})
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValidationError({"item.messages": "The task needs its chat messages (a list ending with the user's)."})
    row = ReviewItem.objects.create(
        project=grader.project, grader_name=grader.name, source=source, dataset=task.dataset if task else None,
        task=task, prompt=messages, item={k: v for k, v in data.items() if k != "messages"},
        output_text=output_text, created_by=user)
    sync_judges()
    _grade(grader, row, time_budget=settings.STUDIO_GRADE_REQUEST_SECONDS)
    _seen(grader.spec, project=grader.project, grader_name=grader.name, label=_version_label(grader))
    return row


@transaction.atomic
def review_item_from_sample(*, grader: Grader, sample: RunSample, user) -> ReviewItem:
    if sample.run.project_id != grader.project_id:
        raise ValidationError({"sample_id": "That sample belongs to another project."})
    return _item_from_sample(grader=grader, sample=sample, source=Source.RUN_SAMPLE, user=user,
                             tasks=_task_index(sample.run.dataset))


def _task_of_eval_item(eval_item, project_id: int) -> Task | None:
    """The dataset task an evaluation answered, while it still exists in the project."""
    if not eval_item.task_id:
        return None
    return Task.objects.select_related("dataset").filter(pk=eval_item.task_id, dataset__project_id=project_id).first()


def _item_from_eval_item(*, grader: Grader, eval_item, user) -> ReviewItem:
    """The evaluation's first answer to a task, as a review item (the one the pages show).
    What the evaluation's grader gave that answer is kept as that grader spec's grade."""
    evaluation = eval_item.evaluation
    task = _task_of_eval_item(eval_item, grader.project_id)
    item, created = ReviewItem.objects.get_or_create(
        project=grader.project, grader_name=grader.name, eval_item=eval_item,
        defaults={"source": Source.EVALUATION, "dataset": task.dataset if task else evaluation.dataset,
                  "task": task, "prompt": eval_item.prompt, "item": eval_item.item or {},
                  "output_text": eval_item.output_text, "created_by": user})
    if created and evaluation.grader_spec:
        first = (eval_item.samples or [{}])[0] if isinstance(eval_item.samples, list) else {}
        reward = first.get("reward", eval_item.reward) if isinstance(first, dict) else eval_item.reward
        sub = first.get("sub_rewards", eval_item.sub_rewards) if isinstance(first, dict) else eval_item.sub_rewards
        ItemGrade.objects.get_or_create(item=item, spec_hash=spec_hash(evaluation.grader_spec), defaults={
            "item_hash": item_hash(item.output_text, item.item), "reward": float(reward or 0.0),
            "sub_rewards": sub or {}})
        _seen(evaluation.grader_spec, project=grader.project, grader_name=grader.name,
              label=f"as evaluation {evaluation.name or evaluation.pk} graded")
    return item


@transaction.atomic
def review_item_from_eval_item(*, grader: Grader, eval_item, user) -> ReviewItem:
    """One evaluation task's answer into the grader's review queue (same project only)."""
    if eval_item.evaluation.project_id != grader.project_id:
        raise ValidationError({"eval_item_id": "That evaluation belongs to another project."})
    return _item_from_eval_item(grader=grader, eval_item=eval_item, user=user)


@transaction.atomic
def review_items_add_from_evaluation(*, grader: Grader, evaluation, count: int, user) -> list[ReviewItem]:
    """Add up to `count` of an evaluation's answers (one per task, spread over its tasks, new ones only)."""
    if evaluation.project_id != grader.project_id:
        raise ValidationError({"evaluation": "That evaluation belongs to another project."})
    if not 1 <= count <= MAX_ADD:
        raise ValidationError({"count": f"Add between 1 and {MAX_ADD} answers at a time."})
    taken = set(ReviewItem.objects.filter(project=grader.project, grader_name=grader.name,
                                          eval_item__evaluation=evaluation).values_list("eval_item_id", flat=True))
    candidates = [pk for pk in evaluation.items.order_by("index").values_list("pk", flat=True) if pk not in taken]
    if not candidates:
        raise ValidationError({"evaluation": "This evaluation has no answers left that are not already in the "
                                             "review queue."})
    picked = _evenly(candidates, count)
    items = evaluation.items.filter(pk__in=picked).select_related("evaluation").order_by("index")
    return [_item_from_eval_item(grader=grader, eval_item=it, user=user) for it in items]


# --- expert scores ---------------------------------------------------------------------------


def _score(value, criterion: str) -> float:
    what = f" for “{criterion}”" if criterion else ""
    problem = ValidationError({"score": f"Give a score from 0 to 1{what} (pass = 1, fail = 0); got {str(value)[:40]!r}."})
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise problem
    try:
        score = float(value)
    except (TypeError, ValueError):
        raise problem from None
    if not math.isfinite(score) or not 0 <= score <= 1:
        raise problem
    return score


@transaction.atomic
def review_save(*, item: ReviewItem, user, scores: dict[str, object], note: str = "",
                spec: dict | None = None) -> list[Review]:
    """Record (or change) an expert's scores for an answer, one per criterion key ('' = total)."""
    if not scores:
        raise ValidationError({"score": "Score at least one criterion."})
    if len(note or "") > MAX_NOTE_CHARS:
        raise ValidationError({"note": f"The note is longer than {MAX_NOTE_CHARS:,} characters."})
    known = {c["key"] for c in grader_criteria(spec)} | {""} if spec is not None else None
    saved = []
    for criterion, value in scores.items():
        if not isinstance(criterion, str) or len(criterion) > 200:
            raise ValidationError({"criterion": "A criterion is named by its key, a text of at most 200 characters."})
        if known is not None and criterion not in known:
            shown = criterion if len(criterion) <= 60 else criterion[:60] + "…"
            raise ValidationError({"criterion": f"The grader has no criterion “{shown}”."})
        score = _score(value, criterion)
        review, _ = Review.objects.update_or_create(item=item, user=user, criterion=criterion,
                                                    defaults={"score": score, "note": (note or "")[:MAX_NOTE_CHARS]})
        saved.append(review)
    return saved


# --- re-scoring after an edit ----------------------------------------------------------------


@transaction.atomic
def review_items_from_flags(*, grader: Grader, user=None) -> int:
    """Make each flagged sample of the grader's runs a review item, so new versions can score it."""
    made = 0
    flagged = family_flags(project=grader.project, grader_name=grader.name).values_list("sample_id", flat=True)
    have = set(ReviewItem.objects.filter(project=grader.project, grader_name=grader.name, sample_id__in=flagged)
               .values_list("sample_id", flat=True))
    indexes: dict[int, dict[str, int]] = {}
    for sample in RunSample.objects.filter(pk__in=set(flagged) - have).select_related("run__dataset"):
        tasks = indexes.setdefault(sample.run.dataset_id, _task_index(sample.run.dataset))
        try:
            with transaction.atomic():
                _item_from_sample(grader=grader, sample=sample, source=Source.FLAG, user=user, tasks=tasks)
                made += 1
        except IntegrityError:  # made meanwhile by another request
            pass
    return made


def _stale_items(grader: Grader) -> list[ReviewItem]:
    h = spec_hash(grader.spec)
    items = list(ReviewItem.objects.filter(project=grader.project, grader_name=grader.name).prefetch_related("grades"))
    tasks = dict(Task.objects.filter(pk__in={it.task_id for it in items if it.task_id}).values_list("pk", "data"))
    out = []
    for it in items:
        if it.task_id and it.source != Source.FLAG:  # an edited reference is graded as it is now
            data = tasks.get(it.task_id)
            if data is not None:
                fresh = {k: v for k, v in data.items() if k != "messages"}
                if fresh != it.item:
                    it.item = fresh
                    it.save(update_fields=["item"])
        current = item_hash(it.output_text, it.item)
        if not any(g.spec_hash == h and g.item_hash == current for g in it.grades.all()):
            out.append(it)
    return out


def rescore_start(*, grader: Grader, user) -> Rescore:
    """Score every reviewed answer with this grader version: right here for quick checks,
    on a worker (queue `default`) for python and AI-judge criteria."""
    review_items_from_flags(grader=grader, user=user)
    stale = _stale_items(grader)
    rescore = Rescore.objects.create(grader=grader, spec_hash=spec_hash(grader.spec), total=len(stale),
                                     created_by=user)
    if grader_needs_worker(grader.spec):
        from .tasks import rescore_task

        transaction.on_commit(lambda: rescore_task.delay(rescore.pk))
        return rescore
    return rescore_run(rescore=rescore, time_budget=INLINE_RESCORE_SECONDS)


def rescore_run(*, rescore: Rescore, time_budget: float | None = None) -> Rescore:
    """Grade the answers this version has not scored; progress is saved as it goes. With a
    `time_budget` (a web request), what is left when it runs out goes to a worker."""
    deadline = None if time_budget is None else monotonic() + time_budget
    grader = rescore.grader
    Rescore.objects.filter(pk=rescore.pk).update(status=RescoreStatus.RUNNING)
    sync_judges()
    try:
        stale = _stale_items(grader)
        done = rescore.total - len(stale)
        for item in stale:
            if deadline is not None and monotonic() >= deadline:
                from .tasks import rescore_task

                Rescore.objects.filter(pk=rescore.pk).update(status=RescoreStatus.QUEUED, done=done)
                transaction.on_commit(lambda: rescore_task.delay(rescore.pk))
                rescore.refresh_from_db()
                return rescore
            _grade(grader, item, time_budget=None if deadline is None else max(0.5, deadline - monotonic()))
            done += 1
            Rescore.objects.filter(pk=rescore.pk).update(done=done)
        _seen(grader.spec, project=grader.project, grader_name=grader.name, label=_version_label(grader))
    except Exception as exc:  # grades never raise; this is the database or the machine
        log.exception("re-scoring %s failed", rescore.pk)
        Rescore.objects.filter(pk=rescore.pk).update(status=RescoreStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
    else:
        Rescore.objects.filter(pk=rescore.pk).update(status=RescoreStatus.DONE, done=done)
    rescore.refresh_from_db()
    return rescore


@transaction.atomic
def review_items_add_from_profile(*, grader: Grader, profile, count: int, user) -> list[ReviewItem]:
    """Add base-model answers from a difficulty profile (the pre-flight sampling), spread over
    its tasks, in-between tasks first (where the grader's verdict matters most), graded now."""
    if profile.project_id != grader.project_id:
        raise ValidationError({"profile": "That profile belongs to another project."})
    if not 1 <= count <= MAX_ADD:
        raise ValidationError({"count": f"Add between 1 and {MAX_ADD} answers at a time."})
    tasks = sorted(profile.results.get("tasks", []), key=lambda t: t["band"] != "between")
    by_pk = {t.pk: t for t in Task.objects.filter(pk__in=[t["id"] for t in tasks], dataset__project=grader.project)}
    picks = []
    for round_ in range(max((len(t["answers"]) for t in tasks), default=0)):
        for t in tasks:
            if len(picks) < count and round_ < len(t["answers"]) and t["id"] in by_pk:
                picks.append((by_pk[t["id"]], t["answers"][round_]))
    if not picks:
        raise ValidationError({"profile": "The profile has no answers to review."})
    return [review_item_add_answer(grader=grader, output_text=answer, user=user, task=task,
                                   source=Source.BASE_MODEL) for task, answer in picks]
