"""STUDIO_GPUS_PER_RUN: a real worker trains one run in two torchrun processes (gloo on CPU)."""

import pytest

from tests.helpers import rft_row
from tests.webapp.core.worker import running_worker
from tests.webapp.runs.test_training_e2e import GRADER, HYPER, explain, wait_for
from webapp.datasets.services import dataset_create_from_rows
from webapp.runs.distributed import run_train_command
from webapp.runs.models import LocalBaseModel, Run, RunStatus
from webapp.runs.services import run_create

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def letters(project_with_roles, tiny_model_path):
    project, users = project_with_roles
    LocalBaseModel.objects.create(name="tiny", path=str(tiny_model_path))
    rows = [rft_row(f"say {w}", w) for w in "abcdefghijklmnop"]
    dataset = dataset_create_from_rows(project=project, name="letters", user=users["owner"],
                                       train_rows=rows[:12], valid_rows=rows[12:])
    return project, users, dataset


def test_the_command_is_torchrun_with_one_process_per_gpu():
    command = run_train_command(run_id="abc", processes=4)
    assert command[1:5] == ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4"]
    assert command[-3:][1:] == ["run_train", "abc"] and command[-3].endswith("manage.py")
    named = run_train_command(run_id="abc", processes=2, worker_hostname="trainer@gpu-3")
    assert named[-5:] == [named[-5], "run_train", "abc", "--worker-hostname", "trainer@gpu-3"]


@pytest.mark.parametrize("sharding", ["none", "fsdp"])
def test_a_worker_trains_one_run_in_two_processes(letters, settings, sharding):
    project, users, dataset = letters
    env = {"STUDIO_GPUS_PER_RUN": "2", "STUDIO_TRAINING_DEVICE": "cpu", "OMP_NUM_THREADS": "1",
           "STUDIO_SHARDING": sharding}
    with running_worker(settings.STUDIO_DATA_DIR, env=env) as worker:
        run = run_create(project=project, user=users["editor"], dataset=dataset, grader_spec=GRADER,
                         base_model="tiny", hyperparameters=HYPER, overrides={"max_completion_tokens": 6})
        run = wait_for(lambda: (r := Run.objects.get(pk=run.pk)).status in (RunStatus.SUCCEEDED, RunStatus.FAILED)
                       and r, timeout=300, explain=explain(run.pk, worker))
        assert run.status == RunStatus.SUCCEEDED, (run.error, worker.log_path.read_text()[-3000:])
    assert list(run.metrics.values_list("step", flat=True)) == [1, 2, 3, 4, 5, 6]  # one row per step, from process 0
    messages = list(run.events.filter(type="message").values_list("message", flat=True))
    where = "on 2 processes (cpu, FSDP)" if sharding == "fsdp" else "on 2 processes (cpu)"
    assert any(where in m for m in messages), messages
    assert run.worker_hostname.startswith("test-"), run.worker_hostname  # the Celery worker, not "inline"
    assert run.checkpoints.exists() and run.best_valid_reward is not None
