from celery import shared_task

from .services import evaluation_execute


@shared_task(ignore_result=True)
def evaluation_task(evaluation_id: str) -> None:
    evaluation_execute(evaluation_id=evaluation_id)
