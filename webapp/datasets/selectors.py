import json
import re
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from webapp.projects.models import Project

from .models import Dataset, File, Split, Task

_STAGING_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


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


def file_find(*, projects: QuerySet[Project], pk: str) -> File | None:
    """An API file of one of `projects` with its dataset, or None."""
    return File.objects.filter(pk=pk, project__in=projects).select_related("dataset").first()


# --- CSV uploads waiting for their column mapping -------------------------------------------


def staging_dir() -> Path:
    path = settings.STUDIO_DATA_DIR / "staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass(frozen=True)
class StagedCsv:
    token: str
    project: Project
    name: str
    train: str  # file names, as uploaded
    valid: str | None
    holdout_percent: int
    seed: int
    texts: dict[str, str]  # "train" (and "valid") CSV text


def staged_csv_get(*, project: Project, user, token: str) -> StagedCsv:
    """A CSV this user staged in this project (`services.csv_stage`); 404 when it expired or
    is someone else's."""
    expired = Http404("This CSV upload has expired; upload the file again.")
    if not _STAGING_TOKEN.match(token):
        raise expired
    folder = staging_dir()
    try:
        meta = json.loads((folder / f"{token}.json").read_text())
        texts = {split: (folder / f"{token}-{split}.csv").read_text(encoding="utf-8")
                 for split in ("train", "valid") if split == "train" or meta["valid"]}
    except (OSError, ValueError, KeyError):
        raise expired from None
    if meta.get("project") != project.pk or meta.get("user") != user.pk:
        raise expired
    return StagedCsv(token=token, project=project, name=meta["name"], train=meta["train"], valid=meta["valid"],
                     holdout_percent=meta["holdout_percent"], seed=meta["seed"], texts=texts)
