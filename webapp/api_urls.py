"""The REST API under /v1/, in OpenAI's shapes where OpenAI has an equivalent."""

from django.urls import path

from webapp.datasets import api as files_api
from webapp.evals import api as evals_api
from webapp.evals import chat_api
from webapp.evals import openai_evals_api as oe_api
from webapp.graders import api as graders_api
from webapp.insights import api as insights_api
from webapp.reviews import api as reviews_api
from webapp.runs import api as jobs_api

urlpatterns = [
    path("files", files_api.files, name="api_files"),
    path("files/<str:file_id>", files_api.file_detail, name="api_file_detail"),
    path("files/<str:file_id>/content", files_api.file_content, name="api_file_content"),
    path("fine_tuning/alpha/graders/validate", graders_api.grader_validate, name="api_grader_validate"),
    path("fine_tuning/alpha/graders/run", graders_api.grader_run, name="api_grader_run"),
    path("graders", graders_api.graders, name="api_graders"),
    path("graders/<str:grader_id>", graders_api.grader_detail, name="api_grader_detail"),
    path("fine_tuning/jobs", jobs_api.jobs, name="api_jobs"),
    path("fine_tuning/jobs/<str:job_id>", jobs_api.job_detail, name="api_job_detail"),
    path("fine_tuning/jobs/<str:job_id>/cancel", jobs_api.job_cancel, name="api_job_cancel"),
    path("fine_tuning/jobs/<str:job_id>/pause", jobs_api.job_pause, name="api_job_pause"),
    path("fine_tuning/jobs/<str:job_id>/resume", jobs_api.job_resume, name="api_job_resume"),
    path("fine_tuning/jobs/<str:job_id>/events", jobs_api.job_events, name="api_job_events"),
    path("fine_tuning/jobs/<str:job_id>/checkpoints", jobs_api.job_checkpoints, name="api_job_checkpoints"),
    path("fine_tuning/jobs/<str:job_id>/metrics", jobs_api.job_metrics, name="api_job_metrics"),
    path("fine_tuning/jobs/<str:job_id>/samples", jobs_api.job_samples, name="api_job_samples"),
    # the expert's loop (webapp.insights, webapp.reviews)
    path("fine_tuning/jobs/<str:job_id>/diagnosis", insights_api.job_diagnosis, name="api_job_diagnosis"),
    path("datasets/<str:dataset_id>/difficulty", insights_api.dataset_difficulty, name="api_dataset_difficulty"),
    path("reviews", reviews_api.reviews, name="api_reviews"),
    path("graders/<str:grader_id>/agreement", reviews_api.grader_agreement, name="api_grader_agreement"),
    path("graders/<str:grader_id>/rescore", reviews_api.grader_rescore, name="api_grader_rescore"),
    path("fine_tuning/jobs/<str:job_id>/checkpoints/<str:checkpoint_id>/download", evals_api.checkpoint_download,
         name="api_checkpoint_download"),
    path("chat/completions", chat_api.chat_completions, name="api_chat_completions"),
    path("models", chat_api.models, name="api_models"),
    path("models/<path:model_id>", chat_api.model_detail, name="api_model_detail"),
    # OpenAI's Evals API over our evaluations (webapp/evals/openai_evals.py)
    path("evals", oe_api.evals, name="api_evals"),
    path("evals/<str:eval_id>", oe_api.eval_detail, name="api_eval_detail"),
    path("evals/<str:eval_id>/runs", oe_api.eval_runs, name="api_eval_runs"),
    path("evals/<str:eval_id>/runs/<str:run_id>", oe_api.eval_run_detail, name="api_eval_run_detail"),
    path("evals/<str:eval_id>/runs/<str:run_id>/cancel", oe_api.eval_run_cancel, name="api_eval_run_cancel"),
    path("evals/<str:eval_id>/runs/<str:run_id>/output_items", oe_api.eval_run_output_items,
         name="api_eval_run_output_items"),
    path("evals/<str:eval_id>/runs/<str:run_id>/output_items/<str:output_item_id>",
         oe_api.eval_run_output_item_detail, name="api_eval_run_output_item_detail"),
]
