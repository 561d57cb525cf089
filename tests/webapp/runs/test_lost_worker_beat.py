"""Lost-worker detection runs under `make run`: the Procfile's `beat` process sends the
periodic task and a real `default` worker runs the service (no read ever does it)."""

import os
import shlex
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tests.webapp.core import worker as celery_worker
from tests.webapp.runs.factories import make_run
from webapp.runs.models import Run, RunStatus

pytestmark = pytest.mark.django_db(transaction=True)


def procfile_command(name: str) -> list[str]:
    """The Procfile's command for process `name`, with this interpreter's celery."""
    for line in (settings.BASE_DIR / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            command = shlex.split(line.split(":", 1)[1])
            assert command[0] == ".venv/bin/celery", command
            return [sys.executable, "-m", "celery", *command[1:]]
    raise AssertionError(f"the Procfile has no {name!r} process")


def test_procfile_beat_and_a_worker_fail_a_run_whose_worker_is_gone(project_with_roles, dataset):
    project, users = project_with_roles
    run = make_run(project, dataset, users["owner"], steps=2, worker_hostname="trainer@vanished")
    Run.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    data_dir = settings.STUDIO_DATA_DIR
    env = {"STUDIO_LOST_CHECK_SECONDS": "1", "STUDIO_WORKER_LOST_SECONDS": "60"}
    with celery_worker.running_worker(data_dir, queues="default", env=env) as worker:
        log = (data_dir / "beat.log").open("w+")
        beat = subprocess.Popen(
            procfile_command("beat"), cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "STUDIO_DATA_DIR": str(data_dir), "DATABASE_URL": celery_worker.test_database_url(), **env})
        try:
            deadline = time.monotonic() + 60
            while Run.objects.get(pk=run.pk).status != RunStatus.FAILED:
                assert beat.poll() is None, (data_dir / "beat.log").read_text()[-3000:]
                assert time.monotonic() < deadline, ((data_dir / "beat.log").read_text()[-2000:]
                                                     + worker.log_path.read_text()[-2000:])
                time.sleep(0.3)
        finally:
            beat.terminate()
            beat.wait(15)
            log.close()
    run.refresh_from_db()
    assert run.error["code"] == "worker_lost" and "trainer@vanished" in run.error["message"]
    assert "runs_detect_lost_task" in worker.log_path.read_text()
    assert (data_dir / "celerybeat-schedule").exists() or list(data_dir.glob("celerybeat-schedule*"))
