import secrets

from django.conf import settings
from django.db import models

from webapp.datasets.models import Dataset
from webapp.projects.models import Project


def new_grader_id() -> str:
    return "grader-" + secrets.token_hex(8)


class Grader(models.Model):
    """A saved, versioned grader. `spec` is the grader JSON the engine runs (OpenAI's shapes
    plus our extra types); `rubric` is the rubric builder's state when it was built there."""

    id = models.CharField(primary_key=True, max_length=40, default=new_grader_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="graders")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="versions")
    spec = models.JSONField(help_text="The grader JSON (validated by trainer.grading.validate_grader).")
    rubric = models.JSONField(null=True, blank=True, help_text="Rubric-builder rows, if built there.")
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="graders",
        help_text="The dataset whose fields the builder offers and whose tasks it tries.",
    )
    locked_reason = models.CharField(
        max_length=300, blank=True, help_text="Non-empty once a run has used this version."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_locked(self) -> bool:
        return bool(self.locked_reason)
