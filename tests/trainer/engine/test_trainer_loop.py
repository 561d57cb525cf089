import json

import pytest

from trainer import Hooks, Tasks, TrainConfig, train
from trainer.checkpoints import checkpoint_export_zip, list_checkpoints, prune_checkpoints
from trainer.loop import TaskError
from trainer.models import ModelLoadError


def digits_reward(sample, item):
    """Fraction of the first four characters that are digits: ~10% at random, learnable."""
    text = sample["output_text"][:4]
    return sum(c.isdigit() for c in text) / 4


class Recorder(Hooks):
    def __init__(self, stop_at=None, action=None):
        self.steps, self.events, self.checkpoints, self.samples = [], [], [], []
        self.stop_at, self.action = stop_at, action

    def on_step(self, step, metrics, samples):
        self.steps.append(metrics)
        self.samples.append(samples)

    def on_event(self, level, message, data=None):
        self.events.append((level, message))

    def on_checkpoint(self, step, path, metrics):
        self.checkpoints.append((step, path))

    def should_stop(self):
        if self.stop_at is not None and self.steps and self.steps[-1]["step"] >= self.stop_at:
            return self.action
        return None


def config(tiny_model, tmp_path, **kw):
    # the random tiny model never says EOS: every answer is cut off, so keep cut answers in the loss
    base = dict(base_model=str(tiny_model), batch_size=2, group_size=4, max_completion_tokens=6,
                n_epochs=1, eval_interval=2, output_dir=str(tmp_path / "run"), seed=1, learning_rate=1e-2,
                mask_truncated_completions=False)
    base.update(kw)
    return TrainConfig(**base)


def test_learning_raises_reward_on_a_tiny_model(tiny_model, tmp_path, qa_tasks):
    hooks = Recorder()
    cfg = config(tiny_model, tmp_path, method="full", learning_rate=3e-3, batch_size=4, group_size=8,
                 max_completion_tokens=6, n_epochs=40, eval_interval=20, samples_per_step=0)
    result = train(cfg, Tasks(train=qa_tasks), digits_reward, hooks)
    rewards = [m["train/reward_mean"] for m in hooks.steps]
    assert result.status == "succeeded" and result.step == 80
    start, end = sum(rewards[:10]) / 10, sum(rewards[-10:]) / 10
    assert start < 0.3 and end > 0.7, (start, end)


EXPECTED_KEYS = {
    "train/reward_mean", "train/reward_std", "train/grader/digits_reward_mean", "train/entropy",
    "train/clip_ratio", "train/completion_tokens_mean", "train/completion_tokens_max", "train/truncated_frac",
    "train/frac_zero_std_groups", "train/loss", "train/learning_rate", "time/sampling", "time/grading",
    "time/training", "time/step", "throughput/tokens_per_s", "epoch", "step", "total_steps", "trained_tokens",
}


def test_metrics_samples_checkpoints_and_kl(tiny_model, tmp_path, qa_tasks):
    hooks = Recorder()
    cfg = config(tiny_model, tmp_path, beta=0.1, num_iterations=2, samples_per_step=3, eval_samples=3,
                 loss_type="grpo", micro_batch_size=1)
    result = train(cfg, Tasks(train=qa_tasks[:4], valid=qa_tasks[4:]), digits_reward, hooks)
    assert result.status == "succeeded" and result.step == 2
    first, last = hooks.steps
    assert EXPECTED_KEYS <= set(first) and "train/kl" in first
    assert "valid/reward_mean" not in first and "valid/reward_mean" in last
    assert "valid/grader/digits_reward_mean" in last and last["valid/n_samples"] == 3
    train_samples = [s for s in hooks.samples[0]]
    assert len(train_samples) == 3
    s = train_samples[0]
    assert s["split"] == "train" and s["prompt"][0]["role"] == "user" and "answer" in s["item"]
    assert {"output_text", "reward", "sub_rewards", "errors", "step", "advantage"} <= set(s)
    assert sum(s["split"] == "valid" for s in hooks.samples[1]) == 3
    assert [c[0] for c in hooks.checkpoints] == [2]
    ckpt = hooks.checkpoints[0][1]
    assert result.best_checkpoint == ckpt == result.last_checkpoint
    names = {p.name for p in __import__("pathlib").Path(ckpt).iterdir()}
    assert {"adapter_model.safetensors", "adapter_config.json", "trainer_state.pt", "metrics.json",
            "train_config.json", "tokenizer.json"} <= names
    assert json.loads((__import__("pathlib").Path(ckpt) / "metrics.json").read_text())["step"] == 2
    zipped = checkpoint_export_zip(ckpt, tmp_path / "export.zip")
    import zipfile

    assert "step-000002/adapter_model.safetensors" in zipfile.ZipFile(zipped).namelist()


def _comparable(metrics):
    keys = ("train/reward_mean", "train/loss", "train/entropy", "train/grad_norm", "train/completion_tokens_mean")
    return [metrics[k] for k in keys]


