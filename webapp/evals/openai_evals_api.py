"""/v1/evals: OpenAI's Evals API over our evaluations (see `openai_evals` for the mapping).

Reads need viewer access to the eval's project, writes editor access. Lists page like the
rest of /v1: `limit` (1-1000), `after` (the last id seen), `order` (`asc` or `desc`);
answers carry `first_id`, `last_id` and `has_more`.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Sum
from django.urls import reverse
from rest_framework.decorators import api_view
from rest_framework.response import Response

from webapp.core.api import ApiError, api_project_for_write, api_projects
from webapp.projects.access import project_access
from webapp.projects.models import Role

from . import openai_evals as oe
from .models import EvalDefinition, EvalItem, EvalStatus, Evaluation
from .services import evaluation_cancel


def _ts(dt) -> int | None:
    return int(dt.timestamp()) if dt else None


def _body(request) -> dict:
    if not isinstance(request.data, dict):
        raise ApiError("The body must be a JSON object.")
    return request.data


def _call(fn, **kwargs):
    try:
        return fn(**kwargs)
    except oe.EvalInputError as exc:
        raise ApiError(exc.message, param=exc.param, code="invalid_value") from None
    except ValidationError as exc:
        raise ApiError("; ".join(exc.messages), code="invalid_value") from None


def _page(request, default_order: str = "desc") -> tuple[str | None, int, str]:
    try:
        limit = int(request.query_params.get("limit", 20))
    except ValueError:
        raise ApiError("limit must be an integer.", param="limit") from None
    if not 1 <= limit <= 1000:
        raise ApiError("limit must be between 1 and 1000.", param="limit")
    order = request.query_params.get("order", default_order)
    if order not in ("asc", "desc"):
        raise ApiError("order must be 'asc' or 'desc'.", param="order")
    return request.query_params.get("after"), limit, order


def _listing(data: list[dict], has_more: bool) -> Response:
    return Response({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                     "last_id": data[-1]["id"] if data else None, "has_more": has_more})


def _after(qs, after: str | None, order: str, noun: str):
    if not after:
        return qs
    anchor = qs.filter(pk=after).first()
    if anchor is None:
        raise ApiError(f"No {noun} {after[:80]!r} to list after.", param="after")
    if order == "desc":
        return qs.filter(created_at__lt=anchor.created_at) | qs.filter(created_at=anchor.created_at, pk__lt=anchor.pk)
    return qs.filter(created_at__gt=anchor.created_at) | qs.filter(created_at=anchor.created_at, pk__gt=anchor.pk)


# --- objects -----------------------------------------------------------------------------------


def eval_object(d: EvalDefinition) -> dict:
    config = d.data_source_config or {}
    schema = {"type": "object", "properties": {"item": config.get("item_schema") or {"type": "object"}},
              "required": ["item"]}
    if config.get("include_sample_schema"):
        schema["properties"]["sample"] = {"type": "object", "properties": {
            "model": {"type": "string"}, "choices": {"type": "array"}, "output_text": {"type": "string"},
            "output_json": {"type": "object"}}, "required": ["output_text"]}
        schema["required"].append("sample")
    return {"object": "eval", "id": d.pk, "name": d.name, "created_at": _ts(d.created_at),
            "data_source_config": {"type": "custom", "schema": schema}, "metadata": d.metadata or None,
            "testing_criteria": oe.criteria_public(d.testing_criteria)}


def run_object(request, evaluation: Evaluation) -> dict:
    link = evaluation.openai_run
    info = oe.criteria_info(link.definition.testing_criteria)
    counts = oe.run_counts(evaluation, info)
    usage = []
    if link.data_source.get("type") == "completions" and evaluation.done_items:
        sums = evaluation.items.aggregate(n=Count("pk"), prompt=Sum("prompt_tokens"),
                                          completion=Sum("completion_tokens"))  # one query, not two
        invocations = sums["n"] * evaluation.n_samples
        prompt = evaluation.prompt_tokens or (sums["prompt"] or 0) * evaluation.n_samples
        completion = evaluation.completion_tokens or sums["completion"] or 0
        usage.append({"model_name": evaluation.model_name, "invocation_count": invocations,
                      "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "cached_tokens": 0})
    error = None
    if evaluation.status == EvalStatus.FAILED:
        error = {"code": "run_failed", "message": evaluation.error or "The run failed."}
    report = reverse("evals:detail", kwargs={"slug": evaluation.project.slug, "pk": evaluation.pk})
    return {"object": "eval.run", "id": evaluation.pk, "eval_id": link.definition_id, "name": evaluation.name,
            "model": None if evaluation.model_name == oe.GIVEN_ANSWERS else evaluation.model_name,
            "status": evaluation.status, "created_at": _ts(evaluation.created_at), "data_source": link.data_source,
            "metadata": evaluation.metadata or None, "error": error, "report_url": request.build_absolute_uri(report),
            "per_model_usage": usage, **counts}


def output_item_object(evaluation: Evaluation, item: EvalItem, info: list[dict]) -> dict:
    sampling = evaluation.sampling or {}
    first = (item.samples or [{}])[0]
    error = None
    if item.has_error:
        flags = [k for k, v in (item.errors or {}).items() if v is True]
        error = {"code": flags[0] if flags else "grading_error",
                 "message": str((item.errors or {}).get("details") or ", ".join(flags) or "grading failed")}
    completion = int(first.get("completion_tokens", 0) or 0)
    return {
        "object": "eval.run.output_item", "id": f"outputitem_{item.pk}", "run_id": evaluation.pk,
        "eval_id": evaluation.openai_run.definition_id, "created_at": _ts(item.created_at),
        "status": "pass" if item.passed else "fail", "datasource_item_id": item.index,
        "datasource_item": item.item if evaluation.dataset_id is None else {**item.item, "messages": item.prompt},
        "results": [{**r, "sample": None} for r in oe.item_scores(item.sub_rewards, item.reward, info)],
        "sample": {
            "input": [{"role": m.get("role", "user"), "content": m.get("content", "")} for m in item.prompt
                      if isinstance(m, dict)],
            "output": [{"role": "assistant", "content": item.output_text}],
            "model": None if evaluation.model_name == oe.GIVEN_ANSWERS else evaluation.model_name,
            "finish_reason": first.get("finish_reason", "stop"),
            "usage": {"prompt_tokens": item.prompt_tokens, "completion_tokens": completion,
                      "total_tokens": item.prompt_tokens + completion, "cached_tokens": 0},
            "temperature": sampling.get("temperature", 0.0), "top_p": sampling.get("top_p", 1.0),
            "seed": sampling.get("seed", 0), "max_completion_tokens": sampling.get("max_completion_tokens", 128),
            "error": error,
        },
    }


# --- lookups -----------------------------------------------------------------------------------


def _definition(request, eval_id: str, *, min_role: str = Role.VIEWER) -> EvalDefinition:
    scope = EvalDefinition.objects.filter(pk=eval_id, project__in=api_projects(request)).select_related("project")
    definition = scope.first()
    if definition is None:  # perhaps a browser evaluation's eval, not made yet
        for project in api_projects(request):
            oe.evals_adopt(project=project)
        definition = scope.first()
    else:
        oe.evals_adopt(project=definition.project)  # browser evaluations made since join their evals
    if definition is None:
        raise ApiError(f"No eval {eval_id[:80]!r}.", status_code=404, param="eval_id", code="not_found")
    project_access(user=request.user, slug=definition.project.slug, min_role=min_role)
    return definition


def _run(request, eval_id: str, run_id: str, *, min_role: str = Role.VIEWER) -> Evaluation:
    definition = _definition(request, eval_id, min_role=min_role)
    evaluation = Evaluation.objects.filter(pk=run_id, openai_run__definition=definition).select_related(
        "project", "openai_run__definition").first()
    if evaluation is None:
        raise ApiError(f"No run {run_id[:80]!r} in eval {eval_id[:80]}.", status_code=404, param="run_id",
                       code="not_found")
    return evaluation


# --- endpoints ---------------------------------------------------------------------------------


@api_view(["GET", "POST"])
def evals(request):
    if request.method == "POST":
        access = api_project_for_write(request)
        body = _body(request)
        definition = _call(oe.eval_create, project=access.project, user=request.user, name=body.get("name"),
                           data_source_config=body.get("data_source_config"),
                           testing_criteria=body.get("testing_criteria"), metadata=body.get("metadata"))
        return Response(eval_object(definition))
    after, limit, order = _page(request)
    for project in api_projects(request):
        oe.evals_adopt(project=project)
    qs = EvalDefinition.objects.filter(project__in=api_projects(request))
    qs = _after(qs, after, order, "eval")
    by = request.query_params.get("order_by", "created_at")
    if by not in ("created_at", "updated_at"):
        raise ApiError("order_by must be 'created_at' or 'updated_at'.", param="order_by")
    sign = "-" if order == "desc" else ""
    page = list(qs.order_by(f"{sign}created_at", f"{sign}id")[: limit + 1])
    return _listing([eval_object(d) for d in page[:limit]], len(page) > limit)


@api_view(["GET", "POST", "DELETE"])
def eval_detail(request, eval_id: str):
    if request.method == "GET":
        return Response(eval_object(_definition(request, eval_id)))
    definition = _definition(request, eval_id, min_role=Role.EDITOR)
    if request.method == "DELETE":
        _call(oe.eval_delete, definition=definition)
        return Response({"object": "eval.deleted", "deleted": True, "eval_id": eval_id})
    body = _body(request)
    definition = _call(oe.eval_update, definition=definition, name=body.get("name"), metadata=body.get("metadata"))
    return Response(eval_object(definition))


@api_view(["GET", "POST"])
def eval_runs(request, eval_id: str):
    if request.method == "POST":
        definition = _definition(request, eval_id, min_role=Role.EDITOR)
        body = _body(request)
        evaluation = _call(oe.eval_run_create, definition=definition, user=request.user, name=body.get("name"),
                           data_source=body.get("data_source"), metadata=body.get("metadata"))
        evaluation = Evaluation.objects.select_related("project", "openai_run__definition").get(pk=evaluation.pk)
        return Response(run_object(request, evaluation))
    definition = _definition(request, eval_id)
    after, limit, order = _page(request, default_order="asc")
    status = request.query_params.get("status")
    qs = Evaluation.objects.filter(openai_run__definition=definition).select_related(
        "project", "openai_run__definition")
    if status:
        if status not in EvalStatus.values:
            raise ApiError(f"status must be one of {', '.join(EvalStatus.values)}.", param="status")
        qs = qs.filter(status=status)
    qs = _after(qs, after, order, "run")
    sign = "-" if order == "desc" else ""
    page = list(qs.order_by(f"{sign}created_at", f"{sign}id")[: limit + 1])
    return _listing([run_object(request, e) for e in page[:limit]], len(page) > limit)


@api_view(["GET", "DELETE"])
def eval_run_detail(request, eval_id: str, run_id: str):
    if request.method == "GET":
        return Response(run_object(request, _run(request, eval_id, run_id)))
    evaluation = _run(request, eval_id, run_id, min_role=Role.EDITOR)
    _call(oe.eval_run_delete, evaluation=evaluation)
    return Response({"object": "eval.run.deleted", "deleted": True, "run_id": run_id})


@api_view(["POST"])
def eval_run_cancel(request, eval_id: str, run_id: str):
    evaluation = _run(request, eval_id, run_id, min_role=Role.EDITOR)
    with transaction.atomic():
        _call(evaluation_cancel, evaluation=evaluation)
    evaluation.refresh_from_db()
    return Response(run_object(request, evaluation))


def _item_pk(output_item_id: str) -> int | None:
    raw = output_item_id.removeprefix("outputitem_")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 18 else None  # "²".isdigit() too


@api_view(["GET"])
def eval_run_output_items(request, eval_id: str, run_id: str):
    evaluation = _run(request, eval_id, run_id)
    after, limit, order = _page(request, default_order="asc")
    items = evaluation.items.all()
    status = request.query_params.get("status")
    if status:
        if status not in ("pass", "fail"):
            raise ApiError("status must be 'pass' or 'fail'.", param="status")
        items = items.filter(passed=(status == "pass"))
    if after:
        pk = _item_pk(after)
        anchor = evaluation.items.filter(pk=pk).first() if pk is not None else None
        if anchor is None:
            raise ApiError(f"No output item {after[:80]!r} in this run to list after.", param="after")
        items = items.filter(index__gt=anchor.index) if order == "asc" else items.filter(index__lt=anchor.index)
    page = list(items.order_by("index" if order == "asc" else "-index")[: limit + 1])
    info = oe.criteria_info(evaluation.openai_run.definition.testing_criteria)
    return _listing([output_item_object(evaluation, i, info) for i in page[:limit]], len(page) > limit)


@api_view(["GET"])
def eval_run_output_item_detail(request, eval_id: str, run_id: str, output_item_id: str):
    evaluation = _run(request, eval_id, run_id)
    pk = _item_pk(output_item_id)
    item = evaluation.items.filter(pk=pk).first() if pk is not None else None
    if item is None:
        raise ApiError(f"No output item {output_item_id[:80]!r} in run {run_id[:80]}.", status_code=404,
                       param="output_item_id", code="not_found")
    info = oe.criteria_info(evaluation.openai_run.definition.testing_criteria)
    return Response(output_item_object(evaluation, item, info))
