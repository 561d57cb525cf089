"""score_model / label_model with a local HTTP endpoint and with a tiny local HF model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trainer.grading import (
    GraderValidationError,
    JudgeConfig,
    JudgeRegistry,
    grade_batch,
    run_grader,
    validate_grader,
)
from trainer.grading.model_types import parse_label, parse_score

MESSAGES = [
    {"role": "developer", "content": "You grade answers to: {{item.question}}"},
    {"role": "user", "content": [{"type": "input_text", "text": "Answer: {{sample.output_text}}"}]},
]


def score_grader(model: str, **extra: object) -> dict:
    return {
        "type": "score_model",
        "name": "judge",
        "model": model,
        "input": MESSAGES,
        "range": [0, 10],
        **extra,
    }


def label_grader(model: str) -> dict:
    return {
        "type": "label_model",
        "name": "verdict",
        "model": model,
        "input": MESSAGES,
        "labels": ["correct", "incorrect"],
        "passing_labels": ["correct"],
    }


@pytest.fixture
def judges(judge_server: Any) -> JudgeRegistry:
    return JudgeRegistry(
        [
            JudgeConfig(
                "remote",
                base_url=judge_server.base_url,
                api_key="sk-test-key",
                model="judge-remote",
                retries=0,
            )
        ]
    )


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("7", 7),
        ('{"result": 8.5}', 8.5),
        ("Score: 6/10", 6),
        ("I'd say 3 out of 10... final score is 4", 4),
        ("4/5", 8),
        ("excellent", None),
        ("rating = 9", 9),
    ],
)
def test_parse_score(text: str, score: float | None) -> None:
    assert parse_score(text, 0, 10) == score


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("correct", "correct"),
        ("Incorrect.", "incorrect"),
        ('{"label": "correct"}', "correct"),
        ("The answer is correct", "correct"),
        ("correct or incorrect", None),
        ("maybe", None),
    ],
)
def test_parse_label(text: str, label: str | None) -> None:
    assert parse_label(text, ["correct", "incorrect"]) == label


def test_endpoint_score_model(judge_server: Any, judges: JudgeRegistry) -> None:
    judge_server.reply = lambda body: (200, judge_server.completion("Score: 12"))
    grader = score_grader(
        "remote", sampling_params={"temperature": 0, "seed": 3, "max_completions_tokens": 20}
    )
    result = run_grader(grader, "Paris", {"question": "Capital of France?"}, judges=judges)
    # clipped to the range [0, 10], then rescaled to 0..1 because it is the top-level grader
    assert result.reward == 1.0 and result.ok and result.scores["score"] == 12
    request = judge_server.requests[-1]
    assert (
        request["model"] == "judge-remote"
        and request["seed"] == 3
        and request["max_completion_tokens"] == 20
    )
    assert request["messages"][0] == {
        "role": "system",
        "content": "You grade answers to: Capital of France?",
    }
    assert request["messages"][1]["content"] == [{"type": "text", "text": "Answer: Paris"}]
    assert "from 0 to 10" in request["messages"][-1]["content"]
    assert judge_server.headers[-1]["Authorization"] == "Bearer sk-test-key"
    body = result.to_openai()
    assert (
        body["metadata"]["token_usage"] == 13
        and body["metadata"]["sampled_model_name"] == "judge-remote"
    )
    assert body["model_grader_token_usage_per_model"]["judge-remote"]["total_tokens"] == 13


def test_endpoint_label_model_and_batch(judge_server: Any, judges: JudgeRegistry) -> None:
    judge_server.reply = lambda body: (
        200,
        judge_server.completion("correct" if "Paris" in str(body["messages"]) else "incorrect"),
    )
    results = grade_batch(
        label_grader("remote"), ["Paris", "Lyon", "Paris"], [{"question": "q"}] * 3, judges=judges
    )
    assert [r.reward for r in results] == [1.0, 0.0, 1.0]
    assert results[1].scores["label"] == "incorrect"


def test_endpoint_failures_are_flagged(judge_server: Any, judges: JudgeRegistry) -> None:
    item = {"question": "q"}
    judge_server.reply = lambda body: (200, judge_server.completion("no idea"))
    assert run_grader(score_grader("remote"), "x", item, judges=judges).errors == {
        "model_grader_parse_error": True
    }
    judge_server.reply = lambda body: (200, judge_server.completion(None, refusal="I can't help"))
    assert run_grader(score_grader("remote"), "x", item, judges=judges).errors == {
        "model_grader_refusal_error": True
    }
    judge_server.reply = lambda body: (500, {"error": {"message": "overloaded"}})
    broken = run_grader(score_grader("remote"), "x", item, judges=judges)
    assert broken.reward == 0 and broken.errors["model_grader_server_error"] is True
    assert "HTTP 500" in broken.errors["model_grader_server_error_details"]
    assert "sk-test-key" not in str(broken.to_openai())


def test_unreachable_endpoint_and_key_not_in_repr() -> None:
    config = JudgeConfig(
        "down", base_url="http://127.0.0.1:9/v1", api_key="sk-hidden", timeout_s=2, retries=0
    )
    assert "sk-hidden" not in repr(config)
    result = run_grader(
        score_grader("down"), "x", {"question": "q"}, judges=JudgeRegistry([config])
    )
    assert result.errors["model_grader_server_error"] is True


def test_unknown_local_model_is_a_server_error() -> None:
    result = run_grader(
        score_grader("/no/such/model/folder"), "x", {"question": "q"}, judges=JudgeRegistry()
    )
    assert result.reward == 0 and result.errors["model_grader_server_error"] is True


def test_validation_of_model_graders() -> None:
    m = "smollm2-135m-instruct"
    with pytest.raises(GraderValidationError) as info:
        validate_grader({**label_grader(m), "passing_labels": ["great"]})
    assert info.value.param == "passing_labels"
    with pytest.raises(GraderValidationError) as info:
        validate_grader({**score_grader(m), "input": [{"role": "robot", "content": "hi"}]})
    assert info.value.param == "input.0.role"
    with pytest.raises(GraderValidationError) as info:
        validate_grader(score_grader(m, sampling_params={"temprature": 1}))
    assert info.value.param == "sampling_params"
    assert validate_grader(
        {"type": "score_model", "name": "s", "model": m, "input": "Rate {{sample.output_text}}"}
    )["range"] == [0, 1]


@pytest.mark.parametrize(
    "model", ["/etc", "/no/such/folder", "../data/models", "HuggingFaceTB/SmolLM2-1.7B", "gpt-4o"]
)
def test_judge_model_must_be_built_in_or_registered(model: str, tiny_judge_folder: Path) -> None:
    """A path or hub id typed into a grader is refused by name alone: whether the folder
    exists makes no difference to the answer (no file-existence oracle), nothing is loaded."""
    nested = {"type": "multi", "name": "m", "calculate_output": "j",
              "graders": {"j": score_grader(model)}}
    messages = set()
    for grader, param in ((score_grader(model), "model"), (nested, "graders.j.model")):
        with pytest.raises(GraderValidationError) as info:
            validate_grader(grader, judges=JudgeRegistry())
        assert info.value.param == param and "unknown judge model" in info.value.message
        messages.add(info.value.message.replace(model, "<model>"))
    with pytest.raises(GraderValidationError) as info:  # an existing model folder: the same
        validate_grader(score_grader(str(tiny_judge_folder)), judges=JudgeRegistry())
    messages.add(info.value.message.replace(str(tiny_judge_folder), "<model>"))
    assert len(messages) == 1
    result = run_grader(score_grader(str(tiny_judge_folder)), "x", {"question": "q"},
                        judges=JudgeRegistry())
    assert result.errors["model_grader_server_error"] is True and "unknown judge" in result.error_message
    registered = JudgeRegistry([JudgeConfig(model, base_url="http://127.0.0.1:9/v1")])
    assert validate_grader(score_grader(model), judges=registered)["model"] == model


def test_local_tiny_model_judges_through_a_real_forward_pass(tiny_judge_folder: Path) -> None:
    """The tiny model always says "7" (see conftest): score 7 in [0, 10], label "7" passes."""
    registry = JudgeRegistry(allow_local_paths=True)  # as the command line sets it
    grader = score_grader(str(tiny_judge_folder), sampling_params={"max_completions_tokens": 1})
    result = run_grader(grader, "Paris", {"question": "q"}, judges=registry)
    assert result.reward == 0.7 and result.scores["score"] == 7.0 and result.ok, result.error_message
    assert result.scores["judge_output"].strip() == "7" and result.token_usage > 1
    labels = {
        "type": "label_model",
        "name": "l",
        "model": str(tiny_judge_folder),
        "input": MESSAGES,
        "labels": ["7", "0"],
        "passing_labels": ["7"],
        "sampling_params": {"max_completions_tokens": 1},
    }
    batch = grade_batch(labels, ["a", "b", "c"], [{"question": "q"}] * 3, judges=registry)
    assert [r.reward for r in batch] == [1.0, 1.0, 1.0]


def test_local_judge_registered_under_a_friendly_name(tiny_judge_folder: Path) -> None:
    registry = JudgeRegistry([JudgeConfig("house-judge", path=str(tiny_judge_folder))])
    grader = score_grader("house-judge", sampling_params={"max_completions_tokens": 1})
    assert run_grader(grader, "x", {"question": "q"}, judges=registry).reward == 0.7


def test_openai_model_name_without_an_endpoint_says_how_to_fix_it() -> None:
    result = run_grader(score_grader("gpt-4o-mini"), "x", {"question": "q"}, judges=JudgeRegistry())
    assert result.errors["model_grader_server_error"] is True
    assert "Judge endpoints" in result.errors["model_grader_server_error_details"]
