"""Tables for insights: task difficulty profiles and re-grades of finished runs."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.datasets.models import Dataset
from webapp.graders.models import Grader
from webapp.projects.models import Project
from webapp.runs.models import Run


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class WorkerJob(models.Model):
    """What a job a worker runs records: its status, error, who started it and when."""

    status = models.CharField(max_length=10, choices=JobStatus.choices, default=JobStatus.QUEUED)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        abstract = True

    @property
    def is_finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED)


class DifficultyProfile(WorkerJob):
    """k base-model answers per task, graded: which tasks are always, never or sometimes solved
    (`trainer.difficulty`). `results["tasks"][i]["id"]` is the dataset task's pk."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="difficulty_profiles")
    grader = models.ForeignKey(Grader, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    grader_spec = models.JSONField()
    base_model = models.CharField(max_length=500)
    k = models.PositiveSmallIntegerField()
    max_tasks = models.PositiveIntegerField()
    progress = models.CharField(max_length=200, blank=True)
    done_tasks = models.PositiveIntegerField(default=0)
    total_tasks = models.PositiveIntegerField(default=0)
    results = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"difficulty {self.pk} of {self.dataset_id} ({self.status})"


class Regrade(WorkerJob):
    """A finished run's stored answers scored again by another grader version (on a worker)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="regrades")
    grader = models.ForeignKey(Grader, null=True, on_delete=models.SET_NULL, related_name="+")
    grader_spec = models.JSONField()
    label = models.CharField(max_length=250)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    curve = models.JSONField(default=dict, blank=True,
                             help_text='{"train": {"x": steps, "y": mean rewards}, "valid": {...}, "original": {...}}')

    def __str__(self) -> str:
        return f"re-grade {self.pk} of {self.run_id} ({self.status})"
