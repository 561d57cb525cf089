"""“Continue training from here”: a trained model is the base model of a new run (its merged
export is what the trainer loads), and that run's before/after evaluation starts from it."""

import pytest

from tests.webapp.evals.conftest import RUBRIC, make_adapter_checkpoint
from webapp.evals.exports import export_merged_execute
from webapp.evals.models import EvalPurpose
from webapp.runs.models import Run, RunCheckpoint, RunStatus
from webapp.runs.plan import LaunchError
from webapp.runs.services import run_create, run_execute

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def trained(tiny_setup, settings, tiny_model_path):
    project, users, dataset = tiny_setup
    run = Run.objects.create(project=project, dataset=dataset, grader_spec=RUBRIC, base_model="tiny", suffix="first",
                             status=RunStatus.SUCCEEDED, total_steps=4, fine_tuned_model="")
    folder = make_adapter_checkpoint(tiny_model_path, settings.STUDIO_DATA_DIR / "runs" / run.pk / "step-000004")
    ckpt = RunCheckpoint.objects.create(run=run, step=4, path=str(folder), valid_reward=0.5)
    Run.objects.filter(pk=run.pk).update(fine_tuned_model=f"ft:tiny:first:{run.pk}")
    run.refresh_from_db()
    return project, users, dataset, run, ckpt


def test_a_trained_model_is_the_base_of_a_new_run(trained, client_for):
    project, users, dataset, run, ckpt = trained
    page = client_for(users["editor"]).get(f"/p/{project.slug}/runs/new/?base_model={run.fine_tuned_model}").content.decode()
    assert "continue training from here" in page and f'value="{run.fine_tuned_model}" selected' in page
    kw = {"project": project, "user": users["editor"], "dataset": dataset, "grader_spec": RUBRIC,
          "base_model": run.fine_tuned_model, "hyperparameters": {"n_epochs": 1, "batch_size": 4, "eval_interval": 3,
                                                                  "compute_multiplier": 0.25},
          "overrides": {"max_completion_tokens": 4}, "suffix": "second"}
    with pytest.raises(LaunchError, match="being prepared as a base model"):
        run_create(**kw)  # the merged model is asked for; a worker prepares it
    export_merged_execute(checkpoint_id=ckpt.pk)
    second = run_create(**kw)
    assert second.config["base_model"].endswith(f"exports/{ckpt.pk}/merged")
    run_execute(run_id=second.pk)  # what the training worker does
    second.refresh_from_db()
    assert second.status == RunStatus.SUCCEEDED, second.error
    assert second.fine_tuned_model == f"ft:{run.fine_tuned_model}:second:{second.pk}"
    base_eval = second.evaluations.get(purpose=EvalPurpose.RUN_BASE)
    assert base_eval.model_name == run.fine_tuned_model  # "before" is the model it continued from
    with pytest.raises(LaunchError, match="No trained model"):
        run_create(**{**kw, "base_model": "ft:tiny:first:ftjob-missing"})
