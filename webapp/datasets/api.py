"""OpenAI-compatible Files API: /v1/files. A fine-tune file becomes a dataset of tasks; an evals
file (`{"item", "sample"?}` lines) is kept as it is for the Evals API's `file_id` data sources."""

from django.conf import settings
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from rest_framework.decorators import api_view, parser_classes
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from webapp.core.api import ApiError, api_project_for_write, api_projects
from webapp.projects.access import project_access
from webapp.projects.models import Role

from . import services
from .importers import ImportProblems
from .models import File
from .selectors import file_list

PURPOSES = {"fine-tune", "evals"}  # evals: {"item", "sample"?} lines for the Evals API


def file_object(file: File) -> dict:
    return {
        "id": file.id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": int(file.created_at.timestamp()),
        "filename": file.filename,
        "purpose": file.purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
        "dataset_id": file.dataset_id,  # our extension: the dataset holding its tasks
    }


def _get_file(request, file_id: str, *, min_role: str = Role.VIEWER) -> File:
    file = get_object_or_404(File, pk=file_id, project__in=api_projects(request))
    project_access(user=request.user, slug=file.project.slug, min_role=min_role)
    return file


@api_view(["GET", "POST"])
@parser_classes([MultiPartParser])
def files(request):
    if request.method == "POST":
        return _file_create(request)
    qs = file_list(projects=api_projects(request))
    if purpose := request.query_params.get("purpose"):
        qs = qs.filter(purpose=purpose)
    order = request.query_params.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError("order must be 'asc' or 'desc'.", param="order")
    qs = qs.order_by(*(("created_at", "id") if order == "asc" else ("-created_at", "-id")))
    try:
        limit = int(request.query_params.get("limit", 10000))
    except ValueError:
        raise ApiError("limit must be an integer.", param="limit") from None
    if not 1 <= limit <= 10000:
        raise ApiError("limit must be between 1 and 10000.", param="limit")
    if after := request.query_params.get("after"):
        anchor = qs.filter(pk=after).first()
        if anchor is None:
            raise ApiError(f"No file {after!r} to list after.", param="after")
        op = "gt" if order == "asc" else "lt"
        qs = qs.filter(**{f"created_at__{op}": anchor.created_at}) | qs.filter(
            created_at=anchor.created_at, **{f"id__{op}": anchor.id}
        )
    page = list(qs[: limit + 1])
    data = [file_object(f) for f in page[:limit]]
    return Response({
        "object": "list", "data": data, "has_more": len(page) > limit,
        "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None,
    })


def _file_create(request):
    content_length = int(request.META.get("CONTENT_LENGTH") or 0)
    limit = settings.STUDIO_MAX_UPLOAD_BYTES
    if content_length > limit + 64 * 1024:  # refuse before reading the body
        raise ApiError(f"The upload is {content_length / 1e6:.1f} MB; the limit is {limit / 1e6:.0f} MB.",
                       status_code=413, param="file", code="file_too_large")
    access = api_project_for_write(request)
    purpose = request.data.get("purpose")
    if purpose not in PURPOSES:
        raise ApiError(f"purpose must be 'fine-tune' (tasks to train on) or 'evals' (items for the Evals API) "
                       f"here; got {purpose!r}.", param="purpose")
    upload = request.FILES.get("file")
    if upload is None:
        raise ApiError("Attach the JSONL file as the multipart field `file`.", param="file")
    try:
        services.check_upload_size(name=upload.name, size=upload.size)
        file = services.file_create(
            project=access.project, user=request.user, filename=upload.name,
            data=upload.read(), purpose=purpose,
        )
    except ImportProblems as exc:
        raise ApiError(f"Invalid file {upload.name}:\n{exc.summary()}", param="file",
                       code="invalid_file") from None
    return Response(file_object(file), status=200)


@api_view(["GET", "DELETE"])
def file_detail(request, file_id: str):
    if request.method == "DELETE":
        file = _get_file(request, file_id, min_role=Role.EDITOR)
        services.file_delete(file=file)
        return Response({"id": file_id, "object": "file", "deleted": True})
    return Response(file_object(_get_file(request, file_id)))


@api_view(["GET"])
def file_content(request, file_id: str):
    file = _get_file(request, file_id)
    path = services.file_path(file)
    if not path.exists():
        raise ApiError("The file's content is missing from storage.", status_code=410, code="gone")
    return FileResponse(path.open("rb"), content_type="application/jsonl", filename=file.filename)
