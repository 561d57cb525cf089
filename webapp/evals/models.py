"""Evaluations: one model × a set of tasks × a grader × sampling settings, and per-task results.

An `Evaluation` is what OpenAI's Evals API calls an `eval.run` (its `testing_criteria` are our
`grader_spec`, its data source our tasks and model): statuses use OpenAI's names so the API
face (issue “OpenAI Evals API”) can be added without a new table. A blind A/B round between
two evaluations is an `AbReview` with one `AbPick` per expert and task.
"""

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from webapp.datasets.models import Dataset
from webapp.graders.models import Grader
from webapp.projects.models import Project
from webapp.runs.models import Run, RunCheckpoint


def new_eval_id() -> str:
    return "evalrun_" + secrets.token_hex(12)


class EvalStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    IN_PROGRESS = "in_progress", "Running"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Cancelled"


ACTIVE_EVAL_STATUSES = (EvalStatus.QUEUED, EvalStatus.IN_PROGRESS)


class EvalPurpose(models.TextChoices):
    MANUAL = "manual", "Started by hand"
    RUN_BASE = "run_base", "A run's base model"
    RUN_TRAINED = "run_trained", "A run's best checkpoint"


class Evaluation(models.Model):
    id = models.CharField(primary_key=True, max_length=40, default=new_eval_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="evaluations")
    name = models.CharField(max_length=200, blank=True)
    purpose = models.CharField(max_length=20, choices=EvalPurpose.choices, default=EvalPurpose.MANUAL)

    # the model: a base model name (built-in or registered), or a run's checkpoint
    model_name = models.CharField(max_length=300, help_text="As the API names it: a base model or an ft: name.")
    base_model = models.CharField(max_length=500, help_text="What the trainer loads: built-in name or folder.")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="evaluations",
                            help_text="The run this evaluation belongs to (its base model or a checkpoint).")
    checkpoint = models.ForeignKey(RunCheckpoint, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="evaluations")
    checkpoint_step = models.PositiveIntegerField(null=True, blank=True)
    checkpoint_path = models.CharField(max_length=500, blank=True)

    # the tasks
    dataset = models.ForeignKey(Dataset, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations")
    split = models.CharField(max_length=10, default="valid", help_text="train, valid or all")

    # the grader, frozen
    grader = models.ForeignKey(Grader, null=True, blank=True, on_delete=models.SET_NULL, related_name="evaluations")
    grader_spec = models.JSONField()

    sampling = models.JSONField(default=dict, help_text="trainer.evaluation.SamplingSettings fields.")
    metadata = models.JSONField(default=dict, blank=True)

    status = models.CharField(max_length=20, choices=EvalStatus.choices, default=EvalStatus.QUEUED)
    error = models.TextField(blank=True)
    progress = models.CharField(max_length=200, blank=True)
    requested_cancel = models.BooleanField(default=False)
    total_items = models.PositiveIntegerField(default=0)
    done_items = models.PositiveIntegerField(default=0)

    # summary, written when it completes
    reward_mean = models.FloatField(null=True, blank=True)
    pass_rate = models.FloatField(null=True, blank=True, help_text="Share of tasks with an answer at full marks.")
    criteria_means = models.JSONField(default=dict, blank=True)
    error_items = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)

    worker_hostname = models.CharField(max_length=255, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["project", "-created_at"]), models.Index(fields=["run", "purpose"])]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """What the browser calls it: its name, else what it measured (“Trained model of
        triage-v1”), else its id."""
        if self.name:
            return self.name
        if self.run_id and self.purpose in (EvalPurpose.RUN_BASE, EvalPurpose.RUN_TRAINED):
            run = self.run.suffix or self.run_id
            if self.purpose == EvalPurpose.RUN_BASE:
                return f"Base model of {run}"
            return f"Trained model of {run}" + (f" (step {self.checkpoint_step})" if self.checkpoint_step else "")
        return self.pk

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_EVAL_STATUSES

    @property
    def progress_percent(self) -> int:
        return int(100 * self.done_items / self.total_items) if self.total_items else 0

    @property
    def n_samples(self) -> int:
        return int((self.sampling or {}).get("n_samples", 1))


