"""Dynamic sampling: groups whose answers all scored the same are replaced, never trained on."""

import pytest
import torch
from safetensors.torch import load_file

import trainer.loop as loop
from trainer import Hooks, Tasks, TrainConfig, train

SOLVED = {"3", "7", "11", "15"}  # tasks every answer "solves": no spread, nothing to learn


def reward(sample, item):
    if item["answer"] in SOLVED:
        return 1.0
    return len(set(sample["output_text"])) / 10


class Recorder(Hooks):
    def __init__(self):
        self.steps, self.events = [], []

    def on_step(self, step, metrics, samples):
        self.steps.append(metrics)

    def on_event(self, level, message, data=None):
        self.events.append((level, message, data or {}))


def cfg(model, tmp_path, **kw):
    base = dict(base_model=str(model), batch_size=4, group_size=4, max_completion_tokens=5, n_epochs=2,
                eval_interval=100, output_dir=str(tmp_path / "run"), seed=0, mask_truncated_completions=False,
                samples_per_step=0, method="full", learning_rate=1e-4)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture
def trained_prompts(monkeypatch):
    """The prompts of every group the update trains on."""
    seen: list[list[int]] = []
    real = loop.pack_rollout

    def spy(prompts, *args, **kwargs):
        seen.extend(prompts)
        return real(prompts, *args, **kwargs)

    monkeypatch.setattr(loop, "pack_rollout", spy)
    return seen


def test_dynamic_sampling_keeps_no_zero_spread_group(tiny_model, tmp_path, qa_tasks, trained_prompts):
    from trainer.models import load_model
    from trainer.rollout import encode_prompt

    _, tok = load_model(str(tiny_model))
    solved = {tuple(encode_prompt(tok, t["messages"], max_tokens=512)[0]) for t in qa_tasks if t["answer"] in SOLVED}
    hooks = Recorder()
    train(cfg(tiny_model, tmp_path), Tasks(train=qa_tasks), reward, hooks)
    assert len(hooks.steps) == 4
    assert trained_prompts and not any(tuple(p) in solved for p in trained_prompts)
    for m in hooks.steps:
        assert m["train/no_signal"] == 0.0
        # the first round's groups with spread are all kept, replacements fill up to the batch size
        with_spread = round(4 * (1 - m["train/frac_zero_std_groups"]))
        assert with_spread <= m["train/groups_kept"] <= 4
        assert (m["train/sampling_rounds"] > 1) == (with_spread < 4)
    assert any(m["train/groups_sampled"] > 4 for m in hooks.steps)


def test_without_dynamic_sampling_the_batch_is_trained_as_drawn(tiny_model, tmp_path, qa_tasks, trained_prompts):
    hooks = Recorder()
    train(cfg(tiny_model, tmp_path, dynamic_sampling=False), Tasks(train=qa_tasks), reward, hooks)
    assert all(m["train/groups_sampled"] == 4 and m["train/sampling_rounds"] == 1 for m in hooks.steps)
    assert len(trained_prompts) == 4 * len(hooks.steps)


def test_a_step_with_no_signal_leaves_the_weights_alone_and_says_so(tiny_model, tmp_path, qa_tasks):
    hooks = Recorder()
    result = train(cfg(tiny_model, tmp_path, max_steps=2, eval_interval=1), Tasks(train=qa_tasks),
                   lambda sample, item: 0.5, hooks)
    assert result.status == "succeeded"
    assert [m["train/no_signal"] for m in hooks.steps] == [1.0, 1.0]
    assert all(m["train/groups_kept"] == 0 and m["train/sampling_rounds"] == 2 for m in hooks.steps)
    messages = [msg for _, msg, data in hooks.events if data.get("kind") == "no_signal"]
    assert len(messages) == 1  # said once, then every 10th such step
    assert messages[0].startswith("Step 1 taught nothing: every answer to each task got the same score")
    assert "The model was left unchanged" in messages[0]
    before = load_file(str(tiny_model / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "checkpoints" / "step-000002" / "model.safetensors"))
    assert all(torch.equal(before[k].float(), after[k].float()) for k in before)
