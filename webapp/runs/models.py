"""Training runs (OpenAI's fine-tuning jobs) and what they write while they train."""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from webapp.datasets.models import Dataset
from webapp.graders.models import Grader
from webapp.projects.models import Project


class RunStatus(models.TextChoices):
    VALIDATING_FILES = "validating_files", "Validating files"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (RunStatus.VALIDATING_FILES, RunStatus.QUEUED, RunStatus.RUNNING)
FINISHED_STATUSES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)


def new_run_id() -> str:
    return "ftjob-" + secrets.token_hex(12)


def new_checkpoint_id() -> str:
    return "ftckpt-" + secrets.token_hex(12)


class LocalBaseModel(models.Model):
    """A base model folder on the workers' disk that admins offer in the launch form."""

    name = models.CharField(max_length=100, unique=True)
    path = models.CharField(max_length=500, help_text="A Hugging Face model folder, the same path on every worker.")
    description = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Run(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_run_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    suffix = models.CharField(max_length=64, blank=True, help_text="A short name for the trained model.")
    dataset = models.ForeignKey(Dataset, on_delete=models.PROTECT, related_name="runs",
                                help_text="Training tasks (its train split, and its valid split "
                                          "unless a validation dataset is given).")
    valid_dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.PROTECT,
                                      related_name="valid_runs")
    training_file = models.CharField(max_length=40, blank=True, help_text="API: the file id given.")
    validation_file = models.CharField(max_length=40, blank=True)
    grader = models.ForeignKey(Grader, null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    grader_spec = models.JSONField(help_text="The grader JSON, frozen at launch.")
    base_model = models.CharField(max_length=500)
    hyperparameters = models.JSONField(default=dict, help_text="As given (OpenAI names, numbers or 'auto').")
    config = models.JSONField(default=dict, help_text="The frozen trainer.TrainConfig.")
    seed = models.BigIntegerField(default=0)
    metadata = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=20, choices=RunStatus.choices, default=RunStatus.VALIDATING_FILES)
    error = models.JSONField(null=True, blank=True, help_text="{code, message, param} when failed.")
    requested_action = models.CharField(max_length=10, blank=True, help_text="'cancel' or 'pause', for the worker.")
    resume_from = models.CharField(max_length=500, blank=True, help_text="Checkpoint folder to resume from.")

    current_step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    trained_tokens = models.BigIntegerField(default=0)
    best_valid_reward = models.FloatField(null=True, blank=True)
    latest_train_reward = models.FloatField(null=True, blank=True)
    estimated_finish = models.DateTimeField(null=True, blank=True)
    fine_tuned_model = models.CharField(max_length=200, blank=True)

    worker_hostname = models.CharField(max_length=255, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.id

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def progress_percent(self) -> int:
        return int(100 * self.current_step / self.total_steps) if self.total_steps else 0


class RunMetric(models.Model):
    """One step's flat metrics dict (slash-namespaced keys, as the trainer reports them)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="metrics")
    step = models.PositiveIntegerField()
    data = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)  # set when buffered, not when flushed

    class Meta:
        ordering = ["step"]
        constraints = [models.UniqueConstraint(fields=["run", "step"], name="unique_run_step_metric")]

    def __str__(self) -> str:
        return f"{self.run_id} step {self.step}"


class RunSample(models.Model):
    """A graded completion kept for review (training or validation)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="samples")
    step = models.PositiveIntegerField()
    split = models.CharField(max_length=5)
    task_key = models.CharField(max_length=32, help_text="Same for every sample of one task.")
    prompt = models.JSONField(help_text="The chat messages the model saw.")
    item = models.JSONField(help_text="The task's reference fields.")
    output_text = models.TextField()
    reward = models.FloatField()
    sub_rewards = models.JSONField(default=dict)
    errors = models.JSONField(default=dict)
    completion_tokens = models.PositiveIntegerField(default=0)
    truncated = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)  # set when buffered, not when flushed

    class Meta:
        ordering = ["step", "id"]
        indexes = [models.Index(fields=["run", "step"]), models.Index(fields=["run", "task_key"]),
                   models.Index(fields=["run", "reward"])]

    def __str__(self) -> str:
        return f"{self.run_id} step {self.step} sample {self.pk}"


class RunEvent(models.Model):
    """OpenAI's job events: human messages and one metrics event per step."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events")
    level = models.CharField(max_length=10, default="info")
    type = models.CharField(max_length=10, default="message")
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)  # set when buffered, not when flushed

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["run", "id"])]

    def __str__(self) -> str:
        return f"[{self.level}] {self.message[:60]}"


class RunCheckpoint(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_checkpoint_id, editable=False)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints")
    step = models.PositiveIntegerField()
    path = models.CharField(max_length=500)
    metrics = models.JSONField(default=dict)
    valid_reward = models.FloatField(null=True, blank=True)
    size_bytes = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-step"]

    def __str__(self) -> str:
        return f"{self.run_id} checkpoint at step {self.step}"


class SampleFeedback(models.Model):
    """An expert's “the grader was wrong here”, optionally about one criterion."""

    sample = models.ForeignKey(RunSample, on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    criterion = models.CharField(max_length=200, blank=True, help_text="Empty: the total was wrong.")
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"feedback on {self.sample_id}"


class PreflightStatus(models.TextChoices):
    PENDING = "pending", "Waiting for a worker"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class RunPreflight(models.Model):
    """Checks that would make a run pointless, computed by a worker before launch."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="preflights")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    grader_spec = models.JSONField()
    config = models.JSONField()
    status = models.CharField(max_length=10, choices=PreflightStatus.choices, default=PreflightStatus.PENDING)
    progress = models.CharField(max_length=200, blank=True)
    results = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"preflight {self.pk} ({self.status})"
