"""Our API for insights: a run's findings and a dataset's difficulty profile."""

from __future__ import annotations

from rest_framework.decorators import api_view
from rest_framework.response import Response

from webapp.runs.api import _get_run

from . import selectors


@api_view(["GET"])
def job_diagnosis(request, job_id: str):
    """`GET /v1/fine_tuning/jobs/{id}/diagnosis`: the findings that apply now, most severe first."""
    run = _get_run(request, job_id)
    findings = selectors.run_findings(run=run)
    return Response({"object": "list", "job_id": run.pk, "step": run.current_step,
                     "data": [selectors.finding_object(f, run=run) for f in findings]})
