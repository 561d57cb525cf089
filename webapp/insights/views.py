"""Insight screens: the run page's findings panel (a partial the page polls while live)."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_GET

from webapp.projects.access import ProjectAccess, project_view
from webapp.projects.models import Role
from webapp.runs import selectors as run_selectors

from .panels import findings_context


@require_GET
@project_view(Role.VIEWER)
def run_findings(request, access: ProjectAccess, pk: str):
    run = run_selectors.run_get(project=access.project, pk=pk)
    return render(request, "runs/_findings.html", findings_context(run=run, project=access.project))
