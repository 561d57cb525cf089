from django.db import models


class WorkerPing(models.Model):
    """A round trip through the task queue: proves a worker is consuming and can write rows."""

    QUEUES = {"default": "Default queue (checks, pre-flight)", "training": "Training queue (runs)"}

    created_at = models.DateTimeField(auto_now_add=True)
    queue = models.CharField(max_length=32, default="default", choices=list(QUEUES.items()))
    answered_at = models.DateTimeField(null=True, blank=True)
    worker_hostname = models.CharField(max_length=255, blank=True)
    # The answering worker's python-grader sandbox: trainer.grading.isolation.sandbox_status()
    sandbox = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"ping {self.pk} ({'answered' if self.answered_at else 'waiting'})"