@pytest.mark.parametrize("method", ["lora", "full"])
def test_pause_then_resume_matches_uninterrupted_run(tiny_model, tmp_path, qa_tasks, method):
    kw = dict(method=method, n_epochs=2, eval_interval=100, num_iterations=2, lora_dropout=0.1)
    straight = Recorder()
    train(config(tiny_model, tmp_path / "a", **kw), Tasks(train=qa_tasks), digits_reward, straight)
    assert len(straight.steps) == 8

    paused = Recorder(stop_at=3, action="pause")
    first = train(config(tiny_model, tmp_path / "b", **kw), Tasks(train=qa_tasks), digits_reward, paused)
    assert first.status == "paused" and first.step == 3
    assert first.last_checkpoint.endswith("step-000003")
    resumed = Recorder()
    second = train(config(tiny_model, tmp_path / "b", **kw), Tasks(train=qa_tasks), digits_reward, resumed,
                   resume_from=first.last_checkpoint)
    assert second.status == "succeeded" and second.step == 8
    combined = paused.steps + resumed.steps
    assert [m["step"] for m in combined] == list(range(1, 9))
    for a, b in zip(straight.steps, combined, strict=True):
        assert _comparable(a) == pytest.approx(_comparable(b), abs=1e-5)
    assert combined[-1]["trained_tokens"] == straight.steps[-1]["trained_tokens"]


def test_cancel_stops_at_once_and_keeps_checkpoints(tiny_model, tmp_path, qa_tasks):
    hooks = Recorder(stop_at=2, action="cancel")
    result = train(config(tiny_model, tmp_path, n_epochs=3, eval_interval=1), Tasks(train=qa_tasks),
                   digits_reward, hooks)
    assert result.status == "cancelled" and result.step == 2
    assert [m["step"] for m in hooks.steps] == [1, 2]
    assert [c[0] for c in hooks.checkpoints] == [1, 2]  # what existed stays; no extra pause checkpoint
    assert any("cancelled" in message for _, message in hooks.events)


def test_best_k_retention_keeps_best_plus_latest(tmp_path):
    root = tmp_path / "checkpoints"
    for step, reward in [(1, 0.1), (2, 0.9), (3, 0.5), (4, 0.8), (5, 0.2)]:
        path = root / f"step-{step:06d}"
        path.mkdir(parents=True)
        (path / "trainer_state.pt").write_bytes(b"")
        (path / "metrics.json").write_text(json.dumps({"valid/reward_mean": reward}))
    removed = prune_checkpoints(tmp_path, keep_best=2)
    assert sorted(p.name for p in removed) == ["step-000001", "step-000003"]
    assert [s for s, _, _ in list_checkpoints(tmp_path)] == [2, 4, 5]


def test_retention_during_training(tiny_model, tmp_path, qa_tasks):
    hooks = Recorder()
    cfg = config(tiny_model, tmp_path, n_epochs=3, eval_interval=1, keep_checkpoints=1, eval_samples=2)
    train(cfg, Tasks(train=qa_tasks, valid=qa_tasks[:2]), digits_reward, hooks)
    left = list_checkpoints(cfg.output_dir)
    assert len(hooks.checkpoints) == 12 and 1 <= len(left) <= 2
    assert left[-1][0] == 12  # the latest always stays


def test_grader_errors_are_left_out_of_rewards_and_learning(tiny_model, tmp_path, qa_tasks):
    def flaky(sample, item):
        if item["answer"] == "3":
            raise RuntimeError("boom")
        return {"reward": 1.0, "sub_rewards": {"a": 1.0, "b": 0.5}, "errors": {}}

    hooks = Recorder()
    train(config(tiny_model, tmp_path, max_steps=1, batch_size=8, dynamic_sampling=False),
          Tasks(train=qa_tasks), flaky, hooks)
    m = hooks.steps[0]
    assert m["train/grader_error_frac"] == pytest.approx(1 / 8)
    assert m["train/reward_mean"] == pytest.approx(1.0)  # over the graded answers only
    assert m["train/grader/b_mean"] == pytest.approx(0.5)
    assert m["train/no_signal"] == 1.0  # every graded answer scored 1: nothing to learn
    assert any("could not be graded" in msg and "boom" in msg for _, msg in hooks.events)


def test_bad_model_and_tasks_fail_before_training(tmp_path, qa_tasks, tiny_model):
    hooks = Recorder()
    with pytest.raises(ModelLoadError):
        train(TrainConfig(base_model=str(tmp_path / "missing"), output_dir=str(tmp_path)),
              Tasks(train=qa_tasks), digits_reward, hooks)
    with pytest.raises(TaskError, match="no tasks"):
        train(config(tiny_model, tmp_path), Tasks(train=[]), digits_reward, hooks)
    with pytest.raises(TaskError, match="task 1 has no `messages`"):
        train(config(tiny_model, tmp_path), Tasks(train=[qa_tasks[0], {"prompt": "x"}]), digits_reward, hooks)
    assert hooks.steps == []
