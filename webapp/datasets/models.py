import secrets

from django.conf import settings
from django.db import models

from webapp.projects.models import Project


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    VALID = "valid", "Validation"


class Dataset(models.Model):
    """A named, versioned set of tasks in a project."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="datasets")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    version = models.PositiveIntegerField(default=1)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="versions",
        help_text="The dataset this one was duplicated from.",
    )
    source = models.CharField(max_length=500, blank=True, help_text="Where the tasks came from.")
    locked_reason = models.CharField(
        max_length=300, blank=True,
        help_text="Non-empty once a run has used the dataset: it can no longer be edited.",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def is_locked(self) -> bool:
        return bool(self.locked_reason)


class Task(models.Model):
    """One task: the verbatim RFT row (`messages` + reference fields) and its split."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="tasks")
    split = models.CharField(max_length=5, choices=Split.choices, default=Split.TRAIN)
    position = models.PositiveIntegerField()
    data = models.JSONField()
    search_text = models.TextField(blank=True, help_text="Lower-cased prompt and fields, for search.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position"]
        indexes = [models.Index(fields=["dataset", "split", "position"])]

    def __str__(self) -> str:
        return f"task {self.position} of {self.dataset}"


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


class File(models.Model):
    """An uploaded task file, addressed as in OpenAI's Files API (`file-...`)."""

    id = models.CharField(primary_key=True, max_length=40, default=new_file_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="files")
    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="files"
    )
    filename = models.CharField(max_length=255)
    purpose = models.CharField(max_length=40, default="fine-tune")
    bytes = models.PositiveBigIntegerField()
    path = models.CharField(max_length=500, help_text="Relative to STUDIO_DATA_DIR.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.id} ({self.filename})"
