from celery import shared_task

from .models import GraderCheck
from .services import grader_check_run


@shared_task  # routed to the default queue ("default") by settings
def grader_check_task(check_id: int) -> None:
    grader_check_run(check=GraderCheck.objects.select_related("grader").get(pk=check_id))
