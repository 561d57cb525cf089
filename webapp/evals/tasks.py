from celery import shared_task

from .services import evaluation_execute


@shared_task(ignore_result=True)
def evaluation_task(evaluation_id: str) -> None:
    evaluation_execute(evaluation_id=evaluation_id)


@shared_task(ignore_result=True)
def export_merged_task(checkpoint_id: str) -> None:
    from .exports import export_merged_execute

    export_merged_execute(checkpoint_id=checkpoint_id)


@shared_task(ignore_result=True)
def model_prepare_task(name: str) -> None:
    """Convert a built-in base model once (GGUF -> safetensors in the model cache)."""
    from trainer.models import resolve_model

    resolve_model(name)


@shared_task(ignore_result=True)
def openai_eval_run_task(evaluation_id: str) -> None:
    """A run made through the Evals API (webapp/evals/openai_evals.py)."""
    from .openai_evals import eval_run_execute

    eval_run_execute(evaluation_id=evaluation_id)
