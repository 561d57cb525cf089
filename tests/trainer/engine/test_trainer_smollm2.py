"""The built-in SmolLM2-135M learns a small real task with a rubric grader (slow: ~3 minutes)."""

import random
import re

import pytest

from trainer import Hooks, Tasks, TrainConfig, train


def arithmetic_tasks(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        rows.append({"messages": [{"role": "user", "content": f"What is {a} + {b}? Reply with just the number."}],
                     "answer": str(a + b)})
    return rows


def rubric(sample, item):
    """Two weighted criteria, as the rubric builder makes them: a correct number and a short reply."""
    text = sample["output_text"]
    numbers = re.findall(r"-?\d+", text)
    correct = float(bool(numbers) and numbers[0] == item["answer"])
    concise = float(len(text.split()) <= 6)
    return {"reward": 0.5 * correct + 0.5 * concise, "sub_rewards": {"correct": correct, "concise": concise}}


class Record(Hooks):
    def __init__(self):
        self.steps = []

    def on_step(self, step, metrics, samples):
        self.steps.append(metrics)


@pytest.mark.slow
def test_smollm2_learns_a_rubric_task(tmp_path):
    hooks = Record()
    config = TrainConfig(base_model="smollm2-135m-instruct", batch_size=4, group_size=6, max_completion_tokens=24,
                         learning_rate=3e-4, max_steps=16, n_epochs=10, eval_interval=8, eval_samples=8,
                         num_threads=1, seed=0, output_dir=str(tmp_path / "run"))
    tasks = arithmetic_tasks(48)
    result = train(config, Tasks(train=tasks[8:], valid=tasks[:8]), rubric, hooks)
    assert result.status == "succeeded" and result.best_checkpoint
    rewards = [m["train/reward_mean"] for m in hooks.steps]
    assert {"train/grader/correct_mean", "train/grader/concise_mean"} <= set(hooks.steps[0])
    first, last = sum(rewards[:4]) / 4, sum(rewards[-4:]) / 4
    assert last > first + 0.1, rewards
