"""/v1 endpoints of evaluations and exports.

`GET /v1/fine_tuning/jobs/{job_id}/checkpoints/{checkpoint_id}/download?format=adapter|merged`
streams a zip (default: `adapter` for LoRA runs, `merged` for full fine-tuning). `merged` needs a worker to fold the adapter in once: until it has, the answer
is HTTP 202 with `{"object": "fine_tuning.job.checkpoint.export", "status": "preparing"}`
and a `Retry-After` header.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from rest_framework.decorators import api_view
from rest_framework.response import Response

from webapp.core.api import ApiError, api_projects
from webapp.projects.access import project_access
from webapp.runs import selectors as run_selectors

from . import exports

RETRY_SECONDS = 10


@api_view(["GET"])
def checkpoint_download(request, job_id: str, checkpoint_id: str):
    run = run_selectors.run_get_for_projects(projects=api_projects(request), pk=job_id)
    project_access(user=request.user, slug=run.project.slug)
    checkpoint = run.checkpoints.filter(pk=checkpoint_id).first()
    if checkpoint is None:
        raise ApiError(f"No checkpoint {checkpoint_id!r} in job {job_id}.", status_code=404, param="checkpoint_id",
                       code="checkpoint_not_found")
    default = "adapter" if exports.is_adapter_checkpoint(checkpoint.path) else "merged"
    fmt = request.query_params.get("format") or default
    if fmt not in ("adapter", "merged"):
        raise ApiError("format must be 'adapter' (the PEFT LoRA adapter) or 'merged' (a complete model).",
                       param="format")
    if fmt == "merged" and not exports.export_merged_request(checkpoint=checkpoint):
        failed = exports.merged_failed(checkpoint)
        if failed:
            raise ApiError(f"Preparing the merged model failed: {failed}", status_code=500, type="server_error",
                           code="export_failed")
        return Response({"object": "fine_tuning.job.checkpoint.export", "id": checkpoint.pk, "format": fmt,
                         "status": "preparing", "retry_after": RETRY_SECONDS},
                        status=202, headers={"Retry-After": str(RETRY_SECONDS)})
    try:
        name, entries = exports.download_entries(checkpoint=checkpoint, fmt=fmt)
    except FileNotFoundError as exc:
        raise ApiError(str(exc), status_code=404, code="checkpoint_files_gone") from None
    except ValueError as exc:
        raise ApiError(str(exc), param="format") from None
    response = StreamingHttpResponse(exports.zip_stream(entries), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
