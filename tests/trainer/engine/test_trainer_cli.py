import json

from trainer.cli import main

REWARD_PY = '''
def reward(sample, item):
    return float(sample["output_text"][:1].isdigit())
'''


def test_cli_trains_end_to_end_and_writes_jsonl(tiny_model, tmp_path, qa_tasks, capsys):
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in qa_tasks))
    (tmp_path / "valid.jsonl").write_text("".join(json.dumps(t) + "\n" for t in qa_tasks[:2]))
    (tmp_path / "reward.py").write_text(REWARD_PY)
    (tmp_path / "run.json").write_text(json.dumps({
        "base_model": str(tiny_model), "batch_size": 4, "group_size": 4, "max_completion_tokens": 4,
        "eval_interval": 1, "n_epochs": 1}))
    out = tmp_path / "out"
    code = main(["run", "--config", str(tmp_path / "run.json"), "--tasks", str(tmp_path / "tasks.jsonl"),
                 "--valid", str(tmp_path / "valid.jsonl"), "--grader", f"{tmp_path / 'reward.py'}:reward",
                 "--out", str(out)])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "succeeded" and result["step"] == 2
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [1, 2] and "valid/reward_mean" in metrics[-1]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["split"] for s in samples} == {"train", "valid"}
    events = (out / "events.jsonl").read_text()
    assert "Training finished" in events
    assert (out / "checkpoints" / "step-000002" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "result.json").read_text())["status"] == "succeeded"


def test_cli_openai_hyperparameters_and_stop_file(tiny_model, tmp_path, qa_tasks, capsys):
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in qa_tasks))
    (tmp_path / "reward.py").write_text(REWARD_PY)
    (tmp_path / "run.json").write_text(json.dumps({
        "base_model": str(tiny_model), "hyperparameters": {"batch_size": 2, "n_epochs": 2, "compute_multiplier": 0.5,
                                                           "reasoning_effort": "minimal"}}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "STOP").write_text("pause")  # the CLI's pause/cancel switch, read between steps
    code = main(["run", "--config", str(tmp_path / "run.json"), "--tasks", str(tmp_path / "tasks.jsonl"),
                 "--grader", f"{tmp_path / 'reward.py'}:reward", "--out", str(out)])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["status"] == "paused" and result["step"] == 0


def test_cli_bad_config_exits_with_message(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps({"group_size": 1}))
    (tmp_path / "tasks.jsonl").write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    (tmp_path / "grader.json").write_text("{}")
    code = main(["run", "--config", str(tmp_path / "run.json"), "--tasks", str(tmp_path / "tasks.jsonl"),
                 "--grader", str(tmp_path / "grader.json"), "--out", str(tmp_path / "out")])
    assert code == 2
    assert "group_size must be at least 2" in capsys.readouterr().err
