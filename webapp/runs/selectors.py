from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404

from webapp.projects.models import Project

from .models import Run, RunSample
from .services import run_detect_lost, runs_detect_lost


def run_list(*, project: Project) -> QuerySet[Run]:
    runs_detect_lost(runs=project.runs.all())
    return project.runs.select_related("dataset", "grader", "created_by")


def run_get(*, project: Project, pk: str) -> Run:
    """A run of this project (404 otherwise); a run whose worker vanished is marked lost first."""
    run = get_object_or_404(Run.objects.select_related("dataset", "grader", "valid_dataset"), project=project, pk=pk)
    if run_detect_lost(run=run):
        run.refresh_from_db()
    return run


def run_feedback_counts(*, run: Run) -> dict[str, int]:
    """Disagreements per criterion ('' = the total) for the run page."""
    rows = (RunSample.objects.filter(run=run, feedback__isnull=False)
            .values("feedback__criterion").annotate(n=Count("feedback")))
    return {r["feedback__criterion"]: r["n"] for r in rows}
