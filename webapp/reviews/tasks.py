from celery import shared_task

from .models import Rescore
from .services import rescore_run


@shared_task  # the default queue, like the grader checks
def rescore_task(rescore_id: int) -> None:
    rescore = Rescore.objects.select_related("grader").filter(pk=rescore_id).first()
    if rescore is not None:
        rescore_run(rescore=rescore)
