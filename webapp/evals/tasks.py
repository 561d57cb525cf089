from celery import shared_task

from .services import evaluation_execute


@shared_task(ignore_result=True)
def evaluation_task(evaluation_id: str) -> None:
    evaluation_execute(evaluation_id=evaluation_id)


@shared_task(ignore_result=True)
def export_merged_task(checkpoint_id: str) -> None:
    from .exports import export_merged_execute

    export_merged_execute(checkpoint_id=checkpoint_id)
