"""The defects a review against TRL found (issue 11): precision, logits, dropout, grader errors,
cut-off answers, checkpoint ranking, sliding windows and resume."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from tests.trainer.engine.conftest import make_tiny_model
from trainer import Hooks, Tasks, TrainConfig, train
from trainer.checkpoints import best_checkpoint, list_checkpoints
from trainer.config import ConfigError
from trainer.loop import TaskError
from trainer.models import disable_dropout, load_model
from trainer.objective import (
    UnsupportedModelError,
    completion_logprobs,
    group_advantages,
    verify_logits,
)
from trainer.rollout import encode_prompt, generate


def spread_reward(sample, item):
    """Distinct characters in the answer: differs between almost any two random answers."""
    return len(set(sample["output_text"])) / 10


class Recorder(Hooks):
    def __init__(self, pause_at=None):
        self.steps, self.events, self.pause_at = [], [], pause_at

    def on_step(self, step, metrics, samples):
        self.steps.append(metrics)

    def on_event(self, level, message, data=None):
        self.events.append((level, message, data or {}))

    def should_stop(self):
        if self.pause_at is not None and self.steps and self.steps[-1]["step"] >= self.pause_at:
            return "pause"
        return None


def cfg(model, tmp_path, **kw):
    base = dict(base_model=str(model), batch_size=2, group_size=4, max_completion_tokens=6, n_epochs=1,
                eval_interval=100, output_dir=str(tmp_path / "run"), seed=3, mask_truncated_completions=False,
                samples_per_step=0)
    base.update(kw)
    return TrainConfig(**base)


def _weights(folder):
    return {k: v.float() for k, v in load_file(str(folder / "model.safetensors")).items()}


# --- 1, 2: master weights in float32; float16 with loss scaling ------------------------------


def test_bf16_full_tuning_changes_most_weights_at_a_small_learning_rate(tiny_model, tmp_path, qa_tasks):
    hooks = Recorder()
    result = train(cfg(tiny_model, tmp_path, method="full", dtype="bfloat16", learning_rate=5e-6, max_steps=3,
                       n_epochs=3), Tasks(train=qa_tasks), spread_reward, hooks)
    assert result.status == "succeeded" and len(hooks.steps) == 3
    assert all(m["train/no_signal"] == 0.0 for m in hooks.steps)
    before, after = _weights(tiny_model), _weights(tmp_path / "run" / "checkpoints" / "step-000003")
    changed = total = 0
    for name, w in before.items():
        changed += (after[name] != w).sum().item()
        total += w.numel()
    # AdamW moves every weight with a gradient by ~lr; in bf16 storage those moves round away
    assert changed / total > 0.5, changed / total
    # ... and not merely by being stored in bf16: most saved weights are not bf16-representable
    # (bf16 storage, even cast back to float32 on save, would leave every weight on the bf16 grid)
    off_grid = sum((w != w.bfloat16().float()).sum().item() for w in after.values())
    assert off_grid / total > 0.5, off_grid / total
    # the master copy is float32: the saved weights are float32, not bf16-rounded
    assert load_file(str(tmp_path / "run" / "checkpoints" / "step-000003" / "model.safetensors"))[
        "model.layers.0.mlp.up_proj.weight"].dtype == torch.float32


@pytest.mark.parametrize("method", ["full", "lora"])
def test_float16_trains_without_nan(tiny_model, tmp_path, qa_tasks, method):
    hooks = Recorder()
    result = train(cfg(tiny_model, tmp_path, method=method, dtype="float16", learning_rate=1e-3, max_steps=2,
                       n_epochs=2), Tasks(train=qa_tasks), spread_reward, hooks)
    assert result.status == "succeeded"
    for m in hooks.steps:
        assert math.isfinite(m["train/loss"]) and m["train/loss_scale"] > 0
    folder = tmp_path / "run" / "checkpoints" / "step-000002"
    files = ["model.safetensors"] if method == "full" else ["adapter_model.safetensors"]
    for name in files:
        for key, w in load_file(str(folder / name)).items():
            assert torch.isfinite(w).all(), key


# --- 3, 4: log-probs through the model's own logit post-processing, in float32 ---------------


def test_soft_capped_logits_are_trained_as_sampled(tmp_path):
    """Gemma 2 soft-caps its final logits; training log-probs must use the capped ones."""
    folder = make_tiny_model(tmp_path / "gemma2", arch="gemma2", final_logit_softcapping=0.5)
    model, tok = load_model(str(folder))
    verify_logits(model)  # passes: the trainer knows this architecture
    prompt = encode_prompt(tok, [{"role": "user", "content": "hello there"}], max_tokens=64)[0]
    r = generate(model, [prompt], group_size=2, max_new_tokens=5, eos_ids={tok.eos_token_id},
                 pad_id=tok.pad_token_id, seeds=[1, 2])
    with torch.no_grad():
        logp, _ = completion_logprobs(model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask,
                                      temperature=1.0)
        n = int(r.completion_mask[0].sum())
        ids = torch.tensor([prompt + r.completion_ids[0, :n].tolist()])
        logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1]
    assert logits.abs().max() <= 0.5 + 1e-6  # capped
    plain = torch.log_softmax(logits.float(), -1).gather(-1, ids[0, len(prompt):, None]).squeeze(-1)
    assert torch.allclose(logp[0, :n], plain, atol=1e-5)


def test_an_output_layer_the_trainer_cannot_reproduce_is_refused(tmp_path, qa_tasks):
    # a Llama whose config claims soft-capping its forward does not do: the check finds the gap
    folder = make_tiny_model(tmp_path / "odd", final_logit_softcapping=0.05)
    model, _ = load_model(str(folder))
    with pytest.raises(UnsupportedModelError, match="not supported"):
        verify_logits(model)
    with pytest.raises(UnsupportedModelError):
        train(cfg(folder, tmp_path), Tasks(train=qa_tasks), spread_reward, Recorder())


# --- 5: dropout off ---------------------------------------------------------------------------


def test_dropout_is_off_in_the_policy(tmp_path):
    folder = make_tiny_model(tmp_path / "dropout", attention_dropout=0.5)
    model, _ = load_model(str(folder))
    ids = torch.arange(5, 25)[None]
    model.train()
    assert not torch.allclose(model(input_ids=ids).logits, model(input_ids=ids).logits)  # dropout is on
    disable_dropout(model)
    a, b = model(input_ids=ids).logits, model(input_ids=ids).logits
    model.eval()
    assert torch.equal(a, b) and torch.allclose(a, model(input_ids=ids).logits, atol=1e-6)


def test_training_turns_the_base_models_dropout_off(tmp_path, qa_tasks, monkeypatch):
    """train() itself switches dropout off (not only the helper): the policy it trains is the
    model it loaded, with every attention dropout at 0 and dropout-free forward passes."""
    import trainer.loop as loop

    folder = make_tiny_model(tmp_path / "dropout", attention_dropout=0.5)
    loaded, real = [], loop.load_model

    def spy(*args, **kwargs):
        loaded.append(real(*args, **kwargs))
        return loaded[-1]

    monkeypatch.setattr(loop, "load_model", spy)
    train(cfg(folder, tmp_path, method="full", max_steps=1), Tasks(train=qa_tasks), spread_reward, Recorder())
    model = loaded[0][0]
    rates = [m.attention_dropout for m in model.modules() if hasattr(m, "attention_dropout")]
    assert rates and all(rate == 0.0 for rate in rates)
    model.train()
    ids = torch.arange(5, 25)[None]
    assert torch.equal(model(input_ids=ids).logits, model(input_ids=ids).logits)


# --- 6: grader errors -----------------------------------------------------------------------


def test_errored_completions_get_no_advantage_and_leave_the_group_stats_alone():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.9, 0.1])
    valid = torch.tensor([True, True, False, False, True, False, True, True])
    adv, zero_std = group_advantages(rewards, 4, "group", valid=valid)
    # group 1: graded 1.0 and 0.0 only; the errors (counted as 0) do not pull the mean down
    assert adv[2] == 0 and adv[3] == 0 and adv[5] == 0
    assert adv[0] == pytest.approx(-adv[1]) and adv[0] > 0
    ref, _ = group_advantages(torch.tensor([0.5, 0.9, 0.1]), 3, "group")
    assert torch.allclose(adv[[4, 6, 7]], ref, atol=1e-6)
    assert zero_std.tolist() == [False, False]
    # a group with a single graded answer has nothing to compare it with
    _, zero = group_advantages(torch.tensor([1.0, 0.0]), 2, "group", valid=torch.tensor([True, False]))
    assert zero.tolist() == [True]


def test_grader_errors_are_excluded_from_the_loss(tiny_model, tmp_path, qa_tasks):
    def half_broken(sample, item):
        if int(item["answer"]) % 2:
            raise RuntimeError("judge timed out")
        return spread_reward(sample, item)

    hooks = Recorder()
    train(cfg(tiny_model, tmp_path, max_steps=1, batch_size=8, dynamic_sampling=False, samples_per_step=32),
          Tasks(train=qa_tasks), half_broken, hooks)
    m = hooks.steps[0]
    assert m["train/grader_error_frac"] == pytest.approx(6 / 8)  # 6 of the 8 answers are odd
    assert m["train/no_signal"] == 0.0
    warnings = [msg for level, msg, data in hooks.events if data.get("kind") == "grader_errors"]
    assert warnings and "24 of 32 answers could not be graded" in warnings[0] and "judge timed out" in warnings[0]


def test_grader_errors_do_not_become_a_training_signal(tiny_model, tmp_path, qa_tasks):
    """Every answer the grader could grade scores 1.0, the others fail: scored as 0 (the old
    behaviour) the failures would make a spread and an update; left out, there is nothing to learn."""
    def flaky(sample, item):
        if len(sample["output_text"]) % 2:
            raise RuntimeError("judge timed out")
        return 1.0

    hooks = Recorder()
    train(cfg(tiny_model, tmp_path, method="full", max_steps=1, batch_size=8, dynamic_sampling=False,
              learning_rate=1e-3), Tasks(train=qa_tasks), flaky, hooks)
    m = hooks.steps[0]
    assert 0 < m["train/grader_error_frac"] < 1  # some answers of the step were graded, some not
    assert m["train/no_signal"] == 1.0 and m["train/loss"] == 0.0
    before = load_file(str(tiny_model / "model.safetensors"))
    after = load_file(str(tmp_path / "run" / "checkpoints" / "step-000001" / "model.safetensors"))
    assert all(torch.equal(before[k].float(), after[k].float()) for k in before)


# --- 7: cut-off answers -----------------------------------------------------------------------


def test_cut_off_answers_are_masked_by_default_for_short_limits(tiny_model, tmp_path, qa_tasks):
    assert TrainConfig(max_completion_tokens=64).masks_truncated
    assert not TrainConfig(max_completion_tokens=1024).masks_truncated
    assert not TrainConfig(max_completion_tokens=64, mask_truncated_completions=False).masks_truncated
    hooks = Recorder()
    # the random tiny model never says EOS: every answer is cut off, none may be trained on
    train(cfg(tiny_model, tmp_path, max_steps=1, mask_truncated_completions=None), Tasks(train=qa_tasks),
          spread_reward, hooks)
    m = hooks.steps[0]
    assert m["train/truncated_frac"] == 1.0 and m["train/no_signal"] == 1.0
    kinds = [data.get("kind") for _, _, data in hooks.events]
    assert "truncated" in kinds and "no_signal" in kinds
    msg = next(msg for _, msg, data in hooks.events if data.get("kind") == "no_signal")
    assert "taught nothing" in msg and "cut off" in msg


# --- 8: checkpoints ranked like with like ----------------------------------------------------


def test_checkpoints_rank_validation_scores_above_training_only_ones(tmp_path):
    root = tmp_path / "checkpoints"
    for step, metrics in [(1, {"train/reward_mean": 0.2, "valid/reward_mean": 0.4}),
                          (2, {"train/reward_mean": 0.95}),  # paused, not validated
                          (3, {"train/reward_mean": 0.3, "valid/reward_mean": 0.35})]:
        folder = root / f"step-{step:06d}"
        folder.mkdir(parents=True)
        (folder / "metrics.json").write_text(json.dumps(metrics))
        (folder / "trainer_state.pt").write_bytes(b"")
    assert len(list_checkpoints(tmp_path)) == 3
    assert best_checkpoint(tmp_path).name == "step-000001"


# --- 9: sliding-window attention -------------------------------------------------------------


def test_sliding_window_models_get_correct_logprobs_and_samples(tmp_path):
    folder = make_tiny_model(tmp_path / "mistral", arch="mistral", sliding_window=4)
    model, tok = load_model(str(folder))
    prompts = [encode_prompt(tok, [{"role": "user", "content": c}], max_tokens=64)[0]
               for c in ["a prompt far longer than the window", "short"]]
    r = generate(model, prompts, group_size=2, max_new_tokens=6, eos_ids={tok.eos_token_id},
                 pad_id=tok.pad_token_id, seeds=[1, 2, 3, 4])
    with torch.no_grad():
        logp, _ = completion_logprobs(model, r.prompt_ids, r.prompt_mask, r.completion_ids, r.completion_mask,
                                      temperature=1.0)
        for row in range(4):
            prompt = prompts[row // 2]
            n = int(r.completion_mask[row].sum())
            ids = torch.tensor([prompt + r.completion_ids[row, :n].tolist()])
            logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1]
            plain = torch.log_softmax(logits, -1).gather(-1, ids[0, len(prompt):, None]).squeeze(-1)
            assert torch.allclose(logp[row, :n], plain, atol=1e-5), row
        # greedy sampling with the repeated, shrinking cache equals transformers' own generate
        g = generate(model, prompts, group_size=1, max_new_tokens=8, eos_ids={tok.eos_token_id},
                     pad_id=tok.pad_token_id, temperature=0)
        for row, prompt in enumerate(prompts):
            ref = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                                 max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)[0, len(prompt):]
            n = int(g.completion_mask[row].sum())
            assert g.completion_ids[row, :n].tolist() == ref[:n].tolist()


# --- 10: resume only the same run --------------------------------------------------------------


def test_resume_refuses_other_settings_or_tasks(tiny_model, tmp_path, qa_tasks):
    config = cfg(tiny_model, tmp_path, max_steps=4, n_epochs=2)
    result = train(config, Tasks(train=qa_tasks), spread_reward, Recorder(pause_at=1))
    assert result.status == "paused"
    ckpt = result.last_checkpoint
    with pytest.raises(ConfigError, match=r"learning_rate 5e-05 -> 0\.001"):
        train(config.replace(learning_rate=1e-3), Tasks(train=qa_tasks), spread_reward, resume_from=ckpt)
    edited = [dict(qa_tasks[0], answer="4")] + qa_tasks[1:]
    with pytest.raises(TaskError, match="tasks differ"):
        train(config, Tasks(train=edited), spread_reward, resume_from=ckpt)
    # where it runs may change; what it learns may not
    done = train(config.replace(num_threads=1, grading_threads=2), Tasks(train=qa_tasks), spread_reward,
                 resume_from=ckpt)
    assert done.status == "succeeded" and done.step == 4
