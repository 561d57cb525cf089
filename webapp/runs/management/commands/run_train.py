from django.conf import settings
from django.core.management.base import BaseCommand

from webapp.runs.distributed import run_execute_rank
from webapp.runs.services import run_execute


class Command(BaseCommand):
    help = ("Train one queued run in this process. Started by torchrun (one process per GPU) when "
            "STUDIO_GPUS_PER_RUN > 1; process 0 reports, the others train their share.")

    def add_arguments(self, parser):
        parser.add_argument("run_id")
        parser.add_argument("--worker-hostname", default="", help="the Celery worker that started the run")

    def handle(self, *args, run_id: str, worker_hostname: str = "", **options):
        from trainer import distributed

        dist = distributed.init_from_env(settings.STUDIO_TRAINING_DEVICE)
        try:
            if dist.main:
                run_execute(run_id=run_id, worker_hostname=worker_hostname)
            else:
                run_execute_rank(run_id=run_id, rank=dist.rank)
        finally:
            distributed.shutdown()
