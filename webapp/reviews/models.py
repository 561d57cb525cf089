"""Grader calibration: answers that experts score, their scores, and the grader's scores.

A grader's reviews belong to its *name* in a project (every version of "Support rubric"
shares them), so after an edit the new version is measured on the same answers.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from webapp.datasets.models import Dataset, Task
from webapp.graders.models import Grader
from webapp.projects.models import Project
from webapp.runs.models import RunSample


class Source(models.TextChoices):
    RUN_SAMPLE = "run_sample", "A run's answer"
    FLAG = "flag", "Flagged “grader was wrong”"
    PASTED = "pasted", "Pasted answer"
    BASE_MODEL = "base_model", "Base model's answer (difficulty profile)"
    EVALUATION = "evaluation", "An evaluation's answer"


class ReviewItem(models.Model):
    """One answer to one task, as experts see it: the task, its reference fields, the answer."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="review_items")
    grader_name = models.CharField(max_length=200, help_text="The grader (all its versions) being calibrated.")
    source = models.CharField(max_length=12, choices=Source.choices)
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    task = models.ForeignKey(Task, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                             help_text="The dataset task it answers, when known (its reference can be edited).")
    sample = models.ForeignKey(RunSample, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    eval_item = models.ForeignKey("evals.EvalItem", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                  help_text="The evaluation task whose first answer this is (the answer is kept if the "
                                            "evaluation is deleted: expert scores outlive it).")
    prompt = models.JSONField(help_text="The chat messages the model saw.")
    item = models.JSONField(help_text="The task's reference fields (what graders read as {{item.…}}).")
    output_text = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        indexes = [models.Index(fields=["project", "grader_name"])]
        constraints = [models.UniqueConstraint(fields=["project", "grader_name", "sample"],
                                               name="one_review_item_per_sample"),
                       models.UniqueConstraint(fields=["project", "grader_name", "eval_item"],
                                               name="one_review_item_per_eval_item")]

    def __str__(self) -> str:
        return f"review item {self.pk} ({self.grader_name})"


class Review(models.Model):
    """An expert's own score for one criterion of one answer ('' = the total), given blind."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="reviews")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    criterion = models.CharField(max_length=200, blank=True)
    score = models.FloatField(help_text="0 (fail) to 1 (pass); in between for graded criteria.")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pk"]
        constraints = [models.UniqueConstraint(fields=["item", "user", "criterion"], name="one_review_per_expert")]

    def __str__(self) -> str:
        return f"{self.user_id} on {self.item_id}/{self.criterion or 'total'}: {self.score}"


class ItemGrade(models.Model):
    """What one grader spec gave one review item (kept per spec, so before/after an edit both stay)."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="grades")
    spec_hash = models.CharField(max_length=64)
    item_hash = models.CharField(max_length=64, help_text="The answer and reference fields graded.")
    reward = models.FloatField()
    sub_rewards = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["item", "spec_hash"], name="one_grade_per_spec")]

    def __str__(self) -> str:
        return f"grade of {self.item_id} by {self.spec_hash[:8]}: {self.reward}"


class GraderSpecSeen(models.Model):
    """Each grader spec that scored reviewed items: what "before the edit" compares with."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    grader_name = models.CharField(max_length=200)
    spec_hash = models.CharField(max_length=64)
    spec = models.JSONField()
    label = models.CharField(max_length=250, help_text="e.g. “v2” or “v2, edited 14:03”.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["project", "grader_name", "spec_hash"],
                                               name="one_seen_spec")]

    def __str__(self) -> str:
        return f"{self.grader_name} {self.label}"


class RescoreStatus(models.TextChoices):
    QUEUED = "queued", "Waiting for a worker"
    RUNNING = "running", "Scoring"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class Rescore(models.Model):
    """Scoring every reviewed answer with one grader version (inline, or on a worker)."""

    grader = models.ForeignKey(Grader, on_delete=models.CASCADE, related_name="rescores")
    spec_hash = models.CharField(max_length=64)
    status = models.CharField(max_length=10, choices=RescoreStatus.choices, default=RescoreStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"re-score {self.pk} of {self.grader_id} ({self.status})"
