import socket

from django.db import transaction
from django.utils import timezone

from trainer.grading.isolation import sandbox_status

from .models import WorkerPing


@transaction.atomic
def worker_ping_send(*, queue: str = "default") -> WorkerPing:
    """Send a ping through one queue; a worker consuming it answers."""
    from .tasks import worker_ping_answer_task

    if queue not in WorkerPing.QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    ping = WorkerPing.objects.create(queue=queue)
    transaction.on_commit(lambda: worker_ping_answer_task.apply_async(args=[ping.pk], queue=queue))
    return ping


def worker_pings_send() -> list[WorkerPing]:
    """One ping per queue: the default workers and the training workers answer separately."""
    return [worker_ping_send(queue=queue) for queue in WorkerPing.QUEUES]


@transaction.atomic
def worker_ping_answer(*, ping: WorkerPing, hostname: str | None = None) -> WorkerPing:
    ping.answered_at = timezone.now()
    ping.worker_hostname = hostname or socket.gethostname()
    ping.sandbox = sandbox_status()
    ping.save(update_fields=["answered_at", "worker_hostname", "sandbox"])
    return ping
