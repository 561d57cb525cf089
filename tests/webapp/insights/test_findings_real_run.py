"""A real (tiny) training run whose grader is broken: the trainer's own metrics make the
finding appear as a run event, on the run page and in the API."""

import pytest
from django.urls import reverse

from tests.helpers import rft_row
from webapp.datasets.services import dataset_create_from_rows
from webapp.runs.models import LocalBaseModel, RunStatus
from webapp.runs.services import run_create, run_execute

pytestmark = pytest.mark.django_db

# Reads {{item.answer}}; the tasks call it reference_answer: every grade is an error.
BROKEN = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
          "reference": "{{item.answer}}", "operation": "eq"}


def test_broken_grader_run_reports_grader_errors(project_with_roles, tiny_model_path, client_for, api_client_for):
    project, users = project_with_roles
    LocalBaseModel.objects.create(name="tiny", path=str(tiny_model_path))
    rows = [rft_row(f"say {w}", w) for w in "abcdefghijklmnop"]
    dataset = dataset_create_from_rows(project=project, name="letters", user=users["owner"],
                                       train_rows=rows[:12], valid_rows=rows[12:])
    run = run_create(project=project, user=users["editor"], dataset=dataset, grader_spec=BROKEN, base_model="tiny",
                     hyperparameters={"n_epochs": 1, "batch_size": 2, "compute_multiplier": 0.25,
                                      "eval_interval": 3, "reasoning_effort": "minimal"})
    run_execute(run_id=run.pk)  # what the training worker's task calls
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED and run.current_step >= 5
    assert run.metrics.order_by("step").last().data["train/grader_error_frac"] == 1.0

    event = run.events.get(data__finding="grader_errors")
    assert event.level == "error" and "The grader fails on many answers" in event.message
    body = api_client_for(users["viewer"], project).get(f"/v1/fine_tuning/jobs/{run.pk}/diagnosis").json()
    codes = [f["code"] for f in body["data"]]
    assert codes[0] == "grader_errors" and "no_signal" in codes
    html = client_for(users["viewer"]).get(reverse("runs:detail", args=[project.slug, run.pk])).content.decode()
    assert 'id="finding-grader_errors"' in html
