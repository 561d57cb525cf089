"""Graders over the REST API.

- `POST /v1/fine_tuning/alpha/graders/validate` and `/run`: OpenAI's request and response
  shapes exactly (the openai SDK's `client.fine_tuning.alpha.graders.validate/run`).
- `/v1/graders[/<id>]`: saved graders of the caller's projects (our own resource, shaped
  like OpenAI's objects). Updating a grader a run has used answers a new version.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404
from rest_framework.decorators import api_view
from rest_framework.response import Response

from trainer.grading import GraderValidationError, run_grader, validate_grader
from webapp.core.api import ApiError, api_project_for_write, api_projects
from webapp.datasets.models import Dataset
from webapp.projects.access import project_access
from webapp.projects.models import Role

from . import services
from .judges import sync_judges
from .models import Grader
from .selectors import grader_list_for_projects


def grader_object(grader: Grader) -> dict:
    return {
        "id": grader.id,
        "object": "grader",
        "name": grader.name,
        "version": grader.version,
        "grader": grader.spec,
        "created_at": int(grader.created_at.timestamp()),
        "locked": grader.is_locked,
        "parent_id": grader.parent_id,
        "dataset_id": grader.dataset_id,
        "project": grader.project.slug,
    }


def _require_project(request) -> None:
    """Grading runs user code and judges: only members of some project (the header's, if
    sent) may use it; a project the caller is not in is a 404 like everywhere else."""
    if not api_projects(request).exists():
        raise ApiError("You are not a member of any project.", status_code=403, code="permission_denied")


def _grader_param(data) -> dict:
    grader = data.get("grader") if isinstance(data, dict) else None
    if grader is None:
        raise ApiError("Missing required parameter: 'grader'.", param="grader", code="missing_required_parameter")
    return grader


def _validated(grader) -> dict:
    sync_judges()  # judges an admin configured are valid `model`s
    try:
        return validate_grader(grader)
    except GraderValidationError as exc:
        param = f"grader.{exc.param}" if exc.param else "grader"
        raise ApiError(f"Invalid grader: {exc}", param=param, code="invalid_grader") from None


@api_view(["POST"])
def grader_validate(request):
    _require_project(request)
    grader = _grader_param(request.data)
    _validated(grader)
    return Response({"grader": grader})


@api_view(["POST"])
def grader_run(request):
    _require_project(request)
    data = request.data if isinstance(request.data, dict) else {}
    grader = _validated(_grader_param(data))
    sample = data.get("model_sample")
    if not isinstance(sample, str):
        raise ApiError("model_sample must be a string.", param="model_sample", code="invalid_value")
    item = data.get("item") or {}
    if not isinstance(item, dict):
        raise ApiError("item must be an object.", param="item", code="invalid_value")
    reference = data.get("reference_answer")
    if reference is not None and "reference_answer" not in item:
        item = {**item, "reference_answer": reference}  # older SDKs sent it beside the item
    sync_judges()
    scope = services.grading_scope(user_id=request.user.pk)  # the caller's own, whatever the project
    result = run_grader(grader, sample, item, time_budget=settings.STUDIO_GRADE_REQUEST_SECONDS, scope=scope)
    return Response(result.to_openai())


# --- saved graders --------------------------------------------------------------------------


def _get(request, grader_id: str, *, min_role: str = Role.VIEWER) -> Grader:
    grader = get_object_or_404(Grader.objects.select_related("project"), pk=grader_id, project__in=api_projects(request))
    project_access(user=request.user, slug=grader.project.slug, min_role=min_role)
    return grader


def _dataset(project, data) -> Dataset | None:
    dataset_id = data.get("dataset_id")
    if dataset_id in (None, ""):
        return None
    dataset = Dataset.objects.filter(project=project, pk=dataset_id).first() if str(dataset_id).isdigit() else None
    if dataset is None:
        raise ApiError(f"No dataset {dataset_id!r} in this project.", status_code=404, param="dataset_id",
                       code="not_found")
    return dataset


def _name(data, default: str | None = None) -> str:
    name = data.get("name", default)
    if not isinstance(name, str) or not name.strip():
        raise ApiError("name must be a non-empty string.", param="name", code="invalid_value")
    return name


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ApiError("Send a JSON object.", code="invalid_value")
    return request.data


def _saved(write):
    try:
        return write()
    except ValidationError as exc:
        params = getattr(exc, "message_dict", {})
        param = next(iter(params), None)
        message = "; ".join(sum(params.values(), [])) if params else " ".join(exc.messages)
        raise ApiError(message, param=param, code="invalid_value") from None


@api_view(["GET", "POST"])
def graders(request):
    if request.method == "POST":
        access = api_project_for_write(request)
        data = _body(request)
        spec = _grader_param(data)
        _validated(spec)
        name = _name(data, spec.get("name") if isinstance(spec, dict) else None)
        grader = _saved(lambda: services.grader_create(
            project=access.project, name=name, spec=spec, user=request.user,
            description=str(data.get("description") or ""), dataset=_dataset(access.project, data),
        ))
        return Response(grader_object(grader))
    qs = grader_list_for_projects(projects=api_projects(request))
    if name := request.query_params.get("name"):
        qs = qs.filter(name=name)
    data = [grader_object(g) for g in qs[:1000]]
    return Response({"object": "list", "data": data, "has_more": False,
                     "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None})


@api_view(["GET", "POST", "DELETE"])
def grader_detail(request, grader_id: str):
    if request.method == "GET":
        return Response(grader_object(_get(request, grader_id)))
    grader = _get(request, grader_id, min_role=Role.EDITOR)
    if request.method == "DELETE":
        if grader.is_locked:
            raise ApiError(f"This grader cannot be deleted: {grader.locked_reason}.", status_code=409,
                           code="grader_locked")
        services.grader_delete(grader=grader)
        return Response({"id": grader_id, "object": "grader", "deleted": True})
    data = _body(request)
    spec = data.get("grader", grader.spec)
    _validated(spec)
    rubric = grader.rubric if "grader" not in data else None  # a new spec no longer matches the builder rows
    updated = _saved(lambda: services.grader_update(
        grader=grader, user=request.user, spec=spec, rubric=rubric,
        name=_name(data, grader.name), description=data.get("description"),
        dataset=_dataset(grader.project, data) if "dataset_id" in data else services.KEEP,
    ))
    return Response(grader_object(updated))
