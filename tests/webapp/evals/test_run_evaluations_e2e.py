"""A real worker trains a tiny run; when it succeeds the same worker evaluates the base model
and the best checkpoint on the validation tasks, and the run page leads with the answer."""

import io
import zipfile

import pytest

from tests.webapp.core.worker import running_worker
from tests.webapp.evals.conftest import RUBRIC
from tests.webapp.runs.test_training_e2e import wait_for
from webapp.evals.exports import merged_ready
from webapp.evals.models import EvalPurpose, EvalStatus
from webapp.evals.selectors import run_best_checkpoint
from webapp.runs.models import Run, RunStatus
from webapp.runs.services import run_create

pytestmark = pytest.mark.django_db(transaction=True)

HYPER = {"n_epochs": 1, "batch_size": 4, "compute_multiplier": 0.25, "eval_interval": 1}


def test_finished_run_is_evaluated_before_and_after(tiny_setup, settings, client_for):
    project, users, dataset = tiny_setup
    with running_worker(settings.STUDIO_DATA_DIR) as worker:
        run = run_create(project=project, user=users["editor"], dataset=dataset, grader_spec=RUBRIC,
                         base_model="tiny", hyperparameters=HYPER,
                         overrides={"max_completion_tokens": 6, "learning_rate": 0.05}, suffix="letters")

        def evaluated():
            r = Run.objects.get(pk=run.pk)
            if r.status == RunStatus.FAILED:
                return r
            evals = list(r.evaluations.all())
            done = len(evals) == 2 and all(not e.is_active for e in evals)
            return r if done and merged_ready(run_best_checkpoint(run=r)) else None

        run = wait_for(evaluated, timeout=300, explain=lambda: worker.log_path.read_text()[-3000:])
    assert run.status == RunStatus.SUCCEEDED, run.error
    base = run.evaluations.get(purpose=EvalPurpose.RUN_BASE)
    trained = run.evaluations.get(purpose=EvalPurpose.RUN_TRAINED)
    assert base.status == trained.status == EvalStatus.COMPLETED, (base.error, trained.error)
    assert base.model_name == "tiny" and trained.model_name.endswith(f":{run.pk}:ckpt-step-{trained.checkpoint_step}")
    assert base.total_items == trained.total_items == 4 == base.items.count() == trained.items.count()
    best = max(run.checkpoints.all(), key=lambda c: (c.valid_reward, c.step))
    assert trained.checkpoint_step == best.step
    # greedy, same settings as the trainer's validation: the trained model's evaluation
    # reproduces the validation reward the trainer measured for that checkpoint
    assert trained.reward_mean == pytest.approx(best.valid_reward, abs=1e-6)
    html = client_for(users["viewer"]).get(f"/p/{project.slug}/runs/{run.pk}/").content.decode()
    assert f"base model {base.reward_mean:.3f}" in html and f"trained model {trained.reward_mean:.3f}" in html
    assert "better on" in html and 'id="eval-criteria-chart"' in html
    # the worker also prepared the complete model; the listed size is the adapter download's
    client = client_for(users["viewer"])
    response = client.get(f"/p/{project.slug}/runs/{run.pk}/checkpoints/{best.pk}/download/")
    zf = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sum(i.file_size for i in zf.infolist() if not i.filename.endswith("README.md")) == best.size_bytes
    card = zf.read(next(n for n in zf.namelist() if n.endswith("README.md"))).decode()
    assert f"| mean reward | {base.reward_mean:.3f} | {trained.reward_mean:.3f} |" in card
    merged = client.get(f"/p/{project.slug}/runs/{run.pk}/checkpoints/{best.pk}/download/?format=merged")
    assert merged.status_code == 200 and merged["Content-Type"] == "application/zip"
