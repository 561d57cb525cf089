"""OpenAI-compatible fine-tuning jobs: /v1/fine_tuning/jobs and friends.

Our extensions: `method.reinforcement.grader` may be a saved grader id (`grader-…`) instead
of an inline grader; `/metrics` and `/samples` give the per-step metrics and graded samples.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from rest_framework.decorators import api_view
from rest_framework.response import Response

from trainer.config import BASE_GROUP_SIZE, BASE_LEARNING_RATE
from webapp.core.api import ApiError, api_project_for_write, api_projects
from webapp.datasets.selectors import file_find
from webapp.graders.selectors import grader_find
from webapp.projects.access import project_access
from webapp.projects.models import Role

from . import review, selectors, services
from .models import Run, RunEvent, RunSample
from .plan import LaunchError


def _ts(dt) -> int | None:
    return int(dt.timestamp()) if dt else None


def _multiplier(config: dict, key: str, base: float | None, given):
    """An OpenAI multiplier as the frozen config has it (the launch form sets the field itself)."""
    value = config.get(key)
    return round(value / base, 6) if isinstance(value, int | float) and base else given


def job_object(run: Run) -> dict:
    config = run.config or {}
    given = run.hyperparameters
    hp = {
        "n_epochs": config.get("n_epochs", "auto"),
        "batch_size": config.get("batch_size", "auto"),
        "learning_rate_multiplier": _multiplier(config, "learning_rate", BASE_LEARNING_RATE.get(config.get("method")),
                                                given.get("learning_rate_multiplier", "auto")),
        "compute_multiplier": _multiplier(config, "group_size", BASE_GROUP_SIZE, given.get("compute_multiplier", "auto")),
        "eval_interval": config.get("eval_interval", "auto"),
        "eval_samples": config.get("eval_samples") or "auto",
        "reasoning_effort": run.hyperparameters.get("reasoning_effort", "auto"),
    }
    return {
        "id": run.pk,
        "object": "fine_tuning.job",
        "model": run.base_model,
        "created_at": _ts(run.created_at),
        "finished_at": _ts(run.finished_at),
        "estimated_finish": _ts(run.estimated_finish),
        "status": run.status,
        "fine_tuned_model": run.fine_tuned_model or None,
        "organization_id": f"org-{run.project.slug}",
        "result_files": [],
        "seed": run.seed,
        "trained_tokens": run.trained_tokens if run.trained_tokens else None,
        "training_file": run.training_file or f"dataset-{run.dataset_id}",
        "validation_file": run.validation_file or None,
        "hyperparameters": {"n_epochs": hp["n_epochs"], "batch_size": hp["batch_size"],
                            "learning_rate_multiplier": hp["learning_rate_multiplier"]},
        "method": {"type": "reinforcement", "reinforcement": {
            "grader": run.grader_spec, "hyperparameters": hp, "response_format": None}},
        "metadata": run.metadata or None,
        "error": run.error,
        "integrations": [],
        "user_provided_suffix": run.suffix or None,
        # our extensions
        "project": run.project.slug,
        "step": run.current_step,
        "total_steps": run.total_steps,
        "best_valid_reward": run.best_valid_reward,
        "grader_id": run.grader_id,
    }


def _get_run(request, job_id: str, *, min_role: str = Role.VIEWER) -> Run:
    run = selectors.run_get_for_projects(projects=api_projects(request), pk=job_id)
    project_access(user=request.user, slug=run.project.slug, min_role=min_role)
    return run


def _page(request, default_limit: int = 20) -> tuple[str | None, int]:
    try:
        limit = int(request.query_params.get("limit", default_limit))
    except ValueError:
        raise ApiError("limit must be an integer.", param="limit") from None
    if not 1 <= limit <= 1000:
        raise ApiError("limit must be between 1 and 1000.", param="limit")
    return request.query_params.get("after"), limit


@api_view(["GET", "POST"])
def jobs(request):
    if request.method == "POST":
        return _job_create(request)
    runs = selectors.run_list_for_projects(projects=api_projects(request))
    after, limit = _page(request)
    if after:
        anchor = runs.filter(pk=after).first()
        if anchor is None:
            raise ApiError(f"No job {after!r} to list after.", param="after")
        runs = runs.filter(created_at__lt=anchor.created_at) | runs.filter(created_at=anchor.created_at, id__lt=anchor.id)
    for key, value in _metadata_filters(request.query_params):
        # KeyTextTransform takes the key literally: it is never parsed as an ORM lookup path.
        # (Cast: a plain text comparison, not the JSON-aware one KeyTransform's lookups do.)
        value_of_key = Cast(KeyTextTransform(key, "metadata"), output_field=TextField())
        runs = runs.alias(_meta_value=value_of_key).filter(_meta_value=value)
    page = list(runs.order_by("-created_at", "-id")[: limit + 1])
    return Response({"object": "list", "data": [job_object(r) for r in page[:limit]], "has_more": len(page) > limit})


METADATA_MAX_KEYS, METADATA_KEY_CHARS, METADATA_VALUE_CHARS = 16, 64, 512


def _metadata_key_problem(key) -> str | None:
    if not isinstance(key, str) or not 1 <= len(key) <= METADATA_KEY_CHARS:
        return f"metadata keys are texts of 1 to {METADATA_KEY_CHARS} characters"
    if "__" in key:  # would read as a database lookup (k__regex) anywhere keys become filters
        return "metadata keys may not contain '__'"
    return None


def _metadata_filters(params) -> list[tuple[str, str]]:
    """`metadata[key]=value` pairs: plain equality on one key, nothing else."""
    filters = []
    for name, value in params.items():
        if not name.startswith("metadata"):
            continue
        if not (name.startswith("metadata[") and name.endswith("]")):
            raise ApiError("Filter on metadata as metadata[key]=value.", param=name)
        key = name[len("metadata["):-1]
        problem = _metadata_key_problem(key)
        if problem or len(value) > METADATA_VALUE_CHARS:
            raise ApiError(problem or f"metadata values are at most {METADATA_VALUE_CHARS} characters.",
                           param=name)
        filters.append((key, value))
    return filters


def _metadata(value) -> dict:
    """OpenAI's rules: up to 16 keys of at most 64 characters, text values of at most 512."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > METADATA_MAX_KEYS:
        raise ApiError(f"metadata must be an object of at most {METADATA_MAX_KEYS} keys.", param="metadata")
    for key, item in value.items():
        problem = _metadata_key_problem(key)
        if problem:
            raise ApiError(f"{problem}; got {str(key)[:80]!r}.", param="metadata")
        if not isinstance(item, str) or len(item) > METADATA_VALUE_CHARS:
            raise ApiError(f"metadata values must be texts of at most {METADATA_VALUE_CHARS} characters.",
                           param=f"metadata.{key}")
    return value


