"""Runs built straight with the ORM, as a finished or running training would leave them.

No training happens: `make_run` writes the rows the trainer's hooks write (metrics,
samples, events, a checkpoint folder) so views, the API and the browser can be tested fast.
"""

from __future__ import annotations

import math
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from webapp.datasets.services import dataset_lock
from webapp.runs.hooks import task_key
from webapp.runs.models import Run, RunCheckpoint, RunEvent, RunMetric, RunSample, RunStatus

GRADER_SPEC = {
    "type": "multi", "name": "rubric", "calculate_output": "0.5 * correct + 0.5 * polite",
    "graders": {
        "correct": {"type": "string_check", "name": "correct", "operation": "eq",
                    "input": "{{sample.output_text}}", "reference": "{{item.reference_answer}}"},
        "polite": {"type": "string_check", "name": "polite", "operation": "like",
                   "input": "{{sample.output_text}}", "reference": "please"},
    },
}
CRITERIA = ("correct", "polite")


def reward_at(step: int, total: int) -> float:
    """A reward curve that rises from 0.2 towards 0.9, deterministic."""
    return round(0.2 + 0.7 * (1 - math.exp(-3 * step / max(total, 1))), 4)


def step_metrics(step: int, total: int, *, eval_interval: int = 5) -> dict:
    r = reward_at(step, total)
    data = {
        "step": step, "total_steps": total, "train/reward_mean": r, "train/reward_std": 0.1,
        "train/grader/correct_mean": min(1.0, r + 0.05), "train/grader/polite_mean": max(0.0, r - 0.05),
        "train/kl": 0.001 * step, "train/entropy": 1.5 - 0.5 * r, "train/loss": 0.1,
        "train/clip_ratio": 0.0, "train/completion_tokens_mean": 40.0 + step % 7,
        "train/completion_tokens_max": 64, "train/truncated_frac": 0.0,
        "time/sampling": 0.5, "time/grading": 0.1, "time/training": 0.3, "time/step": 0.9,
        "throughput/tokens_per_s": 120.0,
    }
    if step % eval_interval == 0 or step == total:
        data.update({"valid/reward_mean": max(0.0, r - 0.1), "valid/reward_std": 0.15, "valid/n_samples": 20,
                     "valid/grader/correct_mean": r - 0.05, "valid/grader/polite_mean": r - 0.15})
    return data


def sample_row(run: Run, step: int, *, split: str = "train", task: int = 0, output: str | None = None,
               reward: float | None = None, sub_rewards: dict | None = None, errors: dict | None = None) -> RunSample:
    prompt = [{"role": "system", "content": "Answer briefly."},
              {"role": "user", "content": f"What is {task} + {task}?"}]
    reward = reward_at(step, run.total_steps or step) if reward is None else reward
    return RunSample(
        run=run, step=step, split=split, task_key=task_key(prompt), prompt=prompt,
        item={"reference_answer": str(2 * task), "id": f"t{task}"},
        output_text=output if output is not None else f"The answer is {2 * task}, step {step}.",
        reward=reward, sub_rewards=sub_rewards if sub_rewards is not None else
        {"correct": 1.0 if reward >= 0.5 else 0.0, "polite": round(reward, 3)},
        errors=errors or {}, completion_tokens=12, truncated=False,
    )


def add_steps(run: Run, first: int, last: int, *, samples_per_step: int = 2, eval_interval: int = 5) -> None:
    """Write steps first..last like DbHooks does (one batch), and move the run's progress."""
    total = run.total_steps
    RunMetric.objects.bulk_create(
        [RunMetric(run=run, step=s, data=step_metrics(s, total, eval_interval=eval_interval))
         for s in range(first, last + 1)])
    RunEvent.objects.bulk_create(
        [RunEvent(run=run, type="metrics", message=f"Step {s}/{total}", data={"step": s})
         for s in range(first, last + 1)])
    rows = []
    for s in range(first, last + 1):
        rows += [sample_row(run, s, task=i) for i in range(samples_per_step)]
        if s % eval_interval == 0:
            rows.append(sample_row(run, s, split="valid", task=100))
    RunSample.objects.bulk_create(rows)
    Run.objects.filter(pk=run.pk).update(
        current_step=last, latest_train_reward=reward_at(last, total), heartbeat_at=timezone.now())
    run.refresh_from_db()


def add_checkpoint(run: Run, step: int) -> RunCheckpoint:
    """A checkpoint folder on disk with small stand-ins for the files the trainer writes."""
    folder = settings.STUDIO_DATA_DIR / "runs" / run.pk / "checkpoints" / f"step-{step:06d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.safetensors").write_bytes(b"\0" * 256)
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "train_config.json").write_text('{"learning_rate": 1e-5}')
    (folder / "trainer_state.pt").write_bytes(b"optimizer state")
    valid = step_metrics(step, run.total_steps, eval_interval=1)["valid/reward_mean"]
    ckpt = RunCheckpoint.objects.create(run=run, step=step, path=str(folder), valid_reward=valid,
                                        metrics={"valid/reward_mean": valid},
                                        size_bytes=sum(f.stat().st_size for f in folder.iterdir()))
    best = max(c.valid_reward for c in run.checkpoints.all())
    Run.objects.filter(pk=run.pk).update(best_valid_reward=best)
    run.refresh_from_db()
    return ckpt


def make_run(project, dataset, user, *, steps: int = 10, total_steps: int | None = None,
             status: str = RunStatus.RUNNING, samples_per_step: int = 2, eval_interval: int = 5,
             checkpoint: bool = True, config: dict | None = None, **fields) -> Run:
    """A run with `steps` steps already written (status running unless told otherwise)."""
    total = total_steps if total_steps is not None else max(steps, 1) * 2
    now = timezone.now()
    finished = status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED)
    run = Run.objects.create(
        project=project, dataset=dataset, created_by=user, grader_spec=GRADER_SPEC,
        base_model=fields.pop("base_model", "tiny-test-model"), status=status, total_steps=total,
        hyperparameters={"n_epochs": "auto", "learning_rate_multiplier": 1.0},
        config=config if config is not None else {
            "base_model": "tiny-test-model", "learning_rate": 1e-5, "group_size": 4, "batch_size": 2,
            "eval_interval": eval_interval, "lora": {"rank": 8, "alpha": 16}},
        started_at=now - timedelta(minutes=5) if status != RunStatus.QUEUED else None,
        heartbeat_at=now if status == RunStatus.RUNNING else None,
        estimated_finish=now + timedelta(minutes=7) if status == RunStatus.RUNNING else None,
        finished_at=now if finished else None,
        **fields,
    )
    dataset_lock(dataset=dataset, reason=f"used by run {run.pk}")  # as run_create does
    RunEvent.objects.create(run=run, message=f"Validated {dataset.tasks.count()} tasks.")
    if steps:
        add_steps(run, 1, steps, samples_per_step=samples_per_step, eval_interval=eval_interval)
        if checkpoint:
            add_checkpoint(run, steps)
    return run