class EvalItem(models.Model):
    """One task of an evaluation: what the model saw, its answers and every criterion's score."""

    evaluation = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField(help_text="Position in the task set, from 0.")
    task_key = models.CharField(max_length=32, help_text="Same for the same task in every evaluation.")
    task_id = models.BigIntegerField(null=True, blank=True, help_text="The dataset task, when there is one.")
    prompt = models.JSONField(help_text="The chat messages the model saw.")
    item = models.JSONField(help_text="The task's reference fields.")
    samples = models.JSONField(default=list, help_text="Every answer: output_text, reward, sub_rewards, errors, "
                                                       "completion_tokens, truncated, finish_reason.")
    output_text = models.TextField(help_text="The first answer.")
    reward = models.FloatField(help_text="Mean reward over the answers.")
    sub_rewards = models.JSONField(default=dict, help_text="Mean score per criterion.")
    errors = models.JSONField(default=dict, blank=True, help_text="The first answer's grading errors.")
    has_error = models.BooleanField(default=False)
    passed = models.BooleanField(default=False, help_text="An answer got full marks.")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["index"]
        constraints = [models.UniqueConstraint(fields=["evaluation", "index"], name="unique_eval_item_index")]
        indexes = [models.Index(fields=["evaluation", "task_key"])]

    def __str__(self) -> str:
        return f"{self.evaluation_id} task {self.index}"


class AbReview(models.Model):
    """A blind A/B round: experts compare the answers of two evaluations on the same tasks."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="ab_reviews")
    name = models.CharField(max_length=200, blank=True)
    baseline = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="+",
                                 help_text="Usually the base model.")
    candidate = models.ForeignKey(Evaluation, on_delete=models.CASCADE, related_name="+",
                                  help_text="Usually the trained model.")
    seed = models.BigIntegerField(default=0, help_text="Fixes which side each answer is shown on.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name or f"A/B review {self.pk}"


class AbChoice(models.TextChoices):
    CANDIDATE = "candidate", "Trained model better"
    BASELINE = "baseline", "Base model better"
    TIE = "tie", "Tie"


class AbPick(models.Model):
    review = models.ForeignKey(AbReview, on_delete=models.CASCADE, related_name="picks")
    task_key = models.CharField(max_length=32)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    choice = models.CharField(max_length=10, choices=AbChoice.choices)
    shown_left = models.CharField(max_length=10, help_text="Which side was on the left: baseline or candidate.")
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["review", "task_key", "user"], name="unique_ab_pick")]

    def __str__(self) -> str:
        return f"{self.review_id} {self.task_key}: {self.choice}"


# --- OpenAI's Evals API face (webapp/evals/openai_evals.py) -----------------------------------


def new_openai_eval_id() -> str:
    return "eval_" + secrets.token_hex(12)


class EvalDefinition(models.Model):
    """OpenAI's `eval`: the shape of the items and the testing criteria its runs share.

    Its runs are plain `Evaluation`s (linked by `EvalRunLink`), so they show on the
    evaluation pages like any other. Evaluations started in the browser are grouped into
    definitions by task set and grader (`browser_key`) the first time the API lists them.
    """

    id = models.CharField(primary_key=True, max_length=40, default=new_openai_eval_id, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="eval_definitions")
    name = models.CharField(max_length=200, blank=True)
    data_source_config = models.JSONField(default=dict, help_text="As given: type custom, item_schema, "
                                                                   "include_sample_schema.")
    testing_criteria = models.JSONField(default=list, help_text="Grader objects, each with its pass_threshold.")
    metadata = models.JSONField(default=dict, blank=True)
    browser_key = models.CharField(max_length=64, blank=True, db_index=True,
                                   help_text="Set when made from browser evaluations: task set + grader.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.name or self.pk


class EvalRunLink(models.Model):
    """An `Evaluation` seen as an `eval.run` of a definition, with the data source it was given."""

    evaluation = models.OneToOneField(Evaluation, on_delete=models.CASCADE, primary_key=True,
                                      related_name="openai_run")
    definition = models.ForeignKey(EvalDefinition, on_delete=models.CASCADE, related_name="run_links")
    data_source = models.JSONField(default=dict, help_text="As given (jsonl or completions).")
    rows = models.JSONField(default=list, help_text="[{item, sample?}] to grade; empty for browser evaluations, "
                                                     "whose tasks come from their dataset.")

    def __str__(self) -> str:
        return f"{self.definition_id}/{self.evaluation_id}"
