from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from webapp.datasets.models import Dataset, Task
from webapp.projects.models import Project

from .models import Grader, GraderCheck


def grader_list(*, project: Project) -> QuerySet[Grader]:
    return project.graders.select_related("dataset").order_by("name", "-version")


def grader_get(*, project: Project, pk: str) -> Grader:
    return get_object_or_404(Grader, project=project, pk=pk)


def grader_find(*, project: Project, pk: str) -> Grader | None:
    """A grader of this project, or None (for the API, which answers its own error)."""
    return Grader.objects.filter(project=project, pk=pk).first()


def grader_list_latest(*, project: Project) -> list[Grader]:
    """Each grader name's newest version (what the launch form offers), by name."""
    latest: dict[str, Grader] = {}
    for grader in grader_list(project=project):  # ordered by name, newest version first
        latest.setdefault(grader.name, grader)
    return list(latest.values())


def grader_versions(*, grader: Grader) -> QuerySet[Grader]:
    """Every version of this grader's name in its project, newest first."""
    return grader.project.graders.filter(name=grader.name).order_by("-version")


def grader_list_for_projects(*, projects) -> QuerySet[Grader]:
    return Grader.objects.filter(project__in=projects).select_related("project").order_by("-created_at", "-pk")


def check_get(*, grader: Grader, pk: int) -> GraderCheck:
    return get_object_or_404(GraderCheck, grader=grader, pk=pk)


def check_latest(*, grader: Grader) -> GraderCheck | None:
    return grader.checks.order_by("-created_at", "-pk").first()


def try_tasks(*, dataset: Dataset | None, limit: int = 200) -> list[Task]:
    """The tasks offered in try-it's picker (the first `limit`, in order)."""
    if dataset is None:
        return []
    return list(dataset.tasks.order_by("position", "pk")[:limit])
