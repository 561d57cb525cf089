"""The web app's trainer hooks keep the checkpoint rows in step with the folders on disk."""

import shutil

import pytest

from tests.webapp.runs.factories import make_run
from webapp.runs.hooks import DbHooks

pytestmark = pytest.mark.django_db


def test_a_checkpoint_pruned_after_the_last_save_is_forgotten(project_with_roles, dataset, tmp_path):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=0, total_steps=4)
    hooks = DbHooks(run)
    folders = {}
    for step in (2, 4):  # as trainer.loop._save: report the checkpoint, then prune, then say so
        folders[step] = tmp_path / f"step-{step:06d}"
        (folders[step] / "adapter").mkdir(parents=True)
        (folders[step] / "adapter" / "weights.bin").write_bytes(b"0" * 10)
        hooks.on_checkpoint(step, str(folders[step]), {"valid/reward_mean": step / 10})
    assert sorted(run.checkpoints.values_list("step", flat=True)) == [2, 4]

    shutil.rmtree(folders[2])  # pruned after the last save: no later on_checkpoint to notice it
    hooks.on_event("info", "Removed checkpoint step-000002 (not among the 1 best)",
                   {"path": str(folders[2]), "removed": True})
    assert list(run.checkpoints.values_list("step", flat=True)) == [4]
    hooks.flush()
    assert run.events.filter(message__startswith="Removed checkpoint step-000002").exists()
