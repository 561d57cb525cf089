from celery import shared_task

from .models import WorkerPing
from .services import worker_ping_answer


@shared_task(bind=True)
def worker_ping_answer_task(self, ping_id: int) -> None:
    ping = WorkerPing.objects.get(pk=ping_id)
    worker_ping_answer(ping=ping, hostname=self.request.hostname)
