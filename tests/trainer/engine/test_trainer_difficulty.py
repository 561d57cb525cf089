"""trainer.difficulty_profile on a tiny model: k answers per task, graded, banded."""

import pytest

from trainer import TrainConfig
from trainer.difficulty import band_of, difficulty_profile, spread

HARSH = {"type": "string_check", "name": "harsh", "input": "{{sample.output_text}}", "reference": "never",
         "operation": "eq"}
ANYTHING = {"type": "length_bounds", "name": "any", "unit": "characters", "min": 0, "max": 100000}


def rows(n=6):
    return [{"messages": [{"role": "user", "content": f"say {c}"}], "reference_answer": c, "_id": i}
            for i, c in enumerate("abcdefghij"[:n])]


def config(tiny_model, tmp_path):
    return TrainConfig(base_model=str(tiny_model), group_size=2, max_completion_tokens=4, seed=1,
                       output_dir=str(tmp_path))


def test_bands_counts_and_progress(tiny_model, tmp_path):
    progress = []
    never = difficulty_profile(config(tiny_model, tmp_path), rows(), HARSH, k=3, max_tasks=4,
                               on_progress=lambda m, done, total: progress.append((done, total)))
    assert never["k"] == 3 and never["tasks_profiled"] == 4 and never["tasks_total"] == 6
    assert never["bands"] == {"never": 4, "between": 0, "always": 0} and never["same_score"] == 4
    assert [t["id"] for t in never["tasks"]] == [0, 1, 3, 4]  # spread over the tasks
    assert all(len(t["answers"]) == 3 and t["rewards"] == [0.0] * 3 for t in never["tasks"])
    assert never["histogram"][0] == {"passed": 0, "of": 3, "tasks": 4}
    assert progress[0] == (0, 4) and progress[-1] == (4, 4)

    always = difficulty_profile(config(tiny_model, tmp_path), rows(3), ANYTHING, k=2, max_tasks=10)
    assert always["bands"] == {"never": 0, "between": 0, "always": 3}
    assert always["histogram"][-1] == {"passed": 2, "of": 2, "tasks": 3}


def test_a_reward_function_in_between(tiny_model, tmp_path):
    calls = []

    def alternate(sample, item):  # every other answer passes: every task is "in between"
        calls.append(1)
        return float(len(calls) % 2)

    profile = difficulty_profile(config(tiny_model, tmp_path), rows(2), alternate, k=4, max_tasks=2)
    assert profile["bands"]["between"] + profile["bands"]["always"] + profile["bands"]["never"] == 2
    assert sum(sum(t["rewards"]) for t in profile["tasks"]) == 4  # half of the 8 answers passed


def test_limits_and_helpers(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="k"):
        difficulty_profile(config(tiny_model, tmp_path), rows(), HARSH, k=0)
    with pytest.raises(ValueError, match="max_tasks"):
        difficulty_profile(config(tiny_model, tmp_path), rows(), HARSH, max_tasks=10_000)
    with pytest.raises(ValueError, match="no tasks"):
        difficulty_profile(config(tiny_model, tmp_path), [], HARSH)
    assert spread(10, 4) == [0, 2, 5, 7] and spread(3, 4) == [0, 1, 2]
    assert [band_of(r) for r in (0.0, 0.5, 1.0)] == ["never", "between", "always"]
