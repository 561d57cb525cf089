from celery import shared_task
from django.conf import settings

from .distributed import run_execute_on_gpus
from .preflight import preflight_execute
from .services import run_execute, runs_detect_lost


# acks_late=False: a training task is acknowledged when a worker takes it, so a worker that
# dies mid-run does not silently restart it from scratch; the run is marked "worker lost"
# (missed heartbeat) and the user resumes it from its last checkpoint.
# With STUDIO_GPUS_PER_RUN > 1 the run trains in torchrun's processes, one per GPU.
@shared_task(acks_late=False, ignore_result=True)
def run_train_task(run_id: str) -> None:
    if settings.STUDIO_GPUS_PER_RUN > 1:
        run_execute_on_gpus(run_id=run_id, processes=settings.STUDIO_GPUS_PER_RUN)
    else:
        run_execute(run_id=run_id)


@shared_task(ignore_result=True)
def preflight_task(preflight_id: int) -> None:
    preflight_execute(preflight_id=preflight_id)


@shared_task(ignore_result=True)  # sent by celery beat every STUDIO_LOST_CHECK_SECONDS
def runs_detect_lost_task() -> None:
    runs_detect_lost()
