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


def test_spread_window_pauses_retries_only_when_full_of_groups_without_spread():
    window = loop.SpreadWindow(4)
    round_of = lambda *zero: type("R", (), {"zero_std": torch.tensor(zero)})()  # noqa: E731
    window.add(round_of(True, True, True))
    assert window.retries_pay()  # not enough evidence yet
    window.add(round_of(True))
    assert not window.retries_pay()  # the last 4 groups had no spread
    window.add(round_of(False))
    assert window.retries_pay()  # one did: retries resume
    window.add(round_of(True, True, True, True))
    assert not window.retries_pay() and window.state() == [False] * 4
    assert loop.SpreadWindow(4, window.state()).state() == window.state()


def test_retries_pause_while_recent_tasks_all_score_the_same_and_resume_after(tiny_model, tmp_path, qa_tasks):
    from trainer.checkpoints import load_trainer_state

    varied = {"on": False}

    def reward_fn(sample, item):  # the same score for everything until step 4, then spread
        return reward(sample, item) if varied["on"] else 0.5

    class Switch(Recorder):
        def on_step(self, step, metrics, samples):
            super().on_step(step, metrics, samples)
            varied["on"] = step >= 4

    hooks = Switch()
    result = train(cfg(tiny_model, tmp_path, max_steps=8, n_epochs=10), Tasks(train=qa_tasks), reward_fn, hooks)
    rounds = [m["train/sampling_rounds"] for m in hooks.steps]
    paused = [m["train/retries_paused"] for m in hooks.steps]
    # window of 4 x 4 groups: steps 1-2 retry (8 groups each) and fill it; 3-4 find it all without spread
    assert rounds[:4] == [2, 2, 1, 1] and paused[:4] == [0.0, 0.0, 1.0, 1.0]
    assert all(m["train/no_signal"] == 1.0 for m in hooks.steps[:4])
    # from step 5 answers differ again: retries resume wherever the first round lacked spread
    assert paused[4:] == [0.0] * 4
    assert all(m["train/no_signal"] == 0.0 for m in hooks.steps[4:])
    partly = [m for m in hooks.steps[4:] if m["train/frac_zero_std_groups"] > 0]
    assert partly and all(m["train/sampling_rounds"] == 2 for m in partly)
    # the window is part of the checkpoint, so a resumed run decides as the uninterrupted one
    state = load_trainer_state(result.last_checkpoint)
    assert len(state["spread_window"]) == 16 and any(state["spread_window"])
