import secrets

from django.conf import settings
from django.db import models

from webapp.core import crypto
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


class CheckStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class GraderCheck(models.Model):
    """One "check against references": the grader run over every task's own reference answer.

    A good rubric gives every reference full marks; `failing` lists the tasks where it did
    not (and which criteria were responsible), `rewards` every task's total for the histogram.
    """

    grader = models.ForeignKey(Grader, on_delete=models.CASCADE, related_name="checks")
    dataset = models.ForeignKey(Dataset, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=10, choices=CheckStatus.choices, default=CheckStatus.QUEUED)
    total = models.PositiveIntegerField(default=0, help_text="Tasks to check.")
    checked = models.PositiveIntegerField(default=0, help_text="Tasks checked so far.")
    full_marks = models.PositiveIntegerField(default=0)
    rewards = models.JSONField(default=list, help_text="Every task's total, in task order.")
    failing = models.JSONField(default=list, help_text="Tasks below full marks (capped), with the criteria responsible.")
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"check {self.pk} of {self.grader}"

    @property
    def unlisted(self) -> int:
        """Tasks below full marks beyond the listed ones."""
        return max(0, self.total - self.full_marks - len(self.failing))

    @property
    def is_finished(self) -> bool:
        return self.status in (CheckStatus.DONE, CheckStatus.FAILED)


class JudgeEndpoint(models.Model):
    """An OpenAI-compatible chat endpoint for `score_model` / `label_model` graders.

    Graders name it in their `model` field. The API key stays on the server: the admin form
    never shows it back, no page or API response contains it, and the database holds it
    only encrypted (`webapp.core.crypto`); `api_key` reads and writes the plaintext.
    """

    name = models.CharField(max_length=100, unique=True, help_text="What graders write in `model`, e.g. gpt-4o-mini.")
    base_url = models.URLField(help_text="e.g. https://api.openai.com/v1 or http://gpu-box:8000/v1")
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    model = models.CharField(max_length=200, blank=True, help_text="The endpoint's model id, if not the name.")
    timeout_s = models.FloatField(default=60.0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def api_key(self) -> str:
        """The key in plaintext; raises `crypto.DecryptionError` if SECRET_KEY changed."""
        return crypto.decrypt(self.api_key_encrypted)

    @api_key.setter
    def api_key(self, value: str) -> None:
        self.api_key_encrypted = crypto.encrypt(value or "")
