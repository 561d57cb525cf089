"""The web app's trainer hooks follow the trainer's one-way contract (trainer.hooks): a step's
on_step, then its on_checkpoint, then on_checkpoint_removed for what was pruned."""

import shutil

import pytest

from tests.webapp.runs.factories import make_run
from webapp.runs.hooks import DbHooks
from webapp.runs.models import Run, RunMetric

pytestmark = pytest.mark.django_db


def checkpoint_folder(tmp_path, step):
    folder = tmp_path / f"step-{step:06d}"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "weights.bin").write_bytes(b"0" * 10)
    return folder


def test_a_checkpoint_pruned_after_the_last_save_is_forgotten(project_with_roles, dataset, tmp_path):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=0, total_steps=4)
    hooks = DbHooks(run)
    folders = {}
    for step in (2, 4):  # as trainer.loop: the step, its checkpoint, then what pruning removed
        folders[step] = checkpoint_folder(tmp_path, step)
        hooks.on_step(step, {"step": step, "valid/reward_mean": step / 10}, [])
        hooks.on_checkpoint(step, str(folders[step]), {"valid/reward_mean": step / 10})
    assert sorted(run.checkpoints.values_list("step", flat=True)) == [2, 4]

    shutil.rmtree(folders[2])  # pruned after the last save: no later on_checkpoint to notice it
    hooks.on_checkpoint_removed(str(folders[2]))
    hooks.on_event("info", "Removed checkpoint step-000002 (not among the 1 best)", {"path": str(folders[2])})
    assert list(run.checkpoints.values_list("step", flat=True)) == [4]
    hooks.flush()
    assert run.events.filter(message__startswith="Removed checkpoint step-000002").exists()
    assert Run.objects.get(pk=run.pk).best_valid_reward == 0.4


def test_removal_is_told_not_guessed_from_the_disk(project_with_roles, dataset, tmp_path):
    """Only on_checkpoint_removed forgets a checkpoint: a folder missing for another reason
    (shared storage hiccup) does not silently drop its row, and no hook rescans folders."""
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=0, total_steps=4)
    hooks = DbHooks(run)
    first, second = checkpoint_folder(tmp_path, 1), checkpoint_folder(tmp_path, 2)
    hooks.on_step(1, {"step": 1}, [])
    hooks.on_checkpoint(1, str(first), {"valid/reward_mean": 0.9})
    shutil.rmtree(first)
    hooks.on_step(2, {"step": 2}, [])
    hooks.on_checkpoint(2, str(second), {"valid/reward_mean": 0.1})
    assert sorted(run.checkpoints.values_list("step", flat=True)) == [1, 2]
    hooks.on_checkpoint_removed(str(first))
    assert list(run.checkpoints.values_list("step", flat=True)) == [2]
    assert Run.objects.get(pk=run.pk).best_valid_reward == 0.1  # the best left


def test_a_steps_rows_land_with_its_checkpoint(project_with_roles, dataset, tmp_path):
    """on_step buffers (writes are batched); the checkpoint that follows writes the step's rows
    in its own transaction, so a resume from it never leaves a hole in the metrics."""
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=0, total_steps=4)
    hooks = DbHooks(run, flush_seconds=3600)
    hooks.on_step(3, {"step": 3, "train/reward_mean": 0.5}, [])
    assert not RunMetric.objects.filter(run=run).exists()  # buffered
    hooks.on_checkpoint(3, str(checkpoint_folder(tmp_path, 3)), {"step": 3, "train/reward_mean": 0.5})
    assert list(RunMetric.objects.filter(run=run).values_list("step", flat=True)) == [3]
    run.refresh_from_db()
    assert run.current_step == 3 and run.latest_train_reward == 0.5 and run.checkpoints.get().step == 3


def test_live_diagnosis_reads_the_metrics_once_not_every_time(project_with_roles, dataset):
    """The hooks diagnose every few seconds while a run trains: the earlier steps are read from
    the database once (a resumed run's), then the hooks keep the window as the steps come."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from webapp.runs.models import RunEvent

    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=3, total_steps=40)
    hooks = DbHooks(run, flush_seconds=0, diagnose_seconds=0)
    reads = []
    for step in range(4, 12):
        with CaptureQueriesContext(connection) as queries:
            hooks.on_step(step, {"step": step, "train/truncated_frac": 0.8}, [])
        reads.append(sum('FROM "runs_runmetric"' in q["sql"] for q in queries.captured_queries))
    assert reads[0] == 1 and sum(reads[1:]) == 0  # read once, at the first diagnosis
    assert [s for s, _ in hooks._diagnosis_rows] == list(range(1, 12))  # the run's 3 stored steps, then ours
    events = RunEvent.objects.filter(run=run, data__finding="high_truncation")
    assert events.count() == 1 and events.get().level == "error"  # announced once, when it happened
    hooks.on_step(7, {"step": 7, "train/truncated_frac": 0.8}, [])  # a resumed step repeats
    assert [s for s, _ in hooks._diagnosis_rows][-2:] == [6, 7]
