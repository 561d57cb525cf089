"""Celery tasks for insights: take ids, call one service (queue `default`)."""

from celery import shared_task

from .services import difficulty_execute, regrade_execute


@shared_task
def difficulty_task(profile_id: int) -> None:
    difficulty_execute(profile_id=profile_id)


@shared_task
def regrade_task(regrade_id: int) -> None:
    regrade_execute(regrade_id=regrade_id)
