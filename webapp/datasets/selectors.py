from django.db.models import Count, Q, QuerySet
from django.shortcuts import get_object_or_404

from webapp.projects.models import Project

from .models import Dataset, File, Split, Task


def dataset_list(*, project: Project) -> QuerySet[Dataset]:
    return project.datasets.annotate(
        train_count=Count("tasks", filter=Q(tasks__split=Split.TRAIN)),
        valid_count=Count("tasks", filter=Q(tasks__split=Split.VALID)),
    ).order_by("name", "-version")


def dataset_get(*, project: Project, pk: int) -> Dataset:
    """A dataset of this project, or 404 (never another project's)."""
    return get_object_or_404(Dataset, project=project, pk=pk)


def dataset_split_counts(*, dataset: Dataset) -> dict[str, int]:
    counts = {s: 0 for s in Split.values}
    for row in dataset.tasks.values("split").annotate(n=Count("id")):
        counts[row["split"]] = row["n"]
    return counts


def task_search(*, dataset: Dataset, query: str = "", split: str = "") -> QuerySet[Task]:
    tasks = dataset.tasks.all()
    if split in Split.values:
        tasks = tasks.filter(split=split)
    for word in query.lower().split()[:8]:
        tasks = tasks.filter(search_text__contains=word)
    return tasks.order_by("position")


def task_get(*, dataset: Dataset, pk: int) -> Task:
    return get_object_or_404(Task, dataset=dataset, pk=pk)


def file_list(*, projects: QuerySet[Project]) -> QuerySet[File]:
    return File.objects.filter(project__in=projects)
