"""Our API for insights: a run's findings and a dataset's difficulty profile."""

from __future__ import annotations

from rest_framework.decorators import api_view
from rest_framework.response import Response

from webapp.core.api import ApiError, api_projects
from webapp.runs.api import _get_run

from . import selectors


@api_view(["GET"])
def job_diagnosis(request, job_id: str):
    """`GET /v1/fine_tuning/jobs/{id}/diagnosis`: the findings that apply now, most severe first."""
    run = _get_run(request, job_id)
    findings = selectors.run_findings(run=run)
    return Response({"object": "list", "job_id": run.pk, "step": run.current_step,
                     "data": [selectors.finding_object(f, run=run) for f in findings]})


@api_view(["GET"])
def dataset_difficulty(request, dataset_id: str):
    """`GET /v1/datasets/{id}/difficulty`: the dataset's latest difficulty profile (any status).
    `id` is the dataset's number, as in `dataset-12` (a job's `training_file` when it was
    launched from the web app), or the id of the file it was uploaded as (`file-…`)."""
    from webapp.datasets.models import Dataset
    from webapp.datasets.selectors import file_find

    projects = api_projects(request)
    raw = dataset_id.removeprefix("dataset-")
    if dataset_id.startswith("file-"):
        file = file_find(projects=projects, pk=dataset_id)
        dataset = file.dataset if file is not None else None
    else:
        dataset = Dataset.objects.filter(pk=int(raw), project__in=projects).first() if raw.isdigit() and len(raw) < 18 else None
    if dataset is None:
        raise ApiError(f"No dataset {dataset_id!r}.", status_code=404, param="dataset_id", code="not_found")
    profile = selectors.difficulty_latest(dataset=dataset)
    if profile is None:
        raise ApiError(f"Dataset {dataset_id!r} has no difficulty profile yet: start one on its page "
                       "(Datasets → the dataset → How hard are the tasks?).", status_code=404, code="not_found")
    return Response(selectors.difficulty_api_object(profile))
