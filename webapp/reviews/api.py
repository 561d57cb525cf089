"""Our API for grader calibration: experts' scores in, the agreement report out.

- `POST /v1/reviews` `{grader_id, sample_id | review_item_id | eval_item_id | {item, output_text}, criterion?, score,
  reviewer_note?}` records one expert score (again: changes it).
- `GET /v1/graders/{id}/agreement`: the report the calibration page shows, computed the same way.
- `POST /v1/graders/{id}/rescore`: score every reviewed answer with this grader version.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from rest_framework.decorators import api_view
from rest_framework.response import Response

from webapp.core.api import ApiError, api_projects
from webapp.evals.models import EvalItem
from webapp.graders.api import _get as grader_for_request
from webapp.projects.access import project_access
from webapp.projects.models import Role
from webapp.runs.models import RunSample

from . import selectors, services
from .models import ReviewItem


def _raise(exc: ValidationError):
    params = getattr(exc, "message_dict", {})
    param = next(iter(params), None)
    message = "; ".join(sum(params.values(), [])) if params else " ".join(exc.messages)
    raise ApiError(message, param=param, code="invalid_value") from None


def _id(value, param: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit() or len(str(value)) > 18:
        raise ApiError(f"{param} must be a whole number id.", param=param)
    return int(value)


def review_object(review, *, grader) -> dict:
    return {"id": f"review-{review.pk}", "object": "grader.review", "grader_id": grader.pk,
            "review_item_id": review.item_id, "sample_id": review.item.sample_id,
            "eval_item_id": review.item.eval_item_id,
            "criterion": review.criterion or None, "score": review.score, "reviewer_note": review.note,
            "created_at": int(review.created_at.timestamp())}


@api_view(["POST"])
def reviews(request):
    body = request.data
    if not isinstance(body, dict):
        raise ApiError("Send a JSON object.", code="invalid_value")
    grader_id = body.get("grader_id")
    if not isinstance(grader_id, str) or not grader_id:
        raise ApiError("grader_id is required: the id of a saved grader (grader-…).", param="grader_id")
    grader = grader_for_request(request, grader_id)  # 404 outside the caller's projects
    project_access(user=request.user, slug=grader.project.slug, min_role=Role.VIEWER)
    criterion = body.get("criterion")
    if criterion is None:
        criterion = ""
    if not isinstance(criterion, str):
        raise ApiError("criterion must be a criterion's key (a text), or left out for the total.", param="criterion")
    note = body.get("reviewer_note") or ""
    if not isinstance(note, str):
        raise ApiError("reviewer_note must be a text.", param="reviewer_note")
    if len(note) > services.MAX_NOTE_CHARS:
        raise ApiError(f"reviewer_note is longer than {services.MAX_NOTE_CHARS:,} characters.", param="reviewer_note")
    if "score" not in body:
        raise ApiError("score is required: 0 (fail) to 1 (pass).", param="score")
    sources = [k for k in ("sample_id", "review_item_id", "eval_item_id", "item") if body.get(k) is not None]
    if len(sources) != 1:
        raise ApiError("Send exactly one of sample_id, review_item_id, eval_item_id, or item with output_text.",
                       param="sample_id")
    try:
        if sources == ["eval_item_id"]:
            eval_item = (EvalItem.objects.select_related("evaluation")
                         .filter(pk=_id(body["eval_item_id"], "eval_item_id"),
                                 evaluation__project__in=api_projects(request)).first())
            if eval_item is None or eval_item.evaluation.project_id != grader.project_id:
                raise ApiError(f"No evaluation item {body['eval_item_id']!r} in the grader's project.",
                               status_code=404, param="eval_item_id", code="not_found")
            item = services.review_item_from_eval_item(grader=grader, eval_item=eval_item, user=request.user)
        elif sources == ["sample_id"]:
            sample = (RunSample.objects.select_related("run__dataset")
                      .filter(pk=_id(body["sample_id"], "sample_id"), run__project__in=api_projects(request)).first())
            if sample is None or sample.run.project_id != grader.project_id:
                raise ApiError(f"No sample {body['sample_id']!r} in the grader's project.", status_code=404,
                               param="sample_id", code="not_found")
            item = services.review_item_from_sample(grader=grader, sample=sample, user=request.user)
        elif sources == ["review_item_id"]:
            item = ReviewItem.objects.filter(pk=_id(body["review_item_id"], "review_item_id"),
                                             project=grader.project, grader_name=grader.name).first()
            if item is None:
                raise ApiError(f"No review item {body['review_item_id']!r} for this grader.", status_code=404,
                               param="review_item_id", code="not_found")
        else:
            if not isinstance(body["item"], dict):
                raise ApiError("item must be the task: an object with messages and its reference fields.", param="item")
            output = body.get("output_text")
            if not isinstance(output, str):
                raise ApiError("output_text is required with item: the answer to review.", param="output_text")
            project_access(user=request.user, slug=grader.project.slug, min_role=Role.EDITOR)
            item = services.review_item_add_answer(grader=grader, item=body["item"], output_text=output,
                                                   user=request.user)
        review = services.review_save(item=item, user=request.user, scores={criterion: body["score"]}, note=note,
                                      spec=grader.spec)[0]
    except ValidationError as exc:
        _raise(exc)
    return Response(review_object(review, grader=grader))


@api_view(["GET"])
def grader_agreement(request, grader_id: str):
    grader = grader_for_request(request, grader_id)
    report = selectors.grader_agreement(grader=grader)
    body = selectors.agreement_api_object(report, grader=grader)
    before = selectors.previous_spec(grader=grader)
    if before is not None:  # what the page shows as "before the last edit"
        old = selectors.agreement_for_spec(project=grader.project, grader_name=grader.name, spec=before.spec)
        body["before_edit"] = {"label": before.label, "overall": selectors.agreement_api_object(old, grader=grader)["overall"]}
    else:
        body["before_edit"] = None
    return Response(body)


@api_view(["POST"])
def grader_rescore(request, grader_id: str):
    grader = grader_for_request(request, grader_id, min_role=Role.EDITOR)
    rescore = services.rescore_start(grader=grader, user=request.user)
    return Response({"object": "grader.rescore", "id": rescore.pk, "grader_id": grader.pk, "status": rescore.status,
                     "total": rescore.total, "done": rescore.done, "error": rescore.error or None})
