"""The hooks contract (trainer.hooks), as the trainer keeps it on a tiny model: a step's
on_step comes before its on_checkpoint, on_checkpoint_removed names exactly the folders
pruning deleted, and pause/resume keep the same order."""

import json
from pathlib import Path

from trainer import Hooks, JsonlHooks, Tasks, TrainConfig, train


def digits_reward(sample, item):
    return sum(c.isdigit() for c in sample["output_text"][:4]) / 4


class CallLog(Hooks):
    """Every call in order; `pause_after` asks for a pause once that step has been reported."""

    def __init__(self, pause_after=None):
        self.calls, self.pause_after = [], pause_after

    def on_step(self, step, metrics, samples):
        self.calls.append(("step", step))

    def on_checkpoint(self, step, path, metrics):
        assert Path(path).is_dir()  # reported once it is complete on disk
        self.calls.append(("checkpoint", step, path))

    def on_checkpoint_removed(self, path):
        self.calls.append(("removed", path))

    def should_stop(self):
        steps = [c[1] for c in self.calls if c[0] == "step"]
        return "pause" if self.pause_after and steps and steps[-1] >= self.pause_after else None


def check_contract(calls, *, steps_before=()):
    """Assert the contract over one train() call's log; return (checkpointed, removed) paths."""
    reported_steps, checkpointed, removed = set(steps_before), {}, []
    for index, call in enumerate(calls):
        if call[0] == "step":
            reported_steps.add(call[1])
        elif call[0] == "checkpoint":
            step = call[1]
            assert step in reported_steps, f"checkpoint of step {step} before its on_step: {calls[:index + 1]}"
            later = [c for c in calls[:index] if c[0] == "step" and c[1] > step]
            assert not later, f"checkpoint of step {step} after a later step's on_step"
            checkpointed[call[2]] = step
        else:
            path = call[1]
            assert path in checkpointed or steps_before, f"{path} removed but never reported"
            assert not Path(path).exists(), f"{path} reported removed but still on disk"
            removed.append(path)
    return checkpointed, removed


def config(tiny_model, out, **kw):
    return TrainConfig(**{**dict(base_model=str(tiny_model), batch_size=2, group_size=4, max_completion_tokens=4,
                                 n_epochs=1, eval_interval=1, keep_checkpoints=1, output_dir=str(out), seed=3,
                                 eval_samples=2, samples_per_step=1), **kw})


def test_step_before_its_checkpoint_and_removals_are_told(tiny_model, tmp_path, qa_tasks):
    log = CallLog()
    cfg = config(tiny_model, tmp_path / "run", keep_checkpoints=0)  # keep only the latest: prune every time
    train(cfg, Tasks(train=qa_tasks, valid=qa_tasks[:2]), digits_reward, log)
    checkpointed, removed = check_contract(log.calls)
    assert sorted(checkpointed.values()) == [1, 2, 3, 4]
    on_disk = {str(p) for p in (tmp_path / "run" / "checkpoints").iterdir()}
    assert set(removed) == set(checkpointed) - on_disk and len(removed) == 3  # told exactly what went
    assert on_disk == {p for p, s in checkpointed.items() if s == 4}


def test_pause_and_resume_keep_the_order(tiny_model, tmp_path, qa_tasks):
    cfg = config(tiny_model, tmp_path / "run", eval_interval=10, n_epochs=2)
    first = CallLog(pause_after=2)
    paused = train(cfg, Tasks(train=qa_tasks), digits_reward, first)
    assert paused.status == "paused" and paused.step == 2
    checkpointed, _ = check_contract(first.calls)
    assert list(checkpointed.values()) == [2]  # the pause checkpoint, after step 2's on_step
    second = CallLog()
    done = train(cfg, Tasks(train=qa_tasks), digits_reward, second, resume_from=paused.last_checkpoint)
    assert done.status == "succeeded" and [c[1] for c in second.calls if c[0] == "step"] == list(range(3, 9))
    check_contract(second.calls, steps_before=(1, 2))


def test_jsonl_hooks_record_removals(tiny_model, tmp_path, qa_tasks):
    out = tmp_path / "logs"
    train(config(tiny_model, tmp_path / "run", keep_checkpoints=0), Tasks(train=qa_tasks[:4]), digits_reward,
          JsonlHooks(out))
    records = [json.loads(line) for line in (out / "checkpoints.jsonl").read_text().splitlines()]
    saved = [r["path"] for r in records if not r.get("removed")]
    gone = [r["path"] for r in records if r.get("removed")]
    assert len(saved) == 2 and gone == saved[:1] and not Path(gone[0]).exists()
