"""One run across several GPUs of a training worker (`STUDIO_GPUS_PER_RUN`).

The Celery task does not train in its own process then: it starts `torchrun` with one
process per GPU, each running `manage.py run_train <run id>`. Process 0 is the run's usual
`run_execute` (status, hooks that write rows, heartbeat); the others wait until process 0
has started the run, then call `trainer.train` with the same config, tasks and grader and no
hooks (see `trainer.distributed`). Celery keeps distributing runs across machines; torchrun
only spreads one run over the GPUs of one machine.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import time

from django.conf import settings

from .models import Run, RunStatus
from .selectors import run_training_rows

log = logging.getLogger(__name__)

#: How long processes 1..N-1 wait for process 0 to mark the run as running.
START_WAIT_SECONDS = 300


def run_train_config(run: Run):
    """The run's `TrainConfig` as this worker trains it: with `STUDIO_SHARDING=fsdp` its GPUs
    share the model (FSDP). How the model is held changes no number the run learns, nor its
    checkpoint files, so a run may move between workers that differ in this."""
    from trainer.config import TrainConfig

    config = TrainConfig.from_dict(run.config)
    return config.replace(sharding="fsdp") if settings.STUDIO_SHARDING == "fsdp" else config


def run_train_command(*, run_id: str, processes: int, worker_hostname: str = "") -> list[str]:
    """The torchrun command line that trains `run_id` on `processes` GPUs of this machine;
    `worker_hostname` (the Celery worker's) is recorded on the run, as for a one-GPU run, so
    the lost-worker checks know whose run it is."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               str(settings.BASE_DIR / "manage.py"), "run_train", str(run_id)]
    return command + (["--worker-hostname", worker_hostname] if worker_hostname else [])


def run_execute_on_gpus(*, run_id: str, processes: int) -> int:
    """Train `run_id` with `processes` processes and wait for them; returns torchrun's exit code.

    A crash that leaves the run "running" stops its heartbeat, so the lost-worker check
    fails it with a message, as for any worker that dies."""
    from celery import current_task

    hostname = getattr(getattr(current_task, "request", None), "hostname", "") or ""
    command = run_train_command(run_id=run_id, processes=processes, worker_hostname=hostname)
    log.info("run %s: starting %s", run_id, " ".join(command))
    code = subprocess.run(command, cwd=settings.BASE_DIR, check=False).returncode
    if code:
        log.error("run %s: torchrun exited with %s", run_id, code)
    return code


def run_execute_rank(*, run_id: str, rank: int) -> None:
    """Process `rank` > 0 of a run: train its share once process 0 has started the run."""
    from trainer import Tasks, train

    deadline = time.monotonic() + START_WAIT_SECONDS
    while True:
        run = Run.objects.filter(pk=run_id).first()
        if run is None or run.status not in (RunStatus.QUEUED, RunStatus.RUNNING):
            log.info("run %s is not going to train (process %s stops)", run_id, rank)
            return
        if run.status == RunStatus.RUNNING:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} did not start within {START_WAIT_SECONDS} s")
        time.sleep(0.5)
    train_rows, valid_rows = run_training_rows(run=run)
    train(run_train_config(run), Tasks(train=train_rows, valid=valid_rows), run.grader_spec, None,
          resume_from=run.resume_from or None)