MAX_SEED = 2**63 - 1  # what the database and torch.manual_seed hold


def _object(value, param: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ApiError(f"{param} must be an object.", param=param)
    return value


def _file_dataset(request, file_id, *, param: str, project):
    if not file_id:
        return None
    if not isinstance(file_id, str):
        raise ApiError(f"{param} must be a file id like 'file-…'.", param=param)
    file = file_find(projects=api_projects(request), pk=file_id)
    if file is not None and file.dataset is None and file.purpose == "evals":
        raise ApiError(f"{file_id} is an evals file (purpose evals, for the Evals API); a fine-tuning job needs a "
                       "task file uploaded with purpose fine-tune.", param=param, code="invalid_file")
    if file is None or file.dataset is None:
        raise ApiError(f"No such file: {file_id!r}. Upload it with POST /v1/files (purpose fine-tune) first.",
                       status_code=400, param=param, code="file_not_found")
    if file.project_id != project.pk:
        raise ApiError(f"{file_id} belongs to another project.", param=param)
    return file.dataset


def _job_create(request):
    access = api_project_for_write(request)
    if not isinstance(request.data, dict):
        raise ApiError("Send a JSON object.", code="invalid_value")
    body = request.data
    method = _object(body.get("method"), "method")
    if method.get("type") != "reinforcement":
        raise ApiError("Only method.type 'reinforcement' is supported here.", param="method.type")
    reinforcement = _object(method.get("reinforcement"), "method.reinforcement")
    grader_value = reinforcement.get("grader")
    grader = None
    if isinstance(grader_value, str):  # our extension: a saved grader's id
        grader = grader_find(project=access.project, pk=grader_value)
        if grader is None:
            raise ApiError(f"No saved grader {grader_value!r} in this project.", param="method.reinforcement.grader")
        grader_value = None
    elif not isinstance(grader_value, dict):
        raise ApiError("method.reinforcement.grader must be a grader object (or a saved grader id).",
                       param="method.reinforcement.grader")
    if not body.get("model") or not isinstance(body["model"], str) or len(body["model"]) > 200:
        raise ApiError("model is required: the name of a base model.", param="model")
    hyperparameters = reinforcement.get("hyperparameters") or body.get("hyperparameters") or {}
    if not isinstance(hyperparameters, dict):
        raise ApiError("hyperparameters must be an object.", param="method.reinforcement.hyperparameters")
    for name, value in hyperparameters.items():
        if not isinstance(value, int | float | str) or isinstance(value, bool):
            raise ApiError(f"hyperparameter {name} must be a number or \"auto\".",
                           param=f"method.reinforcement.hyperparameters.{name}")
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
        raise ApiError(f"seed must be a whole number from 0 to {MAX_SEED}.", param="seed")
    suffix = body.get("suffix")
    if suffix is not None and not isinstance(suffix, str):
        raise ApiError("suffix must be a text.", param="suffix")
    metadata = _metadata(body.get("metadata"))
    dataset = _file_dataset(request, body.get("training_file"), param="training_file", project=access.project)
    if dataset is None:
        raise ApiError("training_file is required.", param="training_file")
    valid_dataset = _file_dataset(request, body.get("validation_file"), param="validation_file",
                                  project=access.project)
    try:
        run = services.run_create(
            project=access.project, user=request.user, dataset=dataset, valid_dataset=valid_dataset,
            grader_spec=grader_value, grader=grader, base_model=str(body["model"]),
            hyperparameters=hyperparameters, suffix=suffix or "", seed=seed, metadata=metadata,
            training_file=body.get("training_file") or "", validation_file=body.get("validation_file") or "",
        )
    except LaunchError as exc:
        raise ApiError(" ".join(exc.messages), param=exc.param) from None
    return Response(job_object(run))


@api_view(["GET"])
def job_detail(request, job_id: str):
    return Response(job_object(_get_run(request, job_id)))


def _control(request, job_id: str, action):
    run = _get_run(request, job_id, min_role=Role.EDITOR)
    try:
        action(run=run)
    except ValidationError as exc:
        raise ApiError(" ".join(exc.messages), code="invalid_state") from None
    run.refresh_from_db()
    return Response(job_object(run))


@api_view(["POST"])
def job_cancel(request, job_id: str):
    return _control(request, job_id, services.run_cancel)


@api_view(["POST"])
def job_pause(request, job_id: str):
    return _control(request, job_id, services.run_pause)


@api_view(["POST"])
def job_resume(request, job_id: str):
    return _control(request, job_id, services.run_resume)


def event_object(event: RunEvent) -> dict:
    return {"id": f"ftevent-{event.pk}", "object": "fine_tuning.job.event", "created_at": _ts(event.created_at),
            "level": event.level, "message": event.message, "data": event.data, "type": event.type}


@api_view(["GET"])
def job_events(request, job_id: str):
    run = _get_run(request, job_id)
    after, limit = _page(request)
    events = run.events.order_by("-id")
    if after:
        try:
            events = events.filter(id__lt=int(after.removeprefix("ftevent-")))
        except ValueError:
            raise ApiError("after must be an event id like 'ftevent-12'.", param="after") from None
    page = list(events[: limit + 1])
    return Response({"object": "list", "data": [event_object(e) for e in page[:limit]], "has_more": len(page) > limit})


@api_view(["GET"])
def job_checkpoints(request, job_id: str):
    run = _get_run(request, job_id)
    after, limit = _page(request, default_limit=10)
    checkpoints = run.checkpoints.order_by("-step")
    if after:
        anchor = checkpoints.filter(pk=after).first()
        if anchor is None:
            raise ApiError(f"No checkpoint {after!r} to list after.", param="after")
        checkpoints = checkpoints.filter(step__lt=anchor.step)
    page = list(checkpoints[: limit + 1])
    data = [{
        "id": c.id, "object": "fine_tuning.job.checkpoint", "created_at": _ts(c.created_at),
        "fine_tuned_model_checkpoint": f"ft:{run.base_model}:{run.pk}:ckpt-step-{c.step}",
        "fine_tuning_job_id": run.pk, "step_number": c.step,
        "metrics": {"step": c.step, "valid_mean_reward": c.valid_reward,
                    "train_mean_reward": c.metrics.get("train/reward_mean"), **c.metrics},
        "size_bytes": c.size_bytes,
    } for c in page[:limit]]
    return Response({"object": "list", "data": data, "has_more": len(page) > limit,
                     "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})


@api_view(["GET"])
def job_metrics(request, job_id: str):
    """Our extension: every step's metrics dict, `after_step` for the new ones only."""
    run = _get_run(request, job_id)
    try:
        after_step = int(request.query_params.get("after_step", 0))
    except ValueError:
        raise ApiError("after_step must be an integer.", param="after_step") from None
    rows = run.metrics.filter(step__gt=after_step).order_by("step").values_list("step", "data")[:5000]
    return Response({"object": "list", "status": run.status,
                     "data": [{"step": step, "metrics": data} for step, data in rows]})


@api_view(["GET"])
def job_samples(request, job_id: str):
    """Our extension: graded samples, filtered and sorted exactly like the sample browser
    (`review.SampleFilters`: split, min_step, max_step, min_reward, max_reward, criterion,
    min_score, max_score, errors, feedback, order), up to `limit`."""
    run = _get_run(request, job_id)
    samples, filters = review.sample_search(run=run, params=request.query_params)
    if filters.problems:
        param, message = filters.problems[0]
        raise ApiError(message, param=param)
    _, limit = _page(request, default_limit=100)
    data = [_sample_object(s) for s in samples[:limit]]
    return Response({"object": "list", "data": data})


def _sample_object(s: RunSample) -> dict:
    return {"id": s.pk, "step": s.step, "split": s.split, "prompt": s.prompt, "item": s.item,
            "output_text": s.output_text, "reward": s.reward, "sub_rewards": s.sub_rewards, "errors": s.errors,
            "completion_tokens": s.completion_tokens, "truncated": s.truncated}
