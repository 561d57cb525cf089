"""trainer.preflight on a tiny model: the reference check, prompt lengths and the base model's
first answers, sampled and graded with the training loop's rules."""

import pytest

from trainer import Tasks, TrainConfig, preflight
from trainer.loop import TaskError
from trainer.models import load_model
from trainer.rollout import encode_prompt

EXACT = {"type": "string_check", "name": "exact", "input": "{{sample.output_text}}",
         "reference": "{{item.reference_answer}}", "operation": "eq"}
HARSH = {**EXACT, "name": "harsh", "reference": "never"}


def tasks(n=6, **extra):
    return [{"messages": [{"role": "user", "content": f"say {c}"}], "reference_answer": c, **extra}
            for c in "abcdefghij"[:n]]


def config(tiny_model, tmp_path, **kw):
    return TrainConfig(**{**dict(base_model=str(tiny_model), group_size=3, max_completion_tokens=5, seed=1,
                                 output_dir=str(tmp_path)), **kw})


def test_reports_every_check_and_its_progress(tiny_model, tmp_path):
    phases = []
    results = preflight(config(tiny_model, tmp_path), Tasks(train=tasks()), HARSH,
                        on_progress=lambda message, so_far: phases.append((message, sorted(so_far))))
    assert [m for m, _ in phases] == ["Grading the reference answers…", "Loading the base model…",
                                      "Sampling the base model's first answers…"]
    assert phases[-1][1] == ["prompts", "references"]  # partial results travel with the progress
    refs = results["references"]
    assert refs["checked"] == 6 and refs["failing"] == 6 and len(refs["examples"]) == 5
    assert refs["examples"][0] == {"prompt": "say a", "reward": 0.0, "criteria": ["harsh"]}
    assert results["prompts"] == {"max": results["prompts"]["max"], "limit": 512, "too_long": 0}
    rollouts = results["rollouts"]
    assert rollouts["prompts"] == 4 and rollouts["group_size"] == 3  # the run's own group size
    assert rollouts["all_same"] and rollouts["mean_reward"] == 0.0 and rollouts["zero_variance_groups"] == 4
    assert len(rollouts["examples"]) == 4


def test_a_grader_that_passes_references_and_rewards_that_differ(tiny_model, tmp_path):
    lengths = []

    def by_length(sample, item):  # a reward callable, as train() takes; varies with the answer
        lengths.append(len(sample["output_text"]))
        return len(sample["output_text"]) / 5

    results = preflight(config(tiny_model, tmp_path, temperature=1.5), Tasks(train=tasks(8)), by_length)
    assert results["references"]["checked"] == 0 and "reward function" in results["references"]["note"]
    assert not results["rollouts"]["all_same"]
    assert len(lengths) == 4 * 3 and max(lengths) <= 5  # the run's answer length stops them (1 char = 1 token)
    assert preflight(config(tiny_model, tmp_path), Tasks(train=tasks()), EXACT)["references"] == {
        "checked": 6, "failing": 0, "examples": []}


def test_prompts_longer_than_the_limit_are_counted(tiny_model, tmp_path):
    rows = tasks(3) + [{"messages": [{"role": "user", "content": "x" * 300}], "reference_answer": "x"}]
    _, tokenizer = load_model(str(tiny_model))
    longest = len(encode_prompt(tokenizer, rows[-1]["messages"], max_tokens=10**9)[0])
    results = preflight(config(tiny_model, tmp_path, max_prompt_tokens=100), Tasks(train=rows), EXACT)
    assert results["prompts"] == {"max": longest, "limit": 100, "too_long": 1}


def test_unusable_tasks_are_refused_before_any_model_work(tmp_path):
    with pytest.raises(TaskError, match="task 0 has no `messages`"):
        preflight(TrainConfig(base_model=str(tmp_path / "no-model")), Tasks(train=[{"prompt": "x"}]), EXACT)
