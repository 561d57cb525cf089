import socket

from django.db import transaction
from django.utils import timezone

from trainer.grading.isolation import sandbox_status

from .models import WorkerPing


@transaction.atomic
def worker_ping_send() -> WorkerPing:
    from .tasks import worker_ping_answer_task

    ping = WorkerPing.objects.create()
    transaction.on_commit(lambda: worker_ping_answer_task.delay(ping.pk))
    return ping


@transaction.atomic
def worker_ping_answer(*, ping: WorkerPing, hostname: str | None = None) -> WorkerPing:
    ping.answered_at = timezone.now()
    ping.worker_hostname = hostname or socket.gethostname()
    ping.sandbox = sandbox_status()
    ping.save(update_fields=["answered_at", "worker_hostname", "sandbox"])
    return ping
