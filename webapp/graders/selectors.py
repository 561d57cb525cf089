from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from webapp.projects.models import Project

from .models import Grader


def grader_list(*, project: Project) -> QuerySet[Grader]:
    return project.graders.select_related("dataset").order_by("name", "-version")


def grader_get(*, project: Project, pk: str) -> Grader:
    return get_object_or_404(Grader, project=project, pk=pk)
