"""A real worker process trains a tiny model end to end through the web app's services:
queued -> running -> metrics, samples, checkpoints -> succeeded; and a killed worker is
detected as lost, after which resume continues from the last checkpoint."""

import signal
import time

import pytest

from tests.helpers import rft_row
from tests.webapp.core.worker import running_worker
from webapp.datasets.services import dataset_create_from_rows
from webapp.runs.models import LocalBaseModel, Run, RunCheckpoint, RunStatus
from webapp.runs.services import run_create, run_resume

pytestmark = pytest.mark.django_db(transaction=True)

# Rewards that vary with the output, so there is something to learn and to chart.
GRADER = {"type": "string_check", "name": "has_a", "input": "{{sample.output_text}}", "reference": "a",
          "operation": "like"}
SLOW_GRADER = {"type": "python", "name": "slow",
               "source": "import time\ndef grade(sample, item):\n    time.sleep(0.05)\n"
                         "    return float('a' in sample['output_text'])\n"}
HYPER = {"n_epochs": 1, "batch_size": 2, "compute_multiplier": 0.25, "eval_interval": 2,
         "reasoning_effort": "minimal"}


@pytest.fixture
def setup(project_with_roles, tiny_model_path):
    project, users = project_with_roles
    LocalBaseModel.objects.create(name="tiny", path=str(tiny_model_path))
    rows = [rft_row(f"say {w}", w) for w in "abcdefghijklmnop"]
    dataset = dataset_create_from_rows(project=project, name="letters", user=users["owner"],
                                       train_rows=rows[:12], valid_rows=rows[12:])
    return project, users, dataset


def wait_for(fn, timeout=180.0, interval=0.25, explain=lambda: ""):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s. {explain()}")


def explain(run_id, worker=None):
    def text():
        run = Run.objects.get(pk=run_id)
        events = list(run.events.filter(type="message").order_by("id").values_list("message", flat=True))
        log = worker.log_path.read_text()[-3000:] if worker is not None else ""
        return f"status={run.status} step={run.current_step}/{run.total_steps} events={events}\n{log}"
    return text


def test_worker_trains_tiny_model_end_to_end(setup, settings, client_for):
    project, users, dataset = setup
    with running_worker(settings.STUDIO_DATA_DIR) as worker:
        run = run_create(project=project, user=users["editor"], dataset=dataset, grader_spec=GRADER,
                         base_model="tiny", hyperparameters=HYPER, overrides={"max_completion_tokens": 6})
        assert run.status == RunStatus.QUEUED and run.total_steps == 6
        seen = set()

        def finished():
            r = Run.objects.get(pk=run.pk)
            seen.add(r.status)
            return r if r.status in (RunStatus.SUCCEEDED, RunStatus.FAILED) else None

        run = wait_for(finished)
        assert run.status == RunStatus.SUCCEEDED, (run.error, worker.log_path.read_text()[-3000:])
    assert RunStatus.RUNNING in seen
    assert list(run.metrics.values_list("step", flat=True)) == [1, 2, 3, 4, 5, 6]
    last = run.metrics.last().data
    assert 0 <= last["train/reward_mean"] <= 1 and "time/sampling" in last and "valid/reward_mean" in last
    assert run.samples.filter(split="train").exists() and run.samples.filter(split="valid").exists()
    sample = run.samples.first()
    assert sample.prompt[-1]["role"] == "user" and "reference_answer" in sample.item
    checkpoints = list(run.checkpoints.all())
    assert checkpoints and all(c.size_bytes > 0 for c in checkpoints) and run.best_valid_reward is not None
    assert run.current_step == 6 and run.finished_at and run.fine_tuned_model.endswith(run.pk)
    messages = list(run.events.filter(type="message").values_list("message", flat=True))
    assert any(m.startswith("Started on worker test-") for m in messages)
    assert run.events.filter(type="metrics").count() == 6
    # the inputs are frozen now
    dataset.refresh_from_db()
    assert dataset.is_locked and run.pk in dataset.locked_reason


def test_killed_worker_is_lost_then_resume_continues_from_checkpoint(setup, settings):
    project, users, dataset = setup
    settings.STUDIO_WORKER_LOST_SECONDS = 3
    fast_beat = {"STUDIO_HEARTBEAT_SECONDS": "1"}
    with running_worker(settings.STUDIO_DATA_DIR, env=fast_beat) as worker:
        run = run_create(project=project, user=users["editor"], dataset=dataset, grader_spec=SLOW_GRADER,
                         base_model="tiny", hyperparameters={**HYPER, "n_epochs": 50},
                         overrides={"max_completion_tokens": 6, "max_steps": 12})
        wait_for(lambda: RunCheckpoint.objects.filter(run=run, step__gte=2).exists(), explain=explain(run.pk, worker))
        worker.send_signal(signal.SIGKILL)  # the machine "dies" mid-run
        worker.wait(10)
    killed_at = Run.objects.get(pk=run.pk)
    assert killed_at.status == RunStatus.RUNNING and killed_at.current_step < 12

    from webapp.runs.services import runs_detect_lost

    def lost():  # what celery beat does every STUDIO_LOST_CHECK_SECONDS
        runs_detect_lost()
        return (r := Run.objects.get(pk=run.pk)).status == RunStatus.FAILED and r

    run = wait_for(lost, timeout=15)
    assert run.error["code"] == "worker_lost" and run.error["message"].startswith("worker lost")
    checkpoint_step = run.checkpoints.order_by("-step").first().step

    with running_worker(settings.STUDIO_DATA_DIR, env=fast_beat) as worker:
        run = run_resume(run=run)
        assert run.status == RunStatus.QUEUED and run.resume_from
        run = wait_for(lambda: (r := Run.objects.get(pk=run.pk)).status in (RunStatus.SUCCEEDED, RunStatus.FAILED) and r,
                       explain=explain(run.pk, worker))
        assert run.status == RunStatus.SUCCEEDED, (run.error, worker.log_path.read_text()[-3000:])
    assert list(run.metrics.values_list("step", flat=True)) == list(range(1, 13))
    assert run.events.filter(message__startswith="Resumed from").exists()
    assert run.events.filter(message=f"Resuming from the checkpoint at step {checkpoint_step}.").exists()


def test_cancel_and_pause_while_running(setup, settings):
    project, users, dataset = setup
    from webapp.runs.services import run_cancel, run_pause

    with running_worker(settings.STUDIO_DATA_DIR):
        slow = dict(project=project, user=users["editor"], dataset=dataset, grader_spec=SLOW_GRADER,
                    base_model="tiny", hyperparameters={**HYPER, "n_epochs": 50},
                    overrides={"max_completion_tokens": 6, "max_steps": 200})
        run = run_create(**slow)
        wait_for(lambda: Run.objects.get(pk=run.pk).current_step >= 1)
        run_pause(run=run)
        run = wait_for(lambda: (r := Run.objects.get(pk=run.pk)).status == RunStatus.PAUSED and r)
        assert run.checkpoints.exists()  # pausing saves a checkpoint
        run_resume(run=run)
        wait_for(lambda: Run.objects.get(pk=run.pk).status == RunStatus.RUNNING)
        run_cancel(run=run)
        run = wait_for(lambda: (r := Run.objects.get(pk=run.pk)).status == RunStatus.CANCELLED and r)
        assert run.current_step < 200 and run.finished_at
